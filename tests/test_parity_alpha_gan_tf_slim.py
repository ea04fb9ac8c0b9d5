"""The TF-Slim alpha-GAN is the PyTorch alpha-GAN (DESIGN.md section 7):

- at 28x28x1 z10 (MNIST), 32x32x3 z128 (CIFAR-10) and 64x64x3 z10 (the
  newts): the same model_info, the same parameter counts per network G, D,
  E, C (pinned: PARAMETERS of tests/test_answers_alpha_gan.py, PyTorch's
  sum(p.numel())) and output shapes; the explicit settings (Adam lr, betas
  and eps of all four optimizers; BatchNorm eps 1e-5 and only in G;
  LeakyReLU 0.2);
- with the PyTorch weights (G's BatchNorm gamma, beta and running
  statistics made non-trivial; D's, E's and C's weights scaled by GAIN, so
  that their outputs are of order 1, not 1e-3) written into the TF
  checkpoint files and read by the script's load_checkpoint: the same G(z)
  in inference mode, D(x), E(x) and C(z) (max-abs difference below 1e-4);
- from those identical weights, the same real batch and the same z: one full
  iteration (E, G, G, D, C) gives the same ten metrics (METRICS_RTOL), the
  same G moving statistics (moved 4 times: decay 0.9, the unbiased batch
  variance of the 2N batch) and the same updated weights of all four
  networks as PyTorch's in float64 (FLIPS, UPDATE_TOLERANCE), at 8x8x1 z4
  (one stage, what the answer tests train) and 28x28x1 z10 (the question's).

TF1's Adam adds eps to sqrt(v) before the bias correction, PyTorch after:
PyTorch's eps is set, step by step, to TF's eps / sqrt(1 - beta2^t)
(test_parity_wgan_tf_slim.align_adam_eps), which makes the two updates the
same formula.
"""
import copy

import numpy as np
import pytest

from common import alpha_gan, gan
from tests.conftest import load_script
from tests.test_answers_alpha_gan import PARAMETERS
from tests.test_parity_gan_tf_slim import realistic_batchnorm, torch_to_tf
from tests.test_parity_wgan_tf_slim import align_adam_eps, feeds_batchnorm

torch = pytest.importorskip("torch")

NETWORKS = ("generator", "discriminator", "encoder", "code_discriminator")
LR, ENCODER_LR = 5e-4, 1e-4
RATES = (LR, LR, ENCODER_LR, LR)          # G, D, E, C
TOLERANCE = 1e-4          # inference outputs, max-abs
GAIN = 4.0                # D's, E's and C's weights times this: outputs of order 1 (N(0, 0.02) makes 1e-3)
BATCH = 8
METRICS_RTOL = 2e-4       # the ten metrics of the iteration, against PyTorch float32 and float64
METRICS_ATOL = 1e-7
# The iteration's updates are compared with PyTorch's in float64 (the same
# script, its networks .double()): PyTorch float32 differs from float64 as
# much as TF float32 does, or more (SEED 6 at 28x28: PyTorch float32 flips
# 1.4e-5 of G's elements and 5.4e-4 of D's, TF none), so float64 is the
# reference for both.  Adam's
# first steps are about lr * sign(gradient) whatever the gradient's size, so
# where a gradient is near 0 the sign of the rounding noise decides: FLIPS is
# the share of a network's elements whose TF and PyTorch updates differ by
# more than lr / 2, UPDATE_TOLERANCE the L2 norm of the difference of the
# other elements' updates relative to that of PyTorch's whole update.  G's
# biases that feed a BatchNorm are left out (BatchNorm subtracts the batch
# mean: their gradient is 0 in exact arithmetic, noise in float32 and
# float64, which Adam scales up to steps of +-lr); those random steps move
# the batch means G's moving means average, by at most 0.1 * (0.9 * 2 lr +
# 4.1 lr) after the 4 updates: MEAN_ATOL.
# Measured at SEED 6: metrics 3e-7 (float32) / 4e-7 (float64) relative; no
# flips; updates 8x8 G 2.3e-4, D 4.9e-7, E 2.2e-6, C 7.8e-6; 28x28 G 5.6e-5,
# D 3.3e-5, E 1.9e-5, C 1.2e-4; moving means 1.0e-4, variances 3.3e-7.
# Over SEEDs 0-7 (16 cases): metrics at most 1.4e-6 from float32 and 8.5e-5
# from float64; flips in 3 cases at 28x28 (G 1e-6 and 9.8e-5, D 2.7e-4 and
# 1.2e-3 of the elements), the rest at most 4.1e-3 (G), moving means 1.7e-4,
# variances 1.5e-4 (seed 5, where 0.12 % of D flipped; 3.4e-5 without it).
SEED = 6                  # the weights' BatchNorm statistics, the batch and z of the iteration
FLIPS = 0.002
UPDATE_TOLERANCE = 5e-3
MEAN_ATOL = 0.6 * LR
VARIANCE_ATOL = 2e-4
ITERATION_CASES = [((8, 8, 1), 4), ((28, 28, 1), 10)]


