"""Run folders, metrics.csv, checkpoints and the shared training loop.

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
import csv
import json
import math
import os
import shutil
import signal
import time
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
    def prepare_training(self, args, resume):
        """Create the folders.  A fresh run (no ``--resume``) replaces the
        previous run's metrics, samples and checkpoints in this folder."""
        if not resume:
            for sub in (self.samples, self.checkpoints):
                if sub.exists():
                    shutil.rmtree(sub)
            for f in (self.metrics_path, self.root / "curves.png"):
                if f.exists():
                    f.unlink()
        for sub in (self.root, self.samples, self.checkpoints):
            sub.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.config_path, {"question": self.question, "framework": self.framework,
                                             **vars(args)})

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
        done = sorted(p for p in self.checkpoints.glob("iter_*") if p.is_dir())
        for old in done[:-keep] if keep else []:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def latest_checkpoint(self):
        latest = self.checkpoints / "latest.json"
        if not latest.exists():
            return None
        path = self.checkpoints / read_json(latest)["checkpoint"]
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


def train_loop(run, *, start, iters, step, fields, on_sample, on_checkpoint,
               sample_every, checkpoint_every, log_every, resume_at=None, curves=None,
               desc=None):
    """The training loop shared by every answer script.

    ``step(iteration)`` runs one training iteration in the framework and
    returns a dict of floats (the names in ``fields``).  Rows go to
    metrics.csv every ``log_every`` iterations (plus seconds per iteration),
    ``on_sample(it)`` and ``on_checkpoint(it)`` run every ``sample_every`` /
    ``checkpoint_every`` iterations and after the last one.  A NaN or
    infinite loss stops training with ``TrainingError``; the last good
    checkpoint stays.  ``curves`` (a list of metric names) are plotted to
    curves.png at each checkpoint."""
    from common.pictures import plot_curves  # matplotlib only when training

    log = MetricsLog(run.metrics_path, [*fields, "sec_per_iter"], resume_at=resume_at)
    bar = tqdm(total=iters, initial=start, desc=desc or f"{run.question} {run.framework}",
               unit="it", dynamic_ncols=True, mininterval=0.5)
    values = {}
    try:
        for it in range(start + 1, iters + 1):
            t0 = time.perf_counter()
            values = step(it)
            seconds = time.perf_counter() - t0
            _maybe_kill(KILL_IN_STEP, it)
            bad = [k for k, v in values.items() if not math.isfinite(float(v))]
            if bad:
                last = run.latest_checkpoint()
                raise TrainingError(f"{', '.join(bad)} became {values[bad[0]]} at iteration {it}; "
                                    f"stopped (last good checkpoint: {last or 'none'}); "
                                    "try a smaller --lr")
            bar.update(1)
            bar.set_postfix({k: f"{float(v):.4g}" for k, v in values.items()}, refresh=False)
            last_it = it == iters
            if it % log_every == 0 or last_it:
                log.log(it, {**values, "sec_per_iter": seconds})
            if (sample_every and it % sample_every == 0) or last_it:
                on_sample(it)
            if (checkpoint_every and it % checkpoint_every == 0) or last_it:
                on_checkpoint(it)
                if curves:
                    plot_curves(run.metrics_path, run.root / "curves.png", curves, logy=True,
                                title=f"{run.question} ({run.framework})")
    finally:
        bar.close()
    return values


def report_test(lines, path=None):
    """Print the test summary lines and, if ``path``, save them as JSON-free
    text next to the test pictures."""
    text = "\n".join(lines)
    print(text)
    if path is not None:
        atomic_write_text(path, text + "\n")
