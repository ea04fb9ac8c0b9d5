"""The Keras 3 pix2pix and pix2pix_gp are the PyTorch ones and their train
steps (issue 13, DESIGN.md section 7).

For both questions (pix2pix: D with BatchNorm and no bias before it;
pix2pix_gp: D without BatchNorm, every conv with a bias), tiny (--width 2,
32x32 pairs, batch 4):

- the same layers with the same parameter counts, layer by layer and in
  total, also at the question's size (--width 32, 64x64: PARAMETERS of
  tests/test_answers_pix2pix.py), the same output shapes (G (N, S, S, O),
  D a (S/8 - 2) x (S/8 - 2) map of patch logits: 6x6 at 64x64), the same
  model_info, the same explicit settings (N(0, 0.02) kernels, zero biases,
  no bias before a BatchNorm, BatchNorm eps 1e-5 and decay 0.9, LeakyReLU
  0.2, 'valid' convs after explicit zero padding, Adam 2e-4, (0.5, 0.999),
  eps 1e-8);
- with the PyTorch weights copied into the Keras layers (every BatchNorm
  with gamma and beta away from 1 and 0 and the running statistics of one
  train-mode batch), the same G(x) in inference mode and the same patch
  logits D(x, y) (pix2pix's D with its BatchNorm in inference mode), max-abs
  difference below 1e-4 (float32);
- from identical weights and batches (and eps for pix2pix_gp: n_critic D
  steps, each on its own batch, then the G step on one more), two full
  iterations give the same metrics (2e-4 relative) and the same weight
  updates (within UPDATE_TOLERANCE, measured); the BatchNorm moving
  statistics show how often each network ran in training mode (pix2pix:
  G once and D three times per iteration; pix2pix_gp: G n_critic + 1
  times), with Keras' moving variance taking the biased batch variance
  (PyTorch the unbiased); --gan-weight 0 (pix2pix, the L1-only U-Net)
  likewise, D untouched.  PyTorch's Adam steps with Keras' eps placement
  (before the bias correction: keras_adam_eps of
  tests/test_parity_wgan_keras.py), which moves these tiny networks'
  updates by far more than rounding.

Layouts (tests/convert.py): conv kernels OIHW -> HWIO, transposed conv
(I, O, kh, kw) -> (kh, kw, O, I), BatchNorm [gamma, beta, moving mean,
moving variance] = [weight, bias, running_mean, running_var].  The Keras
layers are named after the PyTorch modules (downs.0.3 -> downs_0_3,
net.2 -> net_2), so the weights pair up by name; both concatenate
[up-sampled, skip] in G and [input, output] in D along the channels, so no
channel permutation.
"""
from argparse import Namespace

import numpy as np
import pytest

from common import pix2pix
from tests.conftest import load_script
from tests.convert import torch_to_tf_conv, torch_to_tf_deconv
from tests.test_answers_pix2pix import PARAMETERS
from tests.test_parity_wgan_keras import keras_adam_eps

torch = pytest.importorskip("torch")

CPU = "/cpu:0"
QUESTIONS = ("pix2pix", "pix2pix_gp")
TOLERANCE = 1e-4                # max-abs, outputs in inference mode
METRICS_RTOL = 2e-4             # the metrics of a training iteration
# relative difference of the weight updates after two iterations, per network
# (measured, see test_same_training_iterations)
UPDATE_TOLERANCE = {"generator": 1e-3, "discriminator": 1e-3}
SIZE, WIDTH, BATCH, N_CRITIC, LR = 32, 2, 4, 2, 2e-4
GP_WEIGHT, L1_WEIGHT = 10.0, 100.0
PALETTE = np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0], [0, 0, 128]], np.uint8)
NAMES = ["background", "akahara", "madara", "blue"]
# (question, direction, classes): G's channels (3, 4), (2, 3), (3, 3), (3, 3)
NETWORK_CASES = [("pix2pix", "photo2mask", 4), ("pix2pix", "mask2photo", 2), ("pix2pix_gp", "photo2mask", 3),
                 ("pix2pix_gp", "mask2photo", 3)]
NETWORK_IDS = [f"{q}-{d}-{k}classes" for q, d, k in NETWORK_CASES]


