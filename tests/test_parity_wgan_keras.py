"""The Keras 3 WGAN and WGAN-GP are the PyTorch ones and their train steps
(issue 12, WGAN_SPEC.md, DESIGN.md section 7).

For the WGAN (the DCGAN networks at 32x32) and the WGAN-GP (the ResNet, at
width 8, with layer norm and without):

- the same layers with the same parameter counts (PyTorch's, counted here),
  the same output shapes, the same model_info;
- with the PyTorch weights copied into the Keras layers (G's BatchNorm with
  non-trivial gamma, beta and running statistics, the critic's layer-norm
  gains and offsets away from 1 and 0), the same G(z) in inference mode
  and the same critic scores (max-abs difference below 1e-4, float32);
- from identical weights, real batches, z and eps, two full iterations
  (n_critic 5 critic steps, clipping or penalty included, then the G step)
  give the same metrics (2e-4 relative) and the same weight updates (within
  UPDATE_TOLERANCE, measured); G's BatchNorm moving statistics show that G
  ran in training mode at every critic step and at the G step, as in the
  PyTorch version (Keras' moving variance takes the biased batch variance);
- the RMSprop of wgan_keras.py is torch.optim.RMSprop (eps outside the
  sqrt), which Keras' own RMSprop is not;
- the layer norm of wgan_gp_keras.py has GroupNorm(1, C)'s second
  derivatives (the penalty's update needs them), which Keras'
  GroupNormalization has not.

Layouts (tests/convert.py): Dense kernel = Linear weight transposed, conv
kernels OIHW -> HWIO, transposed conv (I, O, kh, kw) -> (kh, kw, O, I),
BatchNorm [gamma, beta, moving mean, moving variance] = [weight, bias,
running_mean, running_var], the Keras script's LayerNorm [gamma, beta] =
GroupNorm(1, C) [weight, bias].  Both versions read G's Dense units as an NHWC map and
flatten the critic's map in NHWC order, so no row or column permutation.
The WGAN's layers pair up in order (Sequential models), the WGAN-GP's by
name (the Keras layers are named after the PyTorch modules).
"""
import itertools
import re

import numpy as np
import pytest

from common import wgan
from tests.conftest import load_script
from tests.convert import torch_to_tf_conv, torch_to_tf_deconv, torch_to_tf_dense

torch = pytest.importorskip("torch")

CPU = "/cpu:0"
TOLERANCE = 1e-4                # max-abs, outputs in inference mode
METRICS_RTOL = 2e-4             # the metrics of a training iteration
# relative difference of the weight updates after two iterations, per
# network (measured, see test_same_training_iterations)
UPDATE_TOLERANCE = {("wgan", "generator"): 1e-2, ("wgan", "critic"): 1e-4,
                    ("wgan_gp", "generator"): 2e-4, ("wgan_gp", "critic"): 1e-4}
# G's biases right before a training-mode BatchNorm: their gradient is 0 in
# exact arithmetic (the BatchNorm subtracts any per-channel constant), in
# float32 it is rounding noise, which RMSProp and Adam (both divide by the
# gradient's own running size) turn into small steps of random sign, in
# PyTorch as in Keras.  Left out of the update comparison.
CANCELLED_BIASES = {"wgan": r"(dense\.0|deconvs\.[03])\.bias", "wgan_gp": r"blocks\.\d\.(conv1|conv2|shortcut)\.bias"}
BATCH = 8
N_CRITIC = 5
WIDTH = 8                       # the WGAN-GP's --width here (128 in the paper)
CLIP = 0.01
GP_WEIGHT = 10.0
BN_TYPES = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)
NETWORK_CASES = [("wgan", (32, 32, 1), None), ("wgan", (32, 32, 3), None),
                 ("wgan_gp", (32, 32, 3), "layer"), ("wgan_gp", (32, 32, 1), "none")]
NETWORK_IDS = ["wgan-32x32x1", "wgan-32x32x3", "wgan_gp-32x32x3-layer", "wgan_gp-32x32x1-none"]


