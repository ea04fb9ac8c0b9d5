"""Shared pytest fixtures: the repository on sys.path, small data sets in
the real on-disk formats, and a loader for the answer scripts."""
import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests run on the CPU everywhere
os.environ.setdefault("MPLBACKEND", "Agg")
# 2 cores: one OpenMP thread per process keeps PyTorch from spinning against
# TensorFlow's thread pool in the same test process (and against subprocesses).
os.environ.setdefault("OMP_NUM_THREADS", "1")

FRAMEWORKS = ("pytorch", "tf_slim", "keras", "chainer")

# Temporary folders in RAM.  The tests write and delete some 10,000 files
# (runs, checkpoints written with fsync, pictures); on a disk mounted with
# online discard an fsync costs ~4 ms and an unlink ~2-4 ms, which added
# minutes to the suite.  Where a tmpfs with room is at hand (/dev/shm on
# Linux) and no --basetemp was given, the run's temporary folder goes
# there; it is removed when the run passes and kept (its path printed) when
# a test failed.
RAM_TMP = Path("/dev/shm")
RAM_TMP_MIN_FREE = 4 << 30      # bytes; the suite writes under 1 GiB


def _ram_basetemp():
    try:
        if not (RAM_TMP.is_dir() and os.access(RAM_TMP, os.W_OK | os.X_OK)):
            return None
        stat = os.statvfs(RAM_TMP)
        if stat.f_bavail * stat.f_frsize < RAM_TMP_MIN_FREE:
            return None
        import tempfile
        return Path(tempfile.mkdtemp(prefix="pytest-generative-", dir=RAM_TMP))
    except OSError:
        return None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # before pytest's tmp_path plugin reads --basetemp; xdist workers get
    # the controller's folder (a subfolder each) as their --basetemp
    if hasattr(config, "workerinput") or config.option.basetemp is not None:
        return
    folder = _ram_basetemp()
    if folder is not None:
        config.option.basetemp = str(folder)
        config._ram_basetemp = folder


def pytest_unconfigure(config):
    folder = getattr(config, "_ram_basetemp", None)
    if folder is None or not folder.exists():
        return
    if getattr(config, "_tests_failed", False):
        print(f"\ntemporary files of this run kept in {folder} (in RAM: remove it when done)")
    else:
        import shutil
        shutil.rmtree(folder, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    session.config._tests_failed = exitstatus not in (0, 5)       # 5: no tests collected


def script_path(question, framework):
    return ROOT / f"scripts_{framework}" / f"{question}_{framework}.py"


_loaded = {}


def load_script(question, framework):
    """Import an answer script as a module (nothing runs at import)."""
    key = (question, framework)
    if key not in _loaded:
        path = script_path(question, framework)
        spec = importlib.util.spec_from_file_location(f"{question}_{framework}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[key] = module
    return _loaded[key]


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """A tiny newt-style data set: train/test, two classes, JPEGs and masks."""
    from tests.fixtures import make_image_folder
    root = tmp_path_factory.mktemp("imori")
    return make_image_folder(root, classes=("akahara", "madara"), n_per_class=4, size=(64, 64),
                             seed=0, with_masks=True)
