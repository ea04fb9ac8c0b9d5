"""Deep Convolutional GAN (DCGAN) -- Keras 3

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
framework-neutral half is common.class_api.ClassAPI, the Keras half is here.
Framework: Keras 3 on the TensorFlow backend (NHWC, like the class API and common/).
Paper: Radford, Metz & Chintala, "Unsupervised Representation Learning with
Deep Convolutional Generative Adversarial Networks", ICLR 2016
(arXiv:1511.06434); the non-saturating loss: Goodfellow et al., "Generative
Adversarial Nets", NeurIPS 2014 (arXiv:1406.2661), section 3.
How to run:
    python scripts_keras/dcgan_keras.py             # train, then test
    python scripts_keras/dcgan_keras.py --test      # test the last checkpoint
    python scripts_keras/dcgan_keras.py --dataset fashion_mnist --label-smoothing 0.1
    python scripts_keras/dcgan_keras.py --dataset mnist --data-dir ../shared/datasets/mnist10k   # offline
As a class:
    from dcgan_keras import DCGAN
    model = DCGAN("fmnist", z_dim=100, img_shape=(28, 28, 1))
    result = model.train(images, epochs=40, batch_size=128, ls_epsilon=0.1)   # pixels in [0, 1] or [0, 255]
    images = model.generate(model.generate_z(20))                             # pixels in [0, 1]
    model.save_me("models/")        # models/fmnist_g.weights.h5, fmnist_d.weights.h5, fmnist_val.json
"""
# ---- Setup ----
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import h5py  # noqa: E402  (Keras' weights files are HDF5: change_me checks them before loading)
import numpy as np  # noqa: E402

from common import augment, batching, class_api, cli, compat, gan, runs  # noqa: E402
from common.errors import UsageError  # noqa: E402

keras = compat.import_keras()  # Keras 3, TensorFlow backend, quiet TF start-up
import tensorflow as tf  # noqa: E402  (the backend: tf.function and GradientTape for the train step, GPU query)
from keras import layers  # noqa: E402

QUESTION = "dcgan"
FRAMEWORK = "keras"


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


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
# symmetric padding of 2 has the same output shape but other numbers:
# the PyTorch and Chainer versions pad explicitly.  (The transposed
# convolution with padding="same" makes 2H x 2W.)
LEAKY_SLOPE = 0.2               # LeakyReLU slope, set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
                                # (the running variance takes the unbiased batch variance, except in
                                # Keras 3, which takes the biased one: a factor n/(n-1), no switch)
ADAM_BETAS = (0.5, 0.999)       # beta1 0.5 for G and D
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
                                # (Keras adds it before the bias correction, PyTorch after)
JIT_COMPILE = False             # XLA off: on CPU it made this convolutional step much slower (README)
# File names of a checkpoint (save_me's three files + the optimizers)
G_FILE, D_FILE, VAL_FILE, OPT_FILE = ("generator.weights.h5", "discriminator.weights.h5", "variables.json",
                                      "optimizers.npz")


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "DCGAN (Keras 3).", dataset="imori", iters=5000, batch_size=64,
                              lr=2e-4, sample_every=500, checkpoint_every=1000, extra=gan.add_flags)
    return cli.parse_args(parser, argv)


# ---- Data ----
def load_data(args, split, value_range=gan.VALUE_RANGE):
    """Images as float32 NHWC in ``value_range`` (common loader, same in every framework)."""
    return gan.load_images(args, split, value_range)


# Keras is NHWC like `common`: the images go in as they are (the PyTorch
# and Chainer versions transpose them to NCHW and back here).


# ---- Model ----
def init_weights(rng):
    """N(0, 0.02) weights drawn from ``rng`` (a keras.random.SeedGenerator,
    so building a model leaves Keras' global seed alone) and zero biases:
    the same explicit rule in all four versions (the defaults all differ)."""
    return {"kernel_initializer": keras.initializers.RandomNormal(0.0, INIT_STD, seed=rng),
            "bias_initializer": "zeros"}


