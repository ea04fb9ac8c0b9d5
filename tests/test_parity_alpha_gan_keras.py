"""The Keras 3 alpha-GAN is the PyTorch alpha-GAN and its train step
(DESIGN.md section 7).

For 28x28x1 with z of size 10 (MNIST), 32x32x3 with 128 (CIFAR-10) and
64x64x3 with 10 (the newts), each size built once:

- the same layers with the same parameter counts, layer by layer and in
  total (PARAMETERS of tests/test_answers_alpha_gan.py), BatchNorm in G
  only, the same model_info;
- with the PyTorch weights copied into the Keras layers (every bias away
  from 0, every BatchNorm with gamma and beta away from 1 and 0 and the
  running statistics of one train-mode batch), the same G(z), D(x), E(x)
  and C(z) in inference mode, max-abs difference below 1e-4 (float32);
  E is D's convolution stack: D's convolution weights in E give D's
  features.

At 28x28x1, freshly built: the explicit settings (N(0, 0.02) kernels, zero
biases, BatchNorm gamma 1, beta 0, eps 1e-5, decay 0.9, LeakyReLU 0.2 in
D, E and C, 5x5 stride-2 'same' convolutions, Adam lr 5e-4 for G, D, C and
1e-4 for E, betas (0.5, 0.9), eps 1e-8), and the seed fixes the weights.

From identical weights, real batch and z, at the small sizes (28x28x1 z 10
and 8x8x1 z 4, the answer tests' learning check), each of two full
iterations of the four steps (E, G, G, D, C) gives the same ten metrics
(2e-4 relative; measured 1e-7) and the same weight updates of all four
networks (UPDATE_TOLERANCE, measured), the biases before G's BatchNorms
aside (noise_only); after the first, G's BatchNorm moving statistics show
G ran 4 times in training mode on batches of 2N ([codes; z] together),
with Keras' moving variance taking the biased batch variance (PyTorch the
unbiased).
PyTorch's Adam steps with Keras' eps placement (before the bias correction:
keras_adam_eps of tests/test_parity_wgan_keras.py; G's optimizer steps
twice an iteration, and the wrapper counts its steps).

Layouts (tests/convert.py): Dense kernel = Linear weight transposed, conv
kernels OIHW -> HWIO, transposed conv (I, O, kh, kw) -> (kh, kw, O, I),
BatchNorm [gamma, beta, moving mean, moving variance] = [weight, bias,
running_mean, running_var].  The Keras layers are named after the PyTorch
modules (dense.1 -> dense_1, deconvs.3 -> deconvs_3, mlp.2 -> mlp_2), so
the weights pair up by name; both read G's Dense units as an NHWC map and
flatten D's and E's maps in NHWC order, so no row or column permutation.
"""
import numpy as np
import pytest

from common import alpha_gan
from tests.conftest import load_script
from tests.convert import torch_to_tf_conv, torch_to_tf_deconv, torch_to_tf_dense
from tests.test_answers_alpha_gan import PARAMETERS
from tests.test_parity_wgan_keras import keras_adam_eps

torch = pytest.importorskip("torch")

CPU = "/cpu:0"
NAMES = ("generator", "discriminator", "encoder", "code_discriminator")
CASES = list(PARAMETERS)                      # (image_shape, z_dim)
IDS = ["28x28x1", "32x32x3", "64x64x3"]
LR, ENCODER_LR, L1_WEIGHT = 5e-4, 1e-4, 1.0
TOLERANCE = 1e-4                              # max-abs, outputs in inference mode
METRICS_RTOL = 2e-4                           # the ten metrics of an iteration
# Relative norm of the difference of the weight updates (Keras' - PyTorch's),
# after one and after two iterations, every network.  Measured after one:
# 28x28x1 G 2.1e-5, D 4.8e-5, E 8.5e-6, C 2.8e-6; 8x8x1 G 1.5e-5, D 6.5e-7,
# E 8.9e-6, C 2.2e-6.  After two, G's rounding has gone through two more
# Adam steps at beta1 0.5, where m nearly cancels for gradients that change
# sign: 28x28x1 G 9.1e-4, D 1.2e-4 (8x8x1 all below 1e-5).  PyTorch's own
# Adam eps placement (keras_adam_eps left out) is 9e-3 to 5e-2 after one
# iteration; a wrong lr, a missing or an extra update 0.5 or more.
UPDATE_TOLERANCE = (1e-3, 1e-2)
TRAINING_CASES = [((28, 28, 1), 10), ((8, 8, 1), 4)]
BATCH = 8
BN_TYPES = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)


