"""Conditional GAN (CGAN) -- Keras 3

Question: generate 28x28x1 MNIST digits (pixels in [-1, 1]) of a chosen
class: the DCGAN of dcgan_keras.py, told the class.  Generator: z ~ U(-1, 1)
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
Framework: Keras 3 on the TensorFlow backend (NHWC, like common/).
Paper: Mirza & Osindero, "Conditional Generative Adversarial Nets", 2014
(arXiv:1411.1784); the networks: Radford, Metz & Chintala, DCGAN, ICLR 2016
(arXiv:1511.06434).
How to run:
    python scripts_keras/cgan_keras.py                  # MNIST, train then test
    python scripts_keras/cgan_keras.py --test --classes 3 7
    python scripts_keras/cgan_keras.py --dataset fashion_mnist
    python scripts_keras/cgan_keras.py --dataset imori --iters 5000   # akahara / madara
    python scripts_keras/cgan_keras.py --data-dir ../shared/datasets/mnist10k   # offline
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, cgan, cli, compat, gan, runs  # noqa: E402

keras = compat.import_keras()  # Keras 3, TensorFlow backend, quiet TF start-up
import tensorflow as tf  # noqa: E402  (the backend: tf.function and GradientTape for the train step, GPU query)
from keras import layers  # noqa: E402

QUESTION = "cgan"
FRAMEWORK = "keras"


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).  The networks are the DCGAN's (dcgan_keras.py).
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/2^k, W/2^k, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (the last k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # D's convolutions (the first k used)
KERNEL, STRIDE = 5, 2
# Keras' padding="same" for a 5x5 stride-2 convolution of an even size pads
# 1 row/column before and 2 after, the convention of this question (the
# PyTorch and Chainer versions pad explicitly); the transposed convolution
# with padding="same" makes 2H x 2W, as TF's conv2d_transpose.
LEAKY_SLOPE = 0.2               # LeakyReLU slope, set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
                                # (the running variance takes the unbiased batch variance, except in
                                # Keras 3, which takes the biased one: a factor n/(n-1), no switch)
ADAM_BETAS = (0.5, 0.999)       # beta1 0.5 for G and D
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
                                # (Keras adds it before the bias correction, PyTorch after)
JIT_COMPILE = False             # XLA off, as in dcgan_keras.py (README)
TEST_BATCH = 100                # images per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE = "generator.weights.h5", "discriminator.weights.h5", "optimizers.npz"   # a checkpoint


def parse_args(argv=None):
    # --iters: None here, 20000 or 30000 (cifar10) by data set (cgan.default_iters; --help says so)
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Conditional GAN (Keras 3).", dataset="mnist", iters=None,
                              batch_size=64, lr=2e-4, sample_every=500, checkpoint_every=1000, extra=cgan.add_flags)
    return cgan.default_iters(cli.parse_args(parser, argv))


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC in [-1, 1] and their labels (common loader,
    same in every framework); at least two classes."""
    data = gan.load_images(args, split, cgan.VALUE_RANGE)
    cgan.check_data(data, split)
    return data


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
    """BatchNorm over the last axis (the channels, or the Dense units), gamma 1, beta 0, eps 1e-5, decay 0.9."""
    return layers.BatchNormalization(momentum=BN_DECAY, epsilon=BN_EPS,
                                      gamma_initializer="ones", beta_initializer="zeros")


# Generator and Discriminator are functions named like the PyTorch classes;
# each returns a Keras functional model of two inputs, called as
# generator([z, y]) and discriminator([images, y]).
def Generator(z_dim, n_classes, image_shape, rng):
    """z (N, z_dim) and the condition y (N, n_classes), one-hot ->
    images (N, H, W, C) in [-1, 1]."""
    height, width, channels = image_shape
    k, (h0, w0) = gan.dcgan_stages(image_shape)
    z, y = keras.Input(shape=(z_dim,), name="z"), keras.Input(shape=(n_classes,), name="y")
    x = keras.ops.concatenate([z, y], axis=1)                                 # (N, z_dim + n_classes)
    x = layers.Dense(h0 * w0 * DENSE_CHANNELS, **init_weights(rng))(x)       # (N, h0*w0*256)
    x = layers.ReLU()(batch_norm()(x))
    x = layers.Reshape((h0, w0, DENSE_CHANNELS))(x)                           # (N, h0, w0, 256)
    g_widths, _ = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    for features in g_widths:                                               # 512, 256, 128 for k = 4; 128 for 28x28
        x = layers.Conv2DTranspose(features, KERNEL, STRIDE, padding="same", **init_weights(rng))(x)   # (N, 2h, 2w, f)
        x = layers.ReLU()(batch_norm()(x))
    x = layers.Conv2DTranspose(channels, KERNEL, STRIDE, padding="same", **init_weights(rng))(x)      # (N, H, W, C)
    return keras.Model([z, y], layers.Activation("tanh")(x), name="generator")


