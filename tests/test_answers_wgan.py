"""WGAN and WGAN-GP answers: dry run as a program, train-a-little-then-test
on every data set (all made 32x32), resume bit for bit, bad input; the
gradient norm and the penalty against float64 finite differences (a norm
per element or one eps per batch fails there), the clipping, and the
framework-neutral half (common/wgan.py).

WGAN_FRAMEWORKS lists the versions written so far; a porter adds theirs
(a listed script that is missing fails, it is never skipped).
Budget: about 60 s per framework on 2 cores (tiny batches, n_critic 2,
the WGAN-GP at width 8).
"""
import json

import numpy as np
import pytest

from common import gan, pictures, wgan
from tests.answers import expect_usage_error, read_rows, run_in_process, run_program, stopped_copy
from tests.conftest import load_script
from tests.fixtures import make_cifar_dir, make_mnist_dir

WGAN_FRAMEWORKS = ("pytorch", "tf_slim", "keras", "chainer")
QUESTIONS = ("wgan", "wgan_gp")
CASES = [(q, f) for q in QUESTIONS for f in WGAN_FRAMEWORKS]
IDS = [f"{q}-{f}" for q, f in CASES]
PLOTS = {"wgan": ("losses.png", "wasserstein.png", "critic.png", "gradient_norm.png", "clip_fraction.png"),
         "wgan_gp": ("losses.png", "wasserstein.png", "critic.png", "gradient_norm.png")}
TEST_FILES = ("samples.png", "interpolation.png", "morph.gif", "samples.npy", "metrics.json")
SMALL = {"wgan": ["--n-critic", 2], "wgan_gp": ["--n-critic", 2, "--width", 8]}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return make_mnist_dir(tmp_path_factory.mktemp("digits"), n_train=64, n_test=16)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return make_cifar_dir(tmp_path_factory.mktemp("cifar"), n_per_batch=8)


