"""The PyTorch DCGAN computes what TensorFlow computes (DESIGN.md section 7).

This pins the conventions the TF-Slim, Keras and Chainer versions follow:

- a 5x5 stride-2 convolution pads like TF's 'SAME' (1 row/column before, 2
  after); PyTorch's ``padding=2`` has the same shape and other numbers;
- a 5x5 stride-2 transposed convolution equals TF's ``conv2d_transpose``
  with 'SAME' padding (output 2H x 2W): PyTorch ``padding=1`` and the last
  row and column dropped; ``padding=2, output_padding=1`` is one pixel off;
- G reads its Dense units as an NHWC map and D flattens NHWC, so the Dense
  and BatchNorm weights map 1:1 (only the kernel layouts are transposed);
- BatchNorm eps 1e-5, LeakyReLU slope 0.2, sigmoid on D's logit.

The reference is written with plain ``tf.nn`` ops in NHWC, in eager mode,
from the PyTorch weights converted by tests/convert.py; the networks are in
inference mode (BatchNorm with the running statistics of one real batch).
"""
import numpy as np
import pytest

from tests.conftest import load_script
from tests.convert import torch_to_tf_conv, torch_to_tf_deconv, torch_to_tf_dense

torch = pytest.importorskip("torch")

TOLERANCE = 1e-4
SHAPES = [(64, 64, 3), (28, 28, 1), (32, 32, 3)]
# Parameter counts (weights, biases, BatchNorm gamma and beta) of the
# question's networks with z_dim 100: the numbers every version reproduces.
# The small generators take the widths nearest the output (28x28: 256 -> 128
# -> 1, 2.1 M; with the top widths, 256 -> 512 -> 1, it was 4.6 M).
PARAMETERS = {
    (64, 64, 3): {"generator": 7_806_979, "discriminator": 1_082_177},
    (28, 28, 1): {"generator": 2_114_817, "discriminator": 55_233},
    (32, 32, 3): {"generator": 2_890_243, "discriminator": 260_673},
}


@pytest.fixture(scope="module")
def tf():
    from common import compat
    tf_v1, _ = compat.import_tf_slim()
    return tf_v1


@pytest.fixture(scope="module")
def pt():
    return load_script("dcgan", "pytorch")


def tf_conv_same(tf, x, weight, bias):
    """TF's 5x5 stride-2 'SAME' convolution, NHWC, a PyTorch OIHW weight."""
    y = tf.nn.conv2d(x, torch_to_tf_conv(weight), strides=[1, 2, 2, 1], padding="SAME")
    return y + bias


def tf_deconv_same(tf, x, weight, bias, channels):
    """TF's 5x5 stride-2 'SAME' transposed convolution, NHWC -> 2H x 2W."""
    n, h, w, _ = x.shape
    y = tf.nn.conv2d_transpose(x, torch_to_tf_deconv(weight), output_shape=[n, 2 * h, 2 * w, channels],
                               strides=[1, 2, 2, 1], padding="SAME")
    return y + bias


def nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


