"""WGAN with gradient penalty (WGAN-GP) -- PyTorch

Question: generate 32x32 images (CIFAR-10 by default; the newt photos are
resized and 28x28 digits padded to 32x32) with the Wasserstein loss, the
critic kept 1-Lipschitz by a gradient penalty instead of weight clipping:
    critic_loss = mean f(fake) - mean f(real) + lambda mean_i (||grad f(x_hat_i)|| - 1)^2
with x_hat_i = eps_i x_i + (1 - eps_i) G(z_i), eps_i ~ U(0, 1) one per
sample, the norm per sample over all of C, H and W; lambda 10.  Networks:
the paper's CIFAR-10 ResNet (its released gan_cifar_resnet.py), width 128,
z ~ N(0, 1) of size 128.  G: Dense(4x4x128) -> 3 up-blocks (BN, ReLU,
nearest x2, conv3x3; BN, ReLU, conv3x3; shortcut x2 + conv1x1) -> BN,
ReLU, conv3x3(C), tanh.  Critic: a first block (conv3x3, LeakyReLU,
conv3x3, 2x2 mean-pool; shortcut mean-pool + conv1x1), a down block, two
plain blocks, LeakyReLU, global mean over space, Dense(1).  No BatchNorm in
the critic (the penalty is per sample, BatchNorm would mix the samples):
its residual blocks use layer norm (per sample over C, H, W, per-channel
gain and bias) and LeakyReLU 0.2.  n_critic 5, each critic update on a
fresh real batch, z and eps; Adam lr 1e-4, betas (0, 0.9), batch 64.
Framework: PyTorch (NCHW inside; common/ speaks NHWC).
Paper: Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, "Improved
Training of Wasserstein GANs", 2017 (arXiv:1704.00028), Algorithm 1.
How to run:
    python scripts_pytorch/wgan_gp_pytorch.py                  # CIFAR-10, train then test
    python scripts_pytorch/wgan_gp_pytorch.py --dataset mnist --data-dir ../shared/datasets/mnist10k --width 32
    python scripts_pytorch/wgan_gp_pytorch.py --critic-norm none   # the released code's critic
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

QUESTION = "wgan_gp"
FRAMEWORK = "pytorch"


def pick_device(choice):
    return torch.device("cuda" if cli.resolve_device(choice, torch.cuda.is_available()) == "gpu" else "cpu")


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).
FIELDS = wgan.FIELDS[QUESTION]  # metrics.csv columns (common/wgan.py says what each is)
NOISE = "normal"                # z ~ N(0, 1)
Z_DIM = 128
START = 4                       # G's Dense layer makes a 4x4 map; three x2 blocks make 32x32
LEAKY_SLOPE = 0.2               # the critic's LeakyReLU slope (G uses ReLU)
BN_EPS = 1e-5                   # G's BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
LN_EPS = 1e-5                   # the critic's layer norm eps
# Weights: Glorot-uniform (limit sqrt(6 / (fan_in + fan_out)), fans counting the kernel's
# taps), zero biases, norm gains 1 and offsets 0: one explicit rule in all four versions.
ADAM_BETAS = (0.0, 0.9)         # the paper's Adam: no first-moment averaging
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
NORM_EPS = 1e-12                # ||g|| = sqrt(sum g^2 + NORM_EPS): finite (and differentiable) where g = 0
TEST_BATCH = 100                # images per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE = "generator.pt", "critic.pt", "optimizers.pt"   # files of a checkpoint


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "WGAN with gradient penalty, ResNet (PyTorch).",
                              dataset="cifar10", iters=100000, batch_size=64, lr=1e-4, sample_every=500,
                              checkpoint_every=1000, extra=wgan.add_flags(QUESTION, z_dim=Z_DIM))
    return cli.parse_args(parser, argv)


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC 32x32 in [-1, 1] (common loader, same in every framework)."""
    return wgan.load_images(args, split)


def to_nchw(images):
    """NHWC (common) -> NCHW (PyTorch)."""
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2).contiguous()


def to_nhwc(outputs):
    """NCHW (PyTorch) -> NHWC NumPy array."""
    return np.ascontiguousarray(outputs.permute(0, 2, 3, 1).detach().cpu().numpy())


# ---- Model ----
def init_weights(rng):
    """Glorot-uniform weights, zero biases; norm layers gain 1, offset 0.
    ``rng`` is a torch.Generator, so building a model leaves torch's global
    RNG alone."""
    def init(module):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(module.weight, generator=rng)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return init


def batch_norm(channels):
    """G's BatchNorm over the channels, eps 1e-5, decay 0.9."""
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=1 - BN_DECAY)


def layer_norm(channels, kind):
    """The critic's normalisation: layer norm per sample over (C, H, W)
    with a gain and an offset per channel -- GroupNorm with one group is
    exactly that -- or nothing (``--critic-norm none``)."""
    return nn.GroupNorm(1, channels, eps=LN_EPS) if kind == "layer" else nn.Identity()


def conv3x3(in_channels, out_channels):
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)     # stride 1: 'SAME' pads 1 a side everywhere


