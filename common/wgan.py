"""Shared pieces of the Wasserstein GAN questions (wgan, wgan_gp):
everything that is not framework code.

NumPy in, NumPy out; no deep-learning framework is imported here.  The four
versions of wgan_<fw>.py and wgan_gp_<fw>.py draw their noise, their
penalty mixes and their batches, and write their metrics and pictures here,
so with the same weights they make the same numbers and pictures.

- data          ``load_images``: every data set at 32x32 (the newt photos
                resized, 28x28 digits padded with background), so one
                network size serves them all
- noise         ``ZSampler`` (U(-1, 1), WGAN) and ``NormalZSampler``
                (N(0, 1), WGAN-GP), ``MixSampler`` (the eps_i of the
                gradient penalty's x_hat, one per sample), ``test_latents``
- the CLI       ``add_flags`` (``--n-critic``, ``--clip`` or
                ``--gp-weight``/``--width``/``--critic-norm``, ``--z-dim``)
- measuring     ``FIELDS`` of metrics.csv, ``clip_fraction``
- training      ``sample_latents``, ``save_samples``, ``plot_training``
                (losses, the Wasserstein estimate, the gradient norm, the
                clipped share)
- testing       ``report_test`` (the GAN pictures, test/samples.npy and the
                critic's numbers)

Sign convention, written once: the critic f maximises
    W = mean f(real) - mean f(fake)
(the Wasserstein-1 estimate, positive, falling as G improves), so its loss
is ``critic_loss = mean f(fake) - mean f(real)`` (+ lambda * penalty for
WGAN-GP), and G minimises ``g_loss = -mean f(G(z))``.

Noise and mixes come from NumPy PCG64 streams of one seed
(``common.gan.rng(seed, stream)``): gan's streams 1..8 as in the DCGAN,
cgan's 9..13 unused here, and ``PENALTY_MIX`` = 14.
"""
import numpy as np

from common import cli, datasets, gan, pictures, runs

VALUE_RANGE = gan.VALUE_RANGE   # images in [-1, 1]: what the networks see and G's tanh makes
IMAGE_SIZE = 32                 # every data set is made 32x32 (module docstring)

# Independent NumPy streams of one seed, identical in every framework.
SAMPLES = gan.SAMPLES          # 1: the fixed z of the training sample grid and the progress picture
TRAIN = gan.TRAIN              # 2: the z of every critic and generator step
PENALTY_MIX = 14               # the eps_i of x_hat = eps_i x_i + (1 - eps_i) G(z_i), one per sample

# metrics.csv columns (runs.Progress adds iteration first and sec_per_iter last).
# The critic's numbers are means over the iteration's n_critic critic steps.
FIELDS = {
    "wgan": ["critic_loss", "g_loss", "wasserstein", "critic_real", "critic_fake", "grad_norm", "clip_fraction"],
    "wgan_gp": ["critic_loss", "g_loss", "wasserstein", "critic_real", "critic_fake", "grad_norm",
                "gradient_penalty"],
}
FIELD_HELP = {
    "critic_loss": "mean f(fake) - mean f(real) (+ lambda * gradient_penalty): what the critic minimises",
    "g_loss": "-mean f(G(z)): what the generator minimises",
    "wasserstein": "W = mean f(real) - mean f(fake), the critic's estimate of the Wasserstein-1 distance",
    "critic_real": "mean f(real images)",
    "critic_fake": "mean f(G(z))",
    "grad_norm": "mean over the samples of ||grad_x f(x_hat)||_2 (per sample over C, H, W); "
                 "1 is what the Lipschitz constraint wants",
    "gradient_penalty": "mean over the samples of (||grad_x f(x_hat)||_2 - 1)^2, before the weight lambda",
    "clip_fraction": "share of the critic's parameters at the clip bounds +-c after the iteration",
}
LOSSES_PNG, WASSERSTEIN_PNG, GRAD_NORM_PNG, CLIP_PNG, CRITIC_PNG, PROGRESS_PNG = (
    "losses.png", "wasserstein.png", "gradient_norm.png", "clip_fraction.png", "critic.png", gan.PROGRESS_PNG)
