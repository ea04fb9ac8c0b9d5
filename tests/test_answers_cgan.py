"""Conditional GAN answers: dry run as a program, train-a-little-then-test,
the pictures and the scored samples, resume, bad input, and a learning
check that fails when the condition is ignored; plus the framework-neutral
half (common/cgan.py: labels, conditions of the test, the class-mean check).

CGAN_FRAMEWORKS lists the four versions; a missing script fails, it is
never skipped.
Budget: about 60 s for one framework on 2 cores (the 64x64 newt run is a
dry run, the learning check trains 8x8 pictures).
"""
import json
import shutil

import cv2
import numpy as np
import pytest

from common import cgan, gan
from common.datasets import CLASS_NAMES
from common.errors import UsageError
from tests.answers import expect_usage_error, read_rows, run_in_process, run_program, stopped_copy
from tests.conftest import load_script
from tests.fixtures import (CIFAR_LABEL_NAMES, make_cifar_dir, make_image_folder, make_mnist_dir, write_idx_images,
                            write_idx_labels)

CGAN_FRAMEWORKS = ("pytorch", "tf_slim", "keras", "chainer")
COLUMNS = ["iteration", *gan.FIELDS, "sec_per_iter"]
PLOTS = ("losses.png", "d_accuracy.png", "d_probabilities.png", "progress.png")
TEST_FILES = (cgan.GRID_PNG, cgan.STYLE_PNG, cgan.INTERPOLATION_PNG, cgan.SAMPLES_NPY, cgan.LABELS_NPY,
              cgan.METRICS_JSON)
METRICS = {"d_real_test", "d_real_test_wrong_labels", "d_fake_samples", "label_accuracy_nearest_mean",
           "label_accuracy_nearest_mean_real", "test_images", "samples", "classes", "class_names", "rows"}
LEARN_ITERS = 300         # the learning check: 300 steps of batch 32 on 8x8 blocks (all seeds tried: 100%)
LEARN_ACCURACY = 0.9      # chance is 0.1; an ignored condition (G or D blind to y) stays at 0.1


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """64 training and 16 test digits as MNIST IDX .gz files (also read as Fashion-MNIST)."""
    return make_mnist_dir(tmp_path_factory.mktemp("digits"), n_train=64, n_test=16)


BLOCKS = [(0, 0), (0, 2), (1, 1), (1, 3), (2, 0), (2, 2), (3, 1), (3, 3), (0, 1), (2, 3)]   # (row, col) per class


