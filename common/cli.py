"""The command line every answer script shares, seeding, and ``run_main``.

All scripts take the same flags (kebab-case, defaults shown in ``--help``)::

    --train --test --dataset --data-dir --iters --batch-size --lr --seed
    --out-dir --resume [CKPT] --checkpoint CKPT --sample-every
    --checkpoint-every --log-every --device {auto,cpu,gpu} --dry-run

plus the question's own flags, added through ``extra``.  With neither
``--train`` nor ``--test`` a script does both.  ``--dry-run`` runs one
iteration, writes one sample and one checkpoint, then tests.
"""
import argparse
import random
import sys

import numpy as np

from common.datasets import DATASETS
from common.errors import UsageError
from common.runs import TrainingError

FRAMEWORKS = ("pytorch", "tf_slim", "keras", "chainer")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags in one line (exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" after a flag's help, but not where the help
    already names its default or where there is none (None, an off switch)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


positive_int = _positive_int
positive_float = _positive_float


def build_parser(question, framework, description, *, dataset, datasets=DATASETS,
                 iters, batch_size, lr, sample_every=100, checkpoint_every=500,
                 log_every=10, seed=0, extra=None):
    """The shared parser with the question's defaults.

    ``extra(parser)`` adds the question's own flags."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework}")
    parser = _Parser(
        prog=f"{question}_{framework}.py", description=description,
        formatter_class=_HelpFormatter)
    what = parser.add_argument_group("what to run (neither flag: train, then test)")
    what.add_argument("--train", action="store_true", help="train, writing samples and checkpoints")
    what.add_argument("--test", action="store_true", help="load the checkpoint and write the answer pictures")
    what.add_argument("--dry-run", action="store_true",
                      help="one iteration, one sample, one checkpoint, then the test: checks the whole pipeline")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default=dataset, choices=datasets, help="data set")
    data.add_argument("--data-dir", default=None,
                      help="folder holding the data set files (default: Dataset/ for imori, "
                           "Dataset/<dataset>/ for downloaded sets; any folder of class sub-folders for imori)")
    train = parser.add_argument_group("training")
    train.add_argument("--iters", type=_positive_int, default=iters, help="training iterations")
    train.add_argument("--batch-size", type=_positive_int, default=batch_size, help="minibatch size")
    train.add_argument("--lr", type=_positive_float, default=lr, help="learning rate")
    train.add_argument("--seed", type=_non_negative_int, default=seed, help="random seed (data order, augmentation, init)")
    train.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                       help="where to run: auto takes a GPU when the framework sees one")
    out = parser.add_argument_group("output and checkpoints")
    out.add_argument("--out-dir", default=None,
                     help=f"run folder (default: out/{question}/{framework}); a fresh run moves the previous "
                          "run's files there aside and deletes them only once it has written its first "
                          "checkpoint (if it stops before, they are put back)")
    out.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CKPT",
                     help="continue training from the latest checkpoint in --out-dir, or from CKPT, with the "
                          "run's own settings (config.json): a flag left out takes the run's value; only "
                          "--iters, --sample-every, --checkpoint-every, --log-every, --device, --data-dir and "
                          "(CGAN) --classes may change")
    out.add_argument("--checkpoint", default=None, metavar="CKPT",
                     help="checkpoint folder for --test (default: the latest in --out-dir)")
    out.add_argument("--sample-every", type=_non_negative_int, default=sample_every,
                     help="write a sample picture every N iterations (0: only at the end)")
    out.add_argument("--checkpoint-every", type=_non_negative_int, default=checkpoint_every,
                     help="write a checkpoint every N iterations (0: only at the end)")
    out.add_argument("--log-every", type=_positive_int, default=log_every,
                     help="write a metrics.csv row every N iterations")
    if extra is not None:
        extra(parser.add_argument_group(f"{question} options"))
    parser.question, parser.framework = question, framework   # for the run folder checks in parse_args
    return parser


# On --resume the run's config.json fills in every setting not written on the
# command line.  Of those written, the ones below may differ from the run's
# (how long, how often, where, on which device, where the data lies); every
# other setting is fixed by the run: its optimizer state, data order and
# networks were made with it.
RESUME_IGNORED = {"train", "test", "dry_run", "resume", "checkpoint", "out_dir"}   # what to do, and where
# --classes (CGAN) only picks the rows of the test pictures: it never changes training
RESUME_FREE = {"iters", "sample_every", "checkpoint_every", "log_every", "device", "data_dir", "classes"}


def _given(parser, argv):
    """The destinations of the flags actually written on the command line."""
    saved = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        return set(vars(parser.parse_args(argv)))
    finally:
        for action, default in saved:
            action.default = default


def _resume_settings(args, given, run):
    """On --resume, the run's own settings (its config.json) apply: a flag
    left out takes the run's value, a fixed setting given with another value
    is refused, so config.json only ever records what the run used."""
    if not run.config_path.exists():
        return
    from common.runs import read_json
    try:
        saved = read_json(run.config_path)
    except (OSError, ValueError):
        raise UsageError(f"{run.config_path} is damaged (not JSON); cannot check the run's settings") from None
    clashes = []
    for key, value in vars(args).items():
        if key in RESUME_IGNORED or key not in saved or saved[key] == value:
            continue
        if key not in given and not (args.dry_run and key in RESUME_FREE):
            setattr(args, key, saved[key])
        elif key not in RESUME_FREE:
            clashes.append(f"--{key.replace('_', '-')} {value} (the run used {saved[key]})")
    if clashes:
        raise UsageError(f"--resume continues the run in {run.root} with its own settings, not "
                         f"{'; '.join(clashes)}: drop the flag, or start a fresh run")


def parse_args(parser, argv=None):
    """Parse and normalise: no --train/--test means both; --dry-run means
    one iteration with one sample and one checkpoint."""
    args = parser.parse_args(argv)
    if not args.train and not args.test:
        args.train = args.test = True
    if args.dry_run:
        args.train = args.test = True
        args.iters = 1
        args.sample_every = args.checkpoint_every = args.log_every = 1
    if args.resume and not args.train:
        parser.error("--resume continues training; use it with --train")
    if hasattr(parser, "question"):
        from common.runs import Run
        run = Run(parser.question, parser.framework, args.out_dir)
        # a file or an impossible path: one line before any work
        run.check_out_dir(create=args.train)
    if args.train and hasattr(parser, "question"):
        run.recover()            # what a killed run left: temporary files, a replaced run
        if args.resume:
            _resume_settings(args, _given(parser, argv), run)
    return args


def seed_everything(seed):
    """Seed Python's and NumPy's global generators and return the seeded
    ``numpy.random.Generator`` that the data pipeline draws from.  Each
    script seeds its framework too (``torch.manual_seed`` etc.)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    return np.random.default_rng(seed)


def resolve_device(choice, gpu_available):
    """'auto' -> 'gpu' if available else 'cpu'; asking for a missing GPU is
    a usage error."""
    if choice == "gpu" and not gpu_available:
        raise UsageError("--device gpu was asked for, but this framework sees no GPU (use --device cpu)")
    if choice == "auto":
        return "gpu" if gpu_available else "cpu"
    return choice


def run_main(main, argv=None):
    """Run a script's ``main(argv)``: a ``UsageError`` becomes one line on
    stderr and exit status 2; Ctrl-C says how to resume."""
    prog = sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else "script"
    try:
        return main(argv)
    except UsageError as err:
        sys.stderr.write(f"{prog}: error: {err}\n")
        raise SystemExit(2) from None
    except TrainingError as err:
        sys.stderr.write(f"{prog}: error: {err}\n")
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{prog}: interrupted; the last checkpoint is kept, continue with --resume\n")
        raise SystemExit(130) from None
