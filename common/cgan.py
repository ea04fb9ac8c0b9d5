"""Shared pieces of the Conditional GAN question (cgan): everything that is
not framework code.

NumPy in, NumPy out; no deep-learning framework is imported here.  The four
versions of cgan_<fw>.py draw their noise and their labels, and write their
pictures and numbers here, so with the same weights they make the same
pictures and the same numbers.  The GAN pieces that are the same as in the
unconditional questions (``ZSampler``, ``FIELDS``, ``plot_training``,
``dcgan_stages``, ``add_flags``) stay in ``common.gan``.

- the condition   ``one_hot`` (labels -> one-hot rows, what G and D take),
                  ``check_data`` (at least two classes), ``pick_classes``
                  (``--classes``), ``LabelSampler`` (the labels G is asked
                  for in training, with a JSON-able state)
- the CLI         ``add_flags`` (``--classes`` and the GAN flags),
                  ``default_iters`` (20000, 30000 for CIFAR-10)
- training        ``sample_conditions`` (the fixed z and labels of the
                  training sample grid), ``save_samples`` (that grid, one row
                  per class, and the progress picture)
- testing         ``test_conditions`` (the z and one-hot conditions of the
                  test pictures and of the scored samples), ``report_test``
                  (pictures, test/samples.npy, test/labels.npy, metrics.json),
                  ``nearest_mean_accuracy`` (a classifier-free check of the
                  condition)

Conditions are float32 rows of length n_classes: one-hot for a class, or a
mix of two one-hot rows for the interpolation between two classes.
Noise and labels come from NumPy PCG64 streams of one seed
(``common.gan.rng(seed, stream)``); the streams of this module (9..13) do not
collide with those of common/gan.py (1..8); the training z and the sample z
are gan's own ``TRAIN`` and ``SAMPLES`` streams.
"""
import argparse

import numpy as np

from common import gan, pictures, runs
from common.errors import UsageError

VALUE_RANGE = gan.VALUE_RANGE   # images in [-1, 1]: what the networks see and G's tanh makes
MIN_CLASSES = 2                 # a condition needs at least two classes

DEFAULT_ITERS = 20000           # the question's iterations (MNIST, Fashion-MNIST, newt photos) ...
DATASET_ITERS = {"cifar10": 30000}   # ... and per data set where it says otherwise

# Independent NumPy streams of one seed, identical in every framework.
SAMPLES = gan.SAMPLES      # 1: the fixed z of the training sample grid (columns)
TRAIN = gan.TRAIN          # 2: the z of every training step (gan.ZSampler)
FAKE_LABELS = 9            # the labels G is asked for in every training step (LabelSampler)
TEST_GRID = 10             # test/grid.png: a new z in every cell
TEST_STYLE = 11            # test/style.png: one z per column
TEST_INTERPOLATION = 12    # test/interpolation.png: one z per start class
TEST_SCORED = 13           # test/samples.npy: the images tools/score_digits.py scores

SAMPLE_COLUMNS = 8         # training sample grid: one row per class, the same 8 z in every row
PROGRESS_COLUMNS = 10      # progress.png: classes 0..9 (cycling when fewer), each with its column's z
GRID_COLUMNS = 10          # test/grid.png and test/style.png: 10 columns per class row
INTERPOLATION_STEPS = 10   # test/interpolation.png: condition (1 - t) onehot(a) + t onehot(b), 10 t in [0, 1]
SCORED_PER_CLASS = 100     # test/samples.npy: 100 images of every class (1000 for the 10-class sets)

GRID_PNG, STYLE_PNG, INTERPOLATION_PNG = "grid.png", "style.png", "interpolation.png"
SAMPLES_NPY, LABELS_NPY, METRICS_JSON = "samples.npy", "labels.npy", "metrics.json"


# ---------------------------------------------------------------------------
# The condition
# ---------------------------------------------------------------------------

def check_data(data, split="train"):
    """The number of classes of ``data`` (a common.datasets.ImageSet): a
    conditional GAN needs at least two, with labels among them."""
    n = int(data.num_classes)
    if n < MIN_CLASSES:
        names = ", ".join(data.class_names) or "none"
        raise UsageError(f"the {split} data has {n} class ({names}); a conditional GAN needs at least "
                         f"{MIN_CLASSES}: give --data-dir a folder with one sub-folder per class")
    labels = np.asarray(data.labels)
    if len(labels) and (labels.min() < 0 or labels.max() >= n):
        raise UsageError(f"the {split} labels fall outside the {n} classes 0..{n - 1}")
    return n


