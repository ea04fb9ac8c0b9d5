"""alpha-GAN -- Keras 3

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
Framework: Keras 3 on the TensorFlow backend (NHWC, like common/).
Paper: Rosca, Lakshminarayanan, Warde-Farley & Mohamed, "Variational
Approaches for Auto-Encoding Generative Adversarial Networks", 2017
(arXiv:1706.04987); the networks: Radford, Metz & Chintala, DCGAN, ICLR 2016.
How to run:
    python scripts_keras/alpha_gan_keras.py                  # MNIST, train then test
    python scripts_keras/alpha_gan_keras.py --iters 5000 --data-dir ../shared/datasets/mnist10k
    python scripts_keras/alpha_gan_keras.py --dataset cifar10    # z of size 128
    python scripts_keras/alpha_gan_keras.py --test              # the pictures of the latest checkpoint
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import alpha_gan, augment, batching, cli, compat, gan, runs  # noqa: E402

keras = compat.import_keras()  # Keras 3, TensorFlow backend, quiet TF start-up
import tensorflow as tf  # noqa: E402  (the backend: tf.function and GradientTape for the train step, GPU query)
from keras import layers  # noqa: E402

QUESTION = "alpha_gan"
FRAMEWORK = "keras"


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).  G and D are the DCGAN's (dcgan_keras.py).
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/2^k, W/2^k, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (the last k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # D's and E's convolutions (the first k used)
C_WIDTHS = (750, 750)           # the code discriminator's hidden layers
KERNEL, STRIDE = 5, 2
# Keras' padding="same" for a 5x5 stride-2 convolution of an even size pads
# 1 row/column before and 2 after, the convention of this question (the
# PyTorch and Chainer versions pad explicitly); the transposed convolution
# with padding="same" makes 2H x 2W, as TF's conv2d_transpose.
LEAKY_SLOPE = 0.2               # LeakyReLU slope (D, E, C), set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # BatchNorm eps (G only), set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
                                # (the running variance takes the unbiased batch variance, except in
                                # Keras 3, which takes the biased one: a factor n/(n-1), no switch)
ADAM_BETAS = (0.5, 0.9)         # the question's betas, for all four optimizers
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
                                # (Keras adds it before the bias correction, PyTorch after)
G_UPDATES = 2                   # G is updated twice per iteration
JIT_COMPILE = False             # XLA off, as in dcgan_keras.py (README)
TEST_BATCH = 100                # images per forward pass in the test and the samples
G_FILE, D_FILE, E_FILE, C_FILE, OPT_FILE = ("generator.weights.h5", "discriminator.weights.h5", "encoder.weights.h5",
                                             "code_discriminator.weights.h5", "optimizers.npz")   # a checkpoint's files
OPTIMIZER_PREFIXES = ("g", "d", "e", "c")   # the four optimizers' keys in OPT_FILE


def parse_args(argv=None):
    # --iters and --z-dim: None here, resolved per data set (alpha_gan.defaults; --help says so)
    parser = cli.build_parser(QUESTION, FRAMEWORK, "alpha-GAN (Keras 3).", dataset="mnist", iters=None,
                              batch_size=64, lr=5e-4, sample_every=500, checkpoint_every=1000,
                              extra=alpha_gan.add_flags)
    return alpha_gan.defaults(cli.parse_args(parser, argv))


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC in [-1, 1], with their labels (common loader,
    same in every framework)."""
    return gan.load_images(args, split, alpha_gan.VALUE_RANGE)


# Keras is NHWC like `common`: the images go in as they are (the PyTorch
# and Chainer versions transpose them to NCHW and back here).


# ---- Model ----
def init_weights(rng):
    """N(0, 0.02) weights drawn from ``rng`` (a keras.random.SeedGenerator,
    so building a model leaves Keras' global seed alone) and zero biases:
    the same explicit rule in all four versions (the defaults all differ)."""
    return {"kernel_initializer": keras.initializers.RandomNormal(0.0, INIT_STD, seed=rng),
            "bias_initializer": "zeros"}


def batch_norm(name):
    """BatchNorm over the last axis (the channels, or the Dense units), gamma 1, beta 0, eps 1e-5, decay 0.9."""
    return layers.BatchNormalization(momentum=BN_DECAY, epsilon=BN_EPS,
                                      gamma_initializer="ones", beta_initializer="zeros", name=name)


# Generator, ConvStack, Discriminator, Encoder and CodeDiscriminator are
# functions named like the PyTorch classes; each returns a Keras model.
# Every layer is named after the PyTorch version's module (dense_1 is
# dense.1 there, deconvs_3 is deconvs.3, mlp_2 is mlp.2), and build_model
# names the optimizers: a weight is found by its name, and the models of a
# resumed run make the same graph, node for node, as those of the run it
# continues.  (Keras' automatic names count up in a process; with them, the
# same train step traced for a second set of models rounded some updates
# differently, and a resumed run drifted from the whole run.)


