"""GAN and DCGAN answers: dry run as a program, train-a-little-then-test,
metrics.csv, resume, bad input, and the class API of the reference
document (dcgan_keras_class_api.md) driven through the same calls in every
framework.

GAN_FRAMEWORKS lists the four versions; a missing script fails, it is
never skipped.
"""
import datetime
import json

import cv2
import numpy as np
import pytest

from common import class_api, gan
from common.errors import UsageError
from tests.answers import expect_usage_error, read_rows, run_in_process, run_program, stopped_copy
from tests.conftest import load_script
from tests.fixtures import make_mnist_dir, mnist_arrays

GAN_FRAMEWORKS = ("pytorch", "tf_slim", "keras", "chainer")
QUESTIONS = ("gan", "dcgan")
CASES = [(q, f) for q in QUESTIONS for f in GAN_FRAMEWORKS]
IDS = [f"{q}-{f}" for q, f in CASES]
CLASSES = {"gan": "GAN", "dcgan": "DCGAN"}   # the class of each question's script
COLUMNS = ["iteration", "d_loss", "g_loss", "d_accuracy", "d_real", "d_fake", "sec_per_iter"]
PLOTS = ("losses.png", "d_accuracy.png", "d_probabilities.png")
TEST_PICTURES = ("samples.png", "interpolation.png", "morph.gif", "metrics.json")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """64 training and 16 test digits as MNIST IDX .gz files (also read as Fashion-MNIST)."""
    return make_mnist_dir(tmp_path_factory.mktemp("digits"), n_train=64, n_test=16)


def digit_args(digits, out_dir, dataset="mnist"):
    return ["--dataset", dataset, "--data-dir", digits, "--out-dir", out_dir, "--batch-size", 16]


def read_picture(path):
    picture = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert picture is not None, f"cannot read {path}"
    return picture


def gif_frames(path):
    from PIL import Image
    with Image.open(path) as gif:
        return gif.n_frames


