"""WGAN with gradient penalty (WGAN-GP) -- Chainer

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
Framework: Chainer (NCHW inside; common/ speaks NHWC).
Paper: Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, "Improved
Training of Wasserstein GANs", 2017 (arXiv:1704.00028), Algorithm 1.
How to run:
    python scripts_chainer/wgan_gp_chainer.py                  # CIFAR-10, train then test
    python scripts_chainer/wgan_gp_chainer.py --dataset mnist --data-dir ../shared/datasets/mnist10k --width 32
    python scripts_chainer/wgan_gp_chainer.py --critic-norm none   # the released code's critic
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, cli, compat, gan, numpy_rng, runs, wgan  # noqa: E402

chainer = compat.import_chainer()  # Chainer 7.8.1 needs a shim to import on this stack
import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402

QUESTION = "wgan_gp"
FRAMEWORK = "chainer"


def pick_device(choice):
    gpu = cli.resolve_device(choice, chainer.backends.cuda.available) == "gpu"
    return chainer.get_device("@cupy:0" if gpu else "@numpy")


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
                                # (Chainer adds it before the bias correction, PyTorch after)
NORM_EPS = 1e-12                # ||g|| = sqrt(sum g^2 + NORM_EPS): finite (and differentiable) where g = 0
TEST_BATCH = 100                # images per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE, RNG_FILE = "generator.npz", "critic.npz", "optimizers.npz", "numpy_rng.npz"


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "WGAN with gradient penalty, ResNet (Chainer).",
                              dataset="cifar10", iters=100000, batch_size=64, lr=1e-4, sample_every=500,
                              checkpoint_every=1000, extra=wgan.add_flags(QUESTION, z_dim=Z_DIM))
    return cli.parse_args(parser, argv)


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC 32x32 in [-1, 1] (common loader, same in every framework)."""
    return wgan.load_images(args, split)


def to_nchw(images):
    """NHWC (common) -> NCHW (Chainer), a contiguous copy."""
    return np.ascontiguousarray(np.asarray(images, np.float32).transpose(0, 3, 1, 2))


def to_nhwc(outputs):
    """NCHW (Chainer) -> NHWC NumPy array."""
    return np.ascontiguousarray(chainer.backends.cuda.to_cpu(outputs).transpose(0, 2, 3, 1))


# ---- Model ----
def init_weights(rng):
    """Glorot-uniform weights (the fans count the kernel's taps, as torch's), zero biases; norm
    gains 1, offsets 0.  ``rng``: a numpy.random.RandomState (NumPy's global generator untouched)."""
    return {"initialW": chainer.initializers.GlorotUniform(scale=1.0, rng=rng),
            "initial_bias": chainer.initializers.Zero()}


def batch_norm(channels):
    """G's BatchNorm over the channels, eps 1e-5, decay 0.9."""
    return L.BatchNormalization(channels, decay=BN_DECAY, eps=BN_EPS, initial_gamma=chainer.initializers.One(),
                                initial_beta=chainer.initializers.Zero())


class LayerNorm(chainer.Link):
    """Layer norm per sample over (C, H, W), a gain and an offset per channel: F.layer_normalization
    of the flattened sample (gain 1, offset 0), then the channels' gain and offset.  (Chainer
    7.8.1's GroupNormalization(1, C), torch's choice, fails in double backprop: a None gradient.)"""

    def __init__(self, channels):
        super().__init__()
        with self.init_scope():
            self.gamma = chainer.Parameter(chainer.initializers.One(), (channels,))
            self.beta = chainer.Parameter(chainer.initializers.Zero(), (channels,))

    def forward(self, x):
        flat = F.reshape(x, (len(x), -1))                                   # (N, C*H*W)
        ones, zeros = (self.xp.full(flat.shape[1], value, x.dtype) for value in (1, 0))
        x = F.reshape(F.layer_normalization(flat, ones, zeros, LN_EPS), x.shape)
        return x * F.reshape(self.gamma, (1, -1, 1, 1)) + F.reshape(self.beta, (1, -1, 1, 1))


def layer_norm(channels, kind):
    """The critic's normalisation: LayerNorm (per sample over C, H, W, per-channel gain and
    offset: torch's GroupNorm with one group) or nothing (``--critic-norm none``)."""
    return LayerNorm(channels) if kind == "layer" else F.identity


