"""Fault injection: a training run SIGKILLed at several moments, one of
them with a checkpoint half written, then resumed, ends exactly as a run that
was never interrupted, and leaves no broken or stale checkpoint behind.

The kills come from inside (common.runs.KILL_IN_STEP / KILL_IN_CHECKPOINT:
the process sends itself SIGKILL at a chosen iteration), so the test hits the
moments that matter every time instead of by luck."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from common import runs
from tests.answers import read_rows
from tests.conftest import ROOT, script_path

ITERS = 8


def train(framework, image_folder, out, *more, kill=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENMODELS_")}
    if kill:
        env[kill[0]] = str(kill[1])
    argv = ["--train", "--dataset", "imori", "--data-dir", image_folder, "--out-dir", out, "--batch-size", 8,
            "--iters", ITERS, "--checkpoint-every", 2, "--sample-every", 3, "--log-every", 1, "--seed", 7, *more]
    return subprocess.run([sys.executable, str(script_path("ae", framework)), *map(str, argv)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def weights(framework, checkpoint):
    if framework == "pytorch":
        import torch
        state = torch.load(checkpoint / "model.pt", map_location="cpu", weights_only=True)["model"]
        return {k: v.numpy() for k, v in state.items()}
    return runs.load_npz(checkpoint / "model.npz")


def check_checkpoints(out):
    """Every checkpoint folder is complete and readable; latest.json names
    one; nothing temporary is read."""
    folders = sorted(p for p in (out / "checkpoints").glob("iter_*"))
    for folder in folders:
        meta = json.loads((folder / "meta.json").read_text())
        assert sorted(p.name for p in folder.iterdir()) == sorted([*meta["files"], "meta.json"]), folder
    latest = json.loads((out / "checkpoints" / "latest.json").read_text())
    assert (out / "checkpoints" / latest["checkpoint"]) in folders
    return latest["iteration"]


def rows_without_time(out):
    return [{k: v for k, v in row.items() if k != "sec_per_iter"} for row in read_rows(out / "metrics.csv")]


@pytest.mark.parametrize("framework", ["pytorch", "chainer"])
def test_killed_and_resumed_equals_uninterrupted(framework, image_folder, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train(framework, image_folder, whole).returncode == 0

    # killed mid-iteration 3 (after the step, before its metrics row): checkpoint 2 stays
    assert train(framework, image_folder, parts, kill=(runs.KILL_IN_STEP, 3)).returncode == -9
    assert check_checkpoints(parts) == 2
    # resumed, killed while writing checkpoint 4: a half-written temporary folder is left ...
    proc = train(framework, image_folder, parts, "--resume", kill=(runs.KILL_IN_CHECKPOINT, 4))
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert list((parts / "checkpoints").glob(".iter_000004.tmp*"))
    assert check_checkpoints(parts) == 2
    # ... resumed again, killed mid-iteration 7 ...
    assert train(framework, image_folder, parts, "--resume", kill=(runs.KILL_IN_STEP, 7)).returncode == -9
    assert check_checkpoints(parts) == 6
    # ... and resumed to the end
    proc = train(framework, image_folder, parts, "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]

    assert check_checkpoints(parts) == ITERS
    leftovers = [p.name for p in [*parts.iterdir(), *(parts / "checkpoints").iterdir()] if p.name.startswith(".")]
    assert leftovers == []                   # the stale temporary folder was removed, never read
    assert rows_without_time(parts) == rows_without_time(whole)      # every row, once, bit for bit
    final = f"iter_{ITERS:06d}"
    a, b = weights(framework, whole / "checkpoints" / final), weights(framework, parts / "checkpoints" / final)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert sorted(p.name for p in (parts / "samples").glob("*.png")) == \
        sorted(p.name for p in (whole / "samples").glob("*.png"))
