"""The Chainer pix2pix and pix2pix_gp are the PyTorch ones (issue 13): the
same parameter counts (test_answers_pix2pix.PARAMETERS) and output shapes,
the same outputs with the PyTorch weights copied into the Chainer links --
G in inference mode with non-trivial BatchNorm statistics, pix2pix's D with
its BatchNorms, pix2pix_gp's D without any, max-abs difference below 1e-4
-- and the same training: from identical weights and the same batches (and
eps), two full iterations (pix2pix: G(x) once, the D step, the G step
judged by the updated D; pix2pix_gp: n_critic D steps, each with G run on
its own batch and the penalty's double backprop, then the G step) give the
same metrics and the same weights.  That pins D's explicit padding (TF
'SAME' would make other maps), the concatenation orders ([up-sampled, skip]
in G, [input, output] into D), BN/bias placement, the halved D loss, the
per-sample penalty, Adam (eps aligned: align_adam_eps) and the BatchNorm
running averages (G once per pix2pix iteration, n_critic + 1 times per
pix2pix_gp iteration; pix2pix's D three times: real, fake, G's step).
Last, the training loops: two iterations of both programs leave the same
batch-order, augmentation and eps states in their checkpoints.

The two iterations run in float64 (both scripts' steps unchanged, the
networks cast after the copy), where float32 noise cannot hide a small
difference: metrics within 1e-9 relative and weight updates within
UPDATE_TOLERANCE[float64]; and in the scripts' float32, metrics within 2e-4
relative and the updates within UPDATE_TOLERANCE[float32]: with beta1 0.5
Adam's first step is about lr sign(g), so an entry whose gradient float32
rounding flips the sign of is a full step the other way (the measured
numbers are next to the tolerances).

Both frameworks are NCHW with the same weight layouts (Conv2d and
Convolution2D (O, I, kh, kw); ConvTranspose2d and Deconvolution2D
(I, O, kh, kw); BatchNorm weight, bias, running_mean, running_var = gamma,
beta, avg_mean, avg_var), so the copy is shape for shape, layer by layer in
network order.
"""
import json
from argparse import Namespace

import numpy as np
import pytest

from common import pix2pix
from tests.answers import run_in_process
from tests.conftest import load_script
from tests.fixtures import make_image_folder
from tests.test_answers_pix2pix import PARAMETERS
from tests.test_parity_gan_chainer import torch_layers
from tests.test_parity_wgan_chainer import align_adam_eps

torch = pytest.importorskip("torch")

QUESTIONS = ("pix2pix", "pix2pix_gp")
TOLERANCE = 1e-4
N_CRITIC = 2
SIZE, WIDTH, BATCH = 32, 2, 4           # the training parity: 2x2 patches, G 2..32 channels, D 4..32
CLASSES = 3
METRICS_RTOL = {np.float64: 1e-9, np.float32: 2e-4}
# Relative difference ||update_chainer - update_torch|| / ||update_torch|| of every weight after two
# iterations (weights from seed 3, batches from seed 5).  Measured: float64 below 3e-14 for both
# networks of both questions (and over 8 other seed pairs below 8e-14); float32 pix2pix G 9.0e-5,
# D 1.7e-5, pix2pix_gp G 9.1e-4, D 1.4e-6.  Over those 8 other seed pairs the float32 numbers
# spread over pix2pix G 1e-4 .. 0.21, D 9e-6 .. 0.05, pix2pix_gp G 9e-5 .. 6e-3, D 1e-6 .. 1e-5:
# float32 noise turned into whole Adam steps (PyTorch float32 against PyTorch float64 reaches 0.20
# on one of them).  Chainer is the noisier of the two: its convolutions return NHWC-strided arrays,
# which NumPy reduces without pairwise summation, so its float32 BatchNorm statistics are ~1e-5
# relative off (PyTorch's 1e-7) and, on one seed pair, its first G gradients 2-8% off float64
# (PyTorch's 1e-6).  Hence the loose float32 bounds; the float64 case is the exact one.
UPDATE_TOLERANCE = {np.float64: {"generator": 1e-8, "discriminator": 1e-8},
                    np.float32: {"generator": 0.05, "discriminator": 0.01}}