def conv3x3(in_channels, out_channels, rng):
    return L.Convolution2D(in_channels, out_channels, 3, pad=1, **init_weights(rng))   # stride 1: 'SAME'


def conv1x1(in_channels, out_channels, rng):
    return L.Convolution2D(in_channels, out_channels, 1, **init_weights(rng))


def upsample(x):
    """Nearest-neighbour x2: (N, C, H, W) -> (N, C, 2H, 2W)."""
    return F.repeat(F.repeat(x, 2, axis=2), 2, axis=3)


def mean_pool(x):
    """2x2 mean pool, stride 2: (N, C, H, W) -> (N, C, H/2, W/2)."""
    return F.average_pooling_2d(x, 2)


class UpBlock(chainer.Chain):
    """G's residual block: (N, C, H, W) -> (N, C', 2H, 2W)."""

    def __init__(self, in_channels, out_channels, rng):
        super().__init__()
        with self.init_scope():
            self.norm1, self.conv1 = batch_norm(in_channels), conv3x3(in_channels, out_channels, rng)
            self.norm2, self.conv2 = batch_norm(out_channels), conv3x3(out_channels, out_channels, rng)
            self.shortcut = conv1x1(in_channels, out_channels, rng)

    def forward(self, x):
        h = self.conv1(upsample(F.relu(self.norm1(x))))               # BN, ReLU, x2, conv3x3
        h = self.conv2(F.relu(self.norm2(h)))                           # BN, ReLU, conv3x3
        return self.shortcut(upsample(x)) + h                           # x2, conv1x1


class FirstBlock(chainer.Chain):
    """The critic's first block, on the image: (N, C, H, W) -> (N, W', H/2, W/2)."""

    def __init__(self, in_channels, out_channels, rng):
        super().__init__()
        with self.init_scope():
            self.conv1, self.conv2 = conv3x3(in_channels, out_channels, rng), conv3x3(out_channels, out_channels, rng)
            self.shortcut = conv1x1(in_channels, out_channels, rng)

    def forward(self, x):
        h = mean_pool(self.conv2(F.leaky_relu(self.conv1(x), LEAKY_SLOPE)))   # conv, act, conv, pool
        return self.shortcut(mean_pool(x)) + h                              # pool, conv1x1


class CriticBlock(chainer.Chain):
    """The critic's residual block, (LN, LeakyReLU, conv3x3) twice; "down"
    mean-pools after the second conv and in the shortcut (conv1x1 then
    pool): (N, C, H, W) -> (N, C, H/2, W/2); a plain block keeps the size
    and has the identity as shortcut."""

    def __init__(self, channels, norm, down, rng):
        super().__init__()
        self.down = down
        with self.init_scope():
            self.norm1, self.conv1 = layer_norm(channels, norm), conv3x3(channels, channels, rng)
            self.norm2, self.conv2 = layer_norm(channels, norm), conv3x3(channels, channels, rng)
            self.shortcut = conv1x1(channels, channels, rng) if down else F.identity

    def forward(self, x):
        h = self.conv1(F.leaky_relu(self.norm1(x), LEAKY_SLOPE))
        h = self.conv2(F.leaky_relu(self.norm2(h), LEAKY_SLOPE))
        if self.down:
            return mean_pool(self.shortcut(x)) + mean_pool(h)
        return x + h


class Generator(chainer.Chain):
    """z (N, z_dim) -> images (N, C, 32, 32) in [-1, 1]."""

    def __init__(self, z_dim, image_shape, width, rng):
        super().__init__()
        channels = image_shape[2]
        self.width = width
        with self.init_scope():
            self.dense = L.Linear(z_dim, START * START * width, **init_weights(rng))   # (N, 4*4*width), NHWC order
            self.blocks = chainer.Sequential(*[UpBlock(width, width, rng) for _ in range(3)])   # 4 -> 8 -> 16 -> 32
            self.norm, self.out = batch_norm(width), conv3x3(width, channels, rng)

    def forward(self, z):
        # The Dense units are read as an NHWC map, as in the NHWC frameworks.
        x = F.transpose(F.reshape(self.dense(z), (-1, START, START, self.width)), (0, 3, 1, 2))   # (N, width, 4, 4)
        x = self.blocks(x)                                                 # (N, width, 32, 32)
        return F.tanh(self.out(F.relu(self.norm(x))))                      # (N, C, 32, 32)