def check_run(run, question, image_shape, iterations):
    rows = read_rows(run / "metrics.csv")
    assert list(rows[0]) == ["iteration", *wgan.FIELDS[question], "sec_per_iter"]
    assert [int(r["iteration"]) for r in rows] == list(range(1, iterations + 1))
    for row in rows:
        values = {key: float(row[key]) for key in wgan.FIELDS[question]}
        assert all(np.isfinite(v) for v in values.values()), row
        # the sign convention, written once: W = f(real) - f(fake), critic_loss = -W (+ penalty)
        assert values["wasserstein"] == pytest.approx(values["critic_real"] - values["critic_fake"], abs=1e-5)
        penalty = values.get("gradient_penalty", 0.0)
        weight = 10.0 if question == "wgan_gp" else 0.0
        assert values["critic_loss"] == pytest.approx(-values["wasserstein"] + weight * penalty, abs=1e-4)
        assert values["grad_norm"] > 0
    for name in PLOTS[question]:
        assert (run / name).stat().st_size > 1000, name
    test = run / "test"
    for name in TEST_FILES:
        assert (test / name).exists(), name
    scored = np.load(test / "samples.npy", allow_pickle=False)
    assert scored.dtype == np.uint8 and scored.shape == (wgan.SCORED_COUNT, *image_shape)
    metrics = json.loads((test / "metrics.json").read_text())
    assert metrics["wasserstein_test"] == pytest.approx(metrics["critic_real_test"] - metrics["critic_fake_samples"])
    meta = json.loads((run / "checkpoints" / f"iter_{iterations:06d}" / "meta.json").read_text())
    assert meta["generator_steps"] == iterations and meta["critic_steps"] == iterations * meta["n_critic"]
    assert meta["model"]["image_shape"] == list(image_shape)
    return rows, metrics


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_dry_run_as_a_program_then_its_checkpoint_refuses_other_settings(question, framework, cifar, tmp_path,
                                                                          capsys):
    # the default data set, CIFAR-10 (32x32x3), as a user runs it
    out = tmp_path / "run"
    args = ["--data-dir", cifar, "--out-dir", out, "--batch-size", 8, *SMALL[question]]
    result = run_program(question, framework, ["--dry-run", *args])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "W " in result.stdout
    check_run(out, question, (32, 32, 3), 1)
    # --resume keeps the run's n_critic; a checkpoint of another shape or noise size is refused
    expect_usage_error(capsys, question, framework, [*args, "--n-critic", 3, "--train", "--resume", "--iters", 2],
                       "--n-critic 3")
    expect_usage_error(capsys, question, framework, ["--test", *args, "--z-dim", 7], "z_dim")
    if question == "wgan_gp":
        expect_usage_error(capsys, question, framework, ["--test", *args, "--width", 16], "width")
    assert not (out / "checkpoints" / "iter_000002").exists()


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_digits_are_made_32x32_and_resume_continues_the_same_run(question, framework, digits, tmp_path):
    # MNIST 28x28 padded with background to 32x32x1 (the newt photos: test_bad_input...)
    base = ["--dataset", "mnist", "--data-dir", digits, "--batch-size", 8, *SMALL[question], "--log-every", 1,
            "--sample-every", 2, "--checkpoint-every", 2]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_in_process(question, framework, [*base, "--out-dir", whole, "--iters", 4])
    check_run(whole, question, (32, 32, 1), 4)
    assert (whole / "samples" / "iter_000004.png").exists()
    # the run as a kill after its checkpoint at 2 leaves it (a row logged past it must go)
    stopped_copy(whole, parts, 2, "3" + ",9" * (len(wgan.FIELDS[question]) + 1))
    run_in_process(question, framework, [*base, "--train", "--out-dir", parts, "--iters", 4, "--resume"])
    rows_whole, rows_parts = read_rows(whole / "metrics.csv"), read_rows(parts / "metrics.csv")
    for key in wgan.FIELDS[question]:
        assert [r[key] for r in rows_parts] == [r[key] for r in rows_whole], key
    meta_whole = json.loads((whole / "checkpoints" / "iter_000004" / "meta.json").read_text())
    meta_parts = json.loads((parts / "checkpoints" / "iter_000004" / "meta.json").read_text())
    for key in ("feed", "z_sampler", "mix_sampler", "generator_steps", "critic_steps"):
        assert meta_parts[key] == meta_whole[key], key
    # the same final weights (training only after the resume: the test phase is checked on `whole`):
    # the same last sample picture, pixel for pixel
    np.testing.assert_array_equal(pictures.read_image(parts / "samples" / "iter_000004.png"),
                                  pictures.read_image(whole / "samples" / "iter_000004.png"))
    assert not (parts / "test").exists()


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_bad_input_is_one_line_and_status_2(question, framework, tmp_path, capsys):
    # (a trained run's refusals: test_dry_run_as_a_program_then_...)
    out = ["--out-dir", tmp_path / "never"]
    for flag, value in [("--n-critic", 0), ("--batch-size", 0),
                        *([("--clip", 0), ("--clip", "-0.01")] if question == "wgan" else
                          [("--gp-weight", 0), ("--gp-weight", "nan"), ("--width", 0)])]:
        expect_usage_error(capsys, question, framework, [flag, value, *out], flag)
    if question == "wgan_gp":
        expect_usage_error(capsys, question, framework, ["--critic-norm", "batch", *out], "--critic-norm")
    assert not (tmp_path / "never").exists()


def test_bad_flag_as_a_program_prints_one_line():
    result = run_program("wgan_gp", WGAN_FRAMEWORKS[0], ["--gp-weight", "-1"])
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--gp-weight" in result.stderr


# ---------------------------------------------------------------------------
# The gradient norm and the penalty, per framework, against finite differences
# ---------------------------------------------------------------------------

def tiny_case(seed=0, n=3, size=8, channels=1):
    rng = np.random.default_rng(seed)
    real = rng.uniform(-1, 1, (n, size, size, channels)).astype(np.float32)
    fake = rng.uniform(-1, 1, (n, size, size, channels)).astype(np.float32)
    eps = np.array([0.1, 0.5, 0.9][:n], np.float32)          # one per sample, all different
    return real, fake, eps


def finite_difference_norms(score, x_hat, h=1e-5):
    """||grad f(x_hat_i)||, float64 central differences, every input pixel of every sample."""
    norms = []
    for x in x_hat:
        flat = x.reshape(-1)
        eye = np.eye(flat.size) * h
        plus = score(np.concatenate([flat + eye]).reshape(-1, *x.shape))
        minus = score(np.concatenate([flat - eye]).reshape(-1, *x.shape))
        norms.append(np.sqrt((((plus - minus) / (2 * h)) ** 2).sum()))
    return np.array(norms)


