"""The TF-Slim pix2pix and pix2pix_gp are the PyTorch ones (issue 13,
DESIGN.md section 7):

- the same model_info, parameter counts per network (pinned: PARAMETERS of
  tests/test_answers_pix2pix.py, PyTorch's sum(p.numel())) and output
  shapes at the question's size (64x64, --width 32);
- with the PyTorch weights (every BatchNorm's gamma, beta and running
  statistics made non-trivial) written into the TF checkpoint files and read
  by the script's load_checkpoint: the same G(x) in inference mode and the
  same D logits per patch (pix2pix's D in inference mode, with BatchNorm;
  pix2pix_gp's D without), max-abs difference below 1e-4;
- from those identical weights and the same batches (and eps): two full
  iterations (pix2pix: G(x) once, the D step, the G step judged by the
  updated D; pix2pix_gp: N_CRITIC D steps with the penalty's double
  backprop, then the G step) give the same metrics (2e-4 relative), the
  same BatchNorm moving statistics after the first (G's moved once per G
  forward: 1 (pix2pix) or N_CRITIC + 1 times; pix2pix's D's three times, in
  the order real pair, fake pair, the G step's fake pair), and the same
  weight updates after the second (FLIPS, UPDATE_TOLERANCE).

TF1's Adam adds eps to sqrt(v) before the bias correction, PyTorch after:
PyTorch's eps is set, step by step, to TF's eps / sqrt(1 - beta2^t)
(test_parity_wgan_tf_slim.align_adam_eps), which makes the two updates the
same formula.  The iterations run at 32x32, --width 2, batch 4 (every layer
of the question's networks, a 2x2 map of patches).
"""
from argparse import Namespace

import numpy as np
import pytest

from common import pix2pix
from tests.conftest import load_script
from tests.test_answers_pix2pix import PARAMETERS
from tests.test_parity_gan_tf_slim import torch_to_tf
from tests.test_parity_wgan_tf_slim import align_adam_eps

torch = pytest.importorskip("torch")

QUESTIONS = ("pix2pix", "pix2pix_gp")
TOLERANCE = 1e-4          # inference outputs, max-abs
METRICS_RTOL = 2e-4       # the metrics of a training iteration
METRICS_ATOL = 1e-8
# The weight updates after two iterations, per network: FLIPS, the share of
# elements whose TF and PyTorch updates differ by more than lr / 2 (Adam's
# first steps are about +-lr whatever the gradient's size, so where the
# gradient is near 0 the sign of the rounding noise decides), and
# UPDATE_TOLERANCE, the L2 norm of the difference of the other elements'
# updates relative to that of PyTorch's whole update.  Measured at SEED 6:
# pix2pix G 0 / 4.1e-5, D 0 / 5.8e-6; pix2pix_gp G 0 / 7.7e-5, D 0 / 7.0e-6.
# Over SEEDs 0-9 (20 cases) D never flipped (at most 1.5e-4), G did not in
# 17 (at most 5.6e-4); in 3 G flipped 0.05-0.7 % of its elements (0.015-0.053
# for the others): a near tie in a 2x2 max-pool window (two values 1e-6
# apart, measured in one of them) sends G's gradient to the other pixel when TF's float32
# rounding (about 1e-5 relative here, the BatchNorms of a 2-wide U-Net
# dividing by small deviations) differs from PyTorch's; in float64 the two
# G gradients agree to 5e-8 (TF keeps BatchNorm's eps in float32).  Keras'
# Adam eps (1e-7) gives G 37 % / 0.16 and D 8.5e-5 / 9.4e-3.
FLIPS = {"generator": 0.01, "discriminator": 0.0}
UPDATE_TOLERANCE = {"generator": 0.1, "discriminator": 1e-3}
LR = 2e-4
PALETTE = np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0]], np.uint8)
CLASS_NAMES = ["background", "akahara", "madara"]
BATCH, SIZE, WIDTH, N_CRITIC = 4, 32, 2, 2
SEED = 6                  # the data and BatchNorm statistics of the iterations
NETWORKS = ("generator", "discriminator")
D_GAIN = {"pix2pix": 1.0, "pix2pix_gp": 4.0}   # the iterations' D: pix2pix_gp's logits of order 0.1, not 1e-4
G_SECTIONS = ("downs", "ups", "up_blocks", "out")     # PyTorch's module order in Generator


def torch_order(name):
    """Sort key: TF variable names in the order of PyTorch's modules (G's
    TF scopes are made in forward order: downs, then ups_3, up_blocks_3,
    ups_2, ...; PyTorch lists downs, ups 0-3, up_blocks 0-3, out)."""
    parts = name.split("/")
    if parts[0] != "generator":
        return (0, 0)
    section, _, level = parts[1].rpartition("_")
    return (G_SECTIONS.index(section or level), int(level) if section else 0)


def tf_names(network):
    return sorted((v.op.name for v in network.variables), key=torch_order)     # a stable sort