class Critic(chainer.Chain):
    """images (N, C, 32, 32) -> scores f(x) (N, 1), linear."""

    def __init__(self, image_shape, width, norm, rng):
        super().__init__()
        with self.init_scope():
            self.blocks = chainer.Sequential(
                FirstBlock(image_shape[2], width, rng),                     # (N, width, 16, 16)
                CriticBlock(width, norm, True, rng),                        # (N, width, 8, 8), down
                CriticBlock(width, norm, False, rng),                       # (N, width, 8, 8)
                CriticBlock(width, norm, False, rng))                       # (N, width, 8, 8)
            self.dense = L.Linear(width, 1, **init_weights(rng))

    def forward(self, x):
        x = F.leaky_relu(self.blocks(x), LEAKY_SLOPE)
        return self.dense(F.mean(x, axis=(2, 3)))                          # global mean -> (N, width) -> (N, 1)


def model_info(image_shape, z_dim, width, norm):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "noise": NOISE, "width": int(width),
            "critic_norm": norm}


def build_model(image_shape, z_dim, width, norm, seed, lr, device):
    """G, the critic (initialised from ``seed``, G first) and their Adam optimizers."""
    rng = np.random.RandomState(seed % 2**32)
    generator, critic = Generator(z_dim, image_shape, width, rng), Critic(image_shape, width, norm, rng)
    for network in (generator, critic):
        network.to_device(device)
    g_optimizer, c_optimizer = (chainer.optimizers.Adam(alpha=lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                                                        eps=ADAM_EPS).setup(network)
                                for network in (generator, critic))
    return generator, critic, g_optimizer, c_optimizer


def generate(generator, z, device):
    """G(z) in inference mode (BatchNorm's running statistics), NumPy in and
    out: (N, z_dim) -> images (N, H, W, C) in [-1, 1]."""
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        return np.concatenate([to_nhwc(generator(device.send(z[i:i + TEST_BATCH])).array)
                               for i in range(0, len(z), TEST_BATCH)])


def criticize(critic, images, device):
    """The critic's scores (N, 1) of NHWC images, NumPy in and out."""
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        return np.concatenate([chainer.backends.cuda.to_cpu(
            critic(device.send(to_nchw(images[i:i + TEST_BATCH]))).array) for i in range(0, len(images), TEST_BATCH)])


# ---- Losses ----
def critic_loss(real_scores, fake_scores):
    """mean f(fake) - mean f(real) = -W (the sign convention of common/wgan.py)."""
    return F.mean(fake_scores) - F.mean(real_scores)


def generator_loss(fake_scores):
    """-mean f(G(z))."""
    return -F.mean(fake_scores)


def gradient_norms(critic, real_images, fake_images, eps, create_graph=False):
    """||grad_x f(x_hat_i)||_2 per sample, over all of C, H and W, at
    x_hat_i = eps_i x_i + (1 - eps_i) G(z_i) with one eps_i per sample (arrays
    in: no gradient reaches G).  Samples do not interact in the critic (layer
    norm is per sample), so the gradient of sum_i f(x_hat_i) holds every
    sample's own gradient (chainer.grad leaves the parameters' .grad alone).
    create_graph: keep the graph of the gradient, so that a loss made of
    these norms can be differentiated again (double backprop)."""
    eps = eps.reshape(-1, 1, 1, 1)
    x_hat = chainer.Variable(eps * real_images + (1 - eps) * fake_images)
    (grads,) = chainer.grad([F.sum(critic(x_hat))], [x_hat], enable_double_backprop=create_graph)
    return F.sqrt(F.sum(grads ** 2, axis=(1, 2, 3)) + NORM_EPS)   # (N,)


def gradient_penalty(norms):
    """mean_i (||grad f(x_hat_i)|| - 1)^2, before the weight lambda."""
    return F.mean((norms - 1.0) ** 2)


