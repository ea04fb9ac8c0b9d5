"""Deep Convolutional GAN (DCGAN) -- Chainer

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
Framework: Chainer 7, an explicit loop with optimizer.update() (NCHW
inside; the class API and common/ speak NHWC).
Paper: Radford, Metz & Chintala, "Unsupervised Representation Learning with
Deep Convolutional Generative Adversarial Networks", ICLR 2016
(arXiv:1511.06434); the non-saturating loss: Goodfellow et al., "Generative
Adversarial Nets", NeurIPS 2014 (arXiv:1406.2661), section 3.
How to run:
    python scripts_chainer/dcgan_chainer.py             # train, then test
    python scripts_chainer/dcgan_chainer.py --test      # test the last checkpoint
    python scripts_chainer/dcgan_chainer.py --dataset fashion_mnist --label-smoothing 0.1
    python scripts_chainer/dcgan_chainer.py --dataset mnist --data-dir ../shared/datasets/mnist10k   # offline
As a class:
    from dcgan_chainer import DCGAN
    model = DCGAN("fmnist", z_dim=100, img_shape=(28, 28, 1))
    result = model.train(images, epochs=40, batch_size=128, ls_epsilon=0.1)   # pixels in [0, 1] or [0, 255]
    images = model.generate(model.generate_z(20))                             # pixels in [0, 1]
    model.save_me("models/")        # models/fmnist_g.npz, fmnist_d.npz, fmnist_val.json
"""
# ---- Setup ----
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`
sys.path.insert(0, str(Path(__file__).resolve().parent))      # this folder, for the gan answer

import gan_chainer  # noqa: E402  (the losses, the train step, the class API, train and test)

import numpy as np  # noqa: E402

from common import cli, compat, gan  # noqa: E402

chainer = compat.import_chainer()  # Chainer 7.8.1 needs a shim to import on this stack
import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402

QUESTION = "dcgan"
FRAMEWORK = "chainer"

# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/2^k, W/2^k, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (first k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # D's convolutions (first k used)
KERNEL, STRIDE = 5, 2
# TF/Keras 'SAME' padding for a 5x5 stride-2 convolution of an even size:
# 1 row/column before, 2 after.  Chainer's pad=2 pads 2 and 2: the same
# output shape, different numbers.  This version pads explicitly.
SAME_PAD = ((0, 0), (0, 0), (1, 2), (1, 2))   # (N, C, top/bottom, left/right) for F.pad
LEAKY_SLOPE = 0.2               # Chainer's default too, set explicitly (torch 0.01, Keras 0.3)
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
                                # (measured at 64x64: Glorot-uniform made no difference to G's early
                                # collapse; the MLP of the gan question is another story, see there)
BN_EPS = 1e-5                   # torch default; Keras/slim default 1e-3, Chainer 2e-5
BN_DECAY = 0.9                  # Chainer: running = 0.9 * running + 0.1 * batch
                                # (= torch momentum 0.1, Keras momentum 0.9, slim decay 0.9); the
                                # running variance takes the unbiased batch variance here, in torch and
                                # in slim, the biased one in Keras 3 (a factor n/(n-1), no switch)
# Adam (lr 2e-4, beta1 0.5, beta2 0.999, eps 1e-8 set explicitly), the losses,
# the train step, the checkpoint files and the training loop are those of
# gan_chainer.py, whose class GAN this script's DCGAN extends.


def parse_args(argv=None):
    return gan_chainer.parse_args(argv, QUESTION, "DCGAN (Chainer).")


# ---- Data ----
def to_nchw(images):
    """NHWC (common) -> NCHW (Chainer), a contiguous copy."""
    return np.ascontiguousarray(np.asarray(images, np.float32).transpose(0, 3, 1, 2))


def to_nhwc(outputs):
    """NCHW array -> NHWC NumPy array."""
    return np.ascontiguousarray(chainer.backends.cuda.to_cpu(outputs).transpose(0, 2, 3, 1))


# ---- Model ----
class Convolution2DSame(L.Convolution2D):
    """5x5 stride-2 convolution with TF's 'SAME' padding (even sizes only,
    which the stage rule guarantees): (N, I, H, W) -> (N, O, H/2, W/2)."""

    def __init__(self, in_channels, out_channels, **init):
        super().__init__(in_channels, out_channels, KERNEL, STRIDE, pad=0, **init)

    def forward(self, x):
        return super().forward(F.pad(x, SAME_PAD, "constant"))


class Deconvolution2DSame(L.Deconvolution2D):
    """5x5 stride-2 transposed convolution equal to TF's conv2d_transpose
    with 'SAME' padding: (N, I, H, W) -> (N, O, 2H, 2W).  The full output
    is 2H+3 wide; TF crops 1 row/column before and 2 after, and so does
    Chainer with pad=1 and outsize=(2H, 2W): it crops ``pad`` before and
    keeps ``outsize``.  (pad=2 with the same outsize has the right shape
    but is shifted by one pixel.)"""

    def __init__(self, in_channels, out_channels, **init):
        super().__init__(in_channels, out_channels, KERNEL, STRIDE, pad=1, **init)

    def forward(self, x):
        height, width = x.shape[2:]
        return F.deconvolution_2d(x, self.W, self.b, self.stride, self.pad, outsize=(2 * height, 2 * width))


def init_weights(rng):
    """N(0, 0.02) weights and zero biases: the same explicit rule in all
    four versions (the defaults all differ).  ``rng`` is a
    numpy.random.RandomState, so building a model leaves NumPy's global
    generator alone."""
    return {"initialW": chainer.initializers.Normal(INIT_STD, rng=rng),
            "initial_bias": chainer.initializers.Zero()}


def batch_norm(size):
    """BatchNorm with gamma 1, beta 0, eps 1e-5, decay 0.9 (set explicitly)."""
    return L.BatchNormalization(size, decay=BN_DECAY, eps=BN_EPS, initial_gamma=chainer.initializers.One(),
                                initial_beta=chainer.initializers.Zero())


leaky_relu = functools.partial(F.leaky_relu, slope=LEAKY_SLOPE)


class Generator(chainer.Chain):
    """z (N, z_dim) -> images (N, C, H, W) in [-1, 1]."""

    def __init__(self, z_dim, image_shape, rng):
        super().__init__()
        height, width, channels = image_shape
        k, (h0, w0) = gan.dcgan_stages(image_shape)
        self.start = (h0, w0)
        with self.init_scope():
            self.dense = chainer.Sequential(
                L.Linear(z_dim, h0 * w0 * DENSE_CHANNELS, **init_weights(rng)),      # (N, h0*w0*256), NHWC order
                batch_norm(h0 * w0 * DENSE_CHANNELS),
                F.relu,
            )
            layers, in_channels = [], DENSE_CHANNELS
            for width in G_WIDTHS[:k - 1]:                                        # 512, 256, 128 for k = 4
                layers += [Deconvolution2DSame(in_channels, width, **init_weights(rng)),   # (N, width, 2h, 2w)
                           batch_norm(width),
                           F.relu]
                in_channels = width
            layers += [Deconvolution2DSame(in_channels, channels, **init_weights(rng)),    # (N, C, H, W)
                       F.tanh]
            self.deconvs = chainer.Sequential(*layers)

    def forward(self, z):
        h0, w0 = self.start
        x = self.dense(z)                                                     # (N, h0*w0*256)
        # The Dense units are read as an NHWC map, as in the NHWC frameworks,
        # so that the Dense and BatchNorm weights match theirs 1:1.
        x = F.transpose(F.reshape(x, (-1, h0, w0, DENSE_CHANNELS)), (0, 3, 1, 2))   # (N, 256, h0, w0)
        return self.deconvs(x)                                                # (N, C, H, W)


class Discriminator(chainer.Chain):
    """images (N, C, H, W) -> logits (N, 1); D(x) = sigmoid(logits) is the
    probability that x is real.  The sigmoid is applied by `discriminate`
    and inside the loss (binary cross-entropy on logits, which never takes
    log(0))."""

    def __init__(self, image_shape, rng):
        super().__init__()
        height, width, channels = image_shape
        k, _ = gan.dcgan_stages(image_shape)
        layers, in_channels = [], channels
        for features in D_WIDTHS[:k]:                                         # 32, 64, 128, 256 for k = 4
            layers += [Convolution2DSame(in_channels, features, **init_weights(rng)),   # (N, features, h/2, w/2)
                       leaky_relu]
            in_channels = features
        with self.init_scope():
            self.convs = chainer.Sequential(*layers)
            self.dense = L.Linear((height >> k) * (width >> k) * in_channels, 1, **init_weights(rng))   # (N, 1)

    def forward(self, x):
        x = self.convs(x)                                                     # (N, 256, H/16, W/16)
        # Flatten in NHWC order, as the NHWC frameworks do, so that the
        # Dense weights match theirs without a row permutation.
        x = F.reshape(F.transpose(x, (0, 2, 3, 1)), (len(x), -1))             # (N, H/16*W/16*256)
        return self.dense(x)                                                  # (N, 1)


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "stages": k, "start": list(start),
            "generator": [DENSE_CHANNELS, *G_WIDTHS[:k - 1]], "discriminator": list(D_WIDTHS[:k])}


# ---- Losses ----
# Those of gan_chainer.py: binary cross-entropy on logits, D's loss averaged
# over the real and the fake batch (label smoothing optional), G's loss
# non-saturating.

# ---- Train step ----
# gan_chainer.make_train_step: one D step on separate real and fake batches
# (BatchNorm never mixes their statistics), then one G step.

# ---- Class API ----
class DCGAN(gan_chainer.GAN):
    """The DCGAN of the reference document's class API, on NumPy NHWC arrays.

    DCGAN(name, z_dim=100, img_shape=(28, 28, 1)) builds the networks and
    their optimizers; train, generate, discriminate, evaluate, generate_z,
    save_me, change_me and the properties come from gan_chainer.GAN (see
    there: pixels in [0, 1] or [0, 255] in, [0, 1] out; keyword-only
    ``seed``, ``lr``, ``device``).  Only the networks and their NCHW layout
    are this class's own."""

    QUESTION = QUESTION

    @staticmethod
    def model_info(image_shape, z_dim):
        return model_info(image_shape, z_dim)

    def _make_networks(self, z_dim, img_shape):
        gan.dcgan_stages(img_shape)                  # a size the network can make, or a UsageError
        rng = np.random.RandomState(self._seed % 2**32)
        generator, discriminator = Generator(z_dim, img_shape, rng), Discriminator(img_shape, rng)
        return generator.to_device(self.device), discriminator.to_device(self.device)

    def _to_network(self, images):
        return self.device.send(to_nchw(images))

    def _from_network(self, outputs):
        return to_nhwc(outputs.array)


# ---- Train ----
def train(args):
    gan_chainer.train(args, DCGAN)


# ---- Test ----
def test(args):
    return gan_chainer.test(args, DCGAN)


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
