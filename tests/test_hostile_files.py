"""Hostile and broken files, unusable folders, changed settings: every case
is one line on stderr and exit status 2, no file runs code, and nothing of a
previous run is lost before something replaces it.

The AE answer stands in for every question: the checkpoint loading, the run
folder and the command line it uses are the ones all answers use (the GAN
answers' own files are covered in test_answers_gan.py)."""
import json
import pickle
import shutil
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.answers import expect_usage_error, read_rows, run_in_process, run_program
from tests.conftest import FRAMEWORKS, ROOT

# The files of one AE checkpoint in each framework (meta.json beside them).
CHECKPOINT_FILES = {
    "pytorch": ["model.pt"],
    "tf_slim": ["model.ckpt.index", "model.ckpt.data-00000-of-00001"],
    "keras": ["model.weights.h5", "optimizer.npz"],
    "chainer": ["model.npz", "optimizer.npz", "numpy_rng.npz"],
}


def ae_args(image_folder, out_dir, *more):
    return ["--dataset", "imori", "--data-dir", image_folder, "--out-dir", out_dir, "--batch-size", 8, *more]


class Payload:
    """Unpickling this creates the file ``marker``: the stand-in for any
    code a hostile checkpoint would run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def object_array_npz(path, marker, like=None):
    """An .npz whose first array is an object array holding a Payload (the
    other arrays of ``like`` kept, so only the pickle makes it hostile)."""
    arrays = dict(np.load(like, allow_pickle=False)) if like is not None else {"x": np.zeros(1)}
    first = sorted(arrays)[0]
    hostile = np.empty(1, dtype=object)
    hostile[0] = Payload(marker)
    arrays[first] = hostile
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.fixture(scope="module")
def trained(image_folder, tmp_path_factory):
    """framework -> a run folder with two checkpoints of a 4-iteration AE run."""
    runs = {}
    for framework in FRAMEWORKS:
        out = tmp_path_factory.mktemp(f"ae_{framework}")
        run_in_process("ae", framework, ae_args(image_folder, out, "--train", "--iters", 4, "--checkpoint-every",
                                                2, "--sample-every", 0, "--log-every", 1))
        runs[framework] = out
    return runs


def copy_run(source, target):
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_hostile_weights_file_runs_nothing(framework, trained, image_folder, tmp_path):
    # as a user would meet it: a downloaded checkpoint, loaded by the program
    run = copy_run(trained[framework], tmp_path / "run")
    checkpoint = run / "checkpoints" / "iter_000004"
    marker = tmp_path / "payload_ran"
    weights = checkpoint / CHECKPOINT_FILES[framework][0]
    if framework == "chainer":
        object_array_npz(weights, marker, like=weights)            # an object array inside model.npz
    elif framework == "pytorch":
        with open(weights, "wb") as f:                              # a pickle where tensors should be
            pickle.dump({"model": Payload(marker)}, f)
    else:
        weights.write_bytes(pickle.dumps(Payload(marker)))          # a pickle where HDF5 / a TF index should be
    proc = run_program("ae", framework, ["--test", *ae_args(image_folder, run)])
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    named = "model.ckpt" if framework == "tf_slim" else weights.name    # TF names the checkpoint by its prefix
    assert len(lines) == 1 and named in lines[0], proc.stderr[-2000:]
    assert not marker.exists(), "loading the checkpoint ran the payload"


@pytest.mark.parametrize("framework", ["keras", "chainer"])
def test_a_hostile_optimizer_file_runs_nothing(framework, trained, image_folder, tmp_path, capsys):
    run = copy_run(trained[framework], tmp_path / "run")
    optimizer = run / "checkpoints" / "iter_000004" / "optimizer.npz"
    marker = tmp_path / "payload_ran"
    object_array_npz(optimizer, marker, like=optimizer)
    expect_usage_error(capsys, "ae", framework, ae_args(image_folder, run, "--train", "--resume", "--iters", 6),
                       "optimizer.npz")
    assert not marker.exists()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_truncated_checkpoint_file_is_one_line(framework, trained, image_folder, tmp_path, capsys):
    for name in [*CHECKPOINT_FILES[framework], "meta.json"]:
        run = copy_run(trained[framework], tmp_path / name)
        path = run / "checkpoints" / "iter_000004" / name
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
        line = expect_usage_error(capsys, "ae", framework,
                                  ae_args(image_folder, run, "--train", "--resume", "--iters", 6))
        assert str(path.parent) in line, line
    run = copy_run(trained[framework], tmp_path / "latest")
    (run / "checkpoints" / "latest.json").write_text("{not json")
    expect_usage_error(capsys, "ae", framework, ["--test", *ae_args(image_folder, run)], "latest.json")


def test_a_truncated_weights_file_is_one_line_as_a_program(trained, image_folder, tmp_path):
    run = copy_run(trained["pytorch"], tmp_path / "run")
    weights = run / "checkpoints" / "iter_000004" / "model.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    proc = run_program("ae", "pytorch", ["--test", *ae_args(image_folder, run)])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "model.pt" in proc.stderr


def test_an_unusable_out_dir_is_one_line_before_any_work(image_folder, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    expect_usage_error(capsys, "ae", "pytorch", ae_args(image_folder, a_file, "--dry-run"), "is a file")
    expect_usage_error(capsys, "ae", "pytorch", ae_args(image_folder, a_file / "run", "--dry-run"), "is a file")
    expect_usage_error(capsys, "ae", "pytorch", ["--test", *ae_args(image_folder, a_file)], "is a file")
    expect_usage_error(capsys, "ae", "pytorch", ae_args(image_folder, "/proc/no/such/run", "--dry-run"),
                       "cannot be created")
    assert a_file.read_text() == "mine"


def test_stale_temporary_checkpoints_are_removed_and_never_read(trained, image_folder, tmp_path):
    run = copy_run(trained["chainer"], tmp_path / "run")
    checkpoints = run / "checkpoints"
    stale = checkpoints / ".iter_000006.tmp4242"
    stale.mkdir()
    (stale / "model.npz").write_bytes(b"half written")
    (checkpoints / ".iter_000004.old4242").mkdir()
    (checkpoints / ".latest.json.tmp4242").write_text("{")
    run_in_process("ae", "chainer", ae_args(image_folder, run, "--train", "--resume", "--iters", 6,
                                            "--checkpoint-every", 2, "--sample-every", 0, "--log-every", 1))
    assert sorted(p.name for p in checkpoints.iterdir()) == ["iter_000002", "iter_000004", "iter_000006",
                                                             "latest.json"]


@pytest.mark.parametrize("framework", ["pytorch", "keras"])
def test_a_failing_fresh_run_keeps_the_previous_run(framework, trained, image_folder, tmp_path, capsys):
    run = copy_run(trained[framework], tmp_path / "run")
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as stop:
        run_in_process("ae", framework, ae_args(image_folder, run, "--train", "--iters", 50, "--lr", 1e30,
                                                "--sample-every", 1))
    assert stop.value.code == 1
    assert "the previous run" in capsys.readouterr().err
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before          # config.json, metrics.csv, checkpoints and samples as they were


def test_a_fresh_run_killed_before_its_first_checkpoint_gives_the_folder_back(trained, image_folder, tmp_path):
    run = copy_run(trained["pytorch"], tmp_path / "run")
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    env = {"GENMODELS_KILL_IN_STEP": "2"}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts_pytorch" / "ae_pytorch.py"),
                           *map(str, ae_args(image_folder, run, "--train", "--iters", 8, "--seed", 5))],
                          cwd=ROOT, capture_output=True, text=True, env={**_env(), **env})
    assert proc.returncode == -9
    # --test meanwhile still finds the previous run's checkpoint (moved aside, never deleted)
    assert run_in_process("ae", "pytorch", ["--test", *ae_args(image_folder, tmp_path / "run")]) > 0
    # the next training in the folder puts the previous run back first: --resume continues it
    run_in_process("ae", "pytorch", ae_args(image_folder, run, "--train", "--resume", "--iters", 4))
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before


def _env():
    import os
    return {k: v for k, v in os.environ.items() if not k.startswith("GENMODELS_")}


def test_resume_takes_the_runs_settings_and_refuses_other_ones(trained, image_folder, tmp_path, capsys):
    run = copy_run(trained["pytorch"], tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    # a setting left out takes the run's value, not the script's default
    run_in_process("ae", "pytorch", ["--train", "--resume", "--iters", 6, "--out-dir", run,
                                     "--data-dir", image_folder])
    resumed = json.loads((run / "config.json").read_text())
    assert resumed["batch_size"] == config["batch_size"] == 8 and resumed["iters"] == 6
    assert [int(r["iteration"]) for r in read_rows(run / "metrics.csv")] == list(range(1, 7))
    # a setting the run fixes, given with another value, is refused in one line
    line = expect_usage_error(capsys, "ae", "pytorch",
                              ae_args(image_folder, run, "--train", "--resume", "--iters", 8, "--lr", 0.5),
                              "--lr 0.5", "0.001")
    assert "--batch-size" not in line
    assert json.loads((run / "config.json").read_text()) == resumed


def test_idx_with_a_wrong_magic_number_says_so(tmp_path):
    from common.datasets import load_dataset
    from common.errors import UsageError
    from tests.fixtures import make_mnist_dir
    digits = make_mnist_dir(tmp_path / "mnist", n_train=8, n_test=4, gz=False)
    path = digits / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[3] = 7                                               # 0x00000807: 7 dimensions
    path.write_bytes(bytes(raw))
    with pytest.raises(UsageError, match=r"magic number 0x00000807, expected 0x00000803 \(uint8 images"):
        load_dataset("mnist", "train", data_dir=digits)
    raw[:4] = struct.pack(">I", 0x00000801)                  # a label file where images should be
    path.write_bytes(bytes(raw))
    with pytest.raises(UsageError, match="expected 0x00000803"):
        load_dataset("mnist", "train", data_dir=digits)


def test_pictures_smaller_than_the_input_are_named_once(tmp_path, capsys):
    from common.datasets import load_dataset
    for i, size in enumerate([(1, 1), (1, 1), (20, 30), (64, 64)]):
        folder = tmp_path / "pics" / "cls"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), np.full((*size, 3), 128, np.uint8))
    data = load_dataset("imori", "train", data_dir=tmp_path / "pics", size=(64, 64))
    assert data.images.shape == (4, 64, 64, 3)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3 of 4 pictures" in err[0] and "1x1, 20x30" in err[0], err
    load_dataset("imori", "train", data_dir=tmp_path / "pics", size=(16, 16))
    assert "20x30" not in capsys.readouterr().err     # only the 1x1 ones are smaller than 16x16