def scripts():
    return load_script("alpha_gan", "pytorch"), load_script("alpha_gan", "keras")


def build_pair(image_shape, z_dim, seed=3):
    """(PyTorch, Keras): (G, D, E, C, G's, D's, E's, C's optimizer) each."""
    pt, ks = scripts()
    return (pt.build_model(image_shape, z_dim, seed, LR, ENCODER_LR, torch.device("cpu")),
            ks.build_model(image_shape, z_dim, seed, LR, ENCODER_LR, CPU))


def keras_layers(network):
    """The Keras layers that hold weights, in order."""
    return [layer for layer in network.layers if layer.weights]


def paired_layers(torch_network, keras_network):
    """[(PyTorch name, module, Keras layer)], paired by name (deconvs.3 -> deconvs_3)."""
    modules = [(name, m) for name, m in torch_network.named_modules() if list(m.parameters(recurse=False))]
    assert len(modules) == len(keras_layers(keras_network))
    return [(name, m, keras_network.get_layer(name.replace(".", "_"))) for name, m in modules]


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
    for torch_network, keras_network in zip(torch_networks[:4], keras_networks[:4], strict=True):
        for name, module, layer in paired_layers(torch_network, keras_network):
            values = keras_values(module)
            assert [v.shape for v in values] == [tuple(w.shape) for w in layer.weights], name
            layer.set_weights(values)


def bn_modules(network):
    return [m for m in network.modules() if isinstance(m, BN_TYPES)]


def non_trivial_weights(torch_networks, z_dim, rng):
    """Every bias uniform in +-0.1 (not 0, so that a bias in the wrong place
    shows); G's BatchNorms: gamma and beta away from 1 and 0, the running
    statistics of one train-mode batch (a plain average), so that a mistake
    in a layout, an eps or a statistic shows; the momentum is put back for
    training."""
    pt = load_script("alpha_gan", "pytorch")
    for network in torch_networks[:4]:
        for m in network.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.bias.data = torch.from_numpy(rng.uniform(-0.1, 0.1, m.bias.shape).astype(np.float32))
    generator = torch_networks[0]
    for m in bn_modules(generator):
        m.reset_running_stats()
        m.momentum = None
        m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.num_features).astype(np.float32))
        m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.num_features).astype(np.float32))
    with torch.no_grad():
        generator.train()(torch.from_numpy(rng.standard_normal((64, z_dim)).astype(np.float32)))
    for m in bn_modules(generator):
        m.momentum = 1 - pt.BN_DECAY   # torch momentum = 1 - decay


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def built(request):
    """(image_shape, z_dim, PyTorch networks, Keras networks), each size built once."""
    image_shape, z_dim = request.param
    torch_networks, keras_networks = build_pair(image_shape, z_dim)
    return image_shape, z_dim, torch_networks, keras_networks


