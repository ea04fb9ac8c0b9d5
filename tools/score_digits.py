"""Score generated digits with a small classifier trained here: no download
of a pretrained network, one number per property a reader compares.

    python tools/score_digits.py out/dcgan_digits/*                # run folders (test/samples.npy)
    python tools/score_digits.py samples.npy --dataset mnist --data-dir ../shared/datasets/mnist10k
    python tools/score_digits.py samples.npy --labels labels.npy   # conditional samples
    python tools/score_digits.py --dataset mnist                    # the classifier alone: accuracy, FD floor
    python tools/score_digits.py out/gan_digits/pytorch --json -   # JSON on stdout

The classifier is a small CNN (conv32-pool-conv64-pool-conv64 with batch
norm, a 128-unit hidden layer, 10 classes) trained with Adam on the
training split of the data set (MNIST or Fashion-MNIST, [0, 1] pixels),
once: it is cached in ``out/score_digits/<dataset>-<checksum>.pt``, keyed
by the data (both splits) and the training settings, so other data trains
another one.  On the MNIST subset: 98.05% test accuracy, ~1.5 minutes of
training on 2 cores.
Training is seeded (the same data gives the same classifier) and runs on the
CPU, so the numbers do not depend on the machine's accelerator.

What the numbers mean, for a set of generated images:

fd               Frechet distance between the classifier's 128 hidden features
                 of the samples and of the real test digits (lower is better;
                 Gaussian fit of each set: |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2)).
fd_floor         the same distance between the real test digits and the real
                 training digits: what real digits score, the practical
                 best (a smaller set scores a little worse: on the
                 8,000/2,000 MNIST subset the floor is 1.80, and 1,000
                 real training digits score 2.7).
class_entropy    entropy of the histogram of predicted classes over log(10):
                 1.0 = all ten classes equally often, 0 = one class only
                 (mode coverage).
mean_confidence  the mean of the classifier's top softmax probability: how
                 much the samples look like some digit at all.  Read it
                 with the FD: a classifier is confident on anything far
                 from its data (uniform noise gets 1.0 on MNIST).
label_accuracy   conditional samples only: how often the classifier sees
                 the class that was asked for.

A run folder is an answer's --out-dir: its test/samples.npy (uint8 NHWC
pixels 0..255, written by the GAN answers' test) is scored, with
test/labels.npy as the intended classes when present, on the data set and
data folder of its config.json.  A standalone .npy holds (N, 28, 28, 1) or
(N, 28, 28) images, uint8 0..255 or float in [0, 1]; 32x32 digits (the
WGANs' digits, padded by 2 pixels a side) are scored on their 28x28 centre.
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import runs  # noqa: E402
from common.batching import Minibatches  # noqa: E402
from common.datasets import PRETTY_NAMES, load_dataset  # noqa: E402
from common.errors import UsageError  # noqa: E402

DIGIT_DATASETS = ("mnist", "fashion_mnist")
NUM_CLASSES = 10
CACHE_DIR = ROOT / "out" / "score_digits"
# Bump when the network or its training changes: cached classifiers of an
# older version are then trained again instead of being reused.
CLASSIFIER_VERSION = 1
EPOCHS = 3
BATCH_SIZE = 64
LR = 1e-3
EVAL_BATCH = 500


# ===========================================================================
# The numbers (NumPy only)
# ===========================================================================
def feature_stats(features):
    """(mean, covariance) of (N, D) features, float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (N >= 2, D) features, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix):
    """Square root of a symmetric positive semi-definite matrix through eigh
    (eigenvalues that rounding made slightly negative count as 0)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Frechet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2):
    |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^1/2).

    S1 S2 is not symmetric, but it is similar to the symmetric positive
    semi-definite S1^1/2 S2 S1^1/2 (same eigenvalues), so the trace of its
    square root is the sum of the square roots of that matrix's eigenvalues.
    Both roots come from ``numpy.linalg.eigh`` on symmetric matrices, which
    is stable where a general matrix square root (scipy's sqrtm) can return
    complex noise for singular covariances."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    middle = (middle + middle.T) / 2
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum()
    distance = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root
    return max(float(distance), 0.0)


def class_entropy(predicted, num_classes=NUM_CLASSES):
    """Entropy of the histogram of predicted classes, over log(num_classes):
    1.0 when every class is predicted equally often, 0.0 for a single class."""
    counts = np.bincount(np.asarray(predicted, dtype=np.int64), minlength=num_classes)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum() / math.log(num_classes)) + 0.0   # + 0.0: one class gives 0.0, not -0.0


# ===========================================================================
# Inputs
# ===========================================================================
def as_unit_images(images, where="images"):
    """(N, 28, 28, 1) float32 in [0, 1] from uint8 0..255 or float [0, 1]
    images of shape (N, 28, 28, 1) or (N, 28, 28); 32x32 digits (the WGAN
    questions pad MNIST by 2 pixels a side) give their 28x28 centre;
    anything else is a one-line UsageError naming ``where``."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim == 4 and images.shape[1:] == (32, 32, 1):
        images = images[:, 2:30, 2:30]
    if images.ndim != 4 or images.shape[1:] != (28, 28, 1):
        raise UsageError(f"{where} has shape {images.shape}: expected 28x28 gray digits, (N, 28, 28, 1) or "
                         "(N, 28, 28), or 32x32 ones padded by 2 pixels")
    if len(images) < 2:
        raise UsageError(f"{where} holds {len(images)} image(s): a distance needs at least 2")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255)
    if not np.issubdtype(images.dtype, np.floating):
        raise UsageError(f"{where} holds {images.dtype}: expected uint8 pixels 0..255 or float in [0, 1]")
    if not np.isfinite(images).all():
        raise UsageError(f"{where} holds NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0.0 or hi > 1.0:
        hint = " (a [-1, 1] generator output: save (x + 1) / 2)" if lo >= -1.0 and hi <= 1.0 else ""
        raise UsageError(f"{where} holds values from {lo:.3g} to {hi:.3g}: expected float in [0, 1]{hint}")
    return images.astype(np.float32)


def as_labels(labels, n, where="labels"):
    """(N,) int64 class indices 0..9, or a one-line UsageError."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise UsageError(f"{where} has shape {labels.shape}: expected one label per image, ({n},)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"{where} holds {labels.dtype}: expected integer classes 0..{NUM_CLASSES - 1}")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise UsageError(f"{where} holds classes outside 0..{NUM_CLASSES - 1}")
    return labels.astype(np.int64)


def load_npy(path, what="samples file"):
    """An array from an .npy file, never unpickling (one line if it cannot)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist")
    with runs.reading(path, what):
        return np.load(path, allow_pickle=False)


def _resolve_data_dir(data_dir):
    """A run's recorded --data-dir: as written, else relative to the repository."""
    if data_dir is None or Path(data_dir).expanduser().is_dir():
        return data_dir
    inside = ROOT / data_dir
    return str(inside) if inside.is_dir() else data_dir


def run_inputs(run_dir):
    """(samples path, labels path or None, dataset, data_dir) of a run folder."""
    run_dir = Path(run_dir)
    samples = run_dir / "test" / "samples.npy"
    if not samples.is_file():
        raise UsageError(f"{run_dir} has no test/samples.npy: test the run first (its script with --test)")
    config_path = run_dir / "config.json"
    with runs.reading(config_path, "run settings"):
        config = runs.read_json(config_path) if config_path.is_file() else {}
    labels = run_dir / "test" / "labels.npy"
    return samples, labels if labels.is_file() else None, config.get("dataset"), config.get("data_dir")


# ===========================================================================
# The classifier (PyTorch, imported only when needed)
# ===========================================================================
def build_classifier():
    """conv32-pool-conv64-pool-conv64 (3x3, batch norm, ReLU), 128 hidden
    units (the features), 10 classes.  Measured on the 8,000/2,000-digit
    MNIST subset: batch norm lifts 3 epochs from 96.1% to 98.2% test
    accuracy; pooling after the first convolution makes a step 5x cheaper."""
    from torch import nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),    # 14x14
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),   # 7x7
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),                               # the features
        nn.Linear(128, NUM_CLASSES))


