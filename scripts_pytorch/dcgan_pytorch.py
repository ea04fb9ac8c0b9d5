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
Fashion-MNIST); G uses the last k-1 of its widths above, D the first k
(common.gan.dcgan_stages, common.gan.dcgan_widths).
The networks are wrapped in the class API of the reference document
(dcgan_keras_class_api.md): DCGAN(name, z_dim, img_shape) with train,
generate, discriminate, evaluate, generate_z, save_me, change_me; its
framework-neutral half is common.class_api.ClassAPI, the PyTorch half is here.
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

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from common import augment, batching, class_api, cli, gan, runs  # noqa: E402

QUESTION = "dcgan"
FRAMEWORK = "pytorch"


def pick_device(choice):
    return torch.device("cuda" if cli.resolve_device(choice, torch.cuda.is_available()) == "gpu" else "cpu")


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/2^k, W/2^k, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (the last k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # D's convolutions (the first k used)
KERNEL, STRIDE = 5, 2
# TF/Keras 'SAME' padding for a 5x5 stride-2 convolution of an even size:
# 1 row/column before, 2 after, the convention of this question.  A
# symmetric padding of 2 (padding=2 here) has the same output shape but
# other numbers: this version pads explicitly.
SAME_PAD = (1, 2, 1, 2)         # (left, right, top, bottom) for F.pad
LEAKY_SLOPE = 0.2               # LeakyReLU slope, set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
                                # (the running variance takes the unbiased batch variance, except in
                                # Keras 3, which takes the biased one: a factor n/(n-1), no switch)
ADAM_BETAS = (0.5, 0.999)       # beta1 0.5 for G and D
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
# File names of a checkpoint (save_me's three files + the optimizers)
G_FILE, D_FILE, VAL_FILE, OPT_FILE = "generator.pt", "discriminator.pt", "variables.json", "optimizers.pt"


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "DCGAN (PyTorch).", dataset="imori", iters=5000, batch_size=64,
                              lr=2e-4, sample_every=500, checkpoint_every=1000, extra=gan.add_flags)
    return cli.parse_args(parser, argv)


# ---- Data ----
def load_data(args, split, value_range=gan.VALUE_RANGE):
    """Images as float32 NHWC in ``value_range`` (common loader, same in every framework)."""
    return gan.load_images(args, split, value_range)


def to_nchw(images):
    """NHWC (common) -> NCHW (PyTorch), a view: the memory stays NHWC, which
    PyTorch calls channels_last, its fast layout for convolutions."""
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)


def to_nhwc(outputs):
    """NCHW (PyTorch) -> NHWC NumPy array."""
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
    pixel.)  The cropped view is copied into channels_last memory, where
    the BatchNorm that follows is fast."""

    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels, KERNEL, STRIDE, padding=1)

    def forward(self, x):
        return super().forward(x)[:, :, :-1, :-1].contiguous(memory_format=torch.channels_last)


def init_weights(rng):
    """N(0, 0.02) weights, zero biases, BatchNorm gamma 1 and beta 0: the
    same explicit rule in all four versions (the defaults all differ).
    Returns the function that ``network.apply`` calls on every layer;
    ``rng`` is a torch.Generator, so building a model leaves torch's global
    RNG alone."""
    def init(module):
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, INIT_STD, generator=rng)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return init


def batch_norm(size, dims=2):
    """BatchNorm over the channels (dims 2) or the Dense units (dims 1), eps 1e-5, decay 0.9."""
    return (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(size, eps=BN_EPS, momentum=1 - BN_DECAY)


class Generator(nn.Module):
    """z (N, z_dim) -> images (N, C, H, W) in [-1, 1]."""

    def __init__(self, z_dim, image_shape):
        super().__init__()
        height, width, channels = image_shape
        k, (h0, w0) = gan.dcgan_stages(image_shape)
        self.start = (h0, w0)
        self.dense = nn.Sequential(
            nn.Linear(z_dim, h0 * w0 * DENSE_CHANNELS),                   # (N, h0*w0*256), NHWC order
            batch_norm(h0 * w0 * DENSE_CHANNELS, dims=1),
            nn.ReLU(),
        )
        layers, in_channels = [], DENSE_CHANNELS
        g_widths, _ = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
        for features in g_widths:                                           # 512, 256, 128 for k = 4; 128 for 28x28
            layers += [ConvTranspose2dSame(in_channels, features),        # (N, features, 2h, 2w)
                       batch_norm(features),
                       nn.ReLU()]
            in_channels = features
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
        _, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
        for features in d_widths:                                           # 32, 64, 128, 256 for k = 4
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
    g_widths, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "stages": k, "start": list(start),
            "generator": [DENSE_CHANNELS, *g_widths], "discriminator": list(d_widths)}


# ---- Losses ----
def discriminator_loss(real_logits, fake_logits, ls_epsilon=0.0):
    """Binary cross-entropy of D on the real batch (labels 1 - eps) and on
    the fake batch (labels eps), averaged over both batches (eps: label
    smoothing, 0 by default)."""
    real_loss = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, 1.0 - ls_epsilon))
    fake_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.full_like(fake_logits, ls_epsilon))
    return 0.5 * (real_loss + fake_loss)


def generator_loss(fake_logits):
    """The non-saturating generator loss -mean(log D(G(z))): the fake
    images labelled real (1, never smoothed).  Its gradient is strong
    exactly when D rejects the fakes, early in training, unlike the
    minimax loss mean(log(1 - D(G(z))))."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def discriminator_accuracy(real_logits, fake_logits):
    """Fraction of both batches on the right side of D(x) = 0.5 (logit 0)."""
    return torch.cat([real_logits > 0, fake_logits <= 0]).float().mean()


