"""alpha-GAN answers: dry run as a program, the other data sets, resume,
bad input, a learning check, the PyTorch networks and the order of the four
steps; plus the framework-neutral half (common/alpha_gan.py).

ALPHA_GAN_FRAMEWORKS lists the versions written so far; a porter adds
theirs (a listed script that is missing fails, it is never skipped).
Budget: about 40 s for one framework on 2 cores (the learning check trains
8x8 pictures, the 64x64 newt run is a dry run).
"""
import copy
import json
import shutil

import cv2
import numpy as np
import pytest

from common import alpha_gan, gan, recon
from tests.answers import expect_usage_error, read_rows, run_in_process, run_program, stopped_copy
from tests.conftest import load_script
from tests.fixtures import make_cifar_dir, make_mnist_dir, write_idx_images, write_idx_labels

ALPHA_GAN_FRAMEWORKS = ("pytorch", "tf_slim", "keras", "chainer")
COLUMNS = ["iteration", *alpha_gan.FIELDS, "sec_per_iter"]
PLOTS = (alpha_gan.LOSSES_PNG, alpha_gan.L1_PNG, alpha_gan.D_PNG, alpha_gan.C_PNG, gan.PROGRESS_PNG)
TEST_FILES = (alpha_gan.RECONSTRUCTIONS_PNG, alpha_gan.SAMPLES_PNG, alpha_gan.INTERPOLATION_PNG,
              alpha_gan.CODES_PNG, alpha_gan.SAMPLES_NPY, alpha_gan.RECONSTRUCTIONS_NPY,
              alpha_gan.RECONSTRUCTION_LABELS_NPY, alpha_gan.METRICS_JSON)
METRICS = {"test_l1", "test_mse", "code_fd_to_prior", "code_mean_norm", "code_std_mean", "d_real_test",
           "d_reconstruction_test", "d_sample", "test_images", "samples", "scored_samples", "z_dim"}
LEARN_ITERS = 300


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """64 training and 16 test digits as MNIST IDX .gz files."""
    return make_mnist_dir(tmp_path_factory.mktemp("digits"), n_train=64, n_test=16)