def pytorch_critic(question, size=8, width=4):
    """The script's critic, tiny (8x8 pictures: the DCGAN critic has one
    stage; the ResNet critic is any size divisible by 4), in float64."""
    import torch
    module = load_script(question, "pytorch")
    if question == "wgan":
        critic = module.Critic((size, size, 1))
        critic.apply(module.init_weights(torch.Generator().manual_seed(1)))
    else:
        critic = module.Critic((size, size, 1), width, "layer")
        critic.apply(module.init_weights(torch.Generator().manual_seed(1)))
        for norm in (m for m in critic.modules() if isinstance(m, torch.nn.GroupNorm)):
            torch.nn.init.uniform_(norm.weight, 0.5, 1.5)   # gains and offsets away from 1 and 0
            torch.nn.init.uniform_(norm.bias, -0.5, 0.5)
    critic.double()

    def score(images):
        with torch.no_grad():
            return critic(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy().reshape(-1)

    def norms(real, fake, eps):
        as_nchw = [torch.from_numpy(a.astype(np.float64)).permute(0, 3, 1, 2) for a in (real, fake)]
        return module.gradient_norms(critic, *as_nchw, torch.from_numpy(eps.astype(np.float64))).detach().numpy()
    return module, critic, score, norms


def chainer_critic(question, size=8, width=4):
    """The Chainer script's critic, tiny as pytorch_critic's, with a float64
    copy: ``score`` and ``norms`` run the copy, ``critic`` stays float32
    (the train step's dtype)."""
    import copy
    module = load_script(question, "chainer")
    rng = np.random.RandomState(1)
    if question == "wgan":
        critic = module.Critic((size, size, 1), rng)
    else:
        critic = module.Critic((size, size, 1), width, "layer", rng)
        for norm in (link for link in critic.links() if isinstance(link, module.LayerNorm)):
            norm.gamma.array[...] = rng.uniform(0.5, 1.5, norm.gamma.shape)   # gains and offsets away from 1 and 0
            norm.beta.array[...] = rng.uniform(-0.5, 0.5, norm.beta.shape)
    critic64 = copy.deepcopy(critic)
    for parameter in critic64.params():
        parameter.array = parameter.array.astype(np.float64)

    def score(images):
        with module.chainer.no_backprop_mode():
            return critic64(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).array.reshape(-1)

    def norms(real, fake, eps):
        as_nchw = [np.ascontiguousarray(a.astype(np.float64).transpose(0, 3, 1, 2)) for a in (real, fake)]
        return module.gradient_norms(critic64, *as_nchw, eps.astype(np.float64)).array
    return module, critic, score, norms



def framework_helper(kind, framework):
    """This section's helper of a framework: ``pytorch_critic``,
    ``keras_penalty_case``, ... (one of each kind per framework, the
    TF-Slim and Keras ones below the tests)."""
    return globals()[f"{framework}_{kind}"]


@pytest.mark.parametrize("framework", WGAN_FRAMEWORKS)
@pytest.mark.parametrize("question", QUESTIONS)
def test_gradient_norms_are_per_sample_and_match_finite_differences(question, framework):
    module, critic, score, norms = framework_helper("critic", framework)(question)
    real, fake, eps = tiny_case()
    x_hat = (eps[:, None, None, None] * real + (1 - eps[:, None, None, None]) * fake).astype(np.float64)
    expected = finite_difference_norms(score, x_hat)
    got = norms(real, fake, eps)
    assert got.shape == (3,)                         # one norm per sample (a per-element norm has another shape)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # the mixes matter: the norms at one eps for the whole batch are other numbers
    once = norms(real, fake, np.full_like(eps, eps[0]))
    assert np.abs(once[1:] - expected[1:]).max() > 1e-3 * expected.max()


def pytorch_penalty_case(real, z, eps, gp_weight):
    """(score, fake, step) of a tiny PyTorch WGAN-GP: the critic's float64
    scores before the step, G(z) in training mode (NHWC), and ``step()``,
    one train step (n_critic 1) on real, z, eps, returning its metrics."""
    import torch
    module, critic, score, _ = pytorch_critic("wgan_gp", size=32, width=2)
    critic.float()
    generator = module.Generator(8, (32, 32, 1), 2)
    generator.apply(module.init_weights(torch.Generator().manual_seed(2)))
    with torch.no_grad():
        fake = generator.train()(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
    critic.double()

    def step():
        critic.float()
        g_opt = torch.optim.Adam(generator.parameters(), lr=1e-4, betas=(0.0, 0.9))
        c_opt = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.0, 0.9))
        train_step = module.make_train_step(generator, critic, g_opt, c_opt, gp_weight)
        return train_step([torch.from_numpy(real).permute(0, 3, 1, 2)], [torch.from_numpy(z)],
                          [torch.from_numpy(eps)], torch.from_numpy(z))
    return score, fake, step


