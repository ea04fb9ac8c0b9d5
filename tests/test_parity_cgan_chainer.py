"""The Chainer CGAN is the PyTorch one (CGAN_SPEC.md section 10): the same
parameter counts (test_answers_cgan.PARAMETERS), the same outputs with the
PyTorch weights copied into the Chainer links -- G(z, y) and D(x, y) in
inference mode, with one-hot and soft (interpolated) conditions, max-abs
difference below 1e-4 -- and the same training step: from identical
weights, the same real batch with its labels, the same z and the same
labels asked of G, two iterations give the same five metrics and the same
weight updates.  That pins where the label enters (z then y into G's Dense,
the image channels then the label planes into D's first convolution; both
frameworks store those weights in the same layouts, so the copy is shape for
shape), the step order (g_loss from the *updated* D) and G's BatchNorm
running averages.

The 8x8 case is the one-stage network of the learning and resume checks
(G: Dense + BN + ReLU, then the last transposed convolution; D: one
convolution): the DCGAN ports never ran it.
"""
import copy
import types

import numpy as np
import pytest

from common import cgan, gan
from tests.conftest import load_script
from tests.test_answers_cgan import PARAMETERS
from tests.test_parity_gan_chainer import align_adam_eps, chainer_layers, copy_network, flat_parameters, torch_layers

torch = pytest.importorskip("torch")

TOLERANCE = 1e-4
METRICS_RTOL = 2e-4
Z_DIM = 100
# 8x8x1, 10 classes: G Dense (100 + 10) -> 4*4*256 + BN, TConv 256 -> 1; D Conv (1 + 10) -> 32, Dense 4*4*32 -> 1
ONE_STAGE = {((8, 8, 1), 10): {"generator": 111 * 4096 + 2 * 4096 + 256 * 25 + 1,
                               "discriminator": 11 * 32 * 25 + 32 + 4 * 4 * 32 + 1}}
CASES = [*PARAMETERS, *ONE_STAGE]
IDS = ["28x28x1", "32x32x3", "64x64x3", "8x8x1"]
# relative difference of the weight updates after two steps, Chainer in its
# float32 against PyTorch in float64; 1e-2 otherwise.  Adam's first steps,
# about lr * sign(gradient), turn float32 noise in the small gradients into
# full steps, and PyTorch's float32 is the noisier: on an AMD EPYC (AVX2)
# PyTorch float32 against its own float64 is 3.8% of G's update at 32x32,
# Chainer float32 against PyTorch float64 1.2e-5 (28x28), 6.7e-6 (32x32),
# 1.7e-5 (8x8), 7.6e-3 (64x64 G).  (Both in float64: 1.6e-14.)
UPDATE_TOLERANCE = {(64, 64, 3): 0.1}


@pytest.fixture(scope="module")
def scripts():
    return load_script("cgan", "pytorch"), load_script("cgan", "chainer")


def build_both(scripts, image_shape, n_classes, seed=3):
    pt, ch = scripts
    return (pt.build_model(image_shape, Z_DIM, n_classes, seed, 2e-4, torch.device("cpu")),
            ch.build_model(image_shape, Z_DIM, n_classes, seed, 2e-4, ch.pick_device("cpu")))


def copy_networks(pt_networks, ch_networks):
    """The PyTorch weights and BatchNorm statistics into the Chainer networks."""
    for pt_network, ch_network in zip(pt_networks[:2], ch_networks[:2]):
        copy_network(pt_network, ch_network)


def realistic_batchnorm(generator, z, y, rng):
    """G's BatchNorm with the running statistics of one batch (momentum None:
    a plain average) and non-trivial gamma and beta (the pattern of
    test_parity_dcgan_tf.realistic_batchnorm, with the condition)."""
    for m in generator.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
            m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.num_features).astype(np.float32))
            m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.num_features).astype(np.float32))
    generator.train()
    with torch.no_grad():
        generator(torch.from_numpy(z), torch.from_numpy(y))


def conditions(n_classes):
    """Four one-hot rows (classes 0, 1, 0, 1) and four soft ones: the
    interpolation rows between class 0 and class 1 at t = 2/9 .. 5/9."""
    soft = cgan.test_conditions(n_classes, Z_DIM, seed=0)["interpolation"][1][2:6]
    assert ((soft > 0) & (soft < 1)).sum() == 8                  # two mixed classes in each row
    return np.concatenate([cgan.one_hot([0, 1, 0, 1], n_classes), soft])