def test_same_networks(built):
    image_shape, z_dim, torch_networks, keras_networks = built
    pt, ks = scripts()
    assert ks.model_info(image_shape, z_dim) == pt.model_info(image_shape, z_dim)
    # the same layers, the same parameter counts; BatchNorm (G only) the only other weights
    for name, torch_network, keras_network in zip(NAMES, torch_networks, keras_networks):
        for module_name, module, layer in paired_layers(torch_network, keras_network):
            assert sum(p.numel() for p in module.parameters(recurse=False)) == sum(
                int(np.prod(w.shape)) for w in layer.trainable_weights), (name, module_name)
        assert sum(int(np.prod(w.shape)) for w in keras_network.trainable_weights) == PARAMETERS[
            image_shape, z_dim][name]
        assert len(keras_network.non_trainable_weights) == 2 * len(bn_modules(torch_network)), name
    assert all(not bn_modules(network) for network in torch_networks[1:4])

    # the same outputs in inference mode, with PyTorch's weights in the Keras layers
    rng = np.random.default_rng(1)
    non_trivial_weights(torch_networks, z_dim, rng)
    copy_weights(torch_networks, keras_networks)
    generator, discriminator, encoder, code_discriminator = keras_networks[:4]
    z = rng.standard_normal((6, z_dim)).astype(np.float32)
    images = rng.uniform(-1, 1, (6, *image_shape)).astype(np.float32)
    checks = [("G(z)", pt.generate(torch_networks[0], z, "cpu"), ks.generate(generator, z, CPU), (6, *image_shape)),
              ("D(x)", pt.discriminate(torch_networks[1], images, "cpu"), ks.discriminate(discriminator, images, CPU),
               (6, 1)),
              ("E(x)", pt.encode(torch_networks[2], images, "cpu"), ks.encode(encoder, images, CPU), (6, z_dim))]
    with torch.no_grad():
        checks.append(("C(z)", torch_networks[3].eval()(torch.from_numpy(z)).numpy(),
                       code_discriminator(z, training=False).numpy(), (6, 1)))
    for what, expected, got, shape in checks:
        assert got.shape == expected.shape == shape, what
        print(f"{image_shape} z {z_dim}: {what} max-abs difference {np.abs(got - expected).max():.1e}")
        assert np.abs(got - expected).max() < TOLERANCE, (what, np.abs(got - expected).max())
        assert np.ptp(got) > 1e-3, what                                   # not trivially equal

    # E is D's convolution stack (the same layers, then its own Dense): D's
    # convolution weights in E give D's features
    d_convs, e_convs = (keras_network.layers[:-1] for keras_network in (discriminator, encoder))
    assert [layer.name for layer in d_convs] == [layer.name for layer in e_convs]
    for d_layer, e_layer in zip(d_convs, e_convs):
        e_layer.set_weights(d_layer.get_weights())
    features = [keras_network.layers[-2].output for keras_network in (discriminator, encoder)]
    d_features, e_features = (ks.keras.Model(network.inputs[0], output)(images, training=False).numpy()
                              for network, output in zip((discriminator, encoder), features))
    np.testing.assert_array_equal(d_features, e_features)


