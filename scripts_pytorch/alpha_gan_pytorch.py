"""alpha-GAN -- PyTorch

Question: an auto-encoder and a GAN trained together on 28x28x1 MNIST
digits (pixels in [-1, 1]).  Four networks:
  G  the generator: the DCGAN generator for the image size (z -> image);
  D  the image discriminator: the DCGAN discriminator (image -> logit);
  E  the encoder: D's convolutions, then Dense(z_dim) (image -> code), a
     deterministic encoder;
  C  the code discriminator: MLP 750 - 750 - 1, LeakyReLU 0.2, no
     BatchNorm (code -> logit: "drawn from the prior N(0, I)").
The depth follows the image size (common.gan.dcgan_stages): 28x28 G
Dense(7x7x256) -> 128 -> C, D and E 32, 64; 32x32 (CIFAR-10) 256, 128 /
32, 64, 128; 64x64 (the newt photos) 512, 256, 128 / 32, 64, 128, 256.
One iteration, one real batch x and one prior batch z ~ N(0, I):
  1. E:  lambda * |x - G(E(x))| + BCE(C(E(x)) -> 1)
  2. G, twice, the losses computed afresh each time:
         lambda * |x - G(E(x))| + BCE(D(G(E(x))) -> 1) + BCE(D(G(z)) -> 1)
  3. D:  BCE(D(x) -> 1) + BCE(D(G(E(x))) -> 0) + BCE(D(G(z)) -> 0)
  4. C:  BCE(C(z) -> 1) + BCE(C(E(x)) -> 0)
lambda 1, |x - G(E(x))| summed over each image's pixels (the paper's L1
norm); Adam betas (0.5, 0.9), lr 5e-4 for G, D and C, 1e-4 for E, batch 64; z of size 10 (128 for CIFAR-10).
G always decodes E's codes and the prior's z in one batch (its BatchNorm
then normalises both alike; make_train_step says why).
Framework: PyTorch (NCHW inside; common/ speaks NHWC).
Paper: Rosca, Lakshminarayanan, Warde-Farley & Mohamed, "Variational
Approaches for Auto-Encoding Generative Adversarial Networks", 2017
(arXiv:1706.04987); the networks: Radford, Metz & Chintala, DCGAN, ICLR 2016.
How to run:
    python scripts_pytorch/alpha_gan_pytorch.py                  # MNIST, train then test
    python scripts_pytorch/alpha_gan_pytorch.py --iters 5000 --data-dir ../shared/datasets/mnist10k
    python scripts_pytorch/alpha_gan_pytorch.py --dataset cifar10    # z of size 128
    python scripts_pytorch/alpha_gan_pytorch.py --test              # the pictures of the latest checkpoint
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from common import alpha_gan, augment, batching, cli, gan, runs  # noqa: E402

QUESTION = "alpha_gan"
FRAMEWORK = "pytorch"


def pick_device(choice):
    return torch.device("cuda" if cli.resolve_device(choice, torch.cuda.is_available()) == "gpu" else "cpu")


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).  G and D are the DCGAN's (dcgan_pytorch.py).
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/2^k, W/2^k, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (the last k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # D's and E's convolutions (the first k used)
C_WIDTHS = (750, 750)           # the code discriminator's hidden layers
KERNEL, STRIDE = 5, 2
SAME_PAD = (1, 2, 1, 2)         # TF 'SAME' for 5x5 stride 2: 1 before, 2 after (left, right, top, bottom)
LEAKY_SLOPE = 0.2               # LeakyReLU slope (D, E, C), set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # BatchNorm eps (G only), set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
ADAM_BETAS = (0.5, 0.9)         # the question's betas, for all four optimizers
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
G_UPDATES = 2                   # G is updated twice per iteration
TEST_BATCH = 100                # images per forward pass in the test and the samples
G_FILE, D_FILE, E_FILE, C_FILE, OPT_FILE = ("generator.pt", "discriminator.pt", "encoder.pt",
                                             "code_discriminator.pt", "optimizers.pt")   # a checkpoint's files


def parse_args(argv=None):
    # --iters and --z-dim: None here, resolved per data set (alpha_gan.defaults; --help says so)
    parser = cli.build_parser(QUESTION, FRAMEWORK, "alpha-GAN (PyTorch).", dataset="mnist", iters=None,
                              batch_size=64, lr=5e-4, sample_every=500, checkpoint_every=1000,
                              extra=alpha_gan.add_flags)
    return alpha_gan.defaults(cli.parse_args(parser, argv))


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC in [-1, 1], with their labels (common loader,
    same in every framework)."""
    return gan.load_images(args, split, alpha_gan.VALUE_RANGE)


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
    """z (N, z_dim) -> images (N, C, H, W) in [-1, 1]: the DCGAN generator."""

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


