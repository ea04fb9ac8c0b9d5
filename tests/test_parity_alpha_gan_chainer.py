"""The Chainer alpha-GAN is the PyTorch one (DESIGN.md section 7): the same
four networks with the same parameter counts (test_answers_alpha_gan.
PARAMETERS) and output shapes for 28x28x1 z 10, 32x32x3 z 128 and 64x64x3
z 10; with the PyTorch weights copied into the Chainer links the same
outputs -- G in inference mode with non-trivial BatchNorm statistics, D, E
and C with non-zero biases, max-abs difference below 1e-4 -- and E the same
convolution stack as D (ConvStack); the same Adam settings (betas (0.5,
0.9), lr 5e-4 for G, D, C and 1e-4 for E, eps 1e-8); and the same training
step: from identical weights, the same real batch and the same z, one full
iteration (E, G, G, D, C) gives the same ten metrics, the same updated
weights of all four networks and the same BatchNorm running statistics,
moved 4 times (E's step, G's two steps, D's step).

The iteration runs in float64 (both scripts' steps unchanged, the networks
cast after the copy), where float32 noise cannot hide a small difference:
each of these changes to the Chainer step, tried once, moves a weight
update or the statistics by 6e-2 to 2 (the float64 bounds are 1e-8 and
1e-9): G run on the codes and z in two batches, E's codes not recomputed
after E's step, C's labels swapped, E's lr for G, BatchNorm decay 0.99,
D judging G's images from before G's second step.  And in the scripts'
float32, with bounds that float32 rounding sets (see UPDATE_TOLERANCE).
Adam's eps is aligned (align_adam_eps: Chainer adds it before the bias
correction, PyTorch after).

Both frameworks are NCHW with the same weight layouts (Linear and Linear
(O, I); Conv2d and Convolution2D (O, I, kh, kw); ConvTranspose2d and
Deconvolution2D (I, O, kh, kw); BatchNorm weight, bias, running_mean,
running_var = gamma, beta, avg_mean, avg_var), and both scripts read G's
Dense units and flatten D's and E's maps in NHWC order, so the copy is
shape for shape, layer by layer in network order.
"""
import numpy as np
import pytest

from common import alpha_gan
from tests.conftest import load_script
from tests.test_answers_alpha_gan import PARAMETERS
from tests.test_parity_gan_chainer import chainer_layers, copy_network, flat_parameters, torch_layers
from tests.test_parity_wgan_chainer import align_adam_eps

torch = pytest.importorskip("torch")

NAMES = ("generator", "discriminator", "encoder", "code_discriminator")
CASES = list(PARAMETERS)
IDS = ["28x28x1", "32x32x3", "64x64x3"]
TOLERANCE = 1e-4       # outputs; measured max-abs: G 1.0e-6 / 1.9e-6 / 2.9e-6 (28 / 32 / 64), D, E and C 1e-8 .. 1.5e-7
BATCH = 8
# The training-step comparison: the one-stage 8x8 network of the learning check and MNIST's 28x28.
STEP_CASES = [((8, 8, 1), 4), ((28, 28, 1), 10)]
STEP_IDS = ["8x8x1", "28x28x1"]
METRICS_RTOL = {np.float64: 1e-9, np.float32: 2e-4}
# Relative difference ||update_chainer - update_torch|| / ||update_torch|| of each network's weights
# after the iteration (weights from seed 3, batches from seed 5; G's noise-only biases left out,
# see noise_only), and the largest difference of G's BatchNorm running variances relative to their
# largest value (the running means: MEAN_TOLERANCE, absolute).  Measured with the L1 norm per image
# (the sum over the pixels), float64: updates below 1e-11 and variances below 4e-14 at both sizes
# (over 3 seed pairs); float32, this pair: 8x8 G 1.6e-6, D 4.6e-7, E 2.2e-6, C 8.3e-7, variances
# 9e-8; 28x28 G 2.7e-4, D 7.4e-4, E 3.2e-5, C 1.2e-6, variances 3.4e-6.  Another pair (4, 7) gave
# 28x28 float32 G 2.5e-2, D 1.2e-1, E 3.2e-2: float32 rounding, not the port -- PyTorch float32
# against PyTorch float64 differs as much -- with beta1 0.5 Adam's first steps are about
# lr sign(g), so an entry whose tiny gradient rounding flips the sign of moves a whole step the
# other way, and D, updated after G's two steps, sees G's noisy images.  Hence loose float32
# bounds for G and D; the float64 case is the exact one.  (Metrics: float32 below 5e-6 relative.)
UPDATE_TOLERANCE = {np.float64: {name: 1e-8 for name in NAMES},
                    np.float32: {"generator": 0.05, "discriminator": 0.15, "encoder": 1e-3,
                                 "code_discriminator": 1e-3}}