def block_arrays(n, seed):
    """8x8 pictures whose class is where a bright 2x2 block lies (10 places
    on a 4x4 lattice), with a random brightness and pixel noise: a
    condition that a nearest-class-mean classifier reads without fail."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10)
    images = np.zeros((n, 8, 8))
    for i, label in enumerate(labels):
        r, c = BLOCKS[label]
        images[i, 2 * r:2 * r + 2, 2 * c:2 * c + 2] = rng.uniform(150, 255)
    images += rng.normal(0, 10, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    """200 training and 100 test block pictures as MNIST IDX files (8x8: a one-stage DCGAN, fast)."""
    root = tmp_path_factory.mktemp("blocks")
    for prefix, n, seed in (("train", 200, 0), ("t10k", 100, 1)):
        images, labels = block_arrays(n, seed)
        write_idx_images(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx_labels(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


def data_args(folder, out_dir, dataset="mnist", batch_size=16):
    return ["--dataset", dataset, "--data-dir", folder, "--out-dir", out_dir, "--batch-size", batch_size]


def read_picture(path):
    picture = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert picture is not None, f"cannot read {path}"
    return picture


def check_test_files(test_dir, image_shape, n_classes, rows):
    """The test's files: pictures with ``rows`` class rows, the scored
    samples (uint8 NHWC) with their intended labels, metrics.json."""
    for name in TEST_FILES:
        assert (test_dir / name).exists(), name
    cell = image_shape[0] * max(1, 56 // image_shape[0])          # a picture's side in the PNGs
    for name in (cgan.GRID_PNG, cgan.STYLE_PNG, cgan.INTERPOLATION_PNG):
        picture = read_picture(test_dir / name)
        assert picture.std() > 5, name                                      # not blank
        # rows of cells + a title: taller than the rows, shorter than one more
        assert rows * cell < picture.shape[0] < (rows + 1) * cell + 60, (name, picture.shape)
        assert picture.shape[1] > 10 * cell, (name, picture.shape)          # 10 columns
    samples = np.load(test_dir / cgan.SAMPLES_NPY, allow_pickle=False)
    labels = np.load(test_dir / cgan.LABELS_NPY, allow_pickle=False)
    assert samples.dtype == np.uint8 and samples.shape == (n_classes * cgan.SCORED_PER_CLASS, *image_shape)
    assert labels.dtype == np.int64 and labels.shape == (len(samples),)
    np.testing.assert_array_equal(np.bincount(labels, minlength=n_classes), cgan.SCORED_PER_CLASS)
    assert len(np.unique(samples.reshape(len(samples), -1), axis=0)) > 0.9 * len(samples)   # not one image
    metrics = json.loads((test_dir / cgan.METRICS_JSON).read_text())
    assert set(metrics) == METRICS and metrics["classes"] == n_classes and len(metrics["rows"]) == rows
    for key in ("d_real_test", "d_real_test_wrong_labels", "d_fake_samples"):
        assert 0 < metrics[key] < 1, key
    return metrics


@pytest.mark.parametrize("framework", CGAN_FRAMEWORKS)
def test_dry_run_as_a_program(framework, digits, tmp_path):
    # the default configuration: MNIST 28x28x1, 10 classes
    out = tmp_path / "run"
    proc = run_program("cgan", framework, ["--dry-run", "--data-dir", digits, "--out-dir", out, "--batch-size", 8])
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert (config["dataset"], config["z_dim"], config["label_smoothing"], config["iters"]) == ("mnist", 100, 0, 1)
    rows = read_rows(out / "metrics.csv")
    assert list(rows[0]) == COLUMNS and [r["iteration"] for r in rows] == ["1"]
    assert (out / "samples" / "iter_000001.png").exists()
    for name in PLOTS:
        assert (out / name).exists(), name
    meta = json.loads((out / "checkpoints" / "iter_000001" / "meta.json").read_text())
    assert (meta["question"], meta["framework"], meta["iteration"]) == ("cgan", framework, 1)
    assert meta["model"]["image_shape"] == [28, 28, 1] and meta["model"]["n_classes"] == 10
    assert (meta["model"]["stages"], meta["model"]["generator"], meta["model"]["discriminator"]) == (
        2, [256, 128], [32, 64])
    assert meta["class_names"] == CLASS_NAMES["mnist"] and meta["label_sampler"]["n_classes"] == 10
    metrics = check_test_files(out / "test", (28, 28, 1), 10, 10)
    assert metrics["test_images"] == 16 and metrics["samples"] == 1000
    assert "mean D(real)" in proc.stdout


@pytest.mark.parametrize("framework", CGAN_FRAMEWORKS)
def test_default_iterations_follow_the_data_set(framework, tmp_path):
    module = load_script("cgan", framework)
    out = ["--test", "--out-dir", str(tmp_path / "run")]
    assert module.parse_args(out).iters == 20000
    assert module.parse_args([*out, "--dataset", "cifar10"]).iters == 30000
    assert module.parse_args([*out, "--dataset", "cifar10", "--iters", "7"]).iters == 7


@pytest.mark.parametrize("framework", CGAN_FRAMEWORKS)
def test_train_a_little_then_test(framework, digits, tmp_path):
    # Fashion-MNIST's class names label the rows; --classes picks the rows of the test pictures
    out = tmp_path / "run"
    args = [*data_args(digits, out, "fashion_mnist"), "--seed", 1]
    result = run_in_process("cgan", framework, [*args, "--iters", 4, "--sample-every", 2, "--checkpoint-every", 2,
                                                "--log-every", 1, "--label-smoothing", 0.1])
    rows = read_rows(out / "metrics.csv")
    assert list(rows[0]) == COLUMNS and [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    values = {k: np.array([float(r[k]) for r in rows]) for k in COLUMNS[1:]}
    assert all(np.isfinite(v).all() for v in values.values())
    assert (values["d_loss"] > 0).all() and (values["g_loss"] > 0).all()
    for key in ("d_accuracy", "d_real", "d_fake"):
        assert ((values[key] >= 0) & (values[key] <= 1)).all(), key
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["iter_000002.png", "iter_000004.png"]
    # the training sample grid: one row per class (10 rows of 56 pixels), 8 columns
    grid = read_picture(out / "samples" / "iter_000004.png")
    assert 10 * 56 < grid.shape[0] < 11 * 56 + 60 and cgan.SAMPLE_COLUMNS * 56 < grid.shape[1] < 10 * 56 + 200
    # the progress picture: one row per sample iteration, PROGRESS_COLUMNS classes
    progress_row = read_picture(out / "samples" / "progress" / "iter_000004.png")
    assert progress_row.shape[:2] == (28, 28 * cgan.PROGRESS_COLUMNS)
    assert read_picture(out / "progress.png").shape[0] > 2 * 56
    meta = json.loads((out / "checkpoints" / "iter_000004" / "meta.json").read_text())
    assert meta["dataset"] == "fashion_mnist" and meta["label_smoothing"] == 0.1
    assert meta["class_names"] == CLASS_NAMES["fashion_mnist"]
    assert {"feed", "z_sampler", "label_sampler"} <= set(meta)
    metrics = check_test_files(out / "test", (28, 28, 1), 10, 10)
    assert result == metrics and metrics["rows"] == CLASS_NAMES["fashion_mnist"]
    # the test again, two classes in the pictures (the scored samples keep every class)
    grid = read_picture(out / "test" / cgan.GRID_PNG)
    run_in_process("cgan", framework, [*args, "--test", "--classes", 7, 3])
    metrics = check_test_files(out / "test", (28, 28, 1), 10, 2)
    assert metrics["rows"] == [CLASS_NAMES["fashion_mnist"][7], CLASS_NAMES["fashion_mnist"][3]]
    assert read_picture(out / "test" / cgan.GRID_PNG).shape[0] < grid.shape[0] / 3


@pytest.mark.parametrize("framework", CGAN_FRAMEWORKS)
@pytest.mark.parametrize("dataset", ["imori", "cifar10"])
def test_other_data_sets(framework, dataset, image_folder, tmp_path):
    # the newt photos: two classes (akahara, madara) from the folders, 64x64x3;
    # CIFAR-10: ten classes, 32x32x3
    folder = image_folder if dataset == "imori" else make_cifar_dir(tmp_path / "cifar", n_per_batch=4)
    out = tmp_path / "run"
    metrics = run_in_process("cgan", framework, ["--dry-run", *data_args(folder, out, dataset, batch_size=8)])
    meta = json.loads((out / "checkpoints" / "iter_000001" / "meta.json").read_text())
    shape, names, stages = ((64, 64, 3), ["akahara", "madara"], 4) if dataset == "imori" else (
        (32, 32, 3), CIFAR_LABEL_NAMES, 3)
    assert meta["model"]["image_shape"] == list(shape) and meta["model"]["stages"] == stages
    assert meta["model"]["n_classes"] == len(names) and meta["class_names"] == names
    assert metrics == check_test_files(out / "test", shape, len(names), len(names))
    assert metrics["rows"] == names


@pytest.mark.parametrize("framework", CGAN_FRAMEWORKS)
def test_resume_continues_the_same_run(framework, blocks, tmp_path):
    # training only (the test phase has its own tests): the final sample
    # picture, drawn from the fixed z and labels, shows the final weights
    base = ["--data-dir", blocks, "--batch-size", 16, "--seed", 3, "--log-every", 1, "--sample-every", 3,
            "--checkpoint-every", 4, "--train"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_in_process("cgan", framework, [*base, "--out-dir", whole, "--iters", 8])
    # the run as a kill after its checkpoint at 4 leaves it (a row logged past it must go)
    stopped_copy(whole, parts, 4, "5,9.0,9.0,0.5,0.5,0.5,0.1")
    # --classes only picks test-picture rows, so a resume may name them (all ten: the same pictures)
    run_in_process("cgan", framework, [*base, "--out-dir", parts, "--iters", 8, "--resume",
                                       "--classes", *range(10)])
    rows_whole, rows_parts = read_rows(whole / "metrics.csv"), read_rows(parts / "metrics.csv")
    assert [int(r["iteration"]) for r in rows_parts] == list(range(1, 9))
    for key in COLUMNS[1:-1]:
        # same batches, labels, z and optimizer states: the same numbers, to the digit written
        assert [r[key] for r in rows_parts] == [r[key] for r in rows_whole], key
    meta_whole = json.loads((whole / "checkpoints" / "iter_000008" / "meta.json").read_text())
    meta_parts = json.loads((parts / "checkpoints" / "iter_000008" / "meta.json").read_text())
    for key in ("feed", "z_sampler", "label_sampler"):
        assert meta_parts[key] == meta_whole[key], key
    # the same final weights: the same last sample picture, pixel for pixel
    np.testing.assert_array_equal(read_picture(parts / "samples" / "iter_000008.png"),
                                  read_picture(whole / "samples" / "iter_000008.png"))
    assert not (parts / "test").exists()
    assert sorted(p.name for p in (parts / "samples" / "progress").glob("*.png")) == [
        "iter_000003.png", "iter_000006.png", "iter_000008.png"]


@pytest.mark.parametrize("framework", CGAN_FRAMEWORKS)
def test_the_condition_is_learnt(framework, blocks, tmp_path):
    # Each class is a block in its own place.  The nearest class mean of the
    # real pictures reads the class of 100% of them; after 300 steps it must
    # read the asked-for class in G's samples (chance: 10%).  A G that
    # ignores y, or a D shown the fakes with other labels than G was given,
    # stays at chance (10% measured), and so fails here.
    out = tmp_path / "run"
    metrics = run_in_process("cgan", framework, [*data_args(blocks, out, batch_size=32), "--iters", LEARN_ITERS,
                                                 "--sample-every", 0, "--checkpoint-every", 0, "--log-every", 50])
    assert metrics["label_accuracy_nearest_mean_real"] == 1.0
    assert metrics["label_accuracy_nearest_mean"] >= LEARN_ACCURACY, metrics
    # the scored samples of different classes differ more than those of one class
    samples = np.load(out / "test" / cgan.SAMPLES_NPY).reshape(10, cgan.SCORED_PER_CLASS, -1).astype(np.float64)
    means = samples.mean(axis=1)
    within = np.sqrt(((samples - means[:, None]) ** 2).sum(-1)).mean()
    between = np.sqrt(((means[:, None] - means[None]) ** 2).sum(-1))[~np.eye(10, dtype=bool)].mean()
    assert between > 2 * within, (between, within)


@pytest.fixture(scope="module")
def dry_run(digits, tmp_path_factory):
    """framework -> the run folder of a dry run on the digits (MNIST), made on first use."""
    made = {}

    def get(framework):
        if framework not in made:
            out = tmp_path_factory.mktemp(f"cgan_{framework}")
            run_in_process("cgan", framework, ["--dry-run", *data_args(digits, out)])
            made[framework] = out
        return made[framework]
    return get


@pytest.mark.parametrize("framework", CGAN_FRAMEWORKS)
def test_bad_input_is_one_line_and_status_2(framework, digits, image_folder, tmp_path, capsys, dry_run):
    run = dry_run(framework)
    checkpoint = run / "checkpoints" / "iter_000001"
    out = ["--out-dir", tmp_path / "run"]
    expect_usage_error(capsys, "cgan", framework, ["--dataset", "svhn", *out], "svhn")
    expect_usage_error(capsys, "cgan", framework, ["--iters", 0, *out], "--iters")
    expect_usage_error(capsys, "cgan", framework, ["--classes", "two", *out], "--classes")
    # a class outside the data's classes, or named twice: before training, and in the test
    expect_usage_error(capsys, "cgan", framework, [*data_args(digits, tmp_path / "never"), "--classes", 3, 10],
                       "--classes 10", "outside the 10 classes")
    assert not (tmp_path / "never" / "checkpoints").exists()
    expect_usage_error(capsys, "cgan", framework, ["--test", *data_args(digits, run), "--classes", 12],
                       "--classes 12", "0..9")
    expect_usage_error(capsys, "cgan", framework, ["--test", *data_args(digits, run), "--classes", 3, 3], "twice")
    # a folder of one class, a folder without class sub-folders: nothing to condition on
    one = make_image_folder(tmp_path / "one", classes=("akahara",), n_per_class=2, split_layout=False)
    expect_usage_error(capsys, "cgan", framework, ["--dry-run", *data_args(one, tmp_path / "o", "imori")],
                       "1 class (akahara)", "at least 2")
    flat = tmp_path / "flat"
    flat.mkdir()
    cv2.imwrite(str(flat / "newt.jpg"), np.zeros((16, 16, 3), np.uint8))
    expect_usage_error(capsys, "cgan", framework, ["--dry-run", *data_args(flat, tmp_path / "o", "imori")],
                       "no class sub-folders")
    # a checkpoint of other classes (MNIST's, tested on Fashion-MNIST), of another noise size,
    # of another question, of another image shape
    expect_usage_error(capsys, "cgan", framework, ["--test", *data_args(digits, run, "fashion_mnist")],
                       "trained on the classes 0, 1")
    expect_usage_error(capsys, "cgan", framework, ["--test", *data_args(digits, run), "--z-dim", 8], "z_dim")
    other = tmp_path / "dcgan_checkpoint"
    other.mkdir()
    meta = json.loads((checkpoint / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "question": "dcgan"}))
    expect_usage_error(capsys, "cgan", framework, ["--test", "--checkpoint", other, *data_args(digits, run)],
                       "'dcgan'")
    expect_usage_error(capsys, "cgan", framework, ["--test", "--checkpoint", checkpoint,
                                                   *data_args(image_folder, tmp_path / "o", "imori")], "image_shape")
    # --resume keeps the run's fixed settings
    expect_usage_error(capsys, "cgan", framework, [*data_args(digits, run), "--train", "--resume", "--iters", 2,
                                                   "--label-smoothing", 0.1], "--label-smoothing 0.1")


def test_bad_flag_as_a_program_prints_one_line():
    proc = run_program("cgan", CGAN_FRAMEWORKS[0], ["--classes", "-1"])
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# ---------------------------------------------------------------------------
# The PyTorch networks: the numbers and the layout the other versions copy
# (their parity tests load these weights; CGAN_SPEC.md)
# ---------------------------------------------------------------------------

# Parameter counts (weights, biases, BatchNorm gamma and beta), z_dim 100:
# the DCGAN's plus n_classes Dense inputs in G and n_classes input channels in D.
PARAMETERS = {
    ((28, 28, 1), 10): {"generator": 2_240_257, "discriminator": 63_233},
    ((32, 32, 3), 10): {"generator": 2_931_203, "discriminator": 268_673},
    ((64, 64, 3), 2): {"generator": 7_815_171, "discriminator": 1_083_777},
}


@pytest.mark.parametrize("image_shape,n_classes", list(PARAMETERS), ids=["28x28x1", "32x32x3", "64x64x3"])
def test_pytorch_networks_and_where_the_label_goes(image_shape, n_classes):
    torch = pytest.importorskip("torch")
    pt = load_script("cgan", "pytorch")
    generator, discriminator, _, _ = pt.build_model(image_shape, 100, n_classes, 3, 2e-4, torch.device("cpu"))
    counts = {"generator": sum(p.numel() for p in generator.parameters()),
              "discriminator": sum(p.numel() for p in discriminator.parameters())}
    assert counts == PARAMETERS[image_shape, n_classes]
    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, (4, 100)).astype(np.float32)
    y, other_y = cgan.one_hot([0, 1, 0, 1], n_classes), cgan.one_hot([1, 0, 1, 0], n_classes)
    images = rng.uniform(-1, 1, (4, *image_shape)).astype(np.float32)
    channels = image_shape[2]

    def outputs():
        return (pt.generate(generator, z, y, "cpu"), pt.generate(generator, z, other_y, "cpu"),
                pt.discriminate(discriminator, images, y, "cpu"),
                pt.discriminate(discriminator, images, other_y, "cpu"))
    g_y, g_other, d_y, d_other = outputs()
    assert g_y.shape == (4, *image_shape) and d_y.shape == (4, 1)
    assert np.abs(g_y - g_other).max() > 1e-4 and np.abs(d_y - d_other).max() > 1e-6     # both read the label
    with torch.no_grad():
        generator.dense[0].weight[:, 100:] = 0          # G's Dense input is [z, y]: y's columns come last
        discriminator.convs[0].weight[:, channels:] = 0   # D's input is [image, label planes]: the planes last
    g_y, g_other, d_y, d_other = outputs()
    np.testing.assert_array_equal(g_y, g_other)
    np.testing.assert_array_equal(d_y, d_other)


# ---------------------------------------------------------------------------
# common/cgan.py: the framework-neutral half (no framework)
# ---------------------------------------------------------------------------

def test_one_hot_and_the_label_sampler():
    np.testing.assert_array_equal(cgan.one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    assert cgan.one_hot([1], 4).dtype == np.float32
    with pytest.raises(UsageError, match="outside"):
        cgan.one_hot([3], 3)
    np.testing.assert_array_equal(cgan.wrong_labels([0, 8, 9], 10), [1, 9, 0])
    sampler = cgan.LabelSampler(10, seed=5)
    first = sampler(64)
    assert first.dtype == np.int64 and first.min() >= 0 and first.max() <= 9 and len(np.unique(first)) > 5
    state = json.loads(json.dumps(sampler.state_dict()))        # JSON, as in meta.json
    following = sampler(64)
    again = cgan.LabelSampler(10, seed=5)
    again.load_state_dict(state)
    np.testing.assert_array_equal(again(64), following)
    np.testing.assert_array_equal(cgan.LabelSampler(10, seed=5)(64), first)     # seeded: the same in every framework
    with pytest.raises(UsageError, match="classes"):
        cgan.LabelSampler(2, seed=5).load_state_dict(state)


def test_test_conditions():
    z_dim, n = 6, 10
    full = cgan.test_conditions(n, z_dim, seed=0)
    steps, columns = cgan.INTERPOLATION_STEPS, cgan.GRID_COLUMNS
    for name in ("grid", "style", "interpolation"):
        z, y = full[name]
        assert z.shape == (n * columns, z_dim) and y.shape == (n * columns, n) and z.dtype == y.dtype == np.float32
    grid_z, grid_y = full["grid"]
    np.testing.assert_array_equal(grid_y.argmax(1), np.repeat(np.arange(n), columns))   # row r: class r
    assert len(np.unique(grid_z, axis=0)) == n * columns                                 # a new z in every cell
    style_z, style_y = full["style"]
    np.testing.assert_array_equal(style_z.reshape(n, columns, z_dim), np.broadcast_to(style_z[:columns],
                                                                                        (n, columns, z_dim)))
    np.testing.assert_array_equal(style_y, grid_y)
    inter_z, inter_y = full["interpolation"]
    rows = inter_y.reshape(n, steps, n)
    np.testing.assert_allclose(rows.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(rows[:, 0].argmax(1), np.arange(n))                   # from class r ...
    np.testing.assert_array_equal(rows[:, -1].argmax(1), (np.arange(n) + 1) % n)         # ... to the next
    assert set(np.unique(rows[:, [0, -1]])) == {0.0, 1.0}
    assert (inter_z.reshape(n, steps, z_dim) == inter_z.reshape(n, steps, z_dim)[:, :1]).all()   # z fixed per row
    z, y = full["scored"]
    assert z.shape == (n * cgan.SCORED_PER_CLASS, z_dim)
    np.testing.assert_array_equal(y.argmax(1), full["scored_labels"])
    # --classes picks rows; a class's row is the same with or without it
    some = cgan.test_conditions(n, z_dim, seed=0, classes=[7, 3])
    np.testing.assert_array_equal(some["grid"][0].reshape(2, columns, z_dim),
                                  grid_z.reshape(n, columns, z_dim)[[7, 3]])
    np.testing.assert_array_equal(some["interpolation"][1].reshape(2, steps, n)[0, -1], np.eye(n)[3])   # 7 -> 3
    np.testing.assert_array_equal(some["scored"][0], z)                              # every class, always
    # seeded streams: another seed, other z
    assert not np.array_equal(cgan.test_conditions(n, z_dim, seed=1)["grid"][0], grid_z)


def test_pick_classes_and_the_class_check():
    assert cgan.pick_classes(None, 3, "x") == [0, 1, 2]
    assert cgan.pick_classes([2, 0], 3, "x") == [2, 0]
    with pytest.raises(UsageError, match="outside the 3 classes"):
        cgan.pick_classes([3], 3, "x")
    cgan.check_class_names({"class_names": ["a", "b"]}, ["a", "b"])
    cgan.check_class_names({}, ["a", "b"])                     # nothing saved: nothing to compare
    with pytest.raises(UsageError, match="trained on the classes a, b"):
        cgan.check_class_names({"class_names": ["a", "b"]}, ["b", "a"])


def test_nearest_mean_accuracy():
    rng = np.random.default_rng(0)
    reference_labels = np.repeat(np.arange(3), 5)
    reference = np.eye(3)[reference_labels][:, :, None, None] + 0.1 * rng.standard_normal((15, 3, 1, 1))
    assert cgan.nearest_mean_accuracy(reference, reference_labels, reference, reference_labels, 3) == 1.0
    assert cgan.nearest_mean_accuracy(reference, (reference_labels + 1) % 3, reference, reference_labels, 3) == 0.0
    assert cgan.nearest_mean_accuracy(reference[:5], reference_labels[:5], reference[:10], reference_labels[:10],
                                      3) is None                 # class 2 has no reference picture


@pytest.mark.parametrize("framework", CGAN_FRAMEWORKS)
def test_every_truncated_checkpoint_file_is_one_line(framework, digits, tmp_path, capsys, dry_run):
    # Each file of a CGAN checkpoint (weights, optimizer and RNG states,
    # meta.json) cut in half: --resume stops in one line naming the
    # checkpoint, exit 2, and writes nothing past it.
    trained = dry_run(framework)
    names = sorted(p.name for p in (trained / "checkpoints" / "iter_000001").iterdir() if p.is_file())
    assert "meta.json" in names and len(names) >= 3, names
    for name in names:
        run = tmp_path / name
        shutil.copytree(trained, run)
        path = run / "checkpoints" / "iter_000001" / name
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        line = expect_usage_error(capsys, "cgan", framework,
                                  ["--train", "--resume", "--iters", 2, *data_args(digits, run)])
        assert str(path.parent) in line, line
        assert not (run / "checkpoints" / "iter_000002").exists()
