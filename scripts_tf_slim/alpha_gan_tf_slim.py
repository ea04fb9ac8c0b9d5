"""alpha-GAN -- TF-Slim

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
Framework: TF-Slim (TensorFlow 1-style graph and session through
tf.compat.v1, NHWC like common/).
Paper: Rosca, Lakshminarayanan, Warde-Farley & Mohamed, "Variational
Approaches for Auto-Encoding Generative Adversarial Networks", 2017
(arXiv:1706.04987); the networks: Radford, Metz & Chintala, DCGAN, ICLR 2016.
How to run:
    python scripts_tf_slim/alpha_gan_tf_slim.py                  # MNIST, train then test
    python scripts_tf_slim/alpha_gan_tf_slim.py --iters 5000 --data-dir ../shared/datasets/mnist10k
    python scripts_tf_slim/alpha_gan_tf_slim.py --dataset cifar10    # z of size 128
    python scripts_tf_slim/alpha_gan_tf_slim.py --test              # the pictures of the latest checkpoint
"""
# ---- Setup ----
import sys
from functools import partial
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import alpha_gan, augment, batching, cli, compat, gan, runs  # noqa: E402

tf, slim = compat.import_tf_slim()  # tf is tensorflow.compat.v1 (graphs and sessions)

QUESTION = "alpha_gan"
FRAMEWORK = "tf_slim"


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