def build_pair(question, image_shape, norm, seed=3):
    """(PyTorch networks, Keras networks): (generator, critic, g_optimizer, c_optimizer) each."""
    pt, ks = load_script(question, "pytorch"), load_script(question, "keras")
    if question == "wgan":
        lr = 5e-5
        return (pt.build_model(image_shape, gan_z_dim(question), seed, lr, torch.device("cpu")),
                ks.build_model(image_shape, gan_z_dim(question), seed, lr, CPU))
    lr = 1e-4
    return (pt.build_model(image_shape, gan_z_dim(question), WIDTH, norm, seed, lr, torch.device("cpu")),
            ks.build_model(image_shape, gan_z_dim(question), WIDTH, norm, seed, lr, CPU))


def gan_z_dim(question):
    return 100 if question == "wgan" else load_script("wgan_gp", "pytorch").Z_DIM


def torch_layers(network):
    """(name, module) of the PyTorch modules that hold parameters, in order."""
    return [(name, m) for name, m in network.named_modules() if list(m.parameters(recurse=False))]


def keras_layers(network):
    """The Keras layers that hold weights, in order."""
    return [layer for layer in network.layers if layer.weights]


def paired_layers(question, torch_network, keras_network):
    """[(PyTorch module, Keras layer)]: in order (WGAN) or by name (WGAN-GP)."""
    modules = torch_layers(torch_network)
    if question == "wgan":
        return [(m, layer) for (_, m), layer in zip(modules, keras_layers(keras_network), strict=True)]
    assert len(modules) == len(keras_layers(keras_network))
    return [(m, keras_network.get_layer(name.replace(".", "_"))) for name, m in modules]


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
    if isinstance(module, torch.nn.GroupNorm):
        return [w, b]
    raise TypeError(type(module).__name__)


def copy_weights(question, torch_networks, keras_networks):
    for torch_network, keras_network in zip(torch_networks[:2], keras_networks[:2], strict=True):
        for module, layer in paired_layers(question, torch_network, keras_network):
            values = keras_values(module)
            assert [v.shape for v in values] == [tuple(w.shape) for w in layer.weights], layer.name
            layer.set_weights(values)


def trainable_values(question, torch_network, keras_network, side):
    """A network's trainable parameters {PyTorch name: values in Keras' layout}, of the ``side`` network."""
    names = {m: name for name, m in torch_network.named_modules()}
    values = {}
    for m, layer in paired_layers(question, torch_network, keras_network):
        arrays = keras_values(m)[:2] if side == "torch" else [w.numpy() for w in layer.trainable_weights]
        values.update({f"{names[m]}.{kind}": np.array(a) for kind, a in zip(("weight", "bias"), arrays, strict=True)})
    return values


def non_trivial_weights(torch_networks, z, rng):
    """G's BatchNorm: gamma and beta away from 1 and 0 and the running
    statistics of one train-mode batch; the critic's layer norm: gains and
    offsets away from 1 and 0, so that a mistake in a layout, an eps or a
    statistic shows.  BatchNorm's momentum is put back for training."""
    generator, critic = torch_networks[:2]
    bns = [m for m in generator.modules() if isinstance(m, BN_TYPES)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None            # a plain average: the statistics of the one batch below
    for m in itertools.chain(bns, (m for m in critic.modules() if isinstance(m, torch.nn.GroupNorm))):
        m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.weight.shape).astype(np.float32))
        m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.bias.shape).astype(np.float32))
    generator.train()
    with torch.no_grad():
        generator(torch.from_numpy(z))
    for m in bns:
        m.momentum = 1 - load_script("wgan", "pytorch").BN_DECAY   # torch momentum = 1 - decay


