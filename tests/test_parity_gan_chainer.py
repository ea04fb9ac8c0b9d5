"""The Chainer GAN and DCGAN are the PyTorch ones (DESIGN.md section 7):
the same layers with the same parameter counts, the same TF-'SAME'
convolutions, the same outputs with the PyTorch weights copied into the
Chainer links (inference mode, max-abs difference below 1e-4), and the
same training step: from identical weights, the same real batch and the
same z, one iteration gives the same five metrics (d_loss, g_loss,
d_accuracy, d_real, d_fake) -- which pins the order of the step (G(z)
once, D on separate real and fake batches with no gradient to G, then G
judged by the *updated* D), the losses with label smoothing, and the
BatchNorm running averages (updated once per iteration).

Both frameworks are NCHW and store weights in the same layouts, so the copy
is shape for shape (G reads its Dense units as an NHWC map and D flattens
NHWC in both scripts, so no permutation either):

    PyTorch                               Chainer
      Linear.weight           (O, I)          Linear.W             (O, I)
      Conv2d.weight           (O, I, kh, kw)  Convolution2D.W      (O, I, kh, kw)
      ConvTranspose2d.weight  (I, O, kh, kw)  Deconvolution2D.W    (I, O, kh, kw)
      .bias                   (O,)            .b                   (O,)
      BatchNorm weight, bias, running_mean, running_var
                                              gamma, beta, avg_mean, avg_var
"""
import copy

import numpy as np
import pytest

from common import gan
from tests.conftest import load_script
from tests.test_parity_dcgan_tf import PARAMETERS, realistic_batchnorm

torch = pytest.importorskip("torch")

TOLERANCE = 1e-4
METRICS_RTOL = 2e-4
# relative difference of the weight updates after two steps, 1e-2 otherwise (see test_same_training_steps)
UPDATE_TOLERANCE = {("dcgan", (64, 64, 3)): 0.1, ("dcgan", (32, 32, 3)): 0.1}
CASES = [("gan", (64, 64, 3)), ("gan", (28, 28, 1)),
         ("dcgan", (64, 64, 3)), ("dcgan", (28, 28, 1)), ("dcgan", (32, 32, 3))]
IDS = [f"{q}-{'x'.join(map(str, s))}" for q, s in CASES]
CLASSES = {"gan": "GAN", "dcgan": "DCGAN"}
LINK_KINDS = {"Linear": "Linear", "Conv2dSame": "Convolution2DSame", "ConvTranspose2dSame": "Deconvolution2DSame",
              "BatchNorm1d": "BatchNormalization", "BatchNorm2d": "BatchNormalization"}
PARAM_NAMES = {"weight": "W", "bias": "b"}
BN_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "avg_mean", "running_var": "avg_var"}


def torch_layers(network):
    """The modules that hold parameters, in network order."""
    return [m for m in network.modules() if list(m.parameters(recurse=False))]


def chainer_layers(link):
    """The links that hold parameters, in network order: a Sequential in
    its own order, a Chain in the order its links were assigned (a Chain
    keeps its children in a set, its __dict__ keeps the order)."""
    import chainer
    children = list(link.children())
    if not children:
        return [link]
    if isinstance(link, chainer.Sequential):
        ordered = [layer for layer in link if isinstance(layer, chainer.Link)]
    else:
        ordered = [value for value in vars(link).values() if isinstance(value, chainer.Link)]
    assert sorted(map(id, ordered)) == sorted(map(id, children)), type(link).__name__
    return [leaf for child in ordered for leaf in chainer_layers(child)]


def copy_network(torch_network, chainer_network):
    """Copy parameters and BatchNorm statistics, checking kinds and shapes."""
    pairs = list(zip(torch_layers(torch_network), chainer_layers(chainer_network), strict=True))
    for module, link in pairs:
        assert type(link).__name__ == LINK_KINDS[type(module).__name__], (module, link)
        names = BN_NAMES if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) else PARAM_NAMES
        state = module.state_dict()
        for name, chainer_name in names.items():
            target = getattr(link, chainer_name)
            array = getattr(target, "array", target)           # a Parameter, or a persistent array
            value = state[name].detach().numpy()
            assert array.shape == value.shape, (type(module).__name__, name, array.shape, value.shape)
            array[...] = value
    return len(pairs)