def bar_arrays(n, seed):
    """8x8 pictures whose class is a bright bar two pixels wide: classes 0-3
    horizontal (rows 0-1, 2-3, 4-5, 6-7), 4-7 vertical (columns alike), 8 and
    9 the two diagonals; a random brightness and pixel noise.  A quarter of
    each picture is the bar: an encoder that ignores its input (all black)
    loses much, so the reconstruction term keeps E's codes apart."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10)
    images = np.zeros((n, 8, 8))
    for i, label in enumerate(labels):
        brightness = rng.uniform(150, 255)
        if label < 4:
            images[i, 2 * label:2 * label + 2, :] = brightness
        elif label < 8:
            images[i, :, 2 * (label - 4):2 * (label - 4) + 2] = brightness
        else:
            for row in range(8):
                col = row if label == 8 else 7 - row
                images[i, row, max(col - 1, 0):col + 1] = brightness
    images += rng.normal(0, 10, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="module")
def bars(tmp_path_factory):
    """200 training and 100 test bar pictures as MNIST IDX files (8x8: a one-stage DCGAN, fast)."""
    root = tmp_path_factory.mktemp("bars")
    for prefix, n, seed in (("train", 200, 0), ("t10k", 100, 1)):
        images, labels = bar_arrays(n, seed)
        write_idx_images(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx_labels(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


def data_args(folder, out_dir, dataset="mnist", batch_size=16):
    return ["--dataset", dataset, "--data-dir", folder, "--out-dir", out_dir, "--batch-size", batch_size]


def read_picture(path):
    picture = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert picture is not None, f"cannot read {path}"
    return picture


def check_test_files(test_dir, image_shape, n_test, z_dim):
    """The test's files: the pictures, the scored samples and reconstructions
    (uint8 NHWC), metrics.json with numbers in their ranges."""
    for name in TEST_FILES:
        assert (test_dir / name).exists(), name
    for name in (alpha_gan.RECONSTRUCTIONS_PNG, alpha_gan.SAMPLES_PNG, alpha_gan.INTERPOLATION_PNG,
                 alpha_gan.CODES_PNG):
        assert read_picture(test_dir / name).std() > 5, name                  # not blank
    interpolation = read_picture(test_dir / alpha_gan.INTERPOLATION_PNG)
    cell = image_shape[0] * max(1, 56 // image_shape[0])
    assert alpha_gan.INTERPOLATION_ROWS * cell < interpolation.shape[0] < (alpha_gan.INTERPOLATION_ROWS + 1) * cell + 60
    samples = np.load(test_dir / alpha_gan.SAMPLES_NPY, allow_pickle=False)
    reconstructions = np.load(test_dir / alpha_gan.RECONSTRUCTIONS_NPY, allow_pickle=False)
    assert samples.dtype == np.uint8 and samples.shape == (alpha_gan.SCORED_COUNT, *image_shape)
    assert reconstructions.dtype == np.uint8 and reconstructions.shape == (min(n_test, alpha_gan.SCORED_COUNT),
                                                                           *image_shape)
    labels = np.load(test_dir / alpha_gan.RECONSTRUCTION_LABELS_NPY, allow_pickle=False)
    assert labels.dtype == np.int64 and labels.shape == (len(reconstructions),)
    metrics = json.loads((test_dir / alpha_gan.METRICS_JSON).read_text())
    assert set(metrics) == METRICS
    assert (metrics["test_images"], metrics["z_dim"], metrics["scored_samples"]) == (n_test, z_dim,
                                                                                    alpha_gan.SCORED_COUNT)
    assert 0 < metrics["test_l1"] < 1 and 0 < metrics["test_mse"] < 1 and metrics["code_fd_to_prior"] >= 0
    for key in ("d_real_test", "d_reconstruction_test", "d_sample"):
        assert 0 < metrics[key] < 1, key
    return metrics


@pytest.mark.parametrize("framework", ALPHA_GAN_FRAMEWORKS)
def test_dry_run_as_a_program(framework, digits, tmp_path):
    # the default configuration: MNIST 28x28x1, z of size 10
    out = tmp_path / "run"
    proc = run_program("alpha_gan", framework, ["--dry-run", "--data-dir", digits, "--out-dir", out,
                                                "--batch-size", 8])
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert (config["dataset"], config["z_dim"], config["l1_weight"], config["iters"]) == ("mnist", 10, 1.0, 1)
    assert (config["lr"], config["encoder_lr"]) == (5e-4, 1e-4)
    rows = read_rows(out / "metrics.csv")
    assert list(rows[0]) == COLUMNS and [r["iteration"] for r in rows] == ["1"]
    assert (out / "samples" / "iter_000001.png").exists()
    for name in PLOTS:
        assert (out / name).exists(), name
    meta = json.loads((out / "checkpoints" / "iter_000001" / "meta.json").read_text())
    assert (meta["question"], meta["framework"], meta["iteration"]) == ("alpha_gan", framework, 1)
    assert meta["model"] == {"image_shape": [28, 28, 1], "z_dim": 10, "stages": 2, "start": [7, 7],
                             "generator": [256, 128], "discriminator": [32, 64], "encoder": [32, 64],
                             "code_discriminator": [750, 750]}
    assert {"feed", "z_sampler", "l1_weight"} <= set(meta)
    check_test_files(out / "test", (28, 28, 1), 16, 10)
    assert "test L1" in proc.stdout


@pytest.mark.parametrize("framework", ALPHA_GAN_FRAMEWORKS)
@pytest.mark.parametrize("dataset", ["cifar10"])
def test_other_data_sets(framework, dataset, image_folder, tmp_path):
    # CIFAR-10 32x32x3 (z 128); the newt photos' 64x64 networks: test_pytorch_networks and the parity
    # tests (a 64x64 dry run costs a minute of the suite)
    folder = image_folder if dataset == "imori" else make_cifar_dir(tmp_path / "cifar", n_per_batch=4)
    out = tmp_path / "run"
    metrics = run_in_process("alpha_gan", framework, ["--dry-run", *data_args(folder, out, dataset, batch_size=4)])
    meta = json.loads((out / "checkpoints" / "iter_000001" / "meta.json").read_text())
    shape, z_dim, stages, n_test = ((64, 64, 3), 10, 4, 4) if dataset == "imori" else ((32, 32, 3), 128, 3, 4)
    assert (meta["model"]["image_shape"], meta["model"]["z_dim"], meta["model"]["stages"]) == (list(shape), z_dim,
                                                                                              stages)
    assert metrics == check_test_files(out / "test", shape, len(np.load(out / "test" / "reconstructions.npy")),
                                       z_dim)
    assert metrics["test_images"] >= n_test


@pytest.mark.parametrize("framework", ALPHA_GAN_FRAMEWORKS)
def test_defaults_follow_the_data_set(framework, tmp_path):
    module = load_script("alpha_gan", framework)
    out = ["--test", "--out-dir", str(tmp_path / "run")]
    args = module.parse_args(out)
    assert (args.z_dim, args.iters, args.lr, args.encoder_lr, args.batch_size) == (10, 100000, 5e-4, 1e-4, 64)
    assert module.parse_args([*out, "--dataset", "cifar10"]).z_dim == 128
    assert module.parse_args([*out, "--dataset", "cifar10", "--z-dim", "7"]).z_dim == 7


@pytest.mark.parametrize("framework", ALPHA_GAN_FRAMEWORKS)
def test_resume_continues_the_same_run(framework, bars, tmp_path):
    # training only (the test phase has its own tests): the final sample
    # picture shows the final weights
    base = ["--data-dir", bars, "--batch-size", 16, "--seed", 3, "--log-every", 1, "--sample-every", 3,
            "--checkpoint-every", 4, "--train"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_in_process("alpha_gan", framework, [*base, "--out-dir", whole, "--iters", 8])
    # the run as a kill after its checkpoint at 4 leaves it (a row logged past it must go)
    stopped_copy(whole, parts, 4, "5" + ",9.0" * len(alpha_gan.FIELDS) + ",0.1")
    run_in_process("alpha_gan", framework, [*base, "--out-dir", parts, "--iters", 8, "--resume"])
    rows_whole, rows_parts = read_rows(whole / "metrics.csv"), read_rows(parts / "metrics.csv")
    assert [int(r["iteration"]) for r in rows_parts] == list(range(1, 9))
    for key in COLUMNS[1:-1]:
        # same batches, z, four optimizer states: the same numbers, to the digit written
        assert [r[key] for r in rows_parts] == [r[key] for r in rows_whole], key
    meta_whole = json.loads((whole / "checkpoints" / "iter_000008" / "meta.json").read_text())
    meta_parts = json.loads((parts / "checkpoints" / "iter_000008" / "meta.json").read_text())
    for key in ("feed", "z_sampler"):
        assert meta_parts[key] == meta_whole[key], key
    # the same final weights: the same last sample picture, pixel for pixel
    np.testing.assert_array_equal(read_picture(parts / "samples" / "iter_000008.png"),
                                  read_picture(whole / "samples" / "iter_000008.png"))
    assert not (parts / "test").exists()


@pytest.mark.parametrize("framework", ALPHA_GAN_FRAMEWORKS)
def test_alpha_gan_learns(framework, bars, tmp_path):
    # Each class is a bar in its own place (bar_arrays).  After 300
    # iterations E and G must auto-encode: the test reconstructions' error a
    # fraction of the untrained one, and each reconstruction nearest to its
    # own class's mean picture (100% in every correct run, 10% by chance).
    # The samples from the prior lag behind (in 300 steps E's codes sit at a
    # Frechet distance of about 7 from the prior, so many prior z fall where
    # G has seen no code and G(z) is a blend of bars): they must be nearer
    # the class means than the untrained G's and of several classes.
    # Measured, the samples' mean squared distance to the nearest class mean
    # as a fraction of the untrained G's: 0.46-0.78 over 11 correct runs
    # (PyTorch seeds 0-4, TF-Slim 0-2, Keras 0, Chainer 0-1); the bound is
    # 0.85, a G that learns nothing stays at 1.  That distance alone cannot
    # tell a good G from one that draws the data's mean picture (0.53): the
    # class spread can (one class for every sample).  Which step mistakes
    # these checks cannot see, the parity tests and
    # test_the_four_steps_in_order do.
    out = tmp_path / "run"
    args = [*data_args(bars, out, batch_size=32), "--sample-every", 0, "--log-every", 50]
    untrained = run_in_process("alpha_gan", framework, [*args, "--iters", 1, "--checkpoint-every", 0])
    untrained_samples = np.load(out / "test" / alpha_gan.SAMPLES_NPY).astype(np.float64).reshape(-1, 64)
    metrics = run_in_process("alpha_gan", framework, [*args, "--iters", LEARN_ITERS, "--checkpoint-every", 0])
    assert metrics["test_l1"] < 0.3 * untrained["test_l1"], (metrics, untrained)
    test_images, test_labels = bar_arrays(100, 1)
    means = np.stack([test_images[test_labels == c].reshape(-1, 64).mean(0) for c in range(10)])

    def distances(images):
        return ((images.reshape(-1, 64).astype(np.float64)[:, None] - means[None]) ** 2).sum(-1)
    reconstructions = np.load(out / "test" / alpha_gan.RECONSTRUCTIONS_NPY)
    labels = np.load(out / "test" / alpha_gan.RECONSTRUCTION_LABELS_NPY)
    assert np.mean(distances(reconstructions).argmin(1) == labels) >= 0.9
    samples = np.load(out / "test" / alpha_gan.SAMPLES_NPY)
    assert distances(samples).min(1).mean() < 0.85 * distances(untrained_samples).min(1).mean()
    nearest = distances(samples).argmin(1)
    assert len(np.unique(nearest)) >= 6 and np.bincount(nearest).max() < 0.5 * len(samples), np.bincount(nearest)


@pytest.fixture(scope="module")
def dry_run(digits, tmp_path_factory):
    """framework -> the run folder of a dry run on the digits, made on first use."""
    made = {}

    def get(framework):
        if framework not in made:
            out = tmp_path_factory.mktemp(f"alpha_gan_{framework}")
            run_in_process("alpha_gan", framework, ["--dry-run", *data_args(digits, out)])
            made[framework] = out
        return made[framework]
    return get


@pytest.mark.parametrize("framework", ALPHA_GAN_FRAMEWORKS)
def test_bad_input_is_one_line_and_status_2(framework, digits, image_folder, tmp_path, capsys, dry_run):
    run = dry_run(framework)
    checkpoint = run / "checkpoints" / "iter_000001"
    out = ["--out-dir", tmp_path / "run"]
    expect_usage_error(capsys, "alpha_gan", framework, ["--dataset", "svhn", *out], "svhn")
    expect_usage_error(capsys, "alpha_gan", framework, ["--iters", 0, *out], "--iters")
    expect_usage_error(capsys, "alpha_gan", framework, ["--l1-weight", 0, *out], "--l1-weight")
    expect_usage_error(capsys, "alpha_gan", framework, ["--encoder-lr", "-1e-4", *out], "--encoder-lr")
    expect_usage_error(capsys, "alpha_gan", framework, ["--z-dim", "ten", *out], "--z-dim")
    # a checkpoint of another code size, of another question, of another image shape
    expect_usage_error(capsys, "alpha_gan", framework, ["--test", *data_args(digits, run), "--z-dim", 8], "z_dim")
    other = tmp_path / "dcgan_checkpoint"
    other.mkdir()
    meta = json.loads((checkpoint / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "question": "dcgan"}))
    expect_usage_error(capsys, "alpha_gan", framework, ["--test", "--checkpoint", other, *data_args(digits, run)],
                       "'dcgan'")
    expect_usage_error(capsys, "alpha_gan", framework, ["--test", "--checkpoint", checkpoint,
                                                        *data_args(image_folder, tmp_path / "o", "imori")],
                       "image_shape")
    # --resume keeps the run's fixed settings
    expect_usage_error(capsys, "alpha_gan", framework, [*data_args(digits, run), "--train", "--resume", "--iters", 2,
                                                        "--l1-weight", 2], "--l1-weight 2")
    # every file of the checkpoint cut in half: one line naming the checkpoint, nothing written past it
    names = sorted(p.name for p in checkpoint.iterdir() if p.is_file())
    assert "meta.json" in names and len(names) >= 3, names
    for name in names:
        broken = tmp_path / name
        shutil.copytree(run, broken)
        path = broken / "checkpoints" / "iter_000001" / name
        path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
        line = expect_usage_error(capsys, "alpha_gan", framework,
                                  ["--train", "--resume", "--iters", 2, *data_args(digits, broken)])
        assert str(path.parent) in line, line
        assert not (broken / "checkpoints" / "iter_000002").exists()


def test_bad_flag_as_a_program_prints_one_line():
    proc = run_program("alpha_gan", ALPHA_GAN_FRAMEWORKS[0], ["--l1-weight", "-1"])
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# ---------------------------------------------------------------------------
# The PyTorch networks and train step: the numbers and the order the other
# versions copy (their parity tests load these weights)
# ---------------------------------------------------------------------------

# Parameter counts (weights, biases, BatchNorm gamma and beta)
PARAMETERS = {
    ((28, 28, 1), 10): {"generator": 985_857, "discriminator": 55_233, "encoder": 83_466,
                        "code_discriminator": 572_251},
    ((32, 32, 3), 128): {"generator": 3_004_931, "discriminator": 260_673, "encoder": 520_896,
                         "code_discriminator": 660_751},
    ((64, 64, 3), 10): {"generator": 7_438_339, "discriminator": 1_082_177, "encoder": 1_119_050,
                        "code_discriminator": 572_251},
}


@pytest.mark.parametrize("image_shape,z_dim", list(PARAMETERS), ids=["28x28x1", "32x32x3", "64x64x3"])
def test_pytorch_networks(image_shape, z_dim):
    torch = pytest.importorskip("torch")
    pt = load_script("alpha_gan", "pytorch")
    networks = pt.build_model(image_shape, z_dim, 3, 5e-4, 1e-4, torch.device("cpu"))
    generator, discriminator, encoder, code_discriminator = networks[:4]
    counts = {name: sum(p.numel() for p in network.parameters())
              for name, network in zip(("generator", "discriminator", "encoder", "code_discriminator"),
                                       networks[:4])}
    assert counts == PARAMETERS[image_shape, z_dim]
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for network in networks[1:4] for m in network.modules())     # BatchNorm in G only
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, z_dim)).astype(np.float32)
    images = rng.uniform(-1, 1, (4, *image_shape)).astype(np.float32)
    assert pt.generate(generator, z, "cpu").shape == (4, *image_shape)
    assert pt.discriminate(discriminator, images, "cpu").shape == (4, 1)
    assert pt.encode(encoder, images, "cpu").shape == (4, z_dim)
    # E is D's convolution stack with another Dense: D's convolution weights in E give D's features
    encoder.convs.load_state_dict(discriminator.convs.state_dict())
    with torch.no_grad():
        x = pt.to_nchw(images)
        np.testing.assert_array_equal(encoder.convs(x).numpy(), discriminator.convs(x).numpy())
    # Adam: betas (0.5, 0.9) for all four, lr 5e-4 for G, D, C and 1e-4 for E
    assert [o.defaults["lr"] for o in networks[4:]] == [5e-4, 5e-4, 1e-4, 5e-4]
    assert all(o.defaults["betas"] == (0.5, 0.9) and o.defaults["eps"] == 1e-8 for o in networks[4:])


def reference_iteration(pt, networks, real_images, z, l1_weight):
    """The question's four steps written out again, network by network, with
    the losses of the issue, to check the script's train step against."""
    import torch
    import torch.nn.functional as F
    generator, discriminator, encoder, code_discriminator, g_opt, d_opt, e_opt, c_opt = networks

    def bce(logits, target):
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    def update(optimizer, loss, network):
        params = list(network.parameters())
        grads = torch.autograd.grad(loss, params)
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def l1_norm(differences):                   # the paper's ||.||_1 per image, the batch mean
        return differences.abs().flatten(1).sum(1).mean()

    def decode(codes):                          # G on E's codes and the prior's z in one batch
        images = generator(torch.cat([codes, z]))
        return images[:len(codes)], images[len(codes):]

    for network in networks[:4]:
        network.train()
    codes = encoder(real_images)                                                   # 1. E
    update(e_opt, l1_weight * l1_norm(real_images - decode(codes)[0]) + bce(code_discriminator(codes), 1.0),
           encoder)
    codes = encoder(real_images).detach()
    for _ in range(2):                                                             # 2. G, twice, afresh
        fake, sample = decode(codes)
        update(g_opt, l1_weight * l1_norm(real_images - fake) + bce(discriminator(fake), 1.0)
               + bce(discriminator(sample), 1.0), generator)
    with torch.no_grad():                                                          # 3. D
        fake, sample = decode(codes)
    update(d_opt, bce(discriminator(real_images), 1.0) + bce(discriminator(fake), 0.0)
           + bce(discriminator(sample), 0.0), discriminator)
    update(c_opt, bce(code_discriminator(z), 1.0) + bce(code_discriminator(codes), 0.0), code_discriminator)   # 4. C