class ConvStack(nn.Module):
    """images (N, C, H, W) -> (N, outputs): the DCGAN discriminator's 5x5
    stride-2 convolutions + LeakyReLU 0.2, flattened, then a Dense layer.
    With 1 output it is D (a logit), with z_dim outputs E (a code)."""

    def __init__(self, image_shape, outputs):
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
        self.dense = nn.Linear((height >> k) * (width >> k) * in_channels, outputs)   # (N, outputs)

    def forward(self, x):
        x = self.convs(x.contiguous(memory_format=torch.channels_last))   # (N, 64, H/4, W/4) for 28x28
        # Flatten in NHWC order, as the NHWC frameworks do, so that the
        # Dense weights match theirs without a row permutation.
        return self.dense(x.permute(0, 2, 3, 1).flatten(1))               # (N, outputs)


class Discriminator(ConvStack):
    """images (N, C, H, W) -> logits (N, 1); D(x) = sigmoid(logits) is the
    probability that x is a real image.  The sigmoid is applied inside the
    loss (binary cross-entropy on logits, which never takes log(0))."""

    def __init__(self, image_shape):
        super().__init__(image_shape, 1)


class Encoder(ConvStack):
    """images (N, C, H, W) -> codes (N, z_dim): D's convolutions and a
    linear Dense(z_dim), a deterministic encoder (no mean and variance, no
    sampling: making its codes look like the prior is C's job)."""

    def __init__(self, image_shape, z_dim):
        super().__init__(image_shape, z_dim)


class CodeDiscriminator(nn.Module):
    """codes (N, z_dim) -> logits (N, 1); C(z) = sigmoid(logits) is the
    probability that z was drawn from the prior N(0, I) rather than made by
    E.  No BatchNorm: the statistics of a batch would tell the encoder's
    batch from a prior batch by themselves."""

    def __init__(self, z_dim):
        super().__init__()
        layers, in_features = [], z_dim
        for features in C_WIDTHS:
            layers += [nn.Linear(in_features, features), nn.LeakyReLU(LEAKY_SLOPE)]   # (N, 750)
            in_features = features
        layers += [nn.Linear(in_features, 1)]                             # (N, 1) logits
        self.mlp = nn.Sequential(*layers)

    def forward(self, z):
        return self.mlp(z)


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    g_widths, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "stages": k, "start": list(start),
            "generator": [DENSE_CHANNELS, *g_widths], "discriminator": list(d_widths),
            "encoder": list(d_widths), "code_discriminator": list(C_WIDTHS)}


def build_model(image_shape, z_dim, seed, lr, encoder_lr, device):
    """G, D, E, C (initialised from ``seed`` in that order) and their Adam
    optimizers: lr for G, D and C, encoder_lr for E."""
    rng = torch.Generator().manual_seed(seed)
    networks = (Generator(z_dim, image_shape), Discriminator(image_shape), Encoder(image_shape, z_dim),
                CodeDiscriminator(z_dim))
    for network in networks:
        network.apply(init_weights(rng)).to(device, memory_format=torch.channels_last)
    optimizers = tuple(torch.optim.Adam(network.parameters(), lr=rate, betas=ADAM_BETAS, eps=ADAM_EPS)
                       for network, rate in zip(networks, (lr, lr, encoder_lr, lr)))
    return networks + optimizers


@torch.no_grad()
def in_batches(network, arrays, device, nchw=False, nhwc_out=False):
    """A network in inference mode over a NumPy array, TEST_BATCH rows at a time."""
    network.eval()
    outputs = []
    for i in range(0, len(arrays), TEST_BATCH):
        x = to_nchw(arrays[i:i + TEST_BATCH]) if nchw else torch.from_numpy(arrays[i:i + TEST_BATCH])
        y = network(x.to(device))
        outputs.append(to_nhwc(y) if nhwc_out else y.cpu().numpy())
    return np.concatenate(outputs)


def generate(generator, z, device):
    """G(z) in inference mode (BatchNorm's running statistics): (N, z_dim) -> (N, H, W, C)."""
    return in_batches(generator, z, device, nhwc_out=True)


def encode(encoder, images, device):
    """E(x): NHWC images -> codes (N, z_dim)."""
    return in_batches(encoder, images, device, nchw=True)


