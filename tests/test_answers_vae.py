"""VAE answers (vae, vae_latent_show, vae_latent_change), all four
frameworks: dry run, train-then-test, learning, resume and bad input, on
fixture digits in the real MNIST format (gzipped IDX files)."""
import json
import shutil

import cv2
import numpy as np
import pytest

from common import datasets, recon
from tests.answers import expect_usage_error, read_rows, run_in_process, run_program, stopped_copy
from tests.conftest import FRAMEWORKS
from tests.fixtures import make_mnist_dir

LATENT_QUESTIONS = ("vae_latent_show", "vae_latent_change")
LATENT_CASES = [(q, f) for q in LATENT_QUESTIONS for f in FRAMEWORKS]
LATENT_IDS = [f"{q}-{f}" for q, f in LATENT_CASES]

# After LEARNING_ITERS iterations (batch 32, 256 fixture digits, default
# lr) the test negative ELBO must be below LEARNING_MARGIN times its value
# after one iteration.  Measured (PyTorch, seeds 1-3): about 540 nats after
# 1 iteration (BCE ~540, KL ~0.3), 191-197 after 300 (BCE ~187, KL ~6):
# a ratio of 0.35-0.36.
LEARNING_ITERS = 300
LEARNING_MARGIN = 0.5

# tab10, the colours of the scatter's classes 0..9 (matplotlib's default cycle)
TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """256 training and 64 test digits (every class) as MNIST IDX .gz files."""
    return make_mnist_dir(tmp_path_factory.mktemp("digits"), n_train=256, n_test=64)


def vae_args(digits, out_dir, dataset="mnist"):
    return ["--dataset", dataset, "--data-dir", digits, "--out-dir", out_dir, "--batch-size", 32]


def read_picture(path):
    picture = cv2.imread(str(path))
    assert picture is not None, f"cannot read {path}"
    return picture


class _TrainedVAEs(dict):
    """framework -> (run folder, test metrics after 1 iteration, after
    LEARNING_ITERS iterations): trained once per module, on first use."""

    def __init__(self, digits, factory):
        super().__init__()
        self.digits, self.factory = digits, factory

    def __missing__(self, framework):
        out = self.factory.mktemp(f"vae_{framework}")
        args = [*vae_args(self.digits, out), "--seed", 1, "--sample-every", 100,
                "--checkpoint-every", 0, "--log-every", 10]
        first = run_in_process("vae", framework, ["--iters", 1, *args])
        trained = run_in_process("vae", framework, ["--iters", LEARNING_ITERS, *args])
        self[framework] = out, first, trained
        return self[framework]


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    return _TrainedVAEs(digits, tmp_path_factory)


class _DryRuns(dict):
    """(framework, dataset, latent dim) -> the run folder of a vae dry run,
    made on first use."""

    def __init__(self, digits, factory):
        super().__init__()
        self.digits, self.factory = digits, factory

    def __missing__(self, key):
        framework, dataset, latent_dim = key
        out = self.factory.mktemp(f"vae_dry_{framework}_{dataset}_{latent_dim}")
        run_in_process("vae", framework, ["--dry-run", *vae_args(self.digits, out, dataset),
                                          "--latent-dim", latent_dim])
        self[key] = out
        return out


@pytest.fixture(scope="module")
def dry_runs(digits, tmp_path_factory):
    return _DryRuns(digits, tmp_path_factory)