def check_test_pictures(test_dir, digits):
    for name in TEST_PICTURES:
        assert (test_dir / name).exists(), name
    assert read_picture(test_dir / "samples.png").std() > 5               # not a blank picture
    strip = read_picture(test_dir / "interpolation.png")
    assert strip.shape[1] > 3 * strip.shape[0]                            # 2 rows of 10 steps
    assert gif_frames(test_dir / "morph.gif") > 1
    if not digits:   # colour pictures: no scored samples (tools/score_digits.py scores digits)
        assert not (test_dir / "samples.npy").exists()
        return json.loads((test_dir / "metrics.json").read_text())
    scored = np.load(test_dir / "samples.npy", allow_pickle=False)           # what tools/score_digits.py reads
    assert scored.dtype == np.uint8 and scored.shape[0] == gan.SCORED_COUNT and scored.ndim == 4
    assert len(np.unique(scored.reshape(len(scored), -1), axis=0)) == len(scored)   # 1000 different images
    return json.loads((test_dir / "metrics.json").read_text())


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_dry_run_as_a_program(question, framework, image_folder, tmp_path):
    # the default configuration: newt-style photos at 64x64x3
    out = tmp_path / "run"
    proc = run_program(question, framework, ["--dry-run", "--data-dir", image_folder, "--out-dir", out,
                                             "--batch-size", 8])
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "imori" and config["z_dim"] == 100 and config["label_smoothing"] == 0
    rows = read_rows(out / "metrics.csv")
    assert list(rows[0]) == COLUMNS and [r["iteration"] for r in rows] == ["1"]
    assert (out / "samples" / "iter_000001.png").exists()
    for name in (*PLOTS, "progress.png"):
        assert (out / name).exists(), name
    meta = json.loads((out / "checkpoints" / "iter_000001" / "meta.json").read_text())
    assert (meta["question"], meta["framework"], meta["iteration"]) == (question, framework, 1)
    assert meta["model"]["image_shape"] == [64, 64, 3] and meta["model"]["z_dim"] == 100
    if question == "dcgan":
        assert meta["model"]["stages"] == 4 and meta["model"]["start"] == [4, 4]
    metrics = check_test_pictures(out / "test", digits=False)
    assert metrics["test_images"] == 8 and metrics["samples"] == 64
    assert "mean D(real)" in proc.stdout


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_train_a_little_then_test_and_resume_to_the_same_run(question, framework, digits, tmp_path, capsys):
    # the reference document's configuration: Fashion-MNIST-format 28x28x1
    out = tmp_path / "run"
    flags = ["--sample-every", 2, "--checkpoint-every", 3, "--log-every", 1, "--label-smoothing", 0.1, "--seed", 1]
    result = run_in_process(question, framework, [*digit_args(digits, out, "fashion_mnist"), "--iters", 6, *flags])
    meta = json.loads((out / "checkpoints" / "iter_000006" / "meta.json").read_text())
    assert meta["model"]["image_shape"] == [28, 28, 1] and meta["label_smoothing"] == 0.1
    if question == "dcgan":
        assert (meta["model"]["stages"], meta["model"]["start"]) == (2, [7, 7])
        assert meta["model"]["generator"] == [256, 128] and meta["model"]["discriminator"] == [32, 64]
    rows = read_rows(out / "metrics.csv")
    assert list(rows[0]) == COLUMNS
    assert [int(r["iteration"]) for r in rows] == list(range(1, 7))
    values = {k: np.array([float(r[k]) for r in rows]) for k in COLUMNS[1:]}
    assert all(np.isfinite(v).all() for v in values.values())
    assert (values["d_loss"] > 0).all() and (values["g_loss"] > 0).all() and (values["sec_per_iter"] > 0).all()
    assert ((values["d_accuracy"] >= 0) & (values["d_accuracy"] <= 1)).all()
    for key in ("d_real", "d_fake"):
        assert ((values[key] > 0) & (values[key] < 1)).all()
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == [
        "iter_000002.png", "iter_000004.png", "iter_000006.png"]
    # the progress picture: one row per sample iteration, the same z in each column
    assert sorted(p.name for p in (out / "samples" / "progress").glob("*.png")) == [
        "iter_000002.png", "iter_000004.png", "iter_000006.png"]
    progress = read_picture(out / "progress.png")
    assert progress.shape[0] > 3 * 56 and progress.shape[1] > gan.PROGRESS_COLUMNS * 56
    for name in PLOTS:
        assert read_picture(out / name).shape[:2] == (400, 640), name
    assert sorted(p.name for p in (out / "checkpoints").glob("iter_*")) == ["iter_000003", "iter_000006"]
    metrics = check_test_pictures(out / "test", digits=True)
    assert gif_frames(out / "test" / "morph.gif") == gan.MORPH_FRAMES
    assert result == metrics
    assert metrics["test_images"] == 16 and 0 < metrics["d_real_test"] < 1 and 0 < metrics["d_fake_samples"] < 1

    # the same run as a kill after its first checkpoint leaves it, resumed (training only)
    parts = stopped_copy(out, tmp_path / "parts", 3, "4,9.0,9.0,0.5,0.5,0.5,0.1")
    run_in_process(question, framework, [*digit_args(digits, parts, "fashion_mnist"), "--iters", 6, "--train",
                                         "--resume", *flags])
    rows_parts = read_rows(parts / "metrics.csv")
    assert [int(r["iteration"]) for r in rows_parts] == list(range(1, 7))
    for key in COLUMNS[1:-1]:
        # same batches, same z, same optimizer states: the resumed run matches
        np.testing.assert_allclose([float(r[key]) for r in rows_parts], [float(r[key]) for r in rows],
                                   rtol=1e-5, atol=1e-7, err_msg=key)
    assert json.loads((parts / "checkpoints" / "latest.json").read_text())["iteration"] == 6
    # the same final weights: the same last sample picture (the fixed z), pixel for pixel
    np.testing.assert_array_equal(read_picture(parts / "samples" / "iter_000006.png"),
                                  read_picture(out / "samples" / "iter_000006.png"))
    assert not (parts / "test").exists()
    # the progress picture spans both parts of the run
    assert sorted(p.name for p in (parts / "samples" / "progress").glob("*.png")) == [
        "iter_000002.png", "iter_000004.png", "iter_000006.png"]

    if question == "dcgan":
        # a checkpoint of the earlier 28x28 generator (256 -> 512 -> 1) is refused in one line
        meta_path = out / "checkpoints" / "iter_000006" / "meta.json"
        meta["model"]["generator"] = [256, 512]
        meta_path.write_text(json.dumps(meta))
        expect_usage_error(capsys, question, framework, [*digit_args(digits, out, "fashion_mnist"), "--test"],
                           "another model shape", "generator: checkpoint [256, 512] vs now [256, 128]")


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_cifar10_pictures(question, framework, tmp_path):
    # 32x32x3: the DCGAN has 3 stride-2 stages, from a 4x4 map
    from tests.fixtures import make_cifar_dir
    cifar = make_cifar_dir(tmp_path / "cifar", n_per_batch=4)
    out = tmp_path / "run"
    run_in_process(question, framework, ["--dry-run", "--dataset", "cifar10", "--data-dir", cifar, "--out-dir", out,
                                         "--batch-size", 8])
    meta = json.loads((out / "checkpoints" / "iter_000001" / "meta.json").read_text())
    assert meta["model"]["image_shape"] == [32, 32, 3]
    if question == "dcgan":
        assert (meta["model"]["stages"], meta["model"]["start"]) == (3, [4, 4])
        assert meta["model"]["generator"] == [256, 256, 128] and meta["model"]["discriminator"] == [32, 64, 128]
    assert check_test_pictures(out / "test", digits=False)["test_images"] == 4


