"""Run folders, metrics.csv, checkpoints and the training loop's helper (Progress).

Layout of one run (``out/<question>/<framework>/`` unless ``--out-dir``)::

    config.json              the run's settings
    metrics.csv              one row per logged iteration
    curves.png               training curves drawn from metrics.csv
    samples/iter_000500.png  pictures made during training
    checkpoints/iter_000500/ framework weight files + optimizer state,
                             and meta.json (iteration, RNG states, shapes)
    checkpoints/latest.json  which checkpoint is the newest
    test/                    the answer pictures written by --test

A checkpoint is written into a temporary folder and renamed into place, and
``latest.json`` is replaced atomically, so killing a run at any moment
leaves the previous checkpoint intact.  Nothing here is pickled.
"""
import contextlib
import csv
import json
import math
import os
import pickle   # only to recognise its errors: nothing is ever unpickled
import shutil
import signal
import time
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common.datasets import REPO_ROOT
from common.errors import UsageError

CHECKPOINT_FORMAT = 1

# Fault injection for the kill tests (tests/test_kills.py, tests/test_make_answers.py):
# when set to an iteration number, the process SIGKILLs itself at that point, exactly as
# an outside `kill -9` landing there would.  Unset in normal use: nothing happens.
KILL_IN_STEP = "GENMODELS_KILL_IN_STEP"              # after the step, before its metrics row
KILL_IN_CHECKPOINT = "GENMODELS_KILL_IN_CHECKPOINT"  # weights half written, not yet renamed


def _maybe_kill(variable, iteration):
    if os.environ.get(variable) == str(iteration):
        os.kill(os.getpid(), signal.SIGKILL)