def batch_norm():
    """BatchNorm over the last (channel) axis, gamma 1, beta 0, eps 1e-5, decay 0.9."""
    return layers.BatchNormalization(momentum=BN_DECAY, epsilon=BN_EPS,
                                      gamma_initializer="ones", beta_initializer="zeros")


# Generator and Discriminator are functions named like the PyTorch classes;
# each returns a Keras model.
def Generator(z_dim, image_shape, rng):
    """z (N, z_dim) -> images (N, H, W, C) in [-1, 1]."""
    height, width, channels = image_shape
    k, (h0, w0) = gan.dcgan_stages(image_shape)
    network = [
        keras.Input(shape=(z_dim,)),                                           # (N, z_dim)
        layers.Dense(h0 * w0 * DENSE_CHANNELS, **init_weights(rng)),                 # (N, h0*w0*256)
        batch_norm(),
        layers.ReLU(),
        layers.Reshape((h0, w0, DENSE_CHANNELS)),                               # (N, h0, w0, 256)
    ]
    g_widths, _ = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    for features in g_widths:                                               # 512, 256, 128 for k = 4; 128 for 28x28
        network += [layers.Conv2DTranspose(features, KERNEL, STRIDE, padding="same",
                                           **init_weights(rng)),                     # (N, 2h, 2w, features)
                    batch_norm(),
                    layers.ReLU()]
    network += [layers.Conv2DTranspose(channels, KERNEL, STRIDE, padding="same", **init_weights(rng)),  # (N, H, W, C)
                layers.Activation("tanh")]
    return keras.Sequential(network, name="generator")


def Discriminator(image_shape, rng):
    """images (N, H, W, C) -> logits (N, 1); D(x) = sigmoid(logits) is the
    probability that x is real.  The sigmoid is applied by `discriminate`
    and inside the loss (binary cross-entropy on logits, which never takes
    log(0))."""
    k, _ = gan.dcgan_stages(image_shape)
    network = [keras.Input(shape=tuple(image_shape))]                           # (N, H, W, C)
    _, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    for features in d_widths:                                               # 32, 64, 128, 256 for k = 4
        network += [layers.Conv2D(features, KERNEL, STRIDE, padding="same",
                                  **init_weights(rng)),                              # (N, h/2, w/2, features)
                    layers.LeakyReLU(negative_slope=LEAKY_SLOPE)]
    network += [layers.Flatten(),                                               # (N, H/16*W/16*256), NHWC order
                layers.Dense(1, **init_weights(rng))]                                # (N, 1) logits
    return keras.Sequential(network, name="discriminator")


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
    # keras.ops.binary_crossentropy is per element (no reduction); from_logits
    # is tf.nn.sigmoid_cross_entropy_with_logits, max(l, 0) - t * l + log(1 + exp(-|l|))
    real_loss = keras.ops.mean(keras.ops.binary_crossentropy(
        keras.ops.full_like(real_logits, 1.0 - ls_epsilon), real_logits, from_logits=True))
    fake_loss = keras.ops.mean(keras.ops.binary_crossentropy(
        keras.ops.full_like(fake_logits, ls_epsilon), fake_logits, from_logits=True))
    return 0.5 * (real_loss + fake_loss)


def generator_loss(fake_logits):
    """The non-saturating generator loss -mean(log D(G(z))): the fake
    images labelled real (1, never smoothed).  Its gradient is strong
    exactly when D rejects the fakes, early in training, unlike the
    minimax loss mean(log(1 - D(G(z))))."""
    return keras.ops.mean(keras.ops.binary_crossentropy(keras.ops.ones_like(fake_logits), fake_logits,
                                                        from_logits=True))


def discriminator_accuracy(real_logits, fake_logits):
    """Fraction of both batches on the right side of D(x) = 0.5 (logit 0)."""
    right = keras.ops.concatenate([real_logits > 0, fake_logits <= 0])
    return keras.ops.mean(keras.ops.cast(right, "float32"))


