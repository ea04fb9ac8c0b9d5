"""Shared pieces of the VAE questions (vae, vae_latent_show, vae_latent_change).

Framework-free: NumPy in, NumPy out.  The four versions of each script draw
their fixed noise, their latent line and their latent grid here, so that
with the same weights they decode exactly the same points:

- ``gaussian(n, dim, seed, stream)``  z ~ N(0, I), one seeded stream per use
- ``line()`` / ``grid()``             the points vae_latent_change decodes
- ``add_vae_flags`` / ``parse_args``  the CLI of the two latent scripts
- ``find_vae_checkpoint``             the trained vae, with clear messages
- ``save_scatter`` / ``save_line`` / ``save_grid``  their answer pictures
"""
import argparse

import numpy as np

from common import datasets, pictures, runs
from common.errors import UsageError

VAE_QUESTION = "vae"
LATENT_DIM = 2                   # the latent scripts draw a plane
LINE_FROM = (-2.0, -2.0)         # vae_latent_change (a): the straight line ...
LINE_TO = (2.0, 2.0)             # ... from LINE_FROM to LINE_TO
LINE_STEPS = 10
GRID_SIZE = 15                   # vae_latent_change (b): GRID_SIZE x GRID_SIZE points
GRID_RANGE = 4.0                 # over z1, z2 in [-GRID_RANGE, GRID_RANGE]

# Independent noise streams of one --seed (numpy, identical in every framework).
SAMPLES = 1        # the fixed z of the training sample pictures
TEST_SAMPLES = 2   # the z of test/samples.png
TEST_EPS = 3       # the eps of the test-set ELBO, one row per test image
TRAIN_EPS = 4      # the eps of every training step (all four frameworks)


def gaussian(n, dim, seed, stream):
    """(n, dim) float32 draws of N(0, I) from a NumPy generator seeded by
    ``(seed, stream)``: the same numbers in every framework, so that four
    versions with the same weights draw the same pictures and report the
    same test ELBO."""
    seq = np.random.SeedSequence(entropy=abs(int(seed)), spawn_key=(int(stream), int(seed < 0)))
    return np.random.default_rng(seq).standard_normal((int(n), int(dim))).astype(np.float32)


def eps_generator(seed):
    """The NumPy generator of the training eps: stream TRAIN_EPS of --seed.

    Its state is a plain dict that goes into the checkpoint's meta.json, so
    a resumed run draws the same eps as an uninterrupted one.  All four
    versions draw their training eps from it, so that with the same weights
    and batches they take the same steps (a TF1 Saver does not save
    op-level random state and Chainer has no generator of its own, so a
    framework generator would not do in every version anyway)."""
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=(TRAIN_EPS, 0)))


def line(start=LINE_FROM, end=LINE_TO, steps=LINE_STEPS):
    """(steps, 2) float32: evenly spaced points from ``start`` to ``end``,
    both ends included."""
    return pictures.lerp(np.asarray(start, np.float64), np.asarray(end, np.float64), steps).astype(np.float32)


def grid(size=GRID_SIZE, limit=GRID_RANGE):
    """The latent grid as a table: returns ``(z, row_values, col_values)``.

    ``col_values`` are z1 from -limit to limit (left to right),
    ``row_values`` are z2 from +limit down to -limit (top to bottom, as on
    a plot), and ``z`` is (size * size, 2) float32 in row-major table order:
    ``z[r * size + c] == (col_values[c], row_values[r])``."""
    size = int(size)
    if size < 2:
        raise UsageError(f"the grid needs at least 2 points a side, got {size}")
    col_values = np.linspace(-limit, limit, size)
    row_values = col_values[::-1].copy()
    z1, z2 = np.meshgrid(col_values, row_values)        # (rows, cols) each
    z = np.stack([z1.reshape(-1), z2.reshape(-1)], axis=1).astype(np.float32)
    return z, row_values, col_values


# ---------------------------------------------------------------------------
# The command line of the two latent scripts
# ---------------------------------------------------------------------------