def model_info(question, direction="photo2mask", n_classes=3, width=WIDTH, size=SIZE):
    args = Namespace(size=size, direction=direction, width=width)
    return load_script(question, "pytorch").model_info(args, PALETTE[:n_classes], NAMES[:n_classes])


def build_pair(question, info, seed=3):
    """(PyTorch networks, Keras networks): (generator, discriminator, g_optimizer, d_optimizer) each."""
    pt, ks = load_script(question, "pytorch"), load_script(question, "keras")
    return pt.build_model(info, seed, LR, torch.device("cpu")), ks.build_model(info, seed, LR, CPU)


def keras_layers(network):
    """The Keras layers that hold weights, in order."""
    return [layer for layer in network.layers if layer.weights]


def paired_layers(torch_network, keras_network):
    """[(PyTorch name, module, Keras layer)], paired by name (downs.0.3 -> downs_0_3)."""
    modules = [(name, m) for name, m in torch_network.named_modules() if list(m.parameters(recurse=False))]
    assert len(modules) == len(keras_layers(keras_network))
    return [(name, m, keras_network.get_layer(name.replace(".", "_"))) for name, m in modules]


def keras_values(module):
    """A PyTorch module's parameters (and BatchNorm statistics) in the
    layout of the matching Keras layer's weights."""
    w = module.weight.detach().numpy()
    b = [] if module.bias is None else [module.bias.detach().numpy()]
    if isinstance(module, torch.nn.ConvTranspose2d):
        return [torch_to_tf_deconv(w), *b]
    if isinstance(module, torch.nn.Conv2d):
        return [torch_to_tf_conv(w), *b]
    if isinstance(module, torch.nn.BatchNorm2d):
        return [w, *b, module.running_mean.numpy(), module.running_var.numpy()]
    raise TypeError(type(module).__name__)


def copy_weights(torch_networks, keras_networks):
    for torch_network, keras_network in zip(torch_networks[:2], keras_networks[:2], strict=True):
        for name, module, layer in paired_layers(torch_network, keras_network):
            values = keras_values(module)
            assert [v.shape for v in values] == [tuple(w.shape) for w in layer.weights], name
            layer.set_weights(values)


def trainable_values(torch_network, keras_network, side):
    """{PyTorch parameter name: values in Keras' layout} of the ``side`` network."""
    values = {}
    for name, module, layer in paired_layers(torch_network, keras_network):
        kinds = [kind for kind, _ in module.named_parameters(recurse=False)]
        arrays = (keras_values(module)[:len(kinds)] if side == "torch"
                  else [w.numpy() for w in layer.trainable_weights])
        values.update({f"{name}.{kind}": np.array(a) for kind, a in zip(kinds, arrays, strict=True)})
    return values


def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(0, 3, 1, 2)


def random_pairs(info, rng, n=BATCH):
    """(inputs, targets) NHWC float32 in [-1, 1]: uniform photos, one-hot masks of random class maps."""
    classes = rng.integers(0, len(info["palette"]), (n, info["size"], info["size"]))
    photos = rng.uniform(-1, 1, (n, info["size"], info["size"], 3)).astype(np.float32)
    return pix2pix.network_pairs(photos, classes, info["direction"], len(info["palette"]))


def bn_modules(network):
    return [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def non_trivial_weights(torch_networks, info, rng, d_gain=5.0):
    """Every bias uniform in +-0.1 (not 0, so that a bias in the wrong
    place shows); every BatchNorm of G and D: gamma and beta away from 1 and
    0, the running statistics of one train-mode batch (a plain average), so
    that a mistake in a layout, an eps or a statistic shows; the momentum
    is put back for training.  D without BatchNorm (pix2pix_gp): its
    kernels times ``d_gain``, so that its logits are not all near 0."""
    generator, discriminator = torch_networks[:2]
    for network in (generator, discriminator):
        for m in network.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.bias is not None:
                m.bias.data = torch.from_numpy(rng.uniform(-0.1, 0.1, m.bias.shape).astype(np.float32))
    if not bn_modules(discriminator):
        for m in discriminator.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.data *= d_gain
    bns = bn_modules(generator) + bn_modules(discriminator)
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.num_features).astype(np.float32))
        m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.num_features).astype(np.float32))
    inputs, targets = (nchw(a) for a in random_pairs(info, rng, 16))
    with torch.no_grad():
        generator.train()(inputs)
        discriminator.train()(inputs, targets)
    for m in bns:
        m.momentum = 1 - load_script("pix2pix", "pytorch").BN_DECAY   # torch momentum = 1 - decay


