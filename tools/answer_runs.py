"""Answer runs that outlive a session: what a run folder says about its run,
one runner at a time, the background launch.

tools/make_answers.py knows the answers and calls this; nothing here knows a
question or a framework.  A run folder is read as common/runs.py writes it:
``config.json`` (the run's settings), ``metrics.csv`` (``sec_per_iter`` per
logged row), ``checkpoints/latest.json`` (the newest complete checkpoint),
``checkpoints/.iter_NNNNNN.tmpPID/`` (a checkpoint that a kill cut short) and
``test/metrics.json`` (written by ``--test``).
"""
import codecs
import csv
import fcntl
import filecmp
import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

CHECKPOINT_SECONDS = 600     # checkpoint often enough that a kill loses at most ~10 minutes
UNKNOWN_SPEED_EVERY = 50     # the checkpoint interval of a run whose speed is not known yet
LOCK_NAME = ".lock"          # <runs-dir>/.lock: the pid of the runner working there
LOG_NAME = "make_answers.log"
_CUT_SHORT = re.compile(r"\.iter_(\d+)\.tmp(\d+)$")
_SCRIPT_ERROR = re.compile(r"^\S+\.py: error: ")


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def train_seconds(path, digits=1):
    """The training time in metrics.csv (each row's seconds per iteration times
    the iterations since the row before), which spans a resumed run's parts;
    rounded to ``digits`` (None: not rounded)."""
    if not Path(path).exists():
        return None
    total, last = 0.0, 0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            iteration = int(row["iteration"])
            total += float(row["sec_per_iter"]) * (iteration - last)
            last = iteration
    return total if digits is None else round(total, digits)


def last_logged(path):
    """The last iteration in metrics.csv (None: no rows, or no readable file)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return int(rows[-1]["iteration"]) if rows else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def busy_pids(run_dir):
    """Processes (a training script started by hand or by an earlier runner)
    whose ``--out-dir`` is ``run_dir``; read from /proc where there is one."""
    proc, target, found = Path("/proc"), Path(run_dir).resolve(), []
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = [os.fsdecode(a) for a in (entry / "cmdline").read_bytes().split(b"\0")]
            out = next((argv[i + 1] if a == "--out-dir" else a.split("=", 1)[1] for i, a in enumerate(argv)
                        if a == "--out-dir" or a.startswith("--out-dir=")), None)
            if out is not None and (Path(os.readlink(entry / "cwd")) / out).resolve() == target:
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def cut_short(run_dir):
    """{iteration: folder} of the checkpoints that a kill left half written."""
    found = {}
    for path in Path(run_dir, "checkpoints").glob(".iter_*.tmp*"):
        match = _CUT_SHORT.search(path.name)
        if match and not pid_alive(int(match.group(2))):
            found[int(match.group(1))] = path
    return found


@dataclass
class RunState:
    """What one answer run's folder says (make_answers.inspect fills it in)."""
    answer: str
    framework: str
    run_dir: Path
    target: int = None           # iterations to reach; None: a test-only answer
    started: bool = False        # config.json exists
    checkpoint: int = None       # iteration of the newest complete checkpoint
    logged: int = None           # last iteration in metrics.csv
    seconds: float = None        # training seconds so far (metrics.csv)
    cut_short: list = field(default_factory=list)
    tested: bool = False         # test/metrics.json newer than the checkpoint it tested
    recorded: bool = False       # pictures in the answers folder equal the run's, results.json has it
    busy: list = field(default_factory=list)
    settings: str = None         # how config.json differs from the answer's settings
    waits_for: str = None        # the unfinished run that a test-only answer needs

    @property
    def key(self):
        return f"{self.answer}/{self.framework}"

    @property
    def trained(self):
        return self.target is None or (self.checkpoint or 0) >= self.target

    @property
    def sec_per_iter(self):
        return self.seconds / self.logged if self.seconds and self.logged else None

    @property
    def seconds_left(self):
        if self.target is None or self.sec_per_iter is None:
            return None
        return max(0, self.target - max(self.logged or 0, self.checkpoint or 0)) * self.sec_per_iter

    def describe(self):
        if self.busy:
            return f"running (pid {', '.join(map(str, self.busy))})"
        if self.settings:
            return f"other settings ({self.settings})"
        if self.target is None:
            return (f"waits for {self.waits_for}" if self.waits_for else
                    "done" if self.tested else "test to run")
        if not self.started:
            return "not started"
        text = ("stopped before its first checkpoint" if self.checkpoint is None else
                f"stopped, resumes from iteration {self.checkpoint}" if not self.trained else
                "trained, test to run" if not self.tested else "done")
        if self.cut_short:
            text += f"; a kill cut checkpoint {', '.join(map(str, self.cut_short))} short"
        return text


def _latest(run_dir):
    latest = read_json(Path(run_dir) / "checkpoints" / "latest.json")
    return latest if isinstance(latest, dict) else {}


