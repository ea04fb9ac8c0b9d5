"""Wasserstein GAN (WGAN) -- PyTorch

Question: generate 32x32 images (CIFAR-10 by default; the newt photos are
resized and 28x28 digits padded to 32x32, so one network serves every data
set) with the Wasserstein loss.  Networks: the DCGAN's for 32x32 (G:
Dense(4x4x256) + BN + ReLU, 5x5 stride-2 transposed convolutions 256, 128
with BN + ReLU, then C + tanh; z ~ U(-1, 1) of size 100), but D is a
*critic*: 5x5 stride-2 convolutions 32, 64, 128 + LeakyReLU 0.2 and a
linear Dense(1) output, no sigmoid, no BatchNorm.  The critic maximises
W = mean f(real) - mean f(fake), the estimate of the Wasserstein-1
distance, G minimises -mean f(G(z)); after every critic update each critic
parameter is clipped to [-0.01, 0.01] (the Lipschitz constraint).  n_critic
5 critic updates per G update, each on a fresh real batch and fresh z;
RMSProp lr 5e-5, batch 64.
Framework: PyTorch (NCHW inside; common/ speaks NHWC).
Paper: Arjovsky, Chintala & Bottou, "Wasserstein GAN", 2017
(arXiv:1701.07875), Algorithm 1.
How to run:
    python scripts_pytorch/wgan_pytorch.py                   # CIFAR-10, train then test
    python scripts_pytorch/wgan_pytorch.py --dataset mnist --data-dir ../shared/datasets/mnist10k
    python scripts_pytorch/wgan_pytorch.py --dataset imori --iters 5000
    python scripts_pytorch/wgan_pytorch.py --test             # pictures from the last checkpoint
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from common import augment, batching, cli, gan, runs, wgan  # noqa: E402

QUESTION = "wgan"
FRAMEWORK = "pytorch"


def pick_device(choice):
    return torch.device("cuda" if cli.resolve_device(choice, torch.cuda.is_available()) == "gpu" else "cpu")


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).  The networks are the DCGAN's (dcgan_pytorch.py).
FIELDS = wgan.FIELDS[QUESTION]  # metrics.csv columns (common/wgan.py says what each is)
NOISE = "uniform"               # z ~ U(-1, 1)
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/8, W/8, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (the last k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # the critic's convolutions (the first k used)
KERNEL, STRIDE = 5, 2
SAME_PAD = (1, 2, 1, 2)         # TF 'SAME' for 5x5 stride 2: 1 before, 2 after (left, right, top, bottom)
LEAKY_SLOPE = 0.2               # LeakyReLU slope, set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
# RMSProp: v = rho v + (1 - rho) g^2, step lr g / (sqrt(v) + eps), v starts at 0, not centred, no
# momentum: the reference code's torch defaults, set explicitly (TF 1's RMSProp starts v at 1 and
# puts eps inside the sqrt, Keras 3 and Chainer have other rho/eps defaults).
RMSPROP_RHO = 0.99
RMSPROP_EPS = 1e-8
NORM_EPS = 1e-12                # ||g|| = sqrt(sum g^2 + NORM_EPS): finite where g = 0
TEST_BATCH = 100                # images per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE = "generator.pt", "critic.pt", "optimizers.pt"   # files of a checkpoint


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Wasserstein GAN with weight clipping (PyTorch).",
                              dataset="cifar10", iters=100000, batch_size=64, lr=5e-5, sample_every=500,
                              checkpoint_every=1000, extra=wgan.add_flags(QUESTION, z_dim=gan.Z_DIM))
    return cli.parse_args(parser, argv)


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC 32x32 in [-1, 1] (common loader, same in every framework)."""
    return wgan.load_images(args, split)


def to_nchw(images):
    """NHWC (common) -> NCHW (PyTorch), a view: the memory stays NHWC, which
    PyTorch calls channels_last, its fast layout for convolutions."""
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)


def to_nhwc(outputs):
    """NCHW (PyTorch) -> NHWC NumPy array."""
    return np.ascontiguousarray(outputs.permute(0, 2, 3, 1).detach().cpu().numpy())


