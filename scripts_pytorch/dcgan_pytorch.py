"""Deep Convolutional GAN (DCGAN) -- PyTorch

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
Framework: PyTorch (NCHW inside; the class API and common/ speak NHWC).
Paper: Radford, Metz & Chintala, "Unsupervised Representation Learning with
Deep Convolutional Generative Adversarial Networks", ICLR 2016
(arXiv:1511.06434); the non-saturating loss: Goodfellow et al., "Generative
Adversarial Nets", NeurIPS 2014 (arXiv:1406.2661), section 3.
How to run:
    python scripts_pytorch/dcgan_pytorch.py             # train, then test
    python scripts_pytorch/dcgan_pytorch.py --test      # test the last checkpoint
    python scripts_pytorch/dcgan_pytorch.py --dataset fashion_mnist --label-smoothing 0.1
    python scripts_pytorch/dcgan_pytorch.py --dataset mnist --data-dir ../shared/datasets/mnist10k   # offline
As a class:
    from dcgan_pytorch import DCGAN
    model = DCGAN("fmnist", z_dim=100, img_shape=(28, 28, 1))
    result = model.train(images, epochs=40, batch_size=128, ls_epsilon=0.1)   # pixels in [0, 1] or [0, 255]
    images = model.generate(model.generate_z(20))                             # pixels in [0, 1]
    model.save_me("models/")        # models/fmnist_g.pt, fmnist_d.pt, fmnist_val.json
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`
sys.path.insert(0, str(Path(__file__).resolve().parent))      # this folder, for the gan answer

import gan_pytorch  # noqa: E402  (the losses, the train step, the class API, train and test)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from common import cli, gan  # noqa: E402

QUESTION = "dcgan"
FRAMEWORK = "pytorch"

# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/2^k, W/2^k, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (first k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # D's convolutions (first k used)
KERNEL, STRIDE = 5, 2
# TF/Keras 'SAME' padding for a 5x5 stride-2 convolution of an even size:
# 1 row/column before, 2 after.  PyTorch's padding=2 pads 2 and 2: the same
# output shape, different numbers.  This version pads explicitly.
SAME_PAD = (1, 2, 1, 2)         # (left, right, top, bottom) for F.pad
LEAKY_SLOPE = 0.2               # torch's LeakyReLU default is 0.01 (Keras 0.3)
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
                                # (measured at 64x64: Glorot-uniform made no difference to G's early
                                # collapse; the MLP of the gan question is another story, see there)
BN_EPS = 1e-5                   # torch default; Keras/slim default 1e-3, Chainer 2e-5
BN_MOMENTUM = 0.1               # torch: running = 0.9 * running + 0.1 * batch
                                # (= Keras momentum 0.9, slim decay 0.9, Chainer decay 0.9); the
                                # running variance takes the unbiased batch variance here, in slim and
                                # in Chainer, the biased one in Keras 3 (a factor n/(n-1), no switch)
# Adam (lr 2e-4, betas (0.5, 0.999), eps 1e-8 set explicitly), the losses,
# the train step, the checkpoint files and the training loop are those of
# gan_pytorch.py, whose class GAN this script's DCGAN extends.


def parse_args(argv=None):
    return gan_pytorch.parse_args(argv, QUESTION, "DCGAN (PyTorch).")


# ---- Data ----
def to_nchw(images):
    """NHWC (common) -> an NCHW tensor.  The permute is a view: the memory
    stays NHWC, which PyTorch calls channels_last -- its fast layout for
    convolutions (the networks are kept in it too)."""
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)


def to_nhwc(outputs):
    """NCHW tensor -> NHWC NumPy array."""
    return np.ascontiguousarray(outputs.permute(0, 2, 3, 1).cpu().numpy())


# ---- Model ----
class Conv2dSame(nn.Conv2d):
    """5x5 stride-2 convolution with TF's 'SAME' padding (even sizes only,
    which the stage rule guarantees): (N, I, H, W) -> (N, O, H/2, W/2)."""

    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels, KERNEL, STRIDE, padding=0)

    def forward(self, x):
        return super().forward(F.pad(x, SAME_PAD))


class ConvTranspose2dSame(nn.ConvTranspose2d):
    """5x5 stride-2 transposed convolution equal to TF's conv2d_transpose
    with 'SAME' padding: (N, I, H, W) -> (N, O, 2H, 2W).  The full output
    is 2H+3 wide; TF crops 1 row/column before and 2 after, PyTorch's
    padding=1 crops 1 and 1, so the last row and column are dropped here.
    (padding=2, output_padding=1 has the right shape but is shifted by one
    pixel.)  The cropped view is copied into channels_last memory: BatchNorm
    on the strided view was 20x slower (measured: 25% of a training step)."""

    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels, KERNEL, STRIDE, padding=1)

    def forward(self, x):
        return super().forward(x)[:, :, :-1, :-1].contiguous(memory_format=torch.channels_last)


def init_weights(network, rng):
    """N(0, 0.02) weights, zero biases, BatchNorm gamma 1 and beta 0: the
    same explicit rule in all four versions (the defaults all differ).
    ``rng`` is a torch.Generator, so building a model leaves torch's global
    RNG alone."""
    for module in network.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, INIT_STD, generator=rng)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (N, z_dim) -> images (N, C, H, W) in [-1, 1]."""

    def __init__(self, z_dim, image_shape):
        super().__init__()
        height, width, channels = image_shape
        k, (h0, w0) = gan.dcgan_stages(image_shape)
        self.start = (h0, w0)
        self.dense = nn.Sequential(
            nn.Linear(z_dim, h0 * w0 * DENSE_CHANNELS),                   # (N, h0*w0*256), NHWC order
            nn.BatchNorm1d(h0 * w0 * DENSE_CHANNELS, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )
        layers, in_channels = [], DENSE_CHANNELS
        for width in G_WIDTHS[:k - 1]:                                    # 512, 256, 128 for k = 4
            layers += [ConvTranspose2dSame(in_channels, width),           # (N, width, 2h, 2w)
                       nn.BatchNorm2d(width, eps=BN_EPS, momentum=BN_MOMENTUM),
                       nn.ReLU()]
            in_channels = width
        layers += [ConvTranspose2dSame(in_channels, channels),            # (N, C, H, W)
                   nn.Tanh()]
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z):
        h0, w0 = self.start
        x = self.dense(z)                                                 # (N, h0*w0*256)
        # The Dense units are read as an NHWC map, as in the NHWC frameworks,
        # so that the Dense and BatchNorm weights match theirs 1:1.
        x = x.view(-1, h0, w0, DENSE_CHANNELS).permute(0, 3, 1, 2)        # (N, 256, h0, w0)
        return self.deconvs(x)                                            # (N, C, H, W)


