"""AE and ConvAE answers, all four frameworks: dry run, train-then-test,
learning, resume and bad input, on fixture photos in the real layout."""
import json

import cv2
import numpy as np
import pytest

from tests.answers import expect_usage_error, read_rows, run_in_process, run_program, stopped_copy
from tests.conftest import FRAMEWORKS

QUESTIONS = ("ae", "convae")
CASES = [(q, f) for q in QUESTIONS for f in FRAMEWORKS]
IDS = [f"{q}-{f}" for q, f in CASES]

# After 300 iterations (batch 8) the test MSE must be below this fraction of
# the MSE after one iteration (measured: about 0.1-0.2 for every version).
LEARNING_MARGIN = 0.5


def common_args(image_folder, out_dir):
    return ["--dataset", "imori", "--data-dir", image_folder, "--out-dir", out_dir, "--batch-size", 8]


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_dry_run_as_a_program(question, framework, image_folder, tmp_path):
    out = tmp_path / "run"
    proc = run_program(question, framework, ["--dry-run", *common_args(image_folder, out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "config.json").exists()
    rows = read_rows(out / "metrics.csv")
    assert [r["iteration"] for r in rows] == ["1"]
    assert float(rows[0]["loss"]) > 0
    assert (out / "samples" / "iter_000001.png").exists()
    meta = json.loads((out / "checkpoints" / "iter_000001" / "meta.json").read_text())
    assert (meta["question"], meta["framework"], meta["iteration"]) == (question, framework, 1)
    assert (out / "test" / "reconstructions.png").exists()
    assert "test MSE" in proc.stdout


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_training_lowers_test_mse(question, framework, image_folder, tmp_path):
    args = [*common_args(image_folder, tmp_path / "run"), "--seed", 1, "--sample-every", 100,
            "--checkpoint-every", 0, "--log-every", 10]
    first = run_in_process(question, framework, ["--iters", 1, *args])
    trained = run_in_process(question, framework, ["--iters", 300, *args])
    assert np.isfinite(first) and np.isfinite(trained)
    assert trained < LEARNING_MARGIN * first, (first, trained)
    test_dir = tmp_path / "run" / "test"
    picture = cv2.imread(str(test_dir / "reconstructions.png"))
    assert picture is not None and picture.shape[1] > picture.shape[0] / 4
    assert json.loads((test_dir / "metrics.json").read_text())["images"] == 8
    assert sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png")) == [
        "iter_000100.png", "iter_000200.png", "iter_000300.png"]
    assert (tmp_path / "run" / "curves.png").exists()


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_resume_continues_the_same_run(question, framework, image_folder, tmp_path):
    base = [*common_args(image_folder, None), "--train", "--seed", 3, "--log-every", 1,
            "--sample-every", 0, "--checkpoint-every", 6]
    base = base[:base.index("--out-dir")] + base[base.index("--out-dir") + 2:]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_in_process(question, framework, [*base, "--out-dir", whole, "--iters", 12])
    # the run as a kill after its checkpoint at 6 leaves it (a row logged past it must go)
    stopped_copy(whole, parts, 6, "7,123.0,0.1")
    run_in_process(question, framework, [*base, "--out-dir", parts, "--iters", 12, "--resume"])
    rows_whole, rows_parts = read_rows(whole / "metrics.csv"), read_rows(parts / "metrics.csv")
    assert [int(r["iteration"]) for r in rows_parts] == list(range(1, 13))
    loss_whole = np.array([float(r["loss"]) for r in rows_whole])
    loss_parts = np.array([float(r["loss"]) for r in rows_parts])
    # same batches, same optimizer state: the resumed losses match
    np.testing.assert_allclose(loss_parts, loss_whole, rtol=1e-4)
    latest = json.loads((parts / "checkpoints" / "latest.json").read_text())
    assert latest["iteration"] == 12


class _Checkpoints(dict):
    """A dry-run checkpoint of a question x framework, made on first use."""

    def __init__(self, image_folder, tmp_path_factory):
        super().__init__()
        self.image_folder, self.factory = image_folder, tmp_path_factory

    def __missing__(self, key):
        question, framework = key
        out = self.factory.mktemp(f"{question}_{framework}")
        run_in_process(question, framework, ["--dry-run", *common_args(self.image_folder, out)])
        self[key] = out / "checkpoints" / "iter_000001"
        return self[key]


@pytest.fixture(scope="module")
def checkpoints(image_folder, tmp_path_factory):
    return _Checkpoints(image_folder, tmp_path_factory)


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_bad_input_is_one_line_and_status_2(question, framework, image_folder, tmp_path, capsys,
                                            checkpoints):
    out = ["--out-dir", tmp_path / "run"]
    expect_usage_error(capsys, question, framework,
                       ["--dataset", "imori", "--data-dir", tmp_path / "nowhere", *out], "nowhere")
    (tmp_path / "empty").mkdir()
    expect_usage_error(capsys, question, framework,
                       ["--dataset", "imori", "--data-dir", tmp_path / "empty", *out], "empty")
    broken = tmp_path / "broken" / "cls"
    broken.mkdir(parents=True)
    (broken / "bad.jpg").write_bytes(b"this is not a JPEG")
    expect_usage_error(capsys, question, framework,
                       ["--dataset", "imori", "--data-dir", tmp_path / "broken", *out], "bad.jpg")
    expect_usage_error(capsys, question, framework, ["--dataset", "svhn", *out], "svhn")
    expect_usage_error(capsys, question, framework, ["--iters", 0, *out], "--iters")
    other = "convae" if question == "ae" else "ae"
    expect_usage_error(capsys, question, framework,
                       ["--test", "--checkpoint", checkpoints[other, framework],
                        *common_args(image_folder, tmp_path / "run")], other)
    other_framework = "chainer" if framework == "pytorch" else "pytorch"
    expect_usage_error(capsys, question, framework,
                       ["--test", "--checkpoint", checkpoints[question, other_framework],
                        *common_args(image_folder, tmp_path / "run")], other_framework)
    expect_usage_error(capsys, question, framework,
                       ["--test", *common_args(image_folder, tmp_path / "never_trained")], "no checkpoint")


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_wrong_image_shape_checkpoint_is_refused(question, framework, tmp_path, capsys, checkpoints):
    # a checkpoint made on 64x64x3 photos does not load for 28x28x1 digits
    from tests.fixtures import make_mnist_dir
    digits = make_mnist_dir(tmp_path / "mnist", n_train=16, n_test=8)
    expect_usage_error(capsys, question, framework,
                       ["--test", "--dataset", "mnist", "--data-dir", digits, "--out-dir", tmp_path / "o",
                        "--checkpoint", checkpoints[question, framework]], "image_shape")


def test_bad_flag_as_a_program_prints_one_line():
    proc = run_program("convae", "pytorch", ["--iters", "-5"])
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