# BatchNorm running averages after the first iteration (float32: D's third update follows D's Adam
# step, whose float32 sign flips show; measured up to 2.5e-4 relative at 2e-6 absolute)
STATISTICS_TOLERANCE = {np.float64: {"rtol": 1e-9, "atol": 1e-12}, np.float32: {"rtol": 1e-3, "atol": 1e-5}}
KINDS = {"Conv2d": "Convolution2D", "ConvTranspose2d": "Deconvolution2D", "BatchNorm2d": "BatchNormalization"}
BN_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "avg_mean", "running_var": "avg_var"}
WEIGHT_NAMES = {"weight": "W", "bias": "b"}


def scripts(question):
    return load_script(question, "pytorch"), load_script(question, "chainer")


def info_of(question, size, width, direction="photo2mask"):
    args = Namespace(size=size, direction=direction, width=width)
    return scripts(question)[0].model_info(args, np.zeros((CLASSES, 3), np.uint8), ["a", "b", "c"])


def build_both(question, size, width, seed=3):
    pt, ch = scripts(question)
    info = info_of(question, size, width)
    return (pt.build_model(info, seed, 2e-4, torch.device("cpu")),
            ch.build_model(info, seed, 2e-4, ch.pick_device("cpu")))


def chainer_layers(link):
    """The links that hold parameters, in network order: a ChainList (and a
    Sequential) in its own order, a Chain in the order its links were
    assigned (vars keeps it; the Chain's own child set does not)."""
    import chainer
    children = list(link.children())
    if not children:
        return [link]
    if isinstance(link, chainer.ChainList):
        ordered = [layer for layer in link if isinstance(layer, chainer.Link)]
    else:
        ordered = [value for value in vars(link).values() if isinstance(value, chainer.Link)]
    assert sorted(map(id, ordered)) == sorted(map(id, children)), type(link).__name__
    return [leaf for child in ordered for leaf in chainer_layers(child)]


def layer_pairs(pt_network, ch_network):
    """(PyTorch module, Chainer link) of every layer with parameters, kinds and biases checked."""
    pairs = list(zip(torch_layers(pt_network), chainer_layers(ch_network), strict=True))
    for module, link in pairs:
        assert type(link).__name__ == KINDS[type(module).__name__], (module, link)
        if hasattr(link, "W"):
            assert (link.b is None) == (module.bias is None), (module, link)   # no bias before a BatchNorm
    return pairs


def names_of(link):
    return BN_NAMES if type(link).__name__ == "BatchNormalization" else WEIGHT_NAMES


def copy_network(pt_network, ch_network):
    """The PyTorch weights and BatchNorm statistics into the Chainer links, shape for shape."""
    for module, link in layer_pairs(pt_network, ch_network):
        state = module.state_dict()
        for name, chainer_name in names_of(link).items():
            if name not in state:                               # a conv without bias
                continue
            target = getattr(link, chainer_name)
            array = getattr(target, "array", target)            # a Parameter, or a persistent array
            assert array.shape == tuple(state[name].shape), (type(module).__name__, name)
            array[...] = state[name].detach().numpy()


def flat_parameters(network):
    """Every parameter of a PyTorch network or a Chainer link in network order, as one vector."""
    if isinstance(network, torch.nn.Module):
        return np.concatenate([p.detach().numpy().ravel() for m in torch_layers(network)
                               for p in m.parameters(recurse=False)])
    return np.concatenate([getattr(link, names_of(link)[name]).array.ravel() for link in chainer_layers(network)
                           for name in ("weight", "bias") if getattr(link, names_of(link)[name]) is not None])


def realistic_batchnorm(network, *batch, rng):
    """Running statistics of one batch (momentum None: a plain average) and
    gains/offsets away from 1/0, so that a layout or eps mistake shows."""
    for m in network.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
            m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.num_features).astype(np.float32))
            m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.num_features).astype(np.float32))
    network.train()
    with torch.no_grad():
        network(*(torch.from_numpy(a) for a in batch))


def pairs_batch(rng, n, size, dtype=np.float32):
    """Photos x (N, 3, S, S) in [-1, 1] and scaled one-hot masks y (N, 3, S, S), NCHW."""
    x = rng.uniform(-1, 1, (n, 3, size, size)).astype(np.float32)
    y = pix2pix.one_hot(rng.integers(0, CLASSES, (n, size, size)), CLASSES).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype), np.ascontiguousarray(y, dtype)


