"""Summarise an output CSV of `nncbridge predict` on the digits test set: a few predictions and the accuracy.

Usage: python sample_projects/digits/report.py predictions.csv
The accuracy is computed from the labels in the dataset column ``y`` and the argmax of ``y'__0`` … ``y'__9``.
"""
from __future__ import annotations

import csv
import sys


def main(path: str, show: int = 8) -> int:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    label_col = next(i for i, h in enumerate(header) if h.split(":")[0] == "y")
    score_cols = [i for i, h in enumerate(header) if h.startswith("y'__")]
    correct = 0
    print(f"{'image':<28} {'label':>5} {'predicted':>9} {'score':>7}")
    for n, row in enumerate(body):
        scores = [float(row[i]) for i in score_cols]
        predicted = max(range(len(scores)), key=scores.__getitem__)
        correct += predicted == int(row[label_col])
        if n < show:
            print(f"{row[0]:<28} {row[label_col]:>5} {predicted:>9} {scores[predicted]:>7.3f}")
    print(f"... {len(body)} images, accuracy {correct / len(body):.2%} ({correct}/{len(body)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
