"""The Chainer WGAN and WGAN-GP are the PyTorch ones (issue 12, WGAN_SPEC.md):
the same parameter counts and output shapes, the same outputs with the
PyTorch weights copied into the Chainer links -- G in inference mode with
non-trivial BatchNorm statistics, the critic (with non-trivial layer-norm
gains and offsets), max-abs difference below 1e-4 -- and the same training:
from identical weights, the same real batches, z and eps, two full
iterations (n_critic critic steps, each clipped or penalised, then one G
step) give the same metrics and the same weights.  That pins the step order
(a fresh real batch and z per critic step, the clipping of every critic
parameter after every critic update, eps per sample, the penalty's double
backprop through convolutions, leaky ReLU, layer norm and mean pooling),
RMSProp's torch semantics (v from 0, eps outside the sqrt, rho 0.99), Adam's
(eps aligned: align_adam_eps) and G's BatchNorm running averages (updated at
every critic step and at the G step).

The two iterations run in float64 (both scripts' steps unchanged, the
networks cast after the copy), where float32 noise cannot hide a small
difference: metrics within 1e-9 relative and weight updates within 1e-8
(measured 1e-14 and below, 3.5e-10 for the WGAN-GP's G).  In the scripts'
float32 the metrics agree within 2e-4 but the updates only to float32
noise amplified by the optimizers: RMSProp's first step is
lr g / (0.1 |g|) = 10 lr sign(g) (Adam with beta1 = 0 likewise lr sign(g)),
so a gradient entry whose sign float32 rounding flips -- in G's first layers
1-30% of the entries are off by more than 1e-3 relative behind three
BatchNorms of a batch of 8 -- is a full step the other way.  Measured for
the 3-channel WGAN: PyTorch float32 against PyTorch float64 12% on G's
update, Chainer float32 against PyTorch float32 the same 12%, and the
second iteration's metrics 0.7% and 3.5% apart; so the float32 cases are
the 1-channel WGAN (G 0.4%) and the WGAN-GP with layer norm (G 3.1%).

Both frameworks are NCHW with the same weight layouts, so the copy is shape
for shape (G reads its Dense units as an NHWC map and the DCGAN critic
flattens NHWC in both scripts); the WGAN-GP's layer norm is torch's
GroupNorm(1, C) (weight, bias) and the script's LayerNorm link (gamma, beta).
"""
import numpy as np
import pytest

from common import wgan
from tests.conftest import load_script
from tests.test_parity_gan_chainer import chainer_layers, torch_layers

torch = pytest.importorskip("torch")

TOLERANCE = 1e-4
N_CRITIC = 2
BATCH = 8
# PyTorch's counts (sum(p.numel() for p in net.parameters())), by question, image shape, width and norm
PARAMETERS = {
    ("wgan", (32, 32, 3)): {"generator": 2890243, "critic": 260673},
    ("wgan", (32, 32, 1)): {"generator": 2883841, "critic": 259073},
    ("wgan_gp", (32, 32, 3), 128, "layer"): {"generator": 1204483, "critic": 1055361},
    ("wgan_gp", (32, 32, 3), 128, "none"): {"generator": 1204483, "critic": 1053825},
    ("wgan_gp", (32, 32, 1), 8, "layer"): {"generator": 20417, "critic": 4361},
    ("wgan_gp", (32, 32, 3), 8, "none"): {"generator": 20563, "critic": 4425},
}
CASES = list(PARAMETERS)
IDS = ["-".join(str(p) if not isinstance(p, tuple) else "x".join(map(str, p)) for p in case) for case in CASES]
# The training parity runs in float64 (exact comparison) and in the scripts' float32 (see the module docstring)
TRAIN_CASES = [*[(case, np.float64) for case in (("wgan", (32, 32, 3)), ("wgan", (32, 32, 1)),
                                                 ("wgan_gp", (32, 32, 1), 8, "layer"),
                                                 ("wgan_gp", (32, 32, 3), 8, "none"))],
               (("wgan", (32, 32, 1)), np.float32), (("wgan_gp", (32, 32, 1), 8, "layer"), np.float32)]