def test_same_initialisation_rule():
    # at 28x28x1, z 10, freshly built: the rules (not PyTorch's draws)
    ks = load_script("alpha_gan", "keras")
    keras = ks.keras
    networks = ks.build_model((28, 28, 1), 10, 4, LR, ENCODER_LR, CPU)
    for network in networks[:4]:
        for layer in keras_layers(network):
            values = [w.numpy() for w in layer.weights]
            if isinstance(layer, keras.layers.BatchNormalization):
                gamma, beta, mean, var = values
                assert (gamma == 1).all() and (beta == 0).all() and (mean == 0).all() and (var == 1).all()
                assert (layer.momentum, layer.epsilon) == (0.9, 1e-5)
                continue
            w, b = values
            assert not b.any(), layer.name
            assert w.size < 800 or (abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002), layer.name
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
                assert (layer.kernel_size, layer.strides, layer.padding) == ((5, 5), (2, 2), "same"), layer.name
    for network, count in zip(networks[1:4], (2, 2, 2)):   # D, E: after each conv; C: after each hidden layer
        slopes = [layer.negative_slope for layer in network.layers if isinstance(layer, keras.layers.LeakyReLU)]
        assert slopes == [0.2] * count, network.name
        assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in network.layers)
    assert [(float(o.learning_rate), o.beta_1, o.beta_2, o.epsilon) for o in networks[4:]] == [
        (pytest.approx(lr), 0.5, 0.9, 1e-8) for lr in (LR, LR, ENCODER_LR, LR)]
    # the weights come from the seed: the same seed the same weights, another seed others
    again, other = (ks.build_model((28, 28, 1), 10, seed, LR, ENCODER_LR, CPU) for seed in (4, 5))
    for a, b, c in zip(networks[:4], again[:4], other[:4]):
        assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))
        assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def noise_only(torch_network):
    """The names of the parameters whose exact gradient is 0: the biases of
    G's layers followed by a BatchNorm, which subtracts them again with the
    batch mean.  Their gradients are float32 rounding, different in each
    framework, and Adam turns them into steps of up to about lr (with the
    reconstruction term summed over the pixels their norm is 8-16% of the
    rest of G's update), so they are not compared, only kept below Adam's
    largest steps: 1.6 lr a step."""
    modules = list(torch_network.named_modules())
    return {f"{name}.bias" for (name, m), (_, after) in zip(modules, modules[1:])
            if isinstance(m, (torch.nn.Linear, torch.nn.ConvTranspose2d)) and isinstance(after, BN_TYPES)}


def trainable_values(torch_network, keras_network, side):
    """{PyTorch parameter name: values in Keras' layout} of the ``side`` network."""
    values = {}
    for name, module, layer in paired_layers(torch_network, keras_network):
        kinds = [kind for kind, _ in module.named_parameters(recurse=False)]
        arrays = (keras_values(module)[:len(kinds)] if side == "torch"
                  else [w.numpy() for w in layer.trainable_weights])
        values.update({f"{name}.{kind}": np.array(a) for kind, a in zip(kinds, arrays, strict=True)})
    return values


def update_differences(torch_networks, keras_networks, before, g_steps):
    """{network: relative norm of (Keras' update - PyTorch's update)} since
    ``before``, the noise-only biases left out (in both, each of their
    entries must have moved less than ``g_steps`` of Adam's largest step)."""
    differences = {}
    for name, t, k, start in zip(NAMES, torch_networks[:4], keras_networks[:4], before):
        skip = noise_only(t)
        updates = []
        for side in ("torch", "keras"):
            values = trainable_values(t, k, side)
            update = {key: values[key] - start[key] for key in start}
            noise = max((np.abs(update[key]).max() for key in skip), default=0.0)
            assert noise < g_steps * 1.6 * LR, (name, side, noise / LR)
            update = np.concatenate([update[key].ravel() for key in start if key not in skip])
            updates.append(update)
        differences[name] = np.linalg.norm(updates[1] - updates[0]) / np.linalg.norm(updates[0])
    return differences


