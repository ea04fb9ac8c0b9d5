"""Generative Adversarial Network (GAN), multilayer perceptrons -- PyTorch

Question: generate 64x64x3 newt photos (pixels in [-1, 1]) from noise
z ~ U(-1, 1) of size 100 with two multilayer perceptrons.  Generator:
Dense 128, 256, 512 (each +LeakyReLU 0.2), Dense(H*W*C)+tanh.
Discriminator: Dense 512, 256 (each +LeakyReLU 0.2), Dense(1)+sigmoid.
Binary cross-entropy with the non-saturating generator loss, Adam lr 2e-4,
beta1 0.5, batch 64, 5000 iterations; the discriminator sees the real and
the fake images in separate batches.
The networks are wrapped in the same class API as the DCGAN
(dcgan_keras_class_api.md): GAN(name, z_dim, img_shape) with train,
generate, discriminate, evaluate, generate_z, save_me, change_me; its
framework-neutral half is common.class_api.ClassAPI.
Framework: PyTorch (the MLPs see the pixels as one NHWC-ordered vector).
Paper: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014
(arXiv:1406.2661); the non-saturating generator loss is its section 3.
How to run:
    python scripts_pytorch/gan_pytorch.py             # train, then test
    python scripts_pytorch/gan_pytorch.py --test      # test the last checkpoint
    python scripts_pytorch/gan_pytorch.py --dataset cifar10 --label-smoothing 0.1
    python scripts_pytorch/gan_pytorch.py --dataset mnist --data-dir ../shared/datasets/mnist10k   # offline
As a class:
    from gan_pytorch import GAN
    model = GAN("digits", z_dim=100, img_shape=(28, 28, 1))
    result = model.train(images, epochs=40, batch_size=64)            # pixels in [0, 1] or [0, 255]
    images = model.generate(model.generate_z(20))                     # pixels in [0, 1]
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

QUESTION = "gan"
FRAMEWORK = "pytorch"


def pick_device(choice):
    return torch.device("cuda" if cli.resolve_device(choice, torch.cuda.is_available()) == "gpu" else "cpu")


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).
G_HIDDEN = (128, 256, 512)      # G's hidden Dense layers
D_HIDDEN = (512, 256)           # D's hidden Dense layers
LEAKY_SLOPE = 0.2               # LeakyReLU slope, set explicitly: every framework has its own default
# Weights Glorot-uniform, biases 0 (init_weights), not the DCGAN paper's N(0, 0.02):
# through G's four layers that signal shrinks, and G learns slowly (README).
ADAM_BETAS = (0.5, 0.999)       # beta1 0.5 for G and D
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
# File names of a checkpoint (save_me's three files + the optimizers)
G_FILE, D_FILE, VAL_FILE, OPT_FILE = "generator.pt", "discriminator.pt", "variables.json", "optimizers.pt"


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "GAN with multilayer perceptrons (PyTorch).", dataset="imori",
                              iters=5000, batch_size=64, lr=2e-4, sample_every=500, checkpoint_every=1000,
                              extra=gan.add_flags)
    return cli.parse_args(parser, argv)


# ---- Data ----
def load_data(args, split, value_range=gan.VALUE_RANGE):
    """Images as float32 NHWC in ``value_range`` (common loader, same in every framework)."""
    return gan.load_images(args, split, value_range)


def flatten(images):
    """NHWC -> (N, H*W*C).  The MLPs see the pixel vector in the common
    NHWC order, so their weights match the other versions 1:1."""
    return np.ascontiguousarray(images.reshape(len(images), -1))


def unflatten(vectors, image_shape):
    """(N, H*W*C) -> NHWC."""
    return vectors.reshape((len(vectors), *image_shape))


# ---- Model ----
def init_weights(rng):
    """Glorot-uniform weights, U(-a, a) with a = sqrt(6 / (fan_in + fan_out)),
    and zero biases: the same explicit rule in all four versions (the
    defaults all differ).  Returns the function that ``network.apply``
    calls on every layer; ``rng`` is a torch.Generator, so building a
    model leaves torch's global RNG alone."""
    def init(module):
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight, generator=rng)
            nn.init.zeros_(module.bias)
    return init


class Generator(nn.Sequential):
    """z (N, z_dim) -> images as (N, H*W*C) vectors in [-1, 1]."""

    def __init__(self, z_dim, image_shape):
        super().__init__(
            nn.Linear(z_dim, G_HIDDEN[0]),                      # (N, 128)
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Linear(G_HIDDEN[0], G_HIDDEN[1]),                # (N, 256)
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Linear(G_HIDDEN[1], G_HIDDEN[2]),                # (N, 512)
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Linear(G_HIDDEN[2], int(np.prod(image_shape))),  # (N, H*W*C)
            nn.Tanh(),
        )


class Discriminator(nn.Sequential):
    """images as (N, H*W*C) vectors -> logits (N, 1); D(x) = sigmoid(logits)
    is the probability that x is real.  The sigmoid is applied by
    `discriminate` and inside the loss (binary cross-entropy on logits,
    which never takes log(0))."""

    def __init__(self, image_shape):
        super().__init__(
            nn.Linear(int(np.prod(image_shape)), D_HIDDEN[0]),  # (N, 512)
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Linear(D_HIDDEN[0], D_HIDDEN[1]),                # (N, 256)
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Linear(D_HIDDEN[1], 1),                          # (N, 1) logits
        )


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "z_dim": int(z_dim),
            "generator": list(G_HIDDEN), "discriminator": list(D_HIDDEN)}


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


class GAN(class_api.ClassAPI):
    """The GAN in the DCGAN's class API (the calls: common.class_api.ClassAPI),
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
            network.apply(init_weights(rng)).to(self.device)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=self._lr, betas=ADAM_BETAS, eps=ADAM_EPS)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self._lr, betas=ADAM_BETAS,
                                            eps=ADAM_EPS)
        self._train_step = make_train_step(self.generator, self.discriminator, self.g_optimizer, self.d_optimizer)

    def _step(self, real_images, z, ls_epsilon):
        real_images = torch.from_numpy(flatten(real_images)).to(self.device)
        return self._train_step(real_images, torch.from_numpy(z).to(self.device), ls_epsilon)

    @torch.no_grad()
    def _generate_batch(self, z):
        self.generator.eval()
        return unflatten(self.generator(torch.from_numpy(z).to(self.device)).cpu().numpy(), self.img_shape)

    @torch.no_grad()
    def _discriminate_batch(self, images):
        self.discriminator.eval()
        return self.discriminator(torch.from_numpy(flatten(images)).to(self.device)).cpu().numpy()

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
    model = GAN(f"{QUESTION}_{args.dataset}", args.z_dim, image_shape, seed=args.seed, lr=args.lr, device=device)
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
            real_images = feed.next()                      # NHWC in [-1, 1]; the model flattens it
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
    model = GAN(QUESTION, args.z_dim, image_shape, seed=args.seed, device=device)
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