TRAIN_IDS = [f"{IDS[CASES.index(case)]}-{dtype.__name__}" for case, dtype in TRAIN_CASES]
METRICS_RTOL = {np.float64: 1e-9, np.float32: 2e-4}
# Relative difference of the weight updates after two iterations, measured: float64 G 1e-14 (WGAN),
# 3.5e-10 (WGAN-GP), critic 1e-14; float32 G 0.4% (WGAN), 3.1% (WGAN-GP), critic 5.5e-7, 5.1e-6
UPDATE_TOLERANCE = {np.float64: {"generator": 1e-8, "critic": 1e-8}, np.float32: {"generator": 0.1, "critic": 1e-3}}
KINDS = {"Linear": "Linear", "Conv2d": "Convolution2D", "Conv2dSame": "Convolution2DSame",
         "ConvTranspose2dSame": "Deconvolution2DSame", "BatchNorm1d": "BatchNormalization",
         "BatchNorm2d": "BatchNormalization", "GroupNorm": "LayerNorm"}
NAMES = {"BatchNormalization": {"weight": "gamma", "bias": "beta", "running_mean": "avg_mean",
                                "running_var": "avg_var"},
         "LayerNorm": {"weight": "gamma", "bias": "beta"}}
WEIGHTS = {"weight": "W", "bias": "b"}


def scripts(question):
    return load_script(question, "pytorch"), load_script(question, "chainer")


def build_both(case, seed=3):
    question, image_shape, *gp = case
    pt, ch = scripts(question)
    if question == "wgan":
        return (pt.build_model(image_shape, 100, seed, 5e-5, torch.device("cpu")),
                ch.build_model(image_shape, 100, seed, 5e-5, ch.pick_device("cpu")))
    return (pt.build_model(image_shape, 128, *gp, seed, 1e-4, torch.device("cpu")),
            ch.build_model(image_shape, 128, *gp, seed, 1e-4, ch.pick_device("cpu")))


def layer_pairs(pt_network, ch_network):
    """(PyTorch module, Chainer link) pairs of the layers that hold parameters, kinds checked."""
    pairs = list(zip(torch_layers(pt_network), chainer_layers(ch_network), strict=True))
    for module, link in pairs:
        assert type(link).__name__ == KINDS[type(module).__name__], (module, link)
    return pairs


def copy_network(pt_network, ch_network):
    """The PyTorch weights, norm gains and BatchNorm statistics into the Chainer links."""
    for module, link in layer_pairs(pt_network, ch_network):
        state = module.state_dict()
        for name, chainer_name in NAMES.get(type(link).__name__, WEIGHTS).items():
            target = getattr(link, chainer_name)
            array = getattr(target, "array", target)           # a Parameter, or a persistent array
            assert array.shape == tuple(state[name].shape), (type(module).__name__, name)
            array[...] = state[name].detach().numpy()


def flat_parameters(network):
    """Every parameter of a PyTorch network or a Chainer link in network order, as one vector."""
    if isinstance(network, torch.nn.Module):
        return np.concatenate([p.detach().numpy().ravel() for m in torch_layers(network)
                               for p in m.parameters(recurse=False)])
    return np.concatenate([getattr(link, NAMES.get(type(link).__name__, WEIGHTS)[name]).array.ravel()
                           for link in chainer_layers(network) for name in ("weight", "bias")])


def realistic_norms(pt_networks, z, rng):
    """G's BatchNorm with the running statistics of one batch (momentum None:
    a plain average) and gains/offsets away from 1/0; the same for the
    critic's layer norm, so that a layout or eps mistake shows."""
    generator, critic = pt_networks[:2]
    for m in [*generator.modules(), *critic.modules()]:
        if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm)):
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None
            m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.weight.shape).astype(np.float32))
            m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.bias.shape).astype(np.float32))
    generator.train()
    with torch.no_grad():
        generator(torch.from_numpy(z))


