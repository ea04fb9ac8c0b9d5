"""Conditional GAN (CGAN) -- PyTorch

Question: generate 28x28x1 MNIST digits (pixels in [-1, 1]) of a chosen
class: the DCGAN of dcgan_pytorch.py, told the class.  Generator: z ~ U(-1, 1)
of size 100 concatenated with the one-hot label y, then the DCGAN generator
(Dense + BN + ReLU, 5x5 stride-2 transposed convolutions, tanh).
Discriminator: the image concatenated along the channels with n_classes
H x W planes holding the one-hot label, then the DCGAN discriminator (5x5
stride-2 convolutions + LeakyReLU 0.2, Dense(1) + sigmoid).  The depth
follows the image size (common.gan.dcgan_stages): 28x28 G Dense(7x7x256) ->
128 -> C, D 32, 64; 32x32 (CIFAR-10) 256, 128 / 32, 64, 128; 64x64 (the newt
photos, 2 classes) 512, 256, 128 / 32, 64, 128, 256.  Binary cross-entropy,
non-saturating G loss, Adam lr 2e-4, beta1 0.5, batch 64, 20000 iterations
(30000 for CIFAR-10).  D sees the real batch with its true labels and the
fake batch with the labels G was asked for, drawn uniformly.
Framework: PyTorch (NCHW inside; common/ speaks NHWC).
Paper: Mirza & Osindero, "Conditional Generative Adversarial Nets", 2014
(arXiv:1411.1784); the networks: Radford, Metz & Chintala, DCGAN, ICLR 2016
(arXiv:1511.06434).
How to run:
    python scripts_pytorch/cgan_pytorch.py                  # MNIST, train then test
    python scripts_pytorch/cgan_pytorch.py --test --classes 3 7
    python scripts_pytorch/cgan_pytorch.py --dataset fashion_mnist
    python scripts_pytorch/cgan_pytorch.py --dataset imori --iters 5000   # akahara / madara
    python scripts_pytorch/cgan_pytorch.py --data-dir ../shared/datasets/mnist10k   # offline
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from common import augment, batching, cgan, cli, gan, runs  # noqa: E402

QUESTION = "cgan"
FRAMEWORK = "pytorch"


def pick_device(choice):
    return torch.device("cuda" if cli.resolve_device(choice, torch.cuda.is_available()) == "gpu" else "cpu")


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).  The networks are the DCGAN's (dcgan_pytorch.py).
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/2^k, W/2^k, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (the last k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # D's convolutions (the first k used)
KERNEL, STRIDE = 5, 2
SAME_PAD = (1, 2, 1, 2)         # TF 'SAME' for 5x5 stride 2: 1 before, 2 after (left, right, top, bottom)
LEAKY_SLOPE = 0.2               # LeakyReLU slope, set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
ADAM_BETAS = (0.5, 0.999)       # beta1 0.5 for G and D
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
TEST_BATCH = 100                # images per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE = "generator.pt", "discriminator.pt", "optimizers.pt"   # files of a checkpoint


def parse_args(argv=None):
    # --iters: None here, 20000 or 30000 (cifar10) by data set (cgan.default_iters; --help says so)
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Conditional GAN (PyTorch).", dataset="mnist", iters=None,
                              batch_size=64, lr=2e-4, sample_every=500, checkpoint_every=1000, extra=cgan.add_flags)
    return cgan.default_iters(cli.parse_args(parser, argv))


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC in [-1, 1] and their labels (common loader,
    same in every framework); at least two classes."""
    data = gan.load_images(args, split, cgan.VALUE_RANGE)
    cgan.check_data(data, split)
    return data


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
    with 'SAME' padding: (N, I, H, W) -> (N, O, 2H, 2W).  PyTorch's
    padding=1 crops 1 row/column on both sides of the 2H+3 full output, TF
    1 before and 2 after, so the last row and column are dropped here."""

    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels, KERNEL, STRIDE, padding=1)

    def forward(self, x):
        return super().forward(x)[:, :, :-1, :-1].contiguous(memory_format=torch.channels_last)


def init_weights(rng):
    """N(0, 0.02) weights, zero biases, BatchNorm gamma 1 and beta 0: the
    same explicit rule in all four versions (the defaults all differ).
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
    """z (N, z_dim) and the condition y (N, n_classes), one-hot ->
    images (N, C, H, W) in [-1, 1]."""

    def __init__(self, z_dim, n_classes, image_shape):
        super().__init__()
        height, width, channels = image_shape
        k, (h0, w0) = gan.dcgan_stages(image_shape)
        self.start = (h0, w0)
        self.dense = nn.Sequential(
            nn.Linear(z_dim + n_classes, h0 * w0 * DENSE_CHANNELS),       # (N, h0*w0*256), NHWC order
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

    def forward(self, z, y):
        h0, w0 = self.start
        x = self.dense(torch.cat([z, y], dim=1))                          # (N, z_dim + n_classes) -> (N, h0*w0*256)
        # The Dense units are read as an NHWC map, as in the NHWC frameworks,
        # so that the Dense and BatchNorm weights match theirs 1:1.
        x = x.view(-1, h0, w0, DENSE_CHANNELS).permute(0, 3, 1, 2)        # (N, 256, h0, w0)
        return self.deconvs(x)                                            # (N, C, H, W)


class Discriminator(nn.Module):
    """images (N, C, H, W) and the condition y (N, n_classes) -> logits
    (N, 1); D(x, y) = sigmoid(logits) is the probability that x is a real
    image of class y.  The sigmoid is applied inside the loss (binary
    cross-entropy on logits, which never takes log(0))."""

    def __init__(self, n_classes, image_shape):
        super().__init__()
        height, width, channels = image_shape
        k, _ = gan.dcgan_stages(image_shape)
        layers, in_channels = [], channels + n_classes                    # the image, then the label planes
        _, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
        for features in d_widths:                                           # 32, 64, 128, 256 for k = 4
            layers += [Conv2dSame(in_channels, features),                 # (N, features, h/2, w/2)
                       nn.LeakyReLU(LEAKY_SLOPE)]
            in_channels = features
        self.convs = nn.Sequential(*layers)
        self.dense = nn.Linear((height >> k) * (width >> k) * in_channels, 1)   # (N, 1) logits

    def forward(self, x, y):
        n, _, height, width = x.shape
        planes = y[:, :, None, None].expand(n, y.shape[1], height, width)  # (N, n_classes, H, W): y[i, c] everywhere
        x = torch.cat([x, planes], dim=1)                                 # (N, C + n_classes, H, W)
        x = self.convs(x.contiguous(memory_format=torch.channels_last))   # (N, 64, H/4, W/4) for 28x28
        # Flatten in NHWC order, as the NHWC frameworks do, so that the
        # Dense weights match theirs without a row permutation.
        x = x.permute(0, 2, 3, 1).flatten(1)                              # (N, H/4*W/4*64)
        return self.dense(x)                                              # (N, 1)


def model_info(image_shape, z_dim, n_classes):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    g_widths, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "n_classes": int(n_classes), "stages": k,
            "start": list(start), "generator": [DENSE_CHANNELS, *g_widths], "discriminator": list(d_widths)}