# ---------------------------------------------------------------------------
# vae
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_dry_run_as_programs(framework, digits, tmp_path):
    out = tmp_path / "vae"
    proc = run_program("vae", framework, ["--dry-run", *vae_args(digits, out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["latent_dim"] == 2
    rows = read_rows(out / "metrics.csv")
    assert [r["iteration"] for r in rows] == ["1"]
    loss, bce, kl = (float(rows[0][k]) for k in ("loss", "bce", "kl"))
    assert loss > 0 and bce > 0 and kl >= 0
    assert loss == pytest.approx(bce + kl, rel=1e-4)
    assert (out / "samples" / "iter_000001.png").exists()
    meta = json.loads((out / "checkpoints" / "iter_000001" / "meta.json").read_text())
    assert (meta["question"], meta["framework"], meta["iteration"]) == ("vae", framework, 1)
    assert meta["model"]["latent_dim"] == 2 and meta["dataset"] == "mnist"
    for name in ("reconstructions.png", "samples.png", "metrics.json"):
        assert (out / "test" / name).exists(), name
    assert "negative ELBO" in proc.stdout and "= BCE" in proc.stdout and "+ KL" in proc.stdout
    # the latent scripts run as programs too (they import the vae script beside them)
    for question, picture in (("vae_latent_show", "latent_scatter.png"), ("vae_latent_change", "latent_grid.png")):
        latent_out = tmp_path / question
        proc = run_program(question, framework, ["--data-dir", digits, "--vae-dir", out, "--out-dir", latent_out])
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (latent_out / "test" / picture).exists()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_training_lowers_test_negative_elbo(framework, trained, digits):
    out, first, after = trained[framework]
    for result in (first, after):
        assert set(result) >= {"loss", "bce", "kl"}
        assert all(np.isfinite(result[k]) for k in ("loss", "bce", "kl")), result
        assert result["loss"] == pytest.approx(result["bce"] + result["kl"], rel=1e-5)
    assert after["loss"] < LEARNING_MARGIN * first["loss"], (first, after)
    assert after["kl"] > first["kl"], (first, after)   # the code now carries information
    metrics = json.loads((out / "test" / "metrics.json").read_text())
    assert metrics["images"] == 64 and metrics["latent_dim"] == 2
    assert metrics["negative_elbo"] == pytest.approx(after["loss"])
    assert metrics["bce"] == pytest.approx(after["bce"]) and metrics["kl"] == pytest.approx(after["kl"])
    # the reconstruction errors (alpha-GAN's units) and the reconstructions kept for the digit scorer
    assert 0 < metrics["test_mse"] < metrics["test_l1"] < 0.5
    reconstructions = np.load(out / "test" / recon.RECONSTRUCTIONS_NPY)
    labels = np.load(out / "test" / recon.RECONSTRUCTION_LABELS_NPY)
    assert reconstructions.dtype == np.uint8 and reconstructions.shape == (64, 28, 28, 1)
    assert labels.shape == (64,) and set(labels.tolist()) <= set(range(10))
    decoded = reconstructions.astype(np.float64) / 255.0
    images = datasets.load_dataset("mnist", "test", data_dir=digits, value_range=(0.0, 1.0)).images
    assert np.abs(decoded - images).mean() == pytest.approx(metrics["test_l1"], abs=2e-3)
    # 2 x 10 test digits over their reconstructions: 4 rows of 10, scaled up
    picture = read_picture(out / "test" / "reconstructions.png")
    assert picture.shape[1] > 10 * 84 and picture.shape[0] > 4 * 84
    samples = read_picture(out / "test" / "samples.png")      # 10 x 10 digits, scaled 2x
    assert samples.shape[1] >= 10 * 56 and samples.shape[0] >= 10 * 56
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == [
        "iter_000100.png", "iter_000200.png", "iter_000300.png"]
    rows = read_rows(out / "metrics.csv")
    assert list(rows[0]) == ["iteration", "loss", "bce", "kl", "sec_per_iter"]
    assert (out / "curves.png").exists()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_resume_continues_the_same_run(framework, digits, tmp_path):
    base = ["--dataset", "mnist", "--data-dir", digits, "--batch-size", 32, "--train", "--seed", 3,
            "--log-every", 1, "--sample-every", 0, "--checkpoint-every", 6]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_in_process("vae", framework, [*base, "--out-dir", whole, "--iters", 12])
    # the run as a kill after its checkpoint at 6 leaves it (a row logged past it must go)
    stopped_copy(whole, parts, 6, "7,123.0,100.0,23.0,0.1")
    run_in_process("vae", framework, [*base, "--out-dir", parts, "--iters", 12, "--resume"])
    rows_whole, rows_parts = read_rows(whole / "metrics.csv"), read_rows(parts / "metrics.csv")
    assert [int(r["iteration"]) for r in rows_parts] == list(range(1, 13))
    for key in ("loss", "bce", "kl"):
        # same batches, same eps, same optimizer state: the resumed run matches
        np.testing.assert_allclose([float(r[key]) for r in rows_parts],
                                   [float(r[key]) for r in rows_whole], rtol=1e-4, err_msg=key)
    assert json.loads((parts / "checkpoints" / "latest.json").read_text())["iteration"] == 12


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_vae_bad_input_is_one_line_and_status_2(framework, digits, tmp_path, capsys, dry_runs):
    out = ["--out-dir", tmp_path / "run"]
    expect_usage_error(capsys, "vae", framework, ["--dataset", "svhn", *out], "svhn")
    expect_usage_error(capsys, "vae", framework, ["--iters", 0, *out], "--iters")
    expect_usage_error(capsys, "vae", framework, ["--latent-dim", 0, *out], "--latent-dim")
    expect_usage_error(capsys, "vae", framework,
                       ["--data-dir", tmp_path / "nowhere", *out], "nowhere")
    expect_usage_error(capsys, "vae", framework,
                       ["--test", *vae_args(digits, tmp_path / "never_trained")], "no checkpoint")
    # a 2-D checkpoint does not load into a 3-D vae
    checkpoint = dry_runs[framework, "mnist", 2] / "checkpoints" / "iter_000001"
    expect_usage_error(capsys, "vae", framework,
                       ["--test", "--latent-dim", 3, "--checkpoint", checkpoint, *vae_args(digits, tmp_path / "o")],
                       "latent_dim")


# ---------------------------------------------------------------------------
# vae_latent_show, vae_latent_change
# ---------------------------------------------------------------------------

def colour_present(picture_bgr, hex_colour, alpha=0.7, tolerance=12):
    """Whether the picture holds ``hex_colour`` drawn with ``alpha`` on white
    (the scatter's points and legend markers)."""
    rgb = alpha * np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) + (1 - alpha) * 255
    return bool((np.abs(picture_bgr[..., ::-1].astype(int) - rgb).max(-1) <= tolerance).any())


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_latent_show_draws_the_test_means(framework, digits, trained, tmp_path):
    vae_out = trained[framework][0]
    result = run_in_process("vae_latent_show", framework,
                            ["--data-dir", digits, "--vae-dir", vae_out, "--out-dir", tmp_path])
    assert result["points"] == 64
    assert result["class_names"] == [str(d) for d in range(10)]   # the legend
    picture = read_picture(tmp_path / "test" / "latent_scatter.png")
    assert picture.shape[:2] == (500, 600)
    # one colour per digit, in the points and the legend
    assert all(colour_present(picture, colour) for colour in TAB10)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_latent_show_names_the_clothes(framework, digits, dry_runs, tmp_path):
    # make_mnist_dir's files are in the Fashion-MNIST format too
    vae_out = dry_runs[framework, "fashion_mnist", 2]
    result = run_in_process("vae_latent_show", framework,
                            ["--dataset", "fashion_mnist", "--data-dir", digits, "--vae-dir", vae_out,
                             "--out-dir", tmp_path])
    assert result["class_names"] == datasets.CLASS_NAMES["fashion_mnist"]
    assert (tmp_path / "test" / "latent_scatter.png").exists()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_latent_change_draws_the_line_and_the_grid(framework, digits, trained, tmp_path):
    vae_out = trained[framework][0]
    result = run_in_process("vae_latent_change", framework,
                            ["--data-dir", digits, "--vae-dir", vae_out, "--out-dir", tmp_path / "default"])
    assert result["steps"] == 10 and result["grid_size"] == [15, 15]
    line = read_picture(tmp_path / "default" / "test" / "latent_line.png")
    assert line.shape[1] > 4 * line.shape[0] and line.shape[1] >= 10 * 28
    grid = read_picture(tmp_path / "default" / "test" / "latent_grid.png")
    assert grid.shape[0] >= 15 * 28 and grid.shape[1] >= 15 * 28          # the 420 px mosaic and its axes
    assert 0.8 < grid.shape[1] / grid.shape[0] < 1.3
    assert grid.std() > 20                                                 # not a blank picture
    result = run_in_process("vae_latent_change", framework,
                            ["--data-dir", digits, "--vae-dir", vae_out, "--out-dir", tmp_path / "small",
                             "--steps", 4, "--grid-size", 5, "--grid-range", 2])
    assert result["steps"] == 4 and result["grid_size"] == [5, 5]
    assert (tmp_path / "small" / "test" / "latent_grid.png").exists()


@pytest.mark.parametrize("question,framework", LATENT_CASES, ids=LATENT_IDS)
def test_latent_bad_input_is_one_line_and_status_2(question, framework, digits, dry_runs, tmp_path, capsys):
    out = ["--data-dir", digits, "--out-dir", tmp_path / "out"]
    vae_script = f"scripts_{framework}/vae_{framework}.py"
    # no trained vae: say how to train one
    expect_usage_error(capsys, question, framework, [*out, "--vae-dir", tmp_path / "never"],
                       "no checkpoint", vae_script)
    expect_usage_error(capsys, question, framework, [*out, "--checkpoint", tmp_path / "missing"], "missing")
    # these scripts train nothing
    for flag in ("--train", "--resume"):
        expect_usage_error(capsys, question, framework, [*out, flag, "--vae-dir", dry_runs[framework, "mnist", 2]],
                           "trains nothing", vae_script)
    # a vae with a 3-D latent space cannot be drawn on a plane
    expect_usage_error(capsys, question, framework, [*out, "--vae-dir", dry_runs[framework, "mnist", 3]],
                       "latent dimension 3")
    # a vae trained on another data set
    expect_usage_error(capsys, question, framework,
                       [*out, "--dataset", "fashion_mnist", "--vae-dir", dry_runs[framework, "mnist", 2]],
                       "trained on mnist")
    # a checkpoint of another question
    other = tmp_path / "other" / "iter_000001"
    shutil.copytree(dry_runs[framework, "mnist", 2] / "checkpoints" / "iter_000001", other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "question": "ae"}))
    expect_usage_error(capsys, question, framework, [*out, "--checkpoint", other], "'ae'")
    if question == "vae_latent_change":
        expect_usage_error(capsys, question, framework, [*out, "--steps", 1], "--steps")
        expect_usage_error(capsys, question, framework, [*out, "--grid-size", 0], "--grid-size")