def make_session(graph):
    # soft placement: the few ops without a GPU kernel run on the CPU
    return tf.Session(graph=graph, config=tf.ConfigProto(allow_soft_placement=True))


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).  G and D are the DCGAN's (dcgan_tf_slim.py).
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/2^k, W/2^k, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (the last k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # D's and E's convolutions (the first k used)
C_WIDTHS = (750, 750)           # the code discriminator's hidden layers
KERNEL, STRIDE = 5, 2
PADDING = "SAME"                # TF 'SAME' for 5x5 stride 2: 1 before, 2 after (PyTorch and Chainer pad explicitly)
LEAKY_SLOPE = 0.2               # LeakyReLU slope (D, E, C), set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # BatchNorm eps (G only), set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
BN_SCALE = True                 # slim's batch_norm has no gamma by default (scale=False)
ADAM_BETAS = (0.5, 0.9)         # the question's betas, for all four optimizers
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
G_UPDATES = 2                   # G is updated twice per iteration
TEST_BATCH = 100                # images per forward pass in the test and the samples
G_FILE, D_FILE, E_FILE, C_FILE, OPT_FILE = ("generator.npz", "discriminator.npz", "encoder.npz",
                                             "code_discriminator.npz", "optimizers.npz")   # a checkpoint's files


def parse_args(argv=None):
    # --iters and --z-dim: None here, resolved per data set (alpha_gan.defaults; --help says so)
    parser = cli.build_parser(QUESTION, FRAMEWORK, "alpha-GAN (TF-Slim).", dataset="mnist", iters=None,
                              batch_size=64, lr=5e-4, sample_every=500, checkpoint_every=1000,
                              extra=alpha_gan.add_flags)
    return alpha_gan.defaults(cli.parse_args(parser, argv))


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC in [-1, 1], with their labels (common loader,
    same in every framework)."""
    return gan.load_images(args, split, alpha_gan.VALUE_RANGE)


# TensorFlow is NHWC like `common`: the images go in as they are (the PyTorch
# and Chainer versions transpose them to NCHW and back here).


# ---- Model ----
# TF1 style: the networks are functions that add layers to the current graph
# (named like the classes of the other versions); variable scopes hold the
# weights, and every call after the first shares them (tf.AUTO_REUSE).
def leaky_relu(x):
    return tf.nn.leaky_relu(x, alpha=LEAKY_SLOPE)


def init_weights():
    """N(0, 0.02) weights and zero biases, no activation and no normalizer
    unless a layer asks (slim's defaults are activation_fn=relu and a
    Glorot-uniform initializer): the same explicit rule in all four
    versions.  The draws come from the graph's seed (tf.set_random_seed in
    build_model): no rng argument, unlike the other versions."""
    return slim.arg_scope([slim.fully_connected, slim.conv2d, slim.conv2d_transpose],
                          weights_initializer=tf.random_normal_initializer(0.0, INIT_STD),
                          biases_initializer=tf.zeros_initializer(),
                          activation_fn=None, normalizer_fn=None)


def batch_norm(x, is_training, scope):
    """BatchNorm over the last axis (channels or Dense units) with gamma
    (scale=True) 1, beta 0, eps 1e-5, decay 0.9.  ``is_training``: the
    batch's statistics, the moving-average updates go to UPDATE_OPS (the
    train step runs them); else the moving statistics (inference)."""
    return slim.batch_norm(x, decay=BN_DECAY, epsilon=BN_EPS, center=True, scale=BN_SCALE,
                           param_initializers={"beta": tf.zeros_initializer(), "gamma": tf.ones_initializer(),
                                               "moving_mean": tf.zeros_initializer(),
                                               "moving_variance": tf.ones_initializer()},
                           is_training=is_training, updates_collections=tf.GraphKeys.UPDATE_OPS, scope=scope)


def Generator(z, image_shape, is_training=True):
    """z (N, z_dim) -> images (N, H, W, C) in [-1, 1]: the DCGAN generator."""
    height, width, channels = image_shape
    k, (h0, w0) = gan.dcgan_stages(image_shape)
    with tf.variable_scope("generator", reuse=tf.AUTO_REUSE), init_weights():
        x = slim.fully_connected(z, h0 * w0 * DENSE_CHANNELS, scope="dense")           # (N, h0*w0*256)
        x = tf.nn.relu(batch_norm(x, is_training, "bn0"))
        x = tf.reshape(x, [-1, h0, w0, DENSE_CHANNELS])                                # (N, h0, w0, 256)
        g_widths, _ = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
        for i, features in enumerate(g_widths, start=1):                    # 512, 256, 128 for k = 4; 128 for 28x28
            x = slim.conv2d_transpose(x, features, KERNEL, stride=STRIDE, padding=PADDING,
                                      scope=f"deconv{i}")                              # (N, 2h, 2w, features)
            x = tf.nn.relu(batch_norm(x, is_training, f"bn{i}"))
        x = slim.conv2d_transpose(x, channels, KERNEL, stride=STRIDE, padding=PADDING,
                                  scope=f"deconv{k}")                                  # (N, H, W, C)
        return tf.tanh(x)


def ConvStack(images, image_shape, outputs, scope):
    """images (N, H, W, C) -> (N, outputs): the DCGAN discriminator's 5x5
    stride-2 convolutions + LeakyReLU 0.2, flattened, then a Dense layer.
    With 1 output it is D (a logit), with z_dim outputs E (a code); the
    variable scope tells the two apart."""
    k, _ = gan.dcgan_stages(image_shape)
    with tf.variable_scope(scope, reuse=tf.AUTO_REUSE), init_weights():
        x = images
        _, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
        for i, features in enumerate(d_widths, start=1):                    # 32, 64, 128, 256 for k = 4
            x = slim.conv2d(x, features, KERNEL, stride=STRIDE, padding=PADDING,
                            activation_fn=leaky_relu, scope=f"conv{i}")               # (N, h/2, w/2, features)
        x = slim.flatten(x)                                                            # (N, H/4*W/4*64), NHWC order
        return slim.fully_connected(x, outputs, scope="dense")                         # (N, outputs)


def Discriminator(images, image_shape):
    """images (N, H, W, C) -> logits (N, 1); D(x) = sigmoid(logits) is the
    probability that x is a real image.  The sigmoid is applied inside the
    loss (binary cross-entropy on logits, which never takes log(0))."""
    return ConvStack(images, image_shape, 1, "discriminator")


def Encoder(images, image_shape, z_dim):
    """images (N, H, W, C) -> codes (N, z_dim): D's convolutions and a
    linear Dense(z_dim), a deterministic encoder (no mean and variance, no
    sampling: making its codes look like the prior is C's job)."""
    return ConvStack(images, image_shape, z_dim, "encoder")


def CodeDiscriminator(z):
    """codes (N, z_dim) -> logits (N, 1); C(z) = sigmoid(logits) is the
    probability that z was drawn from the prior N(0, I) rather than made by
    E.  No BatchNorm: the statistics of a batch would tell the encoder's
    batch from a prior batch by themselves."""
    with tf.variable_scope("code_discriminator", reuse=tf.AUTO_REUSE), init_weights():
        x = z
        for i, features in enumerate(C_WIDTHS, start=1):
            x = slim.fully_connected(x, features, activation_fn=leaky_relu, scope=f"dense{i}")   # (N, 750)
        return slim.fully_connected(x, 1, scope=f"dense{len(C_WIDTHS) + 1}")                   # (N, 1) logits


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    g_widths, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "stages": k, "start": list(start),
            "generator": [DENSE_CHANNELS, *g_widths], "discriminator": list(d_widths),
            "encoder": list(d_widths), "code_discriminator": list(C_WIDTHS)}