class TrainingError(Exception):
    """Training cannot go on (a loss became NaN or infinite)."""


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def atomic_save_npy(path, array):
    """``np.save`` through a temporary file and a rename (no pickles)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.save(f, np.asarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def atomic_write_json(path, obj):
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class MetricsLog:
    """Append-only metrics.csv with a fixed header.

    ``resume_at`` drops rows logged after the checkpoint a run resumes from
    (they were written by the interrupted run after its last checkpoint and
    will be logged again), so the file never holds duplicated or missing
    iterations."""

    def __init__(self, path, fields, resume_at=None):
        self.path = Path(path)
        self.fields = ["iteration", *fields]
        if resume_at is not None and self.path.exists():
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames != self.fields:
                    raise UsageError(f"{self.path} has columns {reader.fieldnames}, expected {self.fields}")
                rows = [r for r in reader if int(r["iteration"]) <= resume_at]
            self._rewrite(rows)
        else:
            self._rewrite([])

    def _rewrite(self, rows):
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)

    def log(self, iteration, values):
        row = {"iteration": iteration}
        for key in self.fields[1:]:
            value = values.get(key, "")
            row[key] = f"{value:.6g}" if isinstance(value, (float, np.floating)) else value
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=self.fields).writerow(row)


class Run:
    """The output folder of one question x framework run."""

    def __init__(self, question, framework, out_dir=None):
        self.question = question
        self.framework = framework
        self.root = Path(out_dir) if out_dir else REPO_ROOT / "out" / question / framework
        self.samples = self.root / "samples"
        self.checkpoints = self.root / "checkpoints"
        self.test = self.root / "test"
        self.metrics_path = self.root / "metrics.csv"
        self.config_path = self.root / "config.json"

    # -- folders ---------------------------------------------------------
    # What a run writes at the top of its folder; a fresh run replaces these
    # and nothing else (an --out-dir may hold other files of the user's).
    RUN_ENTRIES = ("config.json", "metrics.csv", "curves.png", "progress.png", "losses.png",
                   "d_accuracy.png", "d_probabilities.png", "samples", "checkpoints", "test",
                   # the WGANs', pix2pix's and alpha-GAN's training plots
                   "wasserstein.png", "critic.png", "clip_fraction.png", "gradient_norm.png", "l1.png",
                   "c_probabilities.png")

    @property
    def replaced(self):
        """Where a fresh run keeps the previous run's files until its own
        first checkpoint exists (then they are deleted)."""
        return self.root / ".replaced"

    def check_out_dir(self, create=True):
        """The run folder is a folder, or can be created (``create``: it is,
        for training): one line otherwise, before anything is loaded."""
        for path in (self.root, *self.root.parents):
            if path.exists():
                if not path.is_dir():
                    raise UsageError(f"--out-dir {self.root}: {path} is a file, not a folder")
                break
        if not create:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"--out-dir {self.root} cannot be created: {err.strerror or err}") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise UsageError(f"--out-dir {self.root} is not writable")

    def recover(self):
        """Tidy what a killed run left behind, before training in this folder:
        temporary checkpoint folders and files (never read by anything) are
        removed, and the files of the previous run, moved aside by a fresh
        run that was killed before its first checkpoint, are put back."""
        for folder in (self.root, self.checkpoints):
            if folder.is_dir():
                for stale in folder.glob(".*.tmp*"):
                    _remove(stale)
                for stale in folder.glob(".iter_*.old*"):
                    _remove(stale)
        if self.replaced.is_dir():
            if (self.checkpoints / "latest.json").exists():
                shutil.rmtree(self.replaced)     # the new run got as far as a checkpoint
            else:
                self.restore_replaced()

    def prepare_training(self, args, resume):
        """Create the folders and write config.json.  A fresh run (no
        ``--resume``) moves the previous run's files in this folder to
        ``.replaced/``; they are deleted at the new run's first checkpoint,
        and put back if it stops before (``restore_replaced``)."""
        if not resume:
            present = [self.root / name for name in self.RUN_ENTRIES if (self.root / name).exists()]
            if present:
                if self.replaced.exists():
                    shutil.rmtree(self.replaced)
                self.replaced.mkdir(parents=True)
                for path in present:
                    os.replace(path, self.replaced / path.name)
        for sub in (self.root, self.samples, self.checkpoints):
            sub.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.config_path, {"question": self.question, "framework": self.framework,
                                             **vars(args)})

    def restore_replaced(self):
        """Put the previous run's files back (the new run stopped before its
        first checkpoint; what it wrote is dropped).  True if there were any."""
        if not self.replaced.is_dir():
            return False
        for name in self.RUN_ENTRIES:
            if (self.root / name).exists():
                _remove(self.root / name)
        for path in self.replaced.iterdir():
            os.replace(path, self.root / path.name)
        self.replaced.rmdir()
        return True

    def prepare_test(self):
        self.test.mkdir(parents=True, exist_ok=True)
        return self.test

    def sample_path(self, iteration, stem="iter"):
        return self.samples / f"{stem}_{iteration:06d}.png"

    # -- checkpoints -----------------------------------------------------
    def save_checkpoint(self, iteration, write_files, meta, keep=3):
        """Write a checkpoint atomically.

        ``write_files(folder)`` writes the framework's own files (weights,
        optimizer state) into ``folder``; ``meta`` (JSON-able: model shapes,
        RNG states, ...) goes to ``meta.json`` beside them.  The newest
        ``keep`` checkpoints are kept."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        name = f"iter_{iteration:06d}"
        final = self.checkpoints / name
        tmp = self.checkpoints / f".{name}.tmp{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        write_files(tmp)
        _maybe_kill(KILL_IN_CHECKPOINT, iteration)
        full_meta = {"format": CHECKPOINT_FORMAT, "question": self.question,
                     "framework": self.framework, "iteration": int(iteration),
                     "files": sorted(p.name for p in tmp.iterdir()), **meta}
        atomic_write_json(tmp / "meta.json", full_meta)
        if final.exists():
            old = self.checkpoints / f".{name}.old{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
        atomic_write_json(self.checkpoints / "latest.json", {"checkpoint": name, "iteration": int(iteration)})
        if self.replaced.is_dir():   # the new run has a checkpoint: the previous run's files can go
            shutil.rmtree(self.replaced)
        done = sorted(p for p in self.checkpoints.glob("iter_*") if p.is_dir())
        for old in done[:-keep] if keep else []:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def latest_checkpoint(self):
        """The newest checkpoint of this run, or None.  While a fresh run has
        not written its first checkpoint (or was killed before), the previous
        run's newest, moved aside to ``.replaced/``, is the folder's newest."""
        latest = self.checkpoints / "latest.json"
        if not latest.exists() and (self.replaced / "checkpoints" / "latest.json").exists():
            return Run(self.question, self.framework, self.replaced).latest_checkpoint()
        if not latest.exists():
            return None
        try:
            name = read_json(latest)["checkpoint"]
        except (OSError, ValueError, KeyError, TypeError):
            raise UsageError(f"{latest} is damaged (not the JSON of a checkpoint name); "
                             "pass --resume/--checkpoint with a checkpoint folder") from None
        path = self.checkpoints / str(name)
        if path.parent != self.checkpoints or not path.name.startswith("iter_"):
            raise UsageError(f"{latest} names {name!r}, which is not a checkpoint of this run")
        return path if path.is_dir() else None

    def find_checkpoint(self, spec=None):
        """``spec`` None or 'latest': the newest checkpoint of this run;
        otherwise a checkpoint folder (or its meta.json)."""
        if spec in (None, "latest"):
            path = self.latest_checkpoint()
            if path is None:
                raise UsageError(f"no checkpoint in {self.checkpoints} (train first with --train, "
                                 "or pass --checkpoint)")
            return path
        path = Path(spec)
        if path.name == "meta.json":
            path = path.parent
        if not path.is_dir():
            raise UsageError(f"checkpoint {spec} does not exist")
        return path

    def load_checkpoint_meta(self, spec, model):
        """Find a checkpoint and check that it belongs to this question,
        framework and model configuration (``model``: a JSON-able dict such
        as image shape and layer sizes).  Returns ``(folder, meta)``."""
        path = self.find_checkpoint(spec)
        try:
            meta = read_json(path / "meta.json")
        except (OSError, ValueError):
            raise UsageError(f"{path} is not a checkpoint (no readable meta.json)") from None
        if meta.get("question") != self.question:
            raise UsageError(f"checkpoint {path} belongs to question '{meta.get('question')}', "
                             f"not '{self.question}'")
        if meta.get("framework") != self.framework:
            raise UsageError(f"checkpoint {path} was written by the {meta.get('framework')} version; "
                             f"load it with scripts_{meta.get('framework')}/{self.question}_"
                             f"{meta.get('framework')}.py")
        saved = meta.get("model", {})
        if saved != json.loads(json.dumps(model, default=_json_default)):
            diff = {k: (saved.get(k), v) for k, v in model.items() if saved.get(k) != v}
            detail = ", ".join(f"{k}: checkpoint {a} vs now {b}" for k, (a, b) in diff.items())
            raise UsageError(f"checkpoint {path} has another model shape ({detail})")
        return path, meta