SCORED_COUNT = gan.SCORED_COUNT


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def load_images(args, split, value_range=VALUE_RANGE):
    """The ``split`` of ``args.dataset`` as float32 NHWC at 32x32 in
    ``value_range``: CIFAR-10 as it is, the newt photos resized (INTER_AREA),
    MNIST and Fashion-MNIST padded by 2 pixels a side with the background
    value (``value_range[0]``, black), not stretched."""
    size = (IMAGE_SIZE, IMAGE_SIZE) if args.dataset == "imori" else None
    data = datasets.load_dataset(args.dataset, split, data_dir=args.data_dir, size=size, value_range=value_range)
    height, width = data.images.shape[1:3]
    if (height, width) != (IMAGE_SIZE, IMAGE_SIZE):   # 28x28 digits: 2 pixels of background a side
        top, left = (IMAGE_SIZE - height) // 2, (IMAGE_SIZE - width) // 2
        data.images = np.pad(data.images, ((0, 0), (top, IMAGE_SIZE - height - top),
                                           (left, IMAGE_SIZE - width - left), (0, 0)),
                             constant_values=np.float32(value_range[0]))
    return data


# ---------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------

ZSampler = gan.ZSampler   # U(-1, 1): the WGAN's noise, as the DCGAN's


class NormalZSampler(gan.ZSampler):
    """The WGAN-GP's training noise: ``sampler(n)`` is (n, z_dim) float32
    N(0, 1), with the same JSON-able state as ``gan.ZSampler``."""

    def __call__(self, n):
        return self.rng.standard_normal((int(n), self.z_dim)).astype(np.float32)


def normal_z(n, dim, seed, stream):
    """(n, dim) float32 draws of N(0, 1) from the stream ``(seed, stream)``."""
    return gan.rng(seed, stream).standard_normal((int(n), int(dim))).astype(np.float32)


def z_draw(noise):
    """The fixed-batch draw of a question's noise: "uniform" or "normal"."""
    return {"uniform": gan.uniform_z, "normal": normal_z}[noise]


class MixSampler:
    """The gradient penalty's mixing weights: ``sampler(n)`` is (n,) float32
    eps_i ~ U(0, 1), one per sample (never one per batch); the frameworks
    reshape it to (n, 1, 1, 1) to mix x_hat_i = eps_i x_i + (1 - eps_i) G(z_i).
    The state is a JSON-able dict saved in every checkpoint."""

    def __init__(self, seed, stream=PENALTY_MIX):
        self.rng = gan.rng(seed, stream)

    def __call__(self, n):
        return self.rng.uniform(0.0, 1.0, int(n)).astype(np.float32)

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]


def sample_latents(z_dim, seed, noise):
    """The fixed z of the training sample grid (gan.SAMPLE_COUNT of them)."""
    return z_draw(noise)(gan.SAMPLE_COUNT, z_dim, seed, SAMPLES)


def test_latents(z_dim, seed, noise):
    """The z of the test pictures, as ``gan.test_latents`` (samples, linear
    and spherical interpolation, the morph's great circles, the scored
    samples) but drawn from the question's noise."""
    draw = z_draw(noise)
    ends = draw(2, z_dim, seed, gan.TEST_INTERPOLATION).astype(np.float64)
    starts = draw(2 * gan.MORPH_PATHS, z_dim, seed, gan.TEST_MORPH).astype(np.float64)
    morph = np.stack([pictures.great_circle(starts[2 * p], starts[2 * p + 1], gan.MORPH_FRAMES)
                      for p in range(gan.MORPH_PATHS)], axis=1)
    return {
        "samples": draw(gan.TEST_SAMPLE_COUNT, z_dim, seed, gan.TEST_SAMPLES),
        "linear": pictures.lerp(ends[0], ends[1], gan.INTERPOLATION_STEPS).astype(np.float32),
        "spherical": pictures.slerp(ends[0], ends[1], gan.INTERPOLATION_STEPS).astype(np.float32),
        "morph": morph.astype(np.float32),
        "scored": draw(SCORED_COUNT, z_dim, seed, gan.TEST_SCORED),
    }


# ---------------------------------------------------------------------------
# The CLI
# ---------------------------------------------------------------------------

def add_flags(question, z_dim):
    """``extra`` for cli.build_parser: the question's own flags, each
    checked (a non-positive value is one line, exit 2)."""
    def extra(group):
        group.add_argument("--z-dim", type=cli.positive_int, default=z_dim,
                           help="size of the noise z (" + ("U(-1, 1)" if question == "wgan" else "N(0, 1)") + ")")
        group.add_argument("--n-critic", type=cli.positive_int, default=5,
                           help="critic updates per generator update, each on a fresh real batch and fresh z")
        if question == "wgan":
            group.add_argument("--clip", type=cli.positive_float, default=0.01, metavar="C",
                               help="clip every critic parameter to [-C, C] after each critic update")
        else:
            group.add_argument("--gp-weight", type=cli.positive_float, default=10.0, metavar="LAMBDA",
                               help="weight lambda of the gradient penalty")
            group.add_argument("--width", type=cli.positive_int, default=128,
                               help="channels of every residual block (the paper's CIFAR-10 model: 128)")
            group.add_argument("--critic-norm", choices=("layer", "none"), default="layer",
                               help="normalisation inside the critic's residual blocks: layer norm, or none "
                                    "(the released code's critic)")
    return extra


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------