def build_model(image_shape, z_dim, seed, lr, encoder_lr, device):
    """G, D, E, C (initialised from ``seed``) and their Adam optimizers: lr
    for G, D and C, encoder_lr for E; in a new graph and session.  TF1 has
    no network objects: each network is a namespace of the graph function
    (``net``), its placeholder (``input``) and ``output`` in inference mode,
    its ``variables`` (G's BatchNorm moving statistics included), the
    session and the device."""
    graph = tf.Graph()
    sess = make_session(graph)
    with graph.as_default(), tf.device(device):
        tf.set_random_seed(seed)                                        # the initial weights
        z = tf.placeholder(tf.float32, (None, z_dim), name="z")
        images = tf.placeholder(tf.float32, (None, *image_shape), name="images")
        generator = SimpleNamespace(net=partial(Generator, image_shape=image_shape), input=z, scope="generator/")
        discriminator = SimpleNamespace(net=partial(Discriminator, image_shape=image_shape), input=images,
                                        scope="discriminator/")
        encoder = SimpleNamespace(net=partial(Encoder, image_shape=image_shape, z_dim=z_dim), input=images,
                                  scope="encoder/")
        code_discriminator = SimpleNamespace(net=CodeDiscriminator, input=z, scope="code_discriminator/")
        generator.output = generator.net(z, is_training=False)            # inference mode: the moving statistics
        discriminator.output, encoder.output = discriminator.net(images), encoder.net(images)
        code_discriminator.output = code_discriminator.net(z)
        networks = (generator, discriminator, encoder, code_discriminator)
        for network in networks:
            network.variables, network.sess, network.device = slim.get_model_variables(network.scope), sess, device
        optimizers = tuple(tf.train.AdamOptimizer(rate, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], epsilon=ADAM_EPS,
                                                  name=name)
                           for rate, name in zip((lr, lr, encoder_lr, lr), ("g_adam", "d_adam", "e_adam", "c_adam")))
        sess.run(tf.global_variables_initializer())
    return networks + optimizers


def in_batches(network, arrays):
    """A network in inference mode over a NumPy array, TEST_BATCH rows at a time."""
    return np.concatenate([network.sess.run(network.output, {network.input: arrays[i:i + TEST_BATCH]})
                           for i in range(0, len(arrays), TEST_BATCH)])


def generate(generator, z, device):
    """G(z) in inference mode (BatchNorm's moving statistics): (N, z_dim) -> (N, H, W, C).
    (``device``: fixed when the graph was built.)"""
    return in_batches(generator, z)


def encode(encoder, images, device):
    """E(x): NHWC images -> codes (N, z_dim)."""
    return in_batches(encoder, images)


def discriminate(discriminator, images, device):
    """D's logits (N, 1) of NHWC images."""
    return in_batches(discriminator, images)