@pytest.mark.parametrize("image_shape,n_classes", CASES, ids=IDS)
def test_same_networks_and_outputs(scripts, image_shape, n_classes):
    pt, ch = scripts
    pt_networks, ch_networks = build_both(scripts, image_shape, n_classes)
    device = ch.pick_device("cpu")
    counts = {"generator": sum(p.numel() for p in pt_networks[0].parameters()),
              "discriminator": sum(p.numel() for p in pt_networks[1].parameters())}
    assert {"generator": ch_networks[0].count_params(), "discriminator": ch_networks[1].count_params()} == counts
    assert counts == {**PARAMETERS, **ONE_STAGE}[image_shape, n_classes]
    assert ch.model_info(image_shape, Z_DIM, n_classes) == pt.model_info(image_shape, Z_DIM, n_classes)
    # the explicit settings: BN eps and decay, gamma 1, beta 0; N(0, 0.02) weights, zero biases
    for link in chainer_layers(ch_networks[0]) + chainer_layers(ch_networks[1]):
        if type(link).__name__ == "BatchNormalization":
            assert (link.eps, link.decay) == (pt.BN_EPS, pt.BN_DECAY) == (1e-5, 0.9)
            assert (link.gamma.array == 1).all() and not link.beta.array.any()
        else:
            assert not link.b.array.any() and abs(link.W.array.std() / ch.INIT_STD - 1) < 0.1, link
    assert ch.LEAKY_SLOPE == pt.LEAKY_SLOPE == 0.2

    rng = np.random.default_rng(2)
    realistic_batchnorm(pt_networks[0], gan.uniform_z(64, Z_DIM, seed=1, stream=gan.TRAIN),
                        cgan.one_hot(rng.integers(0, n_classes, 64), n_classes), rng)
    copy_networks(pt_networks, ch_networks)
    z = np.tile(gan.uniform_z(4, Z_DIM, seed=4, stream=gan.TEST_SAMPLES), (2, 1))
    y = conditions(n_classes)
    expected = pt.generate(pt_networks[0], z, y, "cpu")
    got = ch.generate(ch_networks[0], z, y, device)                            # inference mode, NHWC
    assert got.shape == expected.shape == (8, *image_shape) and got.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert np.abs(got[4:] - expected[4:]).max() < TOLERANCE                    # the soft conditions too
    assert got.std() > 100 * TOLERANCE                                         # not trivially equal
    # the label matters: the same z, class 0 vs class 1 vs a mix of both
    assert np.abs(got[0] - got[1]).max() > 100 * TOLERANCE
    assert min(np.abs(got[4] - got[0]).max(), np.abs(got[4] - got[1]).max()) > 10 * TOLERANCE

    images = rng.uniform(-1, 1, (8, *image_shape)).astype(np.float32)
    expected = pt.discriminate(pt_networks[1], images, y, "cpu")
    got = ch.discriminate(ch_networks[1], images, y, device)
    assert got.shape == expected.shape == (8, 1) and got.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert np.ptp(expected) > 10 * TOLERANCE
    swapped = ch.discriminate(ch_networks[1], images, y[[1, 0, 3, 2, 4, 5, 6, 7]], device)
    assert np.abs(swapped - got)[:4].max() > 10 * TOLERANCE                   # D reads the label

    # where the label enters: G's Dense columns after z, D's input channels after the image
    ch_networks[0].dense[0].W.array[:, Z_DIM:] = 0
    ch_networks[1].convs[0].W.array[:, image_shape[2]:] = 0
    g = ch.generate(ch_networks[0], z, y, device)
    # blind to y: same z, same image (to float32 rounding: BLAS may round a row by its place in the batch)
    np.testing.assert_allclose(g[:4], g[4:], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ch.discriminate(ch_networks[1], images, y[[1, 0, 3, 2, 4, 5, 6, 7]], device),
                               ch.discriminate(ch_networks[1], images, y, device), rtol=0, atol=1e-6)


