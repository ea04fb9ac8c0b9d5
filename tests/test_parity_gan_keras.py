"""The Keras 3 GAN and DCGAN are the PyTorch networks and the PyTorch train
step (DESIGN.md section 7).

For each question and image shape (64x64x3, 28x28x1, 32x32x3):

- the same layers with the same parameter counts (the DCGAN's are pinned in
  tests/test_parity_dcgan_tf.py), the same model_info;
- with the PyTorch weights (and non-trivial BatchNorm statistics) copied
  into the Keras layers, the same G(z) and the same logits D(x) in
  inference mode (max-abs difference below 1e-4, float32);
- from identical weights, real batch and z, the same five metrics of two
  training steps (rtol 1e-3): the step order, the losses, label smoothing
  and both updates are the same.  The G loss must differ from the one the
  *old* D would give (so the test sees the order), and G's BatchNorm moving
  statistics after one step show G ran once in training mode, with Keras'
  moving variance taking the biased batch variance (PyTorch the unbiased).

Layouts (tests/convert.py): Dense kernel = Linear weight transposed (both
versions read G's Dense units as an NHWC map and flatten D's features in
NHWC order, so no permutation), conv kernels OIHW -> HWIO, transposed conv
(I, O, kh, kw) -> (kh, kw, O, I), BatchNorm [gamma, beta, moving mean,
moving variance] = [weight, bias, running_mean, running_var].
"""
import copy

import numpy as np
import pytest

from common import gan
from tests.conftest import load_script
from tests.convert import torch_to_tf_conv, torch_to_tf_deconv, torch_to_tf_dense
from tests.test_parity_dcgan_tf import PARAMETERS as DCGAN_PARAMETERS

torch = pytest.importorskip("torch")

CLASSES = {"gan": "GAN", "dcgan": "DCGAN"}
SHAPES = [(64, 64, 3), (28, 28, 1), (32, 32, 3)]
SHAPE_IDS = ["64x64x3", "28x28x1", "32x32x3"]
CASES = [(q, s) for q in CLASSES for s in SHAPES]
IDS = [f"{q}-{i}" for q in CLASSES for i in SHAPE_IDS]
TOLERANCE = 1e-4
BATCH = 8
LABEL_SMOOTHING = 0.1
BN_TYPES = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)


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


def copy_weights(pt_model, keras_model):
    for name in ("generator", "discriminator"):
        pairs = list(zip(torch_layers(getattr(pt_model, name)), keras_layers(getattr(keras_model, name)),
                         strict=True))
        for module, layer in pairs:
            values = keras_values(module)
            assert [v.shape for v in values] == [tuple(w.shape) for w in layer.weights], (name, layer.name)
            layer.set_weights(values)


def realistic_batchnorm(pt_model, z, rng):
    """Non-trivial gamma and beta, and running statistics of one train-mode
    batch, so that a mistake in the BatchNorm layout, eps or statistics
    shows; the momentum is put back for training."""
    bns = [m for m in pt_model.generator.modules() if isinstance(m, BN_TYPES)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None            # a plain average: the statistics of the one batch below
        m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.num_features).astype(np.float32))
        m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.num_features).astype(np.float32))
    pt_model.generator.train()
    with torch.no_grad():
        pt_model.generator(torch.from_numpy(z))
    for m in bns:
        m.momentum = 1 - load_script("dcgan", "pytorch").BN_DECAY   # torch momentum = 1 - decay


@pytest.fixture(params=CASES, ids=IDS)
def models(request):
    """(question, image_shape, PyTorch model, Keras model with the PyTorch weights)."""
    question, image_shape = request.param
    pt, script = load_script(question, "pytorch"), load_script(question, "keras")
    pt_model = getattr(pt, CLASSES[question])("parity", 100, image_shape, seed=3, device="cpu")
    realistic_batchnorm(pt_model, gan.uniform_z(64, 100, 5, 0), np.random.default_rng(2))
    keras_model = getattr(script, CLASSES[question])("parity", 100, image_shape, seed=3, device="cpu")
    copy_weights(pt_model, keras_model)
    return question, image_shape, pt_model, keras_model


def test_same_networks(models):
    question, image_shape, pt_model, keras_model = models
    pt, script = load_script(question, "pytorch"), load_script(question, "keras")
    # the same layers, the same parameter counts
    for name in ("generator", "discriminator"):
        pt_net, keras_net = getattr(pt_model, name), getattr(keras_model, name)
        torch_counts = [sum(p.numel() for p in m.parameters(recurse=False)) for m in torch_layers(pt_net)]
        keras_counts = [sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
                        for layer in keras_layers(keras_net)]
        assert keras_counts == torch_counts, name
        total = sum(int(np.prod(w.shape)) for w in keras_net.trainable_weights)
        assert total == sum(p.numel() for p in pt_net.parameters()), name
        if question == "dcgan":
            assert total == DCGAN_PARAMETERS[image_shape][name]
        # the only other weights: BatchNorm's moving mean and variance
        n_bn = sum(isinstance(m, BN_TYPES) for m in pt_net.modules())
        assert len(keras_net.non_trainable_weights) == 2 * n_bn, name
    assert script.model_info(image_shape, 100) == pt.model_info(image_shape, 100)

    # the same G(z) and D(x), in inference mode
    z = gan.uniform_z(5, 100, 1, 0)
    expected = pt_model.generator_output(z)
    got = keras_model.generator_output(z)                        # NHWC
    assert got.shape == expected.shape == (5, *image_shape)
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert got.std() > 0.01                                      # not trivially equal
    images = np.random.default_rng(3).uniform(-1, 1, (5, *image_shape)).astype(np.float32)
    expected = pt_model.discriminator_logits(images)
    got = keras_model.discriminator_logits(images)
    assert got.shape == expected.shape == (5, 1)
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert np.ptp(got) > 1e-3
    np.testing.assert_allclose(keras_model.discriminate((images + 1) / 2), pt_model.discriminate((images + 1) / 2),
                               atol=TOLERANCE)