def discriminate(discriminator, images, device):
    """D's logits (N, 1) of NHWC images."""
    return in_batches(discriminator, images, device, nchw=True)


# ---- Losses ----
def bce(logits, target):
    """Binary cross-entropy of sigmoid(logits) against a constant label (1:
    'real' / 'prior', 0: 'made'), the mean over the batch."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def l1(images, reconstructions):
    """The paper's reconstruction term ||x - G(E(x))||_1: |x - G(E(x))| summed
    over each image's pixels, then the mean over the batch (784 x the pixel
    mean for 28x28x1 digits; the pixel mean with lambda 1 is too weak to
    keep the digits, see the README)."""
    return (images - reconstructions).abs().sum(dim=(1, 2, 3)).mean()


# ---- Train step ----
def make_train_step(generator, discriminator, encoder, code_discriminator, g_optimizer, d_optimizer,
                    e_optimizer, c_optimizer, l1_weight):
    """One iteration on one real batch x and one prior batch z: the four
    steps of the question, in order, each updating one network only (the
    others are frozen, their gradients never computed).  D, E and C have no
    BatchNorm; G runs in training mode and always on E's codes and the
    prior's z together, in one batch of 2N (``decode``), so that its
    BatchNorm normalises both with the same batch statistics.  Two separate
    batches would each be normalised by their own mean and variance: G would
    not see where E puts its codes (any shift or scale of the whole batch
    of codes is normalised away, so E need not match the prior), and the
    running averages used at test would fit neither batch.  G's running
    statistics are updated 4 times an iteration.  Returns alpha_gan.FIELDS."""

    def decode(codes, z):
        """G on [codes; z]: (reconstructions G(E(x)), samples G(z))."""
        images = generator(torch.cat([codes, z]))
        return images[:len(codes)], images[len(codes):]

    def step(optimizer, loss):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def train_step(real_images, z):
        for network in (generator, discriminator, encoder, code_discriminator):
            network.train().requires_grad_(False)

        # 1. E: reconstruct x through G (G's weights fixed) and make the codes
        #    look like prior samples to C (non-saturating: C(E(x)) -> 1).
        encoder.requires_grad_(True)
        codes = encoder(real_images)
        e_l1 = l1(real_images, decode(codes, z)[0])
        e_loss = l1_weight * e_l1 + bce(code_discriminator(codes), 1.0)
        step(e_optimizer, e_loss)
        encoder.requires_grad_(False)
        with torch.no_grad():
            codes = encoder(real_images)        # E's new codes; E is not updated again this iteration

        # 2. G, twice: reconstruct x from E's codes and make D call both the
        #    reconstructions and the samples from the prior real.  Each update
        #    computes its loss afresh with the G it updates.
        generator.requires_grad_(True)
        g_losses = []
        for _ in range(G_UPDATES):
            reconstructions, samples = decode(codes, z)
            g_loss = (l1_weight * l1(real_images, reconstructions) + bce(discriminator(reconstructions), 1.0)
                      + bce(discriminator(samples), 1.0))
            step(g_optimizer, g_loss)
            g_losses.append(g_loss.detach())
        generator.requires_grad_(False)

        # 3. D: real images are real, reconstructions and samples (from the
        #    updated G, no gradient to G) are made.
        discriminator.requires_grad_(True)
        with torch.no_grad():
            reconstructions, samples = decode(codes, z)
        real_logits, reconstruction_logits, sample_logits = (
            discriminator(real_images), discriminator(reconstructions), discriminator(samples))
        d_loss = bce(real_logits, 1.0) + bce(reconstruction_logits, 0.0) + bce(sample_logits, 0.0)
        step(d_optimizer, d_loss)
        discriminator.requires_grad_(False)

        # 4. C: prior samples are "prior", E's codes are "made".  (The paper's
        #    first version swaps these two terms in its equations 16-17; its
        #    authors confirmed the swap.)
        code_discriminator.requires_grad_(True)
        prior_logits, code_logits = code_discriminator(z), code_discriminator(codes)
        c_loss = bce(prior_logits, 1.0) + bce(code_logits, 0.0)
        step(c_optimizer, c_loss)

        with torch.no_grad():
            values = torch.stack([e_loss, torch.stack(g_losses).mean(), d_loss, c_loss, e_l1,
                                  *(torch.sigmoid(logits).mean() for logits in
                                    (real_logits, reconstruction_logits, sample_logits, prior_logits, code_logits))])
        return dict(zip(alpha_gan.FIELDS, values.tolist()))   # one device -> host copy

    return train_step


# ---- Train ----
def save_checkpoint(run, iteration, networks, feed, z_sampler, info, args):
    def write_files(folder):
        for network, name in zip(networks[:4], (G_FILE, D_FILE, E_FILE, C_FILE)):
            torch.save(network.state_dict(), folder / name)         # G's BatchNorm running statistics included
        torch.save({"optimizers": [optimizer.state_dict() for optimizer in networks[4:]],
                    "torch_rng": torch.get_rng_state()}, folder / OPT_FILE)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "feed": feed.state_dict(), "z_sampler": z_sampler.state_dict(), "dataset": args.dataset,
        "l1_weight": args.l1_weight})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state and
    torch's RNG state (the data order and the noise are in meta.json).
    weights_only: no pickled code; a broken file: one line."""
    for network, name in zip(networks[:4], (G_FILE, D_FILE, E_FILE, C_FILE)):
        with runs.reading(folder / name):
            network.load_state_dict(torch.load(folder / name, map_location="cpu", weights_only=True))
    if len(networks) > 4:
        with runs.reading(folder / OPT_FILE):
            state = torch.load(folder / OPT_FILE, map_location="cpu", weights_only=True)
            for optimizer, saved in zip(networks[4:], state["optimizers"], strict=True):
                optimizer.load_state_dict(saved)
            torch.set_rng_state(state["torch_rng"])


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    info = model_info(image_shape, args.z_dim)
    cli.seed_everything(args.seed)
    torch.manual_seed(args.seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed,
                         augment.for_dataset(args.dataset, alpha_gan.VALUE_RANGE))
    z_sampler = alpha_gan.ZSampler(args.z_dim, args.seed)          # z ~ N(0, I) of every iteration (stream TRAIN)
    networks = build_model(image_shape, args.z_dim, args.seed, args.lr, args.encoder_lr, device)
    generator = networks[0]
    start = 0
    if args.resume:
        folder, meta = run.load_checkpoint_meta(args.resume, info)
        load_checkpoint(folder, networks)
        feed.load_state_dict(meta["feed"])
        z_sampler.load_state_dict(meta["z_sampler"])
        start = meta["iteration"]
        if start >= args.iters:
            print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
            return
    run.prepare_training(args, resume=bool(args.resume))
    train_step = make_train_step(*networks, l1_weight=args.l1_weight)
    sample_z = alpha_gan.sample_latents(args.z_dim, args.seed)

    with runs.Progress(run, start, args.iters, alpha_gan.FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_images = feed.next()                              # NHWC in [-1, 1]
            z = z_sampler(args.batch_size)                         # N(0, I)
            losses = train_step(to_nchw(real_images).to(device), torch.from_numpy(z).to(device))
            progress.log(iteration, losses)
            if progress.due(iteration, args.sample_every):
                alpha_gan.save_samples(run, iteration, generate(generator, sample_z, device))
            if progress.due(iteration, args.checkpoint_every):
                save_checkpoint(run, iteration, networks, feed, z_sampler, info, args)
                if progress.plots_due(iteration):
                    alpha_gan.plot_training(run)


# ---- Test ----
def test(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "test")
    image_shape = data.images.shape[1:]
    folder, _ = run.load_checkpoint_meta(args.checkpoint, model_info(image_shape, args.z_dim))
    networks = build_model(image_shape, args.z_dim, args.seed, args.lr, args.encoder_lr, device)[:4]
    load_checkpoint(folder, networks)
    generator, discriminator, encoder, _ = networks
    codes = encode(encoder, data.images, device)
    reconstructions = generate(generator, codes, device)
    z = alpha_gan.test_latents(args.z_dim, args.seed)
    pairs = alpha_gan.interpolation_pairs(data.labels)
    t = np.linspace(0.0, 1.0, alpha_gan.INTERPOLATION_STEPS, dtype=np.float32)[:, None]
    lines = np.concatenate([(1.0 - t) * codes[a] + t * codes[b] for a, b in pairs])   # straight lines between codes
    interpolation = generate(generator, lines, device).reshape(len(pairs), len(t), *image_shape)
    scored = generate(generator, z["scored"], device)
    return alpha_gan.report_test(
        run, data.images, data.labels, data.class_names, codes, reconstructions,
        generate(generator, z["samples"], device), interpolation, scored, z["prior"],
        *(gan.sigmoid(discriminate(discriminator, images, device)) for images in (data.images, reconstructions,
                                                                                  scored)))


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