def test_the_four_steps_in_order():
    # The script's train step against the reference above, from the same
    # weights and batches, over two iterations: every weight of the four
    # networks and G's BatchNorm statistics agree.  Applying one G gradient
    # twice, leaving E's codes stale, swapping C's labels, or running G on
    # the codes and the prior's z in separate batches all fail here.
    torch = pytest.importorskip("torch")
    pt = load_script("alpha_gan", "pytorch")
    image_shape, z_dim = (8, 8, 1), 4
    ours = pt.build_model(image_shape, z_dim, 5, 5e-4, 1e-4, torch.device("cpu"))
    theirs = copy.deepcopy(ours[:4])
    theirs = (*theirs, *(torch.optim.Adam(n.parameters(), lr=lr, betas=(0.5, 0.9), eps=1e-8)
                         for n, lr in zip(theirs, (5e-4, 5e-4, 1e-4, 5e-4))))
    step = pt.make_train_step(*ours, l1_weight=1.0)
    rng = np.random.default_rng(1)
    bn = ours[0].dense[1]
    for _ in range(2):
        real = pt.to_nchw(rng.uniform(-1, 1, (6, *image_shape)).astype(np.float32))
        z = torch.from_numpy(rng.standard_normal((6, z_dim)).astype(np.float32))
        before = int(bn.num_batches_tracked)
        metrics = step(real, z)
        assert int(bn.num_batches_tracked) - before == 4           # G ran 4 times in training mode
        reference_iteration(pt, theirs, real, z, 1.0)
        assert set(metrics) == set(alpha_gan.FIELDS) and all(np.isfinite(list(metrics.values())))
    for a, b in zip(ours[:4], theirs[:4]):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            np.testing.assert_allclose(x.float().numpy(), y.float().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


# ---------------------------------------------------------------------------
# common/alpha_gan.py: the framework-neutral half (no framework)
# ---------------------------------------------------------------------------

def test_noise_is_normal_and_resumable():
    sampler = alpha_gan.ZSampler(10, seed=3)
    first = sampler(2000)
    assert first.dtype == np.float32 and abs(first.mean()) < 0.05 and abs(first.std() - 1) < 0.05
    state = json.loads(json.dumps(sampler.state_dict()))
    again = alpha_gan.ZSampler(10, seed=3)
    again.load_state_dict(state)
    np.testing.assert_array_equal(sampler(5), again(5))
    latents = alpha_gan.test_latents(10, 3)
    assert latents["samples"].shape == (gan.TEST_SAMPLE_COUNT, 10)
    assert latents["scored"].shape == latents["prior"].shape == (alpha_gan.SCORED_COUNT, 10)
    assert not np.array_equal(latents["scored"], latents["prior"])
    np.testing.assert_array_equal(alpha_gan.sample_latents(10, 3), alpha_gan.sample_latents(10, 3))


def test_code_distance_is_zero_for_the_prior_and_grows_away_from_it():
    rng = np.random.default_rng(0)
    prior = rng.standard_normal((20000, 4))
    assert alpha_gan.code_distance(prior)["code_fd_to_prior"] < 0.01
    shifted = alpha_gan.code_distance(prior + 2.0)
    assert shifted["code_fd_to_prior"] == pytest.approx(16.0, rel=0.02)      # |mu|^2 = 4 x 2^2
    assert shifted["code_mean_norm"] == pytest.approx(4.0, rel=0.01)
    narrow = alpha_gan.code_distance(0.1 * prior)
    assert narrow["code_fd_to_prior"] == pytest.approx(4 * 0.81, rel=0.02)   # Tr(S + I - 2 S^1/2) = 4 (1 - 0.1)^2
    assert narrow["code_std_mean"] == pytest.approx(0.1, rel=0.02)


def test_interpolation_pairs_and_principal_axes():
    labels = np.array([3, 1, 1, 0, 3, 2])
    assert alpha_gan.interpolation_pairs(labels, 5) == [(3, 1), (1, 5), (5, 0), (0, 3), (3, 1)]
    assert alpha_gan.interpolation_pairs(np.zeros(5), 3) == [(0, 1), (2, 3), (4, 0)]
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((500, 3)) * [0.1, 3.0, 1.0]
    axes = alpha_gan.principal_axes(codes)
    np.testing.assert_allclose(np.abs(axes), [[0, 0], [1, 0], [0, 1]], atol=0.05)
    assert (axes[np.abs(axes).argmax(0), [0, 1]] > 0).all()
    assert alpha_gan.reconstruction_errors(np.ones((2, 2)), -np.ones((2, 2))) == (1.0, 1.0)
    assert recon.pick_round_robin(labels, 4).tolist() == [3, 1, 5, 0]