@pytest.mark.parametrize("question", sorted(CLASSES))
def test_same_initialisation_rule(question):
    # freshly built: the rule, not the same draws (the rule does not depend on the image size)
    script = load_script(question, "keras")
    image_shape = (28, 28, 1)
    fresh = getattr(script, CLASSES[question])("init", 100, image_shape, seed=4, device="cpu")
    for name in ("generator", "discriminator"):
        for layer in keras_layers(getattr(fresh, name)):
            values = [w.numpy() for w in layer.weights]
            if len(values) == 4:                                   # BatchNorm
                gamma, beta, mean, var = values
                assert (gamma == 1).all() and (beta == 0).all() and (mean == 0).all() and (var == 1).all()
                continue
            w, b = values
            assert not b.any(), layer.name
            if question == "gan":                                  # Glorot-uniform
                limit = np.sqrt(6.0 / (w.shape[0] + w.shape[1]))
                assert np.abs(w).max() <= limit and np.abs(w).max() > 0.8 * limit, layer.name
            else:                                                  # N(0, 0.02)
                assert w.size >= 800 and abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002, layer.name
    # the weights come from the seed: the same seed the same weights, another seed others
    def discriminator_weights(seed):
        return script.Discriminator(image_shape, script.keras.random.SeedGenerator(seed)).get_weights()
    first = discriminator_weights(4)
    assert all(np.array_equal(a, b) for a, b in zip(discriminator_weights(4), first, strict=True))
    assert not np.array_equal(discriminator_weights(5)[0], first[0])
    # and every layer draws its own numbers
    kernels = [w for w in first if w.ndim > 1]
    assert not np.array_equal(kernels[0].ravel()[:100], kernels[1].ravel()[:100])


def old_d_g_loss(pt_model, z):
    """The G loss as the D *before* its update would give it (the wrong order)."""
    pt = load_script("gan", "pytorch")
    generator = copy.deepcopy(pt_model.generator).train()       # a copy: the model's BatchNorm statistics stay
    with torch.no_grad():
        fake = generator(torch.from_numpy(z))
        return pt.generator_loss(pt_model.discriminator(fake)).item()


def test_same_training_steps(models):
    question, image_shape, pt_model, keras_model = models
    rng = np.random.default_rng(4)
    bn_before = [(m.running_mean.clone().numpy(), m.running_var.clone().numpy())
                 for m in pt_model.generator.modules() if isinstance(m, BN_TYPES)]
    for step in range(2):
        real_images = rng.uniform(-1, 1, (BATCH, *image_shape)).astype(np.float32)
        z = gan.uniform_z(BATCH, 100, 7, step)
        wrong_order = old_d_g_loss(pt_model, z) if step == 0 else None
        expected = pt_model.train_step(real_images, z, LABEL_SMOOTHING)
        got = keras_model.train_step(real_images, z, LABEL_SMOOTHING)
        assert list(got) == gan.FIELDS
        for key in gan.FIELDS:
            assert got[key] == pytest.approx(expected[key], rel=1e-3, abs=1e-6), (step, key, got, expected)
        if step == 0:
            # the updated D judges G: the old D's verdict is far from it
            assert abs(wrong_order - got["g_loss"]) > 5e-3 * abs(got["g_loss"]), (wrong_order, got["g_loss"])
            check_moving_statistics(pt_model, keras_model, bn_before)
    # a third call, with another label smoothing: the graph is not traced again
    keras_model.train_step(real_images, z, 0.0)
    assert keras_model._train_step.graph_step.experimental_get_tracing_count() == 1


def check_moving_statistics(pt_model, keras_model, before):
    """After one step: moving = 0.9 * old + 0.1 * batch statistic, once.
    The mean is the same in both; the variance increment is PyTorch's
    (unbiased) times (n - 1) / n in Keras (biased), n values per channel."""
    pt_bns = [m for m in pt_model.generator.modules() if isinstance(m, BN_TYPES)]
    keras_bns = [layer for layer in keras_model.generator.layers if len(layer.weights) == 4]
    assert len(pt_bns) == len(keras_bns) == len(before)
    batch_shapes = []
    x = torch.from_numpy(np.zeros((BATCH, 100), np.float32))
    hooks = [m.register_forward_hook(lambda m, i, o: batch_shapes.append(i[0].shape)) for m in pt_bns]
    try:
        with torch.no_grad():
            pt_model.generator.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    for m, layer, (old_mean, old_var), shape in zip(pt_bns, keras_bns, before, batch_shapes):
        n = int(np.prod(shape)) // shape[1]                       # values per channel: N (1-d) or N*H*W
        mean, var = (w.numpy() for w in layer.weights[2:])
        torch_step_mean = m.running_mean.numpy() - 0.9 * old_mean
        keras_step_mean = mean - 0.9 * old_mean
        np.testing.assert_allclose(keras_step_mean, torch_step_mean, rtol=1e-3, atol=1e-5)
        torch_step_var = m.running_var.numpy() - 0.9 * old_var
        keras_step_var = var - 0.9 * old_var
        assert (torch_step_var > 0).all()
        np.testing.assert_allclose(keras_step_var, torch_step_var * (n - 1) / n, rtol=1e-3, atol=1e-6)