def clip_fraction(parameters, clip):
    """The share of the entries of ``parameters`` (NumPy arrays) that sit at
    the clip bounds +-clip (to float32 rounding): near 1, the clipping
    decides the critic's weights, not the data."""
    values = np.concatenate([np.abs(np.asarray(p, np.float64)).ravel() for p in parameters])
    return float(np.mean(values >= np.float32(clip) * (1 - 1e-6)))


def mean_rows(rows):
    """The per-iteration metrics: the mean over the critic steps' dicts."""
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


# ---------------------------------------------------------------------------
# Training pictures and plots
# ---------------------------------------------------------------------------

def save_samples(run, iteration, images):
    """The sample grid and the progress picture of the DCGAN (images in [-1, 1])."""
    return gan.save_samples(run, iteration, images, value_range=VALUE_RANGE)


def plot_training(run, fields):
    """The plots of metrics.csv: ``losses.png`` (critic and G loss),
    ``wasserstein.png`` (the estimate W), ``critic.png`` (mean f(real) and
    mean f(fake)), ``gradient_norm.png`` (with the target 1) and, for the
    WGAN, ``clip_fraction.png``.  Returns their paths."""
    what = f"{run.question} ({run.framework})"
    csv, smooth = run.metrics_path, gan.PLOT_SMOOTH
    paths = [
        pictures.plot_curves(csv, run.root / LOSSES_PNG, ["critic_loss", "g_loss"],
                             labels=["critic loss", "G loss"], title=f"{what}: losses", ylabel="loss",
                             smooth=smooth),
        pictures.plot_curves(csv, run.root / WASSERSTEIN_PNG, ["wasserstein"],
                             labels=["W = mean f(real) - mean f(fake)"], title=f"{what}: Wasserstein estimate",
                             ylabel="W", smooth=smooth, hline=0.0),
        pictures.plot_curves(csv, run.root / CRITIC_PNG, ["critic_real", "critic_fake"],
                             labels=["mean f(real)", "mean f(fake)"], title=f"{what}: critic scores",
                             ylabel="f(x)", smooth=smooth),
        pictures.plot_curves(csv, run.root / GRAD_NORM_PNG, ["grad_norm"], labels=["mean ||grad f(x_hat)||"],
                             title=f"{what}: critic gradient norm", ylabel="norm", smooth=smooth, hline=1.0),
    ]
    if "clip_fraction" in fields:
        paths.append(pictures.plot_curves(csv, run.root / CLIP_PNG, ["clip_fraction"],
                                          labels=["share at +-c"], title=f"{what}: critic parameters at the clip",
                                          ylabel="share", smooth=smooth, ylim=(-0.02, 1.02)))
    return paths


# ---------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------

def report_test(run, samples, linear, spherical, morph, scored, critic_real, critic_fake, noise):
    """The GAN test pictures (``gan.save_test_pictures``: samples.png,
    interpolation.png, morph.gif, samples.npy) and the critic's numbers on
    the real test images and on the scored samples: mean f(real), mean
    f(fake) and their difference, the Wasserstein estimate on held-out
    data.  Writes test/metrics.json; returns the metrics."""
    test_dir = gan.save_test_pictures(run, samples, linear, spherical, morph, scored, value_range=VALUE_RANGE,
                                      noise="U(-1, 1)" if noise == "uniform" else "N(0, 1)")
    result = {"critic_real_test": float(np.mean(critic_real)), "critic_fake_samples": float(np.mean(critic_fake)),
              "test_images": int(np.size(critic_real)), "samples": int(len(samples)),
              "scored_samples": int(len(scored)), "interpolation_steps": int(linear.shape[0]),
              "morph_frames": int(morph.shape[0]), "morph_paths": int(morph.shape[1])}
    result["wasserstein_test"] = result["critic_real_test"] - result["critic_fake_samples"]
    runs.atomic_write_json(test_dir / "metrics.json", result)
    print(f"{run.question} {run.framework}: mean f(real) {result['critic_real_test']:.4f} over "
          f"{result['test_images']} test images, mean f(G(z)) {result['critic_fake_samples']:.4f} over "
          f"{result['scored_samples']} samples, W {result['wasserstein_test']:.4f}; pictures in {test_dir}")
    return result
