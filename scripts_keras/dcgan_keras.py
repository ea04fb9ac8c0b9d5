"""Deep Convolutional GAN (DCGAN) -- Keras 3

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
Framework: Keras 3 on the TensorFlow backend (NHWC, like the class API and common/).
Paper: Radford, Metz & Chintala, "Unsupervised Representation Learning with
Deep Convolutional Generative Adversarial Networks", ICLR 2016
(arXiv:1511.06434); the non-saturating loss: Goodfellow et al., "Generative
Adversarial Nets", NeurIPS 2014 (arXiv:1406.2661), section 3.
How to run:
    python scripts_keras/dcgan_keras.py             # train, then test
    python scripts_keras/dcgan_keras.py --test      # test the last checkpoint
    python scripts_keras/dcgan_keras.py --dataset fashion_mnist --label-smoothing 0.1
    python scripts_keras/dcgan_keras.py --dataset mnist --data-dir ../shared/datasets/mnist10k   # offline
As a class:
    from dcgan_keras import DCGAN
    model = DCGAN("fmnist", z_dim=100, img_shape=(28, 28, 1))
    result = model.train(images, epochs=40, batch_size=128, ls_epsilon=0.1)   # pixels in [0, 1] or [0, 255]
    images = model.generate(model.generate_z(20))                             # pixels in [0, 1]
    model.save_me("models/")        # models/fmnist_g.weights.h5, fmnist_d.weights.h5, fmnist_val.json
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`
sys.path.insert(0, str(Path(__file__).resolve().parent))      # this folder, for the gan answer

import gan_keras  # noqa: E402  (the losses, the train step, the class API, train and test)

import numpy as np  # noqa: E402

from common import cli, compat, gan  # noqa: E402

keras = compat.import_keras()  # the Keras 3 (TensorFlow backend) that gan_keras imported
from keras import layers  # noqa: E402

QUESTION = "dcgan"
FRAMEWORK = "keras"

# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/2^k, W/2^k, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (first k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # D's convolutions (first k used)
KERNEL, STRIDE = 5, 2
# padding="same" for a 5x5 stride-2 convolution of an even size pads 1
# row/column before and 2 after (TF's 'SAME'), and the transposed
# convolution with padding="same" makes 2H x 2W: the convention of this
# question, which the PyTorch and Chainer versions emulate.
LEAKY_SLOPE = 0.2               # Keras' LeakyReLU default is 0.3 (torch 0.01)
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
                                # (measured at 64x64: Glorot-uniform made no difference to G's early
                                # collapse; the MLP of the gan question is another story, see there)
BN_EPS = 1e-5                   # torch's default; Keras/slim default 1e-3, Chainer 2e-5
BN_MOMENTUM = 0.9               # Keras: moving = 0.9 * moving + 0.1 * batch
                                # (= torch momentum 0.1, slim decay 0.9, Chainer decay 0.9); Keras 3
                                # updates the moving variance with the biased batch variance, PyTorch,
                                # slim and Chainer with the unbiased one (a factor n/(n-1), no switch)
# Adam (lr 2e-4, beta_1 0.5, beta_2 0.999, epsilon 1e-8 set explicitly), the
# losses, the train step, the checkpoint files and the training loop are
# those of gan_keras.py, whose class GAN this script's DCGAN extends.
JIT_COMPILE = False             # XLA off: on CPU it made this step ~8x slower (64x64x3, batch 64, 2 busy
                                # shared cores: 30 vs 3.7 s per iteration) after ~40 s of compiling;
                                # Keras' own jit_compile="auto" also skips XLA on a CPU-only machine


def parse_args(argv=None):
    return gan_keras.parse_args(argv, QUESTION, "DCGAN (Keras 3).")


# ---- Data ----
# Keras is NHWC like `common`: the images go in as they are (PyTorch
# transposes them to NCHW and back here).


# ---- Model ----
def weights(rng):
    """N(0, 0.02) weights drawn from ``rng`` (a keras.random.SeedGenerator,
    so building a model leaves Keras' global seed alone) and zero biases:
    the same explicit rule in all four versions (the defaults all differ)."""
    return {"kernel_initializer": keras.initializers.RandomNormal(0.0, INIT_STD, seed=rng),
            "bias_initializer": "zeros"}


def batch_norm():
    """BatchNorm over the last (channel) axis, gamma 1, beta 0."""
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPS,
                                      gamma_initializer="ones", beta_initializer="zeros")


# Generator and Discriminator are functions named like the PyTorch classes;
# each returns a Keras model.
def Generator(z_dim, image_shape, rng):
    """z (N, z_dim) -> images (N, H, W, C) in [-1, 1]."""
    height, width, channels = image_shape
    k, (h0, w0) = gan.dcgan_stages(image_shape)
    network = [
        keras.Input(shape=(z_dim,)),                                           # (N, z_dim)
        layers.Dense(h0 * w0 * DENSE_CHANNELS, **weights(rng)),                 # (N, h0*w0*256)
        batch_norm(),
        layers.ReLU(),
        layers.Reshape((h0, w0, DENSE_CHANNELS)),                               # (N, h0, w0, 256)
    ]
    for features in G_WIDTHS[:k - 1]:                                           # 512, 256, 128 for k = 4
        network += [layers.Conv2DTranspose(features, KERNEL, STRIDE, padding="same",
                                           **weights(rng)),                     # (N, 2h, 2w, features)
                    batch_norm(),
                    layers.ReLU()]
    network += [layers.Conv2DTranspose(channels, KERNEL, STRIDE, padding="same", **weights(rng)),  # (N, H, W, C)
                layers.Activation("tanh")]
    return keras.Sequential(network, name="generator")


def Discriminator(image_shape, rng):
    """images (N, H, W, C) -> logits (N, 1); D(x) = sigmoid(logits) is the
    probability that x is real.  The sigmoid is applied by `discriminate`
    and inside the loss (binary cross-entropy on logits, which never takes
    log(0))."""
    k, _ = gan.dcgan_stages(image_shape)
    network = [keras.Input(shape=tuple(image_shape))]                           # (N, H, W, C)
    for features in D_WIDTHS[:k]:                                               # 32, 64, 128, 256 for k = 4
        network += [layers.Conv2D(features, KERNEL, STRIDE, padding="same",
                                  **weights(rng)),                              # (N, h/2, w/2, features)
                    layers.LeakyReLU(negative_slope=LEAKY_SLOPE)]
    network += [layers.Flatten(),                                               # (N, H/16*W/16*256), NHWC order
                layers.Dense(1, **weights(rng))]                                # (N, 1) logits
    return keras.Sequential(network, name="discriminator")


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "stages": k, "start": list(start),
            "generator": [DENSE_CHANNELS, *G_WIDTHS[:k - 1]], "discriminator": list(D_WIDTHS[:k])}


# ---- Losses ----
# Those of gan_keras.py: binary cross-entropy on logits, D's loss averaged
# over the real and the fake batch (label smoothing optional), G's loss
# non-saturating.

# ---- Train step ----
# gan_keras.make_train_step: one D step on separate real and fake batches
# (BatchNorm never mixes their statistics), then one G step; G(z) runs once,
# in training mode, so G's BatchNorm moving statistics move once per
# iteration.  No Keras-2 `trainable` recipe (compile D, set
# D.trainable = False, compile combined): Keras 3 reads the flag when a
# model's train function is first traced and then keeps that trace, so with
# the recipe D.train_on_batch trains nothing and later toggles change
# nothing (tests/test_keras_trainable.py).  The step applies gradients to
# D's or G's trainable_variables explicitly instead.

# ---- Class API ----
class DCGAN(gan_keras.GAN):
    """The DCGAN of the reference document's class API, on NumPy NHWC arrays.

    DCGAN(name, z_dim=100, img_shape=(28, 28, 1)) builds the networks and
    their optimizers; train, generate, discriminate, evaluate, generate_z,
    save_me, change_me and the properties come from gan_keras.GAN (see
    there: pixels in [0, 1] or [0, 255] in, [0, 1] out; keyword-only
    ``seed``, ``lr``, ``device``).  Only the networks and their NHWC layout
    are this class's own (and XLA off, see JIT_COMPILE)."""

    QUESTION = QUESTION
    JIT_COMPILE = JIT_COMPILE

    @staticmethod
    def model_info(image_shape, z_dim):
        return model_info(image_shape, z_dim)

    def _make_networks(self, z_dim, img_shape):
        gan.dcgan_stages(img_shape)                  # a size the network can make, or a UsageError
        rng = keras.random.SeedGenerator(self._seed)
        return Generator(z_dim, img_shape, rng), Discriminator(img_shape, rng)

    def _to_network(self, images):
        return np.asarray(images, np.float32)        # NHWC, as it is

    def _from_network(self, outputs):
        return keras.ops.convert_to_numpy(outputs)   # NHWC


# ---- Train ----
def train(args):
    gan_keras.train(args, DCGAN)


# ---- Test ----
def test(args):
    return gan_keras.test(args, DCGAN)


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