STATISTICS_TOLERANCE = {np.float64: 1e-9, np.float32: 0.1}
MEAN_TOLERANCE = {np.float64: 1e-9, np.float32: 1e-3}
BN_NAMES = ("gamma", "beta", "avg_mean", "avg_var")


@pytest.fixture(scope="module")
def scripts():
    return load_script("alpha_gan", "pytorch"), load_script("alpha_gan", "chainer")


def build_both(scripts, image_shape, z_dim, seed=3):
    pt, ch = scripts
    return (pt.build_model(image_shape, z_dim, seed, 5e-4, 1e-4, torch.device("cpu")),
            ch.build_model(image_shape, z_dim, seed, 5e-4, 1e-4, ch.pick_device("cpu")))


def realistic_weights(pt_networks, z, rng):
    """G's BatchNorm with the running statistics of one batch (momentum
    None: a plain average) and gamma and beta away from 1 and 0; every
    bias away from 0, so that a layout or eps mistake shows."""
    for network in pt_networks[:4]:
        for m in network.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None
                m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.num_features).astype(np.float32))
                m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.num_features).astype(np.float32))
            elif isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.bias.data = torch.from_numpy(rng.uniform(-0.1, 0.1, m.bias.shape).astype(np.float32))
    pt_networks[0].train()
    with torch.no_grad():
        pt_networks[0](torch.from_numpy(z))


def assert_close(got, expected, shape):
    difference = np.abs(got - expected).max()
    assert got.shape == expected.shape == shape and got.dtype == np.float32
    assert difference < TOLERANCE * max(1.0, np.abs(expected).max()), difference
    assert np.ptp(expected) > 100 * TOLERANCE                                  # not trivially equal
    return difference


@pytest.mark.parametrize("image_shape,z_dim", CASES, ids=IDS)
def test_same_networks_and_outputs(scripts, image_shape, z_dim):
    pt, ch = scripts
    pt_networks, ch_networks = build_both(scripts, image_shape, z_dim)
    counts = {name: sum(p.numel() for p in network.parameters()) for name, network in zip(NAMES, pt_networks)}
    assert {name: network.count_params() for name, network in zip(NAMES, ch_networks)} == counts
    assert counts == PARAMETERS[image_shape, z_dim]
    assert ch.model_info(image_shape, z_dim) == pt.model_info(image_shape, z_dim)
    # the explicit settings: BN eps and decay, gamma 1, beta 0 (in G only); N(0, 0.02) weights, zero biases
    for name, network in zip(NAMES, ch_networks):
        for link in chainer_layers(network):
            if type(link).__name__ == "BatchNormalization":
                assert name == "generator"
                assert (link.eps, link.decay) == (pt.BN_EPS, pt.BN_DECAY) == (1e-5, 0.9)
                assert (link.gamma.array == 1).all() and not link.beta.array.any()
            else:
                assert not link.b.array.any() and link.W.dtype == np.float32
                assert abs(link.W.array.std() / ch.INIT_STD - 1) < 0.1, link
    assert ch.LEAKY_SLOPE == pt.LEAKY_SLOPE == 0.2 and ch.C_WIDTHS == pt.C_WIDTHS
    assert isinstance(ch_networks[1], ch.ConvStack) and isinstance(ch_networks[2], ch.ConvStack)

    rng = np.random.default_rng(2)
    realistic_weights(pt_networks, alpha_gan.ZSampler(z_dim, 1)(64), rng)
    for pt_network, ch_network in zip(pt_networks[:4], ch_networks[:4]):
        copy_network(pt_network, ch_network)
    device = ch.pick_device("cpu")
    z = alpha_gan.test_latents(z_dim, 4)["samples"][:BATCH]
    images = rng.uniform(-1, 1, (BATCH, *image_shape)).astype(np.float32)
    generator, discriminator, encoder, code_discriminator = ch_networks[:4]
    assert_close(ch.generate(generator, z, device), pt.generate(pt_networks[0], z, "cpu"),   # inference mode, NHWC
                 (BATCH, *image_shape))
    assert_close(ch.discriminate(discriminator, images, device), pt.discriminate(pt_networks[1], images, "cpu"),
                 (BATCH, 1))
    assert_close(ch.encode(encoder, images, device), pt.encode(pt_networks[2], images, "cpu"), (BATCH, z_dim))
    assert_close(ch.in_batches(code_discriminator, z, device), pt.in_batches(pt_networks[3], z, "cpu"), (BATCH, 1))
    # E is D's convolution stack with another Dense: D's convolution weights in E give D's features
    encoder.convs.copyparams(discriminator.convs)
    x = ch.to_nchw(images)
    np.testing.assert_array_equal(encoder.convs(x).array, discriminator.convs(x).array)


