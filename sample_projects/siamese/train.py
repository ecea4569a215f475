"""Train the Siamese digit embedder with nnabla and save it as a Console training result.

    /work/venvs/nnabla/bin/python sample_projects/siamese/train.py

Needs nnabla 1.39 (Python 3.10), Pillow, scikit-learn; matplotlib for the plot. CPU only, fixed
seeds. Steps:

1. generates the digit PNGs if missing (``sample_projects/make_digit_pngs.py``);
2. writes the pair datasets ``data/train_pairs.csv`` (30,000 pairs of training images, not
   committed) and ``data/test_pairs.csv`` (594 pairs of test images) with the header
   ``x:image,x2:image,same:label`` (``same`` = 1 when both images show the same digit);
3. trains two weight-sharing branches with a contrastive loss on ``train_pairs.csv`` (images
   fed as Console feeds them: 8-bit PNG / 255.0, shape (1, 28, 28));
4. saves ``siamese.nnp`` (Main, MainValidation, MainRuntime; executor ``Executor``:
   ``Input`` <- x, ``Affine_2`` -> y', a 2-D point);
5. checks it with nnabla's CLI: ``nnabla_cli forward`` embeds the 1,500 training digits (the
   gallery) and the 297 test digits; each test digit is named by 5-NN in 2-D; prints the accuracy
   and draws ``embedding.png`` from those embeddings.

Branch (Console names; branch B has its own layer names but uses branch A's parameters, as a
Console layer does whose ParameterScope names another layer)::

    Input (1,28,28) -> Convolution (16, 5x5) -> ReLU -> MaxPooling (2x2)
      -> Convolution_2 (32, 5x5) -> ReLU_2 -> MaxPooling_2 (2x2) -> Affine (128) -> ReLU_3 -> Affine_2 (2)

Loss (Main / MainValidation), a = Affine_2 (branch A), b = Affine_4 (branch B), s = Input_3::

    d^2 = Sum(SquaredError(a, b)),  d = PowScalar(AddScalar(d^2, 1e-6), 0.5)
    loss = s * d^2 + (1 - s) * ReLU(margin - d)^2          (output variable Add2)
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
sys.path.insert(0, str(HERE))

from console_style import (DIGITS_DATA, LayerNames, Timer, ensure_digit_pngs,  # noqa: E402
                           load_image_column, load_label_column, save_console_nnp)
from demo import knn_predict, plot_embedding, read_image_csv  # noqa: E402

SEED = 0
BATCH_SIZE = 64
PAIR_ROUNDS = 20          # pairs per training image in train_pairs.csv
EPOCHS = 2                # passes over train_pairs.csv
LEARNING_RATE = 0.001
MARGIN = 2.0
SHIFT = 2                 # training-time augmentation: random shift up to 2 px (not in the saved networks)
K = 5
PAIR_HEADER = ["x:image", "x2:image", "same:label"]


def make_pairs(labels: np.ndarray, rounds: int, rng: np.random.RandomState) -> np.ndarray:
    """(n, 3) rows (i, j, same): every image ``rounds`` times, paired with a random image of the
    same digit (probability 1/2) or of another digit."""
    by_digit = [np.flatnonzero(labels == d) for d in range(10)]
    others = [np.flatnonzero(labels != d) for d in range(10)]
    rows = []
    for _ in range(rounds):
        for i in rng.permutation(len(labels)):
            same = rng.rand() < 0.5
            if same:
                candidates = by_digit[labels[i]]
                j = i
                while j == i:
                    j = candidates[rng.randint(len(candidates))]
            else:
                candidates = others[labels[i]]
                j = candidates[rng.randint(len(candidates))]
            rows.append((i, j, int(same)))
    return np.array(rows, dtype=np.int64)


def write_pairs(path: Path, pairs: np.ndarray, image_cells: list[str], image_folder: Path) -> None:
    """A Console pair dataset; image paths relative to the pair CSV's folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rel = Path(*[".."] * len(path.parent.relative_to(HERE.parent).parts)) / image_folder.relative_to(HERE.parent)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(PAIR_HEADER)
        for i, j, same in pairs:
            w.writerow([(rel / image_cells[i]).as_posix(), (rel / image_cells[j]).as_posix(), same])


def shift(images: np.ndarray, rng: np.random.RandomState, max_shift: int = SHIFT) -> np.ndarray:
    n, _, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    dy, dx = rng.randint(0, 2 * max_shift + 1, size=(2, n))
    return np.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def branch(n: LayerNames, x, scopes: list[str] | None = None) -> tuple[object, list[str]]:
    """One embedding branch; parametric layers use ``scopes`` (branch A's layer names) when given."""
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    used = []

    def scope(name: str) -> str:
        s = scopes[len(used)] if scopes else name
        used.append(s)
        return s

    name = n.next("Convolution")
    h = n.add(name, PF.convolution(x, 16, (5, 5), name=scope(name)))
    h = n("ReLU", F.relu(h))
    h = n("MaxPooling", F.max_pooling(h, (2, 2)))
    name = n.next("Convolution")
    h = n.add(name, PF.convolution(h, 32, (5, 5), name=scope(name)))
    h = n("ReLU", F.relu(h))
    h = n("MaxPooling", F.max_pooling(h, (2, 2)))
    name = n.next("Affine")
    h = n.add(name, PF.affine(h, 128, name=scope(name)))
    h = n("ReLU", F.relu(h))
    name = n.next("Affine")
    h = n.add(name, PF.affine(h, 2, name=scope(name)))
    return h, used


