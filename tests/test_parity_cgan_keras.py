"""The Keras 3 CGAN is the PyTorch CGAN and its train step (CGAN_SPEC.md
section 10, DESIGN.md section 7).

For 28x28x1 with 10 classes (MNIST), 32x32x3 with 10 (CIFAR-10) and
64x64x3 with 2 (the newts):

- the same layers with the same parameter counts (PARAMETERS of
  tests/test_answers_cgan.py), the same model_info;
- with the PyTorch weights (and non-trivial BatchNorm statistics) copied
  into the Keras layers, the same G(z, y) and the same logits D(x, y) in
  inference mode (max-abs difference below 1e-4, float32), for one-hot
  conditions and for the soft ones of the interpolation picture; both
  networks read the label (another y, other outputs), through the last
  n_classes rows of G's Dense kernel and the last n_classes input channels
  of D's first kernel (zeroed, y no longer matters);
- from identical weights, real batch, real labels, z and fake labels, the
  same five metrics of two training steps (2e-4 relative) and the same
  weight updates: the step order, the labels each batch is shown with, the
  losses with label smoothing and both Adam updates are the same.  The G
  loss must differ from the one the *old* D would give (so the test sees
  the order), and G's BatchNorm moving statistics after one step show G
  ran once in training mode, with Keras' moving variance taking the biased
  batch variance (PyTorch the unbiased).

Layouts (tests/convert.py): Dense kernel = Linear weight transposed, conv
kernels OIHW -> HWIO, transposed conv (I, O, kh, kw) -> (kh, kw, O, I),
BatchNorm [gamma, beta, moving mean, moving variance] = [weight, bias,
running_mean, running_var].  G's input is [z, y] and D's [image, label
planes] in both, so the first Dense and the first conv convert like any
other (no row or channel permutation).
"""
import copy

import numpy as np
import pytest

from common import cgan, gan
from tests.conftest import load_script
from tests.convert import torch_to_tf_conv, torch_to_tf_deconv, torch_to_tf_dense
from tests.test_answers_cgan import PARAMETERS

torch = pytest.importorskip("torch")

CASES = list(PARAMETERS)                      # (image_shape, n_classes)
IDS = ["28x28x1", "32x32x3", "64x64x3"]
Z_DIM = 100
TOLERANCE = 1e-4                              # max-abs, outputs in inference mode
METRICS_RTOL = 2e-4                           # the five metrics of a training step
# relative difference of the weight updates after two steps, in every case
# (measured: 1e-5, and 4e-3 for the 64x64 G; see test_same_training_steps)
UPDATE_TOLERANCE = 1e-2
BATCH = 8
LS_EPSILON = 0.1
BN_TYPES = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)
CPU = "/cpu:0"


def torch_layers(network):
    """The PyTorch modules that hold parameters, in order."""
    return [m for m in network.modules() if list(m.parameters(recurse=False))]


def keras_layers(network):
    """The Keras layers that hold weights, in order."""
    return [layer for layer in network.layers if layer.weights]


def keras_values(module):
    """A PyTorch module's parameters (and BatchNorm statistics) in the
    layout of the matching Keras layer's weights."""
    w, b = module.weight.detach().numpy(), module.bias.detach().numpy()
    if isinstance(module, torch.nn.ConvTranspose2d):
        return [torch_to_tf_deconv(w), b]
    if isinstance(module, torch.nn.Conv2d):
        return [torch_to_tf_conv(w), b]
    if isinstance(module, torch.nn.Linear):
        return [torch_to_tf_dense(w), b]
    if isinstance(module, BN_TYPES):
        return [w, b, module.running_mean.numpy(), module.running_var.numpy()]
    raise TypeError(type(module).__name__)


def copy_weights(torch_networks, keras_networks):
    for torch_network, keras_network in zip(torch_networks, keras_networks, strict=True):
        for module, layer in zip(torch_layers(torch_network), keras_layers(keras_network), strict=True):
            values = keras_values(module)
            assert [v.shape for v in values] == [tuple(w.shape) for w in layer.weights], layer.name
            layer.set_weights(values)


def trainable_vector(network):
    """A network's trainable parameters (weights, biases, BatchNorm gamma and
    beta) in network order and in Keras' layouts, as one vector."""
    if isinstance(network, torch.nn.Module):
        return np.concatenate([v.ravel() for m in torch_layers(network) for v in keras_values(m)[:2]])
    return np.concatenate([w.numpy().ravel() for layer in keras_layers(network) for w in layer.trainable_weights])