def test_same_optimizers(scripts):
    pt_networks, ch_networks = build_both(scripts, (8, 8, 1), 4)
    for torch_optimizer, chainer_optimizer, network, lr in zip(pt_networks[4:], ch_networks[4:], ch_networks[:4],
                                                               (5e-4, 5e-4, 1e-4, 5e-4), strict=True):
        group = torch_optimizer.param_groups[0]
        assert type(chainer_optimizer).__name__ == "Adam" and isinstance(torch_optimizer, torch.optim.Adam)
        settings = [getattr(chainer_optimizer, name) for name in ("alpha", "beta1", "beta2", "eps")]
        assert tuple(settings) == (group["lr"], *group["betas"], group["eps"]) == (lr, 0.5, 0.9, 1e-8)
        assert chainer_optimizer.weight_decay_rate == group["weight_decay"] == 0 and not chainer_optimizer.amsgrad
        assert chainer_optimizer.target is network


def to_float64(pt_networks, ch_networks):
    """All four networks in float64, the same (float32) starting values (the
    optimizer states are made at the first step)."""
    for pt_network, ch_network in zip(pt_networks[:4], ch_networks[:4]):
        pt_network.double()
        for link in chainer_layers(ch_network):
            for name in BN_NAMES if type(link).__name__ == "BatchNormalization" else ("W", "b"):
                target = getattr(link, name)
                if hasattr(target, "array"):
                    target.array = target.array.astype(np.float64)
                else:
                    setattr(link, name, target.astype(np.float64))