@pytest.fixture(scope="module")
def scripts():
    return load_script("alpha_gan", "pytorch"), load_script("alpha_gan", "tf_slim")


def tf_values(network):
    """{variable name: value} of a TF network (BatchNorm moving statistics included)."""
    return dict(zip([v.op.name for v in network.variables], network.sess.run(network.variables)))


def build(pt, tfs, image_shape, z_dim):
    """The PyTorch and the TF networks and optimizers (another seed in TF:
    the weights are copied), after checking model_info and the parameter
    counts; returns them and the counts."""
    assert tfs.model_info(image_shape, z_dim) == pt.model_info(image_shape, z_dim)
    pt_networks = pt.build_model(image_shape, z_dim, 3, LR, ENCODER_LR, torch.device("cpu"))
    tf_networks = tfs.build_model(image_shape, z_dim, 4, LR, ENCODER_LR, "/cpu:0")
    # the same parameter counts (TF: the trainable variables; BatchNorm moving statistics are not parameters)
    trainable = tf_networks[0].sess.graph.get_collection(tfs.tf.GraphKeys.TRAINABLE_VARIABLES)
    tf_counts = {name: sum(int(np.prod(v.shape)) for v in trainable if v.op.name.startswith(name + "/"))
                 for name in NETWORKS}
    assert sum(tf_counts.values()) == sum(int(np.prod(v.shape)) for v in trainable)
    assert tf_counts == {name: sum(p.numel() for p in network.parameters())
                         for name, network in zip(NETWORKS, pt_networks[:4])}
    return pt_networks, tf_networks, tf_counts