def torch_logits(discriminator, inputs, outputs):
    with torch.no_grad():
        return discriminator.eval()(nchw(inputs), nchw(outputs)).permute(0, 2, 3, 1).numpy()


def keras_logits(discriminator, inputs, outputs):
    return discriminator([inputs, outputs], training=False).numpy()


@pytest.mark.parametrize("question,direction,n_classes", NETWORK_CASES, ids=NETWORK_IDS)
def test_same_networks(question, direction, n_classes):
    pt, ks = load_script(question, "pytorch"), load_script(question, "keras")
    info = model_info(question, direction, n_classes)
    args = Namespace(size=SIZE, direction=direction, width=WIDTH)
    assert ks.model_info(args, PALETTE[:n_classes], NAMES[:n_classes]) == info
    torch_networks, keras_networks = build_pair(question, info)
    # the same layers, the same parameter counts; BatchNorm's moving statistics are Keras' only other weights
    for name, torch_network, keras_network in zip(("generator", "discriminator"), torch_networks, keras_networks):
        for module_name, module, layer in paired_layers(torch_network, keras_network):
            assert sum(p.numel() for p in module.parameters(recurse=False)) == sum(
                int(np.prod(w.shape)) for w in layer.trainable_weights), (name, module_name)
        assert sum(int(np.prod(w.shape)) for w in keras_network.trainable_weights) == sum(
            p.numel() for p in torch_network.parameters()), name
        assert len(keras_network.non_trainable_weights) == 2 * len(bn_modules(torch_network)), name
    assert len(bn_modules(torch_networks[1])) == (3 if question == "pix2pix" else 0)

    # the same G(x) and D(x, y) in inference mode, with PyTorch's weights in the Keras layers
    rng = np.random.default_rng(1)
    non_trivial_weights(torch_networks, info, rng)
    copy_weights(torch_networks, keras_networks)
    inputs, targets = random_pairs(info, rng, 6)
    expected, got = pt.translate(torch_networks[0], inputs, "cpu"), ks.translate(keras_networks[0], inputs, CPU)
    assert got.shape == expected.shape == (6, SIZE, SIZE, info["out_channels"])
    print(f"{question} {direction}: G max-abs difference {np.abs(got - expected).max():.1e}")
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert got.std() > 0.01                                          # not trivially equal
    outputs = np.concatenate([targets[:3], got[3:]])                  # real and generated pairs
    expected = torch_logits(torch_networks[1], inputs, outputs)
    got = keras_logits(keras_networks[1], inputs, outputs)
    patches = SIZE // 8 - 2
    assert got.shape == expected.shape == (6, patches, patches, 1)
    print(f"{question} {direction}: D max-abs difference {np.abs(got - expected).max():.1e}, "
          f"logits {np.abs(expected).max():.2f} at most")
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert np.ptp(got) > 1e-3


