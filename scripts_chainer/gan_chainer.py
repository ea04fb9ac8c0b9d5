"""Generative Adversarial Network (GAN), multilayer perceptrons -- Chainer

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
Framework: Chainer 7, an explicit loop with optimizer.update() (the MLPs
see the pixels as one NHWC-ordered vector).
Paper: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014
(arXiv:1406.2661); the non-saturating generator loss is its section 3.
How to run:
    python scripts_chainer/gan_chainer.py             # train, then test
    python scripts_chainer/gan_chainer.py --test      # test the last checkpoint
    python scripts_chainer/gan_chainer.py --dataset cifar10 --label-smoothing 0.1
    python scripts_chainer/gan_chainer.py --dataset mnist --data-dir ../shared/datasets/mnist10k   # offline
As a class:
    from gan_chainer import GAN
    model = GAN("digits", z_dim=100, img_shape=(28, 28, 1))
    result = model.train(images, epochs=40, batch_size=64)            # pixels in [0, 1] or [0, 255]
    images = model.generate(model.generate_z(20))                     # pixels in [0, 1]
"""
# ---- Setup ----
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, class_api, cli, compat, gan, numpy_rng, runs  # noqa: E402

chainer = compat.import_chainer()  # Chainer 7.8.1 needs a shim to import on this stack
import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402

QUESTION = "gan"
FRAMEWORK = "chainer"


def pick_device(choice):
    gpu = cli.resolve_device(choice, chainer.backends.cuda.available) == "gpu"
    return chainer.get_device("@cupy:0" if gpu else "@numpy")


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
                                # (Chainer adds it before the bias correction, PyTorch after)
# File names of a checkpoint (save_me's three files + the optimizers and NumPy's global generator)
G_FILE, D_FILE, VAL_FILE, OPT_FILE = "generator.npz", "discriminator.npz", "variables.json", "optimizers.npz"
RNG_FILE = "numpy_rng.npz"


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "GAN with multilayer perceptrons (Chainer).", dataset="imori",
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
    defaults all differ).  ``rng`` is a numpy.random.RandomState, so
    building a model leaves NumPy's global generator alone."""
    return {"initialW": chainer.initializers.GlorotUniform(rng=rng),
            "initial_bias": chainer.initializers.Zero()}


leaky_relu = functools.partial(F.leaky_relu, slope=LEAKY_SLOPE)


class Generator(chainer.Sequential):
    """z (N, z_dim) -> images as (N, H*W*C) vectors in [-1, 1]."""

    def __init__(self, z_dim, image_shape, rng):
        super().__init__(
            L.Linear(z_dim, G_HIDDEN[0], **init_weights(rng)),                       # (N, 128)
            leaky_relu,
            L.Linear(G_HIDDEN[0], G_HIDDEN[1], **init_weights(rng)),                 # (N, 256)
            leaky_relu,
            L.Linear(G_HIDDEN[1], G_HIDDEN[2], **init_weights(rng)),                 # (N, 512)
            leaky_relu,
            L.Linear(G_HIDDEN[2], int(np.prod(image_shape)), **init_weights(rng)),   # (N, H*W*C)
            F.tanh,
        )


class Discriminator(chainer.Sequential):
    """images as (N, H*W*C) vectors -> logits (N, 1); D(x) = sigmoid(logits)
    is the probability that x is real.  The sigmoid is applied by
    `discriminate` and inside the loss (binary cross-entropy on logits,
    which never takes log(0))."""

    def __init__(self, image_shape, rng):
        super().__init__(
            L.Linear(int(np.prod(image_shape)), D_HIDDEN[0], **init_weights(rng)),   # (N, 512)
            leaky_relu,
            L.Linear(D_HIDDEN[0], D_HIDDEN[1], **init_weights(rng)),                 # (N, 256)
            leaky_relu,
            L.Linear(D_HIDDEN[1], 1, **init_weights(rng)),                           # (N, 1) logits
        )


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "z_dim": int(z_dim),
            "generator": list(G_HIDDEN), "discriminator": list(D_HIDDEN)}


# ---- Losses ----
def bce_with_logits(logits, target):
    """Mean binary cross-entropy of sigmoid(logits) and the constant label
    ``target``, as softplus(l) - target * l (exact where the sigmoid rounds to
    0 or 1); F.sigmoid_cross_entropy takes only 0/1 integer labels."""
    return F.mean(F.softplus(logits) - target * logits)


def discriminator_loss(real_logits, fake_logits, ls_epsilon=0.0):
    """Binary cross-entropy of D on the real batch (labels 1 - eps) and on
    the fake batch (labels eps), averaged over both batches (eps: label
    smoothing, 0 by default)."""
    real_loss = bce_with_logits(real_logits, 1.0 - ls_epsilon)
    fake_loss = bce_with_logits(fake_logits, ls_epsilon)
    return 0.5 * (real_loss + fake_loss)


def generator_loss(fake_logits):
    """The non-saturating generator loss -mean(log D(G(z))): the fake
    images labelled real (1, never smoothed).  Its gradient is strong
    exactly when D rejects the fakes, early in training, unlike the
    minimax loss mean(log(1 - D(G(z))))."""
    return bce_with_logits(fake_logits, 1.0)