def realistic_batchnorm(generator, z, y, rng):
    """Non-trivial gamma and beta, and running statistics of one train-mode
    batch, so that a mistake in the BatchNorm layout, eps or statistics
    shows; the momentum is put back for training."""
    bns = [m for m in generator.modules() if isinstance(m, BN_TYPES)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None            # a plain average: the statistics of the one batch below
        m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.num_features).astype(np.float32))
        m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.num_features).astype(np.float32))
    generator.train()
    with torch.no_grad():
        generator(torch.from_numpy(z), torch.from_numpy(y))
    for m in bns:
        m.momentum = 1 - load_script("cgan", "pytorch").BN_DECAY   # torch momentum = 1 - decay


@pytest.fixture(params=CASES, ids=IDS)
def models(request):
    """(image_shape, n_classes, PyTorch networks, Keras networks with the
    PyTorch weights): (generator, discriminator, g_optimizer, d_optimizer)."""
    image_shape, n_classes = request.param
    pt, ks = load_script("cgan", "pytorch"), load_script("cgan", "keras")
    torch_networks = pt.build_model(image_shape, Z_DIM, n_classes, 3, 2e-4, torch.device("cpu"))
    labels = np.random.default_rng(1).integers(0, n_classes, 64)
    realistic_batchnorm(torch_networks[0], gan.uniform_z(64, Z_DIM, 5, 0), cgan.one_hot(labels, n_classes),
                        np.random.default_rng(2))
    keras_networks = ks.build_model(image_shape, Z_DIM, n_classes, 3, 2e-4, CPU)
    copy_weights(torch_networks[:2], keras_networks[:2])
    return image_shape, n_classes, torch_networks, keras_networks


def test_same_networks(models):
    image_shape, n_classes, torch_networks, keras_networks = models
    pt, ks = load_script("cgan", "pytorch"), load_script("cgan", "keras")
    # the same layers, the same parameter counts
    for name, torch_network, keras_network in zip(("generator", "discriminator"), torch_networks, keras_networks):
        torch_counts = [sum(p.numel() for p in m.parameters(recurse=False)) for m in torch_layers(torch_network)]
        keras_counts = [sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
                        for layer in keras_layers(keras_network)]
        assert keras_counts == torch_counts, name
        total = sum(int(np.prod(w.shape)) for w in keras_network.trainable_weights)
        assert total == PARAMETERS[image_shape, n_classes][name]
        # the only other weights: BatchNorm's moving mean and variance
        n_bn = sum(isinstance(m, BN_TYPES) for m in torch_network.modules())
        assert len(keras_network.non_trainable_weights) == 2 * n_bn, name
    assert ks.model_info(image_shape, Z_DIM, n_classes) == pt.model_info(image_shape, Z_DIM, n_classes)

    # the same G(z, y) and D(x, y) in inference mode: one-hot conditions,
    # then the soft ones of the interpolation picture (class r -> r + 1)
    conditions = cgan.test_conditions(n_classes, Z_DIM, 0)
    z, y = conditions["grid"][0][:6], cgan.one_hot(np.arange(6) % n_classes, n_classes)
    soft_z, soft_y = (a[1:cgan.INTERPOLATION_STEPS - 1] for a in conditions["interpolation"])
    assert ((soft_y > 0.05) & (soft_y < 0.95)).any(axis=1).all()            # really between two classes
    images = np.random.default_rng(3).uniform(-1, 1, (len(soft_y), *image_shape)).astype(np.float32)
    generator, discriminator = keras_networks[:2]
    for z_, y_ in ((z, y), (soft_z, soft_y)):
        expected = pt.generate(torch_networks[0], z_, y_, "cpu")
        got = ks.generate(generator, z_, y_, CPU)                            # NHWC
        assert got.shape == expected.shape == (len(z_), *image_shape)
        assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
        assert got.std() > 0.01                                              # not trivially equal
        x = images[:len(y_)]
        expected = pt.discriminate(torch_networks[1], x, y_, "cpu")
        got = ks.discriminate(discriminator, x, y_, CPU)
        assert got.shape == expected.shape == (len(x), 1)
        assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
        assert np.ptp(got) > 1e-3

    # both read the label: another y, other outputs ...
    other_y = np.roll(y, 1, axis=1)
    assert np.abs(ks.generate(generator, z, y, CPU) - ks.generate(generator, z, other_y, CPU)).max() > 1e-3
    images = images[:len(y)]
    assert np.abs(ks.discriminate(discriminator, images, y, CPU)
                  - ks.discriminate(discriminator, images, other_y, CPU)).max() > 1e-5
    # ... through the last n_classes inputs of G's Dense and of D's first conv
    dense, conv = keras_layers(generator)[0], keras_layers(discriminator)[0]
    kernel, bias = dense.get_weights()
    dense.set_weights([np.concatenate([kernel[:Z_DIM], np.zeros_like(kernel[Z_DIM:])]), bias])
    kernel, bias = conv.get_weights()
    channels = image_shape[2]
    conv.set_weights([np.concatenate([kernel[:, :, :channels], np.zeros_like(kernel[:, :, channels:])], axis=2), bias])
    np.testing.assert_array_equal(ks.generate(generator, z, y, CPU), ks.generate(generator, z, other_y, CPU))
    np.testing.assert_array_equal(ks.discriminate(discriminator, images, y, CPU),
                                  ks.discriminate(discriminator, images, other_y, CPU))