def Discriminator(n_classes, image_shape, rng):
    """images (N, H, W, C) and the condition y (N, n_classes) -> logits
    (N, 1); D(x, y) = sigmoid(logits) is the probability that x is a real
    image of class y.  The sigmoid is applied inside the loss (binary
    cross-entropy on logits, which never takes log(0))."""
    height, width, channels = image_shape
    k, _ = gan.dcgan_stages(image_shape)
    images, y = keras.Input(shape=(height, width, channels), name="images"), keras.Input(shape=(n_classes,), name="y")
    planes = keras.ops.tile(keras.ops.reshape(y, (-1, 1, 1, n_classes)), (1, height, width, 1))   # y[i, c] everywhere
    x = keras.ops.concatenate([images, planes], axis=-1)                      # (N, H, W, C + n_classes)
    _, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    for features in d_widths:                                               # 32, 64, 128, 256 for k = 4
        x = layers.Conv2D(features, KERNEL, STRIDE, padding="same", **init_weights(rng))(x)   # (N, h/2, w/2, features)
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE)(x)
    x = layers.Flatten()(x)                                                   # (N, H/4*W/4*64) for 28x28, NHWC order
    return keras.Model([images, y], layers.Dense(1, **init_weights(rng))(x), name="discriminator")   # (N, 1)


def model_info(image_shape, z_dim, n_classes):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    g_widths, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "n_classes": int(n_classes), "stages": k,
            "start": list(start), "generator": [DENSE_CHANNELS, *g_widths], "discriminator": list(d_widths)}


def build_model(image_shape, z_dim, n_classes, seed, lr, device):
    """G, D (initialised from ``seed``, G first) and their Adam optimizers,
    Adam's m and v made here (so that a checkpoint can fill them)."""
    with keras.device(device):   # every variable of the model goes there
        rng = keras.random.SeedGenerator(seed)
        generator = Generator(z_dim, n_classes, image_shape, rng)
        discriminator = Discriminator(n_classes, image_shape, rng)
        g_optimizer = keras.optimizers.Adam(learning_rate=lr, beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1],
                                            epsilon=ADAM_EPS)
        d_optimizer = keras.optimizers.Adam(learning_rate=lr, beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1],
                                            epsilon=ADAM_EPS)
        g_optimizer.build(generator.trainable_variables)
        d_optimizer.build(discriminator.trainable_variables)
    return generator, discriminator, g_optimizer, d_optimizer


# Inference: plain eager calls with training=False (a handful per run, not
# worth tracing a graph for).
def generate(generator, z, conditions, device):
    """G(z, y) in inference mode (BatchNorm's moving statistics), NumPy in
    and out: (N, z_dim), (N, n_classes) -> images (N, H, W, C) in [-1, 1]."""
    with keras.device(device):
        return np.concatenate([keras.ops.convert_to_numpy(
            generator([z[i:i + TEST_BATCH], conditions[i:i + TEST_BATCH]], training=False))
            for i in range(0, len(z), TEST_BATCH)])


def discriminate(discriminator, images, conditions, device):
    """D's logits (N, 1) of NHWC images with their conditions, NumPy in and out."""
    with keras.device(device):
        return np.concatenate([keras.ops.convert_to_numpy(
            discriminator([images[i:i + TEST_BATCH], conditions[i:i + TEST_BATCH]], training=False))
            for i in range(0, len(images), TEST_BATCH)])


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
    """The non-saturating generator loss -mean(log D(G(z, y), y)): the fake
    images labelled real (1, never smoothed)."""
    return keras.ops.mean(keras.ops.binary_crossentropy(keras.ops.ones_like(fake_logits), fake_logits,
                                                        from_logits=True))


def discriminator_accuracy(real_logits, fake_logits):
    """Fraction of both batches on the right side of D(x) = 0.5 (logit 0)."""
    right = keras.ops.concatenate([real_logits > 0, fake_logits <= 0])
    return keras.ops.mean(keras.ops.cast(right, "float32"))