# ---- Train step ----
# Why not the Keras-2 recipe of the reference documents (compile D, set
# D.trainable = False, compile combined = D(G(z)), never touch trainable
# again)?  Keras 2 read `trainable` at compile(), so each model kept its own
# snapshot.  Keras 3 reads it when a model's train function is first traced,
# at its first train_on_batch after compile(), and then reuses that trace:
# with the recipe, D's first train_on_batch runs while D.trainable is False
# and D trains nothing ("The model does not have any trainable weights"),
# and once both traces exist, toggling the flag changes nothing (only a new
# compile() makes Keras read it again).
# tests/test_keras_trainable.py shows every step.  So this step compiles no
# model and uses no `trainable` flag: it takes the gradients with
# tf.GradientTape and applies them to D's or G's trainable_variables.
def make_train_step(generator, discriminator, g_optimizer, d_optimizer, jit_compile=JIT_COMPILE):
    """One iteration: one D update, then one G update, on one z batch.

    1. fake_images = G(z), once, on the outer tape (G's BatchNorm uses and
       tracks the fake batch's statistics, once per iteration);
    2. D step, with the outer tape paused: D(real_images) and D(fake_images)
       in two separate batches (BatchNorm never mixes their statistics),
       the loss averaged over both; no gradient
       reaches G (stop_gradient, and only D's variables are updated);
    3. G step: the updated D judges the same fake_images, labelled real;
       the outer tape differentiates through D to G's variables, and only
       G's are updated (D stays as it is).
    Returns d_loss, g_loss, d_accuracy, d_real, d_fake (common.gan.FIELDS),
    measured in the D step except g_loss."""
    g_optimizer.build(generator.trainable_variables)       # Adam's m and v, made here rather than in the graph
    d_optimizer.build(discriminator.trainable_variables)

    # One TensorFlow graph, traced once on the first call (every minibatch
    # has the same shape and dtype, ls_epsilon is a tensor: never traced again).
    @tf.function(jit_compile=jit_compile)
    def graph_step(real_images, z, ls_epsilon):
        with tf.GradientTape() as g_tape:
            fake_images = generator(z, training=True)
            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    real_logits = discriminator(real_images, training=True)
                    fake_logits = discriminator(keras.ops.stop_gradient(fake_images), training=True)
                    d_loss = discriminator_loss(real_logits, fake_logits, ls_epsilon)
                d_gradients = d_tape.gradient(d_loss, discriminator.trainable_variables)
                d_optimizer.apply_gradients(zip(d_gradients, discriminator.trainable_variables))
            # the graph runs this after D's update (tf.function orders the variable reads and writes)
            g_loss = generator_loss(discriminator(fake_images, training=True))
        g_gradients = g_tape.gradient(g_loss, generator.trainable_variables)
        g_optimizer.apply_gradients(zip(g_gradients, generator.trainable_variables))
        return keras.ops.stack([d_loss, g_loss, discriminator_accuracy(real_logits, fake_logits),
                                keras.ops.mean(keras.ops.sigmoid(real_logits)),
                                keras.ops.mean(keras.ops.sigmoid(fake_logits))])

    def train_step(real_images, z, ls_epsilon):
        values = graph_step(real_images, z, tf.constant(ls_epsilon, tf.float32))
        return dict(zip(gan.FIELDS, values.numpy().tolist()))   # one device -> host copy

    train_step.graph_step = graph_step   # for the tests: graph_step.experimental_get_tracing_count()
    return train_step


