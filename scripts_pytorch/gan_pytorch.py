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
generate, discriminate, evaluate, generate_z, save_me, change_me; main()
uses it.
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
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from common import augment, batching, cli, gan, pictures, runs  # noqa: E402
from common.errors import UsageError  # noqa: E402

QUESTION = "gan"
FRAMEWORK = "pytorch"

# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).
VALUE_RANGE = gan.VALUE_RANGE   # the networks see and make images in [-1, 1]
G_HIDDEN = (128, 256, 512)      # G's hidden Dense layers
D_HIDDEN = (512, 256)           # D's hidden Dense layers
LEAKY_SLOPE = 0.2               # torch's LeakyReLU default is 0.01 (Keras 0.3)
# Weights Glorot-uniform (Keras' default), biases 0.  Measured on MNIST: with
# the DCGAN paper's N(0, 0.02) the signal shrinks through G's four layers and
# G still draws noise after 1000 iterations; with Glorot-uniform digit strokes
# appear after 500-600.
ADAM_BETAS = (0.5, 0.999)       # beta1 0.5 for G and D
ADAM_EPS = 1e-8                 # torch default, set explicitly (Keras' default is 1e-7)
# File names of a checkpoint (save_me's three files + the optimizers)
G_FILE, D_FILE, VAL_FILE, OPT_FILE = "generator.pt", "discriminator.pt", "variables.json", "optimizers.pt"
WEIGHTS_SUFFIX = ".pt"


def parse_args(argv=None, question=QUESTION, description="GAN with multilayer perceptrons (PyTorch)."):
    """The command line (dcgan_pytorch.py shares it, with its own question name)."""
    parser = cli.build_parser(question, FRAMEWORK, description,
                              dataset="imori", iters=5000, batch_size=64, lr=2e-4,
                              sample_every=500, checkpoint_every=1000, extra=gan.add_flags)
    return cli.parse_args(parser, argv)


def pick_device(choice):
    return torch.device("cuda" if cli.resolve_device(choice, torch.cuda.is_available()) == "gpu" else "cpu")


# ---- Data ----
def load_data(args, split, value_range=VALUE_RANGE):
    """Images as float32 NHWC in ``value_range`` (common loader, same in every framework)."""
    return gan.load_images(args, split, value_range)


def flatten(images):
    """NHWC -> (N, H*W*C).  The MLPs see the pixel vector in the common
    NHWC order, so their weights match the Keras/TF/Chainer versions 1:1."""
    return np.ascontiguousarray(images.reshape(len(images), -1))


def unflatten(vectors, image_shape):
    """(N, H*W*C) -> NHWC."""
    return vectors.reshape((len(vectors), *image_shape))