def one_iteration(scripts, image_shape, z_dim, dtype, seed=3, data_seed=5):
    """One iteration of both scripts from the same weights (built from
    ``seed``), real batch and z (``data_seed``); the metrics checked here.
    Returns the largest difference of G's BatchNorm running variances
    relative to their size (``statistics``), and the relative difference of
    the weight updates by network."""
    pt, ch = scripts
    pt_networks, ch_networks = build_both(scripts, image_shape, z_dim, seed)
    for pt_network, ch_network in zip(pt_networks[:4], ch_networks[:4]):
        copy_network(pt_network, ch_network)   # identical weights, BatchNorm statistics at their initial values
    if dtype == np.float64:
        to_float64(pt_networks, ch_networks)
    for optimizer in pt_networks[4:]:
        align_adam_eps(optimizer, pt.ADAM_EPS, pt.ADAM_BETAS[1])   # the reference's settings, not the port's
    pt_step = pt.make_train_step(*pt_networks, l1_weight=1.0)
    ch_step = ch.make_train_step(*ch_networks, l1_weight=1.0)
    start = {name: flat_parameters(network) for name, network in zip(NAMES, pt_networks)}
    rng = np.random.default_rng(data_seed)
    real_images = rng.uniform(-1, 1, (BATCH, *image_shape)).astype(np.float32)
    z = alpha_gan.ZSampler(z_dim, data_seed)(BATCH)
    expected = pt_step(pt.to_nchw(real_images).to(torch.float64 if dtype == np.float64 else torch.float32),
                       torch.from_numpy(z.astype(dtype)))
    got = ch_step(ch.to_nchw(real_images).astype(dtype), z.astype(dtype))
    assert list(got) == list(expected) == alpha_gan.FIELDS
    for key in alpha_gan.FIELDS:
        assert got[key] == pytest.approx(expected[key], rel=METRICS_RTOL[dtype]), (key, got, expected)
    # G's BatchNorm running averages moved 4 times (decay 0.9, unbiased batch variance)
    statistics = []
    for module, link in zip(torch_layers(pt_networks[0]), chainer_layers(ch_networks[0]), strict=True):
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            assert module.num_batches_tracked.item() == 4
            theirs = module.running_var.numpy()
            statistics.append(np.abs(link.avg_var - theirs).max() / np.abs(theirs).max())
            # The running means hold the batch means of the layer's outputs, whose bias is noise-only
            # (noise_only: moved by different Adam steps of rounding noise in the two), so they are
            # compared in absolute terms: 4 passes weighted 1 - 0.9^4 = 0.34 in all of shifts below
            # 2 x 1.6 lr = 1.6e-3, so below 5.4e-4, plus float32 rounding.
            # Measured over 3 seed pairs: float64 7e-11, float32 2.4e-4 .. 8.5e-4.
            assert np.abs(link.avg_mean - module.running_mean.numpy()).max() < MEAN_TOLERANCE[dtype]
            assert np.abs(module.running_var.numpy() - 1).max() > 1e-3                 # not still at 1
    assert len(statistics) == (1 if image_shape == (8, 8, 1) else 2)
    differences = {}
    for name, pt_network, ch_network in zip(NAMES, pt_networks, ch_networks):
        torch_update = flat_parameters(pt_network) - start[name]
        chainer_update = flat_parameters(ch_network) - start[name]
        noise = noise_only(pt_network)
        for update in (torch_update, chainer_update):   # G's two Adam steps on rounding noise, each < 1.6 lr
            assert np.abs(update[noise]).max(initial=0) < 2 * 1.6 * 5e-4
        torch_update, chainer_update = torch_update[~noise], chainer_update[~noise]
        differences[name] = np.linalg.norm(chainer_update - torch_update) / np.linalg.norm(torch_update)
    return max(statistics), differences


def noise_only(torch_network):
    """A mask of the flat_parameters entries whose exact gradient is 0: the
    biases of G's layers followed by a BatchNorm, which subtracts them again
    with the batch mean.  Their gradients are rounding noise, different in
    each framework, which Adam (beta1 0.5) turns into steps of up to about
    lr: they are left out of the comparison of the updates."""
    layers = torch_layers(torch_network)
    mask = [np.full(p.numel(), kind == "bias" and isinstance(after, torch.nn.modules.batchnorm._BatchNorm)
                    and not isinstance(layer, torch.nn.modules.batchnorm._BatchNorm))
            for layer, after in zip(layers, [*layers[1:], None]) for kind, p in layer.named_parameters(recurse=False)]
    return np.concatenate(mask)


@pytest.mark.parametrize("dtype", (np.float64, np.float32), ids=("float64", "float32"))
@pytest.mark.parametrize("image_shape,z_dim", STEP_CASES, ids=STEP_IDS)
def test_same_training_iteration(scripts, image_shape, z_dim, dtype):
    statistics, differences = one_iteration(scripts, image_shape, z_dim, dtype)
    assert statistics < STATISTICS_TOLERANCE[dtype], statistics
    for name, difference in differences.items():   # the same update of every weight of the four networks
        assert difference < UPDATE_TOLERANCE[dtype][name], (name, difference)