# ---- Model ----
class Conv2dSame(nn.Conv2d):
    """5x5 stride-2 convolution with TF's 'SAME' padding (even sizes only):
    (N, I, H, W) -> (N, O, H/2, W/2)."""

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
    same explicit rule in all four versions (the defaults all differ)."""
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
            nn.Linear(z_dim, h0 * w0 * DENSE_CHANNELS),                  # (N, 4*4*256), NHWC order
            batch_norm(h0 * w0 * DENSE_CHANNELS, dims=1),
            nn.ReLU(),
        )
        layers, in_channels = [], DENSE_CHANNELS
        g_widths, _ = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
        for features in g_widths:                                           # 256, 128 for 32x32
            layers += [ConvTranspose2dSame(in_channels, features),        # (N, features, 2h, 2w)
                       batch_norm(features),
                       nn.ReLU()]
            in_channels = features
        layers += [ConvTranspose2dSame(in_channels, channels),            # (N, C, H, W)
                   nn.Tanh()]
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z):
        h0, w0 = self.start
        # The Dense units are read as an NHWC map, as in the NHWC frameworks.
        x = self.dense(z).view(-1, h0, w0, DENSE_CHANNELS).permute(0, 3, 1, 2)   # (N, 256, 4, 4)
        return self.deconvs(x)                                            # (N, C, H, W)


class Critic(nn.Module):
    """images (N, C, H, W) -> scores f(x) (N, 1): a real number, not a
    probability (no sigmoid), higher for what looks real.  No BatchNorm:
    each score depends on its own image only."""

    def __init__(self, image_shape):
        super().__init__()
        height, width, channels = image_shape
        k, _ = gan.dcgan_stages(image_shape)
        layers, in_channels = [], channels
        _, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
        for features in d_widths:                                           # 32, 64, 128 for 32x32
            layers += [Conv2dSame(in_channels, features),                 # (N, features, h/2, w/2)
                       nn.LeakyReLU(LEAKY_SLOPE)]
            in_channels = features
        self.convs = nn.Sequential(*layers)
        self.dense = nn.Linear((height >> k) * (width >> k) * in_channels, 1)   # (N, 1), linear

    def forward(self, x):
        x = self.convs(x.contiguous(memory_format=torch.channels_last))   # (N, 128, H/8, W/8)
        x = x.permute(0, 2, 3, 1).flatten(1)                              # NHWC order, as the NHWC frameworks
        return self.dense(x)                                              # (N, 1)


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    g_widths, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "noise": NOISE, "stages": k,
            "start": list(start), "generator": [DENSE_CHANNELS, *g_widths], "critic": list(d_widths)}


def build_model(image_shape, z_dim, seed, lr, device):
    """G, the critic (initialised from ``seed``, G first) and their RMSProp optimizers."""
    rng = torch.Generator().manual_seed(seed)
    generator, critic = Generator(z_dim, image_shape), Critic(image_shape)
    for network in (generator, critic):
        network.apply(init_weights(rng)).to(device, memory_format=torch.channels_last)
    g_optimizer, c_optimizer = (torch.optim.RMSprop(network.parameters(), lr=lr, alpha=RMSPROP_RHO, eps=RMSPROP_EPS,
                                                    momentum=0.0, centered=False)
                                for network in (generator, critic))
    return generator, critic, g_optimizer, c_optimizer


@torch.no_grad()
def generate(generator, z, device):
    """G(z) in inference mode (BatchNorm's running statistics), NumPy in and
    out: (N, z_dim) -> images (N, H, W, C) in [-1, 1]."""
    generator.eval()
    return np.concatenate([to_nhwc(generator(torch.from_numpy(z[i:i + TEST_BATCH]).to(device)))
                           for i in range(0, len(z), TEST_BATCH)])


@torch.no_grad()
def criticize(critic, images, device):
    """The critic's scores (N, 1) of NHWC images, NumPy in and out."""
    critic.eval()
    return np.concatenate([critic(to_nchw(images[i:i + TEST_BATCH]).to(device)).cpu().numpy()
                           for i in range(0, len(images), TEST_BATCH)])


# ---- Losses ----
def critic_loss(real_scores, fake_scores):
    """mean f(fake) - mean f(real) = -W: minimising it maximises the
    Wasserstein estimate W (the sign convention of common/wgan.py)."""
    return fake_scores.mean() - real_scores.mean()


def generator_loss(fake_scores):
    """-mean f(G(z)): G moves its samples to where the critic scores high."""
    return -fake_scores.mean()


def gradient_norms(critic, real_images, fake_images, eps, create_graph=False):
    """||grad_x f(x_hat_i)||_2 per sample, over all of C, H and W, at
    x_hat_i = eps_i x_i + (1 - eps_i) G(z_i) with one eps_i per sample.
    Samples do not interact in the critic, so the gradient of sum_i f(x_hat_i)
    holds every sample's own gradient.  Here (WGAN) only a measure."""
    eps = eps.view(-1, 1, 1, 1)
    x_hat = (eps * real_images + (1 - eps) * fake_images.detach()).requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=create_graph)
    return torch.sqrt((grads ** 2).sum(dim=(1, 2, 3)) + NORM_EPS)   # (N,)


