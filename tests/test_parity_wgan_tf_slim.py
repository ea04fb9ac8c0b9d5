"""The TF-Slim WGAN and WGAN-GP are the PyTorch ones (WGAN_SPEC.md, issue 12,
DESIGN.md section 7):

- the same model_info and parameter counts per network (pinned: PARAMETERS,
  measured in PyTorch with sum(p.numel() for p in net.parameters()));
- with the PyTorch weights (G's BatchNorm gamma, beta and running
  statistics, and the critic's layer-norm gains and offsets, made
  non-trivial) written into the TF checkpoint files and read by the
  script's load_checkpoint: the same G(z) in inference mode and the same
  critic scores f(x), shapes and values (max-abs difference below 1e-4);
- from those identical weights, the same real batches, z and eps: two full
  iterations (N_CRITIC critic steps + one G step each; the clipping, the
  gradient-norm measure, the penalty and its double backprop included) give
  the same metrics (2e-4 relative), the same BatchNorm moving statistics
  after the first (moved at every critic step and at the G step), and the
  same weight updates after the second (UPDATE_TOLERANCE);
- the WGAN clips every critic parameter, biases included, and nothing of G.

The two RMSProps are the same formula (torch's: v from 0, eps outside the
sqrt).  TF1's Adam adds eps to sqrt(v) before the bias correction, PyTorch
after: PyTorch's eps is set, step by step, to TF's eps / sqrt(1 - beta2^t),
which makes the two updates the same formula.

Why the WGAN iterations run at 16x16x1: RMSProp's first steps are about
lr * sign(gradient) / sqrt(1 - rho^t), whatever the gradient's size, so a
float32 rounding difference in a gradient near 0 (or a LeakyReLU input
near 0) becomes a full step of the other sign.  At 32x32x3 (2.9 M + 261 k
parameters) that happens within two iterations for some seeds: measured on
6 seeds, the metrics of TF and PyTorch differed by up to 1.5e-3 (first
iteration) and 1.3e-1 (second) -- and PyTorch float32 against PyTorch
float64, on 4 of those seeds, by the same amounts (1.5e-3, 1.3e-1 on the
same seed): not a difference of the frameworks.  At 16x16x1 (two stride-2 stages: every kind
of layer of the 32x32 networks) 8 of 8 seeds agreed within 6e-6 over two
iterations.  The 32x32 networks are compared in inference mode.
"""
import numpy as np
import pytest

from common import gan, wgan
from tests.conftest import load_script
from tests.test_parity_gan_tf_slim import torch_to_tf

torch = pytest.importorskip("torch")

TOLERANCE = 1e-4          # inference outputs, max-abs
METRICS_RTOL = 2e-4       # the metrics of a training iteration
METRICS_ATOL = 1e-8       # a floor for metrics that pass through 0
# Relative difference (L2 norm) of the weight updates after two iterations,
# per network.  Measured with the seed used here: WGAN G 4.6e-6, critic
# 2.9e-7; WGAN-GP G 3.5e-5, critic 2.7e-6.  Over other seeds of the data and
# BatchNorm statistics up to 3.0e-2 (G) and 5.3e-4 (critic) in the WGAN-GP:
# the same chaos as above (Adam with beta1 0 also steps by about
# lr * sign(gradient)), on a few elements (0.06 % of G's off by more than
# lr / 2).  G's biases that feed a BatchNorm are left out: BatchNorm
# subtracts the batch mean, so their gradient is 0 in exact arithmetic,
# rounding noise in float32, and RMSProp and Adam scale that noise up to
# steps of about lr.
UPDATE_TOLERANCE = {"generator": 0.1, "critic": 1e-2}
BATCH = 8
N_CRITIC = 5
PARAMETERS = {   # (question, image_shape, width, critic_norm): PyTorch's counts
    ("wgan", (32, 32, 3), None, None): {"generator": 2_890_243, "critic": 260_673},
    ("wgan", (32, 32, 1), None, None): {"generator": 2_883_841, "critic": 259_073},
    ("wgan", (16, 16, 1), None, None): {"generator": 1_244_673, "critic": 53_121},
    ("wgan_gp", (32, 32, 3), 128, "layer"): {"generator": 1_204_483, "critic": 1_055_361},
    ("wgan_gp", (32, 32, 1), 128, "none"): {"generator": 1_202_177, "critic": 1_051_265},
    ("wgan_gp", (32, 32, 3), 16, "layer"): {"generator": 48_419, "critic": 17_233},
}