# ---- Model ----
def init_weights(network, rng):
    """Glorot-uniform weights, U(-a, a) with a = sqrt(6 / (fan_in + fan_out)),
    and zero biases: the same explicit rule in all four versions (the
    defaults all differ).  ``rng`` is a torch.Generator, so building a
    model leaves torch's global RNG alone."""
    for module in network.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight, generator=rng)
            nn.init.zeros_(module.bias)


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
    2. D step: D(real_images) and D(fake_images) in two separate batches,
       the loss averaged over both; no gradient reaches G;
    3. G step: the updated D judges the same fake_images, labelled real;
       D is frozen (requires_grad off), only G is updated.
    Returns d_loss, g_loss, d_accuracy, d_real, d_fake (common.gan.FIELDS),
    measured in the D step except g_loss."""

    def train_step(real_images, z, ls_epsilon):
        generator.train()
        discriminator.train()
        fake_images = generator(z)

        d_optimizer.zero_grad(set_to_none=True)
        real_logits = discriminator(real_images)
        fake_logits = discriminator(fake_images.detach())
        d_loss = discriminator_loss(real_logits, fake_logits, ls_epsilon)
        d_loss.backward()
        d_optimizer.step()

        discriminator.requires_grad_(False)
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


# ---- Class API ----
class GAN:
    """The GAN in the DCGAN's class API (reference document
    dcgan_keras_class_api.md), on NumPy NHWC arrays.

    GAN(name, z_dim=100, img_shape=(28, 28, 1)) builds the networks and
    their optimizers.  Images given to it are pixels in [0, 1] or [0, 255]
    (NHWC); images it returns are pixels in [0, 1].  Noise is
    z ~ U(-1, 1) (DESIGN.md; the original drew N(0, 1)).  Keyword-only
    extras: ``seed`` (weights, z_fixed_for_sample and every z it draws),
    ``lr`` and ``device`` ('auto', 'cpu', 'gpu').

    Public attributes for scripts and tests: ``generator``,
    ``discriminator``, ``g_optimizer``, ``d_optimizer``, ``z_sampler``.

    The DCGAN of dcgan_pytorch.py is this class with other networks: it
    overrides QUESTION, model_info, _make_networks and the two layout
    conversions _to_network and _from_network, nothing else."""

    QUESTION = QUESTION

    def __init__(self, name, z_dim=gan.Z_DIM, img_shape=(28, 28, 1), *, seed=0, lr=2e-4, device="auto"):
        self._name = str(name)
        self._seed = int(seed)
        self._lr = float(lr)
        self.device = pick_device(device)
        self._iterations = 0
        self._build(int(z_dim), tuple(int(v) for v in img_shape))

    # -- what a subclass changes ------------------------------------------
    @staticmethod
    def model_info(image_shape, z_dim):
        return model_info(image_shape, z_dim)

    def _make_networks(self, z_dim, img_shape):
        """The initialised generator and discriminator, on the device.  The
        weights come from a torch.Generator seeded with ``seed``, so
        building a model leaves torch's global RNG alone."""
        rng = torch.Generator().manual_seed(self._seed)
        generator, discriminator = Generator(z_dim, img_shape), Discriminator(img_shape)
        init_weights(generator, rng)
        init_weights(discriminator, rng)
        return generator.to(self.device), discriminator.to(self.device)

    def _to_network(self, images):
        """NHWC NumPy images -> the discriminator's input on the device."""
        return torch.from_numpy(flatten(np.asarray(images, np.float32))).to(self.device)

    def _from_network(self, outputs):
        """The generator's output -> NHWC NumPy images."""
        return unflatten(outputs.cpu().numpy(), self._img_shape)

    # -- building ----------------------------------------------------------
    def _build(self, z_dim, img_shape):
        if len(img_shape) != 3 or min(img_shape) < 1:
            raise UsageError(f"img_shape must be (H, W, C), got {img_shape}")
        self._z_dim, self._img_shape = z_dim, img_shape
        self.generator, self.discriminator = self._make_networks(z_dim, img_shape)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=self._lr, betas=ADAM_BETAS, eps=ADAM_EPS)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self._lr, betas=ADAM_BETAS,
                                            eps=ADAM_EPS)
        self._train_step = make_train_step(self.generator, self.discriminator, self.g_optimizer, self.d_optimizer)
        self.z_sampler = gan.ZSampler(z_dim, self._seed)
        self._batch_rng = gan.rng(self._seed, gan.BATCHES)
        self._z_fixed = gan.uniform_z(gan.SAMPLE_COUNT, z_dim, self._seed, gan.SAMPLES)

    # -- properties ------------------------------------------------------
    @property
    def img_shape(self):
        return self._img_shape

    @property
    def z_dim(self):
        return self._z_dim

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, value):
        self._name = str(value)

    @property
    def z_fixed_for_sample(self):
        """The fixed z of the training sample pictures (a copy)."""
        return self._z_fixed.copy()

    # -- noise -----------------------------------------------------------
    def generate_z(self, len_z):
        """(len_z, z_dim) float32 z ~ U(-1, 1), from the instance's generator."""
        return self.z_sampler(len_z)

    # -- training --------------------------------------------------------
    def train_step(self, real_images, z, ls_epsilon=0.0):
        """One iteration (one D update, one G update) on ``real_images``
        (NHWC, already in [-1, 1]) and ``z``; returns the metrics dict."""
        real_images = self._to_network(real_images)
        z = torch.from_numpy(np.asarray(z, np.float32)).to(self.device)
        values = self._train_step(real_images, z, float(ls_epsilon))
        self._iterations += 1
        return values

    def train(self, imgs_train, epochs, batch_size=128, ls_epsilon=0, sample_img_interval=0,
              sample_dir="samples"):
        """Train for ``epochs`` epochs of ``imgs_train`` (N, *img_shape),
        pixels in [0, 1] or [0, 255], and return the result dictionary
        (per-epoch d_loss, d_accuracy, g_loss, mean D(real), mean D(fake),
        seconds, and the total time; keys in common.gan.RESULT_KEYS).

        After each epoch D and G are measured in inference mode on fixed
        data: the first EVAL_COUNT training images and as many fixed z.
        With ``sample_img_interval`` > 0, 32 images from z_fixed_for_sample
        are written to ``sample_dir`` after the first epoch, every
        ``sample_img_interval`` epochs and after the last one."""
        images = gan.to_model_range(imgs_train, self._img_shape, "imgs_train")
        ls_epsilon = gan.check_label_smoothing(ls_epsilon)
        epochs, batch_size = gan.check_positive_int(epochs, "epochs"), gan.check_positive_int(batch_size, "batch_size")
        batches = batching.Minibatches(len(images), batch_size, self._batch_rng)
        eval_real = images[:gan.EVAL_COUNT]
        eval_z = gan.uniform_z(len(eval_real), self._z_dim, self._seed, gan.EVALUATE)
        history = gan.History(self._name, epochs, batch_size, ls_epsilon)
        for epoch in range(epochs):
            start = time.perf_counter()
            for _ in range(gan.epoch_iterations(len(images), batch_size)):
                self.train_step(images[next(batches)], self.generate_z(batch_size), ls_epsilon)
            measures = gan.d_measures(self.discriminator_logits(eval_real),
                                      self.discriminator_logits(self.generator_output(eval_z)))
            history.add(epoch, self._iterations, measures, time.perf_counter() - start, len(eval_real), len(eval_z))
            if sample_img_interval > 0 and (epoch % sample_img_interval == 0 or epoch == epochs - 1):
                path = Path(sample_dir) / f"{self._name}_epoch_{epoch:04d}.png"
                pictures.save_grid(self.generate(self._z_fixed[:gan.CLASS_SAMPLE_COUNT]), path, nrow=8,
                                   value_range=gan.PIXEL_RANGE, scale=max(1, 56 // self._img_shape[0]),
                                   title=f"{self._name}, epoch {epoch}")
                print(f" samples: {path}")
        return history.result()

    # -- inference -------------------------------------------------------
    @torch.no_grad()
    def generator_output(self, z, batch_size=256):
        """z -> G(z) in [-1, 1] (the network's own range), NHWC NumPy, in
        inference mode.  generate() is this mapped to pixels in [0, 1]."""
        self.generator.eval()
        z = gan.check_z(z, self._z_dim)
        out = [self._from_network(self.generator(torch.from_numpy(z[i:i + batch_size]).to(self.device)))
               for i in range(0, len(z), batch_size)]
        return np.concatenate(out)

    @torch.no_grad()
    def discriminator_logits(self, images, batch_size=256):
        """NHWC images in [-1, 1] -> D's logits (N, 1), in inference mode.
        discriminate() is the sigmoid of this for pixels in [0, 1] or [0, 255]."""
        self.discriminator.eval()
        out = [self.discriminator(self._to_network(images[i:i + batch_size])).cpu().numpy()
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out)

    def generate(self, z):
        """(N, z_dim) -> (N, *img_shape) images, pixels in [0, 1]."""
        return gan.to_pixels(self.generator_output(z))

    def discriminate(self, imgs):
        """(N, *img_shape) pixels in [0, 1] or [0, 255] -> (N, 1), the
        probability D gives each image of being real."""
        logits = self.discriminator_logits(gan.to_model_range(imgs, self._img_shape))
        return gan.sigmoid(logits).astype(np.float32)

    def evaluate(self, imgs, labels):
        """``(d_loss, d_accuracy, g_loss)``: D's binary cross-entropy and
        accuracy on ``imgs`` with ``labels`` (1 real, 0 fake), and G's loss
        on as many images generated from new z (generate_z)."""
        images = gan.to_model_range(imgs, self._img_shape)
        labels = gan.check_labels(labels, len(images))
        fake_logits = self.discriminator_logits(self.generator_output(self.generate_z(len(images))))
        return gan.evaluate_logits(self.discriminator_logits(images), labels, fake_logits)

    # -- files -----------------------------------------------------------
    def save_me(self, files_dir, g_file_name="", d_file_name="", val_file_name=""):
        """Write G's and D's weights (PyTorch state dicts, BatchNorm running
        statistics included) and the variables file (JSON: name, z_dim,
        img_shape, z_fixed_for_sample) into ``files_dir``.  Empty names
        default to <name>_g.pt, <name>_d.pt, <name>_val.json.  Returns the
        three paths."""
        files_dir = Path(files_dir)
        files_dir.mkdir(parents=True, exist_ok=True)
        g_name, d_name, val_name = gan.file_names(self._name, g_file_name, d_file_name, val_file_name, WEIGHTS_SUFFIX)
        torch.save(self.generator.state_dict(), files_dir / g_name)
        torch.save(self.discriminator.state_dict(), files_dir / d_name)
        gan.write_variables(files_dir / val_name, gan.variables(self.QUESTION, FRAMEWORK, self._name, self._z_dim,
                                                                self._img_shape, self._z_fixed))
        return files_dir / g_name, files_dir / d_name, files_dir / val_name

    def change_me(self, files_dir, g_file_name, d_file_name, val_file_name):
        """Become the model saved by save_me in ``files_dir``: its name,
        z_dim, img_shape, z_fixed_for_sample and weights.  The optimizers
        and the noise generator start afresh (a checkpoint restores them
        separately, see load_checkpoint)."""
        files_dir = Path(files_dir)
        g_name, d_name, val_name = gan.file_names(self._name, g_file_name, d_file_name, val_file_name, WEIGHTS_SUFFIX)
        name, z_dim, img_shape, z_fixed = gan.read_variables(files_dir / val_name, self.QUESTION, FRAMEWORK)
        states = []
        for path in (files_dir / g_name, files_dir / d_name):
            try:
                states.append(torch.load(path, map_location="cpu", weights_only=True))
            except FileNotFoundError:
                raise UsageError(f"weights file {path} does not exist") from None
            except Exception as err:   # torch raises several types for a file that is not its own
                raise UsageError(f"{path} is not a PyTorch weights file ({type(err).__name__})") from None
        self._build(z_dim, img_shape)
        try:
            self.generator.load_state_dict(states[0])
            self.discriminator.load_state_dict(states[1])
        except RuntimeError as err:
            raise UsageError(f"the weights in {files_dir} do not fit a {self.QUESTION} of img_shape {img_shape}, "
                             f"z_dim {z_dim}: {str(err).splitlines()[0]}") from None
        self._name, self._z_fixed = name, z_fixed


# ---- Train ----
def save_checkpoint(run, iteration, model, feed, image_shape, args):
    def write_files(folder):
        model.save_me(folder, G_FILE, D_FILE, VAL_FILE)
        torch.save({"g_optimizer": model.g_optimizer.state_dict(), "d_optimizer": model.d_optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state()}, folder / OPT_FILE)
    run.save_checkpoint(iteration, write_files, {
        "model": model.model_info(image_shape, model.z_dim), "feed": feed.state_dict(),
        "z_sampler": model.z_sampler.state_dict(), "dataset": args.dataset,
        "label_smoothing": args.label_smoothing})


def load_checkpoint(folder, meta, model, feed):
    """Continue a run: weights, optimizers, RNG states and data order."""
    model.change_me(folder, G_FILE, D_FILE, VAL_FILE)
    with runs.reading(folder / OPT_FILE):   # weights_only: no pickled code; a broken file: one line
        state = torch.load(folder / OPT_FILE, map_location="cpu", weights_only=True)
        model.g_optimizer.load_state_dict(state["g_optimizer"])
        model.d_optimizer.load_state_dict(state["d_optimizer"])
        torch.set_rng_state(state["torch_rng"])
    model.z_sampler.load_state_dict(meta["z_sampler"])
    feed.load_state_dict(meta["feed"])


def train(args, model_class=None):
    """Train ``model_class`` (GAN here; dcgan_pytorch.py passes its DCGAN)."""
    model_class = model_class or GAN
    run = runs.Run(model_class.QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    info = model_class.model_info(image_shape, args.z_dim)
    cli.seed_everything(args.seed)
    torch.manual_seed(args.seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed,
                         augment.for_dataset(args.dataset, VALUE_RANGE))
    model = model_class(f"{model_class.QUESTION}_{args.dataset}", args.z_dim, image_shape, seed=args.seed,
                        lr=args.lr, device=args.device)
    start = 0
    if args.resume:
        folder, meta = run.load_checkpoint_meta(args.resume, info)
        load_checkpoint(folder, meta, model, feed)
        start = meta["iteration"]
        if start >= args.iters:
            print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
            return
    run.prepare_training(args, resume=bool(args.resume))

    def step(iteration):
        return model.train_step(feed.next(), model.generate_z(args.batch_size), args.label_smoothing)

    def on_sample(iteration):
        gan.save_samples(run, iteration, model.generate(model.z_fixed_for_sample))

    def on_checkpoint(iteration):
        save_checkpoint(run, iteration, model, feed, image_shape, args)
        gan.plot_training(run)

    runs.train_loop(run, start=start, iters=args.iters, step=step, fields=gan.FIELDS,
                    on_sample=on_sample, on_checkpoint=on_checkpoint,
                    sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
                    log_every=args.log_every, resume_at=start if args.resume else None)


# ---- Test ----
def test(args, model_class=None):
    """Test the last (or --checkpoint) checkpoint of ``model_class``."""
    model_class = model_class or GAN
    run = runs.Run(model_class.QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "test", gan.PIXEL_RANGE)   # pixels in [0, 1], as the class API takes them
    image_shape = data.images.shape[1:]
    folder, _ = run.load_checkpoint_meta(args.checkpoint, model_class.model_info(image_shape, args.z_dim))
    model = model_class(model_class.QUESTION, args.z_dim, image_shape, seed=args.seed, device=args.device)
    model.change_me(folder, G_FILE, D_FILE, VAL_FILE)
    z = gan.test_latents(args.z_dim, args.seed)
    samples = model.generate(z["samples"])
    frames, paths = z["morph"].shape[:2]
    morph = model.generate(z["morph"].reshape(frames * paths, -1)).reshape(frames, paths, *image_shape)
    return gan.report_test(run, samples, model.generate(z["linear"]), model.generate(z["spherical"]), morph,
                           model.discriminate(data.images), model.discriminate(samples))


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