# ---- Train step ----
def make_train_step(generator, critic, g_optimizer, c_optimizer, clip):
    """One iteration (Algorithm 1): n_critic critic updates, each on its own
    real batch and z, each followed by clipping every critic parameter to
    [-clip, clip]; then one G update on a fresh z.

    real_batches, critic_z: lists of n_critic batches (N, C, H, W) and (N, z_dim);
    eps (N,): the mix of the gradient-norm measure, taken once per iteration
    after the critic updates on the last critic batch; g_z (N, z_dim).
    Returns the metrics of wgan.FIELDS but clip_fraction (the critic's
    numbers averaged over its n_critic steps)."""

    def critic_step(real_images, z):
        with torch.no_grad():
            fake_images = generator(z)                          # training mode: BN on this batch
        c_optimizer.zero_grad(set_to_none=True)
        real_scores, fake_scores = critic(real_images), critic(fake_images)
        loss = critic_loss(real_scores, fake_scores)
        loss.backward()
        c_optimizer.step()
        with torch.no_grad():
            for parameter in critic.parameters():               # the Lipschitz constraint, by force
                parameter.clamp_(-clip, clip)
        return fake_images, torch.stack([loss, -loss, real_scores.mean(), fake_scores.mean()])

    def train_step(real_batches, critic_z, eps, g_z):
        generator.train()
        critic.train()
        rows = []
        for real_images, z in zip(real_batches, critic_z):
            fake_images, row = critic_step(real_images, z)
            rows.append(row)
        grad_norm = gradient_norms(critic, real_images, fake_images, eps).mean()

        critic.requires_grad_(False)                            # critic frozen: only G is updated
        g_optimizer.zero_grad(set_to_none=True)
        g_loss = generator_loss(critic(generator(g_z)))
        g_loss.backward()
        g_optimizer.step()
        critic.requires_grad_(True)

        loss, wasserstein, real, fake = torch.stack(rows).mean(dim=0).tolist()   # one device -> host copy
        return {"critic_loss": loss, "g_loss": g_loss.item(), "wasserstein": wasserstein, "critic_real": real,
                "critic_fake": fake, "grad_norm": grad_norm.item()}

    return train_step


