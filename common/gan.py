"""Shared pieces of the GAN questions (gan, dcgan): everything that is not
framework code.

NumPy in, NumPy out; no deep-learning framework is imported here.  The four
versions of each GAN script draw their noise, measure their discriminator,
write their metrics and pictures here, so with the same weights they produce
the same numbers and the same pictures:

- noise         ``uniform_z`` (a fixed, seeded batch), ``ZSampler`` (the
                training noise, with a JSON-able state), ``test_latents``
- data          ``load_images``
- the network   ``dcgan_stages`` (how deep the DCGAN is for an image size)
- the CLI       ``add_flags`` (``--label-smoothing``, ``--z-dim``)
- measuring D   ``bce_with_logits``, ``d_measures``, ``g_loss``, ``sigmoid``
- training      ``FIELDS`` of metrics.csv,
                ``save_samples`` (sample grid + progress picture),
                ``plot_training`` (the three plots)
- testing       ``report_test`` (sample grid, interpolation strip, GIF,
                the scored samples), ``report_model_test`` (the same from a
                model with its checkpoint)

The DCGAN document's class API (``DCGAN(name, z_dim, img_shape)``, train,
generate, save_me, ...) keeps its framework-neutral half in
``common.class_api``.

Noise: z ~ U(-1, 1) (DESIGN.md section 6), drawn as float64 by NumPy's
PCG64 and cast to float32, one independent stream per use (``SAMPLES``,
``TRAIN``, ...), so the four versions feed their generators the same z.
"""
import argparse
import math

import numpy as np

from common import cli, datasets, pictures, runs
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
TEST_SCORED = 8        # test/samples.npy: the images tools/score_digits.py scores

SAMPLE_COUNT = 64      # images in z_fixed_for_sample (an 8 x 8 grid)
PROGRESS_COLUMNS = 8   # the first 8 fixed z are the columns of progress.png
PROGRESS_ROWS = 10     # at most this many training checkpoints as its rows
TEST_SAMPLE_COUNT = 64
SCORED_COUNT = 1000     # images in test/samples.npy
INTERPOLATION_STEPS = 10
MORPH_PATHS = 9        # test/morph.gif shows a 3 x 3 grid, ...
MORPH_FRAMES = 24      # ... each image going once round its great circle

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
    ``scored``       (SCORED_COUNT, z_dim)  test/samples.npy
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
        "scored": uniform_z(SCORED_COUNT, z_dim, seed, TEST_SCORED),
    }