@pytest.mark.parametrize("question,image_shape,norm", NETWORK_CASES, ids=NETWORK_IDS)
def test_same_networks(question, image_shape, norm):
    pt, ks = load_script(question, "pytorch"), load_script(question, "keras")
    torch_networks, keras_networks = build_pair(question, image_shape, norm)
    z_dim, rng = gan_z_dim(question), np.random.default_rng(1)
    # the same layers, the same parameter counts
    for name, torch_network, keras_network in zip(("generator", "critic"), torch_networks, keras_networks):
        pairs = paired_layers(question, torch_network, keras_network)
        for module, layer in pairs:
            assert sum(p.numel() for p in module.parameters(recurse=False)) == sum(
                int(np.prod(w.shape)) for w in layer.trainable_weights), (name, layer.name)
        assert sum(int(np.prod(w.shape)) for w in keras_network.trainable_weights) == sum(
            p.numel() for p in torch_network.parameters()), name
        n_bn = sum(isinstance(m, BN_TYPES) for m in torch_network.modules())
        assert len(keras_network.non_trainable_weights) == 2 * n_bn, name   # BatchNorm's moving mean and variance
    assert n_bn == 0                                                          # no BatchNorm in the critic
    if question == "wgan":
        assert ks.model_info(image_shape, z_dim) == pt.model_info(image_shape, z_dim)
    else:
        assert ks.model_info(image_shape, z_dim, WIDTH, norm) == pt.model_info(image_shape, z_dim, WIDTH, norm)
        n_norms = sum(isinstance(m, torch.nn.GroupNorm) for m in torch_networks[1].modules())
        assert n_norms == (6 if norm == "layer" else 0)

    # the same G(z) and critic scores, with PyTorch's weights in the Keras layers
    non_trivial_weights(torch_networks, wgan.z_draw(pt.NOISE)(64, z_dim, 5, 0), rng)
    copy_weights(question, torch_networks, keras_networks)
    z = wgan.z_draw(pt.NOISE)(6, z_dim, 0, 1)
    expected, got = pt.generate(torch_networks[0], z, "cpu"), ks.generate(keras_networks[0], z, CPU)
    assert got.shape == expected.shape == (6, *image_shape)
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()   # measured: 8e-7 to 2e-6
    assert got.std() > 0.01                                                   # not trivially equal
    images = np.concatenate([rng.uniform(-1, 1, (4, *image_shape)).astype(np.float32), got])
    expected, got = pt.criticize(torch_networks[1], images, "cpu"), ks.criticize(keras_networks[1], images, CPU)
    assert got.shape == expected.shape == (10, 1)
    # relative to the largest score: the WGAN critic's scores are about 0.01 at N(0, 0.02) weights
    # (measured: 4e-9 and 9e-9 for the WGAN, 2e-8 and 2e-7 for the WGAN-GP, max-abs)
    assert np.abs(got - expected).max() < TOLERANCE * np.abs(expected).max(), np.abs(got - expected).max()
    assert np.ptp(got) > 1e-3 * np.abs(got).max() > 0