# ---- Train ----
def save_checkpoint(run, iteration, networks, feed, z_sampler, mix_sampler, info, args):
    generator, critic, g_optimizer, c_optimizer = networks

    def write_files(folder):
        torch.save(generator.state_dict(), folder / G_FILE)      # BatchNorm running statistics included
        torch.save(critic.state_dict(), folder / D_FILE)
        torch.save({"g_optimizer": g_optimizer.state_dict(), "c_optimizer": c_optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state()}, folder / OPT_FILE)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "feed": feed.state_dict(), "z_sampler": z_sampler.state_dict(),
        "mix_sampler": mix_sampler.state_dict(), "generator_steps": iteration,
        "critic_steps": iteration * args.n_critic, "dataset": args.dataset, "n_critic": args.n_critic,
        "clip": args.clip})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state and
    torch's RNG state.  weights_only: no pickled code; a broken file: one line."""
    generator, critic, *optimizers = networks
    for network, name in ((generator, G_FILE), (critic, D_FILE)):
        with runs.reading(folder / name):
            network.load_state_dict(torch.load(folder / name, map_location="cpu", weights_only=True))
    if optimizers:
        g_optimizer, c_optimizer = optimizers
        with runs.reading(folder / OPT_FILE):
            state = torch.load(folder / OPT_FILE, map_location="cpu", weights_only=True)
            g_optimizer.load_state_dict(state["g_optimizer"])
            c_optimizer.load_state_dict(state["c_optimizer"])
            torch.set_rng_state(state["torch_rng"])


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    info = model_info(image_shape, args.z_dim)
    cli.seed_everything(args.seed)
    torch.manual_seed(args.seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed, augment.for_dataset(args.dataset, gan.VALUE_RANGE))
    z_sampler = wgan.ZSampler(args.z_dim, args.seed)               # the z of every step (stream wgan.TRAIN)
    mix_sampler = wgan.MixSampler(args.seed)                       # eps of the gradient-norm measure
    networks = build_model(image_shape, args.z_dim, args.seed, args.lr, device)
    generator, critic = networks[:2]
    start = 0
    if args.resume:
        folder, meta = run.load_checkpoint_meta(args.resume, info)
        load_checkpoint(folder, networks)
        for sampler, key in ((feed, "feed"), (z_sampler, "z_sampler"), (mix_sampler, "mix_sampler")):
            sampler.load_state_dict(meta[key])
        start = meta["generator_steps"]
        if start >= args.iters:
            print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
            return
    run.prepare_training(args, resume=bool(args.resume))
    train_step = make_train_step(*networks, clip=args.clip)
    sample_z = wgan.sample_latents(args.z_dim, args.seed, NOISE)

    def tensor(array):
        return torch.from_numpy(array).to(device)

    with runs.Progress(run, start, args.iters, FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_batches = [to_nchw(feed.next()).to(device) for _ in range(args.n_critic)]   # fresh for each step
            critic_z = [tensor(z_sampler(args.batch_size)) for _ in range(args.n_critic)]
            eps = tensor(mix_sampler(args.batch_size))
            g_z = tensor(z_sampler(args.batch_size))
            losses = train_step(real_batches, critic_z, eps, g_z)
            losses["clip_fraction"] = wgan.clip_fraction([p.detach().cpu().numpy() for p in critic.parameters()],
                                                         args.clip)
            progress.log(iteration, losses)
            if progress.due(iteration, args.sample_every):
                wgan.save_samples(run, iteration, generate(generator, sample_z, device))
            if progress.due(iteration, args.checkpoint_every):
                save_checkpoint(run, iteration, networks, feed, z_sampler, mix_sampler, info, args)
                if progress.plots_due(iteration):
                    wgan.plot_training(run, FIELDS)


# ---- Test ----
def test(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "test")
    image_shape = data.images.shape[1:]
    folder, _ = run.load_checkpoint_meta(args.checkpoint, model_info(image_shape, args.z_dim))
    generator, critic = build_model(image_shape, args.z_dim, args.seed, args.lr, device)[:2]
    load_checkpoint(folder, (generator, critic))
    z = wgan.test_latents(args.z_dim, args.seed, NOISE)
    frames, paths = z["morph"].shape[:2]
    images = {name: generate(generator, z[name].reshape(-1, args.z_dim), device)
              for name in ("samples", "linear", "spherical", "morph", "scored")}
    return wgan.report_test(run, images["samples"], images["linear"], images["spherical"],
                            images["morph"].reshape(frames, paths, *image_shape), images["scored"],
                            criticize(critic, data.images, device), criticize(critic, images["scored"], device),
                            NOISE)


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