def build(question, image_shape, width=None, norm=None, lr=None):
    """The PyTorch and the TF networks and optimizers (different seeds: the
    weights are copied), after checking model_info and the parameter counts."""
    pt, tfs = load_script(question, "pytorch"), load_script(question, "tf_slim")
    z_dim = pt.Z_DIM if question == "wgan_gp" else gan.Z_DIM
    lr = lr or (1e-4 if question == "wgan_gp" else 5e-5)
    shape_args = (image_shape, z_dim) if question == "wgan" else (image_shape, z_dim, width, norm)
    pt_networks = pt.build_model(*shape_args, 3, lr, torch.device("cpu"))
    tf_networks = tfs.build_model(*shape_args, 4, lr, "/cpu:0")
    assert tfs.model_info(*shape_args) == pt.model_info(*shape_args)

    # the same parameter counts (TF: the trainable variables; BatchNorm moving statistics are not parameters)
    trainable = tf_networks[0].sess.graph.get_collection(tfs.tf.GraphKeys.TRAINABLE_VARIABLES)
    tf_counts = {name: sum(int(np.prod(v.shape)) for v in trainable if v.op.name.startswith(name + "/"))
                 for name in ("generator", "critic")}
    assert sum(tf_counts.values()) == sum(int(np.prod(v.shape)) for v in trainable)
    pt_counts = {name: sum(p.numel() for p in network.parameters())
                 for name, network in zip(("generator", "critic"), pt_networks)}
    assert tf_counts == pt_counts == PARAMETERS[(question, image_shape, width, norm)]
    return pt, tfs, z_dim, pt_networks, tf_networks


def realistic_norms(generator, critic, z, rng):
    """G's BatchNorm: non-trivial gamma and beta, and running statistics of
    one batch (a train-mode forward with momentum None, a plain average; the
    question's momentum is restored afterwards).  The critic's layer norms
    (if any): gains and offsets away from 1 and 0.  Returns the number of
    BatchNorm layers."""
    layers = [m for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.num_features).astype(np.float32))
        m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.num_features).astype(np.float32))
    generator.train()
    with torch.no_grad():
        generator(torch.from_numpy(z))
    for m in layers:
        m.momentum = 0.1
        assert np.abs(m.running_var.numpy() - 1).max() > 0.05      # really not the initial statistics
    for m in critic.modules():
        if isinstance(m, torch.nn.GroupNorm):
            m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.num_channels).astype(np.float32))
            m.bias.data = torch.from_numpy(rng.uniform(-0.5, 0.5, m.num_channels).astype(np.float32))
    return len(layers)


def tf_values(network):
    """{variable name: value} of a TF network (BatchNorm moving statistics included)."""
    return dict(zip([v.op.name for v in network.variables], network.sess.run(network.variables)))


def copy_weights(pt_networks, tfs, tf_networks, folder):
    """The PyTorch weights in TF's layout, written as the TF checkpoint's
    G and critic files and read by the script's own load_checkpoint."""
    folder.mkdir()
    for network, tf_network, name in zip(pt_networks, tf_networks, (tfs.G_FILE, tfs.D_FILE)):
        values = torch_to_tf(network, [v.op.name for v in tf_network.variables])
        assert {k: v.shape for k, v in values.items()} == {v.op.name: tuple(v.shape) for v in tf_network.variables}
        with open(folder / name, "wb") as f:
            np.savez(f, **values)
    tfs.load_checkpoint(folder, tf_networks)


def same_weights(question, image_shape, pt, tfs, pt_networks, tf_networks, folder, seed=5):
    """Non-trivial norms in PyTorch, copied into TF; the inference outputs compared."""
    rng = np.random.default_rng(seed)
    z_dim = int(tf_networks[0].inputs.shape[1])
    bn_layers = realistic_norms(*pt_networks[:2], wgan.z_draw(pt.NOISE)(64, z_dim, 0, 11), rng)
    copy_weights(pt_networks[:2], tfs, tf_networks[:2], folder)
    (pt_g, pt_c), (tf_g, tf_c) = pt_networks[:2], tf_networks[:2]
    z = wgan.z_draw(pt.NOISE)(BATCH, z_dim, 0, 12)
    expected, got = pt.generate(pt_g, z, "cpu"), tfs.generate(tf_g, z, "/cpu:0")
    assert got.shape == expected.shape == (BATCH, *image_shape)
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert got.std() > 0.02                                          # not trivially equal
    images = rng.uniform(-1, 1, (BATCH, *image_shape)).astype(np.float32)
    for batch in (images, expected):
        want, have = pt.criticize(pt_c, batch, "cpu"), tfs.criticize(tf_c, batch, "/cpu:0")
        assert have.shape == want.shape == (BATCH, 1)
        assert np.abs(have - want).max() < TOLERANCE, np.abs(have - want).max()
        assert np.ptp(want) > 10 * TOLERANCE
    return rng, bn_layers