def build_model(image_shape, z_dim, n_classes, seed, lr, device):
    """G, D (initialised from ``seed``, G first) and their Adam optimizers."""
    rng = torch.Generator().manual_seed(seed)
    generator = Generator(z_dim, n_classes, image_shape)
    discriminator = Discriminator(n_classes, image_shape)
    for network in (generator, discriminator):
        network.apply(init_weights(rng)).to(device, memory_format=torch.channels_last)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS)
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS)
    return generator, discriminator, g_optimizer, d_optimizer


@torch.no_grad()
def generate(generator, z, conditions, device):
    """G(z, y) in inference mode (BatchNorm's running statistics), NumPy in
    and out: (N, z_dim), (N, n_classes) -> images (N, H, W, C) in [-1, 1]."""
    generator.eval()
    return np.concatenate([to_nhwc(generator(torch.from_numpy(z[i:i + TEST_BATCH]).to(device),
                                             torch.from_numpy(conditions[i:i + TEST_BATCH]).to(device)))
                           for i in range(0, len(z), TEST_BATCH)])


@torch.no_grad()
def discriminate(discriminator, images, conditions, device):
    """D's logits (N, 1) of NHWC images with their conditions, NumPy in and out."""
    discriminator.eval()
    return np.concatenate([discriminator(to_nchw(images[i:i + TEST_BATCH]).to(device),
                                         torch.from_numpy(conditions[i:i + TEST_BATCH]).to(device)).cpu().numpy()
                           for i in range(0, len(images), TEST_BATCH)])