def build_runtime(batch_size: int):
    import nnabla as nn

    n = LayerNames()
    x = n("Input", nn.Variable((batch_size, 1, 28, 28)))
    y, _ = branch(n, x)
    return n, y


def build_main(batch_size: int):
    """Main / MainValidation: two branches sharing parameters and the contrastive loss."""
    import nnabla as nn
    import nnabla.functions as F

    n = LayerNames()
    xa = n("Input", nn.Variable((batch_size, 1, 28, 28)))
    a, scopes = branch(n, xa)
    xb = n("Input", nn.Variable((batch_size, 1, 28, 28)))
    b, _ = branch(n, xb, scopes)
    s = n("Input", nn.Variable((batch_size, 1)))
    d2 = n("Sum", F.sum(n("SquaredError", F.squared_error(a, b)), axis=1, keepdims=True))
    d = n("PowScalar", F.pow_scalar(n("AddScalar", F.add_scalar(d2, 1e-6)), 0.5))
    hinge = n("PowScalar", F.pow_scalar(n("ReLU", F.relu(n("RSubScalar", F.r_sub_scalar(d, MARGIN)))), 2.0))
    similar = n("Mul2", F.mul2(s, d2))
    dissimilar = n("Mul2", F.mul2(n("RSubScalar", F.r_sub_scalar(s, 1.0)), hinge))
    loss = n("Add2", F.add2(similar, dissimilar))
    return n, loss, (xa, xb, s)


def batches(n_samples: int, batch_size: int, rng: np.random.RandomState):
    stream = np.empty(0, dtype=np.int64)
    while True:
        while len(stream) < batch_size:
            stream = np.concatenate([stream, rng.permutation(n_samples)])
        yield stream[:batch_size]
        stream = stream[batch_size:]


def embed_nnabla(images: np.ndarray) -> np.ndarray:
    names, y = build_runtime(len(images))
    names.variables["Input"].d = images
    y.forward(clear_buffer=True)
    return y.d.copy()