# ---- Losses ----
def bce(logits, target):
    """Binary cross-entropy of sigmoid(logits) against a constant label (1:
    'real' / 'prior', 0: 'made'), the mean over the batch."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), target),
                                                                  logits=logits))


def l1(images, reconstructions):
    """The paper's reconstruction term ||x - G(E(x))||_1: |x - G(E(x))| summed
    over each image's pixels, then the mean over the batch (784 x the pixel
    mean for 28x28x1 digits; the pixel mean with lambda 1 is too weak to
    keep the digits, see the README)."""
    return tf.reduce_mean(tf.reduce_sum(tf.abs(images - reconstructions), axis=[1, 2, 3]))


# ---- Train step ----
def make_train_step(generator, discriminator, encoder, code_discriminator, g_optimizer, d_optimizer,
                    e_optimizer, c_optimizer, l1_weight):
    """One iteration on one real batch x and one prior batch z: the four
    steps of the question, in order, each updating one network only (the
    others are frozen: each optimizer gets its own network's variables).  D,
    E and C have no BatchNorm; G runs in training mode and always on E's
    codes and the prior's z together, in one batch of 2N (``decode``), so
    that its BatchNorm normalises both with the same batch statistics.  Two
    separate batches would each be normalised by their own mean and
    variance: G would not see where E puts its codes (any shift or scale of
    the whole batch of codes is normalised away, so E need not match the
    prior), and the moving averages used at test would fit neither batch.
    G's moving statistics are updated 4 times an iteration, in order.
    Returns alpha_gan.FIELDS.
    TF1: each step is added to the graph once (with Adam's variables, which
    it initialises); the returned function runs them one ``sess.run`` each,
    in order, G's twice.  The E step also returns E's new codes (read after
    its update), which the other steps are fed."""
    sess = generator.sess
    with sess.graph.as_default(), tf.device(generator.device):
        real_images = tf.placeholder(tf.float32, encoder.input.shape, name="real_images")   # (N, H, W, C)
        z = tf.placeholder(tf.float32, generator.input.shape, name="train_z")               # (N, z_dim)
        codes = tf.placeholder(tf.float32, generator.input.shape, name="codes")             # E(x), after E's step

        def decode(codes, z):
            """G on [codes; z] in training mode: (reconstructions G(E(x)), samples G(z))."""
            images = generator.net(tf.concat([codes, z], axis=0), is_training=True)
            return images[:tf.shape(codes)[0]], images[tf.shape(codes)[0]:]

        def step(optimizer, loss, network):
            """The update of ``network`` alone, with the moving-statistics
            updates of G's forwards in this step (the current name scope)."""
            update = optimizer.minimize(loss, var_list=tf.trainable_variables(network.scope))
            scope = tf.get_default_graph().get_name_scope() + "/"        # "e_step/", "g_step/", ...
            return tf.group(update, *tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope=scope))

        # 1. E: reconstruct x through G (G's weights fixed) and make the codes
        #    look like prior samples to C (non-saturating: C(E(x)) -> 1).
        with tf.name_scope("e_step"):
            e_codes = encoder.net(real_images)
            e_l1 = l1(real_images, decode(e_codes, z)[0])
            e_loss = l1_weight * e_l1 + bce(code_discriminator.net(e_codes), 1.0)
            e_op = step(e_optimizer, e_loss, encoder)
            with tf.control_dependencies([e_op]):
                new_codes = encoder.net(real_images)   # E's new codes; E is not updated again this iteration

        # 2. G (run twice): reconstruct x from E's codes and make D call both
        #    the reconstructions and the samples from the prior real.  Each
        #    run computes its loss afresh with the G it updates.
        with tf.name_scope("g_step"):
            reconstructions, samples = decode(codes, z)
            g_loss = (l1_weight * l1(real_images, reconstructions) + bce(discriminator.net(reconstructions), 1.0)
                      + bce(discriminator.net(samples), 1.0))
            g_op = step(g_optimizer, g_loss, generator)

        # 3. D: real images are real, reconstructions and samples (from the
        #    updated G, no gradient to G) are made.
        with tf.name_scope("d_step"):
            reconstructions, samples = (tf.stop_gradient(images) for images in decode(codes, z))
            real_logits, reconstruction_logits, sample_logits = (
                discriminator.net(real_images), discriminator.net(reconstructions), discriminator.net(samples))
            d_loss = bce(real_logits, 1.0) + bce(reconstruction_logits, 0.0) + bce(sample_logits, 0.0)
            d_op = step(d_optimizer, d_loss, discriminator)

        # 4. C: prior samples are "prior", E's codes are "made".  (The paper's
        #    first version swaps these two terms in its equations 16-17; its
        #    authors confirmed the swap.)
        with tf.name_scope("c_step"):
            prior_logits, code_logits = code_discriminator.net(z), code_discriminator.net(codes)
            c_loss = bce(prior_logits, 1.0) + bce(code_logits, 0.0)
            c_op = step(c_optimizer, c_loss, code_discriminator)

        d_values = tf.stack([d_loss, *(tf.reduce_mean(tf.sigmoid(logits)) for logits in
                                       (real_logits, reconstruction_logits, sample_logits))])
        c_values = tf.stack([c_loss, *(tf.reduce_mean(tf.sigmoid(logits)) for logits in (prior_logits, code_logits))])
        sess.run(tf.variables_initializer([v for optimizer in (g_optimizer, d_optimizer, e_optimizer, c_optimizer)
                                           for v in optimizer.variables()]))
    sess.graph.finalize()                                         # nothing is added while training

    def train_step(real_batch, z_batch):
        feed = {real_images: real_batch, z: z_batch}
        _, e_loss_value, e_l1_value, feed[codes] = sess.run([e_op, e_loss, e_l1, new_codes], feed)
        g_losses = [sess.run([g_op, g_loss], feed)[1] for _ in range(G_UPDATES)]
        _, (d_loss_value, d_real, d_reconstruction, d_sample) = sess.run([d_op, d_values], feed)
        _, (c_loss_value, c_prior, c_code) = sess.run([c_op, c_values], feed)
        values = (e_loss_value, np.mean(g_losses), d_loss_value, c_loss_value, e_l1_value, d_real, d_reconstruction,
                  d_sample, c_prior, c_code)
        return dict(zip(alpha_gan.FIELDS, (float(v) for v in values)))

    return train_step