class DCGAN(class_api.ClassAPI):
    """The DCGAN of the reference document's class API (the calls: common.class_api.ClassAPI),
    its Keras half: build, step, forward, save and load weights.  Extras:
    ``seed``, ``lr``, ``device`` ('auto', 'cpu', 'gpu').  Attributes: ``generator``,
    ``discriminator``, ``g_optimizer``, ``d_optimizer``, ``z_sampler``."""

    QUESTION, FRAMEWORK, WEIGHTS_SUFFIX = QUESTION, FRAMEWORK, ".weights.h5"   # Keras 3 accepts no other ending
    model_info = staticmethod(model_info)

    def __init__(self, name, z_dim=gan.Z_DIM, img_shape=(28, 28, 1), *, seed=0, lr=2e-4, device="auto"):
        self.device = pick_device(device) if device in ("auto", "cpu", "gpu") else device   # or picked
        super().__init__(name, z_dim, img_shape, seed=seed, lr=lr)

    def _build_networks(self, z_dim, img_shape):
        with keras.device(self.device):   # every variable of the model goes there
            rng = keras.random.SeedGenerator(self._seed)
            self.generator = Generator(z_dim, img_shape, rng)
            self.discriminator = Discriminator(img_shape, rng)
            self.g_optimizer = keras.optimizers.Adam(learning_rate=self._lr, beta_1=ADAM_BETAS[0],
                                                     beta_2=ADAM_BETAS[1], epsilon=ADAM_EPS)
            self.d_optimizer = keras.optimizers.Adam(learning_rate=self._lr, beta_1=ADAM_BETAS[0],
                                                     beta_2=ADAM_BETAS[1], epsilon=ADAM_EPS)
            self._train_step = make_train_step(self.generator, self.discriminator, self.g_optimizer,
                                               self.d_optimizer, JIT_COMPILE)

    def _step(self, real_images, z, ls_epsilon):
        with keras.device(self.device):
            return self._train_step(real_images, z, ls_epsilon)

    # plain eager calls with training=False (a handful per run, not worth tracing a graph for)
    def _generate_batch(self, z):
        with keras.device(self.device):
            return keras.ops.convert_to_numpy(self.generator(z, training=False))

    def _discriminate_batch(self, images):
        with keras.device(self.device):
            return keras.ops.convert_to_numpy(self.discriminator(images, training=False))

    def _save_weights(self, g_path, d_path):
        self.generator.save_weights(g_path)      # BatchNorm moving statistics included
        self.discriminator.save_weights(d_path)

    def _read_weights(self, path):
        if not h5py.is_hdf5(path):
            raise UsageError(f"{path} is not a Keras weights file (not HDF5)")
        return path                              # Keras loads from the file itself

    def _load_weights(self, g_path, d_path):
        for network, path in ((self.generator, g_path), (self.discriminator, d_path)):
            try:
                network.load_weights(path)
            except (OSError, ValueError) as err:   # a variable of another shape, a missing layer
                raise ValueError(" ".join(re.split(r"Target variable:|List of objects", str(err))[0].split())) from None


# ---- Train ----
def save_checkpoint(run, iteration, model, feed, args):
    def write_files(folder):
        model.save_me(folder, G_FILE, D_FILE, VAL_FILE)
        optimizer_state = {}
        for prefix, optimizer in (("g", model.g_optimizer), ("d", model.d_optimizer)):
            store = {}
            optimizer.save_own_variables(store)   # step count, learning rate, Adam's m and v
            optimizer_state.update({f"{prefix}_{key}": value for key, value in store.items()})
        np.savez(folder / OPT_FILE, **optimizer_state)
        # (nothing random runs in Keras: z and the batches are NumPy's, their states in meta)
    run.save_checkpoint(iteration, write_files, {
        "model": model.model_info(model.img_shape, model.z_dim), "feed": feed.state_dict(),
        "z_sampler": model.z_sampler.state_dict(), "dataset": args.dataset,
        "label_smoothing": args.label_smoothing})


def load_checkpoint(folder, model):
    """Weights and optimizers (the data order and the noise are in meta.json)."""
    model.change_me(folder, G_FILE, D_FILE, VAL_FILE)
    optimizer_state = runs.load_npz(folder / OPT_FILE)   # never unpickles; the optimizers were built by change_me
    with runs.reading(folder / OPT_FILE):
        for prefix, optimizer in (("g", model.g_optimizer), ("d", model.d_optimizer)):
            optimizer.load_own_variables({key[len(prefix) + 1:]: value
                                          for key, value in optimizer_state.items() if key.startswith(prefix + "_")})


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    cli.seed_everything(args.seed)
    keras.utils.set_random_seed(args.seed)   # Keras' global seed (the weights draw from the model's own)
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
            real_images = feed.next()                      # NHWC in [-1, 1], Keras' own layout
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
