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