def test_same_initialisation_rule():
    # freshly built: the rules, not the same draws
    keras = pytest.importorskip("keras")
    ks = load_script("wgan", "keras")
    generator, critic, g_optimizer, c_optimizer = ks.build_model((32, 32, 3), 100, 4, 5e-5, CPU)
    for network in (generator, critic):
        for layer in keras_layers(network):
            values = [w.numpy() for w in layer.weights]
            if len(values) == 4:                                              # BatchNorm
                gamma, beta, mean, var = values
                assert (gamma == 1).all() and (beta == 0).all() and (mean == 0).all() and (var == 1).all()
                assert (layer.momentum, layer.epsilon) == (0.9, 1e-5)
                continue
            w, b = values
            assert not b.any(), layer.name
            assert w.size >= 800 and abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002, layer.name
    assert [layer.negative_slope for layer in critic.layers if hasattr(layer, "negative_slope")] == [0.2] * 3
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in critic.layers)
    for optimizer in (g_optimizer, c_optimizer):
        assert isinstance(optimizer, ks.RMSprop)
        assert (float(optimizer.learning_rate), optimizer.rho, optimizer.epsilon, optimizer.momentum,
                optimizer.centered) == (pytest.approx(5e-5), 0.99, 1e-8, 0.0, False)
        assert all(not v.numpy().any() for v in optimizer._velocities)       # v starts at 0

    gp = load_script("wgan_gp", "keras")
    generator, critic, g_optimizer, c_optimizer = gp.build_model((32, 32, 3), 128, 16, "layer", 4, 1e-4, CPU)
    for network in (generator, critic):
        for layer in keras_layers(network):
            values = [w.numpy() for w in layer.weights]
            if isinstance(layer, keras.layers.BatchNormalization):
                assert (layer.momentum, layer.epsilon) == (0.9, 1e-5)
                assert (values[0] == 1).all() and not values[1].any()
            elif isinstance(layer, gp.LayerNorm):
                assert gp.LN_EPS == 1e-5
                assert values[0].shape == (16,) and (values[0] == 1).all() and not values[1].any()   # per channel
            else:
                w, b = values
                assert not b.any(), layer.name
                fan_in, fan_out = np.prod(w.shape[:-1]), np.prod(w.shape[:-2]) * w.shape[-1]   # the taps count
                limit = np.sqrt(6 / (fan_in + fan_out))
                assert np.abs(w).max() <= limit and (w.size < 200 or np.abs(w).max() > 0.9 * limit), layer.name
    for optimizer in (g_optimizer, c_optimizer):
        assert (float(optimizer.learning_rate), optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (
            pytest.approx(1e-4), 0.0, 0.9, 1e-8)


def test_rmsprop_is_torch_rmsprop():
    # gradients from 1e-7 to 1: the eps placement shows on the small ones
    keras = pytest.importorskip("keras")
    ks = load_script("wgan", "keras")
    rng = np.random.default_rng(0)
    start = rng.normal(0, 0.02, 8).astype(np.float32)
    grads = [(rng.normal(0, 1, 8) * 10.0 ** -np.arange(8)).astype(np.float32) for _ in range(3)]
    parameter = torch.nn.Parameter(torch.from_numpy(start.copy()))
    optimizer = torch.optim.RMSprop([parameter], lr=5e-5, alpha=0.99, eps=1e-8, momentum=0.0, centered=False)
    for g in grads:
        parameter.grad = torch.from_numpy(g)
        optimizer.step()
    expected = parameter.detach().numpy() - start

    def keras_update(optimizer):
        variable = keras.Variable(start.copy())
        for g in grads:
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
        return variable.numpy() - start
    ours = keras_update(ks.RMSprop(learning_rate=5e-5, rho=0.99, epsilon=1e-8, momentum=0.0, centered=False))
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    theirs = keras_update(keras.optimizers.RMSprop(learning_rate=5e-5, rho=0.99, epsilon=1e-8))
    assert np.abs(theirs - expected).max() > 0.5 * np.abs(expected[4:]).max()   # eps inside the sqrt


def keras_adam_eps(optimizer, eps, beta2):
    """Keras' Adam adds eps to sqrt(v) before the bias correction, PyTorch's
    to sqrt(v_hat) after it (DESIGN.md section 7): Keras' step t is
    PyTorch's with eps / sqrt(1 - beta2^t).  Wraps the PyTorch optimizer's
    step so that its step t uses that eps (the critic's optimizer steps
    n_critic times per iteration, G's once)."""
    step, count = optimizer.step, itertools.count(1)

    def aligned_step(*args, **kwargs):
        t = next(count)
        for group in optimizer.param_groups:
            group["eps"] = eps / np.sqrt(1.0 - beta2 ** t)
        return step(*args, **kwargs)
    optimizer.step = aligned_step


def iteration_inputs(question, image_shape, iteration):
    """The inputs of one iteration, drawn in the training loop's order:
    n_critic real batches, n_critic z, eps (once for the WGAN's measure,
    n_critic for the WGAN-GP), G's z."""
    rng = np.random.default_rng(10 + iteration)
    real_batches = [rng.uniform(-1, 1, (BATCH, *image_shape)).astype(np.float32) for _ in range(N_CRITIC)]
    z_dim = gan_z_dim(question)
    z_sampler = (wgan.ZSampler if question == "wgan" else wgan.NormalZSampler)(z_dim, 20 + iteration)
    mix_sampler = wgan.MixSampler(20 + iteration)
    critic_z = [z_sampler(BATCH) for _ in range(N_CRITIC)]
    eps = mix_sampler(BATCH) if question == "wgan" else [mix_sampler(BATCH) for _ in range(N_CRITIC)]
    return real_batches, critic_z, eps, z_sampler(BATCH)


def torch_inputs(question, inputs):
    pt = load_script(question, "pytorch")
    real_batches, critic_z, eps, g_z = inputs
    eps = torch.from_numpy(eps) if question == "wgan" else [torch.from_numpy(e) for e in eps]
    return [pt.to_nchw(r) for r in real_batches], [torch.from_numpy(z) for z in critic_z], eps, torch.from_numpy(g_z)


@pytest.mark.parametrize("question", ["wgan", "wgan_gp"])
def test_same_training_iterations(question):
    image_shape = (32, 32, 3)
    pt, ks = load_script(question, "pytorch"), load_script(question, "keras")
    torch_networks, keras_networks = build_pair(question, image_shape, "layer")
    rng = np.random.default_rng(2)
    non_trivial_weights(torch_networks, wgan.z_draw(pt.NOISE)(64, gan_z_dim(question), 5, 0), rng)
    if question == "wgan":
        # the critic's biases start outside +-clip, so that clipping them (not only the kernels) shows
        for m in torch_networks[1].modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.bias.data = torch.from_numpy(rng.choice([-1, 1], m.bias.shape).astype(np.float32) * 3 * CLIP)
        torch_step = pt.make_train_step(*torch_networks, clip=CLIP)
        keras_step = ks.make_train_step(*keras_networks, clip=CLIP)
    else:
        for optimizer in torch_networks[2:]:
            keras_adam_eps(optimizer, ks.ADAM_EPS, ks.ADAM_BETAS[1])
        torch_step = pt.make_train_step(*torch_networks, gp_weight=GP_WEIGHT)
        keras_step = ks.make_train_step(*keras_networks, gp_weight=GP_WEIGHT)
    copy_weights(question, torch_networks, keras_networks)
    pairs = list(zip(("generator", "critic"), torch_networks, keras_networks))
    start = [trainable_values(question, t, k, "keras") for _, t, k in pairs]
    for name, values in trainable_values(question, torch_networks[0], keras_networks[0], "torch").items():
        np.testing.assert_array_equal(start[0][name], values)
    bn_before = [(m.running_mean.clone().numpy(), m.running_var.clone().numpy())
                 for m in torch_networks[0].modules() if isinstance(m, BN_TYPES)]
    fields = [f for f in wgan.FIELDS[question] if f != "clip_fraction"]
    for iteration in range(2):
        inputs = iteration_inputs(question, image_shape, iteration)
        expected = torch_step(*torch_inputs(question, inputs))
        got = keras_step(*inputs)
        assert sorted(got) == sorted(fields)
        for key in fields:
            assert got[key] == pytest.approx(expected[key], rel=METRICS_RTOL, abs=1e-7), (iteration, key, got, expected)
    # After two iterations: the same updates of every weight, to float32
    # rounding.  Measured (relative norm of the difference of the updates):
    # critics 1.2e-6 (WGAN) and 3e-6 (WGAN-GP); the WGAN-GP G 1.2e-5; the
    # WGAN G 1.9e-3, which is PyTorch's own spread: PyTorch with 2 threads
    # against 1 thread differs by as much (1.9e-3; float64 against float32
    # 1.2e-5), and Keras is within 3e-5 of PyTorch with 2 threads.  A wrong
    # optimizer setting (TF 1's RMSProp v starting at 1, eps inside the
    # sqrt) or a wrong penalty gradient is 1e-2 to 1 (see the report).
    for (name, torch_network, keras_network), before in zip(pairs, start):
        after = [trainable_values(question, torch_network, keras_network, side) for side in ("torch", "keras")]
        kept = [key for key in before if not re.fullmatch(CANCELLED_BIASES[question], key)]
        torch_update, keras_update = (np.concatenate([(values[key] - before[key]).ravel() for key in kept])
                                      for values in after)
        difference = np.linalg.norm(keras_update - torch_update) / np.linalg.norm(torch_update)
        print(f"{question} {name}: relative difference of the updates {difference:.2e}")
        assert difference < UPDATE_TOLERANCE[question, name], (name, difference)
    check_moving_statistics(question, torch_networks[0], keras_networks[0], bn_before, 2 * (N_CRITIC + 1))
    if question == "wgan":                                  # every critic parameter clipped, G's not
        critic_values = [w.numpy() for w in keras_networks[1].trainable_weights]
        assert max(np.abs(v).max() for v in critic_values) <= CLIP
        assert all(np.isin(np.abs(v), np.float32(CLIP)).any() for v in critic_values[1::2])   # biases at the bounds
        assert wgan.clip_fraction(critic_values, CLIP) == pytest.approx(
            wgan.clip_fraction([p.detach().numpy() for p in torch_networks[1].parameters()], CLIP), abs=1e-3)
        assert max(np.abs(w.numpy()).max() for w in keras_networks[0].trainable_weights) > CLIP
    # every graph was traced once (n_critic calls of the critic step, 2 iterations)
    assert [graph.experimental_get_tracing_count() for graph in keras_step.graphs] == [1] * len(keras_step.graphs)


def check_moving_statistics(question, torch_generator, keras_generator, before, updates):
    """After ``updates`` train-mode passes of G: moving = 0.9^updates * old +
    the batch statistics' share.  The mean is the same in both; Keras'
    variance share is PyTorch's (unbiased) times (n - 1) / n (biased), n
    values per channel, in every pass.  The means to 2e-4: G's
    CANCELLED_BIASES take steps of rounding noise (below 1e-4), which move
    the batch means of the BatchNorm after them, not its output."""
    pairs = [(m, layer) for m, layer in paired_layers(question, torch_generator, keras_generator)
             if isinstance(m, BN_TYPES)]
    assert len(pairs) == len(before) > 0
    torch_bns = [m for m, _ in pairs]
    batch_shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: batch_shapes.append(i[0].shape)) for m in torch_bns]
    try:
        with torch.no_grad():
            torch_generator.eval()(torch.zeros(BATCH, gan_z_dim(question)))
    finally:
        for hook in hooks:
            hook.remove()
    decay = 0.9 ** updates
    for (m, layer), (old_mean, old_var), shape in zip(pairs, before, batch_shapes, strict=True):
        assert m.num_batches_tracked.item() == 1 + updates         # the realistic batch, then the iterations'
        n = int(np.prod(shape)) // shape[1]                         # values per channel: N (1-d) or N*H*W
        mean, var = (w.numpy() for w in layer.weights[2:])
        np.testing.assert_allclose(mean - decay * old_mean, m.running_mean.numpy() - decay * old_mean,
                                   rtol=1e-3, atol=2e-4)
        torch_share = m.running_var.numpy() - decay * old_var
        assert (torch_share > 0).all()
        np.testing.assert_allclose(var - decay * old_var, torch_share * (n - 1) / n, rtol=1e-3, atol=1e-6)