def align_adam_eps(optimizer, tf_eps, beta2):
    """PyTorch's Adam with TF1's eps placement: before its step t (from 1)
    eps becomes tf_eps / sqrt(1 - beta2^t) (TF1 adds eps before the bias
    correction)."""
    step, count = optimizer.step, [0]

    def aligned_step(*args, **kwargs):
        count[0] += 1
        for group in optimizer.param_groups:
            group["eps"] = tf_eps / np.sqrt(1.0 - beta2 ** count[0])
        return step(*args, **kwargs)
    optimizer.step = aligned_step


def feeds_batchnorm(question, name, image_shape):
    """G's biases whose layer output reaches a BatchNorm (directly, or through
    the residual sums and 1x1 shortcuts, which pass a per-channel constant
    on): all but the last layer's."""
    if not (name.startswith("generator/") and name.endswith("/biases")):
        return False
    last = "out" if question == "wgan_gp" else f"deconv{gan.dcgan_stages(image_shape)[0]}"
    return name != f"generator/{last}/biases"


def two_iterations(question, image_shape, pt, tfs, pt_networks, tf_networks, rng, bn_layers, **step_args):
    """Two iterations in both from the same weights and data: the metrics,
    G's moving statistics after the first, the weight updates after the
    second.  Returns the relative difference of the updates per network."""
    (pt_g, pt_c), (tf_g, tf_c) = pt_networks[:2], tf_networks[:2]
    z_dim = int(tf_g.inputs.shape[1])
    pt_step, tf_step = pt.make_train_step(*pt_networks, **step_args), tfs.make_train_step(*tf_networks, **step_args)
    start = {"generator": tf_values(tf_g), "critic": tf_values(tf_c)}
    z_sampler = (wgan.NormalZSampler if question == "wgan_gp" else wgan.ZSampler)(z_dim, 7)
    mix_sampler = wgan.MixSampler(7)
    for iteration in range(2):
        real = [rng.uniform(-1, 1, (BATCH, *image_shape)).astype(np.float32) for _ in range(N_CRITIC)]
        critic_z = [z_sampler(BATCH) for _ in range(N_CRITIC)]
        # WGAN: one eps (the measure's), after the critic steps; WGAN-GP: one per critic step
        eps = [mix_sampler(BATCH) for _ in range(N_CRITIC)] if question == "wgan_gp" else mix_sampler(BATCH)
        g_z = z_sampler(BATCH)
        pt_eps = [torch.from_numpy(e) for e in eps] if question == "wgan_gp" else torch.from_numpy(eps)
        expected = pt_step([pt.to_nchw(r) for r in real], [torch.from_numpy(z) for z in critic_z], pt_eps,
                           torch.from_numpy(g_z))
        got = tf_step(real, critic_z, eps, g_z)
        assert list(got) == list(expected) == [f for f in wgan.FIELDS[question] if f != "clip_fraction"]
        for key in expected:
            assert got[key] == pytest.approx(expected[key], rel=METRICS_RTOL, abs=METRICS_ATOL), \
                (iteration, key, got, expected)
        if iteration == 0:
            # G's BatchNorm moving statistics moved N_CRITIC + 1 times (every critic step and the
            # G step) with G's weights of before: decay 0.9, the unbiased batch variance
            moving = {k: v for k, v in tf_values(tf_g).items() if "/moving_" in k}
            assert len(moving) == 2 * bn_layers
            for key, value in torch_to_tf(pt_g, list(start["generator"])).items():
                if key in moving:
                    np.testing.assert_allclose(moving[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
                    assert np.abs(value - start["generator"][key]).max() > 1e-3, key   # really moved

    # the same updates of every trainable weight (but the biases that feed a BatchNorm)
    differences = {}
    trainable = tf_g.sess.graph.get_collection(tfs.tf.GraphKeys.TRAINABLE_VARIABLES)
    for name, pt_network, tf_network in (("generator", pt_g, tf_g), ("critic", pt_c, tf_c)):
        names = [v.op.name for v in trainable if v.op.name.startswith(name + "/")
                 and not feeds_batchnorm(question, v.op.name, image_shape)]
        tf_after, pt_after = tf_values(tf_network), torch_to_tf(pt_network, list(start[name]))
        tf_update = np.concatenate([(tf_after[k] - start[name][k]).ravel() for k in names])
        pt_update = np.concatenate([(pt_after[k] - start[name][k]).ravel() for k in names])
        differences[name] = np.linalg.norm(tf_update - pt_update) / np.linalg.norm(pt_update)
        assert differences[name] < UPDATE_TOLERANCE[name], differences
    return differences


# ---------------------------------------------------------------------------
# WGAN
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("image_shape", [(32, 32, 3), (32, 32, 1)], ids=["32x32x3", "32x32x1"])
def test_wgan_same_networks(image_shape, tmp_path):
    pt, tfs, _, pt_networks, tf_networks = build("wgan", image_shape)
    for optimizer in tf_networks[2:]:        # torch's RMSProp: rho 0.99, eps 1e-8 (outside the sqrt)
        assert (optimizer._lr, optimizer._rho, optimizer._epsilon) == (5e-5, 0.99, 1e-8)
    for optimizer in pt_networks[2:]:
        group = optimizer.param_groups[0]
        assert (group["alpha"], group["eps"], group["momentum"], group["centered"]) == (0.99, 1e-8, 0.0, False)
    _, bn_layers = same_weights("wgan", image_shape, pt, tfs, pt_networks, tf_networks, tmp_path / "weights")
    assert bn_layers == 3


def test_wgan_two_iterations(tmp_path):
    image_shape, clip = (16, 16, 1), 0.01
    pt, tfs, _, pt_networks, tf_networks = build("wgan", image_shape)
    rng, bn_layers = same_weights("wgan", image_shape, pt, tfs, pt_networks, tf_networks, tmp_path / "weights")
    two_iterations("wgan", image_shape, pt, tfs, pt_networks, tf_networks, rng, bn_layers, clip=clip)
    # the clipping was at work (N(0, 0.02) weights: 62 % beyond 0.01 at first; 20 % at +-0.01 after)
    weights = [v for k, v in tf_values(tf_networks[1]).items() if k.endswith("/weights")]
    assert max(np.abs(v).max() for v in weights) <= clip * (1 + 1e-6)
    assert wgan.clip_fraction(weights, clip) > 0.1


def test_wgan_clips_every_critic_parameter():
    # lr 0.1: RMSProp's first step (about 10 lr) takes every critic parameter, biases included, past the clip
    tfs = load_script("wgan", "tf_slim")
    networks = tfs.build_model((32, 32, 1), 8, seed=0, lr=0.1, device="/cpu:0")
    generator, critic = networks[:2]
    step = tfs.make_train_step(*networks, clip=0.01)
    rng = np.random.default_rng(0)
    real = [rng.uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32) for _ in range(2)]
    z = [rng.uniform(-1, 1, (4, 8)).astype(np.float32) for _ in range(3)]
    step(real, z[:2], np.full(4, 0.5, np.float32), z[2])
    values = tf_values(critic)
    assert max(np.abs(v).max() for v in values.values()) <= 0.01 * (1 + 1e-6)
    assert 0.5 < wgan.clip_fraction(list(values.values()), 0.01) <= 1.0
    biases = [v for k, v in values.items() if k.endswith("/biases")]
    assert wgan.clip_fraction(biases, 0.01) > 0.5                   # the biases too, not only the weights
    assert max(np.abs(v).max() for v in tf_values(generator).values()) > 0.01   # G is not clipped


# ---------------------------------------------------------------------------
# WGAN-GP
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("image_shape,norm", [((32, 32, 3), "layer"), ((32, 32, 1), "none")],
                         ids=["32x32x3-layer", "32x32x1-none"])
def test_wgan_gp_same_networks(image_shape, norm, tmp_path):
    # the paper's width 128
    pt, tfs, _, pt_networks, tf_networks = build("wgan_gp", image_shape, 128, norm)
    for optimizer in tf_networks[2:]:
        assert (optimizer._lr, optimizer._beta1, optimizer._beta2, optimizer._epsilon) == (1e-4, 0.0, 0.9, 1e-8)
    _, bn_layers = same_weights("wgan_gp", image_shape, pt, tfs, pt_networks, tf_networks, tmp_path / "weights")
    assert bn_layers == 7


def test_wgan_gp_two_iterations(tmp_path):
    # width 16, layer norm: the penalty's double backprop through layer norm, LeakyReLU, the
    # convolutions and the mean pools
    image_shape = (32, 32, 3)
    pt, tfs, _, pt_networks, tf_networks = build("wgan_gp", image_shape, 16, "layer")
    for optimizer in pt_networks[2:]:
        align_adam_eps(optimizer, tfs.ADAM_EPS, tfs.ADAM_BETAS[1])
    rng, bn_layers = same_weights("wgan_gp", image_shape, pt, tfs, pt_networks, tf_networks, tmp_path / "weights")
    two_iterations("wgan_gp", image_shape, pt, tfs, pt_networks, tf_networks, rng, bn_layers, gp_weight=10.0)
