"""Shared pieces of the alpha-GAN question (alpha_gan): everything that is
not framework code.

NumPy in, NumPy out; no deep-learning framework is imported here.  The four
versions of alpha_gan_<fw>.py draw their noise, measure their steps and
write their pictures and numbers here, so with the same weights they make
the same pictures and the same numbers.

- the CLI         ``add_flags`` (``--z-dim``, ``--l1-weight``,
                  ``--encoder-lr``), ``defaults`` (z size 10, 128 for
                  CIFAR-10; the question's 100000 iterations)
- noise           ``ZSampler`` (z ~ N(0, I), with a JSON-able state),
                  ``sample_latents`` (the fixed z of the training samples)
- measuring       ``FIELDS`` of metrics.csv and what each means
- training        ``save_samples``, ``plot_training``
- testing         ``interpolation_pairs``, ``code_distance`` (the codes of
                  the test set against the prior), ``report_test`` (the
                  reconstructions, the samples, the interpolation between
                  two test digits' codes, the codes' scatter, the numbers)

The four networks: G (the DCGAN generator), D (the DCGAN discriminator on
images), E (an encoder: D's convolutions, then Dense(z_dim)) and C (the
code discriminator on z).  One iteration trains E, then G twice, then D,
then C; the loss of each is written in the scripts, next to why.

Noise comes from NumPy PCG64 streams of one seed (``common.gan.rng``),
gan's stream numbers: SAMPLES (1) the fixed z of the training sample grid,
TRAIN (2) the z of every iteration, TEST_SAMPLES (4) test/samples.png,
TEST_SCORED (8) test/samples.npy, and PRIOR_POINTS (15) the prior sample
drawn beside the test set's codes.
"""
import math

import numpy as np

from common import cli, gan, pictures, recon, runs
from common.errors import UsageError

VALUE_RANGE = gan.VALUE_RANGE   # images in [-1, 1]: what the networks see and G's tanh makes

Z_DIM = 10                      # the question's code size (MNIST, Fashion-MNIST, the newt photos) ...
DATASET_Z_DIM = {"cifar10": 128}   # ... and per data set where it says otherwise
DEFAULT_ITERS = 100000          # the original exercise's answer pictures are at 90k-100k iterations

SAMPLES = gan.SAMPLES           # 1: the fixed z of the training sample grid
TRAIN = gan.TRAIN               # 2: the z of every training iteration
TEST_SAMPLES = gan.TEST_SAMPLES  # 4: test/samples.png
TEST_SCORED = gan.TEST_SCORED   # 8: test/samples.npy
PRIOR_POINTS = 15               # the prior sample drawn under the codes in test/codes.png

RECONSTRUCTION_SHOWN = 20       # test/reconstructions.png: 20 test images, class by class (as the VAE's) ...
RECONSTRUCTION_ROW = 10         # ... in rows of 10, each row followed by the row of their G(E(x))
INTERPOLATION_ROWS = 5          # test/interpolation.png: 5 pairs of test images ...
INTERPOLATION_STEPS = 10        # ... from E(x_a) to E(x_b) in 10 steps (both ends included)
SCORED_COUNT = gan.SCORED_COUNT  # 1000 prior samples (test/samples.npy) and as many reconstructions

# metrics.csv columns (runs.Progress adds iteration first and sec_per_iter last)
FIELDS = ["e_loss", "g_loss", "d_loss", "c_loss", "l1", "d_real", "d_reconstruction", "d_sample",
          "c_prior", "c_code"]
FIELD_HELP = {
    "e_loss": "the encoder's loss: l1_weight * l1 + BCE(C(E(x)) -> 1)",
    "g_loss": "the generator's loss, mean of its two updates: l1_weight * L1(x, G(E(x))) "
              "+ BCE(D(G(E(x))) -> 1) + BCE(D(G(z)) -> 1)",
    "d_loss": "the image discriminator's loss: BCE(D(x) -> 1) + BCE(D(G(E(x))) -> 0) + BCE(D(G(z)) -> 0)",
    "c_loss": "the code discriminator's loss: BCE(C(z) -> 1) + BCE(C(E(x)) -> 0)",
    "l1": "|x - G(E(x))| summed over an image's pixels ([-1, 1] units), the batch mean, in the encoder's step",
    "d_real": "mean D(x) in the D step (the probability of 'real image')",
    "d_reconstruction": "mean D(G(E(x))) in the D step",
    "d_sample": "mean D(G(z)) in the D step",
    "c_prior": "mean C(z) in the C step (the probability of 'a prior sample')",
    "c_code": "mean C(E(x)) in the C step",
}
LOSSES_PNG, L1_PNG, D_PNG, C_PNG = "losses.png", "l1.png", "d_probabilities.png", "c_probabilities.png"
RECONSTRUCTIONS_PNG, SAMPLES_PNG, INTERPOLATION_PNG, CODES_PNG = (
    "reconstructions.png", "samples.png", "interpolation.png", "codes.png")