@pytest.mark.parametrize("question", QUESTIONS)
def test_bce_on_saturated_logits(question):
    # A confident D gives patch logits past 88, where exp(l) overflows float32: the loss and its
    # gradient must still be PyTorch's binary_cross_entropy_with_logits, without a NumPy overflow
    # (softplus(l) - target * l, the first version, warned in F.softplus's backward from the third
    # iteration of the pix2pix_gp answer run on).
    import warnings
    chainer_script = load_script(question, "chainer")
    logits = np.array([[-200.0, -90.0, -3.0, 0.0, 0.5, 90.0, 200.0]], np.float32)
    for target in (1.0, 0.0):
        variable = chainer_script.chainer.Variable(logits.copy())
        with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
            warnings.simplefilter("error")
            loss = chainer_script.bce(variable, target)
            loss.backward()
        torch_logits = torch.tensor(logits, requires_grad=True)
        torch_loss = torch.nn.functional.binary_cross_entropy_with_logits(
            torch_logits, torch.full_like(torch_logits, target))
        torch_loss.backward()
        assert np.isfinite(float(loss.array)) and float(loss.array) > 40     # (200 + 90 + ...) / 7
        assert float(loss.array) == pytest.approx(torch_loss.item(), rel=1e-6)
        np.testing.assert_allclose(variable.grad, torch_logits.grad.numpy(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("question", QUESTIONS)
def test_same_networks_and_outputs(question):
    pt, ch = scripts(question)
    # the question's networks (64x64, --width 32): PyTorch's parameter counts
    (pt_g, pt_d, *_), (ch_g, ch_d, *_) = build_both(question, 64, 32)
    assert (ch_g.count_params(), ch_d.count_params()) == PARAMETERS[question]
    assert (sum(p.numel() for p in pt_g.parameters()), sum(p.numel() for p in pt_d.parameters())) \
        == PARAMETERS[question]
    for size, width in ((64, 32), (48, 3), (32, 2)):
        info = info_of(question, size, width)
        assert ch.model_info(Namespace(size=size, direction="photo2mask", width=width), np.zeros((3, 3), np.uint8),
                             ["a", "b", "c"]) == info
    # the explicit settings: BN eps and decay, gamma 1, beta 0, N(0, 0.02) weights, zero biases
    for link in chainer_layers(ch_g) + chainer_layers(ch_d):
        if type(link).__name__ == "BatchNormalization":
            assert (link.eps, link.decay) == (pt.BN_EPS, pt.BN_DECAY) == (1e-5, 0.9)
            assert (link.gamma.array == 1).all() and not link.beta.array.any()
        else:
            assert link.b is None or not link.b.array.any()
            assert link.W.array.dtype == np.float32 and abs(link.W.array.std() / ch.INIT_STD - 1) < 0.1, link
    n_norms = sum(type(link).__name__ == "BatchNormalization" for link in chainer_layers(ch_d))
    assert n_norms == (3 if question == "pix2pix" else 0)
    assert ch.LEAKY_SLOPE == pt.LEAKY_SLOPE == 0.2 and (ch.D_KERNEL, ch.D_PAD) == (pt.D_KERNEL, pt.D_PAD)

    # a small copy at the question's size: PyTorch's weights in Chainer, the same outputs
    rng = np.random.default_rng(2)
    (pt_g, pt_d, *_), (ch_g, ch_d, *_) = build_both(question, 64, 4)
    x, y = pairs_batch(rng, 8, 64)
    realistic_batchnorm(pt_g, x, rng=rng)
    if question == "pix2pix":
        realistic_batchnorm(pt_d, x, y, rng=rng)
    else:   # no BatchNorm in this D: make its biases non-zero instead
        for m in pt_d.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.bias.data = torch.from_numpy(rng.uniform(-0.1, 0.1, m.bias.shape).astype(np.float32))
    copy_network(pt_g, ch_g)
    copy_network(pt_d, ch_d)
    device = ch.pick_device("cpu")
    x, y = pairs_batch(rng, 5, 64)
    photos = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    expected, got = pt.translate(pt_g, photos, "cpu"), ch.translate(ch_g, photos, device)   # inference mode
    assert got.shape == expected.shape == (5, 64, 64, CLASSES) and got.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert got.std() > 100 * TOLERANCE                                         # not trivially equal
    with torch.no_grad():
        expected = pt_d.eval()(*(torch.from_numpy(a) for a in (x, y))).numpy()
    with ch.chainer.using_config("train", False), ch.chainer.no_backprop_mode():
        got = ch_d(x, y).array
    assert got.shape == expected.shape == (5, 1, 6, 6) and got.dtype == np.float32     # 6x6 patches
    assert np.abs(got - expected).max() < TOLERANCE * max(1.0, np.abs(expected).max()), np.abs(got - expected).max()
    assert np.ptp(expected) > 10 * TOLERANCE * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("question", QUESTIONS)
def test_same_optimizers(question):
    (_, _, *pt_optimizers), (generator, discriminator, *ch_optimizers) = build_both(question, SIZE, WIDTH)
    for torch_optimizer, chainer_optimizer in zip(pt_optimizers, ch_optimizers):
        group = torch_optimizer.param_groups[0]
        assert type(chainer_optimizer).__name__ == "Adam" and isinstance(torch_optimizer, torch.optim.Adam)
        settings = [getattr(chainer_optimizer, name) for name in ("alpha", "beta1", "beta2", "eps")]
        assert tuple(settings) == (group["lr"], *group["betas"], group["eps"]) == (2e-4, 0.5, 0.999, 1e-8)
        assert chainer_optimizer.weight_decay_rate == group["weight_decay"] == 0 and not chainer_optimizer.amsgrad
    assert ch_optimizers[0].target is generator and ch_optimizers[1].target is discriminator


def to_float64(pt_networks, ch_networks):
    """Both networks in float64, the same (float32) starting values (optimizer states are made at the first step)."""
    for pt_network, ch_network in zip(pt_networks[:2], ch_networks[:2]):
        pt_network.double()
        for link in chainer_layers(ch_network):
            for name in names_of(link).values():
                target = getattr(link, name)
                if target is None:
                    continue
                if hasattr(target, "array"):
                    target.array = target.array.astype(np.float64)
                else:
                    setattr(link, name, target.astype(np.float64))


def iteration_inputs(question, rng, mix, dtype):
    """pix2pix: (x, y); pix2pix_gp: n_critic D batches, their eps, the G batch (NCHW)."""
    if question == "pix2pix":
        return pairs_batch(rng, BATCH, SIZE, dtype)
    d_batches = [pairs_batch(rng, BATCH, SIZE, dtype) for _ in range(N_CRITIC)]
    eps = [mix(BATCH).astype(dtype) for _ in range(N_CRITIC)]
    return d_batches, eps, pairs_batch(rng, BATCH, SIZE, dtype)


def as_torch(question, inputs):
    tensor = torch.from_numpy
    if question == "pix2pix":
        return [tensor(a) for a in inputs]
    d_batches, eps, g_batch = inputs
    return [tuple(tensor(a) for a in b) for b in d_batches], [tensor(e) for e in eps], tuple(map(tensor, g_batch))


def check_running_statistics(pt_network, ch_network, updates, dtype):
    """BatchNorm running averages equal, moved ``updates`` times (decay 0.9, unbiased variance)."""
    checked = 0
    tolerance = STATISTICS_TOLERANCE[dtype]
    for module, link in layer_pairs(pt_network, ch_network):
        if isinstance(module, torch.nn.BatchNorm2d):
            assert module.num_batches_tracked.item() == updates
            np.testing.assert_allclose(link.avg_mean, module.running_mean.numpy(), **tolerance)
            np.testing.assert_allclose(link.avg_var, module.running_var.numpy(), **tolerance)
            assert np.abs(module.running_var.numpy() - 1).max() > 1e-3             # not still at 1
            checked += 1
    return checked


def two_iterations(question, dtype, seed=3, data_seed=5):
    """Two iterations of both scripts from the same weights (built from
    ``seed``) and batches (``data_seed``), every metric and the BatchNorm
    statistics checked; returns the relative differences of the weight
    updates, by network."""
    pt, ch = scripts(question)
    pt_networks, ch_networks = build_both(question, SIZE, WIDTH, seed)
    for pt_network, ch_network in zip(pt_networks[:2], ch_networks[:2]):
        copy_network(pt_network, ch_network)   # identical weights, BatchNorm statistics at their initial values
    if dtype == np.float64:
        to_float64(pt_networks, ch_networks)
    for optimizer in pt_networks[2:]:
        align_adam_eps(optimizer, pt.ADAM_EPS, pt.ADAM_BETAS[1])   # the reference's settings, not the port's
    kwargs = {"gan_weight": 1.0, "l1_weight": 100.0, **({"gp_weight": 10.0} if question == "pix2pix_gp" else {})}
    pt_step, ch_step = pt.make_train_step(*pt_networks, **kwargs), ch.make_train_step(*ch_networks, **kwargs)
    names = ("generator", "discriminator")
    start = {name: flat_parameters(network) for name, network in zip(names, pt_networks)}
    rng, mix = np.random.default_rng(data_seed), pix2pix.MixSampler(data_seed + 2)
    for iteration in range(2):
        inputs = iteration_inputs(question, rng, mix, dtype)
        expected = pt_step(*as_torch(question, inputs))
        got = ch_step(*inputs)
        assert list(got) == list(expected) and sorted(got) == sorted(pix2pix.FIELDS[question])
        for key in got:
            assert got[key] == pytest.approx(expected[key], rel=METRICS_RTOL[dtype]), (iteration, key, got, expected)
        if question == "pix2pix_gp":
            assert expected["gradient_penalty"] > 0.01 and expected["d_loss"] == pytest.approx(
                expected["d_gan"] + 10 * expected["gradient_penalty"], rel=1e-5)
        if iteration == 0:
            # G's BatchNorm moved once per pix2pix iteration (G(x) once), n_critic + 1 times per
            # pix2pix_gp iteration; pix2pix's D three times (real pairs, fake pairs, G's step)
            g_updates = 1 if question == "pix2pix" else N_CRITIC + 1
            assert check_running_statistics(pt_networks[0], ch_networks[0], g_updates, dtype) == 2 * 9
            assert check_running_statistics(pt_networks[1], ch_networks[1], 3, dtype) == (
                3 if question == "pix2pix" else 0)
    differences = {}
    for name, pt_network, ch_network in zip(names, pt_networks, ch_networks):
        torch_update = flat_parameters(pt_network) - start[name]
        chainer_update = flat_parameters(ch_network) - start[name]
        differences[name] = np.linalg.norm(chainer_update - torch_update) / np.linalg.norm(torch_update)
    return differences


@pytest.mark.parametrize("dtype", (np.float64, np.float32), ids=("float64", "float32"))
@pytest.mark.parametrize("question", QUESTIONS)
def test_same_training_iterations(question, dtype):
    # after two iterations: the same update of every weight
    differences = two_iterations(question, dtype)
    for name, difference in differences.items():
        assert difference < UPDATE_TOLERANCE[dtype][name], (name, difference)


@pytest.mark.parametrize("question", QUESTIONS)
def test_same_draws_per_iteration(question, tmp_path):
    # The training loops, which the steps above leave out: the same batches and eps drawn in the
    # same order (pix2pix: one batch; pix2pix_gp: n_critic D batches, their n_critic eps, one G
    # batch), so after two iterations both checkpoints hold the same feed and eps states, the
    # same step counts and the same model description.  (One eps draw for all D steps, or the G
    # batch drawn first, would leave other states.)
    folder = make_image_folder(tmp_path / "data", classes=("akahara", "madara"), n_per_class=2, size=(SIZE, SIZE),
                               seed=0, with_masks=True)
    args = ["--train", "--data-dir", folder, "--size", SIZE, "--width", 1, "--batch-size", 2, "--iters", 2,
            "--sample-every", 0, "--checkpoint-every", 2, "--log-every", 1, "--seed", 4,
            *(["--n-critic", 3] if question == "pix2pix_gp" else [])]
    metas = {}
    for framework in ("pytorch", "chainer"):
        run_in_process(question, framework, [*args, "--out-dir", tmp_path / framework])
        meta = json.loads((tmp_path / framework / "checkpoints" / "iter_000002" / "meta.json").read_text())
        metas[framework] = {key: value for key, value in meta.items() if key not in ("framework", "files")}
    assert metas["chainer"] == metas["pytorch"]
    assert metas["chainer"]["discriminator_steps"] == (2 if question == "pix2pix" else 6)