def conv1x1(in_channels, out_channels):
    return nn.Conv2d(in_channels, out_channels, 1)


def upsample(x):
    """Nearest-neighbour x2: (N, C, H, W) -> (N, C, 2H, 2W)."""
    return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def mean_pool(x):
    """2x2 mean pool, stride 2: (N, C, H, W) -> (N, C, H/2, W/2)."""
    return F.avg_pool2d(x, 2)


class UpBlock(nn.Module):
    """G's residual block: (N, C, H, W) -> (N, C', 2H, 2W)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.norm1, self.conv1 = batch_norm(in_channels), conv3x3(in_channels, out_channels)
        self.norm2, self.conv2 = batch_norm(out_channels), conv3x3(out_channels, out_channels)
        self.shortcut = conv1x1(in_channels, out_channels)

    def forward(self, x):
        h = self.conv1(upsample(F.relu(self.norm1(x))))               # BN, ReLU, x2, conv3x3
        h = self.conv2(F.relu(self.norm2(h)))                           # BN, ReLU, conv3x3
        return self.shortcut(upsample(x)) + h                           # x2, conv1x1


class FirstBlock(nn.Module):
    """The critic's first block, on the image: (N, C, H, W) -> (N, W', H/2, W/2)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1, self.conv2 = conv3x3(in_channels, out_channels), conv3x3(out_channels, out_channels)
        self.shortcut = conv1x1(in_channels, out_channels)

    def forward(self, x):
        h = mean_pool(self.conv2(F.leaky_relu(self.conv1(x), LEAKY_SLOPE)))   # conv, act, conv, pool
        return self.shortcut(mean_pool(x)) + h                              # pool, conv1x1


class CriticBlock(nn.Module):
    """The critic's residual block, (LN, LeakyReLU, conv3x3) twice; "down"
    mean-pools after the second conv and in the shortcut (conv1x1 then
    pool): (N, C, H, W) -> (N, C, H/2, W/2); a plain block keeps the size
    and has the identity as shortcut."""

    def __init__(self, channels, norm, down):
        super().__init__()
        self.down = down
        self.norm1, self.conv1 = layer_norm(channels, norm), conv3x3(channels, channels)
        self.norm2, self.conv2 = layer_norm(channels, norm), conv3x3(channels, channels)
        self.shortcut = conv1x1(channels, channels) if down else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.leaky_relu(self.norm1(x), LEAKY_SLOPE))
        h = self.conv2(F.leaky_relu(self.norm2(h), LEAKY_SLOPE))
        if self.down:
            return mean_pool(self.shortcut(x)) + mean_pool(h)
        return x + h


class Generator(nn.Module):
    """z (N, z_dim) -> images (N, C, 32, 32) in [-1, 1]."""

    def __init__(self, z_dim, image_shape, width):
        super().__init__()
        channels = image_shape[2]
        self.width = width
        self.dense = nn.Linear(z_dim, START * START * width)                # (N, 4*4*width), NHWC order
        self.blocks = nn.Sequential(*[UpBlock(width, width) for _ in range(3)])   # 4 -> 8 -> 16 -> 32
        self.norm, self.out = batch_norm(width), conv3x3(width, channels)

    def forward(self, z):
        # The Dense units are read as an NHWC map, as in the NHWC frameworks.
        x = self.dense(z).view(-1, START, START, self.width).permute(0, 3, 1, 2)   # (N, width, 4, 4)
        x = self.blocks(x)                                                 # (N, width, 32, 32)
        return torch.tanh(self.out(F.relu(self.norm(x))))                  # (N, C, 32, 32)


class Critic(nn.Module):
    """images (N, C, 32, 32) -> scores f(x) (N, 1), linear."""

    def __init__(self, image_shape, width, norm):
        super().__init__()
        self.blocks = nn.Sequential(
            FirstBlock(image_shape[2], width),                              # (N, width, 16, 16)
            CriticBlock(width, norm, down=True),                            # (N, width, 8, 8)
            CriticBlock(width, norm, down=False),                           # (N, width, 8, 8)
            CriticBlock(width, norm, down=False))                           # (N, width, 8, 8)
        self.dense = nn.Linear(width, 1)

    def forward(self, x):
        x = F.leaky_relu(self.blocks(x), LEAKY_SLOPE)
        return self.dense(x.mean(dim=(2, 3)))                              # global mean -> (N, width) -> (N, 1)


def model_info(image_shape, z_dim, width, norm):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "noise": NOISE, "width": int(width),
            "critic_norm": norm}