SAMPLES_NPY, RECONSTRUCTIONS_NPY, METRICS_JSON = "samples.npy", "reconstructions.npy", "metrics.json"
RECONSTRUCTION_LABELS_NPY = "reconstruction_labels.npy"   # the classes of the reconstructed test images


# ---------------------------------------------------------------------------
# The CLI
# ---------------------------------------------------------------------------

def add_flags(group):
    """alpha-GAN's own flags.  ``--z-dim`` and ``--iters`` are given the
    default None by the script and resolved per data set by ``defaults``."""
    group.add_argument("--z-dim", type=cli.positive_int, default=None,
                       help=f"size of the code z ~ N(0, I) (default: {Z_DIM}; "
                            + ", ".join(f"{v} for {k}" for k, v in DATASET_Z_DIM.items()) + ")")
    group.add_argument("--l1-weight", type=cli.positive_float, default=1.0, metavar="LAMBDA",
                       help="weight of the reconstruction term lambda * ||x - G(E(x))||_1 (summed over each "
                            "image's pixels) in E's and G's losses")
    group.add_argument("--encoder-lr", type=cli.positive_float, default=1e-4,
                       help="the encoder's learning rate (--lr is G's, D's and C's)")
    for action in group._actions:          # the group shares the parser's actions
        if action.dest == "iters":
            action.help = f"training iterations (default: {DEFAULT_ITERS}, the original exercise's)"


def defaults(args):
    """``args`` with ``--z-dim`` and ``--iters`` left out set for the data set."""
    if args.z_dim is None:
        args.z_dim = DATASET_Z_DIM.get(args.dataset, Z_DIM)
    if args.iters is None:
        args.iters = DEFAULT_ITERS
    return args


# ---------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------

def normal_z(n, dim, seed, stream):
    """(n, dim) float32 draws of N(0, 1) from the stream ``(seed, stream)``:
    the same numbers in every framework."""
    return gan.rng(seed, stream).standard_normal((int(n), int(dim))).astype(np.float32)


class ZSampler(gan.ZSampler):
    """The training codes from the prior: ``sampler(n)`` is (n, z_dim)
    float32 N(0, I), with the JSON-able state of ``gan.ZSampler``."""

    def __call__(self, n):
        return self.rng.standard_normal((int(n), self.z_dim)).astype(np.float32)


def sample_latents(z_dim, seed):
    """The fixed z of the training sample grid (gan.SAMPLE_COUNT of them)."""
    return normal_z(gan.SAMPLE_COUNT, z_dim, seed, SAMPLES)


def test_latents(z_dim, seed):
    """The z of the test: ``samples`` (test/samples.png), ``scored``
    (test/samples.npy) and ``prior`` (drawn under the codes in codes.png)."""
    return {"samples": normal_z(gan.TEST_SAMPLE_COUNT, z_dim, seed, TEST_SAMPLES),
            "scored": normal_z(SCORED_COUNT, z_dim, seed, TEST_SCORED),
            "prior": normal_z(SCORED_COUNT, z_dim, seed, PRIOR_POINTS)}


# ---------------------------------------------------------------------------
# Training pictures and plots
# ---------------------------------------------------------------------------

def save_samples(run, iteration, images):
    """The sample grid and the progress picture, as the DCGAN's (images in [-1, 1])."""
    return gan.save_samples(run, iteration, images, value_range=VALUE_RANGE)