# ---- Train step ----
def make_train_step(generator, discriminator, g_optimizer, d_optimizer):
    """One iteration: one D update, then one G update, on one z batch.

    1. fake_images = G(z), once (G's BatchNorm uses and tracks the fake batch's statistics);
    2. D step: D(real_images) and D(fake_images) in two separate batches
       (BatchNorm never mixes their statistics), the loss averaged over
       both; no gradient reaches G;
    3. G step: the updated D judges the same fake_images, labelled real;
       only G is updated.
    Returns d_loss, g_loss, d_accuracy, d_real, d_fake (common.gan.FIELDS),
    measured in the D step except g_loss."""

    def train_step(real_images, z, ls_epsilon):
        generator.train()
        discriminator.train()
        fake_images = generator(z)

        d_optimizer.zero_grad(set_to_none=True)
        real_logits = discriminator(real_images)
        fake_logits = discriminator(fake_images.detach())          # detach: no gradient reaches G
        d_loss = discriminator_loss(real_logits, fake_logits, ls_epsilon)
        d_loss.backward()
        d_optimizer.step()

        discriminator.requires_grad_(False)                       # D frozen: only G is updated
        g_optimizer.zero_grad(set_to_none=True)
        g_loss = generator_loss(discriminator(fake_images))
        g_loss.backward()
        g_optimizer.step()
        discriminator.requires_grad_(True)

        with torch.no_grad():
            values = torch.stack([d_loss, g_loss, discriminator_accuracy(real_logits, fake_logits),
                                  torch.sigmoid(real_logits).mean(), torch.sigmoid(fake_logits).mean()])
        return dict(zip(gan.FIELDS, values.tolist()))   # one device -> host copy

    return train_step


class DCGAN(class_api.ClassAPI):
    """The DCGAN of the reference document's class API (the calls: common.class_api.ClassAPI),
    its PyTorch half: build, step, forward, save and load weights.  Extras:
    ``seed``, ``lr``, ``device`` ('auto', 'cpu', 'gpu').  Attributes: ``generator``,
    ``discriminator``, ``g_optimizer``, ``d_optimizer``, ``z_sampler``."""

    QUESTION, FRAMEWORK, WEIGHTS_SUFFIX = QUESTION, FRAMEWORK, ".pt"
    model_info = staticmethod(model_info)

    def __init__(self, name, z_dim=gan.Z_DIM, img_shape=(28, 28, 1), *, seed=0, lr=2e-4, device="auto"):
        self.device = pick_device(device) if device in ("auto", "cpu", "gpu") else device   # or picked
        super().__init__(name, z_dim, img_shape, seed=seed, lr=lr)

    def _build_networks(self, z_dim, img_shape):
        rng = torch.Generator().manual_seed(self._seed)
        self.generator = Generator(z_dim, img_shape)
        self.discriminator = Discriminator(img_shape)
        for network in (self.generator, self.discriminator):
            network.apply(init_weights(rng)).to(self.device, memory_format=torch.channels_last)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=self._lr, betas=ADAM_BETAS, eps=ADAM_EPS)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self._lr, betas=ADAM_BETAS,
                                            eps=ADAM_EPS)
        self._train_step = make_train_step(self.generator, self.discriminator, self.g_optimizer, self.d_optimizer)

    def _step(self, real_images, z, ls_epsilon):
        return self._train_step(to_nchw(real_images).to(self.device), torch.from_numpy(z).to(self.device), ls_epsilon)

    @torch.no_grad()
    def _generate_batch(self, z):
        self.generator.eval()
        return to_nhwc(self.generator(torch.from_numpy(z).to(self.device)))

    @torch.no_grad()
    def _discriminate_batch(self, images):
        self.discriminator.eval()
        return self.discriminator(to_nchw(images).to(self.device)).cpu().numpy()

    def _save_weights(self, g_path, d_path):
        torch.save(self.generator.state_dict(), g_path)      # BatchNorm running statistics included
        torch.save(self.discriminator.state_dict(), d_path)

    def _read_weights(self, path):
        return torch.load(path, map_location="cpu", weights_only=True)   # weights_only: no pickled code

    def _load_weights(self, g_state, d_state):
        self.generator.load_state_dict(g_state)
        self.discriminator.load_state_dict(d_state)