def test_the_layer_norm_has_pytorch_second_derivatives():
    # The penalty differentiates the critic's input gradient again.  The
    # script's LayerNorm gives GroupNorm(1, C)'s gradient of a gradient;
    # Keras' GroupNormalization(groups=1) gives its outputs and gradients
    # but not that (tf.nn.moments stops the gradient at the mean), which is
    # why the script writes the layer norm out.  The missing term shows
    # where the layer norm's input also goes around it, as into a residual
    # block's shortcut (here x ** 2).  If this starts to fail on the
    # GroupNormalization line, Keras has fixed it.
    keras = pytest.importorskip("keras")
    import tensorflow as tf
    gp = load_script("wgan_gp", "keras")
    rng = np.random.default_rng(0)
    x, w = rng.normal(0, 1, (2, 4, 4, 3)), rng.normal(0, 1, (2, 4, 4, 3))
    gain, offset = rng.uniform(0.5, 1.5, 3), rng.uniform(-0.5, 0.5, 3)

    norm = torch.nn.GroupNorm(1, 3, eps=gp.LN_EPS).double()
    norm.weight.data, norm.bias.data = torch.from_numpy(gain), torch.from_numpy(offset)
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    (g,) = torch.autograd.grad(((norm(x_t) ** 3 + x_t ** 2) * torch.from_numpy(w.transpose(0, 3, 1, 2))).sum(),
                               x_t, create_graph=True)
    (g.square().sum()).backward()
    expected = [x_t.grad.numpy().transpose(0, 2, 3, 1), norm.weight.grad.numpy(), norm.bias.grad.numpy()]

    def second_derivatives(layer):
        layer.build((None, 4, 4, 3))
        layer.set_weights([gain, offset])
        x_k = tf.constant(x)
        with tf.GradientTape() as outer:
            outer.watch(x_k)
            with tf.GradientTape() as inner:
                inner.watch(x_k)
                total = tf.reduce_sum((layer(x_k) ** 3 + x_k ** 2) * w)
            penalty = tf.reduce_sum(tf.square(inner.gradient(total, x_k)))
        return [v.numpy() for v in outer.gradient(penalty, [x_k, *layer.trainable_weights])]

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        ours = second_derivatives(gp.LayerNorm())
        theirs = second_derivatives(keras.layers.GroupNormalization(groups=1, axis=-1, epsilon=gp.LN_EPS))
    finally:
        keras.config.set_dtype_policy(policy)
    for got, want in zip(ours, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)
    # GroupNormalization: 8e-4 relative here (float64 rounding is 1e-15), 1-10% in the critic's gradients
    assert max(np.abs(got - want).max() / np.abs(want).max() for got, want in zip(theirs, expected)) > 1e-5