# ---------------------------------------------------------------------------
# Pixels and data
# ---------------------------------------------------------------------------

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
    64x64 -> k = 4 (4x4), 32x32 -> 3 (4x4), 28x28 -> 2 (7x7).  The widths
    of the k stages: ``dcgan_widths``."""
    h, w = int(image_shape[0]), int(image_shape[1])
    for k in range(MAX_STAGES, 0, -1):
        if h % 2 ** k == 0 and w % 2 ** k == 0 and min(h, w) // 2 ** k >= MIN_START:
            return k, (h // 2 ** k, w // 2 ** k)
    raise UsageError(f"the DCGAN needs an image size divisible by 2 with at least {2 * MIN_START} pixels "
                     f"a side, got {h}x{w}")


def dcgan_widths(k, g_widths, d_widths):
    """The widths of a k-stage DCGAN from the question's lists for k =
    MAX_STAGES: G's k - 1 transposed convolutions before the last one take
    the *last* k - 1 of ``g_widths`` (the widths nearest the output, as small
    DCGANs have them: 28x28 -> Dense(7x7x256), 128, C), D's k convolutions
    the *first* k of ``d_widths``.  Taking G's from the top instead would put
    a 512-channel 5x5 layer at 14x14 into the 28x28 generator, as costly as
    the whole 64x64 network."""
    g_widths, d_widths = tuple(g_widths), tuple(d_widths)
    return g_widths[len(g_widths) - (k - 1):] if k > 1 else (), d_widths[:k]


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


# ---------------------------------------------------------------------------
# Training pictures and plots
# ---------------------------------------------------------------------------

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
    columns = min(PROGRESS_COLUMNS, len(images))
    row = pictures.make_grid(images[:columns], nrow=columns, padding=0, value_range=value_range)
    row_dir = run.samples / "progress"
    pictures.save_image(row, row_dir / f"iter_{iteration:06d}.png", value_range=value_range)
    pictures.save_progress(row_dir, run.root / PROGRESS_PNG, columns, images.shape[1:], upto=iteration,
                           limit=PROGRESS_ROWS, scale=max(1, 56 // h),
                           title=f"{run.question} ({run.framework}): the same {columns} z through training")
    return path


def plot_training(run):
    """The three plots of metrics.csv: ``losses.png`` (d_loss, g_loss),
    ``d_accuracy.png`` and ``d_probabilities.png`` (mean D(real) against
    mean D(fake)).  Returns their paths."""
    what = f"{run.question} ({run.framework})"
    csv = run.metrics_path
    return [
        pictures.plot_curves(csv, run.root / LOSSES_PNG, ["d_loss", "g_loss"], labels=["D loss", "G loss"],
                             title=f"{what}: losses", ylabel="binary cross-entropy", smooth=PLOT_SMOOTH),
        pictures.plot_curves(csv, run.root / ACCURACY_PNG, ["d_accuracy"], labels=["D accuracy"],
                             title=f"{what}: discriminator accuracy", ylabel="accuracy (threshold 0.5)",
                             smooth=PLOT_SMOOTH, ylim=(-0.02, 1.02), hline=0.5),
        pictures.plot_curves(csv, run.root / PROBABILITIES_PNG, ["d_real", "d_fake"],
                             labels=["mean D(real)", "mean D(fake)"], title=f"{what}: D(real) vs D(fake)",
                             ylabel="probability of 'real'", smooth=PLOT_SMOOTH, ylim=(-0.02, 1.02), hline=0.5),
    ]


# ---------------------------------------------------------------------------
# The test pictures
# ---------------------------------------------------------------------------

def save_test_pictures(run, samples, linear, spherical, morph, scored=None, value_range=PIXEL_RANGE,
                       noise="U(-1, 1)"):
    """``test/samples.png``, ``test/interpolation.png`` (rows: linear,
    spherical), ``test/morph.gif`` (T frames, each a grid of the P images)
    and, with ``scored``, ``test/samples.npy`` (uint8 NHWC pixels, what
    tools/score_digits.py scores).  Returns the test folder."""
    test_dir = run.prepare_test()
    h = samples.shape[1]
    scale = max(1, 56 // h)
    nrow = int(math.ceil(math.sqrt(len(samples))))
    pictures.save_grid(samples, test_dir / "samples.png", nrow=nrow, value_range=value_range, scale=scale,
                       title=f"{run.question} ({run.framework}): G(z), z ~ {noise}")
    pictures.save_strip(np.stack([linear, spherical]), test_dir / "interpolation.png", value_range=value_range,
                        scale=scale, rows_labels=["linear", "spherical"],
                        title=f"from z0 to z1 in {linear.shape[0]} steps ({run.framework})")
    side = int(math.ceil(math.sqrt(morph.shape[1])))
    frames = np.stack([pictures.make_grid(frame, nrow=side, value_range=value_range) for frame in morph])
    pictures.save_gif(frames, test_dir / "morph.gif", fps=8, scale=max(1, 2 * scale))
    if scored is not None:
        runs.atomic_save_npy(test_dir / "samples.npy", pictures.to_uint8(scored, value_range))
    return test_dir


def report_test(run, samples, linear, spherical, morph, d_real, d_fake, scored=None, value_range=PIXEL_RANGE):
    """Write the answer pictures of a GAN and print a summary.

    samples    (N, H, W, C) images from test_latents()["samples"]
    linear, spherical  (S, H, W, C) the interpolation between the same two z
    morph      (T, P, H, W, C) frame t of each of the P great circles
    d_real, d_fake  D's probabilities of the real test images and of samples
    scored     (M, H, W, C) more samples, for a number rather than a picture

    Writes the pictures of ``save_test_pictures`` and
    ``test/metrics.json``; returns the metrics."""
    test_dir = save_test_pictures(run, samples, linear, spherical, morph, scored, value_range)
    result = {"d_real_test": float(np.mean(d_real)), "d_fake_samples": float(np.mean(d_fake)),
              "test_images": int(np.size(d_real)), "samples": int(len(samples)),
              "interpolation_steps": int(linear.shape[0]), "morph_frames": int(morph.shape[0]),
              "morph_paths": int(morph.shape[1])}
    runs.atomic_write_json(test_dir / "metrics.json", result)
    print(f"{run.question} {run.framework}: mean D(real) {result['d_real_test']:.3f} over "
          f"{result['test_images']} test images, mean D(G(z)) {result['d_fake_samples']:.3f} over "
          f"{result['samples']} samples; pictures in {test_dir}")
    return result


def report_model_test(run, model, test_images, z_dim, seed):
    """The test of a GAN script, given its model with the checkpoint
    loaded: the answer pictures of ``report_test`` from the fixed test
    latents, and D's view of ``test_images`` (pixels in [0, 1]).  The
    SCORED_COUNT samples of test/samples.npy are made for one-channel
    images only (digits: what tools/score_digits.py scores); for colour
    pictures they would be the test's largest cost (64x64: ~2 TFLOP)."""
    z = test_latents(z_dim, seed)
    samples = model.generate(z["samples"])
    frames, paths = z["morph"].shape[:2]
    morph = model.generate(z["morph"].reshape(frames * paths, -1)).reshape(frames, paths, *model.img_shape)
    return report_test(run, samples, model.generate(z["linear"]), model.generate(z["spherical"]), morph,
                       model.discriminate(test_images), model.discriminate(samples),
                       scored=model.generate(z["scored"]) if model.img_shape[-1] == 1 else None)