def Generator(z_dim, image_shape, rng):
    """z (N, z_dim) -> images (N, H, W, C) in [-1, 1]: the DCGAN generator."""
    height, width, channels = image_shape
    k, (h0, w0) = gan.dcgan_stages(image_shape)
    network = [
        keras.Input(shape=(z_dim,)),                                          # (N, z_dim)
        layers.Dense(h0 * w0 * DENSE_CHANNELS, name="dense_0", **init_weights(rng)),   # (N, h0*w0*256)
        batch_norm("dense_1"),
        layers.ReLU(name="dense_2"),
        layers.Reshape((h0, w0, DENSE_CHANNELS), name="reshape"),            # (N, h0, w0, 256)
    ]
    g_widths, _ = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    index = 0
    for features in g_widths:                                               # 512, 256, 128 for k = 4; 128 for 28x28
        network += [layers.Conv2DTranspose(features, KERNEL, STRIDE, padding="same", name=f"deconvs_{index}",
                                           **init_weights(rng)),             # (N, 2h, 2w, features)
                    batch_norm(f"deconvs_{index + 1}"),
                    layers.ReLU(name=f"deconvs_{index + 2}")]
        index += 3
    network += [layers.Conv2DTranspose(channels, KERNEL, STRIDE, padding="same", name=f"deconvs_{index}",
                                       **init_weights(rng)),                 # (N, H, W, C)
                layers.Activation("tanh", name=f"deconvs_{index + 1}")]
    return keras.Sequential(network, name="generator")


def ConvStack(image_shape, outputs, rng, name):
    """images (N, H, W, C) -> (N, outputs): the DCGAN discriminator's 5x5
    stride-2 convolutions + LeakyReLU 0.2, flattened, then a Dense layer.
    With 1 output it is D (a logit), with z_dim outputs E (a code)."""
    k, _ = gan.dcgan_stages(image_shape)
    network = [keras.Input(shape=tuple(image_shape))]                         # (N, H, W, C)
    _, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    for index, features in enumerate(d_widths):                             # 32, 64, 128, 256 for k = 4
        network += [layers.Conv2D(features, KERNEL, STRIDE, padding="same", name=f"convs_{2 * index}",
                                  **init_weights(rng)),                      # (N, h/2, w/2, features)
                    layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"convs_{2 * index + 1}")]
    network += [layers.Flatten(name="flatten"),                               # (N, H/4*W/4*64) for 28x28, NHWC order
                layers.Dense(outputs, name="dense", **init_weights(rng))]    # (N, outputs)
    return keras.Sequential(network, name=name)


def Discriminator(image_shape, rng):
    """images (N, H, W, C) -> logits (N, 1); D(x) = sigmoid(logits) is the
    probability that x is a real image.  The sigmoid is applied inside the
    loss (binary cross-entropy on logits, which never takes log(0))."""
    return ConvStack(image_shape, 1, rng, "discriminator")


def Encoder(image_shape, z_dim, rng):
    """images (N, H, W, C) -> codes (N, z_dim): D's convolutions and a
    linear Dense(z_dim), a deterministic encoder (no mean and variance, no
    sampling: making its codes look like the prior is C's job)."""
    return ConvStack(image_shape, z_dim, rng, "encoder")


def CodeDiscriminator(z_dim, rng):
    """codes (N, z_dim) -> logits (N, 1); C(z) = sigmoid(logits) is the
    probability that z was drawn from the prior N(0, I) rather than made by
    E.  No BatchNorm: the statistics of a batch would tell the encoder's
    batch from a prior batch by themselves."""
    network = [keras.Input(shape=(z_dim,))]                                   # (N, z_dim)
    for index, features in enumerate(C_WIDTHS):
        network += [layers.Dense(features, name=f"mlp_{2 * index}", **init_weights(rng)),
                    layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"mlp_{2 * index + 1}")]   # (N, 750)
    network += [layers.Dense(1, name=f"mlp_{2 * len(C_WIDTHS)}", **init_weights(rng))]          # (N, 1) logits
    return keras.Sequential(network, name="code_discriminator")


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    g_widths, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "stages": k, "start": list(start),
            "generator": [DENSE_CHANNELS, *g_widths], "discriminator": list(d_widths),
            "encoder": list(d_widths), "code_discriminator": list(C_WIDTHS)}