# ---- Train step ----
def make_train_step(generator, critic, g_optimizer, c_optimizer, gp_weight):
    """One iteration (Algorithm 1 of the paper): n_critic critic updates,
    each on its own real batch, z and eps, the loss with the gradient
    penalty (its gradient needs the gradient of a gradient:
    chainer.grad(enable_double_backprop=True)); then one G update on a fresh z.

    real_batches, critic_z, eps: lists of n_critic batches (N, C, H, W),
    (N, z_dim) and (N,); g_z (N, z_dim).  Returns the metrics of wgan.FIELDS
    (the critic's numbers averaged over its n_critic steps)."""
    xp = critic.xp

    def critic_step(real_images, z, eps):
        with chainer.no_backprop_mode():
            fake_images = generator(z).array                    # training mode: BN on this batch
        real_scores, fake_scores = critic(real_images), critic(fake_images)
        norms = gradient_norms(critic, real_images, fake_images, eps, create_graph=True)
        penalty = gradient_penalty(norms)
        wasserstein = F.mean(real_scores) - F.mean(fake_scores)
        loss = critic_loss(real_scores, fake_scores) + gp_weight * penalty
        critic.cleargrads()
        loss.backward()
        c_optimizer.update()
        return xp.stack([F.mean(v).array for v in (loss, wasserstein, real_scores, fake_scores, norms, penalty)])

    def train_step(real_batches, critic_z, eps, g_z):
        with chainer.using_config("train", True):
            rows = xp.stack([critic_step(*batch) for batch in zip(real_batches, critic_z, eps)])

            # backward fills the critic's gradients too (no per-parameter switch): never used, cleared
            g_loss = generator_loss(critic(generator(g_z)))
            generator.cleargrads()
            g_loss.backward()
            g_optimizer.update()

        values = xp.concatenate([rows.mean(axis=0), g_loss.array[None]])
        loss, wasserstein, real, fake, grad_norm, penalty, g_loss = chainer.backends.cuda.to_cpu(values).tolist()
        return {"critic_loss": loss, "g_loss": g_loss, "wasserstein": wasserstein, "critic_real": real,
                "critic_fake": fake, "grad_norm": grad_norm, "gradient_penalty": penalty}

    return train_step


# ---- Train ----
def save_checkpoint(run, iteration, networks, feed, z_sampler, mix_sampler, info, args):
    generator, critic, g_optimizer, c_optimizer = networks

    def write_files(folder):
        chainer.serializers.save_npz(str(folder / G_FILE), generator)      # BatchNorm running statistics included
        chainer.serializers.save_npz(str(folder / D_FILE), critic)
        optimizers = chainer.serializers.DictionarySerializer()
        optimizers["g_optimizer"].save(g_optimizer)                        # Adam's m, v and step t of each
        optimizers["c_optimizer"].save(c_optimizer)
        np.savez(folder / OPT_FILE, **optimizers.target)
        numpy_rng.save(folder / RNG_FILE)                                  # NumPy's global RNG, Chainer draws from it
    run.save_checkpoint(iteration, write_files, {
        "model": info, "feed": feed.state_dict(), "z_sampler": z_sampler.state_dict(),
        "mix_sampler": mix_sampler.state_dict(), "generator_steps": iteration,
        "critic_steps": iteration * args.n_critic, "dataset": args.dataset, "n_critic": args.n_critic,
        "gp_weight": args.gp_weight})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state and
    NumPy's global RNG state.  runs.load_npz never unpickles; a broken file: one line."""
    generator, critic, *optimizers = networks
    for network, name in ((generator, G_FILE), (critic, D_FILE)):
        with runs.reading(folder / name):
            chainer.serializers.NpzDeserializer(runs.load_npz(folder / name)).load(network)
    if optimizers:
        g_optimizer, c_optimizer = optimizers
        with runs.reading(folder / OPT_FILE):
            state = chainer.serializers.NpzDeserializer(runs.load_npz(folder / OPT_FILE))
            state["g_optimizer"].load(g_optimizer)
            state["c_optimizer"].load(c_optimizer)
        numpy_rng.load(folder / RNG_FILE)


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    info = model_info(image_shape, args.z_dim, args.width, args.critic_norm)
    cli.seed_everything(args.seed)                                 # NumPy's global generator, from which Chainer draws
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
        return device.send(array)

    with runs.Progress(run, start, args.iters, FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_batches = [tensor(to_nchw(feed.next())) for _ in range(args.n_critic)]   # fresh for each step
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
