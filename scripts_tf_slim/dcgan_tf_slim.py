"""Deep Convolutional GAN (DCGAN) -- TF-Slim

Question: generate 64x64x3 newt photos (pixels in [-1, 1]) from noise
z ~ U(-1, 1) of size 100.  Generator: Dense(H/16 * W/16 * 256)+BN+ReLU,
then 5x5 stride-2 transposed convolutions 512, 256, 128 (each +BN+ReLU) and
C (+tanh).  Discriminator: 5x5 stride-2 convolutions 32, 64, 128, 256 (each
+LeakyReLU 0.2), then Dense(1)+sigmoid.  Binary cross-entropy with the
non-saturating generator loss, Adam lr 2e-4, beta1 0.5, batch 64, 5000
iterations; the discriminator sees the real and the fake images in
separate batches.  The depth follows the image size: k stride-2 stages
with k = 4 for 64x64, 3 for 32x32 (CIFAR-10), 2 for 28x28 (MNIST,
Fashion-MNIST), widths taken from the top of the lists above
(common.gan.dcgan_stages).
The network is wrapped in the class API of the reference document
(dcgan_keras_class_api.md): DCGAN(name, z_dim, img_shape) with train,
generate, discriminate, evaluate, generate_z, save_me, change_me; main()
uses it.
Framework: TF-Slim (TensorFlow 1-style graph and session through
tf.compat.v1, NHWC like common/).
Paper: Radford, Metz & Chintala, "Unsupervised Representation Learning with
Deep Convolutional Generative Adversarial Networks", ICLR 2016
(arXiv:1511.06434); the non-saturating loss: Goodfellow et al., "Generative
Adversarial Nets", NeurIPS 2014 (arXiv:1406.2661), section 3.
How to run:
    python scripts_tf_slim/dcgan_tf_slim.py             # train, then test
    python scripts_tf_slim/dcgan_tf_slim.py --test      # test the last checkpoint
    python scripts_tf_slim/dcgan_tf_slim.py --dataset fashion_mnist --label-smoothing 0.1
    python scripts_tf_slim/dcgan_tf_slim.py --dataset mnist --data-dir ../shared/datasets/mnist10k   # offline
As a class:
    from dcgan_tf_slim import DCGAN
    model = DCGAN("fmnist", z_dim=100, img_shape=(28, 28, 1))
    result = model.train(images, epochs=40, batch_size=128, ls_epsilon=0.1)   # pixels in [0, 1] or [0, 255]
    images = model.generate(model.generate_z(20))                             # pixels in [0, 1]
    model.save_me("models/")        # models/fmnist_g.npz, fmnist_d.npz, fmnist_val.json
"""
# ---- Setup ----
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`
sys.path.insert(0, str(Path(__file__).resolve().parent))      # this folder, for the gan answer

import gan_tf_slim  # noqa: E402  (the losses, the train step, the class API, train and test)

import numpy as np  # noqa: E402

from common import cli, compat, gan  # noqa: E402

tf, slim = compat.import_tf_slim()  # tf is tensorflow.compat.v1 (graphs and sessions)

QUESTION = "dcgan"
FRAMEWORK = "tf_slim"

# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/2^k, W/2^k, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (first k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # D's convolutions (first k used)
KERNEL, STRIDE = 5, 2
PADDING = "SAME"                # TF's 'SAME' for a 5x5 stride-2 convolution of an even size pads
                                # 1 row/column before, 2 after; the PyTorch and Chainer versions
                                # emulate exactly this (their symmetric padding=2 differs)
LEAKY_SLOPE = 0.2               # tf.nn.leaky_relu's default, set explicitly (torch 0.01, Keras 0.3)
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
                                # (measured at 64x64: Glorot-uniform made no difference to G's early
                                # collapse; the MLP of the gan question is another story, see there)
BN_EPS = 1e-5                   # torch default; slim/Keras default 1e-3, Chainer 2e-5.  (TF's fused
                                # batch norm, which slim uses here, raises eps to at least 1.001e-5:
                                # a 1e-8 difference, far below float32 noise on these variances)
BN_DECAY = 0.9                  # slim default 0.999: moving = 0.9 * moving + 0.1 * batch
                                # (= torch momentum 0.1, Keras momentum 0.9, Chainer decay 0.9); the
                                # moving variance takes the unbiased batch variance here (fused batch
                                # norm), in torch and in Chainer, the biased one in Keras 3
BN_SCALE = True                 # slim's batch_norm has no gamma by default (scale=False)
# Adam (lr 2e-4, beta1 0.5, beta2 0.999, epsilon 1e-8 set explicitly), the
# losses, the train step, the checkpoint files and the training loop are
# those of gan_tf_slim.py, whose class GAN this script's DCGAN extends.


def parse_args(argv=None):
    return gan_tf_slim.parse_args(argv, QUESTION, "DCGAN (TF-Slim).")


# ---- Data ----
def to_network(images):
    """NHWC (common) is TensorFlow's own layout: only float32 and contiguous
    (the PyTorch version transposes to NCHW here)."""
    return np.ascontiguousarray(images, dtype=np.float32)


# ---- Model ----
# TF1 style: the networks are functions that add layers to the current graph
# (named like the classes of the other versions); variable scopes hold the
# weights, ``reuse=True`` shares those of an earlier call.
def leaky_relu(x):
    return tf.nn.leaky_relu(x, alpha=LEAKY_SLOPE)


def init_weights():
    """N(0, 0.02) weights and zero biases, no activation and no normalizer
    unless a layer asks (slim's defaults are activation_fn=relu and a
    Glorot-uniform initializer): the same explicit rule in all four
    versions.  The draws come from the graph's seed (GAN._build)."""
    return slim.arg_scope([slim.fully_connected, slim.conv2d, slim.conv2d_transpose],
                          weights_initializer=tf.random_normal_initializer(0.0, INIT_STD),
                          biases_initializer=tf.zeros_initializer(),
                          activation_fn=None, normalizer_fn=None)


def batch_norm_args(is_training):
    """BatchNorm with gamma (scale=True) 1, beta 0, eps 1e-5, decay 0.9.
    ``is_training``: normalise with the batch's statistics and put the
    moving-average updates into the UPDATE_OPS collection (the train step
    runs them), or with the moving statistics (inference)."""
    return slim.arg_scope([slim.batch_norm], decay=BN_DECAY, epsilon=BN_EPS, center=True, scale=BN_SCALE,
                          param_initializers={"beta": tf.zeros_initializer(), "gamma": tf.ones_initializer(),
                                              "moving_mean": tf.zeros_initializer(),
                                              "moving_variance": tf.ones_initializer()},
                          is_training=is_training, updates_collections=tf.GraphKeys.UPDATE_OPS)


def Generator(z, image_shape, is_training=True, reuse=False):
    """z (N, z_dim) -> images (N, H, W, C) in [-1, 1].  The Dense and
    transposed-convolution layers keep their biases before BatchNorm, as
    in the other versions (slim would drop them with normalizer_fn)."""
    height, width, channels = image_shape
    k, (h0, w0) = gan.dcgan_stages(image_shape)
    with tf.variable_scope("generator", reuse=reuse), init_weights(), batch_norm_args(is_training):
        x = slim.fully_connected(z, h0 * w0 * DENSE_CHANNELS, scope="dense")           # (N, h0*w0*256)
        x = tf.nn.relu(slim.batch_norm(x, scope="bn0"))
        x = tf.reshape(x, [-1, h0, w0, DENSE_CHANNELS])                                # (N, h0, w0, 256)
        for i, width in enumerate(G_WIDTHS[:k - 1], start=1):                          # 512, 256, 128 for k = 4
            x = slim.conv2d_transpose(x, width, KERNEL, stride=STRIDE, padding=PADDING,
                                      scope=f"deconv{i}")                              # (N, 2h, 2w, width)
            x = tf.nn.relu(slim.batch_norm(x, scope=f"bn{i}"))
        x = slim.conv2d_transpose(x, channels, KERNEL, stride=STRIDE, padding=PADDING,
                                  scope=f"deconv{k}")                                  # (N, H, W, C)
        x = tf.tanh(x)
    return x


def Discriminator(images, image_shape, reuse=False):
    """images (N, H, W, C) -> logits (N, 1); D(x) = sigmoid(logits) is the
    probability that x is real.  The sigmoid is applied by `discriminate`
    and inside the loss (binary cross-entropy on logits, which never takes
    log(0))."""
    k, _ = gan.dcgan_stages(image_shape)
    with tf.variable_scope("discriminator", reuse=reuse), init_weights():
        x = images
        for i, features in enumerate(D_WIDTHS[:k], start=1):                           # 32, 64, 128, 256 for k = 4
            x = slim.conv2d(x, features, KERNEL, stride=STRIDE, padding=PADDING,
                            activation_fn=leaky_relu, scope=f"conv{i}")               # (N, h/2, w/2, features)
        x = slim.flatten(x)                                                            # (N, H/16*W/16*256), NHWC order
        logits = slim.fully_connected(x, 1, scope="dense")                             # (N, 1)
    return logits


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "stages": k, "start": list(start),
            "generator": [DENSE_CHANNELS, *G_WIDTHS[:k - 1]], "discriminator": list(D_WIDTHS[:k])}


# ---- Losses ----
# Those of gan_tf_slim.py: binary cross-entropy on logits, D's loss averaged
# over the real and the fake batch (label smoothing optional), G's loss
# non-saturating.

# ---- Train step ----
# gan_tf_slim.make_train_step: one D step on separate real and fake batches
# (BatchNorm never mixes their statistics), then one G step, and G's
# BatchNorm moving-average updates, in one sess.run.

# ---- Class API ----
class DCGAN(gan_tf_slim.GAN):
    """The DCGAN of the reference document's class API, on NumPy NHWC arrays.

    DCGAN(name, z_dim=100, img_shape=(28, 28, 1)) builds the networks and
    their optimizers; train, generate, discriminate, evaluate, generate_z,
    save_me, change_me and the properties come from gan_tf_slim.GAN (see
    there: pixels in [0, 1] or [0, 255] in, [0, 1] out; keyword-only
    ``seed``, ``lr``, ``device``).  Only the networks are this class's own
    (TensorFlow is NHWC like the class API: the layout conversions only
    cast)."""

    QUESTION = QUESTION

    @staticmethod
    def model_info(image_shape, z_dim):
        return model_info(image_shape, z_dim)

    def _make_networks(self, z_dim, img_shape):
        gan.dcgan_stages(img_shape)                  # a size the network can make, or a UsageError
        return partial(Generator, image_shape=img_shape), partial(Discriminator, image_shape=img_shape)

    def _to_network(self, images):
        return to_network(images)

    def _from_network(self, outputs):
        return outputs


# ---- Train ----
def train(args):
    gan_tf_slim.train(args, DCGAN)


# ---- Test ----
def test(args):
    return gan_tf_slim.test(args, DCGAN)


# ---- Main ----
def main(argv=None):
    args = parse_args(argv)
    if args.train:
        train(args)
    if args.test:
        return test(args)
    return None


if __name__ == "__main__":
    cli.run_main(main)