def _remove(path):
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def reading(path, what="checkpoint file"):
    """Load one file of a checkpoint inside ``with runs.reading(path):``;
    whatever goes wrong (missing, truncated, another format, a pickle where
    weights should be, arrays of the wrong shape) becomes one line naming
    the file (``UsageError``: exit status 2), never a traceback."""
    try:
        with warnings.catch_warnings():   # a framework's warnings about a broken file are noise here
            warnings.simplefilter("ignore")
            yield
    except UsageError:
        raise
    except FileNotFoundError:
        raise UsageError(f"{what} {path} is missing") from None
    except Exception as err:   # each framework raises its own types for a broken file
        if isinstance(err, pickle.UnpicklingError) or "allow_pickle=False" in str(err):
            raise UsageError(f"{what} {path} holds pickled Python objects, not just arrays: refused, "
                             "since loading them could run code") from None
        detail = _reason(err)
        raise UsageError(f"{what} {path} cannot be loaded ({type(err).__name__}{detail})") from None


def _reason(err):
    """The line of an exception's message that says what is wrong (TF puts
    'Graph execution error:' and the graph node first, the reason after)."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    said = [line for line in lines if not line.rstrip().endswith(":") and not line.startswith((" ", "\t", "[["))
            and not line.startswith(("Detected at node", "Node:"))]
    line = (said or lines or [""])[0].strip()
    line = line.split(". ")[0].rstrip(".")            # its first sentence
    return f": {line[:200]}" if line else ""


def load_npz(path, what="checkpoint file"):
    """The arrays of an ``.npz`` file as a dict, never unpickling anything
    (``allow_pickle=False``: an object array, which could run code when
    unpickled, is refused with one line)."""
    with reading(path, what), np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


PLOT_INTERVAL = 60.0    # seconds: the least time between two redraws of a run's training plots


class Progress:
    """What the training loop of every answer script leans on; the loop
    itself is written out in the script::

        with runs.Progress(run, start, args.iters, ["d_loss", "g_loss"], args.log_every,
                           resume=bool(args.resume)) as progress:
            for iteration in progress:          # the progress bar; times each step
                losses = train_step(...)
                progress.log(iteration, losses)  # NaN check, metrics.csv row when due
                if progress.due(iteration, args.sample_every):
                    ...save a sample picture...
                if progress.due(iteration, args.checkpoint_every):
                    ...save a checkpoint...

    The training plots are redrawn after a checkpoint only when
    ``plots_due`` says so (at most once a minute, and at the last
    iteration)::

                if progress.due(iteration, args.checkpoint_every):
                    ...save a checkpoint...
                    if progress.plots_due(iteration):
                        ...draw the plots of metrics.csv...

    ``log`` stops training with ``TrainingError`` when a value is NaN or
    infinite (the last good checkpoint stays); ``due`` is also true at the
    last iteration.  Leaving the ``with`` on an error before the run's first
    checkpoint gives the folder back to the previous run (see
    ``Run.prepare_training``)."""

    def __init__(self, run, start, iters, fields, log_every, *, resume):
        self.run, self.start, self.iters, self.log_every = run, int(start), int(iters), int(log_every)
        self.metrics = MetricsLog(run.metrics_path, [*fields, "sec_per_iter"], resume_at=start if resume else None)
        self.values, self._t0, self._bar = {}, None, None
        self._plotted = time.monotonic()

    def __enter__(self):
        self._bar = tqdm(total=self.iters, initial=self.start, desc=f"{self.run.question} {self.run.framework}",
                         unit="it", dynamic_ncols=True, mininterval=0.5)
        return self

    def __exit__(self, kind, error, traceback):
        self._bar.close()
        if kind is not None:
            self.run.restore_replaced()
        return False

    def __iter__(self):
        for iteration in range(self.start + 1, self.iters + 1):
            self._t0 = time.perf_counter()
            yield iteration

    def log(self, iteration, values):
        """After the step of ``iteration``: check ``values`` (floats), show
        them on the bar, and write the metrics.csv row when due."""
        seconds = time.perf_counter() - self._t0
        _maybe_kill(KILL_IN_STEP, iteration)
        values = {key: float(value) for key, value in values.items()}
        bad = [key for key, value in values.items() if not math.isfinite(value)]
        if bad:
            if self.run.replaced.is_dir():
                kept = f"nothing of this run was saved; the previous run in {self.run.root} is kept"
            else:
                kept = f"last good checkpoint: {self.run.latest_checkpoint() or 'none'}"
            raise TrainingError(f"{', '.join(bad)} became {values[bad[0]]} at iteration {iteration}; "
                                f"stopped ({kept}); try a smaller --lr")
        self.values = values
        self._bar.update(1)
        self._bar.set_postfix({key: f"{value:.4g}" for key, value in values.items()}, refresh=False)
        if self.due(iteration, self.log_every):
            self.metrics.log(iteration, {**values, "sec_per_iter": seconds})

    def due(self, iteration, every):
        """True every ``every`` iterations (0: never) and at the last one."""
        return bool(every and iteration % every == 0) or iteration == self.iters

    def plots_due(self, iteration):
        """True at the last iteration, and otherwise when ``PLOT_INTERVAL``
        seconds have passed since the plots were last drawn (or training
        started): a set of plots takes about a second to draw, a
        checkpoint may come every few iterations."""
        now = time.monotonic()
        if iteration == self.iters or now - self._plotted >= PLOT_INTERVAL:
            self._plotted = now
            return True
        return False