def z_batch(question, n, seed):
    """n draws of the question's noise (U(-1, 1) of 100 or N(0, 1) of 128) from the stream (seed, wgan.TRAIN)."""
    noise, z_dim = ("uniform", 100) if question == "wgan" else ("normal", 128)
    return wgan.z_draw(noise)(n, z_dim, seed, wgan.TRAIN)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_same_networks_and_outputs(case):
    question, image_shape, *gp = case
    pt, ch = scripts(question)
    pt_networks, ch_networks = build_both(case)
    counts = {name: sum(p.numel() for p in network.parameters()) for name, network in zip(("generator", "critic"),
                                                                                           pt_networks)}
    assert counts == PARAMETERS[case]
    assert {"generator": ch_networks[0].count_params(), "critic": ch_networks[1].count_params()} == counts
    z_dim = 100 if question == "wgan" else 128
    assert ch.model_info(image_shape, z_dim, *gp) == pt.model_info(image_shape, z_dim, *gp)
    # the explicit settings: norm eps and decay, gains 1, offsets 0, the weight rule, zero biases
    assert ch.LEAKY_SLOPE == pt.LEAKY_SLOPE == 0.2 and ch.NORM_EPS == pt.NORM_EPS
    for module, link in layer_pairs(pt_networks[0], ch_networks[0]) + layer_pairs(pt_networks[1], ch_networks[1]):
        kind = type(link).__name__
        if kind in NAMES:
            assert (link.gamma.array == 1).all() and not link.beta.array.any()
            if kind == "LayerNorm":   # the script's constant, torch's GroupNorm(1, C) eps
                assert ch.LN_EPS == module.eps == 1e-5 and module.num_groups == 1
            else:
                assert (link.eps, link.decay) == (module.eps, 1 - module.momentum) == (1e-5, 0.9)
        else:
            weights = link.W.array
            assert not link.b.array.any() and weights.dtype == np.float32
            if question == "wgan":
                assert abs(weights.std() / ch.INIT_STD - 1) < 0.1, link
            else:   # Glorot-uniform, the fans counting the kernel taps (Chainer's W is torch's layout)
                fan_in, fan_out = weights.shape[1] * weights[0, 0].size, weights.shape[0] * weights[0, 0].size
                limit = np.sqrt(6 / (fan_in + fan_out))
                assert np.abs(weights).max() <= limit and (weights.size < 100 or np.abs(weights).max() > 0.9 * limit)
    if question == "wgan_gp" and gp[1] == "none":
        assert not [link for link in chainer_layers(ch_networks[1]) if type(link).__name__ == "LayerNorm"]

    rng = np.random.default_rng(2)
    realistic_norms(pt_networks, z_batch(question, 64, 1), rng)
    for pt_network, ch_network in zip(pt_networks[:2], ch_networks[:2]):
        copy_network(pt_network, ch_network)
    device = ch.pick_device("cpu")
    z = z_batch(question, 5, 4)
    expected, got = pt.generate(pt_networks[0], z, "cpu"), ch.generate(ch_networks[0], z, device)   # inference mode
    assert got.shape == expected.shape == (5, *image_shape) and got.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert got.std() > 100 * TOLERANCE                                         # not trivially equal
    images = rng.uniform(-1, 1, (6, *image_shape)).astype(np.float32)
    expected, got = pt.criticize(pt_networks[1], images, "cpu"), ch.criticize(ch_networks[1], images, device)
    assert got.shape == expected.shape == (6, 1) and got.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE * max(1.0, np.abs(expected).max()), (got, expected)
    assert np.ptp(expected) > 10 * TOLERANCE * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("question", ("wgan", "wgan_gp"))
def test_same_optimizers(question):
    case = TRAIN_CASES[0 if question == "wgan" else 2][0]
    (generator, critic, *pt_optimizers), (ch_generator, ch_critic, *ch_optimizers) = build_both(case)
    for torch_optimizer, chainer_optimizer in zip(pt_optimizers, ch_optimizers):
        group = torch_optimizer.param_groups[0]
        if question == "wgan":   # torch semantics: v from 0, eps outside the sqrt, not centred, no momentum
            assert type(chainer_optimizer).__name__ == "RMSprop" and isinstance(torch_optimizer, torch.optim.RMSprop)
            assert (chainer_optimizer.lr, chainer_optimizer.alpha, chainer_optimizer.eps) == (
                group["lr"], group["alpha"], group["eps"]) == (5e-5, 0.99, 1e-8)
            assert chainer_optimizer.eps_inside_sqrt is False and not group["centered"] and group["momentum"] == 0
        else:
            assert type(chainer_optimizer).__name__ == "Adam" and isinstance(torch_optimizer, torch.optim.Adam)
            settings = [getattr(chainer_optimizer, name) for name in ("alpha", "beta1", "beta2", "eps")]
            assert tuple(settings) == (group["lr"], *group["betas"], group["eps"]) == (1e-4, 0.0, 0.9, 1e-8)
            assert chainer_optimizer.weight_decay_rate == group["weight_decay"] == 0 and not chainer_optimizer.amsgrad
    assert ch_optimizers[0].target is ch_generator and ch_optimizers[1].target is ch_critic


