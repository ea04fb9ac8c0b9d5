"""The TF-Slim GAN and DCGAN are the PyTorch networks and the PyTorch train
step (DESIGN.md section 7).

For both questions, at 64x64x3 (the newts), 28x28x1 (the digits) and
32x32x3 (CIFAR-10):
- the same parameter counts per network, and the same model_info;
- with the PyTorch weights (BatchNorm gamma, beta and running statistics
  made non-trivial) written into the TF model's save_me files and loaded by
  change_me: the same generator images and discriminator logits in
  inference mode (max-abs difference below 1e-4);
- from those identical weights, the same real batch and the same z: the
  same five metrics of a training step (rtol 1e-3), the same BatchNorm
  moving statistics after it (decay 0.9, unbiased batch variance), and the
  same metrics of a second step, which sees both updates.  The step's
  g_loss is measured with the *updated* D; the test checks that the D of
  before the update would have given a g_loss outside the tolerance.
"""
import copy

import numpy as np
import pytest

from common import gan
from tests.conftest import load_script
from tests.convert import torch_to_tf_conv, torch_to_tf_deconv, torch_to_tf_dense
from tests.test_parity_dcgan_tf import PARAMETERS as DCGAN_PARAMETERS

torch = pytest.importorskip("torch")

TOLERANCE = 1e-4       # inference outputs, max-abs
STEP_RTOL = 1e-3       # training-step metrics
SHAPES = [(64, 64, 3), (28, 28, 1), (32, 32, 3)]
SHAPE_IDS = ["64x64x3", "28x28x1", "32x32x3"]
CLASSES = {"gan": "GAN", "dcgan": "DCGAN"}
# The MLP GAN with z_dim 100: G 100-128-256-512-H*W*C, D H*W*C-512-256-1 (weights and biases).
GAN_PARAMETERS = {
    (64, 64, 3): {"generator": 6_481_280, "discriminator": 6_423_553},
    (28, 28, 1): {"generator": 579_728, "discriminator": 533_505},
    (32, 32, 3): {"generator": 1_753_472, "discriminator": 1_704_961},
}
PARAMETERS = {"gan": GAN_PARAMETERS, "dcgan": DCGAN_PARAMETERS}
BATCH = 16
LS_EPSILON = 0.1


def torch_layers(network):
    """[module] of the layers that hold parameters, in order."""
    return [m for m in network.modules() if list(m.parameters(recurse=False))]


def tf_layers(names):
    """[(scope, [variable names])] grouped by layer scope, in creation order."""
    layers = {}
    for name in names:
        layers.setdefault(name.rsplit("/", 1)[0], []).append(name)
    return list(layers.items())


def torch_value(module, leaf):
    """The PyTorch parameter or buffer behind the TF variable ``.../leaf``, in TF's layout."""
    if leaf == "weights":
        weight = module.weight.detach().numpy()
        if isinstance(module, torch.nn.ConvTranspose2d):
            return torch_to_tf_deconv(weight)
        if isinstance(module, torch.nn.Conv2d):
            return torch_to_tf_conv(weight)
        if isinstance(module, torch.nn.Linear):
            return torch_to_tf_dense(weight)
        raise TypeError(type(module).__name__)
    tensor = {"biases": module.bias, "gamma": module.weight, "beta": module.bias,
              "moving_mean": getattr(module, "running_mean", None),
              "moving_variance": getattr(module, "running_var", None)}[leaf]
    return tensor.detach().numpy().copy()


def torch_to_tf(network, names):
    """{TF variable name: value} for one network, from the PyTorch module."""
    torch_list, tf_list = torch_layers(network), tf_layers(names)
    assert len(torch_list) == len(tf_list), ([type(m).__name__ for m in torch_list], [s for s, _ in tf_list])
    values = {}
    for module, (scope, keys) in zip(torch_list, tf_list):
        is_bn = isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))
        assert is_bn == scope.split("/")[-1].startswith("bn"), (scope, type(module).__name__)
        for key in keys:
            values[key] = torch_value(module, key.rsplit("/", 1)[1])
    return values


def realistic_batchnorm(generator, z, rng):
    """Non-trivial gamma and beta, and running statistics of one batch (a
    train-mode forward with momentum None, a plain average); the question's
    momentum is restored afterwards for the training steps."""
    layers = [m for m in generator.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
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
        assert np.abs(m.running_var.numpy() - 1).max() > 0.1      # really not the initial statistics
    return len(layers)


def load_into_tf(pt_model, tf_model, folder):
    """Write the PyTorch weights into the TF model's own save_me files and
    load them with change_me (the class API's way in)."""
    g_path, d_path, val_path = tf_model.save_me(folder)
    for path, network in ((g_path, pt_model.generator), (d_path, pt_model.discriminator)):
        with np.load(path) as saved:
            names, shapes = list(saved.files), {k: saved[k].shape for k in saved.files}
        values = torch_to_tf(network, names)
        assert {k: v.shape for k, v in values.items()} == shapes
        with open(path, "wb") as f:
            np.savez(f, **values)
    tf_model.change_me(folder, g_path.name, d_path.name, val_path.name)


def tf_saved(tf_model, folder):
    """{name: value} of both networks' variables, through save_me."""
    values = {}
    for path in tf_model.save_me(folder)[:2]:
        with np.load(path) as saved:
            values.update({k: saved[k] for k in saved.files})
    return values


def stale_g_loss(pt_model, z):
    """G's loss judged by the D of *before* the D update (a copy of the
    models, so the real ones stay untouched): what a wrong step order gives."""
    generator, discriminator = copy.deepcopy(pt_model.generator), copy.deepcopy(pt_model.discriminator)
    generator.train()
    discriminator.train()
    with torch.no_grad():
        logits = discriminator(generator(torch.from_numpy(z)))
        return float(torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)))


