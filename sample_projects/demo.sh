#!/usr/bin/env bash
# The main job: install nncbridge into a fresh venv and run the Console-style digit recognizer
# on the sample test set (297 handwritten-digit PNGs) through `nncbridge predict`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venvs/demo
.venvs/demo/bin/python -m pip install -q --disable-pip-version-check .
.venvs/demo/bin/nncbridge predict sample_projects/digits/digits.nnp sample_projects/digits/data/test.csv \
    -o .venvs/demo-output/predictions.csv
.venvs/demo/bin/python sample_projects/digits/report.py .venvs/demo-output/predictions.csv