# ---- Train ----
def save_checkpoint(run, iteration, model, feed, args):
    def write_files(folder):
        model.save_me(folder, G_FILE, D_FILE, VAL_FILE)
        torch.save({"g_optimizer": model.g_optimizer.state_dict(), "d_optimizer": model.d_optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state()}, folder / OPT_FILE)
    run.save_checkpoint(iteration, write_files, {
        "model": model.model_info(model.img_shape, model.z_dim), "feed": feed.state_dict(),
        "z_sampler": model.z_sampler.state_dict(), "dataset": args.dataset,
        "label_smoothing": args.label_smoothing})


def load_checkpoint(folder, model):
    """Weights, optimizers and torch's RNG state (the data order and the
    noise are in meta.json)."""
    model.change_me(folder, G_FILE, D_FILE, VAL_FILE)
    with runs.reading(folder / OPT_FILE):   # weights_only: no pickled code; a broken file: one line
        state = torch.load(folder / OPT_FILE, map_location="cpu", weights_only=True)
        model.g_optimizer.load_state_dict(state["g_optimizer"])
        model.d_optimizer.load_state_dict(state["d_optimizer"])
        torch.set_rng_state(state["torch_rng"])


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    cli.seed_everything(args.seed)
    torch.manual_seed(args.seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed, augment.for_dataset(args.dataset, gan.VALUE_RANGE))
    model = DCGAN(f"{QUESTION}_{args.dataset}", args.z_dim, image_shape, seed=args.seed, lr=args.lr, device=device)
    start = 0
    if args.resume:
        folder, meta = run.load_checkpoint_meta(args.resume, model_info(image_shape, args.z_dim))
        load_checkpoint(folder, model)
        model.z_sampler.load_state_dict(meta["z_sampler"])
        feed.load_state_dict(meta["feed"])
        start = meta["iteration"]
        if start >= args.iters:
            print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
            return
    run.prepare_training(args, resume=bool(args.resume))
    with runs.Progress(run, start, args.iters, gan.FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_images = feed.next()                      # NHWC in [-1, 1]; the model makes it NCHW
            losses = model.train_step(real_images, model.generate_z(args.batch_size), args.label_smoothing)
            progress.log(iteration, losses)
            if progress.due(iteration, args.sample_every):
                gan.save_samples(run, iteration, model.generate(model.z_fixed_for_sample))
            if progress.due(iteration, args.checkpoint_every):
                save_checkpoint(run, iteration, model, feed, args)
                if progress.plots_due(iteration):
                    gan.plot_training(run)


# ---- Test ----
def test(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "test", gan.PIXEL_RANGE)   # pixels in [0, 1], as the class API takes them
    image_shape = data.images.shape[1:]
    folder, _ = run.load_checkpoint_meta(args.checkpoint, model_info(image_shape, args.z_dim))
    model = DCGAN(QUESTION, args.z_dim, image_shape, seed=args.seed, device=device)
    model.change_me(folder, G_FILE, D_FILE, VAL_FILE)
    return gan.report_model_test(run, model, data.images, args.z_dim, args.seed)


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