@pytest.mark.parametrize("question", QUESTIONS)
def test_question_size_and_initialisation_rule(question):
    # --width 32, 64x64 pairs, 3 classes, freshly built: PyTorch's parameter
    # counts, a 6x6 map of patches, and the rules (not the same draws)
    keras = pytest.importorskip("keras")
    ks = load_script(question, "keras")
    generator, discriminator, g_optimizer, d_optimizer = ks.build_model(model_info(question, width=32, size=64), 4,
                                                                        LR, CPU)
    assert tuple(sum(int(np.prod(w.shape)) for w in network.trainable_weights)
                 for network in (generator, discriminator)) == PARAMETERS[question]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    outputs = ks.translate(generator, x, CPU)
    assert outputs.shape == (1, 64, 64, 3) and np.abs(outputs).max() <= 1
    assert keras_logits(discriminator, x, outputs).shape == (1, 6, 6, 1)
    for network in (generator, discriminator):
        for layer in keras_layers(network):
            values = [w.numpy() for w in layer.weights]
            if isinstance(layer, keras.layers.BatchNormalization):
                gamma, beta, mean, var = values
                assert (gamma == 1).all() and (beta == 0).all() and (mean == 0).all() and (var == 1).all()
                assert (layer.momentum, layer.epsilon) == (0.9, 1e-5)
                continue
            w, *b = values
            assert all(not v.any() for v in b), layer.name
            assert w.size < 800 or (abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002), layer.name
    slopes = [layer.negative_slope for layer in discriminator.layers if isinstance(layer, keras.layers.LeakyReLU)]
    assert slopes == [0.2] * 4
    # pix2pix: D's convs before a BatchNorm have no bias; pix2pix_gp: no BatchNorm, every conv a bias
    convs = [layer for layer in discriminator.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [layer.use_bias for layer in convs] == ([True, False, False, False, True] if question == "pix2pix"
                                                   else [True] * 5)
    assert all(layer.padding == "valid" for layer in convs)          # after an explicit ZeroPadding2D(1)
    for optimizer in (g_optimizer, d_optimizer):
        assert (float(optimizer.learning_rate), optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (
            pytest.approx(LR), 0.5, 0.999, 1e-8)


def iteration_inputs(question, info, iteration):
    """One iteration's batches: pix2pix one (inputs, targets); pix2pix_gp
    N_CRITIC batches for D, their eps, one batch for G (the loop's order)."""
    rng = np.random.default_rng(10 + iteration)
    if question == "pix2pix":
        return random_pairs(info, rng)
    d_batches = [random_pairs(info, rng) for _ in range(N_CRITIC)]
    mix_sampler = pix2pix.MixSampler(20 + iteration)
    return d_batches, [mix_sampler(BATCH) for _ in range(N_CRITIC)], random_pairs(info, rng)


def torch_inputs(question, inputs):
    if question == "pix2pix":
        return [nchw(a) for a in inputs]
    d_batches, eps, g_batch = inputs
    return ([tuple(nchw(a) for a in batch) for batch in d_batches], [torch.from_numpy(e) for e in eps],
            tuple(nchw(a) for a in g_batch))


TRAINING_CASES = [("pix2pix", 1.0), ("pix2pix", 0.0), ("pix2pix_gp", 1.0)]


@pytest.mark.parametrize("question,gan_weight", TRAINING_CASES, ids=["pix2pix", "pix2pix-gan_weight_0", "pix2pix_gp"])
def test_same_training_iterations(question, gan_weight):
    pt, ks = load_script(question, "pytorch"), load_script(question, "keras")
    info = model_info(question)
    torch_networks, keras_networks = build_pair(question, info)
    non_trivial_weights(torch_networks, info, np.random.default_rng(2))
    for optimizer in torch_networks[2:]:
        keras_adam_eps(optimizer, ks.ADAM_EPS, ks.ADAM_BETAS[1])
    weights = {"gan_weight": gan_weight, "l1_weight": L1_WEIGHT}
    if question == "pix2pix_gp":
        weights["gp_weight"] = GP_WEIGHT
    torch_step, keras_step = pt.make_train_step(*torch_networks, **weights), ks.make_train_step(*keras_networks,
                                                                                               **weights)
    copy_weights(torch_networks, keras_networks)
    pairs = list(zip(("generator", "discriminator"), torch_networks, keras_networks))
    start = [trainable_values(t, k, "keras") for _, t, k in pairs]
    for before, (_, t, k) in zip(start, pairs):
        for name, values in trainable_values(t, k, "torch").items():
            np.testing.assert_array_equal(before[name], values)
    bn_before = [[(m.running_mean.clone().numpy(), m.running_var.clone().numpy()) for m in bn_modules(t)]
                 for _, t, _ in pairs]
    fields = pix2pix.FIELDS[question] if gan_weight > 0 else ["g_loss", "g_l1"]
    for iteration in range(2):
        inputs = iteration_inputs(question, info, iteration)
        expected = torch_step(*torch_inputs(question, inputs))
        got = keras_step(*inputs)
        assert sorted(got) == sorted(expected) == sorted(fields)
        for key in fields:
            assert got[key] == pytest.approx(expected[key], rel=METRICS_RTOL, abs=1e-7), (iteration, key, got, expected)
    # After two iterations: the same updates of every weight, to float32
    # rounding.  Measured (relative norm of the difference of the updates):
    # pix2pix G 1.5e-5, D 3.0e-5; --gan-weight 0 G 1.4e-5; pix2pix_gp G
    # 2.0e-5, D 1.6e-5.  A wrong setting is far above the tolerance: Keras'
    # own Adam eps (1e-7) moves G's update by 0.39, the penalty without its
    # second derivatives, one batch for every D step, D judging G's fake
    # before its update or in inference mode change the metrics already.
    for (name, torch_network, keras_network), before in zip(pairs, start):
        after = [trainable_values(torch_network, keras_network, side) for side in ("torch", "keras")]
        torch_update, keras_update = (np.concatenate([(values[key] - before[key]).ravel() for key in before])
                                      for values in after)
        if name == "discriminator" and gan_weight == 0:
            assert not torch_update.any() and not keras_update.any()  # no D at all
            continue
        difference = np.linalg.norm(keras_update - torch_update) / np.linalg.norm(torch_update)
        print(f"{question} gan_weight {gan_weight} {name}: relative difference of the updates {difference:.2e}")
        assert difference < UPDATE_TOLERANCE[name], (name, difference)
    g_passes = {"pix2pix": 1, "pix2pix_gp": N_CRITIC + 1 if gan_weight > 0 else 1}[question]
    check_moving_statistics(torch_networks[0], keras_networks[0], bn_before[0], 2 * g_passes,
                            (nchw(np.zeros((BATCH, SIZE, SIZE, info["in_channels"]), np.float32)),))
    if question == "pix2pix":
        check_moving_statistics(torch_networks[1], keras_networks[1], bn_before[1], 2 * 3 if gan_weight > 0 else 0,
                                tuple(nchw(np.zeros((BATCH, SIZE, SIZE, info[k]), np.float32))
                                      for k in ("in_channels", "out_channels")))
    # every graph was traced once (n_critic calls of the D step, 2 iterations)
    graphs = getattr(keras_step, "graphs", None) or (keras_step.graph_step,)
    assert [graph.experimental_get_tracing_count() for graph in graphs] == [1] * len(graphs)


def check_moving_statistics(torch_network, keras_network, before, updates, sample):
    """After ``updates`` train-mode passes: moving = 0.9^updates * old + the
    batch statistics' share.  The means are the same in both; Keras'
    variance share is PyTorch's (unbiased) times (n - 1) / n (biased), n
    values per channel in every pass (``sample``: a batch of the training
    batches' shape, to find n)."""
    pairs = [(m, layer) for _, m, layer in paired_layers(torch_network, keras_network)
             if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(pairs) == len(before) > 0
    batch_shapes = {}                                               # (the U-Net runs up_blocks 3, 2, 1, 0)
    hooks = [m.register_forward_hook(lambda m, i, o: batch_shapes.update({m: i[0].shape})) for m, _ in pairs]
    try:
        with torch.no_grad():
            torch_network.eval()(*sample)
    finally:
        for hook in hooks:
            hook.remove()
    decay = 0.9 ** updates
    for (m, layer), (old_mean, old_var) in zip(pairs, before, strict=True):
        assert m.num_batches_tracked.item() == 1 + updates         # the realistic batch, then the iterations'
        shape = batch_shapes[m]
        n = int(np.prod(shape)) // shape[1]                         # values per channel: N*H*W
        mean, var = (w.numpy() for w in layer.weights[2:])
        np.testing.assert_allclose(mean - decay * old_mean, m.running_mean.numpy() - decay * old_mean,
                                   rtol=1e-3, atol=1e-6)
        torch_share = m.running_var.numpy() - decay * old_var
        if updates:                                                 # (0: a channel that ReLU left all zeros)
            assert (torch_share > -1e-8).all() and (torch_share > 1e-6).mean() > 0.5
        np.testing.assert_allclose(var - decay * old_var, torch_share * (n - 1) / n, rtol=1e-3, atol=1e-7)