# ---- Train step ----
# No compiled models and no `trainable` flags (dcgan_keras.py says why: Keras 3
# reads the flag once, when a train function is first traced): the step takes
# the gradients with tf.GradientTape and applies them to D's or G's
# trainable_variables.
def make_train_step(generator, discriminator, g_optimizer, d_optimizer, jit_compile=JIT_COMPILE):
    """One iteration: one D update, then one G update, on one z batch.

    1. fake_images = G(z, fake_labels), once, on the outer tape (G's
       BatchNorm uses and tracks the fake batch's statistics, once);
    2. D step, with the outer tape paused: D(real_images, real_labels) and
       D(fake_images, fake_labels) in two separate batches, the loss
       averaged over both; the real images come with their true labels, the
       fakes with the labels G was asked for, so D learns "real AND of this
       class"; no gradient reaches G (stop_gradient, and only D's variables
       are updated);
    3. G step: the updated D judges the same fake_images with the same
       labels, now labelled real; the outer tape differentiates through D
       to G's variables, and only G's are updated.
    The labels are one-hot rows (N, n_classes).  Returns d_loss, g_loss,
    d_accuracy, d_real, d_fake (common.gan.FIELDS), measured in the D step
    except g_loss."""

    # One TensorFlow graph, traced once on the first call (every minibatch
    # has the same shape and dtype, ls_epsilon is a tensor: never traced again).
    @tf.function(jit_compile=jit_compile)
    def graph_step(real_images, real_labels, z, fake_labels, ls_epsilon):
        with tf.GradientTape() as g_tape:
            fake_images = generator([z, fake_labels], training=True)
            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    real_logits = discriminator([real_images, real_labels], training=True)
                    fake_logits = discriminator([keras.ops.stop_gradient(fake_images), fake_labels], training=True)
                    d_loss = discriminator_loss(real_logits, fake_logits, ls_epsilon)
                d_gradients = d_tape.gradient(d_loss, discriminator.trainable_variables)
                d_optimizer.apply_gradients(zip(d_gradients, discriminator.trainable_variables))
            # the graph runs this after D's update (tf.function orders the variable reads and writes)
            g_loss = generator_loss(discriminator([fake_images, fake_labels], training=True))
        g_gradients = g_tape.gradient(g_loss, generator.trainable_variables)
        g_optimizer.apply_gradients(zip(g_gradients, generator.trainable_variables))
        return keras.ops.stack([d_loss, g_loss, discriminator_accuracy(real_logits, fake_logits),
                                keras.ops.mean(keras.ops.sigmoid(real_logits)),
                                keras.ops.mean(keras.ops.sigmoid(fake_logits))])

    def train_step(real_images, real_labels, z, fake_labels, ls_epsilon):
        values = graph_step(real_images, real_labels, z, fake_labels, tf.constant(ls_epsilon, tf.float32))
        return dict(zip(gan.FIELDS, values.numpy().tolist()))   # one device -> host copy

    train_step.graph_step = graph_step   # for the tests: graph_step.experimental_get_tracing_count()
    return train_step


# ---- Train ----
def save_checkpoint(run, iteration, networks, feed, z_sampler, label_sampler, info, class_names, args):
    generator, discriminator, g_optimizer, d_optimizer = networks

    def write_files(folder):
        generator.save_weights(folder / G_FILE)      # BatchNorm moving statistics included
        discriminator.save_weights(folder / D_FILE)
        optimizer_state = {}
        for prefix, optimizer in (("g", g_optimizer), ("d", d_optimizer)):
            store = {}
            optimizer.save_own_variables(store)   # step count, learning rate, Adam's m and v
            optimizer_state.update({f"{prefix}_{key}": value for key, value in store.items()})
        np.savez(folder / OPT_FILE, **optimizer_state)
        # (nothing random runs in Keras: the batches, z and labels are NumPy's, their states in meta)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "class_names": class_names, "feed": feed.state_dict(),
        "z_sampler": z_sampler.state_dict(), "label_sampler": label_sampler.state_dict(),
        "dataset": args.dataset, "label_smoothing": args.label_smoothing})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state (the
    data order, the noise and the labels are in meta.json).  The optimizer
    file is read without unpickling; a broken file: one line."""
    generator, discriminator, *optimizers = networks
    for network, name in ((generator, G_FILE), (discriminator, D_FILE)):
        with runs.reading(folder / name):
            network.load_weights(folder / name)
    if optimizers:
        optimizer_state = runs.load_npz(folder / OPT_FILE)   # Adam's m and v were built by build_model
        with runs.reading(folder / OPT_FILE):
            for prefix, optimizer in zip(("g", "d"), optimizers):
                optimizer.load_own_variables({key[len(prefix) + 1:]: value for key, value in optimizer_state.items()
                                              if key.startswith(prefix + "_")})


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape, n_classes = data.images.shape[1:], data.num_classes
    cgan.pick_classes(args.classes, n_classes, args.dataset)   # a bad --classes: one line now, not after training
    info = model_info(image_shape, args.z_dim, n_classes)
    cli.seed_everything(args.seed)
    keras.utils.set_random_seed(args.seed)   # Keras' global seed (the weights draw from the model's own)
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

    with keras.device(device), runs.Progress(run, start, args.iters, gan.FIELDS, args.log_every,
                                             resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_images, real_labels = feed.next()                 # NHWC in [-1, 1], int labels
            z = z_sampler(args.batch_size)                         # U(-1, 1)
            fake_labels = label_sampler(args.batch_size)           # uniform over the classes
            losses = train_step(real_images, cgan.one_hot(real_labels, n_classes),
                                z, cgan.one_hot(fake_labels, n_classes), args.label_smoothing)
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