def plot_training(run):
    """The plots of metrics.csv: ``losses.png`` (the four losses),
    ``l1.png`` (the reconstruction error), ``d_probabilities.png`` (D on
    real images, reconstructions and samples) and ``c_probabilities.png``
    (C on prior codes and on E's codes).  Returns their paths."""
    what = f"{run.question} ({run.framework})"
    csv, smooth = run.metrics_path, gan.PLOT_SMOOTH
    return [
        pictures.plot_curves(csv, run.root / LOSSES_PNG, ["e_loss", "g_loss", "d_loss", "c_loss"],
                             labels=["E loss", "G loss (mean of 2 updates)", "D loss", "C loss"],
                             title=f"{what}: losses", ylabel="loss", smooth=smooth),
        pictures.plot_curves(csv, run.root / L1_PNG, ["l1"], labels=["||x - G(E(x))||_1 per image"],
                             title=f"{what}: reconstruction error", ylabel="L1 norm ([-1, 1] pixels)", smooth=smooth),
        pictures.plot_curves(csv, run.root / D_PNG, ["d_real", "d_reconstruction", "d_sample"],
                             labels=["mean D(x)", "mean D(G(E(x)))", "mean D(G(z))"],
                             title=f"{what}: the image discriminator", ylabel="probability of 'real'",
                             smooth=smooth, ylim=(-0.02, 1.02), hline=0.5),
        pictures.plot_curves(csv, run.root / C_PNG, ["c_prior", "c_code"], labels=["mean C(z), z ~ N(0, I)",
                                                                                   "mean C(E(x))"],
                             title=f"{what}: the code discriminator", ylabel="probability of 'prior'",
                             smooth=smooth, ylim=(-0.02, 1.02), hline=0.5),
    ]


# ---------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------

def interpolation_pairs(labels, rows=INTERPOLATION_ROWS):
    """The test images the interpolation goes between: ``rows`` pairs of
    indices (a, b), the first test image of class c to the first of class
    c + 1 for c = 0, 1, ... (cycling when there are fewer classes), or
    images 0 -> 1, 2 -> 3, ... when the labels do not give two classes."""
    labels = np.asarray(labels, np.int64).reshape(-1)
    classes = np.unique(labels)
    if len(classes) >= 2:
        first = {int(c): int(np.flatnonzero(labels == c)[0]) for c in classes}
        order = [int(c) for c in classes]
        return [(first[order[i % len(order)]], first[order[(i + 1) % len(order)]]) for i in range(rows)]
    n = len(labels)
    if n < 2:
        raise UsageError(f"the interpolation needs at least 2 test images, the test split has {n}")
    return [((2 * i) % n, (2 * i + 1) % n) for i in range(rows)]


def code_distance(codes):
    """How far the test set's codes are from the prior N(0, I): the
    Frechet distance of their Gaussian fit, |mu|^2 + Tr(S + I - 2 S^1/2)
    (0 when the codes are distributed like the prior), the norm of their
    mean and the mean of their per-dimension standard deviations."""
    x = np.asarray(codes, np.float64)
    mu = x.mean(axis=0)
    sigma = np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])
    eigenvalues = np.clip(np.linalg.eigvalsh(sigma), 0.0, None)
    fd = float(mu @ mu + eigenvalues.sum() + x.shape[1] - 2.0 * np.sqrt(eigenvalues).sum())
    return {"code_fd_to_prior": fd, "code_mean_norm": float(np.linalg.norm(mu)),
            "code_std_mean": float(np.sqrt(np.diag(sigma)).mean())}


def principal_axes(codes):
    """The first two principal directions (z_dim, 2) of ``codes`` (of
    their mean-centred covariance; the sign fixed so that the largest entry
    of each is positive, the same in every framework)."""
    x = np.asarray(codes, np.float64)
    if x.shape[1] < 2:
        return np.eye(x.shape[1], 2)
    _, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    axes = vectors[:, ::-1][:, :2]
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), [0, 1]])
    return axes * np.where(signs == 0, 1.0, signs)


def save_codes(path, codes, labels, prior, class_names, title):
    """test/codes.png: the test set's codes, projected on their first two
    principal directions and coloured by class, over a prior sample
    projected the same way (grey)."""
    axes = principal_axes(codes)
    mean = np.asarray(codes, np.float64).mean(axis=0)
    return pictures.save_scatter((np.asarray(codes) - mean) @ axes, labels, path, class_names=class_names,
                                 title=title, xlabel="principal component 1", ylabel="principal component 2",
                                 background=(np.asarray(prior) - mean) @ axes, background_label="prior N(0, I)")


def reconstruction_errors(images, reconstructions):
    """Mean |x - G(E(x))| and mean (x - G(E(x)))^2 over the pixels, in [0, 1]
    pixel units (the VAE's), from images in [-1, 1]."""
    difference = (np.asarray(images, np.float64) - np.asarray(reconstructions, np.float64)) / 2.0
    return float(np.abs(difference).mean()), float((difference ** 2).mean())