def same_weights(pt, tfs, pt_networks, tf_networks, folder, rng):
    """Non-trivial BatchNorms in PyTorch's G and D, E, C scaled by GAIN,
    written as the TF checkpoint's files and read by the script's own
    load_checkpoint; the inference outputs of all four compared.  Returns
    the number of G's BatchNorm layers."""
    image_shape = tuple(tf_networks[1].input.shape[1:])
    z_dim = int(tf_networks[0].input.shape[1])
    bn_layers = realistic_batchnorm(pt_networks[0], rng.standard_normal((64, z_dim)).astype(np.float32), rng)
    with torch.no_grad():
        for network in pt_networks[1:4]:
            for m in network.modules():
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                    m.weight.mul_(GAIN)
    folder.mkdir()
    for network, tf_network, name in zip(pt_networks[:4], tf_networks[:4],
                                         (tfs.G_FILE, tfs.D_FILE, tfs.E_FILE, tfs.C_FILE)):
        values = torch_to_tf(network, [v.op.name for v in tf_network.variables])
        assert {k: v.shape for k, v in values.items()} == {v.op.name: tuple(v.shape) for v in tf_network.variables}
        with open(folder / name, "wb") as f:
            np.savez(f, **values)
    tfs.load_checkpoint(folder, tf_networks[:4])

    (pt_g, pt_d, pt_e, pt_c), (tf_g, tf_d, tf_e, tf_c) = pt_networks[:4], tf_networks[:4]
    z = rng.standard_normal((4, z_dim)).astype(np.float32)
    expected, got = pt.generate(pt_g, z, "cpu"), tfs.generate(tf_g, z, "/cpu:0")
    assert got.shape == expected.shape == (4, *image_shape)
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert got.std() > 0.02                                              # not trivially equal
    images = np.concatenate([rng.uniform(-1, 1, (4, *image_shape)).astype(np.float32), expected])
    for want, have, shape in ((pt.discriminate(pt_d, images, "cpu"), tfs.discriminate(tf_d, images, "/cpu:0"), 1),
                              (pt.encode(pt_e, images, "cpu"), tfs.encode(tf_e, images, "/cpu:0"), z_dim),
                              (pt.in_batches(pt_c, z, "cpu"), tfs.in_batches(tf_c, z), 1)):
        assert have.shape == want.shape == (len(want), shape)
        assert np.abs(have - want).max() < TOLERANCE, np.abs(have - want).max()
        assert np.ptp(want) > 0.1                                         # outputs of order 1
    return bn_layers


@pytest.mark.parametrize("image_shape,z_dim", list(PARAMETERS), ids=["28x28x1", "32x32x3", "64x64x3"])
def test_same_networks(scripts, image_shape, z_dim, tmp_path):
    pt, tfs = scripts
    tf = tfs.tf
    pt_networks, tf_networks, counts = build(pt, tfs, image_shape, z_dim)
    assert counts == PARAMETERS[image_shape, z_dim]
    # Adam: betas (0.5, 0.9) and eps 1e-8 for all four, lr 5e-4 for G, D, C and 1e-4 for E
    assert [(o._lr, o._beta1, o._beta2, o._epsilon) for o in tf_networks[4:]] == [
        (rate, 0.5, 0.9, 1e-8) for rate in RATES]
    # BatchNorm (eps 1e-5) in G only; LeakyReLU 0.2 in D, E and C
    graph = tf_networks[0].sess.graph
    moving = [v.op.name for v in graph.get_collection(tf.GraphKeys.MODEL_VARIABLES) if "/moving_" in v.op.name]
    assert moving and all(name.startswith("generator/") for name in moving)
    norms = [op for op in graph.get_operations() if op.type.startswith("FusedBatchNorm")]
    assert len(norms) == gan.dcgan_stages(image_shape)[0]                # G's inference graph: one per layer
    np.testing.assert_allclose([op.get_attr("epsilon") for op in norms], 1e-5, rtol=1e-6)
    leaky = [op for op in graph.get_operations() if op.type == "LeakyRelu"]
    assert {op.name.split("/")[0] for op in leaky} == {"discriminator", "encoder", "code_discriminator"}
    np.testing.assert_allclose([op.get_attr("alpha") for op in leaky], 0.2, rtol=1e-6)
    # E is D's convolution stack with another Dense: the same convolution shapes
    shapes = {name: {v.op.name.split("/", 1)[1]: tuple(v.shape) for v in network.variables}
              for name, network in zip(NETWORKS, tf_networks)}
    assert {k: s for k, s in shapes["encoder"].items() if k.startswith("conv")} == {
        k: s for k, s in shapes["discriminator"].items() if k.startswith("conv")}
    assert shapes["encoder"]["dense/weights"][1] == z_dim and shapes["discriminator"]["dense/weights"][1] == 1
    bn_layers = same_weights(pt, tfs, pt_networks, tf_networks, tmp_path / "weights", np.random.default_rng(5))
    assert bn_layers == gan.dcgan_stages(image_shape)[0]