def tf_values(network):
    """{variable name: value} of a TF network (BatchNorm moving statistics included)."""
    return dict(zip([v.op.name for v in network.variables], network.sess.run(network.variables)))


def build(question, size, width, seed=0):
    """The PyTorch and the TF networks and optimizers (other seeds: the
    weights are copied), after checking model_info and the parameter counts."""
    pt, tfs = load_script(question, "pytorch"), load_script(question, "tf_slim")
    args = Namespace(size=size, direction="photo2mask", width=width)
    info = pt.model_info(args, PALETTE, CLASS_NAMES)
    assert tfs.model_info(args, PALETTE, CLASS_NAMES) == info
    pt_networks = pt.build_model(info, seed, LR, torch.device("cpu"))
    tf_networks = tfs.build_model(info, seed + 1, LR, "/cpu:0")
    # the same parameter counts (TF: the trainable variables; BatchNorm moving statistics are not parameters)
    trainable = tf_networks[0].sess.graph.get_collection(tfs.tf.GraphKeys.TRAINABLE_VARIABLES)
    tf_counts = tuple(sum(int(np.prod(v.shape)) for v in trainable if v.op.name.startswith(name + "/"))
                      for name in NETWORKS)
    assert sum(tf_counts) == sum(int(np.prod(v.shape)) for v in trainable)
    assert tf_counts == tuple(sum(p.numel() for p in network.parameters()) for network in pt_networks[:2])
    return pt, tfs, pt_networks, tf_networks, tf_counts


def realistic_weights(pt_networks, inputs, targets, rng, d_gain):
    """Every BatchNorm (G's; pix2pix's D's): gamma and beta away from 1 and
    0, running statistics of one batch (a train-mode forward with momentum
    None, a plain average; the question's momentum restored afterwards).
    ``d_gain``: D's conv weights times this (a thin D without BatchNorm
    makes logits of 1e-4 at initialisation).  Returns the number of
    BatchNorm layers per network."""
    generator, discriminator = pt_networks[:2]
    with torch.no_grad():
        for m in discriminator.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(d_gain)
    counts = []
    for network in (generator, discriminator):
        layers = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for m in layers:
            m.reset_running_stats()
            m.momentum = None
            m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.num_features).astype(np.float32))
            m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.num_features).astype(np.float32))
        counts.append(len(layers))
    generator.train()
    discriminator.train()
    x, y = torch.from_numpy(inputs).permute(0, 3, 1, 2), torch.from_numpy(targets).permute(0, 3, 1, 2)
    with torch.no_grad():
        discriminator(x, generator(x))
        discriminator(x, y)                         # D's statistics of a real and a fake batch
    for network in (generator, discriminator):
        for m in network.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.1
                assert np.abs(m.running_var.numpy() - 1).max() > 0.05      # really not the initial statistics
    return counts


def copy_weights(pt_networks, tfs, tf_networks, folder):
    """The PyTorch weights in TF's layout, written as the TF checkpoint's
    G and D files and read by the script's own load_checkpoint."""
    folder.mkdir()
    for network, tf_network, name in zip(pt_networks, tf_networks, (tfs.G_FILE, tfs.D_FILE)):
        values = torch_to_tf(network, tf_names(tf_network))
        assert {k: v.shape for k, v in values.items()} == {v.op.name: tuple(v.shape) for v in tf_network.variables}
        with open(folder / name, "wb") as f:
            np.savez(f, **values)
    tfs.load_checkpoint(folder, tf_networks[:2])


def batch(rng, size=SIZE, n=BATCH):
    """(photos, one-hot masks in [-1, 1]) NHWC: a photo2mask batch."""
    photos = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
    return photos, pix2pix.one_hot(rng.integers(0, 3, (n, size, size)), 3)