def align_adam_eps(optimizer, eps, beta2):
    """Chainer's Adam adds eps to sqrt(v) before the bias correction,
    PyTorch's to sqrt(v_hat) after it: Chainer's step t is PyTorch's with
    eps / sqrt(1 - beta2^t).  The critic's optimizer steps n_critic times
    inside one train_step, so PyTorch's optimizer.step is wrapped to set
    that eps for each of its steps (t read from its state)."""
    step = optimizer.step

    def aligned(*args, **kwargs):
        states = [optimizer.state[p] for g in optimizer.param_groups for p in g["params"] if p in optimizer.state]
        t = int(states[0]["step"]) + 1 if states else 1
        for group in optimizer.param_groups:
            group["eps"] = eps / np.sqrt(1.0 - beta2 ** t)
        return step(*args, **kwargs)
    optimizer.step = aligned


def iteration_inputs(question, image_shape, iteration, rng, mix, dtype):
    """n_critic real batches, n_critic z, eps (one per iteration for the WGAN's measure,
    one per critic step for the WGAN-GP) and g_z, NCHW."""
    real = [rng.uniform(-1, 1, (BATCH, *image_shape)).astype(np.float32).transpose(0, 3, 1, 2).astype(dtype)
            for _ in range(N_CRITIC)]
    z = [z_batch(question, BATCH, 10 * iteration + i).astype(dtype) for i in range(N_CRITIC + 1)]
    eps = mix(BATCH).astype(dtype) if question == "wgan" else [mix(BATCH).astype(dtype) for _ in range(N_CRITIC)]
    return real, z[:-1], eps, z[-1]


def to_float64(pt_networks, ch_networks):
    """Both networks in float64, the same (float32) starting values (optimizer states are made at the first step)."""
    for pt_network, ch_network in zip(pt_networks[:2], ch_networks[:2]):
        pt_network.double()
        for link in chainer_layers(ch_network):
            for name in NAMES.get(type(link).__name__, WEIGHTS).values():
                target = getattr(link, name)
                if hasattr(target, "array"):
                    target.array = target.array.astype(np.float64)
                else:
                    setattr(link, name, target.astype(np.float64))


def as_torch(inputs):
    real, z, eps, g_z = inputs
    tensor = torch.from_numpy
    return [tensor(r) for r in real], [tensor(v) for v in z], (
        tensor(eps) if isinstance(eps, np.ndarray) else [tensor(e) for e in eps]), tensor(g_z)


def make_steps(case, pt_networks, ch_networks):
    question = case[0]
    pt, ch = scripts(question)
    if question == "wgan":
        return pt.make_train_step(*pt_networks, clip=0.01), ch.make_train_step(*ch_networks, clip=0.01)
    for optimizer in pt_networks[2:]:
        align_adam_eps(optimizer, pt.ADAM_EPS, pt.ADAM_BETAS[1])   # the reference's settings, not the port's
    return pt.make_train_step(*pt_networks, gp_weight=10.0), ch.make_train_step(*ch_networks, gp_weight=10.0)


