"""The TF-Slim CGAN is the PyTorch CGAN (CGAN_SPEC.md section 10, DESIGN.md
section 7), at 28x28x1 / 10 classes (MNIST), 32x32x3 / 10 (CIFAR-10),
64x64x3 / 2 (the newts) and 8x8x1 / 10 (the one-stage model the answer
tests train):

- the same model_info and parameter counts (pinned: PARAMETERS of
  tests/test_answers_cgan.py);
- with the PyTorch weights (BatchNorm gamma, beta and running statistics
  made non-trivial) written into the TF checkpoint files and read by the
  script's load_checkpoint: the same G(z, y) and D(x, y) in inference mode
  (max-abs difference below 1e-4), with one-hot and with soft conditions
  (the interpolation rows); the label changes both outputs;
- where the label enters: the last n_classes input rows of G's Dense kernel
  and the last n_classes input channels of D's first kernel (zeroed, G and D
  no longer read it), as in PyTorch (z first, then y; the image, then the
  planes);
- from those identical weights, the same real batch, real labels, z and
  fake labels: the same five metrics of two training steps (2e-4 relative),
  a g_loss far from what the D of before the update would give, the same
  BatchNorm moving statistics after the first step, and the same weight
  updates after the second.

TF1's Adam adds eps to sqrt(v) before the bias correction, PyTorch after
(DESIGN.md section 7): for the weight comparison PyTorch's eps is set, step
by step, to TF's eps / sqrt(1 - beta2^t), which makes the two updates the
same formula.
"""
import copy

import numpy as np
import pytest

from common import cgan, gan
from tests.conftest import load_script
from tests.test_answers_cgan import PARAMETERS
from tests.test_parity_gan_tf_slim import torch_to_tf

torch = pytest.importorskip("torch")

TOLERANCE = 1e-4          # inference outputs, max-abs
METRICS_RTOL = 2e-4       # the five metrics of a training step
# relative difference of the weight updates after two steps (the DCGAN's
# measured noise at 32x32 and 64x64: Adam's first steps, about
# lr * sign(gradient), turn float32 noise in tiny gradients into full steps)
UPDATE_TOLERANCE = {(32, 32, 3): 0.1, (64, 64, 3): 0.1}
CASES = [*PARAMETERS, ((8, 8, 1), 10)]
IDS = ["28x28x1", "32x32x3", "64x64x3", "8x8x1"]
Z_DIM = 100
BATCH = 8
LS_EPSILON = 0.1


@pytest.fixture(scope="module")
def scripts():
    return load_script("cgan", "pytorch"), load_script("cgan", "tf_slim")


def realistic_batchnorm(generator, z, y, rng):
    """Non-trivial gamma and beta, and running statistics of one batch (a
    train-mode forward with momentum None, a plain average); the question's
    momentum is restored afterwards for the training steps."""
    layers = [m for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.num_features).astype(np.float32))
        m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.num_features).astype(np.float32))
    generator.train()
    with torch.no_grad():
        generator(torch.from_numpy(z), torch.from_numpy(y))
    for m in layers:
        m.momentum = 0.1
        assert np.abs(m.running_var.numpy() - 1).max() > 0.1      # really not the initial statistics
    return len(layers)


def tf_values(network):
    """{variable name: value} of a TF network (BatchNorm moving statistics included)."""
    return dict(zip([v.op.name for v in network.variables], network.sess.run(network.variables)))


def set_tf_values(network, values):
    """Set some of a TF network's variables (the graph is finalized: through their initializers)."""
    variables = [v for v in network.variables if v.op.name in values]
    network.sess.run([v.initializer for v in variables],
                     {v.initializer.inputs[1]: values[v.op.name] for v in variables})


def copy_weights(pt_networks, tfs, tf_networks, folder):
    """The PyTorch weights in TF's layout, written as the TF checkpoint's
    G and D files and read by the script's own load_checkpoint."""
    folder.mkdir()
    for network, tf_network, name in zip(pt_networks, tf_networks, (tfs.G_FILE, tfs.D_FILE)):
        names = [v.op.name for v in tf_network.variables]
        values = torch_to_tf(network, names)
        assert {k: v.shape for k, v in values.items()} == {v.op.name: tuple(v.shape) for v in tf_network.variables}
        with open(folder / name, "wb") as f:
            np.savez(f, **values)
    tfs.load_checkpoint(folder, tf_networks)