def inspect_run(state, pictures, entry, depends_on=None):
    """Fill ``state`` from its run folder.  ``pictures``: {run picture: answers
    picture}; ``entry``: the answer's results.json entry (None if none);
    ``depends_on``: the RunState of the run a test-only answer tests."""
    run_dir = state.run_dir
    state.started = (run_dir / "config.json").is_file()
    latest = _latest(run_dir)
    meta = run_dir / "checkpoints" / str(latest.get("checkpoint")) / "meta.json"
    state.checkpoint = latest.get("iteration") if meta.is_file() else None
    state.logged = last_logged(run_dir / "metrics.csv")
    try:
        state.seconds = train_seconds(run_dir / "metrics.csv", digits=None)   # a short run's 0.04 s is not 0
    except (OSError, ValueError, KeyError, TypeError):   # a damaged file: the script will say more
        state.seconds = None
    state.busy = busy_pids(run_dir)
    state.cut_short = [] if state.busy else sorted(cut_short(run_dir))
    if depends_on is not None:       # a test-only answer tests the checkpoint of the run it needs
        if not depends_on.trained or depends_on.busy:
            state.waits_for = depends_on.key
        meta = depends_on.run_dir / "checkpoints" / str(_latest(depends_on.run_dir).get("checkpoint")) / "meta.json"
    tested = run_dir / "test" / "metrics.json"
    state.tested = tested.is_file() and (not meta.is_file() or tested.stat().st_mtime >= meta.stat().st_mtime)
    state.recorded = entry is not None and all(
        src.is_file() and dst.is_file() and filecmp.cmp(src, dst, shallow=False) for src, dst in pictures.items())
    return state


def compare_settings(config, expected):
    """'lr 0.001, not 0.0002' for the settings in which config.json differs from
    ``expected`` ({name: value}); None when they agree or there is no config.
    Fewer iterations than expected is no difference: the answer's iterations
    grew, and its run continues from its last checkpoint to the new target."""
    if not config:
        return None
    differ = []
    for name, value in expected.items():
        if name not in config or config[name] is None:
            continue
        have = config[name]
        try:
            same = math.isclose(float(have), float(value)) or (name == "iters" and float(have) < float(value))
        except (TypeError, ValueError):
            same = str(have) == str(value)
        if not same:
            differ.append(f"{name} {have}, not {value}")
    return ", ".join(differ) or None


def checkpoint_interval(sec_per_iter):
    """Iterations between checkpoints so that a kill loses at most
    CHECKPOINT_SECONDS: the largest 1, 2, 5 x 10^k that fits."""
    if not sec_per_iter:
        return UNKNOWN_SPEED_EVERY
    fits = CHECKPOINT_SECONDS / sec_per_iter
    if fits < 2:
        return 1
    power = 10 ** math.floor(math.log10(fits))
    return next(m * power for m in (5, 2, 1) if m * power <= fits)


def format_seconds(seconds):
    if seconds is None:
        return "-"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def status_lines(states):
    """One line per answer run, under a header."""
    rows = [("answer", "framework", "iteration", "s/it", "left", "recorded", "state")]
    for s in states:
        if s.target is None:
            iteration = "test only"
        else:
            iteration = f"{s.checkpoint or 0}/{s.target}"
            if s.logged and s.logged > (s.checkpoint or 0):
                iteration += f" (log {s.logged})"
        rows.append((s.answer, s.framework, iteration,
                     f"{s.sec_per_iter:.2f}" if s.sec_per_iter else "-",
                     format_seconds(s.seconds_left), "yes" if s.recorded else "no", s.describe()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]).rstrip() for r in rows]


class RunnerLock:
    """``<runs-dir>/.lock``, held with flock while a runner works: the kernel
    drops it when the holder dies, so a stale lock of a dead pid is simply
    taken over.  The training script a runner starts inherits it (pass
    ``fd`` to the child), so a runner killed alone does not free a folder
    that its script still writes."""

    def __init__(self, runs_dir):
        self.path = Path(runs_dir) / LOCK_NAME
        self.fd = None

    def holder(self):
        """The pid written by the runner holding the lock, if it is alive."""
        try:
            pid = int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def acquire(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def release(self):
        if self.fd is not None:
            os.ftruncate(self.fd, 0)   # no holder named while nobody holds it
            os.close(self.fd)
            self.fd = None


def run_script(command, cwd, env=None, pass_fds=()):
    """Run a training script, passing its stderr (progress bars) through,
    except its one-line usage error, which comes back: (status, error line)."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stderr=subprocess.PIPE, pass_fds=pass_fds)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending, held = "", []
    try:
        while chunk := proc.stderr.read1(8192):
            pending += decoder.decode(chunk)
            *lines, pending = pending.split("\n")
            for line in lines:
                if _SCRIPT_ERROR.match(line.rsplit("\r", 1)[-1]):
                    held.append(line.rsplit("\r", 1)[-1])
                else:
                    sys.stderr.write(line + "\n")
            head, cr, pending = pending.rpartition("\r")
            sys.stderr.write(head + cr)
            sys.stderr.flush()
        status = proc.wait()
    except KeyboardInterrupt:
        proc.wait()
        raise
    sys.stderr.write(pending)
    if status == 0 and held:
        sys.stderr.write("\n".join(held) + "\n")
    message = _SCRIPT_ERROR.sub("", held[-1]) if held else ""
    return status, message


def launch_background(argv, runs_dir):
    """Start this tool again, detached from the terminal and the session
    (it outlives a closed shell), at the lowest priority (``--detached``
    makes it ``nice 19``), appending to ``<runs-dir>/make_answers.log``.
    Returns (pid, log path)."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    log = runs_dir / LOG_NAME
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, *argv, "--detached"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc.pid, log


def clean_cut_short(run_dir):
    """Remove the checkpoints that a kill left half written (the script
    resumes from the complete one before them)."""
    for path in cut_short(run_dir).values():
        shutil.rmtree(path, ignore_errors=True)