@pytest.mark.parametrize("size", [(64, 64), (28, 28), (14, 14), (8, 6)])
def test_conv_same_is_tf_same(pt, tf, size):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    conv = pt.Conv2dSame(3, 4)
    x = rng.standard_normal((2, *size, 3)).astype(np.float32)
    expected = tf_conv_same(tf, x, conv.weight.detach().numpy(), conv.bias.detach().numpy()).numpy()
    got = nhwc(conv(nchw(x)))
    assert got.shape == expected.shape == (2, size[0] // 2, size[1] // 2, 4)
    assert np.abs(got - expected).max() < TOLERANCE
    # the trap: PyTorch's symmetric padding=2 has the same shape, other numbers
    plain = torch.nn.Conv2d(3, 4, 5, 2, padding=2)
    plain.load_state_dict(conv.state_dict())
    assert np.abs(nhwc(plain(nchw(x))) - expected).max() > 0.1


@pytest.mark.parametrize("size", [(4, 4), (7, 7), (14, 14), (3, 5)])
def test_conv_transpose_same_is_tf_same(pt, tf, size):
    rng = np.random.default_rng(1)
    torch.manual_seed(1)
    deconv = pt.ConvTranspose2dSame(3, 4)
    x = rng.standard_normal((2, *size, 3)).astype(np.float32)
    expected = tf_deconv_same(tf, x, deconv.weight.detach().numpy(), deconv.bias.detach().numpy(), 4).numpy()
    got = nhwc(deconv(nchw(x)))
    assert got.shape == expected.shape == (2, 2 * size[0], 2 * size[1], 4)
    assert np.abs(got - expected).max() < TOLERANCE
    # the trap: padding=2, output_padding=1 has the same shape, shifted by a pixel
    shifted = torch.nn.ConvTranspose2d(3, 4, 5, 2, padding=2, output_padding=1)
    shifted.load_state_dict(deconv.state_dict())
    assert nhwc(shifted(nchw(x))).shape == expected.shape
    assert np.abs(nhwc(shifted(nchw(x))) - expected).max() > 0.1


def realistic_batchnorm(model, z, rng):
    """Running statistics of a real batch (momentum None: a plain average
    over one batch) and non-trivial gamma and beta, so that a mistake in
    the BatchNorm layout or eps shows without saturating tanh."""
    for m in model.generator.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.reset_running_stats()
            m.momentum = None
            m.weight.data = torch.from_numpy(rng.uniform(0.5, 1.5, m.num_features).astype(np.float32))
            m.bias.data = torch.from_numpy(rng.uniform(-0.2, 0.2, m.num_features).astype(np.float32))
    model.generator.train()
    with torch.no_grad():
        model.generator(torch.from_numpy(z))


def tf_batchnorm(tf, x, bn, eps):
    return tf.nn.batch_normalization(x, bn.running_mean.numpy(), bn.running_var.numpy(),
                                     bn.bias.detach().numpy(), bn.weight.detach().numpy(), eps)


def tf_generator(tf, pt, generator, z, image_shape):
    """The generator written with tf.nn ops, NHWC throughout."""
    dense, bn = generator.dense[0], generator.dense[1]
    x = tf.matmul(z, torch_to_tf_dense(dense.weight.detach().numpy())) + dense.bias.detach().numpy()
    x = tf.nn.relu(tf_batchnorm(tf, x, bn, pt.BN_EPS))
    h0, w0 = generator.start
    x = tf.reshape(x, [-1, h0, w0, pt.DENSE_CHANNELS])            # the Dense units as an NHWC map
    layers = list(generator.deconvs)
    for i, layer in enumerate(layers):
        if isinstance(layer, torch.nn.ConvTranspose2d):
            x = tf_deconv_same(tf, x, layer.weight.detach().numpy(), layer.bias.detach().numpy(),
                               layer.out_channels)
        elif isinstance(layer, torch.nn.BatchNorm2d):
            x = tf_batchnorm(tf, x, layer, pt.BN_EPS)
        elif isinstance(layer, torch.nn.ReLU):
            x = tf.nn.relu(x)
        elif isinstance(layer, torch.nn.Tanh):
            x = tf.tanh(x)
        else:
            raise TypeError(type(layer).__name__)
    return x.numpy()


def tf_discriminator(tf, pt, discriminator, images):
    """The discriminator written with tf.nn ops, NHWC throughout: logits."""
    x = images
    for layer in discriminator.convs:
        if isinstance(layer, torch.nn.Conv2d):
            x = tf_conv_same(tf, x, layer.weight.detach().numpy(), layer.bias.detach().numpy())
        else:
            x = tf.nn.leaky_relu(x, alpha=pt.LEAKY_SLOPE)
    x = tf.reshape(x, [x.shape[0], -1])                            # NHWC flatten
    dense = discriminator.dense
    return (tf.matmul(x, torch_to_tf_dense(dense.weight.detach().numpy())) + dense.bias.detach().numpy()).numpy()


@pytest.mark.parametrize("image_shape", SHAPES, ids=["64x64x3", "28x28x1", "32x32x3"])
def test_networks_are_the_tf_networks(pt, tf, image_shape):
    model = pt.DCGAN("parity", 100, image_shape, seed=3, device="cpu")
    rng = np.random.default_rng(2)
    realistic_batchnorm(model, model.generate_z(64), rng)
    counts = {name: sum(p.numel() for p in getattr(model, name).parameters())
              for name in ("generator", "discriminator")}
    assert counts == PARAMETERS[image_shape]

    z = model.generate_z(5)
    expected = tf_generator(tf, pt, model.generator, z, image_shape)
    got = model.generator_output(z)                                           # [-1, 1], NHWC, inference mode
    assert got.shape == expected.shape == (5, *image_shape)
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    assert got.std() > 0.05                                        # not trivially equal

    images = rng.uniform(-1, 1, (5, *image_shape)).astype(np.float32)
    expected = tf_discriminator(tf, pt, model.discriminator, images)
    got = model.discriminator_logits(images)
    assert got.shape == expected.shape == (5, 1)
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    # discriminate() is the sigmoid of these logits, for pixels in [0, 1]
    probs = model.discriminate((images + 1) / 2)
    assert np.abs(probs - 1 / (1 + np.exp(-expected))).max() < TOLERANCE