def build_model(image_shape, z_dim, seed, lr, encoder_lr, device):
    """G, D, E, C (initialised from ``seed`` in that order) and their Adam
    optimizers: lr for G, D and C, encoder_lr for E; Adam's m and v made
    here (so that a checkpoint can fill them)."""
    with keras.device(device):   # every variable of the model goes there
        rng = keras.random.SeedGenerator(seed)
        networks = (Generator(z_dim, image_shape, rng), Discriminator(image_shape, rng),
                    Encoder(image_shape, z_dim, rng), CodeDiscriminator(z_dim, rng))
        optimizers = tuple(keras.optimizers.Adam(learning_rate=rate, beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1],
                                                 epsilon=ADAM_EPS, name=f"{prefix}_optimizer")
                           for rate, prefix in zip((lr, lr, encoder_lr, lr), OPTIMIZER_PREFIXES))
        for network, optimizer in zip(networks, optimizers):
            optimizer.build(network.trainable_variables)
    return networks + optimizers


# Inference: plain eager calls with training=False (a handful per run, not
# worth tracing a graph for).
def in_batches(network, arrays, device):
    """A network in inference mode over a NumPy array, TEST_BATCH rows at a time."""
    with keras.device(device):
        return np.concatenate([keras.ops.convert_to_numpy(network(arrays[i:i + TEST_BATCH], training=False))
                               for i in range(0, len(arrays), TEST_BATCH)])


def generate(generator, z, device):
    """G(z) in inference mode (BatchNorm's moving statistics): (N, z_dim) -> (N, H, W, C)."""
    return in_batches(generator, z, device)


def encode(encoder, images, device):
    """E(x): NHWC images -> codes (N, z_dim)."""
    return in_batches(encoder, images, device)


def discriminate(discriminator, images, device):
    """D's logits (N, 1) of NHWC images."""
    return in_batches(discriminator, images, device)


# ---- Losses ----
def bce(logits, target):
    """Binary cross-entropy of sigmoid(logits) against a constant label (1:
    'real' / 'prior', 0: 'made'), the mean over the batch."""
    # keras.ops.binary_crossentropy is per element (no reduction); from_logits
    # is tf.nn.sigmoid_cross_entropy_with_logits, max(l, 0) - t * l + log(1 + exp(-|l|))
    return keras.ops.mean(keras.ops.binary_crossentropy(keras.ops.full_like(logits, target), logits,
                                                        from_logits=True))


def l1(images, reconstructions):
    """The paper's reconstruction term ||x - G(E(x))||_1: |x - G(E(x))| summed
    over each image's pixels, then the mean over the batch (784 x the pixel
    mean for 28x28x1 digits; the pixel mean with lambda 1 is too weak to
    keep the digits, see the README)."""
    return keras.ops.mean(keras.ops.sum(keras.ops.abs(images - reconstructions), axis=(1, 2, 3)))