def stale_g_loss(generator, discriminator, z, y):
    """G's loss judged by the D of *before* the D update (on copies, so the
    models stay untouched): what a wrong step order gives."""
    generator, discriminator = copy.deepcopy(generator).train(), copy.deepcopy(discriminator).train()
    with torch.no_grad():
        y = torch.from_numpy(y)
        logits = discriminator(generator(torch.from_numpy(z), y), y)
    return gan.g_loss(logits.numpy())


def align_adam_eps(optimizers, tf_eps, beta2, t):
    """PyTorch's eps for step ``t`` (from 1) such that its update is TF1's
    (eps added before the bias correction): eps / sqrt(1 - beta2^t)."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["eps"] = tf_eps / np.sqrt(1.0 - beta2 ** t)


@pytest.mark.parametrize("image_shape,n_classes", CASES, ids=IDS)
def test_same_networks_and_train_steps(scripts, image_shape, n_classes, tmp_path):
    pt, tfs = scripts
    tf = tfs.tf
    pt_networks = pt.build_model(image_shape, Z_DIM, n_classes, 3, 2e-4, torch.device("cpu"))
    tf_networks = tfs.build_model(image_shape, Z_DIM, n_classes, 4, 2e-4, "/cpu:0")
    (pt_g, pt_d, pt_g_opt, pt_d_opt), (tf_g, tf_d, tf_g_opt, tf_d_opt) = pt_networks, tf_networks
    assert tfs.model_info(image_shape, Z_DIM, n_classes) == pt.model_info(image_shape, Z_DIM, n_classes)
    assert (tf_g_opt._lr, tf_g_opt._beta1, tf_g_opt._beta2, tf_g_opt._epsilon) == (
        tf_d_opt._lr, tf_d_opt._beta1, tf_d_opt._beta2, tf_d_opt._epsilon) == (2e-4, 0.5, 0.999, 1e-8)

    # the same parameter counts (TF: the trainable variables; BatchNorm moving statistics are not parameters)
    trainable = tf_g.sess.graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES)
    tf_counts = {name: sum(int(np.prod(v.shape)) for v in trainable if v.op.name.startswith(name + "/"))
                 for name in ("generator", "discriminator")}
    pt_counts = {"generator": sum(p.numel() for p in pt_g.parameters()),
                 "discriminator": sum(p.numel() for p in pt_d.parameters())}
    assert tf_counts == pt_counts == PARAMETERS.get((image_shape, n_classes), pt_counts)
    assert sum(tf_counts.values()) == sum(int(np.prod(v.shape)) for v in trainable)

    rng = np.random.default_rng(5)
    bn_layers = realistic_batchnorm(pt_g, gan.uniform_z(64, Z_DIM, 0, 11),
                                    cgan.one_hot(rng.integers(0, n_classes, 64), n_classes), rng)
    assert bn_layers == gan.dcgan_stages(image_shape)[0]
    copy_weights((pt_g, pt_d), tfs, (tf_g, tf_d), tmp_path / "weights")

    # inference mode: the same images and logits, with one-hot and with soft conditions
    z = gan.uniform_z(8, Z_DIM, 0, 12)
    y = cgan.one_hot(np.arange(8) % n_classes, n_classes)
    other_y = cgan.one_hot((np.arange(8) + 1) % n_classes, n_classes)
    soft_z, soft_y = cgan.test_conditions(n_classes, Z_DIM, 0)["interpolation"]
    soft = np.abs(soft_y - np.round(soft_y)).max(axis=1) > 0.05          # t strictly between two classes
    soft_z, soft_y = soft_z[soft][:8], soft_y[soft][:8]
    images = rng.uniform(-1, 1, (8, *image_shape)).astype(np.float32)
    outputs = {}
    for name, (zs, ys) in {"y": (z, y), "other_y": (z, other_y), "soft_y": (soft_z, soft_y)}.items():
        expected, got = pt.generate(pt_g, zs, ys, "cpu"), tfs.generate(tf_g, zs, ys, "/cpu:0")
        assert got.shape == expected.shape == (8, *image_shape)
        assert np.abs(got - expected).max() < TOLERANCE, (name, np.abs(got - expected).max())
        assert got.std() > 0.02, name                                        # not trivially equal
        for batch in (images, expected):
            want, have = pt.discriminate(pt_d, batch, ys, "cpu"), tfs.discriminate(tf_d, batch, ys, "/cpu:0")
            assert have.shape == want.shape == (8, 1)
            assert np.abs(have - want).max() < TOLERANCE, (name, np.abs(have - want).max())
            assert np.ptp(want) > 10 * TOLERANCE, name
        outputs[name] = got, tfs.discriminate(tf_d, images, ys, "/cpu:0")
    # the label matters to both networks
    assert np.abs(outputs["y"][0] - outputs["other_y"][0]).max() > 1e-3
    assert np.abs(outputs["y"][1] - outputs["other_y"][1]).max() > 1e-3

    # two training steps from the same weights, real batch, real labels, z and fake labels
    pt_step, tf_step = pt.make_train_step(*pt_networks), tfs.make_train_step(*tf_networks)
    start = {"generator": tf_values(tf_g), "discriminator": tf_values(tf_d)}
    for step in range(2):
        align_adam_eps((pt_g_opt, pt_d_opt), tfs.ADAM_EPS, tfs.ADAM_BETAS[1], step + 1)
        real_images = rng.uniform(-1, 1, (BATCH, *image_shape)).astype(np.float32)
        real_labels = cgan.one_hot(rng.integers(0, n_classes, BATCH), n_classes)
        z = gan.uniform_z(BATCH, Z_DIM, seed=step, stream=gan.TRAIN)
        fake_labels = cgan.one_hot(cgan.LabelSampler(n_classes, seed=step)(BATCH), n_classes)
        stale = stale_g_loss(pt_g, pt_d, z, fake_labels)
        expected = pt_step(pt.to_nchw(real_images), torch.from_numpy(real_labels), torch.from_numpy(z),
                           torch.from_numpy(fake_labels), LS_EPSILON)
        got = tf_step(real_images, real_labels, z, fake_labels, LS_EPSILON)
        assert list(got) == list(expected) == gan.FIELDS
        for key in gan.FIELDS:
            assert got[key] == pytest.approx(expected[key], rel=METRICS_RTOL, abs=1e-6), (step, key, got, expected)
        # g_loss is measured with the updated D: the D of before is told apart
        assert abs(stale - expected["g_loss"]) > 10 * METRICS_RTOL * expected["g_loss"], (step, stale, expected)
        if step == 0:
            # G's BatchNorm moving statistics moved once: decay 0.9, the unbiased batch variance
            moving = {k: v for k, v in tf_values(tf_g).items() if "/moving_" in k}
            assert len(moving) == 2 * bn_layers
            for key, value in torch_to_tf(pt_g, [v.op.name for v in tf_g.variables]).items():
                if key in moving:
                    np.testing.assert_allclose(moving[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
                    assert np.abs(value - start["generator"][key]).max() > 1e-4, key   # really moved

    # after two steps: the same updates of every weight (TF layout, trainable variables only)
    for name, pt_network, tf_network in (("generator", pt_g, tf_g), ("discriminator", pt_d, tf_d)):
        names = [v.op.name for v in trainable if v.op.name.startswith(name + "/")]
        tf_after, pt_after = tf_values(tf_network), torch_to_tf(pt_network, list(start[name]))
        tf_update = np.concatenate([(tf_after[k] - start[name][k]).ravel() for k in names])
        pt_update = np.concatenate([(pt_after[k] - start[name][k]).ravel() for k in names])
        difference = np.linalg.norm(tf_update - pt_update) / np.linalg.norm(pt_update)
        assert difference < UPDATE_TOLERANCE.get(image_shape, 1e-2), (name, difference)

    # where the label enters: G's Dense kernel rows [z_dim:], D's first kernel input channels [C:]
    channels = image_shape[2]
    g_dense, d_conv = tf_values(tf_g)["generator/dense/weights"], tf_values(tf_d)["discriminator/conv1/weights"]
    assert g_dense.shape[0] == Z_DIM + n_classes and d_conv.shape[2] == channels + n_classes
    g_dense[Z_DIM:], d_conv[:, :, channels:] = 0, 0
    set_tf_values(tf_g, {"generator/dense/weights": g_dense})
    set_tf_values(tf_d, {"discriminator/conv1/weights": d_conv})
    np.testing.assert_array_equal(tfs.generate(tf_g, z[:4], y[:4], "/cpu:0"),
                                  tfs.generate(tf_g, z[:4], other_y[:4], "/cpu:0"))
    np.testing.assert_array_equal(tfs.discriminate(tf_d, images, y, "/cpu:0"),
                                  tfs.discriminate(tf_d, images, other_y, "/cpu:0"))