class _DryRuns(dict):
    """(question, framework) -> the checkpoint of a dry run on the digits
    with z of size DRY_RUN_Z_DIM (not the default 100), made on first use."""

    def __init__(self, digits, factory):
        super().__init__()
        self.digits, self.factory = digits, factory

    def __missing__(self, key):
        question, framework = key
        out = self.factory.mktemp(f"{question}_{framework}")
        run_in_process(question, framework, ["--dry-run", *digit_args(self.digits, out), "--z-dim", DRY_RUN_Z_DIM])
        self[key] = out / "checkpoints" / "iter_000001"
        return self[key]


DRY_RUN_Z_DIM = 8


@pytest.fixture(scope="module")
def dry_runs(digits, tmp_path_factory):
    return _DryRuns(digits, tmp_path_factory)


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_bad_input_is_one_line_and_status_2(question, framework, digits, tmp_path, capsys, dry_runs):
    out = ["--out-dir", tmp_path / "run"]
    expect_usage_error(capsys, question, framework, ["--dataset", "svhn", *out], "svhn")
    expect_usage_error(capsys, question, framework, ["--iters", 0, *out], "--iters")
    expect_usage_error(capsys, question, framework, ["--label-smoothing", 1.5, *out], "--label-smoothing")
    expect_usage_error(capsys, question, framework, ["--z-dim", 0, *out], "--z-dim")
    expect_usage_error(capsys, question, framework, ["--data-dir", tmp_path / "nowhere", *out], "nowhere")
    expect_usage_error(capsys, question, framework,
                       ["--test", *digit_args(digits, tmp_path / "never_trained")], "no checkpoint")
    # a checkpoint of the other GAN question (the question is checked first)
    other = "dcgan" if question == "gan" else "gan"
    expect_usage_error(capsys, question, framework,
                       ["--test", "--checkpoint", dry_runs[other, framework], "--z-dim", DRY_RUN_Z_DIM,
                        *digit_args(digits, tmp_path / "o")], f"'{other}'")
    # a checkpoint of another noise size
    expect_usage_error(capsys, question, framework,
                       ["--test", "--checkpoint", dry_runs[question, framework],
                        *digit_args(digits, tmp_path / "o")], "z_dim: checkpoint 8 vs now 100")
    # ... and of another image shape (28x28x1 digits, 32x32x3 CIFAR-10 pictures)
    from tests.fixtures import make_cifar_dir
    cifar = make_cifar_dir(tmp_path / "cifar", n_per_batch=4)
    message = expect_usage_error(capsys, question, framework,
                                 ["--test", "--dataset", "cifar10", "--data-dir", cifar, "--out-dir", tmp_path / "o",
                                  "--checkpoint", dry_runs[question, framework], "--z-dim", DRY_RUN_Z_DIM],
                                 "image_shape")
    assert "z_dim" not in message


def test_bad_flag_as_a_program_prints_one_line():
    proc = run_program("dcgan", GAN_FRAMEWORKS[0], ["--label-smoothing", "1.5"])
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# ---------------------------------------------------------------------------
# The class API (dcgan_keras_class_api.md), the same calls in every framework
# ---------------------------------------------------------------------------