def copy_model(pt_model, ch_model):
    copy_network(pt_model.generator, ch_model.generator)
    copy_network(pt_model.discriminator, ch_model.discriminator)


def make_models(question, image_shape, seed=3):
    pt = getattr(load_script(question, "pytorch"), CLASSES[question])("parity", 100, image_shape, seed=seed,
                                                                       device="cpu")
    ch = getattr(load_script(question, "chainer"), CLASSES[question])("parity", 100, image_shape, seed=seed,
                                                                       device="cpu")
    return pt, ch


def count(network):
    return sum(p.numel() for p in network.parameters())


# ---------------------------------------------------------------------------
# The two padded convolutions of the DCGAN
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scripts():
    return load_script("dcgan", "pytorch"), load_script("dcgan", "chainer")


def _same_weights(torch_layer, chainer_layer):
    chainer_layer.W.array[...] = torch_layer.weight.detach().numpy()
    chainer_layer.b.array[...] = torch_layer.bias.detach().numpy()


@pytest.mark.parametrize("size", [(64, 64), (28, 28), (14, 14), (8, 6)])
def test_convolution_same_is_pytorchs(scripts, size):
    pt, ch = scripts
    torch.manual_seed(0)
    conv = pt.Conv2dSame(3, 4)
    link = ch.Convolution2DSame(3, 4)
    _same_weights(conv, link)
    x = np.random.default_rng(0).standard_normal((2, 3, *size)).astype(np.float32)
    with torch.no_grad():
        expected = conv(torch.from_numpy(x)).numpy()
    got = link(x).array
    assert got.shape == expected.shape == (2, 4, size[0] // 2, size[1] // 2)
    assert np.abs(got - expected).max() < TOLERANCE
    # the trap: Chainer's symmetric pad=2 has the same shape, other numbers
    plain = ch.L.Convolution2D(3, 4, 5, 2, pad=2)
    _same_weights(conv, plain)
    assert plain(x).shape == expected.shape and np.abs(plain(x).array - expected).max() > 0.1


@pytest.mark.parametrize("size", [(4, 4), (7, 7), (14, 14), (3, 5)])
def test_deconvolution_same_is_pytorchs(scripts, size):
    # PyTorch: padding=1, last row and column dropped (= TF conv2d_transpose
    # 'SAME', pinned in test_parity_dcgan_tf.py); Chainer: pad=1, outsize 2H x 2W
    pt, ch = scripts
    torch.manual_seed(1)
    deconv = pt.ConvTranspose2dSame(3, 4)
    link = ch.Deconvolution2DSame(3, 4)
    _same_weights(deconv, link)
    x = np.random.default_rng(1).standard_normal((2, 3, *size)).astype(np.float32)
    with torch.no_grad():
        expected = deconv(torch.from_numpy(x)).numpy()
    got = link(x).array
    assert got.shape == expected.shape == (2, 4, 2 * size[0], 2 * size[1])
    assert np.abs(got - expected).max() < TOLERANCE
    # the trap: pad=2 with the same outsize has the right shape, shifted by a pixel
    shifted = ch.L.Deconvolution2D(3, 4, 5, 2, pad=2, outsize=(2 * size[0], 2 * size[1]))
    _same_weights(deconv, shifted)
    assert shifted(x).shape == expected.shape and np.abs(shifted(x).array - expected).max() > 0.1


# ---------------------------------------------------------------------------
# The networks
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("question,image_shape", CASES, ids=IDS)
def test_same_networks_and_outputs(question, image_shape):
    pt, ch = make_models(question, image_shape)
    counts = {name: count(getattr(pt, name)) for name in ("generator", "discriminator")}
    assert {name: getattr(ch, name).count_params() for name in counts} == counts
    if question == "dcgan":
        assert counts == PARAMETERS[image_shape]
    else:   # the MLPs: 100-128-256-512-HWC and HWC-512-256-1, weights and biases
        hwc = int(np.prod(image_shape))
        assert counts == {"generator": 101 * 128 + 129 * 256 + 257 * 512 + 513 * hwc,
                          "discriminator": (hwc + 1) * 512 + 513 * 256 + 257}
    assert ch.model_info(image_shape, 100) == pt.model_info(image_shape, 100)
    chainer_script, torch_script = load_script(question, "chainer"), load_script(question, "pytorch")
    for link in chainer_layers(ch.generator):
        if type(link).__name__ == "BatchNormalization":
            assert link.eps == torch_script.BN_EPS and link.decay == torch_script.BN_DECAY == chainer_script.BN_DECAY
            assert (link.gamma.array == 1).all() and not link.beta.array.any()
    assert chainer_script.LEAKY_SLOPE == torch_script.LEAKY_SLOPE == 0.2

    rng = np.random.default_rng(2)
    if question == "dcgan":   # BatchNorm with the statistics of a real batch and non-trivial gamma, beta
        realistic_batchnorm(pt, pt.generate_z(64), rng)
    copy_model(pt, ch)
    z = gan.uniform_z(5, 100, seed=4, stream=gan.TEST_SAMPLES)
    expected, got = pt.generator_output(z), ch.generator_output(z)            # inference mode, NHWC
    assert got.shape == expected.shape == (5, *image_shape) and got.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert got.std() > 100 * TOLERANCE                                        # not trivially equal
    images = rng.uniform(-1, 1, (5, *image_shape)).astype(np.float32)
    expected, got = pt.discriminator_logits(images), ch.discriminator_logits(images)
    assert got.shape == expected.shape == (5, 1)
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert np.ptp(expected) > 10 * TOLERANCE
    np.testing.assert_allclose(ch.discriminate((images + 1) / 2), pt.discriminate((images + 1) / 2), atol=TOLERANCE)


def torch_g_loss_with_old_discriminator(pt, real_images, z):
    """g_loss if G were judged by D *before* its update (on copies, so the
    model is untouched): what a wrong step order would report."""
    generator, discriminator = copy.deepcopy(pt.generator).train(), copy.deepcopy(pt.discriminator)
    with torch.no_grad():
        logits = discriminator(generator(torch.from_numpy(z)))
    return gan.g_loss(logits.numpy())


def align_adam_eps(pt, t):
    """Chainer's Adam adds eps to sqrt(v) before the bias correction,
    PyTorch's to sqrt(v_hat) after it (DESIGN.md section 7): Chainer's step
    t is PyTorch's with eps / sqrt(1 - beta2^t).  Set that for PyTorch's
    step ``t`` (from 1), so that the weights can be compared after the
    steps (without it the updates differ by 1-12%, measured: early in a
    GAN many gradients are below 1e-7, where eps matters)."""
    chainer_script = load_script("gan", "chainer")
    eps = chainer_script.ADAM_EPS / np.sqrt(1.0 - chainer_script.ADAM_BETAS[1] ** t)
    for optimizer in (pt.g_optimizer, pt.d_optimizer):
        for group in optimizer.param_groups:
            group["eps"] = eps


def flat_parameters(network):
    """All parameters of a PyTorch network or a Chainer link, in network
    order (weights and biases, BatchNorm gamma and beta), as one vector."""
    if isinstance(network, torch.nn.Module):
        return np.concatenate([p.detach().numpy().ravel() for m in torch_layers(network)
                               for p in m.parameters(recurse=False)])
    names = {"BatchNormalization": ("gamma", "beta")}
    return np.concatenate([getattr(link, name).array.ravel() for link in chainer_layers(network)
                           for name in names.get(type(link).__name__, ("W", "b"))])


def test_same_optimizers():
    pt, ch = make_models("gan", (28, 28, 1))
    for torch_optimizer, chainer_optimizer in ((pt.g_optimizer, ch.g_optimizer), (pt.d_optimizer, ch.d_optimizer)):
        group = torch_optimizer.param_groups[0]
        assert type(chainer_optimizer).__name__ == "Adam" and isinstance(torch_optimizer, torch.optim.Adam)
        assert (chainer_optimizer.alpha, chainer_optimizer.beta1, chainer_optimizer.beta2, chainer_optimizer.eps) == (
            group["lr"], *group["betas"], group["eps"]) == (2e-4, 0.5, 0.999, 1e-8)
        assert chainer_optimizer.weight_decay_rate == group["weight_decay"] == 0
        assert not chainer_optimizer.amsgrad and not group["amsgrad"]
    assert ch.g_optimizer.target is ch.generator and ch.d_optimizer.target is ch.discriminator


@pytest.mark.parametrize("question,image_shape", CASES, ids=IDS)
def test_same_training_steps(question, image_shape):
    pt, ch = make_models(question, image_shape)
    copy_model(pt, ch)                      # identical weights, BatchNorm statistics at their initial values
    start = {name: flat_parameters(getattr(pt, name)) for name in ("generator", "discriminator")}
    rng = np.random.default_rng(5)
    batch = 8
    for step in range(2):
        align_adam_eps(pt, step + 1)
        real_images = rng.uniform(-1, 1, (batch, *image_shape)).astype(np.float32)
        z = gan.uniform_z(batch, 100, seed=step, stream=gan.TRAIN)
        old_d_g_loss = torch_g_loss_with_old_discriminator(pt, real_images, z)
        expected = pt.train_step(real_images, z, ls_epsilon=0.1)
        got = ch.train_step(real_images, z, ls_epsilon=0.1)
        assert list(got) == gan.FIELDS
        for key in gan.FIELDS:
            assert got[key] == pytest.approx(expected[key], rel=METRICS_RTOL), (step, key, got, expected)
        # g_loss is measured with the updated D: the step order shows in it
        assert abs(old_d_g_loss - expected["g_loss"]) > 10 * METRICS_RTOL * expected["g_loss"], step
        if step == 0 and question == "dcgan":
            # G's BatchNorm running averages moved once, with decay 0.9 and
            # the unbiased batch variance (they depend on the first weights only)
            for module, link in zip(torch_layers(pt.generator), chainer_layers(ch.generator), strict=True):
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    assert module.num_batches_tracked.item() == 1
                    np.testing.assert_allclose(link.avg_mean, module.running_mean.numpy(), rtol=1e-4, atol=1e-7)
                    np.testing.assert_allclose(link.avg_var, module.running_var.numpy(), rtol=1e-4, atol=1e-7)
                    assert np.abs(module.running_var.numpy() - 1).max() > 1e-3    # not still at 1
    # after two steps: the same updates of every weight.  Not to float
    # precision everywhere: at the 64x64 DCGAN's initial weights some of D's
    # and G's gradients are float32 noise (the real and fake terms cancel,
    # measured: 0.5-5% off float64 in both frameworks alike), and Adam's
    # first steps, about lr * sign(gradient), turn those into full steps
    # (7% of the update, measured; 0.2% at 28x28, 1e-5 in the other
    # cases).  The 32x32 DCGAN does the same: G 5.4%, D 1.3%, measured;
    # with Adam's eps raised to 1e-5 in both frameworks, so that gradients
    # below it stop making full steps, 0.3% and 0.09% -- noise amplified
    # by Adam, not a different network (its outputs in training mode agree
    # to 2e-6).  A wrong lr, an extra or a missing update would be 50% or
    # more; PyTorch's own eps placement 1-12%.
    for name in ("generator", "discriminator"):
        torch_update = flat_parameters(getattr(pt, name)) - start[name]
        chainer_update = flat_parameters(getattr(ch, name)) - start[name]
        difference = np.linalg.norm(chainer_update - torch_update) / np.linalg.norm(torch_update)
        assert difference < UPDATE_TOLERANCE.get((question, image_shape), 1e-2), (name, difference)