@pytest.mark.parametrize("image_shape,z_dim", TRAINING_CASES, ids=["28x28x1", "8x8x1"])
def test_same_training_iterations(image_shape, z_dim):
    pt, ks = scripts()
    torch_networks, keras_networks = build_pair(image_shape, z_dim)
    non_trivial_weights(torch_networks, z_dim, np.random.default_rng(2))
    copy_weights(torch_networks, keras_networks)
    for optimizer in torch_networks[4:]:
        keras_adam_eps(optimizer, ks.ADAM_EPS, ks.ADAM_BETAS[1])
    torch_step = pt.make_train_step(*torch_networks, l1_weight=L1_WEIGHT)
    keras_step = ks.make_train_step(*keras_networks, l1_weight=L1_WEIGHT)
    start = [trainable_values(t, k, "keras") for t, k in zip(torch_networks[:4], keras_networks[:4])]
    for before, t, k in zip(start, torch_networks[:4], keras_networks[:4]):
        for key, values in trainable_values(t, k, "torch").items():
            np.testing.assert_array_equal(before[key], values)
    assert noise_only(torch_networks[0]) == ({"dense.0.bias"} if image_shape[0] == 8
                                             else {"dense.0.bias", "deconvs.0.bias"})
    bn_before = [(m.running_mean.clone().numpy(), m.running_var.clone().numpy()) for m in bn_modules(torch_networks[0])]
    rng = np.random.default_rng(4)
    for iteration in range(2):
        real_images = rng.uniform(-1, 1, (BATCH, *image_shape)).astype(np.float32)
        z = rng.standard_normal((BATCH, z_dim)).astype(np.float32)
        expected = torch_step(pt.to_nchw(real_images), torch.from_numpy(z))
        got = keras_step(real_images, z)
        assert list(got) == list(expected) == alpha_gan.FIELDS
        for key in alpha_gan.FIELDS:
            assert got[key] == pytest.approx(expected[key], rel=METRICS_RTOL, abs=1e-6), (iteration, key, got, expected)
        differences = update_differences(torch_networks, keras_networks, start, g_steps=2 * (iteration + 1))
        print(f"{image_shape} z {z_dim}, after {iteration + 1} iteration(s): relative difference of the updates "
              + ", ".join(f"{name} {value:.1e}" for name, value in differences.items()))
        for name, value in differences.items():
            assert value < UPDATE_TOLERANCE[iteration], (iteration, name, value)
        if iteration == 0:
            # G ran 4 times in training mode (E step, G step twice, D step), on 2N
            check_moving_statistics(torch_networks[0], keras_networks[0], bn_before, z_dim, updates=4)
    # a third call: the graph is not traced again
    keras_step(real_images, z)
    assert keras_step.graph_step.experimental_get_tracing_count() == 1


def check_moving_statistics(torch_generator, keras_generator, before, z_dim, updates):
    """After ``updates`` train-mode passes of G: moving = 0.9^updates * old
    + the batch statistics' share.  The means are the same in both; Keras'
    variance share is PyTorch's (unbiased) times (n - 1) / n (biased), with
    n values per channel in every pass: 2N ([codes; z] in one batch) times
    H x W."""
    pairs = [(m, layer) for _, m, layer in paired_layers(torch_generator, keras_generator) if isinstance(m, BN_TYPES)]
    assert len(pairs) == len(before) > 0
    batch_shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o: batch_shapes.update({m: i[0].shape})) for m, _ in pairs]
    try:
        with torch.no_grad():
            torch_generator.eval()(torch.zeros(2 * BATCH, z_dim))
    finally:
        for hook in hooks:
            hook.remove()
    # The batch means include the bias before each BatchNorm, whose updates
    # are rounding noise (noise_only) and differ: G's 3rd and 4th passes ran
    # after 1 and 2 G updates, each at most lr in either framework, so their
    # shares of the moving mean may differ by 0.1 * (0.9 * 2 lr + 4 lr)
    # (measured: 0.23 lr at most).  The variances do not see the bias.
    bias_bound = 0.1 * (0.9 * 2 + 4) * LR
    decay = 0.9 ** updates
    for (m, layer), (old_mean, old_var) in zip(pairs, before, strict=True):
        assert m.num_batches_tracked.item() == 1 + updates          # the realistic batch, then the iteration's
        shape = batch_shapes[m]
        n = int(np.prod(shape)) // shape[1]                           # values per channel: 2N or 2N*H*W
        mean, var = (w.numpy() for w in layer.weights[2:])
        np.testing.assert_allclose(mean - decay * old_mean, m.running_mean.numpy() - decay * old_mean,
                                   rtol=1e-3, atol=1e-6 + bias_bound)
        torch_share = m.running_var.numpy() - decay * old_var
        assert (torch_share > 0).all()
        np.testing.assert_allclose(var - decay * old_var, torch_share * (n - 1) / n, rtol=1e-3, atol=1e-7)
