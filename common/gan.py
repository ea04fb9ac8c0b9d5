"""Shared pieces of the GAN questions (gan, dcgan): everything that is not
framework code.

NumPy in, NumPy out; no deep-learning framework is imported here.  The four
versions of each GAN script draw their noise, measure their discriminator,
write their metrics, plots and pictures, and format the result of the DCGAN
class API here, so with the same weights they produce the same numbers and
the same pictures:

- noise         ``uniform_z`` (a fixed, seeded batch), ``ZSampler`` (the
                training noise, with a JSON-able state), ``test_latents``
- pixels        ``to_model_range`` ([0, 1] or [0, 255] in, [-1, 1] out),
                ``to_pixels`` ([-1, 1] in, [0, 1] out), ``load_images``
- the network   ``dcgan_stages`` (how deep the DCGAN is for an image size)
- the CLI       ``add_flags`` (``--label-smoothing``, ``--z-dim``)
- measuring D   ``bce_with_logits``, ``d_measures``, ``g_loss``, ``sigmoid``
- training      ``FIELDS`` of metrics.csv,
                ``save_samples`` (sample grid + progress picture),
                ``plot_training`` (the three plots)
- class API     ``ClassAPI`` (its framework-neutral half: a script's GAN /
                DCGAN class adds build, step, forward, save and load weights),
                ``check_images``, ``check_labels``, ``check_label_smoothing``,
                ``History`` (per-epoch log and the result dictionary),
                ``variables`` / ``read_variables`` (the JSON variables file)
- testing       ``report_test`` (sample grid, interpolation strip, GIF),
                ``report_model_test`` (the same from a model with its checkpoint)

Noise: z ~ U(-1, 1) (DESIGN.md section 6), drawn as float64 by NumPy's
PCG64 and cast to float32, one independent stream per use (``SAMPLES``,
``TRAIN``, ...), so the four versions feed their generators the same z.
"""
import argparse
import datetime
import json
import math
import time
from pathlib import Path

import numpy as np

from common import batching, cli, datasets, pictures, runs
from common.errors import UsageError

Z_DIM = 100                   # the question's noise size (--z-dim)
VALUE_RANGE = (-1.0, 1.0)     # what the networks see and the generator's tanh makes
PIXEL_RANGE = (0.0, 1.0)      # what the class API's generate() returns

# Independent noise streams of one seed (numpy, identical in every framework).
SAMPLES = 1            # z_fixed_for_sample: the training sample grid and the progress picture
TRAIN = 2              # the z of every training step (and of generate_z / evaluate)
EVALUATE = 3           # the fixed z of the class API's per-epoch measurements
TEST_SAMPLES = 4       # test/samples.png
TEST_INTERPOLATION = 5  # test/interpolation.png: the two ends
TEST_MORPH = 6         # test/morph.gif: the start of each great circle and its direction
BATCHES = 7            # the minibatch order of the class API's train()

SAMPLE_COUNT = 64      # images in z_fixed_for_sample (an 8 x 8 grid)
PROGRESS_COLUMNS = 8   # the first 8 fixed z are the columns of progress.png
PROGRESS_ROWS = 10     # at most this many training checkpoints as its rows
TEST_SAMPLE_COUNT = 64
INTERPOLATION_STEPS = 10
MORPH_PATHS = 9        # test/morph.gif shows a 3 x 3 grid, ...
MORPH_FRAMES = 24      # ... each image going once round its great circle
EVAL_COUNT = 1000      # real images (and as many z) measured after each epoch of DCGAN.train
CLASS_SAMPLE_COUNT = 32  # images shown every sample_img_interval epochs by DCGAN.train

# metrics.csv (runs.Progress adds iteration first and sec_per_iter last)
FIELDS = ["d_loss", "g_loss", "d_accuracy", "d_real", "d_fake"]
FIELD_HELP = {
    "d_loss": "discriminator loss: mean binary cross-entropy over the real and the fake batch",
    "g_loss": "generator loss: binary cross-entropy of D(G(z)) against the label 'real' (non-saturating)",
    "d_accuracy": "fraction of the real and fake images that D put on the right side of 0.5",
    "d_real": "mean D(real images), the probability D gives the real batch",
    "d_fake": "mean D(G(z)), the probability D gives the fake batch",
}
LOSSES_PNG, ACCURACY_PNG, PROBABILITIES_PNG, PROGRESS_PNG = (
    "losses.png", "d_accuracy.png", "d_probabilities.png", "progress.png")
PLOT_SMOOTH = 10       # plots draw the raw curve faded under its trailing mean of 10 rows

# The DCGAN doubles the image size at every stride-2 stage.  It uses as many
# stages as the image size allows, at most MAX_STAGES, keeping the first
# feature map at least MIN_START pixels: 64x64 -> 4 (from 4x4), 32x32 -> 3
# (from 4x4), 28x28 -> 2 (from 7x7).
MAX_STAGES = 4
MIN_START = 4