def build_model(image_shape, z_dim, width, norm, seed, lr, device):
    """G, the critic (initialised from ``seed``, G first) and their Adam optimizers."""
    rng = torch.Generator().manual_seed(seed)
    generator, critic = Generator(z_dim, image_shape, width), Critic(image_shape, width, norm)
    for network in (generator, critic):
        network.apply(init_weights(rng)).to(device)
    g_optimizer, c_optimizer = (torch.optim.Adam(network.parameters(), lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS)
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
    """mean f(fake) - mean f(real) = -W (the sign convention of common/wgan.py)."""
    return fake_scores.mean() - real_scores.mean()


def generator_loss(fake_scores):
    """-mean f(G(z))."""
    return -fake_scores.mean()


def gradient_norms(critic, real_images, fake_images, eps, create_graph=False):
    """||grad_x f(x_hat_i)||_2 per sample, over all of C, H and W, at
    x_hat_i = eps_i x_i + (1 - eps_i) G(z_i) with one eps_i per sample.
    Samples do not interact in the critic (layer norm is per sample), so the
    gradient of sum_i f(x_hat_i) holds every sample's own gradient.
    create_graph: keep the graph of the gradient, so that a loss made of
    these norms can be differentiated again (double backprop)."""
    eps = eps.view(-1, 1, 1, 1)
    x_hat = (eps * real_images + (1 - eps) * fake_images.detach()).requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=create_graph)
    return torch.sqrt((grads ** 2).sum(dim=(1, 2, 3)) + NORM_EPS)   # (N,)


def gradient_penalty(norms):
    """mean_i (||grad f(x_hat_i)|| - 1)^2, before the weight lambda."""
    return ((norms - 1.0) ** 2).mean()


# ---- Train step ----
def make_train_step(generator, critic, g_optimizer, c_optimizer, gp_weight):
    """One iteration (Algorithm 1 of the paper): n_critic critic updates,
    each on its own real batch, z and eps, the loss with the gradient
    penalty (its gradient needs the gradient of a gradient:
    torch.autograd.grad(create_graph=True)); then one G update on a fresh z.

    real_batches, critic_z, eps: lists of n_critic batches (N, C, H, W),
    (N, z_dim) and (N,); g_z (N, z_dim).  Returns the metrics of wgan.FIELDS
    (the critic's numbers averaged over its n_critic steps)."""

    def critic_step(real_images, z, eps):
        with torch.no_grad():
            fake_images = generator(z)                          # training mode: BN on this batch
        c_optimizer.zero_grad(set_to_none=True)
        real_scores, fake_scores = critic(real_images), critic(fake_images)
        norms = gradient_norms(critic, real_images, fake_images, eps, create_graph=True)
        penalty = gradient_penalty(norms)
        wasserstein = real_scores.mean() - fake_scores.mean()
        loss = critic_loss(real_scores, fake_scores) + gp_weight * penalty
        loss.backward()
        c_optimizer.step()
        return torch.stack([loss, wasserstein, real_scores.mean(), fake_scores.mean(), norms.mean(), penalty])

    def train_step(real_batches, critic_z, eps, g_z):
        generator.train()
        critic.train()
        rows = torch.stack([critic_step(*batch).detach() for batch in zip(real_batches, critic_z, eps)])

        critic.requires_grad_(False)                            # critic frozen: only G is updated
        g_optimizer.zero_grad(set_to_none=True)
        g_loss = generator_loss(critic(generator(g_z)))
        g_loss.backward()
        g_optimizer.step()
        critic.requires_grad_(True)

        loss, wasserstein, real, fake, grad_norm, penalty = rows.mean(dim=0).tolist()   # one device -> host copy
        return {"critic_loss": loss, "g_loss": g_loss.item(), "wasserstein": wasserstein, "critic_real": real,
                "critic_fake": fake, "grad_norm": grad_norm, "gradient_penalty": penalty}

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
        "gp_weight": args.gp_weight})


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
    info = model_info(image_shape, args.z_dim, args.width, args.critic_norm)
    cli.seed_everything(args.seed)
    torch.manual_seed(args.seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed, augment.for_dataset(args.dataset, gan.VALUE_RANGE))
    z_sampler = wgan.NormalZSampler(args.z_dim, args.seed)         # the z of every step (stream wgan.TRAIN)
    mix_sampler = wgan.MixSampler(args.seed)                       # eps_i of every critic step
    networks = build_model(image_shape, args.z_dim, args.width, args.critic_norm, args.seed, args.lr, device)
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
    train_step = make_train_step(*networks, gp_weight=args.gp_weight)
    sample_z = wgan.sample_latents(args.z_dim, args.seed, NOISE)

    def tensor(array):
        return torch.from_numpy(array).to(device)

    with runs.Progress(run, start, args.iters, FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_batches = [to_nchw(feed.next()).to(device) for _ in range(args.n_critic)]   # fresh for each step
            critic_z = [tensor(z_sampler(args.batch_size)) for _ in range(args.n_critic)]
            eps = [tensor(mix_sampler(args.batch_size)) for _ in range(args.n_critic)]
            g_z = tensor(z_sampler(args.batch_size))
            losses = train_step(real_batches, critic_z, eps, g_z)
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
    info = model_info(image_shape, args.z_dim, args.width, args.critic_norm)
    folder, _ = run.load_checkpoint_meta(args.checkpoint, info)
    generator, critic = build_model(image_shape, args.z_dim, args.width, args.critic_norm, args.seed, args.lr,
                                    device)[:2]
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