def discriminator_accuracy(real_logits, fake_logits):
    """Fraction of both batches on the right side of D(x) = 0.5 (logit 0)."""
    xp = chainer.backend.get_array_module(real_logits)
    right = xp.concatenate([real_logits.array > 0, fake_logits.array <= 0])
    return F.mean(right.astype(np.float32))


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
        with chainer.using_config("train", True):
            fake_images = generator(z)

            real_logits = discriminator(real_images)
            fake_logits = discriminator(fake_images.array)         # the array: no gradient reaches G
            d_loss = discriminator_loss(real_logits, fake_logits, ls_epsilon)
            discriminator.cleargrads()
            d_loss.backward()
            d_optimizer.update()

            # backward also fills D's gradients (Chainer has no per-parameter switch);
            # d_optimizer is not called, and the next D step clears them: only G is updated
            g_loss = generator_loss(discriminator(fake_images))
            generator.cleargrads()
            g_loss.backward()
            g_optimizer.update()

        with chainer.no_backprop_mode():
            values = F.stack([d_loss, g_loss, discriminator_accuracy(real_logits, fake_logits),
                              F.mean(F.sigmoid(real_logits)), F.mean(F.sigmoid(fake_logits))]).array
        return dict(zip(gan.FIELDS, chainer.backends.cuda.to_cpu(values).tolist()))   # one device -> host copy

    return train_step


class GAN(class_api.ClassAPI):
    """The GAN in the DCGAN's class API (the calls: common.class_api.ClassAPI),
    its Chainer half: build, step, forward, save and load weights.  Extras:
    ``seed``, ``lr``, ``device`` ('auto', 'cpu', 'gpu').  Attributes: ``generator``,
    ``discriminator``, ``g_optimizer``, ``d_optimizer``, ``z_sampler``."""

    QUESTION, FRAMEWORK, WEIGHTS_SUFFIX = QUESTION, FRAMEWORK, ".npz"
    model_info = staticmethod(model_info)

    def __init__(self, name, z_dim=gan.Z_DIM, img_shape=(28, 28, 1), *, seed=0, lr=2e-4, device="auto"):
        self.device = pick_device(device) if device in ("auto", "cpu", "gpu") else device   # or picked
        super().__init__(name, z_dim, img_shape, seed=seed, lr=lr)

    def _build_networks(self, z_dim, img_shape):
        rng = np.random.RandomState(self._seed % 2**32)
        self.generator = Generator(z_dim, img_shape, rng)
        self.discriminator = Discriminator(img_shape, rng)
        for network in (self.generator, self.discriminator):
            network.to_device(self.device)
        self.g_optimizer = chainer.optimizers.Adam(alpha=self._lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                                                   eps=ADAM_EPS).setup(self.generator)
        self.d_optimizer = chainer.optimizers.Adam(alpha=self._lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                                                   eps=ADAM_EPS).setup(self.discriminator)
        self._train_step = make_train_step(self.generator, self.discriminator, self.g_optimizer, self.d_optimizer)

    def _step(self, real_images, z, ls_epsilon):
        return self._train_step(self.device.send(flatten(real_images)), self.device.send(z), ls_epsilon)

    def _generate_batch(self, z):
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            return unflatten(chainer.backends.cuda.to_cpu(self.generator(self.device.send(z)).array), self.img_shape)

    def _discriminate_batch(self, images):
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            return chainer.backends.cuda.to_cpu(self.discriminator(self.device.send(flatten(images))).array)

    def _save_weights(self, g_path, d_path):
        chainer.serializers.save_npz(str(g_path), self.generator)      # BatchNorm running statistics included
        chainer.serializers.save_npz(str(d_path), self.discriminator)

    def _read_weights(self, path):
        with np.load(path, allow_pickle=False) as npz:                  # never unpickle
            return dict(npz)

    def _load_weights(self, g_state, d_state):
        chainer.serializers.NpzDeserializer(g_state).load(self.generator)
        chainer.serializers.NpzDeserializer(d_state).load(self.discriminator)


# ---- Train ----
def save_checkpoint(run, iteration, model, feed, args):
    def write_files(folder):
        model.save_me(folder, G_FILE, D_FILE, VAL_FILE)
        optimizers = chainer.serializers.DictionarySerializer()
        optimizers["g_optimizer"].save(model.g_optimizer)      # Adam's m, v and step t of each
        optimizers["d_optimizer"].save(model.d_optimizer)
        np.savez(folder / OPT_FILE, **optimizers.target)
        numpy_rng.save(folder / RNG_FILE)                      # the generator Chainer draws from
    run.save_checkpoint(iteration, write_files, {
        "model": model.model_info(model.img_shape, model.z_dim), "feed": feed.state_dict(),
        "z_sampler": model.z_sampler.state_dict(), "dataset": args.dataset,
        "label_smoothing": args.label_smoothing})


def load_checkpoint(folder, model):
    """Weights, optimizers and NumPy's global RNG state (the data order and
    the noise are in meta.json)."""
    model.change_me(folder, G_FILE, D_FILE, VAL_FILE)
    with runs.reading(folder / OPT_FILE):   # runs.load_npz never unpickles; a broken file: one line
        optimizers = chainer.serializers.NpzDeserializer(runs.load_npz(folder / OPT_FILE))
        optimizers["g_optimizer"].load(model.g_optimizer)
        optimizers["d_optimizer"].load(model.d_optimizer)
    numpy_rng.load(folder / RNG_FILE)


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    cli.seed_everything(args.seed)           # NumPy's global generator, from which Chainer draws
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