class Discriminator(nn.Module):
    """images (N, C, H, W) -> logits (N, 1); D(x) = sigmoid(logits) is the
    probability that x is real.  The sigmoid is applied by `discriminate`
    and inside the loss (binary cross-entropy on logits, which never takes
    log(0))."""

    def __init__(self, image_shape):
        super().__init__()
        height, width, channels = image_shape
        k, _ = gan.dcgan_stages(image_shape)
        layers, in_channels = [], channels
        for features in D_WIDTHS[:k]:                                     # 32, 64, 128, 256 for k = 4
            layers += [Conv2dSame(in_channels, features),                 # (N, features, h/2, w/2)
                       nn.LeakyReLU(LEAKY_SLOPE)]
            in_channels = features
        self.convs = nn.Sequential(*layers)
        self.dense = nn.Linear((height >> k) * (width >> k) * in_channels, 1)   # (N, 1) logits

    def forward(self, x):
        x = self.convs(x)                                                 # (N, 256, H/16, W/16)
        # Flatten in NHWC order, as the NHWC frameworks do, so that the
        # Dense weights match theirs without a row permutation.
        x = x.permute(0, 2, 3, 1).flatten(1)                              # (N, H/16*W/16*256)
        return self.dense(x)                                              # (N, 1)


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "stages": k, "start": list(start),
            "generator": [DENSE_CHANNELS, *G_WIDTHS[:k - 1]], "discriminator": list(D_WIDTHS[:k])}


# ---- Losses ----
# Those of gan_pytorch.py: binary cross-entropy on logits, D's loss averaged
# over the real and the fake batch (label smoothing optional), G's loss
# non-saturating.

# ---- Train step ----
# gan_pytorch.make_train_step: one D step on separate real and fake batches
# (BatchNorm never mixes their statistics), then one G step.

# ---- Class API ----
class DCGAN(gan_pytorch.GAN):
    """The DCGAN of the reference document's class API, on NumPy NHWC arrays.

    DCGAN(name, z_dim=100, img_shape=(28, 28, 1)) builds the networks and
    their optimizers; train, generate, discriminate, evaluate, generate_z,
    save_me, change_me and the properties come from gan_pytorch.GAN (see
    there: pixels in [0, 1] or [0, 255] in, [0, 1] out; keyword-only
    ``seed``, ``lr``, ``device``).  Only the networks and their NCHW layout
    are this class's own."""

    QUESTION = QUESTION

    @staticmethod
    def model_info(image_shape, z_dim):
        return model_info(image_shape, z_dim)

    def _make_networks(self, z_dim, img_shape):
        gan.dcgan_stages(img_shape)                  # a size the network can make, or a UsageError
        rng = torch.Generator().manual_seed(self._seed)
        generator, discriminator = Generator(z_dim, img_shape), Discriminator(img_shape)
        init_weights(generator, rng)
        init_weights(discriminator, rng)
        return (generator.to(self.device, memory_format=torch.channels_last),
                discriminator.to(self.device, memory_format=torch.channels_last))

    def _to_network(self, images):
        return to_nchw(images).to(self.device)

    def _from_network(self, outputs):
        return to_nhwc(outputs)


# ---- Train ----
def train(args):
    gan_pytorch.train(args, DCGAN)


# ---- Test ----
def test(args):
    return gan_pytorch.test(args, DCGAN)


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