def test_same_optimizers(scripts):
    (_, _, *pt_optimizers), (generator, discriminator, *ch_optimizers) = build_both(scripts, (28, 28, 1), 10)
    for torch_optimizer, chainer_optimizer in zip(pt_optimizers, ch_optimizers):
        group = torch_optimizer.param_groups[0]
        assert type(chainer_optimizer).__name__ == "Adam" and isinstance(torch_optimizer, torch.optim.Adam)
        assert (chainer_optimizer.alpha, chainer_optimizer.beta1, chainer_optimizer.beta2, chainer_optimizer.eps) == (
            group["lr"], *group["betas"], group["eps"]) == (2e-4, 0.5, 0.999, 1e-8)
        assert chainer_optimizer.weight_decay_rate == group["weight_decay"] == 0 and not chainer_optimizer.amsgrad
    assert ch_optimizers[0].target is generator and ch_optimizers[1].target is discriminator


def torch_g_loss_with_old_discriminator(pt_networks, z, fake_y):
    """g_loss if G were judged by D *before* its update (on copies, so the
    networks are untouched): what a wrong step order would report."""
    generator, discriminator = copy.deepcopy(pt_networks[0]).train(), copy.deepcopy(pt_networks[1])
    with torch.no_grad():
        fake_y = float64_tensor(fake_y)
        logits = discriminator(generator(float64_tensor(z), fake_y), fake_y)
    return gan.g_loss(logits.numpy())


def float64_tensor(array):
    return torch.from_numpy(np.asarray(array, np.float64))


@pytest.mark.parametrize("image_shape,n_classes", CASES, ids=IDS)
def test_same_training_steps(scripts, image_shape, n_classes):
    pt, ch = scripts
    pt_networks, ch_networks = build_both(scripts, image_shape, n_classes)
    copy_networks(pt_networks, ch_networks)    # identical weights, BatchNorm statistics at their initial values
    for network in pt_networks[:2]:            # the reference in float64 (see UPDATE_TOLERANCE)
        network.double()
    pt_step, ch_step = pt.make_train_step(*pt_networks), ch.make_train_step(*ch_networks)
    names = ("generator", "discriminator")
    start = {name: flat_parameters(network) for name, network in zip(names, pt_networks)}
    rng = np.random.default_rng(5)
    labels = cgan.LabelSampler(n_classes, seed=7)
    batch = 8
    for step in range(2):
        align_adam_eps(types.SimpleNamespace(g_optimizer=pt_networks[2], d_optimizer=pt_networks[3]), step + 1)
        real_images = rng.uniform(-1, 1, (batch, *image_shape)).astype(np.float32)
        real_y = cgan.one_hot(rng.integers(0, n_classes, batch), n_classes)
        z = gan.uniform_z(batch, Z_DIM, seed=step, stream=gan.TRAIN)
        fake_y = cgan.one_hot(labels(batch), n_classes)
        old_d_g_loss = torch_g_loss_with_old_discriminator(pt_networks, z, fake_y)
        expected = pt_step(float64_tensor(real_images).permute(0, 3, 1, 2), float64_tensor(real_y),
                           float64_tensor(z), float64_tensor(fake_y), 0.1)
        got = ch_step(ch.to_nchw(real_images), real_y, z, fake_y, 0.1)
        assert list(got) == gan.FIELDS
        for key in gan.FIELDS:
            assert got[key] == pytest.approx(expected[key], rel=METRICS_RTOL), (step, key, got, expected)
        # g_loss is measured with the updated D: the step order shows in it
        assert abs(old_d_g_loss - expected["g_loss"]) > 10 * METRICS_RTOL * expected["g_loss"], step
        if step == 0:
            # G's BatchNorm running averages moved once, with decay 0.9 and
            # the unbiased batch variance (they depend on the first weights only)
            for module, link in zip(torch_layers(pt_networks[0]), chainer_layers(ch_networks[0]), strict=True):
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    assert module.num_batches_tracked.item() == 1
                    np.testing.assert_allclose(link.avg_mean, module.running_mean.numpy(), rtol=1e-4, atol=1e-7)
                    np.testing.assert_allclose(link.avg_var, module.running_var.numpy(), rtol=1e-4, atol=1e-7)
                    assert np.abs(module.running_var.numpy() - 1).max() > 1e-3    # not still at 1
    # after two steps: the same update of every weight (a wrong lr, an extra
    # or a missing update would be 50% or more off, PyTorch's eps placement 1-12%)
    for name, pt_network, ch_network in zip(names, pt_networks, ch_networks):
        torch_update = flat_parameters(pt_network) - start[name]
        chainer_update = flat_parameters(ch_network) - start[name]
        difference = np.linalg.norm(chainer_update - torch_update) / np.linalg.norm(torch_update)
        assert difference < UPDATE_TOLERANCE.get(image_shape, 1e-2), (name, difference)