# ---- Train ----
def save_variables(sess, variables, path):
    """The variables' values in an .npz file, by variable name."""
    values = sess.run(variables)
    with open(path, "wb") as f:     # a file object: np.savez adds no suffix
        np.savez(f, **{v.op.name: value for v, value in zip(variables, values)})


def load_variables(sess, variables, path):
    """Each variable gets its value by name from ``path`` through its
    initializer, with the value fed in (what tf.Variable.load does): no op
    is added to the finalized graph.  A broken file: one line."""
    with runs.reading(path), np.load(path, allow_pickle=False) as saved:
        missing = [v.op.name for v in variables if v.op.name not in saved.files]
        if missing:
            raise ValueError(f"{missing[0]} is missing")
        sess.run([v.initializer for v in variables], {v.initializer.inputs[1]: saved[v.op.name] for v in variables})


def optimizer_variables(sess, optimizers):
    with sess.graph.as_default():   # TF1 looks an optimizer's variables (moments, beta powers) up in its graph
        return [v for optimizer in optimizers for v in optimizer.variables()]


def save_checkpoint(run, iteration, networks, feed, z_sampler, info, args):
    sess = networks[0].sess

    def write_files(folder):
        for network, name in zip(networks[:4], (G_FILE, D_FILE, E_FILE, C_FILE)):
            save_variables(sess, network.variables, folder / name)    # G's BatchNorm moving statistics included
        # No TensorFlow random state to keep: the graph draws random
        # numbers only for the initial weights (z comes from z_sampler).
        save_variables(sess, optimizer_variables(sess, networks[4:]), folder / OPT_FILE)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "feed": feed.state_dict(), "z_sampler": z_sampler.state_dict(), "dataset": args.dataset,
        "l1_weight": args.l1_weight})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state (the
    data order and the noise are in meta.json)."""
    sess = networks[0].sess
    for network, name in zip(networks[:4], (G_FILE, D_FILE, E_FILE, C_FILE)):
        load_variables(sess, network.variables, folder / name)
    if len(networks) > 4:
        load_variables(sess, optimizer_variables(sess, networks[4:]), folder / OPT_FILE)


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    info = model_info(image_shape, args.z_dim)
    cli.seed_everything(args.seed)           # TF's graph seed is set by build_model (tf.set_random_seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed,
                         augment.for_dataset(args.dataset, alpha_gan.VALUE_RANGE))
    z_sampler = alpha_gan.ZSampler(args.z_dim, args.seed)          # z ~ N(0, I) of every iteration (stream TRAIN)
    networks = build_model(image_shape, args.z_dim, args.seed, args.lr, args.encoder_lr, device)
    generator = networks[0]
    train_step = make_train_step(*networks, l1_weight=args.l1_weight)   # TF1: before a resume, which loads
    start = 0                                                           # into Adam's variables it makes
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
    sample_z = alpha_gan.sample_latents(args.z_dim, args.seed)

    with runs.Progress(run, start, args.iters, alpha_gan.FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_images = feed.next()                              # NHWC in [-1, 1]
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