def train(out: Path) -> None:
    import nnabla as nn
    import nnabla.functions as F
    import nnabla.solvers as S

    np.random.seed(SEED)
    nn.seed(SEED)
    nn.clear_parameters()
    ensure_digit_pngs()
    train_csv, test_csv = DIGITS_DATA / "train.csv", DIGITS_DATA / "test.csv"
    x_train, y_train = load_image_column(train_csv), load_label_column(train_csv)[:, 0]
    x_test, y_test = load_image_column(test_csv), load_label_column(test_csv)[:, 0]
    train_cells = _cells(train_csv)
    test_cells = _cells(test_csv)

    pair_rng = np.random.RandomState(SEED)
    train_pairs = make_pairs(y_train, PAIR_ROUNDS, pair_rng)
    test_pairs = make_pairs(y_test, 2, pair_rng)
    write_pairs(HERE / "data" / "train_pairs.csv", train_pairs, train_cells, DIGITS_DATA)
    write_pairs(HERE / "data" / "test_pairs.csv", test_pairs, test_cells, DIGITS_DATA)
    print(f"pairs: {len(train_pairs)} training ({train_pairs[:, 2].mean():.1%} same digit), {len(test_pairs)} test")

    names, loss, (xa, xb, s) = build_main(BATCH_SIZE)
    mean_loss = F.mean(loss)
    solver = S.Adam(alpha=LEARNING_RATE)
    solver.set_parameters(nn.get_parameters())

    iter_per_epoch = -(-len(train_pairs) // BATCH_SIZE)
    stream = batches(len(train_pairs), BATCH_SIZE, np.random.RandomState(SEED))
    augment_rng = np.random.RandomState(SEED + 1)
    with Timer() as timer:
        for epoch in range(1, EPOCHS + 1):
            total = 0.0
            for it in range(1, iter_per_epoch + 1):
                rows = train_pairs[next(stream)]
                xa.d = shift(x_train[rows[:, 0]], augment_rng)
                xb.d = shift(x_train[rows[:, 1]], augment_rng)
                s.d = rows[:, 2:3]
                mean_loss.forward(clear_no_need_grad=True)
                solver.zero_grad()
                mean_loss.backward(clear_buffer=True)
                solver.update()
                total += float(mean_loss.d)
                if it % 100 == 0 or it == iter_per_epoch:
                    gallery, queries = embed_nnabla(x_train), embed_nnabla(x_test)
                    acc = float(np.mean(knn_predict(gallery, y_train, queries, K) == y_test))
                    print(f"epoch {epoch} iteration {it:4d}/{iter_per_epoch}  "
                          f"train loss {total / it:.4f}  test {K}-NN accuracy {acc:.2%}", flush=True)
    print(f"training took {timer.seconds:.1f} s ({EPOCHS} epochs x {iter_per_epoch} iterations, "
          f"batch {BATCH_SIZE} pairs; includes the progress evaluations)")

    val_names, val_loss, _ = build_main(BATCH_SIZE)
    run_names, run_y = build_runtime(BATCH_SIZE)
    data_map = {"Input": "x", "Input_2": "x2", "Input_3": "same"}
    contents = {
        "global_config": {"default_context": nn.get_current_context()},
        "training_config": {"max_epoch": EPOCHS, "iter_per_epoch": iter_per_epoch, "save_best": True},
        "networks": [
            {"name": "Main", "batch_size": BATCH_SIZE, "outputs": {"Add2": loss}, "names": names.variables},
            {"name": "MainValidation", "batch_size": BATCH_SIZE, "outputs": {"Add2": val_loss},
             "names": val_names.variables},
            {"name": "MainRuntime", "batch_size": BATCH_SIZE, "outputs": {"Affine_2": run_y},
             "names": run_names.variables},
        ],
        "datasets": [
            {"name": "Training", "uri": "data/train_pairs.csv", "variables": ["x", "x2", "same"],
             "shuffle": True, "batch_size": BATCH_SIZE, "no_image_normalization": False},
            {"name": "Validation", "uri": "data/test_pairs.csv", "variables": ["x", "x2", "same"],
             "shuffle": False, "batch_size": BATCH_SIZE, "no_image_normalization": False},
        ],
        "optimizers": [
            {"name": "Optimizer", "solver": solver, "network": "Main", "dataset": "Training",
             "weight_decay": 0, "lr_decay": 1, "lr_decay_interval": 1, "update_interval": 1,
             "data_variables": data_map, "loss_variables": ["Add2"]},
        ],
        "monitors": [
            {"name": "train_error", "network": "MainValidation", "dataset": "Training", "data_variables": data_map},
            {"name": "valid_error", "network": "MainValidation", "dataset": "Validation", "data_variables": data_map},
        ],
        "executors": [
            # nnabla's save reads the data-name mapping from the key "remp" (sic).
            {"name": "Executor", "network": "MainRuntime", "data": ["Input"], "output": ["Affine_2"],
             "remp": {"Input": "x", "Affine_2": "y'"}, "num_evaluations": 1, "repeat_evaluation_type": "mean"},
        ],
    }
    save_console_nnp(out, contents)
    print(f"saved {out}")


def _cells(csv_path: Path) -> list[str]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        return [r[0] for r in list(csv.reader(f))[1:]]


def nnabla_cli_embeddings(nnp: Path, dataset: Path) -> np.ndarray:
    """``nnabla_cli forward`` on an ``x:image,y:label`` CSV -> (N, 2) from the y'__0, y'__1 columns."""
    cli = Path(sys.executable).with_name("nnabla_cli")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(cli), "forward", "-c", str(nnp), "-d", str(dataset), "-o", tmp]
        print("$", " ".join(cmd))
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(Path(tmp) / "output_result.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    cols = [i for i, h in enumerate(rows[0]) if h.startswith("y'__")]
    return np.array([[float(r[i]) for i in cols] for r in rows[1:]])


def check_with_nnabla_cli(nnp: Path, plot: Path | None) -> float:
    _, gallery_labels = read_image_csv(DIGITS_DATA / "train.csv")
    _, test_labels = read_image_csv(DIGITS_DATA / "test.csv")
    gallery = nnabla_cli_embeddings(nnp, DIGITS_DATA / "train.csv")
    queries = nnabla_cli_embeddings(nnp, DIGITS_DATA / "test.csv")
    predicted = knn_predict(gallery, gallery_labels, queries, K)
    correct = int((predicted == test_labels).sum())
    acc = correct / len(queries)
    print(f"nnabla_cli forward: gallery {len(gallery)}, test {len(queries)}, {K}-NN accuracy {acc:.2%} "
          f"({correct}/{len(queries)})")
    if plot is not None:
        title = f"siamese.nnp via nnabla_cli forward: {K}-NN test accuracy {acc:.1%}"
        if plot_embedding(plot, gallery, gallery_labels, queries, test_labels, title):
            print(f"plot: {plot}")
    return acc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train sample_projects/siamese/siamese.nnp with nnabla.")
    ap.add_argument("--out", type=Path, default=HERE / "siamese.nnp")
    ap.add_argument("--plot", type=Path, default=HERE / "embedding.png")
    args = ap.parse_args(argv)
    train(args.out)
    acc = check_with_nnabla_cli(args.out, args.plot)
    return 0 if acc >= 0.90 else 1


if __name__ == "__main__":
    raise SystemExit(main())