@pytest.mark.parametrize("image_shape,z_dim", ITERATION_CASES, ids=["8x8x1", "28x28x1"])
def test_one_iteration(scripts, image_shape, z_dim, tmp_path):
    pt, tfs = scripts
    pt_networks, tf_networks, _ = build(pt, tfs, image_shape, z_dim)
    rng = np.random.default_rng(SEED)
    bn_layers = same_weights(pt, tfs, pt_networks, tf_networks, tmp_path / "weights", rng)
    # PyTorch in float64 too, from the same weights: the reference for the updates
    exact = [copy.deepcopy(network).double() for network in pt_networks[:4]]
    exact += [torch.optim.Adam(network.parameters(), lr=rate, betas=pt.ADAM_BETAS, eps=pt.ADAM_EPS)
              for network, rate in zip(exact, RATES)]
    for optimizer in (*pt_networks[4:], *exact[4:]):
        align_adam_eps(optimizer, pt.ADAM_EPS, pt.ADAM_BETAS[1])      # the question's eps, placed as TF1 does
    steps = {"float32": pt.make_train_step(*pt_networks, l1_weight=1.0),
             "float64": pt.make_train_step(*exact, l1_weight=1.0)}
    tf_step = tfs.make_train_step(*tf_networks, l1_weight=1.0)
    start = {name: tf_values(network) for name, network in zip(NETWORKS, tf_networks)}
    real_images = rng.uniform(-1, 1, (BATCH, *image_shape)).astype(np.float32)
    z = alpha_gan.ZSampler(z_dim, SEED)(BATCH)
    expected = {"float32": steps["float32"](pt.to_nchw(real_images), torch.from_numpy(z)),
                "float64": steps["float64"](pt.to_nchw(real_images).double(), torch.from_numpy(z).double())}
    got = tf_step(real_images, z)
    for want in expected.values():
        assert list(got) == list(want) == alpha_gan.FIELDS
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=METRICS_RTOL, abs=METRICS_ATOL), (key, got, want)

    reference = [network.float() for network in exact[:4]]
    tf_g, pt_g = tf_networks[0], reference[0]
    # G's moving statistics moved 4 times (the E step, the G steps, the D step), in that order
    moving = {k: v for k, v in tf_values(tf_g).items() if "/moving_" in k}
    assert len(moving) == 2 * bn_layers
    for key, value in torch_to_tf(pt_g, list(start["generator"])).items():
        if key in moving:
            tolerance = MEAN_ATOL if key.endswith("/moving_mean") else VARIANCE_ATOL
            np.testing.assert_allclose(moving[key], value, rtol=0, atol=tolerance, err_msg=key)
            assert np.abs(value - start["generator"][key]).max() > 1e-3, key       # really moved

    # the same updates of every trainable weight (but G's biases that feed a BatchNorm)
    trainable = tf_g.sess.graph.get_collection(tfs.tf.GraphKeys.TRAINABLE_VARIABLES)
    report = {}
    for name, rate, pt_network, tf_network in zip(NETWORKS, RATES, reference, tf_networks):
        names = [v.op.name for v in trainable if v.op.name.startswith(name + "/")
                 and not feeds_batchnorm("alpha_gan", v.op.name, image_shape)]
        tf_after, pt_after = tf_values(tf_network), torch_to_tf(pt_network, list(start[name]))
        tf_update = np.concatenate([(tf_after[k] - start[name][k]).ravel() for k in names])
        pt_update = np.concatenate([(pt_after[k] - start[name][k]).ravel() for k in names])
        assert np.abs(pt_update).max() > 0.5 * rate, name                  # really trained: steps of about lr
        flipped = np.abs(tf_update - pt_update) > rate / 2
        rest = ~flipped
        report[name] = (float(flipped.mean()),
                        float(np.linalg.norm(tf_update[rest] - pt_update[rest]) / np.linalg.norm(pt_update)))
    for name in NETWORKS:
        assert report[name][0] <= FLIPS and report[name][1] < UPDATE_TOLERANCE, (name, report)