@pytest.mark.parametrize("case,dtype", TRAIN_CASES, ids=TRAIN_IDS)
def test_same_training_iterations(case, dtype):
    question, image_shape = case[:2]
    pt_networks, ch_networks = build_both(case)
    rng = np.random.default_rng(5)
    for m in pt_networks[1].modules():        # layer-norm gains and offsets away from 1 and 0
        if isinstance(m, torch.nn.GroupNorm):
            m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.weight.shape).astype(np.float32))
            m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.bias.shape).astype(np.float32))
    for pt_network, ch_network in zip(pt_networks[:2], ch_networks[:2]):
        copy_network(pt_network, ch_network)   # identical weights, BatchNorm statistics at their initial values
    if dtype == np.float64:
        to_float64(pt_networks, ch_networks)
    pt_step, ch_step = make_steps(case, pt_networks, ch_networks)
    names = ("generator", "critic")
    start = {name: flat_parameters(network) for name, network in zip(names, pt_networks)}
    mix = wgan.MixSampler(7)
    fields = [f for f in wgan.FIELDS[question] if f != "clip_fraction"]
    for iteration in range(2):
        inputs = iteration_inputs(question, image_shape, iteration, rng, mix, dtype)
        expected = pt_step(*as_torch(inputs))
        got = ch_step(*inputs)
        assert list(got) == list(expected) and sorted(got) == sorted(fields)
        for key in fields:
            assert got[key] == pytest.approx(expected[key], rel=METRICS_RTOL[dtype]), (iteration, key, got, expected)
        if question == "wgan":   # every critic parameter within the clip, the same share at the bounds
            ch_values = [p.array for p in ch_networks[1].params()]
            assert max(np.abs(v).max() for v in ch_values) <= 0.01
            share = wgan.clip_fraction(ch_values, 0.01)
            assert share == pytest.approx(wgan.clip_fraction([p.detach().numpy() for p in pt_networks[1].parameters()],
                                                             0.01), abs=1e-3) and share > 0.2
        else:
            assert expected["gradient_penalty"] > 0.01 and expected["critic_loss"] == pytest.approx(
                -expected["wasserstein"] + 10 * expected["gradient_penalty"], rel=1e-5)
        if iteration == 0:
            # G's BatchNorm running averages moved n_critic + 1 times (every critic step's fakes, then the
            # G step's), with decay 0.9 and the unbiased batch variance, from the first weights of G only
            for module, link in layer_pairs(pt_networks[0], ch_networks[0]):
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    assert module.num_batches_tracked.item() == N_CRITIC + 1
                    np.testing.assert_allclose(link.avg_mean, module.running_mean.numpy(), rtol=1e-4, atol=1e-6)
                    np.testing.assert_allclose(link.avg_var, module.running_var.numpy(), rtol=1e-4, atol=1e-6)
                    assert np.abs(module.running_var.numpy() - 1).max() > 1e-3    # not still at 1
    # after two iterations: the same update of every weight
    for name, pt_network, ch_network in zip(names, pt_networks, ch_networks):
        torch_update = flat_parameters(pt_network) - start[name]
        chainer_update = flat_parameters(ch_network) - start[name]
        difference = np.linalg.norm(chainer_update - torch_update) / np.linalg.norm(torch_update)
        assert difference < UPDATE_TOLERANCE[dtype][name], (name, difference)


def test_every_critic_parameter_is_clipped():
    # A large step (lr 0.1, float64) pushes most critic parameters past +-0.01: both
    # frameworks clip every one of them, the biases too, to the same values; G is not clipped.
    case = ("wgan", (16, 16, 1))                                              # two stages: cheaper, same code
    pt_networks, ch_networks = build_both(case)
    for pt_network, ch_network in zip(pt_networks[:2], ch_networks[:2]):
        copy_network(pt_network, ch_network)
    to_float64(pt_networks, ch_networks)
    for optimizer in pt_networks[2:]:
        optimizer.param_groups[0]["lr"] = 0.1
    for optimizer in ch_networks[2:]:
        optimizer.lr = 0.1
    pt_step, ch_step = make_steps(case, pt_networks, ch_networks)
    inputs = iteration_inputs("wgan", case[1], 0, np.random.default_rng(0), wgan.MixSampler(0), np.float64)
    pt_step(*as_torch(inputs))
    ch_step(*inputs)
    critic = ch_networks[1]
    assert max(np.abs(p.array).max() for p in critic.params()) <= 0.01
    conv_biases = [link.b.array for link in chainer_layers(critic)[:-1]]
    assert all((np.abs(b) == 0.01).mean() > 0.5 for b in conv_biases)          # the biases reach the bounds too
    assert wgan.clip_fraction([p.array for p in critic.params()], 0.01) > 0.5
    np.testing.assert_allclose(flat_parameters(critic), flat_parameters(pt_networks[1]), rtol=0, atol=1e-12)
    assert max(np.abs(p.array).max() for p in ch_networks[0].params()) > 0.01   # G is not clipped