def pick_classes(classes, n_classes, dataset):
    """``--classes`` checked against the data: the classes the test pictures
    show, in the order given (default: all)."""
    if classes is None:
        return list(range(n_classes))
    outside = [c for c in classes if not 0 <= c < n_classes]
    if outside:
        raise UsageError(f"--classes {' '.join(map(str, outside))}: outside the {n_classes} classes of "
                         f"{dataset} (0..{n_classes - 1})")
    if len(set(classes)) != len(classes):
        raise UsageError(f"--classes {' '.join(map(str, classes))}: a class is named twice")
    return [int(c) for c in classes]


def check_class_names(meta, class_names):
    """The data's classes are those the checkpoint (its ``meta``) was trained on."""
    saved = meta.get("class_names")
    if saved is not None and list(saved) != list(class_names):
        raise UsageError(f"the checkpoint was trained on the classes {', '.join(map(str, saved))}, "
                         f"the data has {', '.join(class_names)}")


def one_hot(labels, n_classes):
    """int labels (N,) -> float32 (N, n_classes) rows with a 1 at the label:
    the condition G and D take."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise UsageError(f"labels outside the {n_classes} classes 0..{n_classes - 1}")
    out = np.zeros((len(labels), int(n_classes)), np.float32)
    out[np.arange(len(labels)), labels.astype(np.int64)] = 1.0
    return out


def wrong_labels(labels, n_classes):
    """Each label moved to the next class ((y + 1) mod n): real images with a
    wrong condition, to see whether D reads the condition."""
    return (np.asarray(labels, np.int64) + 1) % int(n_classes)


class LabelSampler:
    """The labels G is asked for in training: ``sampler(n)`` is (n,) int64,
    uniform over the classes (``Generator.integers(0, n_classes, n)``).

    One NumPy generator per run, seeded by ``(seed, FAKE_LABELS)``; its state
    is a JSON-able dict saved in every checkpoint, so a resumed run asks for
    the same labels as an uninterrupted one, in every framework."""

    def __init__(self, n_classes, seed, stream=FAKE_LABELS):
        self.n_classes = int(n_classes)
        self.rng = gan.rng(seed, stream)

    def __call__(self, n):
        return self.rng.integers(0, self.n_classes, int(n)).astype(np.int64)

    def state_dict(self):
        return {"n_classes": self.n_classes, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        if int(state["n_classes"]) != self.n_classes:
            raise UsageError(f"the saved labels are of {state['n_classes']} classes, this model has "
                             f"{self.n_classes}")
        self.rng.bit_generator.state = state["rng"]


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

def _class_index(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a class number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a class number is >= 0, got {value}")
    return value


def add_flags(group):
    """The CGAN's own flags (and the GAN flags ``--label-smoothing``,
    ``--z-dim``).  ``--iters`` is given the default None by the script and
    resolved per data set by ``default_iters``; its help says so here."""
    gan.add_flags(group)
    group.add_argument("--classes", type=_class_index, nargs="+", default=None, metavar="C",
                       help="the classes (numbers, 0 = the first) the test pictures show, one row each "
                            "(default: all)")
    for action in group._actions:          # the group shares the parser's actions
        if action.dest == "iters":
            action.help = (f"training iterations (default: {DEFAULT_ITERS}; "
                           + ", ".join(f"{v} for {k}" for k, v in DATASET_ITERS.items()) + ")")


def default_iters(args):
    """``args`` with ``--iters`` left out set to the question's count for its data set."""
    if args.iters is None:
        args.iters = DATASET_ITERS.get(args.dataset, DEFAULT_ITERS)
    return args


# ---------------------------------------------------------------------------
# Training pictures
# ---------------------------------------------------------------------------

def sample_conditions(n_classes, z_dim, seed):
    """The fixed input of the training sample grid: ``(z, conditions)``,
    n_classes * SAMPLE_COLUMNS rows, class-major (row r of the grid is class
    r), the same SAMPLE_COLUMNS z (stream SAMPLES) in every row."""
    z = gan.uniform_z(SAMPLE_COLUMNS, z_dim, seed, SAMPLES)
    labels = np.repeat(np.arange(n_classes), SAMPLE_COLUMNS)
    return np.tile(z, (n_classes, 1)), one_hot(labels, n_classes)