# The class API's variables file (JSON, never pickle)
VARIABLES_FORMAT = 1


# ---------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------

def rng(seed, stream):
    """The NumPy generator of stream ``stream`` of ``seed``."""
    seq = np.random.SeedSequence(entropy=abs(int(seed)), spawn_key=(int(stream), int(seed < 0)))
    return np.random.default_rng(seq)


def _uniform(rng, n, dim):
    return rng.uniform(-1.0, 1.0, (int(n), int(dim))).astype(np.float32)


def uniform_z(n, dim, seed, stream):
    """(n, dim) float32 draws of U(-1, 1) from a NumPy generator seeded by
    ``(seed, stream)``: the same numbers in every framework."""
    return _uniform(rng(seed, stream), n, dim)


class ZSampler:
    """The training noise: ``sampler(n)`` is (n, z_dim) float32 U(-1, 1).

    One NumPy generator per run, seeded by ``(seed, TRAIN)``; its state is a
    JSON-able dict (``state_dict``), saved in every checkpoint, so a resumed
    run draws the same z as an uninterrupted one, in every framework."""

    def __init__(self, z_dim, seed, stream=TRAIN):
        self.z_dim = int(z_dim)
        self.rng = rng(seed, stream)

    def __call__(self, n):
        return _uniform(self.rng, n, self.z_dim)

    def state_dict(self):
        return {"z_dim": self.z_dim, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        if int(state["z_dim"]) != self.z_dim:
            raise UsageError(f"the saved noise has z_dim {state['z_dim']}, this model {self.z_dim}")
        self.rng.bit_generator.state = state["rng"]


def test_latents(z_dim, seed):
    """The z of the test pictures, the same in every framework:

    ``samples``      (TEST_SAMPLE_COUNT, z_dim)  test/samples.png
    ``linear``       (INTERPOLATION_STEPS, z_dim) straight line z0 -> z1
    ``spherical``    (INTERPOLATION_STEPS, z_dim) slerp z0 -> z1 (same ends)
    ``morph``        (MORPH_FRAMES, MORPH_PATHS, z_dim): frame t of path p is
                     the point 2*pi*t/MORPH_FRAMES round the great circle
                     through a_p and the direction of b_p, at the norm of a_p
    """
    ends = uniform_z(2, z_dim, seed, TEST_INTERPOLATION).astype(np.float64)
    starts = uniform_z(2 * MORPH_PATHS, z_dim, seed, TEST_MORPH).astype(np.float64)
    morph = np.stack([pictures.great_circle(starts[2 * p], starts[2 * p + 1], MORPH_FRAMES)
                      for p in range(MORPH_PATHS)], axis=1)
    return {
        "samples": uniform_z(TEST_SAMPLE_COUNT, z_dim, seed, TEST_SAMPLES),
        "linear": pictures.lerp(ends[0], ends[1], INTERPOLATION_STEPS).astype(np.float32),
        "spherical": pictures.slerp(ends[0], ends[1], INTERPOLATION_STEPS).astype(np.float32),
        "morph": morph.astype(np.float32),
    }


# ---------------------------------------------------------------------------
# Pixels and data
# ---------------------------------------------------------------------------

def to_model_range(images, img_shape=None, name="imgs"):
    """Pixels in [0, 1] or [0, 255] (NHWC) -> float32 in [-1, 1].

    uint8 arrays, and float arrays whose maximum is above 1, are taken as
    0..255; other arrays as 0..1.  ``img_shape`` (H, W, C), if given, must
    match; an (N, H, W) array of a one-channel shape gets its channel axis."""
    a = check_images(images, img_shape, name)
    if a.dtype == np.uint8 or float(a.max()) > 1.0:
        a = a.astype(np.float32) / 255.0
    if float(a.min()) < 0.0 or float(a.max()) > 1.0:
        raise UsageError(f"{name}: pixel values must lie in [0, 1] or [0, 255], "
                         f"got [{float(a.min()):g}, {float(a.max()):g}]")
    return (a.astype(np.float32) * 2.0 - 1.0).astype(np.float32)


def to_pixels(images):
    """The generator's [-1, 1] output -> float32 pixels in [0, 1] (clipped)."""
    return np.clip((np.asarray(images, np.float32) + 1.0) * 0.5, 0.0, 1.0).astype(np.float32)


def check_images(images, img_shape=None, name="imgs"):
    """A finite NHWC array (N >= 1) of the instance's ``img_shape``."""
    a = np.asarray(images)
    if img_shape is not None and a.ndim == 3 and len(img_shape) == 3 and img_shape[2] == 1:
        a = a[..., None]
    if a.ndim != 4 or a.shape[0] == 0:
        raise UsageError(f"{name} must be a non-empty (N, H, W, C) array, got shape {a.shape}")
    if img_shape is not None and tuple(a.shape[1:]) != tuple(img_shape):
        raise UsageError(f"{name} has images of shape {tuple(a.shape[1:])}, this model makes "
                         f"{tuple(img_shape)}")
    if a.dtype != np.uint8 and not np.isfinite(a).all():
        raise UsageError(f"{name} holds NaN or infinite values")
    return a


def check_z(z, z_dim):
    z = np.asarray(z, np.float32)
    if z.ndim != 2 or z.shape[1] != int(z_dim) or z.shape[0] == 0:
        raise UsageError(f"z must be a non-empty (N, {z_dim}) array, got shape {z.shape}")
    return z


def check_labels(labels, n):
    """(N, 1) or (N,) labels of 0 (fake) and 1 (real) -> float32 (N,)."""
    y = np.asarray(labels, np.float32).reshape(-1)
    if y.shape[0] != n:
        raise UsageError(f"{y.shape[0]} labels for {n} images")
    if not np.isin(y, (0.0, 1.0)).all():
        raise UsageError("labels must be 1 (real) or 0 (fake)")
    return y


def check_positive_int(value, name):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise UsageError(f"{name} must be a positive whole number, got {value!r}")
    return int(value)


def check_label_smoothing(eps):
    eps = float(eps)
    if not 0.0 <= eps < 0.5:
        raise UsageError(f"label smoothing must be in [0, 0.5) (real labels 1-EPS, fake labels EPS), got {eps:g}")
    return eps


def load_images(args, split, value_range=VALUE_RANGE):
    """The ``split`` of ``args.dataset`` (float32 NHWC in ``value_range``):
    the newt photos at 64x64, the other sets at their native size (MNIST
    and Fashion-MNIST 28x28x1, CIFAR-10 32x32x3)."""
    size = (64, 64) if args.dataset == "imori" else None
    return datasets.load_dataset(args.dataset, split, data_dir=args.data_dir, size=size,
                                 value_range=value_range)


# ---------------------------------------------------------------------------
# The DCGAN's depth
# ---------------------------------------------------------------------------

def dcgan_stages(image_shape):
    """``(k, (h0, w0))``: the number of stride-2 stages of the DCGAN for
    images of ``image_shape`` (H, W, C), and the size of the generator's
    first feature map, H / 2^k x W / 2^k.

    k is the largest number up to MAX_STAGES (4) for which H and W divide by
    2^k and the first map keeps at least MIN_START (4) pixels a side:
    64x64 -> k = 4 (4x4), 32x32 -> 3 (4x4), 28x28 -> 2 (7x7).  A script
    takes its first k widths from the top of the question's table."""
    h, w = int(image_shape[0]), int(image_shape[1])
    for k in range(MAX_STAGES, 0, -1):
        if h % 2 ** k == 0 and w % 2 ** k == 0 and min(h, w) // 2 ** k >= MIN_START:
            return k, (h // 2 ** k, w // 2 ** k)
    raise UsageError(f"the DCGAN needs an image size divisible by 2 with at least {2 * MIN_START} pixels "
                     f"a side, got {h}x{w}")


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

def _label_smoothing(text):
    try:
        return check_label_smoothing(float(text))
    except (ValueError, UsageError) as err:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 0.5), got {text!r}") from err


def add_flags(group):
    """The GAN questions' own flags."""
    group.add_argument("--label-smoothing", type=_label_smoothing, default=0.0, metavar="EPS",
                       help="train D on real labels 1-EPS and fake labels EPS (0: plain 1 and 0)")
    group.add_argument("--z-dim", type=cli.positive_int, default=Z_DIM, help="size of the noise z ~ U(-1, 1)")


# ---------------------------------------------------------------------------
# Measuring D (NumPy, the same formulas in every framework)
# ---------------------------------------------------------------------------

def sigmoid(logits):
    """1 / (1 + exp(-x)), written with tanh so that it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, np.float64)))


def bce_with_logits(logits, targets):
    """Per-sample binary cross-entropy of ``targets`` and sigmoid(``logits``),
    max(l, 0) - t * l + log(1 + exp(-|l|)): exact where the sigmoid rounds
    to 0 or 1 (the frameworks' *_with_logits losses compute the same)."""
    x = np.asarray(logits, np.float64).reshape(-1)
    t = np.broadcast_to(np.asarray(targets, np.float64).reshape(-1), x.shape)
    return np.maximum(x, 0.0) - t * x + np.log1p(np.exp(-np.abs(x)))


def d_measures(logits_real, logits_fake):
    """What D makes of a real and a fake batch (labels 1 and 0, unsmoothed):
    {d_loss, d_accuracy, g_loss, d_real, d_fake}, as floats."""
    real = np.asarray(logits_real, np.float64).reshape(-1)
    fake = np.asarray(logits_fake, np.float64).reshape(-1)
    d_loss = float(np.concatenate([bce_with_logits(real, 1.0), bce_with_logits(fake, 0.0)]).mean())
    d_accuracy = float(np.concatenate([real > 0.0, fake <= 0.0]).mean())   # D(x) > 0.5 <=> logit > 0
    return {"d_loss": d_loss, "d_accuracy": d_accuracy, "g_loss": g_loss(fake),
            "d_real": float(sigmoid(real).mean()), "d_fake": float(sigmoid(fake).mean())}


def g_loss(logits_fake):
    """The non-saturating generator loss -mean(log D(G(z)))."""
    return float(bce_with_logits(logits_fake, 1.0).mean())


def evaluate_logits(logits, labels, logits_fake):
    """The class API's evaluate(): (d_loss, d_accuracy, g_loss) for D's
    ``logits`` of images with ``labels`` (1 real, 0 fake) and D's logits of
    freshly generated images."""
    x = np.asarray(logits, np.float64).reshape(-1)
    y = np.asarray(labels, np.float64).reshape(-1)
    d_loss = float(bce_with_logits(x, y).mean())
    d_accuracy = float(((x > 0.0) == (y > 0.5)).mean())
    return d_loss, d_accuracy, g_loss(logits_fake)


# ---------------------------------------------------------------------------
# Training pictures and plots
# ---------------------------------------------------------------------------

def _progress_dir(run):
    return run.samples / "progress"


def save_samples(run, iteration, images, value_range=PIXEL_RANGE):
    """After training iteration ``iteration``: ``samples/iter_NNNNNN.png``
    (the grid of the images made from z_fixed_for_sample), the row of the
    progress picture (``samples/progress/iter_NNNNNN.png``, raw pixels of
    the first PROGRESS_COLUMNS images) and ``progress.png`` assembled from
    the saved rows (rows: training iterations, at most PROGRESS_ROWS evenly
    spread ones including the first and the last; columns: the same fixed
    z).  Returns the path of the sample grid."""
    images = np.asarray(images)
    h = images.shape[1]
    path = pictures.save_grid(images, run.sample_path(iteration), nrow=8, value_range=value_range,
                              scale=max(1, 56 // h), title=f"iteration {iteration}")
    row = pictures.make_grid(images[:PROGRESS_COLUMNS], nrow=PROGRESS_COLUMNS, padding=0,
                             value_range=value_range)
    pictures.save_image(row, _progress_dir(run) / f"iter_{iteration:06d}.png", value_range=value_range)
    save_progress(run, iteration, columns=min(PROGRESS_COLUMNS, len(images)), image_shape=images.shape[1:])
    return path


def _read_row(path, columns, image_shape):
    import cv2
    data = np.fromfile(str(path), np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    if img.ndim == 2:
        img = img[..., None]
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    h, w, c = image_shape
    if img.shape != (h, w * columns, c):
        return None
    return img.reshape(h, columns, w, c).transpose(1, 0, 2, 3)


def pick_rows(iterations, limit=PROGRESS_ROWS):
    """At most ``limit`` of the sorted ``iterations``, evenly spread, always
    with the first and the last."""
    iterations = sorted(iterations)
    if len(iterations) <= limit:
        return iterations
    idx = np.unique(np.round(np.linspace(0, len(iterations) - 1, limit)).astype(int))
    return [iterations[i] for i in idx]


def save_progress(run, iteration, columns, image_shape):
    """``progress.png`` from the saved rows up to ``iteration``."""
    rows = {}
    for path in _progress_dir(run).glob("iter_*.png"):
        it = int(path.stem.split("_")[1])
        if it <= iteration:
            row = _read_row(path, columns, image_shape)
            if row is not None:
                rows[it] = row
    chosen = pick_rows(rows)
    if not chosen:
        return None
    h = image_shape[0]
    return pictures.save_strip(np.stack([rows[it] for it in chosen]), run.root / PROGRESS_PNG,
                               scale=max(1, 56 // h), rows_labels=[f"iteration {it}" for it in chosen],
                               title=f"{run.question} ({run.framework}): the same {columns} z through training")


def _trailing_mean(y, window):
    c = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def _plot(data, path, columns, title, ylabel, ylim=None, hline=None, smooth=PLOT_SMOOTH):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=pictures.DPI, layout="constrained")
    ax = fig.add_subplot()
    for k, (name, label) in enumerate(columns):
        xs, ys = data["iteration"], data[name]
        ok = np.isfinite(xs) & np.isfinite(ys)
        xs, ys = xs[ok], ys[ok]
        color = f"C{k}"
        if smooth > 1 and len(ys) > smooth:
            ax.plot(xs, ys, color=color, alpha=0.25, linewidth=1)
            ax.plot(xs, _trailing_mean(ys, smooth), color=color, linewidth=1.5,
                    label=f"{label} (mean of {smooth} rows)")
        else:
            ax.plot(xs, ys, color=color, linewidth=1.5, marker="." if len(ys) < 20 else None, label=label)
    if hline is not None:
        ax.axhline(hline, color="0.5", linewidth=0.8, linestyle="--")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=pictures.DPI, facecolor="white")
    return path


def plot_training(run):
    """The three plots of metrics.csv: ``losses.png`` (d_loss, g_loss),
    ``d_accuracy.png`` and ``d_probabilities.png`` (mean D(real) against
    mean D(fake)).  Returns their paths."""
    data = pictures.read_metrics(run.metrics_path)
    what = f"{run.question} ({run.framework})"
    return [
        _plot(data, run.root / LOSSES_PNG, [("d_loss", "D loss"), ("g_loss", "G loss")],
              f"{what}: losses", "binary cross-entropy"),
        _plot(data, run.root / ACCURACY_PNG, [("d_accuracy", "D accuracy")],
              f"{what}: discriminator accuracy", "accuracy (threshold 0.5)", ylim=(-0.02, 1.02), hline=0.5),
        _plot(data, run.root / PROBABILITIES_PNG, [("d_real", "mean D(real)"), ("d_fake", "mean D(fake)")],
              f"{what}: D(real) vs D(fake)", "probability of 'real'", ylim=(-0.02, 1.02), hline=0.5),
    ]


# ---------------------------------------------------------------------------
# The class API: per-epoch log and the result dictionary
# ---------------------------------------------------------------------------

def format_duration(seconds):
    """'2 hours 5 minutes 35 seconds' (units that are zero are left out,
    except seconds when everything is zero)."""
    total = int(round(float(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v} {unit}{'' if v == 1 else 's'}" for v, unit in
             ((hours, "hour"), (minutes, "minute"), (secs, "second")) if v]
    return " ".join(parts) if parts else "0 seconds"


class History:
    """The per-epoch record of DCGAN.train and its result dictionary.

    ``add`` takes the measurements made after an epoch (``d_measures`` of
    the fixed real images and of the images generated from the fixed z),
    prints them and keeps them; ``result`` returns the dictionary of the
    original class API."""

    def __init__(self, name, epochs, batch_size, ls_epsilon, verbose=True):
        self.name, self.epochs, self.batch_size, self.ls_epsilon = name, int(epochs), int(batch_size), float(ls_epsilon)
        self.verbose = verbose
        self.rows = []
        self.start = time.perf_counter()

    def add(self, epoch, iterations, measures, seconds, n_real, n_fake):
        self.rows.append({**measures, "seconds": float(seconds)})
        if self.verbose:
            print(f"Epoch: {epoch}\n"
                  f" iteration count: {iterations}\n"
                  f" g_loss_epoch: {measures['g_loss']}\n"
                  f" d_loss_epoch: {measures['d_loss']}\n"
                  f" d_accuracy_epoch: {measures['d_accuracy']}\n"
                  f" D took the {n_fake} fake images for real with mean probability {measures['d_fake']:.6g}\n"
                  f" D took the {n_real} real images for real with mean probability {measures['d_real']:.6g}\n"
                  f" Processing time (seconds): {seconds:.0f}\n"
                  f" Time: {datetime.datetime.now():%H:%M:%S}", flush=True)

    def result(self):
        total = time.perf_counter() - self.start
        col = {k: [r[k] for r in self.rows] for k in ("d_loss", "d_accuracy", "g_loss", "d_real", "d_fake", "seconds")}
        return {
            "name": self.name,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "ls_epsilon": self.ls_epsilon,
            "d_loss_epochs": col["d_loss"],
            "d_accuracy_epochs": col["d_accuracy"],
            "d_acuracy_epochs": col["d_accuracy"],   # the original's spelling, kept so its code runs
            "g_loss_epochs": col["g_loss"],
            "probs_real_epochs": col["d_real"],
            "probs_fake_epochs": col["d_fake"],
            "processing_time_epochs": col["seconds"],
            "processing_time_total": format_duration(total),
            "processing_time_total_td": datetime.timedelta(seconds=total),
        }


RESULT_KEYS = ("name", "epochs", "batch_size", "ls_epsilon", "d_loss_epochs", "d_accuracy_epochs",
               "d_acuracy_epochs", "g_loss_epochs", "probs_real_epochs", "probs_fake_epochs",
               "processing_time_epochs", "processing_time_total", "processing_time_total_td")


def file_names(name, g_file_name, d_file_name, val_file_name, weights_suffix):
    """save_me's file names: empty names default to <name>_g, <name>_d,
    <name>_val; a name that does not end in the framework's weight suffix
    (``weights_suffix``; .json for the variables) gets it appended, so a
    model name with a dot ("dcgan_0.1") still gets its suffix."""
    def pick(given, default, suffix):
        given = str(given or default)
        return given if given.endswith(suffix) else given + suffix
    return (pick(g_file_name, f"{name}_g", weights_suffix), pick(d_file_name, f"{name}_d", weights_suffix),
            pick(val_file_name, f"{name}_val", ".json"))


def variables(question, framework, name, z_dim, img_shape, z_fixed_for_sample):
    """The JSON variables file of save_me."""
    return {"format": VARIABLES_FORMAT, "question": question, "framework": framework, "name": str(name),
            "z_dim": int(z_dim), "img_shape": [int(v) for v in img_shape],
            "z_fixed_for_sample": np.asarray(z_fixed_for_sample, np.float32).tolist()}


def write_variables(path, values):
    return runs.atomic_write_json(path, values)


def read_variables(path, question, framework, weights_suffix=None):
    """Read and check a variables file written by ``save_me`` of the same
    question and framework.  Returns ``(name, z_dim, img_shape, z_fixed)``."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"variables file {path} does not exist") from None
    except (OSError, ValueError):
        raise UsageError(f"{path} is not a variables file written by save_me (not JSON)") from None
    if not isinstance(values, dict) or "z_dim" not in values or "img_shape" not in values:
        raise UsageError(f"{path} is not a variables file written by save_me")
    if values.get("question") != question:
        raise UsageError(f"{path} belongs to question '{values.get('question')}', not '{question}'")
    if values.get("framework") != framework:
        raise UsageError(f"{path} was written by the {values.get('framework')} version; load it with "
                         f"scripts_{values.get('framework')}/{question}_{values.get('framework')}.py")
    z_fixed = np.asarray(values["z_fixed_for_sample"], np.float32)
    return str(values["name"]), int(values["z_dim"]), tuple(int(v) for v in values["img_shape"]), z_fixed


def epoch_iterations(n, batch_size):
    """Iterations of one epoch: every image once (the last batch is
    completed with the next epoch's first images, see common.batching)."""
    return max(1, math.ceil(int(n) / int(batch_size)))


# ---------------------------------------------------------------------------
# The test pictures
# ---------------------------------------------------------------------------

def report_test(run, samples, linear, spherical, morph, d_real, d_fake, value_range=PIXEL_RANGE):
    """Write the answer pictures of a GAN and print a summary.

    samples    (N, H, W, C) images from test_latents()["samples"]
    linear, spherical  (S, H, W, C) the interpolation between the same two z
    morph      (T, P, H, W, C) frame t of each of the P great circles
    d_real, d_fake  D's probabilities of the real test images and of samples

    Writes ``test/samples.png``, ``test/interpolation.png`` (rows: linear,
    spherical), ``test/morph.gif`` (T frames, each a grid of the P images)
    and ``test/metrics.json``; returns the metrics."""
    test_dir = run.prepare_test()
    h = samples.shape[1]
    scale = max(1, 56 // h)
    nrow = int(math.ceil(math.sqrt(len(samples))))
    pictures.save_grid(samples, test_dir / "samples.png", nrow=nrow, value_range=value_range, scale=scale,
                       title=f"{run.question} ({run.framework}): G(z), z ~ U(-1, 1)")
    pictures.save_strip(np.stack([linear, spherical]), test_dir / "interpolation.png", value_range=value_range,
                        scale=scale, rows_labels=["linear", "spherical"],
                        title=f"from z0 to z1 in {linear.shape[0]} steps ({run.framework})")
    side = int(math.ceil(math.sqrt(morph.shape[1])))
    frames = np.stack([pictures.make_grid(frame, nrow=side, value_range=value_range) for frame in morph])
    pictures.save_gif(frames, test_dir / "morph.gif", fps=8, scale=max(1, 2 * scale))
    result = {"d_real_test": float(np.mean(d_real)), "d_fake_samples": float(np.mean(d_fake)),
              "test_images": int(np.size(d_real)), "samples": int(len(samples)),
              "interpolation_steps": int(linear.shape[0]), "morph_frames": int(morph.shape[0]),
              "morph_paths": int(morph.shape[1])}
    runs.atomic_write_json(test_dir / "metrics.json", result)
    print(f"{run.question} {run.framework}: mean D(real) {result['d_real_test']:.3f} over "
          f"{result['test_images']} test images, mean D(G(z)) {result['d_fake_samples']:.3f} over "
          f"{result['samples']} samples; pictures in {test_dir}")
    return result


# ---------------------------------------------------------------------------
# The class API's framework-neutral half
# ---------------------------------------------------------------------------

class ClassAPI:
    """The DCGAN class API of the reference document (dcgan_keras_class_api.md)
    on NumPy NHWC arrays, less its framework code.

    ``DCGAN(name, z_dim=100, img_shape=(28, 28, 1))``; images given to it
    are pixels in [0, 1] or [0, 255] (NHWC), images it returns are pixels
    in [0, 1]; noise is z ~ U(-1, 1) (DESIGN.md; the original drew N(0, 1)).
    Keyword-only extras: ``seed`` (weights, z_fixed_for_sample and every z
    it draws) and ``lr``.  Here: the properties, generate_z, train (the
    epochs, their measurements and the result dictionary), generate,
    discriminate, evaluate, the file names and the JSON variables file of
    save_me / change_me, the input checks.

    A framework's class sets QUESTION, FRAMEWORK and WEIGHTS_SUFFIX and
    writes only framework code:

    ``_build_networks(z_dim, img_shape)``  the networks and their optimizers
    ``_step(real_images, z, ls_epsilon)``  one training iteration on NHWC
                                           NumPy arrays -> dict of FIELDS
    ``_generate_batch(z)``                 G(z) in inference mode, NHWC in [-1, 1]
    ``_discriminate_batch(images)``        D's logits (N, 1) in inference mode
    ``_save_weights(g_path, d_path)``      G's and D's weights, its own format
    ``_read_weights(path)``                one weights file (before the rebuild)
    ``_load_weights(g_state, d_state)``    into the rebuilt networks; a
                                           KeyError / ValueError / RuntimeError
                                           means they do not fit"""

    QUESTION = FRAMEWORK = WEIGHTS_SUFFIX = None
    BATCH = 256            # inference batch of generator_output / discriminator_logits

    def __init__(self, name, z_dim=Z_DIM, img_shape=(28, 28, 1), *, seed=0, lr=2e-4):
        self._name, self._seed, self._lr, self._iterations = str(name), int(seed), float(lr), 0
        self._build(int(z_dim), tuple(int(v) for v in img_shape))

    def _build(self, z_dim, img_shape):
        if len(img_shape) != 3 or min(img_shape) < 1:
            raise UsageError(f"img_shape must be (H, W, C), got {img_shape}")
        self._z_dim, self._img_shape = z_dim, img_shape
        self._build_networks(z_dim, img_shape)
        self.z_sampler = ZSampler(z_dim, self._seed)
        self._batch_rng = rng(self._seed, BATCHES)
        self._z_fixed = uniform_z(SAMPLE_COUNT, z_dim, self._seed, SAMPLES)

    @property
    def img_shape(self):
        return self._img_shape

    @property
    def z_dim(self):
        return self._z_dim

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, value):
        self._name = str(value)

    @property
    def z_fixed_for_sample(self):
        """The fixed z of the training sample pictures (a copy)."""
        return self._z_fixed.copy()

    def generate_z(self, len_z):
        """(len_z, z_dim) float32 z ~ U(-1, 1), from the instance's generator."""
        return self.z_sampler(len_z)

    def train_step(self, real_images, z, ls_epsilon=0.0):
        """One iteration (one D update, one G update) on ``real_images``
        (NHWC, already in [-1, 1]) and ``z``; returns the metrics dict."""
        values = self._step(np.asarray(real_images, np.float32), np.asarray(z, np.float32), float(ls_epsilon))
        self._iterations += 1
        return values

    def train(self, imgs_train, epochs, batch_size=128, ls_epsilon=0, sample_img_interval=0,
              sample_dir="samples"):
        """Train for ``epochs`` epochs of ``imgs_train`` (N, *img_shape),
        pixels in [0, 1] or [0, 255], and return the result dictionary
        (per-epoch d_loss, d_accuracy, g_loss, mean D(real), mean D(fake),
        seconds, and the total time; keys in RESULT_KEYS).

        After each epoch D and G are measured in inference mode on fixed
        data: the first EVAL_COUNT training images and as many fixed z.
        With ``sample_img_interval`` > 0, 32 images from z_fixed_for_sample
        are written to ``sample_dir`` after the first epoch, every
        ``sample_img_interval`` epochs and after the last one."""
        images = to_model_range(imgs_train, self._img_shape, "imgs_train")
        ls_epsilon = check_label_smoothing(ls_epsilon)
        epochs, batch_size = check_positive_int(epochs, "epochs"), check_positive_int(batch_size, "batch_size")
        batches = batching.Minibatches(len(images), batch_size, self._batch_rng)
        eval_real = images[:EVAL_COUNT]
        eval_z = uniform_z(len(eval_real), self._z_dim, self._seed, EVALUATE)
        history = History(self._name, epochs, batch_size, ls_epsilon)
        for epoch in range(epochs):
            start = time.perf_counter()
            for _ in range(epoch_iterations(len(images), batch_size)):
                self.train_step(images[next(batches)], self.generate_z(batch_size), ls_epsilon)
            measures = d_measures(self.discriminator_logits(eval_real),
                                  self.discriminator_logits(self.generator_output(eval_z)))
            history.add(epoch, self._iterations, measures, time.perf_counter() - start, len(eval_real), len(eval_z))
            if sample_img_interval > 0 and (epoch % sample_img_interval == 0 or epoch == epochs - 1):
                path = Path(sample_dir) / f"{self._name}_epoch_{epoch:04d}.png"
                pictures.save_grid(self.generate(self._z_fixed[:CLASS_SAMPLE_COUNT]), path, nrow=8,
                                   value_range=PIXEL_RANGE, scale=max(1, 56 // self._img_shape[0]),
                                   title=f"{self._name}, epoch {epoch}")
                print(f" samples: {path}")
        return history.result()

    def generator_output(self, z):
        """z -> G(z) in [-1, 1] (the network's own range), NHWC NumPy, in
        inference mode.  generate() is this mapped to pixels in [0, 1]."""
        z = check_z(z, self._z_dim)
        return np.concatenate([self._generate_batch(z[i:i + self.BATCH]) for i in range(0, len(z), self.BATCH)])

    def discriminator_logits(self, images):
        """NHWC images in [-1, 1] -> D's logits (N, 1), in inference mode.
        discriminate() is the sigmoid of this for pixels in [0, 1] or [0, 255]."""
        images = np.asarray(images, np.float32)
        return np.concatenate([self._discriminate_batch(images[i:i + self.BATCH])
                               for i in range(0, len(images), self.BATCH)])

    def generate(self, z):
        """(N, z_dim) -> (N, *img_shape) images, pixels in [0, 1]."""
        return to_pixels(self.generator_output(z))

    def discriminate(self, imgs):
        """(N, *img_shape) pixels in [0, 1] or [0, 255] -> (N, 1), the
        probability D gives each image of being real."""
        return sigmoid(self.discriminator_logits(to_model_range(imgs, self._img_shape))).astype(np.float32)

    def evaluate(self, imgs, labels):
        """``(d_loss, d_accuracy, g_loss)``: D's binary cross-entropy and
        accuracy on ``imgs`` with ``labels`` (1 real, 0 fake), and G's loss
        on as many images generated from new z (generate_z)."""
        images = to_model_range(imgs, self._img_shape)
        labels = check_labels(labels, len(images))
        fake_logits = self.discriminator_logits(self.generator_output(self.generate_z(len(images))))
        return evaluate_logits(self.discriminator_logits(images), labels, fake_logits)

    def save_me(self, files_dir, g_file_name="", d_file_name="", val_file_name=""):
        """Write G's and D's weights (the framework's format, BatchNorm
        statistics included) and the variables file (JSON: name, z_dim,
        img_shape, z_fixed_for_sample) into ``files_dir``.  Empty names
        default to <name>_g<suffix>, <name>_d<suffix>, <name>_val.json.
        Returns the three paths."""
        files_dir = Path(files_dir)
        files_dir.mkdir(parents=True, exist_ok=True)
        names = file_names(self._name, g_file_name, d_file_name, val_file_name, self.WEIGHTS_SUFFIX)
        g_path, d_path, val_path = (files_dir / name for name in names)
        self._save_weights(g_path, d_path)
        write_variables(val_path, variables(self.QUESTION, self.FRAMEWORK, self._name, self._z_dim,
                                            self._img_shape, self._z_fixed))
        return g_path, d_path, val_path

    def change_me(self, files_dir, g_file_name, d_file_name, val_file_name):
        """Become the model saved by save_me in ``files_dir``: its name,
        z_dim, img_shape, z_fixed_for_sample and weights.  The optimizers
        and the noise generator start afresh (a checkpoint restores them
        separately)."""
        files_dir = Path(files_dir)
        names = file_names(self._name, g_file_name, d_file_name, val_file_name, self.WEIGHTS_SUFFIX)
        name, z_dim, img_shape, z_fixed = read_variables(files_dir / names[2], self.QUESTION, self.FRAMEWORK)
        states = []
        for path in (files_dir / names[0], files_dir / names[1]):   # read before the model is rebuilt
            if not path.is_file():
                raise UsageError(f"weights file {path} does not exist")
            try:
                states.append(self._read_weights(path))
            except UsageError:
                raise
            except Exception as err:   # each framework raises several types for a file not its own
                raise UsageError(f"{path} is not a {self.FRAMEWORK} weights file ({type(err).__name__})") from None
        self._build(z_dim, img_shape)
        try:
            self._load_weights(*states)
        except (KeyError, ValueError, RuntimeError, OSError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(f"the weights in {files_dir} do not fit a {self.QUESTION} of img_shape {img_shape}, "
                             f"z_dim {z_dim}: {reason}") from None
        self._name, self._z_fixed = name, z_fixed


def report_model_test(run, model, test_images, z_dim, seed):
    """The test of a GAN script, given its model with the checkpoint
    loaded: the answer pictures of ``report_test`` from the fixed test
    latents, and D's view of ``test_images`` (pixels in [0, 1])."""
    z = test_latents(z_dim, seed)
    samples = model.generate(z["samples"])
    frames, paths = z["morph"].shape[:2]
    morph = model.generate(z["morph"].reshape(frames * paths, -1)).reshape(frames, paths, *model.img_shape)
    return report_test(run, samples, model.generate(z["linear"]), model.generate(z["spherical"]), morph,
                       model.discriminate(test_images), model.discriminate(samples))