def make_model(question, framework, *args, **kwargs):
    return getattr(load_script(question, framework), CLASSES[question])(*args, device="cpu", **kwargs)


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_class_api(question, framework, tmp_path, capsys):
    images, _ = mnist_arrays(32, seed=4)
    imgs_255 = images[..., None]                              # uint8 (32, 28, 28, 1), pixels 0..255
    imgs_01 = imgs_255.astype(np.float32) / 255.0              # the same pictures in [0, 1]
    model = make_model(question, framework, "fixture", z_dim=100, img_shape=(28, 28, 1))
    assert model.img_shape == (28, 28, 1) and model.z_dim == 100 and model.name == "fixture"
    model.name = "renamed"
    assert model.name == "renamed"
    z_fixed = model.z_fixed_for_sample
    assert z_fixed.shape == (gan.SAMPLE_COUNT, 100) and z_fixed.dtype == np.float32
    z_fixed[:] = 0                                            # a copy: the model keeps its own
    assert np.abs(model.z_fixed_for_sample).max() > 0

    result = model.train(imgs_255, epochs=1, batch_size=8, ls_epsilon=0.1, sample_img_interval=1,
                         sample_dir=tmp_path / "samples")
    assert set(result) == set(class_api.RESULT_KEYS)
    assert (result["name"], result["epochs"], result["batch_size"], result["ls_epsilon"]) == ("renamed", 1, 8, 0.1)
    for key in ("d_loss_epochs", "d_accuracy_epochs", "d_acuracy_epochs", "g_loss_epochs", "probs_real_epochs",
                "probs_fake_epochs", "processing_time_epochs"):
        assert len(result[key]) == 1 and np.isfinite(result[key][0]), key
    assert 0 < result["probs_real_epochs"][0] < 1 and 0 <= result["d_accuracy_epochs"][0] <= 1
    assert isinstance(result["processing_time_total_td"], datetime.timedelta)
    assert isinstance(result["processing_time_total"], str) and "second" in result["processing_time_total"]
    assert (tmp_path / "samples" / "renamed_epoch_0000.png").exists()
    assert "iteration count: 4" in capsys.readouterr().out     # 32 images / batch 8

    z = model.generate_z(5)
    assert z.shape == (5, 100) and z.dtype == np.float32 and np.abs(z).max() <= 1
    generated = model.generate(z)
    assert generated.shape == (5, 28, 28, 1) and generated.min() >= 0 and generated.max() <= 1
    probs = model.discriminate(imgs_255)
    assert probs.shape == (32, 1) and ((probs > 0) & (probs < 1)).all()
    np.testing.assert_allclose(model.discriminate(imgs_01), probs, rtol=1e-5)   # [0, 1] or [0, 255]
    d_loss, d_accuracy, g_loss = model.evaluate(imgs_01, np.ones((32, 1)))
    assert all(isinstance(v, float) and np.isfinite(v) for v in (d_loss, d_accuracy, g_loss))
    assert 0 <= d_accuracy <= 1 and d_loss > 0 and g_loss > 0
    fakes = model.evaluate(generated, np.zeros((5, 1)))
    assert 0 <= fakes[1] <= 1

    paths = model.save_me(tmp_path / "files")
    suffix = paths[0].name[len("renamed_g"):]                  # the framework's weights suffix (.pt, .weights.h5, ...)
    assert all(p.is_file() for p in paths)
    assert [p.name for p in paths] == [f"renamed_g{suffix}", f"renamed_d{suffix}", "renamed_val.json"]
    variables = json.loads(paths[2].read_text())               # JSON, not pickle
    assert variables["name"] == "renamed" and variables["img_shape"] == [28, 28, 1] and variables["z_dim"] == 100
    model.save_me(tmp_path / "named", "my_g", "my_d", "my_val")

    # a fresh instance of another shape becomes the saved model
    fresh = make_model(question, framework, "fresh", z_dim=8, img_shape=(32, 32, 3), seed=7)
    fresh.change_me(tmp_path / "files", paths[0].name, paths[1].name, paths[2].name)
    assert (fresh.name, fresh.img_shape, fresh.z_dim) == ("renamed", (28, 28, 1), 100)
    np.testing.assert_array_equal(fresh.z_fixed_for_sample, model.z_fixed_for_sample)
    np.testing.assert_array_equal(fresh.generate(z), model.generate(z))
    np.testing.assert_array_equal(fresh.discriminate(imgs_255), probs)
    other = make_model(question, framework, "other")
    other.change_me(tmp_path / "named", "my_g", "my_d", "my_val")
    np.testing.assert_array_equal(other.generate(z), model.generate(z))

    # bad calls: one clear UsageError each
    with pytest.raises(UsageError, match="shape"):
        model.train(np.zeros((4, 32, 32, 3), np.float32), epochs=1)
    with pytest.raises(UsageError, match="label smoothing"):
        model.train(imgs_01, epochs=1, ls_epsilon=1.5)
    with pytest.raises(UsageError, match="labels"):
        model.evaluate(imgs_01, np.full((32, 1), 0.5))
    with pytest.raises(UsageError, match="z must be"):
        model.generate(np.zeros((3, 7), np.float32))
    with pytest.raises(UsageError, match="does not exist"):
        fresh.change_me(tmp_path / "files", "missing_g", paths[1].name, paths[2].name)
    other_question = "dcgan" if question == "gan" else "gan"
    make_model(other_question, framework, "x").save_me(tmp_path / "other_question")
    with pytest.raises(UsageError, match=f"'{other_question}'"):
        fresh.change_me(tmp_path / "other_question", "", "", "x_val")