def report_test(run, test_images, test_labels, class_names, codes, reconstructions, samples, interpolation,
                scored, prior, d_real, d_reconstruction, d_sample):
    """Write the answer pictures and numbers of alpha-GAN and print a summary.

    test_images, test_labels  the test split (NHWC in [-1, 1]) and its labels
    codes            E(x) of every test image (N, z_dim)
    reconstructions  G(E(x)) of every test image
    samples          G(z) of test_latents()["samples"]
    interpolation    (INTERPOLATION_ROWS, INTERPOLATION_STEPS, H, W, C): G of
                     the codes on the line between the pairs' codes
    scored           G(z) of test_latents()["scored"]
    prior            test_latents()["prior"]
    d_real, d_reconstruction, d_sample  D's probabilities of the test images,
                     of their reconstructions and of the scored samples

    Writes ``test/reconstructions.png`` (input | reconstruction),
    ``test/samples.png``, ``test/interpolation.png``, ``test/codes.png``,
    ``test/samples.npy`` and ``test/reconstructions.npy`` (uint8 NHWC, what
    tools/score_digits.py scores; the first SCORED_COUNT test images'
    reconstructions, their classes in ``test/reconstruction_labels.npy``) and
    ``test/metrics.json``; returns the metrics."""
    test_dir = run.prepare_test()
    what = f"{run.question} ({run.framework})"
    shape = test_images.shape[1:]
    scale = max(1, 56 // shape[0])
    # as the VAE's picture: rows of 10 test images (class by class), each followed by their reconstructions
    idx = recon.pick_round_robin(test_labels, RECONSTRUCTION_SHOWN)
    per_row = max(1, min(RECONSTRUCTION_ROW, len(idx)))
    idx = idx[:len(idx) // per_row * per_row]
    rows = [block for start in range(0, len(idx), per_row)
            for block in (test_images[idx[start:start + per_row]], reconstructions[idx[start:start + per_row]])]
    pictures.save_strip(np.stack(rows), test_dir / RECONSTRUCTIONS_PNG, value_range=VALUE_RANGE,
                        scale=max(1, 84 // shape[0]), rows_labels=["x", "G(E(x))"] * (len(rows) // 2),
                        title=f"{what}: test images and their reconstructions")
    pictures.save_grid(samples, test_dir / SAMPLES_PNG, nrow=int(math.ceil(math.sqrt(len(samples)))),
                       value_range=VALUE_RANGE, scale=scale, title=f"{what}: G(z), z ~ N(0, I)")
    pairs = interpolation_pairs(test_labels, len(interpolation))
    names = [f"{_name(class_names, test_labels, a)} → {_name(class_names, test_labels, b)}" for a, b in pairs]
    pictures.save_strip(np.asarray(interpolation), test_dir / INTERPOLATION_PNG, value_range=VALUE_RANGE,
                        scale=scale, rows_labels=names,
                        title=f"{what}: G of the line from E(x_a) to E(x_b), {interpolation.shape[1]} steps")
    save_codes(test_dir / CODES_PNG, codes, test_labels, prior, class_names,
               f"{what}: E(x) of the test set against the prior")
    runs.atomic_save_npy(test_dir / SAMPLES_NPY, pictures.to_uint8(scored, VALUE_RANGE))
    runs.atomic_save_npy(test_dir / RECONSTRUCTIONS_NPY, pictures.to_uint8(reconstructions[:SCORED_COUNT],
                                                                           VALUE_RANGE))
    runs.atomic_save_npy(test_dir / RECONSTRUCTION_LABELS_NPY,
                         np.asarray(test_labels, np.int64).reshape(-1)[:SCORED_COUNT])
    l1, mse = reconstruction_errors(test_images, reconstructions)
    result = {"test_l1": l1, "test_mse": mse, **code_distance(codes),
              "d_real_test": float(np.mean(d_real)), "d_reconstruction_test": float(np.mean(d_reconstruction)),
              "d_sample": float(np.mean(d_sample)), "test_images": int(len(test_images)),
              "samples": int(len(samples)), "scored_samples": int(len(scored)), "z_dim": int(codes.shape[1])}
    runs.atomic_write_json(test_dir / METRICS_JSON, result)
    print(f"{run.question} {run.framework}: test L1 {l1:.4f}, MSE {mse:.4f} ([0, 1] pixels) over "
          f"{len(test_images)} test images; codes: Frechet distance to N(0, I) {result['code_fd_to_prior']:.3f}; "
          f"mean D(x) {result['d_real_test']:.3f}, D(G(E(x))) {result['d_reconstruction_test']:.3f}, "
          f"D(G(z)) {result['d_sample']:.3f}; pictures in {test_dir}")
    return result


def _name(class_names, labels, index):
    label = int(np.asarray(labels).reshape(-1)[index])
    return str(class_names[label]) if 0 <= label < len(class_names) else str(label)