# ---- Losses ----
def discriminator_loss(real_logits, fake_logits, ls_epsilon=0.0):
    """Binary cross-entropy of D on the real batch (labels 1 - eps) and on
    the fake batch (labels eps), averaged over both batches (eps: label
    smoothing, 0 by default)."""
    real_loss = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, 1.0 - ls_epsilon))
    fake_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.full_like(fake_logits, ls_epsilon))
    return 0.5 * (real_loss + fake_loss)


def generator_loss(fake_logits):
    """The non-saturating generator loss -mean(log D(G(z, y), y)): the fake
    images labelled real (1, never smoothed)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def discriminator_accuracy(real_logits, fake_logits):
    """Fraction of both batches on the right side of D(x) = 0.5 (logit 0)."""
    return torch.cat([real_logits > 0, fake_logits <= 0]).float().mean()


# ---- Train step ----
def make_train_step(generator, discriminator, g_optimizer, d_optimizer):
    """One iteration: one D update, then one G update, on one z batch.

    1. fake_images = G(z, fake_labels), once;
    2. D step: D(real_images, real_labels) and D(fake_images, fake_labels)
       in two separate batches, the loss averaged over both; the real
       images come with their true labels, the fakes with the labels G was
       asked for, so D learns "real AND of this class"; no gradient reaches G;
    3. G step: the updated D judges the same fake_images with the same
       labels, now labelled real; only G is updated.
    The labels are one-hot rows (N, n_classes).  Returns d_loss, g_loss,
    d_accuracy, d_real, d_fake (common.gan.FIELDS), measured in the D step
    except g_loss."""

    def train_step(real_images, real_labels, z, fake_labels, ls_epsilon):
        generator.train()
        discriminator.train()
        fake_images = generator(z, fake_labels)

        d_optimizer.zero_grad(set_to_none=True)
        real_logits = discriminator(real_images, real_labels)
        fake_logits = discriminator(fake_images.detach(), fake_labels)   # detach: no gradient reaches G
        d_loss = discriminator_loss(real_logits, fake_logits, ls_epsilon)
        d_loss.backward()
        d_optimizer.step()

        discriminator.requires_grad_(False)                       # D frozen: only G is updated
        g_optimizer.zero_grad(set_to_none=True)
        g_loss = generator_loss(discriminator(fake_images, fake_labels))
        g_loss.backward()
        g_optimizer.step()
        discriminator.requires_grad_(True)

        with torch.no_grad():
            values = torch.stack([d_loss, g_loss, discriminator_accuracy(real_logits, fake_logits),
                                  torch.sigmoid(real_logits).mean(), torch.sigmoid(fake_logits).mean()])
        return dict(zip(gan.FIELDS, values.tolist()))   # one device -> host copy

    return train_step


# ---- Train ----
def save_checkpoint(run, iteration, networks, feed, z_sampler, label_sampler, info, class_names, args):
    generator, discriminator, g_optimizer, d_optimizer = networks

    def write_files(folder):
        torch.save(generator.state_dict(), folder / G_FILE)      # BatchNorm running statistics included
        torch.save(discriminator.state_dict(), folder / D_FILE)
        torch.save({"g_optimizer": g_optimizer.state_dict(), "d_optimizer": d_optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state()}, folder / OPT_FILE)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "class_names": class_names, "feed": feed.state_dict(),
        "z_sampler": z_sampler.state_dict(), "label_sampler": label_sampler.state_dict(),
        "dataset": args.dataset, "label_smoothing": args.label_smoothing})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state and
    torch's RNG state (the data order, the noise and the labels are in
    meta.json).  weights_only: no pickled code; a broken file: one line."""
    generator, discriminator, *optimizers = networks
    for network, name in ((generator, G_FILE), (discriminator, D_FILE)):
        with runs.reading(folder / name):
            network.load_state_dict(torch.load(folder / name, map_location="cpu", weights_only=True))
    if optimizers:
        g_optimizer, d_optimizer = optimizers
        with runs.reading(folder / OPT_FILE):
            state = torch.load(folder / OPT_FILE, map_location="cpu", weights_only=True)
            g_optimizer.load_state_dict(state["g_optimizer"])
            d_optimizer.load_state_dict(state["d_optimizer"])
            torch.set_rng_state(state["torch_rng"])


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape, n_classes = data.images.shape[1:], data.num_classes
    cgan.pick_classes(args.classes, n_classes, args.dataset)   # a bad --classes: one line now, not after training
    info = model_info(image_shape, args.z_dim, n_classes)
    cli.seed_everything(args.seed)
    torch.manual_seed(args.seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed, augment.for_dataset(args.dataset, gan.VALUE_RANGE),
                         labels=data.labels)                       # (images, labels) batches
    z_sampler = gan.ZSampler(args.z_dim, args.seed)                # the z of every step (stream gan.TRAIN)
    label_sampler = cgan.LabelSampler(n_classes, args.seed)        # the labels G is asked for (stream cgan.FAKE_LABELS)
    networks = build_model(image_shape, args.z_dim, n_classes, args.seed, args.lr, device)
    generator, discriminator = networks[:2]
    start = 0
    if args.resume:
        folder, meta = run.load_checkpoint_meta(args.resume, info)
        load_checkpoint(folder, networks)
        feed.load_state_dict(meta["feed"])
        z_sampler.load_state_dict(meta["z_sampler"])
        label_sampler.load_state_dict(meta["label_sampler"])
        start = meta["iteration"]
        if start >= args.iters:
            print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
            return
    run.prepare_training(args, resume=bool(args.resume))
    train_step = make_train_step(*networks)
    sample_z, sample_y = cgan.sample_conditions(n_classes, args.z_dim, args.seed)   # one row per class

    def tensor(array):
        return torch.from_numpy(array).to(device)

    with runs.Progress(run, start, args.iters, gan.FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_images, real_labels = feed.next()                 # NHWC in [-1, 1], int labels
            z = z_sampler(args.batch_size)                         # U(-1, 1)
            fake_labels = label_sampler(args.batch_size)           # uniform over the classes
            losses = train_step(to_nchw(real_images).to(device), tensor(cgan.one_hot(real_labels, n_classes)),
                                tensor(z), tensor(cgan.one_hot(fake_labels, n_classes)), args.label_smoothing)
            progress.log(iteration, losses)
            if progress.due(iteration, args.sample_every):
                cgan.save_samples(run, iteration, generate(generator, sample_z, sample_y, device), data.class_names)
            if progress.due(iteration, args.checkpoint_every):
                save_checkpoint(run, iteration, networks, feed, z_sampler, label_sampler, info, data.class_names,
                                args)
                if progress.plots_due(iteration):
                    gan.plot_training(run)


# ---- Test ----
def test(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "test")
    image_shape, n_classes = data.images.shape[1:], data.num_classes
    classes = cgan.pick_classes(args.classes, n_classes, args.dataset)
    folder, meta = run.load_checkpoint_meta(args.checkpoint, model_info(image_shape, args.z_dim, n_classes))
    cgan.check_class_names(meta, data.class_names)
    generator, discriminator = build_model(image_shape, args.z_dim, n_classes, args.seed, args.lr, device)[:2]
    load_checkpoint(folder, (generator, discriminator))
    conditions = cgan.test_conditions(n_classes, args.z_dim, args.seed, classes)
    images = {name: generate(generator, *conditions[name], device)
              for name in ("grid", "style", "interpolation", "scored")}
    d_real = discriminate(discriminator, data.images, cgan.one_hot(data.labels, n_classes), device)
    d_real_wrong = discriminate(discriminator, data.images,
                                cgan.one_hot(cgan.wrong_labels(data.labels, n_classes), n_classes), device)
    d_fake = discriminate(discriminator, images["scored"], conditions["scored"][1], device)
    return cgan.report_test(run, data.class_names, conditions, images, data.images, data.labels,
                            d_real, d_real_wrong, d_fake)


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