def test_same_initialisation_rule():
    # freshly built: the rule, not the same draws
    ks = load_script("cgan", "keras")
    generator, discriminator, g_optimizer, d_optimizer = ks.build_model((28, 28, 1), Z_DIM, 10, 4, 2e-4, CPU)
    for network in (generator, discriminator):
        for layer in keras_layers(network):
            values = [w.numpy() for w in layer.weights]
            if len(values) == 4:                                   # BatchNorm
                gamma, beta, mean, var = values
                assert (gamma == 1).all() and (beta == 0).all() and (mean == 0).all() and (var == 1).all()
                assert (layer.momentum, layer.epsilon) == (0.9, 1e-5)
                continue
            w, b = values
            assert not b.any(), layer.name
            assert w.size >= 800 and abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002, layer.name
    assert [layer.negative_slope for layer in discriminator.layers if hasattr(layer, "negative_slope")] == [0.2, 0.2]
    for optimizer in (g_optimizer, d_optimizer):
        assert (float(optimizer.learning_rate), optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (
            pytest.approx(2e-4), 0.5, 0.999, 1e-8)
    # the weights come from the seed: the same seed the same weights, another seed others
    def discriminator_weights(seed):
        return ks.build_model((28, 28, 1), Z_DIM, 10, seed, 2e-4, CPU)[1].get_weights()
    first = discriminator_weights(4)
    assert all(np.array_equal(a, b) for a, b in zip(discriminator.get_weights(), first, strict=True))
    assert not np.array_equal(discriminator_weights(5)[0], first[0])


def align_adam_eps(torch_optimizers, t):
    """Keras' Adam adds eps to sqrt(v) before the bias correction, PyTorch's
    to sqrt(v_hat) after it (DESIGN.md section 7): Keras' step t is
    PyTorch's with eps / sqrt(1 - beta2^t).  Set that for PyTorch's step
    ``t`` (from 1), so that the weights can be compared after the steps
    (early in a GAN many gradients are below 1e-7, where eps matters)."""
    ks = load_script("cgan", "keras")
    eps = ks.ADAM_EPS / np.sqrt(1.0 - ks.ADAM_BETAS[1] ** t)
    for optimizer in torch_optimizers:
        for group in optimizer.param_groups:
            group["eps"] = eps


def old_d_g_loss(torch_networks, z, fake_y):
    """The G loss as the D *before* its update would give it (the wrong order)."""
    pt = load_script("cgan", "pytorch")
    generator = copy.deepcopy(torch_networks[0]).train()       # a copy: the model's BatchNorm statistics stay
    with torch.no_grad():
        y = float64_tensor(fake_y)
        return pt.generator_loss(torch_networks[1](generator(float64_tensor(z), y), y)).item()


def float64_tensor(array):
    return torch.from_numpy(np.asarray(array, np.float64))


def test_same_training_steps(models):
    image_shape, n_classes, torch_networks, keras_networks = models
    pt, ks = load_script("cgan", "pytorch"), load_script("cgan", "keras")
    for network in torch_networks[:2]:         # the reference in float64 (see the end)
        network.double()
    torch_step, keras_step = pt.make_train_step(*torch_networks), ks.make_train_step(*keras_networks)
    start = [trainable_vector(network) for network in keras_networks[:2]]
    np.testing.assert_array_equal(start[0], trainable_vector(torch_networks[0]))
    bn_before = [(m.running_mean.clone().numpy(), m.running_var.clone().numpy())
                 for m in torch_networks[0].modules() if isinstance(m, BN_TYPES)]
    rng = np.random.default_rng(4)
    for step in range(2):
        align_adam_eps(torch_networks[2:], step + 1)
        real_images = rng.uniform(-1, 1, (BATCH, *image_shape)).astype(np.float32)
        real_y = cgan.one_hot(rng.integers(0, n_classes, BATCH), n_classes)
        z = gan.uniform_z(BATCH, Z_DIM, 7, step)
        fake_y = cgan.one_hot(cgan.LabelSampler(n_classes, 7 + step)(BATCH), n_classes)
        wrong_order = old_d_g_loss(torch_networks, z, fake_y)
        expected = torch_step(float64_tensor(real_images).permute(0, 3, 1, 2), float64_tensor(real_y),
                              float64_tensor(z), float64_tensor(fake_y), LS_EPSILON)
        got = keras_step(real_images, real_y, z, fake_y, LS_EPSILON)
        assert list(got) == gan.FIELDS
        for key in gan.FIELDS:
            assert got[key] == pytest.approx(expected[key], rel=METRICS_RTOL, abs=1e-6), (step, key, got, expected)
        # the updated D judges G: the old D's verdict is far from it
        assert abs(wrong_order - got["g_loss"]) > 10 * METRICS_RTOL * got["g_loss"], (step, wrong_order, got)
        if step == 0:
            check_moving_statistics(torch_networks[0], keras_networks[0], bn_before, n_classes)
    # after two steps: the same updates of every weight, Keras in its float32
    # against PyTorch in float64.  Not to float precision: at the initial
    # weights some gradients are float32 noise, and Adam's first steps, about
    # lr * sign(gradient), turn them into full steps.  PyTorch's float32 is the
    # noisier (on an AMD EPYC, AVX2: 3.5% of the 64x64 G's update against
    # PyTorch float32, 2.5e-3 against float64), so the reference is float64
    # (measured: 1.5e-5, 1.2e-5 and 2.5e-3 for G at 28x28, 32x32 and 64x64,
    # 1e-5 for D).  1e-2 must hold everywhere: PyTorch's own eps placement
    # (align_adam_eps left out) is 2-15% (measured), a wrong lr, an extra or
    # a missing update 50% or more.
    for name, torch_network, keras_network, before in zip(("generator", "discriminator"), torch_networks,
                                                          keras_networks, start):
        torch_update = trainable_vector(torch_network) - before
        keras_update = trainable_vector(keras_network) - before
        difference = np.linalg.norm(keras_update - torch_update) / np.linalg.norm(torch_update)
        assert difference < UPDATE_TOLERANCE, (name, difference)
    # a third call, with another label smoothing: the graph is not traced again
    keras_step(real_images, real_y, z, fake_y, 0.0)
    assert keras_step.graph_step.experimental_get_tracing_count() == 1


def check_moving_statistics(torch_generator, keras_generator, before, n_classes):
    """After one step: moving = 0.9 * old + 0.1 * batch statistic, once.
    The mean is the same in both; the variance increment is PyTorch's
    (unbiased) times (n - 1) / n in Keras (biased), n values per channel."""
    torch_bns = [m for m in torch_generator.modules() if isinstance(m, BN_TYPES)]
    keras_bns = [layer for layer in keras_generator.layers if len(layer.weights) == 4]
    assert len(torch_bns) == len(keras_bns) == len(before)
    batch_shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: batch_shapes.append(i[0].shape)) for m in torch_bns]
    try:
        with torch.no_grad():
            dtype = next(torch_generator.parameters()).dtype
            torch_generator.eval()(torch.zeros(BATCH, Z_DIM, dtype=dtype), torch.zeros(BATCH, n_classes, dtype=dtype))
    finally:
        for hook in hooks:
            hook.remove()
    for m, layer, (old_mean, old_var), shape in zip(torch_bns, keras_bns, before, batch_shapes, strict=True):
        assert m.num_batches_tracked.item() == 2                 # the realistic batch, then the step's one pass
        n = int(np.prod(shape)) // shape[1]                       # values per channel: N (1-d) or N*H*W
        mean, var = (w.numpy() for w in layer.weights[2:])
        np.testing.assert_allclose(mean - 0.9 * old_mean, m.running_mean.numpy() - 0.9 * old_mean,
                                   rtol=1e-3, atol=1e-5)
        torch_step_var = m.running_var.numpy() - 0.9 * old_var
        assert (torch_step_var > 0).all()
        np.testing.assert_allclose(var - 0.9 * old_var, torch_step_var * (n - 1) / n, rtol=1e-3, atol=1e-6)