def chainer_penalty_case(real, z, eps, gp_weight):
    """pytorch_penalty_case for the Chainer script."""
    module, critic, score, _ = chainer_critic("wgan_gp", size=32, width=2)
    chainer = module.chainer
    generator = module.Generator(8, (32, 32, 1), 2, np.random.RandomState(2))
    with chainer.using_config("train", True), chainer.no_backprop_mode():
        fake = generator(z).array.transpose(0, 2, 3, 1)

    def step():
        g_opt = chainer.optimizers.Adam(alpha=1e-4, beta1=0.0, beta2=0.9).setup(generator)
        c_opt = chainer.optimizers.Adam(alpha=1e-4, beta1=0.0, beta2=0.9).setup(critic)
        train_step = module.make_train_step(generator, critic, g_opt, c_opt, gp_weight)
        return train_step([module.to_nchw(real)], [z], [eps], z)
    return score, fake, step



@pytest.mark.parametrize("framework", WGAN_FRAMEWORKS)
def test_the_penalty_in_the_critic_step_is_lambda_mean_of_per_sample_terms(framework):
    # One critic step (n_critic 1) on a tiny critic: the step's loss is
    # mean f(fake) - mean f(real) + lambda mean_i (norm_i - 1)^2 with the
    # finite-difference norms at the step's own x_hat_i (eps_i per sample).
    real, _, eps = tiny_case(1, size=32)
    z = np.random.default_rng(3).standard_normal((3, 8)).astype(np.float32)
    gp_weight = 10.0
    score, fake, step = framework_helper("penalty_case", framework)(real, z, eps, gp_weight)
    x_hat = (eps[:, None, None, None] * real + (1 - eps[:, None, None, None]) * fake).astype(np.float64)
    fd_norms = finite_difference_norms(score, x_hat)
    f_real, f_fake = score(real.astype(np.float64)), score(fake.astype(np.float64))
    expected = f_fake.mean() - f_real.mean() + gp_weight * ((fd_norms - 1) ** 2).mean()
    metrics = step()
    assert metrics["gradient_penalty"] == pytest.approx(((fd_norms - 1) ** 2).mean(), rel=1e-4)
    assert metrics["grad_norm"] == pytest.approx(fd_norms.mean(), rel=1e-4)
    assert metrics["critic_loss"] == pytest.approx(expected, rel=1e-4)


# TF-Slim ------------------------------------------------------------------