def save_samples(run, iteration, images, class_names, value_range=VALUE_RANGE):
    """After training iteration ``iteration``: ``samples/iter_NNNNNN.png``
    (``images`` from ``sample_conditions``: one row per class, labelled with
    its name; the same z down each column), the row of the progress picture
    (``samples/progress/iter_NNNNNN.png``: PROGRESS_COLUMNS images, column j
    of class j mod n_classes with z number j mod SAMPLE_COLUMNS, raw pixels)
    and ``progress.png`` assembled from the saved rows.  Returns the path of
    the sample grid."""
    n = len(class_names)
    images = np.asarray(images)
    h = images.shape[1]
    scale = max(1, 56 // h)
    rows = images.reshape(n, SAMPLE_COLUMNS, *images.shape[1:])
    path = pictures.save_strip(rows, run.sample_path(iteration), value_range=value_range, scale=scale,
                               rows_labels=class_names, title=f"iteration {iteration}")
    picked = np.stack([rows[j % n, j % SAMPLE_COLUMNS] for j in range(PROGRESS_COLUMNS)])
    row = pictures.make_grid(picked, nrow=PROGRESS_COLUMNS, padding=0, value_range=value_range)
    row_dir = run.samples / "progress"
    pictures.save_image(row, row_dir / f"iter_{iteration:06d}.png", value_range=value_range)
    pictures.save_progress(row_dir, run.root / gan.PROGRESS_PNG, PROGRESS_COLUMNS, images.shape[1:],
                           upto=iteration, limit=gan.PROGRESS_ROWS, scale=scale,
                           title=f"{run.question} ({run.framework}): classes "
                                 f"{', '.join(class_names[j % n] for j in range(min(n, PROGRESS_COLUMNS)))} "
                                 "through training")
    return path


# ---------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------

def test_conditions(n_classes, z_dim, seed, classes=None):
    """The inputs of the test, the same in every framework: a dict of
    ``(z, conditions)`` pairs (float32, conditions (N, n_classes)), rows
    class-major, for the R = len(classes) classes shown:

    ``grid``           (R * GRID_COLUMNS): a new z in every cell
    ``style``          (R * GRID_COLUMNS): one z per column, the same in every row
    ``interpolation``  (R * INTERPOLATION_STEPS): row i goes from class
                       classes[i] to classes[i + 1] (the last back to the
                       first), at one z per start class
    ``scored``         (n_classes * SCORED_PER_CLASS): every class, class-major;
                       ``scored_labels`` their labels

    The z of a class's row do not depend on ``--classes``: the grid draws
    the z of all classes and keeps the rows shown."""
    classes = list(range(n_classes)) if classes is None else [int(c) for c in classes]
    shown = np.asarray(classes, np.int64)
    grid_z = gan.uniform_z(n_classes * GRID_COLUMNS, z_dim, seed, TEST_GRID).reshape(n_classes, GRID_COLUMNS, -1)
    style_z = gan.uniform_z(GRID_COLUMNS, z_dim, seed, TEST_STYLE)
    interpolation_z = gan.uniform_z(n_classes, z_dim, seed, TEST_INTERPOLATION)
    t = np.linspace(0.0, 1.0, INTERPOLATION_STEPS)[:, None]
    ends = np.roll(shown, -1)
    mixes = [(1.0 - t) * one_hot([a] * INTERPOLATION_STEPS, n_classes) + t * one_hot([b] * INTERPOLATION_STEPS,
                                                                                      n_classes)
             for a, b in zip(shown, ends)]
    scored_labels = np.repeat(np.arange(n_classes), SCORED_PER_CLASS)
    rows = np.repeat(shown, GRID_COLUMNS)
    return {
        "classes": classes,
        "grid": (grid_z[shown].reshape(-1, z_dim), one_hot(rows, n_classes)),
        "style": (np.tile(style_z, (len(shown), 1)), one_hot(rows, n_classes)),
        "interpolation": (np.repeat(interpolation_z[shown], INTERPOLATION_STEPS, axis=0),
                          np.concatenate(mixes).astype(np.float32)),
        "scored": (gan.uniform_z(len(scored_labels), z_dim, seed, TEST_SCORED), one_hot(scored_labels, n_classes)),
        "scored_labels": scored_labels,
    }


def nearest_mean_accuracy(images, labels, reference_images, reference_labels, n_classes):
    """The fraction of ``images`` whose nearest class mean (Euclidean, over
    the pixels) among the means of ``reference_images`` is their ``labels``:
    a classifier-free check that the condition was learnt (chance is
    1 / n_classes; an ignored condition stays there).  None when a class has
    no reference image."""
    ref = np.asarray(reference_images, np.float64).reshape(len(reference_images), -1)
    ref_labels = np.asarray(reference_labels, np.int64)
    if len(np.unique(ref_labels)) < n_classes:
        return None
    means = np.stack([ref[ref_labels == c].mean(axis=0) for c in range(n_classes)])
    x = np.asarray(images, np.float64).reshape(len(images), -1)
    distances = (x * x).sum(1)[:, None] - 2.0 * x @ means.T + (means * means).sum(1)[None, :]
    return float((distances.argmin(axis=1) == np.asarray(labels, np.int64)).mean())


def report_test(run, class_names, conditions, images, test_images, test_labels, d_real, d_real_wrong, d_fake,
                value_range=VALUE_RANGE):
    """Write the answer pictures and numbers of the CGAN and print a summary.

    conditions    test_conditions(...)
    images        {"grid", "style", "interpolation", "scored"}: G's images
                  (NHWC, ``value_range``) for those conditions
    test_images, test_labels  the real test split (for the class means)
    d_real        D's logits of the real test images with their labels,
    d_real_wrong  ... with the wrong labels (wrong_labels), and
    d_fake        of the scored samples with the labels G was given

    Writes ``test/grid.png`` (rows: classes, columns: new z),
    ``test/style.png`` (the same z down each column), ``test/interpolation.png``
    (class a -> class b at fixed z), ``test/samples.npy`` (the scored images,
    uint8 NHWC), ``test/labels.npy`` (their intended classes, int64) and
    ``test/metrics.json``; returns the metrics."""
    test_dir = run.prepare_test()
    classes = conditions["classes"]
    names = [class_names[c] for c in classes]
    sample = np.asarray(images["grid"])
    shape = sample.shape[1:]
    scale = max(1, 56 // shape[0])
    what = f"{run.question} ({run.framework})"
    pictures.save_strip(sample.reshape(len(classes), GRID_COLUMNS, *shape), test_dir / GRID_PNG,
                        value_range=value_range, scale=scale, rows_labels=names,
                        title=f"{what}: G(z, class), a new z in every picture")
    pictures.save_strip(np.asarray(images["style"]).reshape(len(classes), GRID_COLUMNS, *shape),
                        test_dir / STYLE_PNG, value_range=value_range, scale=scale, rows_labels=names,
                        title=f"{what}: the same z down each column")
    ends = classes[1:] + classes[:1]
    pictures.save_strip(np.asarray(images["interpolation"]).reshape(len(classes), INTERPOLATION_STEPS, *shape),
                        test_dir / INTERPOLATION_PNG, value_range=value_range, scale=scale,
                        rows_labels=[f"{class_names[a]} → {class_names[b]}" for a, b in zip(classes, ends)],
                        title=f"{what}: from one class to the next in {INTERPOLATION_STEPS} steps, z fixed")
    scored, scored_labels = np.asarray(images["scored"]), np.asarray(conditions["scored_labels"], np.int64)
    runs.atomic_save_npy(test_dir / SAMPLES_NPY, pictures.to_uint8(scored, value_range))
    runs.atomic_save_npy(test_dir / LABELS_NPY, scored_labels)
    n = len(class_names)
    result = {
        "d_real_test": float(gan.sigmoid(d_real).mean()),
        "d_real_test_wrong_labels": float(gan.sigmoid(d_real_wrong).mean()),
        "d_fake_samples": float(gan.sigmoid(d_fake).mean()),
        "label_accuracy_nearest_mean": nearest_mean_accuracy(scored, scored_labels, test_images, test_labels, n),
        "label_accuracy_nearest_mean_real": nearest_mean_accuracy(test_images, test_labels, test_images,
                                                                  test_labels, n),
        "test_images": int(len(test_images)), "samples": int(len(scored)), "classes": n,
        "class_names": list(class_names), "rows": names,
    }
    runs.atomic_write_json(test_dir / METRICS_JSON, result)

    def percent(value):
        return "-" if value is None else f"{100 * value:.0f}%"
    print(f"{run.question} {run.framework}: mean D(real) {result['d_real_test']:.3f} with the right labels, "
          f"{result['d_real_test_wrong_labels']:.3f} with wrong ones, over {result['test_images']} test images; "
          f"mean D(G(z, y)) {result['d_fake_samples']:.3f} over {result['samples']} samples; nearest class mean "
          f"labels {percent(result['label_accuracy_nearest_mean'])} of the samples as asked "
          f"({percent(result['label_accuracy_nearest_mean_real'])} of the test images); pictures in {test_dir}")
    return result