# ---- Train step ----
# No compiled models and no `trainable` flags (dcgan_keras.py says why: Keras 3
# reads the flag once, when a train function is first traced): each of the
# four steps takes its gradients with tf.GradientTape and applies them to
# one network's trainable_variables (the others are read, never updated).
def make_train_step(generator, discriminator, encoder, code_discriminator, g_optimizer, d_optimizer,
                    e_optimizer, c_optimizer, l1_weight, jit_compile=JIT_COMPILE):
    """One iteration on one real batch x and one prior batch z: the four
    steps of the question, in order, each updating one network only (the
    gradients are taken for that network's variables alone).  D, E and C
    have no BatchNorm; G runs in training mode and always on E's codes and
    the prior's z together, in one batch of 2N (``decode``), so that its
    BatchNorm normalises both with the same batch statistics.  Two separate
    batches would each be normalised by their own mean and variance: G would
    not see where E puts its codes (any shift or scale of the whole batch
    of codes is normalised away, so E need not match the prior), and the
    moving averages used at test would fit neither batch.  G's moving
    statistics are updated 4 times an iteration.  Returns alpha_gan.FIELDS."""
    for network, optimizer in ((generator, g_optimizer), (discriminator, d_optimizer), (encoder, e_optimizer),
                               (code_discriminator, c_optimizer)):
        optimizer.build(network.trainable_variables)   # Adam's m and v, made here rather than in the graph

    def decode(codes, z):
        """G on [codes; z]: (reconstructions G(E(x)), samples G(z))."""
        images = generator(keras.ops.concatenate([codes, z]), training=True)
        return images[:codes.shape[0]], images[codes.shape[0]:]

    def step(optimizer, network, tape, loss):
        gradients = tape.gradient(loss, network.trainable_variables)
        optimizer.apply_gradients(zip(gradients, network.trainable_variables))

    # One TensorFlow graph, traced once on the first call (every minibatch has
    # the same shape and dtype).  tf.function runs the reads and writes of a
    # variable in program order, so each step sees the updates made before it.
    @tf.function(jit_compile=jit_compile)
    def graph_step(real_images, z):
        # 1. E: reconstruct x through G (G's weights fixed) and make the codes
        #    look like prior samples to C (non-saturating: C(E(x)) -> 1).
        with tf.GradientTape() as tape:
            codes = encoder(real_images, training=True)
            e_l1 = l1(real_images, decode(codes, z)[0])
            e_loss = l1_weight * e_l1 + bce(code_discriminator(codes, training=True), 1.0)
        step(e_optimizer, encoder, tape, e_loss)
        codes = keras.ops.stop_gradient(encoder(real_images, training=True))   # E's new codes; E is not updated again

        # 2. G, twice: reconstruct x from E's codes and make D call both the
        #    reconstructions and the samples from the prior real.  Each update
        #    computes its loss afresh with the G it updates.
        g_losses = []
        for _ in range(G_UPDATES):
            with tf.GradientTape() as tape:
                reconstructions, samples = decode(codes, z)
                g_loss = (l1_weight * l1(real_images, reconstructions)
                          + bce(discriminator(reconstructions, training=True), 1.0)
                          + bce(discriminator(samples, training=True), 1.0))
            step(g_optimizer, generator, tape, g_loss)
            g_losses.append(g_loss)

        # 3. D: real images are real, reconstructions and samples (from the
        #    updated G, no gradient to G) are made.
        reconstructions, samples = (keras.ops.stop_gradient(images) for images in decode(codes, z))
        with tf.GradientTape() as tape:
            real_logits, reconstruction_logits, sample_logits = (
                discriminator(real_images, training=True), discriminator(reconstructions, training=True),
                discriminator(samples, training=True))
            d_loss = bce(real_logits, 1.0) + bce(reconstruction_logits, 0.0) + bce(sample_logits, 0.0)
        step(d_optimizer, discriminator, tape, d_loss)

        # 4. C: prior samples are "prior", E's codes are "made".  (The paper's
        #    first version swaps these two terms in its equations 16-17; its
        #    authors confirmed the swap.)
        with tf.GradientTape() as tape:
            prior_logits, code_logits = code_discriminator(z, training=True), code_discriminator(codes, training=True)
            c_loss = bce(prior_logits, 1.0) + bce(code_logits, 0.0)
        step(c_optimizer, code_discriminator, tape, c_loss)

        return keras.ops.stack([e_loss, keras.ops.mean(keras.ops.stack(g_losses)), d_loss, c_loss, e_l1,
                                *(keras.ops.mean(keras.ops.sigmoid(logits)) for logits in
                                  (real_logits, reconstruction_logits, sample_logits, prior_logits, code_logits))])

    def train_step(real_images, z):
        values = graph_step(real_images, z)
        return dict(zip(alpha_gan.FIELDS, values.numpy().tolist()))   # one device -> host copy

    train_step.graph_step = graph_step   # for the tests: graph_step.experimental_get_tracing_count()
    return train_step


# ---- Train ----
def save_checkpoint(run, iteration, networks, feed, z_sampler, info, args):
    def write_files(folder):
        for network, name in zip(networks[:4], (G_FILE, D_FILE, E_FILE, C_FILE)):
            network.save_weights(folder / name)        # G's BatchNorm moving statistics included
        optimizer_state = {}
        for prefix, optimizer in zip(OPTIMIZER_PREFIXES, networks[4:]):
            store = {}
            optimizer.save_own_variables(store)   # step count, learning rate, Adam's m and v
            optimizer_state.update({f"{prefix}_{key}": value for key, value in store.items()})
        np.savez(folder / OPT_FILE, **optimizer_state)
        # (nothing random runs in Keras: the batches and z are NumPy's, their states in meta)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "feed": feed.state_dict(), "z_sampler": z_sampler.state_dict(), "dataset": args.dataset,
        "l1_weight": args.l1_weight})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state (the
    data order and the noise are in meta.json).  The optimizer file is read
    without unpickling; a broken file: one line."""
    for network, name in zip(networks[:4], (G_FILE, D_FILE, E_FILE, C_FILE)):
        with runs.reading(folder / name):
            network.load_weights(folder / name)
    if len(networks) > 4:
        optimizer_state = runs.load_npz(folder / OPT_FILE)   # Adam's m and v were built by build_model
        with runs.reading(folder / OPT_FILE):
            for prefix, optimizer in zip(OPTIMIZER_PREFIXES, networks[4:], strict=True):
                optimizer.load_own_variables({key[len(prefix) + 1:]: value for key, value in optimizer_state.items()
                                              if key.startswith(prefix + "_")})


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    info = model_info(image_shape, args.z_dim)
    cli.seed_everything(args.seed)
    keras.utils.set_random_seed(args.seed)   # Keras' global seed (the weights draw from the model's own)
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

    with keras.device(device), runs.Progress(run, start, args.iters, alpha_gan.FIELDS, args.log_every,
                                             resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_images = feed.next()                              # NHWC in [-1, 1], Keras' own layout
            z = z_sampler(args.batch_size)                         # N(0, I)
            losses = train_step(real_images, z)
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