def same_weights(pt, tfs, pt_networks, tf_networks, folder, rng, size, d_gain=1.0):
    """Non-trivial BatchNorms in PyTorch, copied into TF; G(x) and D's
    logits in inference mode compared.  Returns the BatchNorm counts."""
    counts = realistic_weights(pt_networks, *batch(rng, size, 8), rng, d_gain)
    copy_weights(pt_networks[:2], tfs, tf_networks[:2], folder)
    (pt_g, pt_d), (tf_g, tf_d) = pt_networks[:2], tf_networks[:2]
    x, y = batch(rng, size, 2)
    expected, got = pt.translate(pt_g, x, "cpu"), tfs.translate(tf_g, x, "/cpu:0")
    assert got.shape == expected.shape == (2, size, size, 3)
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert np.ptp(got) > 100 * TOLERANCE                             # not trivially equal
    pt_d.eval()
    for outputs in (expected, y):
        with torch.no_grad():
            want = pt_d(pt.to_nchw(x), pt.to_nchw(outputs)).permute(0, 2, 3, 1).numpy()
        have = tf_d.sess.run(tf_d.output, dict(zip(tf_d.inputs, (x, outputs))))
        assert have.shape == want.shape == (2, size // 8 - 2, size // 8 - 2, 1)
        assert np.abs(have - want).max() < TOLERANCE, np.abs(have - want).max()
        assert np.ptp(want) > 10 * TOLERANCE
    return counts


@pytest.mark.parametrize("question", QUESTIONS)
def test_same_networks(question, tmp_path):
    # the question's networks: 64x64 pairs, --width 32
    pt, tfs, pt_networks, tf_networks, counts = build(question, 64, 32)
    assert counts == PARAMETERS[question]
    for optimizer in tf_networks[2:]:
        assert (optimizer._lr, optimizer._beta1, optimizer._beta2, optimizer._epsilon) == (2e-4, 0.5, 0.999, 1e-8)
    bn_layers = same_weights(pt, tfs, pt_networks, tf_networks, tmp_path / "weights", np.random.default_rng(5), 64)
    assert bn_layers == [18, 3 if question == "pix2pix" else 0]


def moving_statistics(network):
    return {k: v for k, v in tf_values(network).items() if "/moving_" in k}


@pytest.mark.parametrize("question", QUESTIONS)
def test_two_iterations(question, tmp_path):
    pt, tfs, pt_networks, tf_networks, _ = build(question, SIZE, WIDTH)
    for optimizer in pt_networks[2:]:
        align_adam_eps(optimizer, pt.ADAM_EPS, pt.ADAM_BETAS[1])     # the question's eps, placed as TF1 does
    rng = np.random.default_rng(SEED)
    bn_layers = same_weights(pt, tfs, pt_networks, tf_networks, tmp_path / "weights", rng, SIZE,
                             d_gain=D_GAIN[question])
    step_args = {"gan_weight": 1.0, "l1_weight": 100.0}
    if question == "pix2pix_gp":
        step_args["gp_weight"] = 10.0
    pt_step, tf_step = pt.make_train_step(*pt_networks, **step_args), tfs.make_train_step(*tf_networks, **step_args)
    start = {name: tf_values(network) for name, network in zip(NETWORKS, tf_networks)}
    mix_sampler = pix2pix.MixSampler(7)
    for iteration in range(2):
        if question == "pix2pix":
            x, y = batch(rng)
            expected, got = pt_step(pt.to_nchw(x), pt.to_nchw(y)), tf_step(x, y)
        else:
            d_batches = [batch(rng) for _ in range(N_CRITIC)]
            eps = [mix_sampler(BATCH) for _ in range(N_CRITIC)]
            g_batch = batch(rng)
            expected = pt_step([tuple(map(pt.to_nchw, b)) for b in d_batches], [torch.from_numpy(e) for e in eps],
                               tuple(map(pt.to_nchw, g_batch)))
            got = tf_step(d_batches, eps, g_batch)
        assert sorted(got) == sorted(expected) == sorted(pix2pix.FIELDS[question])
        for key in expected:
            assert got[key] == pytest.approx(expected[key], rel=METRICS_RTOL, abs=METRICS_ATOL), \
                (iteration, key, got, expected)
        if iteration == 0:
            # the moving statistics after one iteration: G's moved at every G forward in training mode,
            # pix2pix's D's at each of its three forwards, in order (decay 0.9, the unbiased batch variance)
            for name, pt_network, tf_network, layers in zip(NETWORKS, pt_networks, tf_networks, bn_layers):
                moving = moving_statistics(tf_network)
                assert len(moving) == 2 * layers
                moved = [0.0]
                for key, value in torch_to_tf(pt_network, tf_names(tf_network)).items():
                    if key in moving:
                        np.testing.assert_allclose(moving[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
                        moved.append(np.abs(value - start[name][key]).max())
                        assert moved[-1] > 1e-6, key                                # every one moved
                assert max(moved) > 1e-3 or not layers, (name, max(moved))      # and not by rounding noise

    # the same updates of every trainable weight, but for a few elements of G whose gradient is
    # near 0: Adam's first steps are about +-lr whatever the gradient's size, so there the sign of
    # the rounding noise decides (FLIPS)
    trainable = tf_networks[0].sess.graph.get_collection(tfs.tf.GraphKeys.TRAINABLE_VARIABLES)
    report = {}
    for name, pt_network, tf_network in zip(NETWORKS, pt_networks, tf_networks):
        names = [v.op.name for v in trainable if v.op.name.startswith(name + "/")]
        tf_after, pt_after = tf_values(tf_network), torch_to_tf(pt_network, tf_names(tf_network))
        tf_update = np.concatenate([(tf_after[k] - start[name][k]).ravel() for k in names])
        pt_update = np.concatenate([(pt_after[k] - start[name][k]).ravel() for k in names])
        assert np.abs(pt_update).max() > LR                              # really trained: steps of about lr
        flipped = np.abs(tf_update - pt_update) > LR / 2
        rest = ~flipped
        report[name] = (flipped.mean(), np.linalg.norm(tf_update[rest] - pt_update[rest]) / np.linalg.norm(pt_update))
    for name in NETWORKS:
        assert report[name][0] <= FLIPS[name] and report[name][1] < UPDATE_TOLERANCE[name], (name, report)