def tf_slim_critic(question, size=8, width=4):
    """The TF-Slim script's critic, tiny as pytorch_critic's, in float64:
    its own graph and session, the layers built from a float64 placeholder
    (slim makes float64 variables), the weights drawn by the script's
    initializers and then rounded to float32 values (so a float32 copy is
    the same critic); layer-norm gains and offsets away from 1 and 0.
    ``critic.values``: the variables' values, by name."""
    from functools import partial
    from types import SimpleNamespace
    module = load_script(question, "tf_slim")
    tf = module.tf
    image_shape = (size, size, 1)
    net = (partial(module.Critic, image_shape=image_shape) if question == "wgan" else
           partial(module.Critic, width=width, norm="layer"))
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(1)
        critic = SimpleNamespace(net=net)
        images = tf.placeholder(tf.float64, (None, *image_shape))
        real, fake = (tf.placeholder(tf.float64, (None, *image_shape)) for _ in range(2))
        eps = tf.placeholder(tf.float64, (None,))
        scores = critic.net(images)
        norm_op = module.gradient_norms(critic, real, fake, eps)
        variables = tf.global_variables()
        sess = tf.Session(graph=graph)
        sess.run(tf.global_variables_initializer())
    rng = np.random.default_rng(1)
    values = {}
    for v, value in zip(variables, sess.run(variables)):
        if "/norm" in v.op.name:                    # layer-norm gains and offsets away from 1 and 0
            value = rng.uniform(0.5, 1.5, value.shape) if v.op.name.endswith("gamma") else \
                rng.uniform(-0.5, 0.5, value.shape)
        values[v.op.name] = value.astype(np.float32)
    sess.run([v.initializer for v in variables],
             {v.initializer.inputs[1]: values[v.op.name].astype(np.float64) for v in variables})
    critic.values = values
    assert all(v.dtype.base_dtype == tf.float64 for v in variables)

    def score(batch):
        return sess.run(scores, {images: batch}).reshape(-1)

    def norms(real_images, fake_images, eps_values):
        return sess.run(norm_op, {real: real_images.astype(np.float64), fake: fake_images.astype(np.float64),
                                  eps: eps_values.astype(np.float64)})
    return module, critic, score, norms


def tf_slim_penalty_case(real, z, eps, gp_weight):
    """pytorch_penalty_case for the TF-Slim script: its model (width 2, z 8)
    with tf_slim_critic's float32-exact weights, so that the float64 critic
    scores the same critic the float32 step trains."""
    module, critic64, score, _ = tf_slim_critic("wgan_gp", size=32, width=2)
    networks = module.build_model((32, 32, 1), 8, 2, "layer", seed=2, lr=1e-4, device="/cpu:0")
    generator, critic = networks[:2]
    critic.sess.run([v.initializer for v in critic.variables],
                    {v.initializer.inputs[1]: critic64.values[v.op.name] for v in critic.variables})
    with generator.sess.graph.as_default():
        train_mode_fakes = generator.net(generator.inputs, is_training=True)   # its BatchNorm updates are not run
    fake = generator.sess.run(train_mode_fakes, {generator.inputs: z})

    def step():
        return module.make_train_step(*networks, gp_weight)([real], [z], [eps], z)
    return score, fake, step


# Keras 3 ------------------------------------------------------------------

def keras_critic(question, size=8, width=4):
    """The Keras script's critic, tiny, as pytorch_critic (float32, its
    layer-norm gains and offsets away from 1 and 0); ``score`` and ``norms``
    run a float64 copy of it (built under the float64 dtype policy, the
    float32 weights copied in exactly), made now: the weights before any step."""
    import keras
    module = load_script(question, "keras")

    def build():
        rng = keras.random.SeedGenerator(1)
        if question == "wgan":
            return module.Critic((size, size, 1), rng)
        return module.Critic((size, size, 1), width, "layer", rng)
    critic = build()
    if question == "wgan_gp":
        rng = np.random.default_rng(1)
        for norm in (layer for layer in critic.layers if isinstance(layer, module.LayerNorm)):
            gain, offset = norm.get_weights()
            norm.set_weights([rng.uniform(0.5, 1.5, gain.shape).astype(np.float32),
                              rng.uniform(-0.5, 0.5, offset.shape).astype(np.float32)])
    policy, floatx = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        twin = build()
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    twin.set_weights([w.astype(np.float64) for w in critic.get_weights()])

    def score(images):
        return keras.ops.convert_to_numpy(twin(images.astype(np.float64), training=False)).reshape(-1)

    def norms(real, fake, eps):
        as_float64 = (a.astype(np.float64) for a in (real, fake, eps))
        return keras.ops.convert_to_numpy(module.gradient_norms(twin, *as_float64))
    return module, critic, score, norms


def keras_penalty_case(real, z, eps, gp_weight):
    """pytorch_penalty_case for the Keras script (float32 step, float64 scores)."""
    import keras
    module, critic, score, _ = keras_critic("wgan_gp", size=32, width=2)
    generator = module.Generator(8, (32, 32, 1), 2, keras.random.SeedGenerator(2))
    fake = keras.ops.convert_to_numpy(generator(z, training=True))

    def step():
        g_opt, c_opt = (keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9) for _ in range(2))
        train_step = module.make_train_step(generator, critic, g_opt, c_opt, gp_weight)
        return train_step([real], [z], [eps], z)
    return score, fake, step