def _at_least_two(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2, got {value}")
    return value


at_least_two = _at_least_two


def add_vae_flags(group, framework):
    """``--vae-dir``: where the trained vae is (its run folder)."""
    group.add_argument("--vae-dir", default=None,
                       help=f"run folder of the trained vae (default: out/{VAE_QUESTION}/{framework}); "
                            "--checkpoint picks one of its checkpoints (default: the latest)")


def vae_script(framework):
    return f"scripts_{framework}/{VAE_QUESTION}_{framework}.py"


def parse_args(parser, argv, question, framework):
    """Parse the latent scripts' command line: they only test (no flag,
    ``--test`` and ``--dry-run`` all mean: draw the pictures); ``--train``
    and ``--resume`` are refused with a UsageError.  The shared training
    flags are still accepted but left out of ``--help``: they do nothing
    here."""
    # argparse has no public way to edit the help of an added flag
    actions = parser._option_string_actions
    for flag in ("--iters", "--batch-size", "--lr", "--seed", "--sample-every", "--checkpoint-every",
                 "--log-every", "--resume"):
        actions[flag].help = argparse.SUPPRESS
    actions["--train"].help = f"refused: this script trains nothing (train the vae with {vae_script(framework)})"
    actions["--test"].help = "draw the pictures (the default)"
    actions["--dry-run"].help = "the same as --test"
    actions["--checkpoint"].help = "vae checkpoint folder (default: the latest in --vae-dir)"
    for group in parser._action_groups:
        if group.title.startswith("what to run"):
            group.title = "what to run (this script only draws pictures)"
        elif group.title == "training":
            group.title = "device"
    args = parser.parse_args(argv)
    if args.train or args.resume:
        flag = "--train" if args.train else "--resume"
        raise UsageError(f"{question} trains nothing ({flag}); train the vae with "
                         f"{vae_script(framework)}, then run this script")
    args.train, args.test = False, True
    return args


def find_vae_checkpoint(args, question, framework):
    """The vae checkpoint the latent scripts load: ``--checkpoint``, or the
    latest one of ``--vae-dir`` (default ``out/vae/<framework>``).

    Returns ``(vae_run, folder)``.  Bad input is a one-line UsageError: no
    trained vae (with the command that trains one), a latent dimension
    other than 2, a vae trained on another data set.  The question,
    framework and image shape are checked afterwards by
    ``vae_run.load_checkpoint_meta``."""
    vae_run = runs.Run(VAE_QUESTION, framework, args.vae_dir)
    if args.checkpoint is None and vae_run.latest_checkpoint() is None:
        dataset = "" if args.dataset == "mnist" else f" --dataset {args.dataset}"
        out_dir = "" if args.vae_dir is None else f" --out-dir {args.vae_dir}"
        raise UsageError(f"{question} needs a trained vae, and there is no checkpoint in {vae_run.checkpoints}: "
                         f"train it first with `python {vae_script(framework)}{dataset}{out_dir}` "
                         "(or point --vae-dir / --checkpoint at a trained vae)")
    folder = vae_run.find_checkpoint(args.checkpoint)
    try:
        meta = runs.read_json(folder / "meta.json")
    except (OSError, ValueError):
        raise UsageError(f"{folder} is not a checkpoint (no readable meta.json)") from None
    if meta.get("question") == VAE_QUESTION and meta.get("framework") == framework:
        dim = meta.get("model", {}).get("latent_dim")
        if dim != LATENT_DIM:
            raise UsageError(f"{question} draws a {LATENT_DIM}-D latent space, but the vae in {folder} has "
                             f"latent dimension {dim}; train one with --latent-dim {LATENT_DIM}")
        trained_on = meta.get("dataset")
        if trained_on is not None and trained_on != args.dataset:
            raise UsageError(f"the vae in {folder} was trained on {trained_on}, not {args.dataset}; "
                             f"pass --dataset {trained_on} (or point --vae-dir at a vae trained on "
                             f"{args.dataset})")
    return vae_run, folder


# ---------------------------------------------------------------------------
# The answer pictures
# ---------------------------------------------------------------------------

def _pretty(dataset):
    return datasets.PRETTY_NAMES.get(dataset, dataset)


def save_scatter(run, means, data, dataset):
    """``test/latent_scatter.png``: the test-set means, one colour per
    class, with a legend of the class names.  Prints and returns a summary
    (also saved as ``test/metrics.json``)."""
    path = pictures.save_scatter(means, data.labels, run.prepare_test() / "latent_scatter.png",
                                 class_names=data.class_names, xlabel="z1 (mean)", ylabel="z2 (mean)",
                                 title=f"VAE latent means of {len(means)} {_pretty(dataset)} test images "
                                       f"({run.framework})")
    print(f"{run.question} {run.framework}: {len(means)} test-set means, coloured by class "
          f"({', '.join(data.class_names)}) -> {path}")
    result = {"scatter": str(path), "points": len(means), "class_names": list(data.class_names)}
    runs.atomic_write_json(run.test / "metrics.json", result)
    return result


def save_line(run, images, z_line, value_range=(0.0, 1.0)):
    """``test/latent_line.png``: the digits decoded along ``z_line``
    ((S, 2) points, images (S, H, W, C)), ticked with their z values."""
    z_line = np.asarray(z_line)
    on_diagonal = np.allclose(z_line[:, 0], z_line[:, 1])
    xlabel = ("z1 = z2" if on_diagonal else "z1") + (
        f"   (the line from ({z_line[0, 0]:g}, {z_line[0, 1]:g}) to ({z_line[-1, 0]:g}, {z_line[-1, 1]:g}))")
    path = pictures.save_table(np.asarray(images)[None], run.prepare_test() / "latent_line.png",
                               row_values=[""], col_values=list(z_line[:, 0].astype(np.float64)),
                               value_range=value_range, xlabel=xlabel, ylabel="",
                               title=f"decoded along a line in z ({run.framework})")
    return path


def save_grid(run, images, row_values, col_values, value_range=(0.0, 1.0)):
    """``test/latent_grid.png``: the table of images decoded over the grid
    (images (R, C, H, W, ch): rows z2, columns z1), ticked with z values."""
    path = pictures.save_table(images, run.prepare_test() / "latent_grid.png",
                               row_values=list(row_values), col_values=list(col_values),
                               value_range=value_range, xlabel="z1", ylabel="z2",
                               title=f"decoded over a {len(row_values)} x {len(col_values)} grid of z "
                                     f"({run.framework})")
    return path


def report_change(run, line_path, grid_path, z_line, row_values, col_values):
    """Print, return and save as ``test/metrics.json`` what
    vae_latent_change wrote."""
    print(f"{run.question} {run.framework}: decoded {len(z_line)} points from "
          f"({z_line[0, 0]:g}, {z_line[0, 1]:g}) to ({z_line[-1, 0]:g}, {z_line[-1, 1]:g}) -> {line_path}; "
          f"a {len(row_values)} x {len(col_values)} grid over z1, z2 in "
          f"[{col_values[0]:g}, {col_values[-1]:g}] -> {grid_path}")
    result = {"line": str(line_path), "grid": str(grid_path), "steps": len(z_line),
              "grid_size": [len(row_values), len(col_values)],
              "line_from": z_line[0].tolist(), "line_to": z_line[-1].tolist(),
              "grid_range": [float(col_values[0]), float(col_values[-1])]}
    runs.atomic_write_json(run.test / "metrics.json", result)
    return result
