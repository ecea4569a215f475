"""Train the LeNet-style digit classifier with nnabla and save it as a Console training result.

    /work/venvs/nnabla/bin/python sample_projects/digits/train.py

Needs nnabla 1.39 (Python 3.10), Pillow, scikit-learn. CPU only, fixed seeds. Generates the
training PNGs first if they are missing (``sample_projects/make_digit_pngs.py``), trains on the
1,500 training images fed as Console feeds them (8-bit PNG / 255.0, shape (1, 28, 28)), writes
``digits.nnp`` next to this file and then checks it with nnabla's own CLI
(``nnabla_cli forward`` on ``data/test.csv``), printing the test accuracy from that output.

Network (Console layer names; parameters ``<layer>/conv/W`` ...)::

    Input (1,28,28) -> Convolution (16 maps, 5x5) -> ReLU -> MaxPooling (2x2)
      -> Convolution_2 (32 maps, 5x5) -> ReLU_2 -> MaxPooling_2 (2x2)
      -> Affine (128) -> ReLU_3 -> Affine_2 (10) -> Softmax
      [Main / MainValidation only: -> CategoricalCrossEntropy with label CategoricalCrossEntropy_T]
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from console_style import (DIGITS_DATA, LayerNames, Timer, ensure_digit_pngs,  # noqa: E402
                           load_image_column, load_label_column, save_console_nnp)

SEED = 0
BATCH_SIZE = 64
EPOCHS = 30
LEARNING_RATE = 0.001
SHIFT = 2


def build(batch_size: int, with_loss: bool):
    """One Console network; returns (LayerNames, output variable, label variable or None)."""
    import nnabla as nn
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    n = LayerNames()
    x = n("Input", nn.Variable((batch_size, 1, 28, 28)))
    name = n.next("Convolution")
    h = n.add(name, PF.convolution(x, 16, (5, 5), name=name))
    h = n("ReLU", F.relu(h))
    h = n("MaxPooling", F.max_pooling(h, (2, 2)))
    name = n.next("Convolution")
    h = n.add(name, PF.convolution(h, 32, (5, 5), name=name))
    h = n("ReLU", F.relu(h))
    h = n("MaxPooling", F.max_pooling(h, (2, 2)))
    name = n.next("Affine")
    h = n.add(name, PF.affine(h, 128, name=name))
    h = n("ReLU", F.relu(h))
    name = n.next("Affine")
    h = n.add(name, PF.affine(h, 10, name=name))
    y = n("Softmax", F.softmax(h))
    if not with_loss:
        return n, y, None
    t = n.add("CategoricalCrossEntropy_T", nn.Variable((batch_size, 1)))
    loss = n("CategoricalCrossEntropy", F.categorical_cross_entropy(y, t))
    return n, loss, t


def shift(images: np.ndarray, rng: np.random.RandomState, max_shift: int = SHIFT) -> np.ndarray:
    """Training-time augmentation: move each image by up to ``max_shift`` pixels in x and y
    (zero fill). Only in training; the saved networks see the images unchanged."""
    n, _, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    dy, dx = rng.randint(0, 2 * max_shift + 1, size=(2, n))
    return np.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def batches(n_samples: int, batch_size: int, rng: np.random.RandomState):
    """Endless stream of index batches over shuffled epochs (like nnabla's data iterator)."""
    stream = np.empty(0, dtype=np.int64)
    while True:
        while len(stream) < batch_size:
            stream = np.concatenate([stream, rng.permutation(n_samples)])
        yield stream[:batch_size]
        stream = stream[batch_size:]


def train(out: Path) -> None:
    import nnabla as nn
    import nnabla.functions as F
    import nnabla.solvers as S

    np.random.seed(SEED)
    nn.seed(SEED)
    nn.clear_parameters()
    ensure_digit_pngs()
    train_csv, test_csv = DIGITS_DATA / "train.csv", DIGITS_DATA / "test.csv"
    x_train, t_train = load_image_column(train_csv), load_label_column(train_csv)
    x_test, t_test = load_image_column(test_csv), load_label_column(test_csv)
    print(f"training images {x_train.shape}, test images {x_test.shape}")

    main_names, main_loss, t = build(BATCH_SIZE, with_loss=True)
    x = main_names.variables["Input"]
    mean_loss = F.mean(main_loss)
    solver = S.Adam(alpha=LEARNING_RATE)
    solver.set_parameters(nn.get_parameters())
    test_names, test_y, _ = build(len(x_test), with_loss=False)

    iter_per_epoch = -(-len(x_train) // BATCH_SIZE)
    stream = batches(len(x_train), BATCH_SIZE, np.random.RandomState(SEED))
    augment_rng = np.random.RandomState(SEED + 1)
    with Timer() as timer:
        for epoch in range(1, EPOCHS + 1):
            total = 0.0
            for _ in range(iter_per_epoch):
                idx = next(stream)
                x.d, t.d = shift(x_train[idx], augment_rng), t_train[idx]
                mean_loss.forward(clear_no_need_grad=True)
                solver.zero_grad()
                mean_loss.backward(clear_buffer=True)
                solver.update()
                total += float(mean_loss.d)
            test_names.variables["Input"].d = x_test
            test_y.forward(clear_buffer=True)
            acc = float(np.mean(test_y.d.argmax(axis=1) == t_test[:, 0]))
            print(f"epoch {epoch:2d}  train loss {total / iter_per_epoch:.4f}  test accuracy {acc:.2%}")
    print(f"training took {timer.seconds:.1f} s ({EPOCHS} epochs x {iter_per_epoch} iterations, batch {BATCH_SIZE})")

    # The three Console networks (MainValidation is Main again, as Console writes it).
    val_names, val_loss, _ = build(BATCH_SIZE, with_loss=True)
    run_names, run_y, _ = build(BATCH_SIZE, with_loss=False)
    data_map = {"Input": "x", "CategoricalCrossEntropy_T": "y"}
    contents = {
        "global_config": {"default_context": nn.get_current_context()},
        "training_config": {"max_epoch": EPOCHS, "iter_per_epoch": iter_per_epoch, "save_best": True},
        "networks": [
            {"name": "Main", "batch_size": BATCH_SIZE, "outputs": {"CategoricalCrossEntropy": main_loss},
             "names": main_names.variables},
            {"name": "MainValidation", "batch_size": BATCH_SIZE,
             "outputs": {"CategoricalCrossEntropy": val_loss}, "names": val_names.variables},
            {"name": "MainRuntime", "batch_size": BATCH_SIZE, "outputs": {"Softmax": run_y},
             "names": run_names.variables},
        ],
        "datasets": [
            {"name": "Training", "uri": "data/train.csv", "variables": ["x", "y"], "shuffle": True,
             "batch_size": BATCH_SIZE, "no_image_normalization": False},
            {"name": "Validation", "uri": "data/test.csv", "variables": ["x", "y"], "shuffle": False,
             "batch_size": BATCH_SIZE, "no_image_normalization": False},
        ],
        "optimizers": [
            {"name": "Optimizer", "solver": solver, "network": "Main", "dataset": "Training",
             "weight_decay": 0, "lr_decay": 1, "lr_decay_interval": 1, "update_interval": 1,
             "data_variables": data_map, "loss_variables": ["CategoricalCrossEntropy"]},
        ],
        "monitors": [
            {"name": "train_error", "network": "MainValidation", "dataset": "Training",
             "data_variables": data_map},
            {"name": "valid_error", "network": "MainValidation", "dataset": "Validation",
             "data_variables": data_map},
        ],
        "executors": [
            # nnabla's save reads the data-name mapping from the key "remp" (sic).
            {"name": "Executor", "network": "MainRuntime", "data": ["Input"], "output": ["Softmax"],
             "remp": {"Input": "x", "Softmax": "y'"}, "num_evaluations": 1, "repeat_evaluation_type": "mean"},
        ],
    }
    save_console_nnp(out, contents)
    print(f"saved {out}")


def check_with_nnabla_cli(nnp: Path, dataset: Path) -> float:
    """Run ``nnabla_cli forward`` on the dataset CSV; accuracy of the argmax of y'__0..9 vs y."""
    cli = Path(sys.executable).with_name("nnabla_cli")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(cli), "forward", "-c", str(nnp), "-d", str(dataset), "-o", tmp]
        print("$", " ".join(cmd))
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(Path(tmp) / "output_result.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    label = next(i for i, h in enumerate(header) if h.split(":")[0] == "y")
    scores = [i for i, h in enumerate(header) if h.startswith("y'__")]
    correct = sum(int(np.argmax([float(r[i]) for i in scores])) == int(r[label]) for r in body)
    acc = correct / len(body)
    print(f"nnabla_cli forward: {len(body)} test images, accuracy {acc:.2%} ({correct}/{len(body)})")
    return acc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train sample_projects/digits/digits.nnp with nnabla.")
    ap.add_argument("--out", type=Path, default=HERE / "digits.nnp")
    args = ap.parse_args(argv)
    train(args.out)
    acc = check_with_nnabla_cli(args.out, DIGITS_DATA / "test.csv")
    return 0 if acc >= 0.97 else 1


if __name__ == "__main__":
    raise SystemExit(main())