def test_wgan_clips_every_critic_parameter():
    import torch
    module = load_script("wgan", "pytorch")
    networks = module.build_model((32, 32, 1), 8, seed=0, lr=0.1, device="cpu")   # a large step
    generator, critic = networks[:2]
    step = module.make_train_step(*networks, clip=0.01)
    rng = np.random.default_rng(0)
    real = [torch.from_numpy(rng.uniform(-1, 1, (4, 1, 32, 32)).astype(np.float32)) for _ in range(2)]
    z = [torch.from_numpy(rng.uniform(-1, 1, (4, 8)).astype(np.float32)) for _ in range(3)]
    step(real, z[:2], torch.full((4,), 0.5), z[2])
    values = [p.detach().numpy() for p in critic.parameters()]
    assert max(np.abs(v).max() for v in values) <= 0.01 + 1e-9
    share = wgan.clip_fraction(values, 0.01)
    assert 0.5 < share <= 1.0                       # lr 0.1 pushes most of them to the bounds
    assert max(np.abs(p.detach().numpy()).max() for p in generator.parameters()) > 0.01   # G is not clipped


# ---------------------------------------------------------------------------
# common/wgan.py
# ---------------------------------------------------------------------------

def test_samplers_are_seeded_streams_with_a_state():
    z = wgan.NormalZSampler(128, 5)
    first = z(64)
    assert first.dtype == np.float32 and first.shape == (64, 128)
    assert abs(first.mean()) < 0.05 and 0.9 < first.std() < 1.1 and first.min() < -2.5   # N(0, 1), not U(-1, 1)
    state = json.loads(json.dumps(z.state_dict()))
    second = z(4)
    again = wgan.NormalZSampler(128, 0)
    again.load_state_dict(state)
    np.testing.assert_array_equal(again(4), second)
    mix = wgan.MixSampler(5)
    eps = mix(1000)
    assert eps.shape == (1000,) and eps.min() >= 0 and eps.max() <= 1 and 0.45 < eps.mean() < 0.55
    assert len(np.unique(mix(64))) == 64                   # one per sample
    assert not np.array_equal(wgan.MixSampler(5)(8), wgan.NormalZSampler(1, 5)(8)[:, 0])   # its own stream
    lat = wgan.test_latents(16, 0, "normal")
    assert lat["samples"].shape == (gan.TEST_SAMPLE_COUNT, 16) and lat["scored"].shape == (wgan.SCORED_COUNT, 16)
    assert lat["morph"].shape == (gan.MORPH_FRAMES, gan.MORPH_PATHS, 16)
    assert lat["samples"].min() < -1                       # normal draws
    assert wgan.test_latents(16, 0, "uniform")["samples"].min() >= -1


def test_digits_are_padded_with_background(digits):
    import argparse
    from common import datasets
    args = argparse.Namespace(dataset="mnist", data_dir=str(digits))
    data = wgan.load_images(args, "train")
    raw = datasets.load_dataset("mnist", "train", data_dir=str(digits), value_range=(-1.0, 1.0)).images
    assert data.images.shape == (64, 32, 32, 1)
    np.testing.assert_array_equal(data.images[:, 2:30, 2:30], raw)
    assert (data.images[:, :2] == -1).all() and (data.images[:, :, 30:] == -1).all()


def test_newt_photos_are_resized_to_32x32(image_folder):
    # what the scripts train on with --dataset imori: the same 32x32x3 in [-1, 1] as CIFAR-10
    import argparse
    data = wgan.load_images(argparse.Namespace(dataset="imori", data_dir=str(image_folder)), "train")
    assert data.images.shape == (8, 32, 32, 3) and data.images.dtype == np.float32
    assert data.images.min() >= -1 and data.images.max() <= 1 and data.images.std() > 0.1


def test_clip_fraction():
    assert wgan.clip_fraction([np.array([0.01, -0.01, 0.005]), np.array([[0.0, np.float32(0.01)]])], 0.01) == 0.6