@pytest.fixture(scope="module")
def scripts():
    return {q: (load_script(q, "pytorch"), load_script(q, "tf_slim")) for q in CLASSES}


@pytest.mark.parametrize("image_shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("question", sorted(CLASSES))
def test_same_network_and_train_step(scripts, question, image_shape, tmp_path):
    pt, tfs = scripts[question]
    tf = tfs.tf
    pt_model = getattr(pt, CLASSES[question])("parity", 100, image_shape, seed=3, device="cpu")
    tf_model = getattr(tfs, CLASSES[question])("parity", 100, image_shape, seed=4, device="cpu")
    assert tf_model.model_info(image_shape, 100) == pt_model.model_info(image_shape, 100)

    # the same parameter counts (TF: the trainable variables; BatchNorm moving statistics are not parameters)
    with tf_model.graph.as_default():
        trainable = tf.trainable_variables()
    tf_counts = {name: sum(int(np.prod(v.shape)) for v in trainable if v.op.name.startswith(name + "/"))
                 for name in ("generator", "discriminator")}
    pt_counts = {name: sum(p.numel() for p in getattr(pt_model, name).parameters())
                 for name in ("generator", "discriminator")}
    assert tf_counts == pt_counts == PARAMETERS[question][image_shape]
    assert sum(tf_counts.values()) == sum(int(np.prod(v.shape)) for v in trainable)

    rng = np.random.default_rng(5)
    bn_layers = realistic_batchnorm(pt_model.generator, gan.uniform_z(64, 100, 0, 11), rng)
    assert bn_layers == (0 if question == "gan" else gan.dcgan_stages(image_shape)[0])
    load_into_tf(pt_model, tf_model, tmp_path / "weights")

    # inference mode: the same images and the same logits
    z = gan.uniform_z(8, 100, 0, 12)
    expected, got = pt_model.generator_output(z), tf_model.generator_output(z)
    assert got.shape == expected.shape == (8, *image_shape)
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert got.std() > 0.02                                             # not trivially equal
    images = rng.uniform(-1, 1, (8, *image_shape)).astype(np.float32)
    for batch in (images, expected):
        want, have = pt_model.discriminator_logits(batch), tf_model.discriminator_logits(batch)
        assert have.shape == want.shape == (8, 1)
        assert np.abs(have - want).max() < TOLERANCE, np.abs(have - want).max()
        assert want.std() > 1e-3

    # one training step from the same weights, batch and z: the same metrics
    real = rng.uniform(-1, 1, (BATCH, *image_shape)).astype(np.float32)
    z = gan.uniform_z(BATCH, 100, 0, 13)
    stale = stale_g_loss(pt_model, z)
    expected, got = pt_model.train_step(real, z, LS_EPSILON), tf_model.train_step(real, z, LS_EPSILON)
    assert list(got) == list(expected) == gan.FIELDS
    for key in gan.FIELDS:
        assert got[key] == pytest.approx(expected[key], rel=STEP_RTOL, abs=1e-6), (key, got, expected)
    # g_loss is measured with the updated D: the D of before would be told apart
    assert stale != pytest.approx(expected["g_loss"], rel=3 * STEP_RTOL), (stale, expected["g_loss"])

    # G's BatchNorm moving statistics after the step: decay 0.9, unbiased batch variance
    saved = tf_saved(tf_model, tmp_path / "after")
    moving = {k: v for k, v in saved.items() if "/moving_" in k}
    assert len(moving) == 2 * bn_layers
    for key, value in torch_to_tf(pt_model.generator, [k for k in saved if k.startswith("generator/")]).items():
        if "/moving_" in key:
            np.testing.assert_allclose(moving[key], value, rtol=1e-4, atol=1e-6, err_msg=key)

    # a second step sees both updates (Adam on G and on D, same hyper-parameters)
    real = rng.uniform(-1, 1, (BATCH, *image_shape)).astype(np.float32)
    z = gan.uniform_z(BATCH, 100, 0, 14)
    expected, got = pt_model.train_step(real, z, LS_EPSILON), tf_model.train_step(real, z, LS_EPSILON)
    for key in gan.FIELDS:
        assert got[key] == pytest.approx(expected[key], rel=STEP_RTOL, abs=1e-6), (key, got, expected)