def data_checksum(*arrays):
    """sha256 over the arrays' shapes and bytes."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class DigitScorer:
    """A trained classifier and the statistics of the real digits it scores against."""

    def __init__(self, net, info):
        self.net, self.info = net, info
        self.test_mu = info["test_mu"].numpy()
        self.test_sigma = info["test_sigma"].numpy()

    @property
    def dataset(self):
        return self.info["dataset"]

    @property
    def test_accuracy(self):
        return float(self.info["test_accuracy"])

    @property
    def fd_floor(self):
        return float(self.info["fd_floor"])

    def features_and_probs(self, images):
        """(hidden features (N, 128), softmax (N, 10)) of [0, 1] NHWC images."""
        return _features_and_probs(self.net, images)

    def score(self, images, labels=None, where="images"):
        """The numbers of one sample set (see the module docstring)."""
        images = as_unit_images(images, where)
        if labels is not None:
            labels = as_labels(labels, len(images), f"the labels of {where}")
        features, probs = self.features_and_probs(images)
        predicted = probs.argmax(axis=1)
        result = {
            "dataset": self.dataset,
            "samples": int(len(images)),
            "fd": frechet_distance(*feature_stats(features), self.test_mu, self.test_sigma),
            "fd_floor": self.fd_floor,
            "class_entropy": class_entropy(predicted),
            "mean_confidence": float(probs.max(axis=1).mean()),
            "class_counts": np.bincount(predicted, minlength=NUM_CLASSES).tolist(),
            "classifier_accuracy": self.test_accuracy,
        }
        if labels is not None:
            result["label_accuracy"] = float((predicted == labels).mean())
        return result


def _features_and_probs(net, images):
    import torch
    net.eval()
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(images, np.float32).transpose(0, 3, 1, 2)))
    features, probs = [], []
    with torch.no_grad():
        for start in range(0, len(x), EVAL_BATCH):
            hidden = net[:-1](x[start:start + EVAL_BATCH])
            features.append(hidden.numpy().astype(np.float64))
            probs.append(torch.softmax(net[-1](hidden), dim=1).numpy().astype(np.float64))
    return np.concatenate(features), np.concatenate(probs)


def _train(train, test, dataset, epochs, seed, quiet):
    """Train the classifier; returns (net, info without the weights)."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm
    torch.manual_seed(seed)
    net = build_classifier()
    x = torch.from_numpy(np.ascontiguousarray(train.images.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(train.labels)
    batches = Minibatches(len(x), min(BATCH_SIZE, len(x)), np.random.default_rng(seed))
    steps = math.ceil(epochs * len(x) / batches.batch_size)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    # the learning rate falls linearly to 0 over the training
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    t0 = time.perf_counter()
    net.train()
    with tqdm(total=steps, desc=f"score_digits: training the {PRETTY_NAMES[dataset]} classifier", unit="step",
              disable=quiet, dynamic_ncols=True, mininterval=0.5, file=sys.stderr) as bar:
        for _ in range(steps):
            index = torch.from_numpy(next(batches))
            loss = F.cross_entropy(net(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    seconds = time.perf_counter() - t0
    train_features, _ = _features_and_probs(net, train.images)
    test_features, test_probs = _features_and_probs(net, test.images)
    test_mu, test_sigma = feature_stats(test_features)
    info = {
        "version": CLASSIFIER_VERSION, "dataset": dataset, "epochs": int(epochs), "seed": int(seed),
        "train_images": int(len(train)), "test_images": int(len(test)), "train_seconds": float(seconds),
        "test_accuracy": float((test_probs.argmax(axis=1) == test.labels).mean()),
        "fd_floor": frechet_distance(test_mu, test_sigma, *feature_stats(train_features)),
        "test_mu": torch.from_numpy(test_mu), "test_sigma": torch.from_numpy(test_sigma),
    }
    return net, info


def cache_path(dataset, checksum, cache_dir=None):
    return Path(cache_dir or CACHE_DIR) / f"{dataset}-{checksum[:16]}.pt"


def load_classifier(dataset="mnist", data_dir=None, *, cache_dir=None, epochs=None, seed=0, download=True,
                    quiet=False):
    """The classifier of ``dataset`` in ``data_dir`` (default: Dataset/<dataset>/,
    downloaded like the answer scripts do unless ``download`` is False):
    from the cache when one was trained on the same data with the same
    settings, else trained now and cached (``epochs``: EPOCHS unless given)."""
    import torch
    epochs = EPOCHS if epochs is None else int(epochs)
    if dataset not in DIGIT_DATASETS:
        raise UsageError(f"the scorer knows digits data sets only ({', '.join(DIGIT_DATASETS)}), not {dataset!r}")
    train = load_dataset(dataset, "train", data_dir=data_dir, value_range=(0.0, 1.0), download=download)
    test = load_dataset(dataset, "test", data_dir=data_dir, value_range=(0.0, 1.0), download=download)
    if train.images.shape[1:] != (28, 28, 1):
        raise UsageError(f"{PRETTY_NAMES[dataset]} in {data_dir} holds {train.images.shape[1:]} images, not 28x28x1")
    checksum = data_checksum(np.array([CLASSIFIER_VERSION, epochs, seed]), train.images, train.labels,
                             test.images, test.labels)
    path = cache_path(dataset, checksum, cache_dir)
    net = build_classifier()
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(saved.pop("state_dict"))
            if saved.get("checksum") == checksum:
                return DigitScorer(net, saved)
        except Exception as err:   # an unreadable cache file is trained again, not fatal
            print(f"score_digits: {path} cannot be loaded ({type(err).__name__}); training again", file=sys.stderr)
    net, info = _train(train, test, dataset, epochs, seed, quiet)
    info["checksum"] = checksum
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")   # two scorers training at once: the last wins
    try:
        torch.save({"state_dict": net.state_dict(), **info}, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return DigitScorer(net, info)


# ===========================================================================
# The API make_answers uses
# ===========================================================================
def score_images(images, labels=None, dataset="mnist", data_dir=None, *, scorer=None, where="images", **classifier):
    """Score NHWC images (uint8 0..255 or float [0, 1]), with their intended
    classes when conditional.  ``classifier``: load_classifier's options."""
    images = as_unit_images(images, where)   # bad input fails before any training
    scorer = scorer or load_classifier(dataset, data_dir, **classifier)
    return scorer.score(images, labels, where)


def score_run(run_dir, dataset=None, data_dir=None, **classifier):
    """Score a run folder's test/samples.npy (and test/labels.npy) on the
    data set of its config.json, unless ``dataset``/``data_dir`` are given."""
    samples, labels, run_dataset, run_data_dir = run_inputs(run_dir)
    if dataset is not None and run_dataset is not None and dataset != run_dataset:
        raise UsageError(f"{run_dir} was trained on {run_dataset}, not {dataset}")
    dataset = dataset or run_dataset or "mnist"
    if data_dir is None:
        data_dir = _resolve_data_dir(run_data_dir)
    images = load_npy(samples)
    return score_images(images, None if labels is None else load_npy(labels, "labels file"), dataset, data_dir,
                        where=str(samples), **classifier)


# ===========================================================================
# Command line
# ===========================================================================
def _table(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows)


def _describe(scorer):
    info = scorer.info
    return (f"classifier: {PRETTY_NAMES[scorer.dataset]}, {info['train_images']} training digits, "
            f"{info['epochs']} epochs ({info['train_seconds']:.0f} s to train); test accuracy "
            f"{100 * scorer.test_accuracy:.2f}% on {info['test_images']} test digits; FD floor (test vs "
            f"training digits) {scorer.fd_floor:.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="score_digits.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.error = lambda message: parser.exit(2, f"score_digits.py: error: {message} (see --help)\n")
    parser.add_argument("inputs", nargs="*", metavar="RUN_OR_NPY",
                        help="run folders (their test/samples.npy) or .npy files of images; none: only "
                             "train or load the classifier and report it")
    parser.add_argument("--dataset", choices=DIGIT_DATASETS, default=None,
                        help="the data set the classifier learns (default: a run's own, else mnist)")
    parser.add_argument("--data-dir", default=None,
                        help="folder of its IDX files (default: a run's own --data-dir, else "
                             "Dataset/<dataset>/, downloaded if missing as the answer scripts do)")
    parser.add_argument("--labels", metavar="FILE.npy",
                        help="the intended class of each image of a single .npy input (conditional samples)")
    parser.add_argument("--json", metavar="PATH",
                        help="also write the numbers as JSON to PATH ('-': print JSON instead of the table)")
    parser.add_argument("--cache-dir", default=None,
                        help=f"where trained classifiers are kept (default: {CACHE_DIR.relative_to(ROOT)}/)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"training epochs (default: {EPOCHS})")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        raise UsageError(f"--epochs must be positive, got {args.epochs}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.json not in (None, "-") and not Path(args.json).expanduser().parent.is_dir():
        raise UsageError(f"cannot write {args.json}: folder {Path(args.json).expanduser().parent} does not exist")
    if args.labels and (len(args.inputs) != 1 or Path(args.inputs[0]).is_dir()):
        raise UsageError("--labels goes with a single .npy input (a run folder has its own test/labels.npy)")

    # Read and check every input first: a wrong file fails before any training.
    jobs = []
    for name in args.inputs:
        if Path(name).is_dir():
            samples, labels, run_dataset, run_data_dir = run_inputs(name)
            if args.dataset and run_dataset and args.dataset != run_dataset:
                raise UsageError(f"{name} was trained on {run_dataset}, not {args.dataset}")
            dataset = args.dataset or run_dataset or "mnist"
            data_dir = args.data_dir or _resolve_data_dir(run_data_dir)
        else:
            samples, labels, dataset, data_dir = Path(name), args.labels, args.dataset or "mnist", args.data_dir
            if samples.suffix != ".npy":
                raise UsageError(f"{name} is neither a run folder nor an .npy file")
        if dataset not in DIGIT_DATASETS:
            raise UsageError(f"{name} was trained on {dataset}: the scorer knows {', '.join(DIGIT_DATASETS)}")
        images = as_unit_images(load_npy(samples), str(samples))
        if labels is not None:
            labels = as_labels(load_npy(labels, "labels file"), len(images), str(labels))
        jobs.append((name, images, labels, dataset, data_dir))
    if not jobs:
        jobs.append((None, None, None, args.dataset or "mnist", args.data_dir))

    scorers, results = {}, {}
    for name, images, labels, dataset, data_dir in jobs:
        key = (dataset, str(Path(data_dir).expanduser().resolve()) if data_dir else None)
        if key not in scorers:
            scorers[key] = load_classifier(dataset, data_dir, cache_dir=args.cache_dir, epochs=args.epochs,
                                           seed=args.seed, quiet=args.json == "-")
        if name is not None:
            results[name] = scorers[key].score(images, labels, name)

    output = {"classifiers": [{"dataset": s.dataset, "data_dir": key[1], "test_accuracy": s.test_accuracy,
                               "fd_floor": s.fd_floor, "train_images": s.info["train_images"],
                               "test_images": s.info["test_images"]} for key, s in scorers.items()],
              "scores": results}
    if args.json == "-":
        print(json.dumps(output, indent=2))
        return 0
    if args.json:
        try:
            runs.atomic_write_json(Path(args.json).expanduser(), output)
        except OSError as err:
            raise UsageError(f"cannot write {args.json} ({err.strerror or err})") from None
    for scorer in scorers.values():
        print(_describe(scorer))
    if results:
        rows = [("input", "samples", "FD", "floor", "entropy", "confidence", "label acc")]
        for name, r in results.items():
            rows.append((name, r["samples"], f"{r['fd']:.3f}", f"{r['fd_floor']:.3f}", f"{r['class_entropy']:.3f}",
                         f"{r['mean_confidence']:.3f}",
                         f"{100 * r['label_accuracy']:.1f}%" if "label_accuracy" in r else "-"))
        print()
        print(_table(rows))
    return 0


if __name__ == "__main__":
    from common.cli import run_main
    sys.exit(run_main(main))
