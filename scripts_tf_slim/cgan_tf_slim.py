"""Conditional GAN (CGAN) -- TF-Slim

Question: generate 28x28x1 MNIST digits (pixels in [-1, 1]) of a chosen
class: the DCGAN of dcgan_tf_slim.py, told the class.  Generator: z ~ U(-1, 1)
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
Framework: TF-Slim (TensorFlow 1-style graph and session through
tf.compat.v1, NHWC like common/).
Paper: Mirza & Osindero, "Conditional Generative Adversarial Nets", 2014
(arXiv:1411.1784); the networks: Radford, Metz & Chintala, DCGAN, ICLR 2016
(arXiv:1511.06434).
How to run:
    python scripts_tf_slim/cgan_tf_slim.py                  # MNIST, train then test
    python scripts_tf_slim/cgan_tf_slim.py --test --classes 3 7
    python scripts_tf_slim/cgan_tf_slim.py --dataset fashion_mnist
    python scripts_tf_slim/cgan_tf_slim.py --dataset imori --iters 5000   # akahara / madara
    python scripts_tf_slim/cgan_tf_slim.py --data-dir ../shared/datasets/mnist10k   # offline
"""
# ---- Setup ----
import sys
from functools import partial
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, cgan, cli, compat, gan, runs  # noqa: E402

tf, slim = compat.import_tf_slim()  # tf is tensorflow.compat.v1 (graphs and sessions)

QUESTION = "cgan"
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
# (DESIGN.md section 7).  The networks are the DCGAN's (dcgan_tf_slim.py).
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/2^k, W/2^k, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (the last k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # D's convolutions (the first k used)
KERNEL, STRIDE = 5, 2
PADDING = "SAME"                # TF 'SAME' for 5x5 stride 2: 1 before, 2 after (PyTorch and Chainer pad explicitly)
LEAKY_SLOPE = 0.2               # LeakyReLU slope, set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
BN_SCALE = True                 # slim's batch_norm has no gamma by default (scale=False)
ADAM_BETAS = (0.5, 0.999)       # beta1 0.5 for G and D
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
TEST_BATCH = 100                # images per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE = "generator.npz", "discriminator.npz", "optimizers.npz"   # files of a checkpoint


def parse_args(argv=None):
    # --iters: None here, 20000 or 30000 (cifar10) by data set (cgan.default_iters; --help says so)
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Conditional GAN (TF-Slim).", dataset="mnist", iters=None,
                              batch_size=64, lr=2e-4, sample_every=500, checkpoint_every=1000, extra=cgan.add_flags)
    return cgan.default_iters(cli.parse_args(parser, argv))


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC in [-1, 1] and their labels (common loader,
    same in every framework); at least two classes."""
    data = gan.load_images(args, split, cgan.VALUE_RANGE)
    cgan.check_data(data, split)
    return data


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


def Generator(z, y, image_shape, is_training=True):
    """z (N, z_dim) and the condition y (N, n_classes), one-hot ->
    images (N, H, W, C) in [-1, 1].  The Dense and transposed-convolution
    layers keep their biases before BatchNorm, as in the other versions."""
    height, width, channels = image_shape
    k, (h0, w0) = gan.dcgan_stages(image_shape)
    with tf.variable_scope("generator", reuse=tf.AUTO_REUSE), init_weights():
        x = tf.concat([z, y], axis=1)                                 # (N, z_dim + n_classes): z first, then y
        x = slim.fully_connected(x, h0 * w0 * DENSE_CHANNELS, scope="dense")           # (N, h0*w0*256)
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


def Discriminator(images, y, image_shape):
    """images (N, H, W, C) and the condition y (N, n_classes) -> logits
    (N, 1); D(x, y) = sigmoid(logits) is the probability that x is a real
    image of class y.  The sigmoid is applied inside the loss (binary
    cross-entropy on logits, which never takes log(0))."""
    height, width, channels = image_shape
    k, _ = gan.dcgan_stages(image_shape)
    with tf.variable_scope("discriminator", reuse=tf.AUTO_REUSE), init_weights():
        planes = tf.tile(y[:, None, None, :], [1, height, width, 1])   # (N, H, W, n_classes): y[i, c] everywhere
        x = tf.concat([images, planes], axis=3)                         # (N, H, W, C + n_classes): the image first
        _, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
        for i, features in enumerate(d_widths, start=1):                    # 32, 64, 128, 256 for k = 4
            x = slim.conv2d(x, features, KERNEL, stride=STRIDE, padding=PADDING,
                            activation_fn=leaky_relu, scope=f"conv{i}")               # (N, h/2, w/2, features)
        x = slim.flatten(x)                                                            # (N, H/4*W/4*64), NHWC order
        return slim.fully_connected(x, 1, scope="dense")                               # (N, 1)


def model_info(image_shape, z_dim, n_classes):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    g_widths, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "n_classes": int(n_classes), "stages": k,
            "start": list(start), "generator": [DENSE_CHANNELS, *g_widths], "discriminator": list(d_widths)}


def build_model(image_shape, z_dim, n_classes, seed, lr, device):
    """G, D (initialised from ``seed``) and their Adam optimizers, in a new
    graph and session.  TF1 has no network objects: G and D are namespaces
    of the graph function (``net``), the placeholders (``inputs``) and the
    ``output`` of inference mode, the ``variables`` (BatchNorm moving
    statistics included), the session and the device."""
    graph = tf.Graph()
    sess = make_session(graph)
    with graph.as_default(), tf.device(device):
        tf.set_random_seed(seed)                                        # the initial weights
        z = tf.placeholder(tf.float32, (None, z_dim), name="z")
        y = tf.placeholder(tf.float32, (None, n_classes), name="y")
        images = tf.placeholder(tf.float32, (None, *image_shape), name="images")
        generator = SimpleNamespace(net=partial(Generator, image_shape=image_shape), inputs=(z, y))
        discriminator = SimpleNamespace(net=partial(Discriminator, image_shape=image_shape), inputs=(images, y))
        generator.output = generator.net(z, y, is_training=False)        # inference mode: the moving statistics
        discriminator.output = discriminator.net(images, y)
        for network, scope in ((generator, "generator/"), (discriminator, "discriminator/")):
            network.variables, network.sess, network.device = slim.get_model_variables(scope), sess, device
        g_optimizer = tf.train.AdamOptimizer(lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], epsilon=ADAM_EPS,
                                             name="g_adam")
        d_optimizer = tf.train.AdamOptimizer(lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], epsilon=ADAM_EPS,
                                             name="d_adam")
        sess.run(tf.global_variables_initializer())
    return generator, discriminator, g_optimizer, d_optimizer


def generate(generator, z, conditions, device):
    """G(z, y) in inference mode (BatchNorm's moving statistics), NumPy in
    and out: (N, z_dim), (N, n_classes) -> images (N, H, W, C) in [-1, 1].
    (``device``: fixed when the graph was built.)"""
    z_input, y_input = generator.inputs
    return np.concatenate([generator.sess.run(generator.output, {z_input: z[i:i + TEST_BATCH],
                                                                 y_input: conditions[i:i + TEST_BATCH]})
                           for i in range(0, len(z), TEST_BATCH)])


def discriminate(discriminator, images, conditions, device):
    """D's logits (N, 1) of NHWC images with their conditions, NumPy in and out."""
    images_input, y_input = discriminator.inputs
    return np.concatenate([discriminator.sess.run(discriminator.output, {images_input: images[i:i + TEST_BATCH],
                                                                         y_input: conditions[i:i + TEST_BATCH]})
                           for i in range(0, len(images), TEST_BATCH)])


# ---- Losses ----
def discriminator_loss(real_logits, fake_logits, ls_epsilon=0.0):
    """Binary cross-entropy of D on the real batch (labels 1 - eps) and on
    the fake batch (labels eps), averaged over both batches (eps: label
    smoothing, 0 by default)."""
    real_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.ones_like(real_logits) * (1.0 - ls_epsilon), logits=real_logits))
    fake_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.ones_like(fake_logits) * ls_epsilon, logits=fake_logits))
    return 0.5 * (real_loss + fake_loss)


def generator_loss(fake_logits):
    """The non-saturating generator loss -mean(log D(G(z, y), y)): the fake
    images labelled real (1, never smoothed)."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(fake_logits),
                                                                  logits=fake_logits))


def discriminator_accuracy(real_logits, fake_logits):
    """Fraction of both batches on the right side of D(x) = 0.5 (logit 0)."""
    return tf.reduce_mean(tf.cast(tf.concat([real_logits > 0, fake_logits <= 0], axis=0), tf.float32))


# ---- Train step ----
def make_train_step(generator, discriminator, g_optimizer, d_optimizer):
    """One iteration: one D update, then one G update, on one z batch.

    1. fake_images = G(z, fake_labels), once;
    2. D step: D(real_images, real_labels) and D(fake_images, fake_labels)
       in two separate batches, the loss averaged over both; the real
       images come with their true labels, the fakes with the labels G was
       asked for, so D learns "real AND of this class"; no gradient reaches G;
    3. G step: the updated D judges the same fake_images with the same
       labels, now labelled real; only G is updated.
    The labels are one-hot rows (N, n_classes).  Returns d_loss, g_loss,
    d_accuracy, d_real, d_fake (common.gan.FIELDS), measured in the D step
    except g_loss.
    TF1: this adds the step to the graph once (and Adam's variables, which
    it initialises); the returned function runs it as one ``sess.run``."""
    sess = generator.sess
    with sess.graph.as_default(), tf.device(generator.device):
        real_images = tf.placeholder(tf.float32, discriminator.inputs[0].shape, name="real_images")   # (N, H, W, C)
        real_labels = tf.placeholder(tf.float32, discriminator.inputs[1].shape, name="real_labels")   # one-hot
        z = tf.placeholder(tf.float32, generator.inputs[0].shape, name="train_z")
        fake_labels = tf.placeholder(tf.float32, generator.inputs[1].shape, name="fake_labels")       # one-hot
        ls_epsilon = tf.placeholder(tf.float32, (), name="ls_epsilon")
        inputs = (real_images, real_labels, z, fake_labels, ls_epsilon)
        fake_images = generator.net(z, fake_labels, is_training=True)
        bn_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)   # G's moving statistics: run once, with the step

        real_logits = discriminator.net(real_images, real_labels)
        fake_logits = discriminator.net(tf.stop_gradient(fake_images), fake_labels)   # no gradient reaches G
        d_loss = discriminator_loss(real_logits, fake_logits, ls_epsilon)
        d_train_op = d_optimizer.minimize(d_loss, var_list=tf.trainable_variables("discriminator/"))

        with tf.control_dependencies([d_train_op]):              # this D reads D's weights after the update
            g_loss = generator_loss(discriminator.net(fake_images, fake_labels))
        g_train_op = g_optimizer.minimize(g_loss, var_list=tf.trainable_variables("generator/"))   # only G
        train_op = tf.group(d_train_op, g_train_op, *bn_updates)

        values = tf.stack([d_loss, g_loss, discriminator_accuracy(real_logits, fake_logits),
                           tf.reduce_mean(tf.sigmoid(real_logits)), tf.reduce_mean(tf.sigmoid(fake_logits))])
        sess.run(tf.variables_initializer(g_optimizer.variables() + d_optimizer.variables()))
    sess.graph.finalize()                                         # nothing is added while training

    def train_step(real_images, real_labels, z, fake_labels, ls_epsilon):
        _, out = sess.run([train_op, values], dict(zip(inputs, (real_images, real_labels, z, fake_labels, ls_epsilon))))
        return dict(zip(gan.FIELDS, out.tolist()))

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


def optimizer_variables(sess, g_optimizer, d_optimizer):
    with sess.graph.as_default():   # TF1 looks an optimizer's variables (moments, beta powers) up in its graph
        return g_optimizer.variables() + d_optimizer.variables()


def save_checkpoint(run, iteration, networks, feed, z_sampler, label_sampler, info, class_names, args):
    generator, discriminator, g_optimizer, d_optimizer = networks
    sess = generator.sess

    def write_files(folder):
        save_variables(sess, generator.variables, folder / G_FILE)    # BatchNorm moving statistics included
        save_variables(sess, discriminator.variables, folder / D_FILE)
        # No TensorFlow random state to keep: the graph draws random
        # numbers only for the initial weights.
        save_variables(sess, optimizer_variables(sess, g_optimizer, d_optimizer), folder / OPT_FILE)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "class_names": class_names, "feed": feed.state_dict(),
        "z_sampler": z_sampler.state_dict(), "label_sampler": label_sampler.state_dict(),
        "dataset": args.dataset, "label_smoothing": args.label_smoothing})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state (the data
    order, the noise and the labels are in meta.json)."""
    generator, discriminator, *optimizers = networks
    for network, name in ((generator, G_FILE), (discriminator, D_FILE)):
        load_variables(network.sess, network.variables, folder / name)
    if optimizers:
        load_variables(generator.sess, optimizer_variables(generator.sess, *optimizers), folder / OPT_FILE)


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape, n_classes = data.images.shape[1:], data.num_classes
    cgan.pick_classes(args.classes, n_classes, args.dataset)   # a bad --classes: one line now, not after training
    info = model_info(image_shape, args.z_dim, n_classes)
    cli.seed_everything(args.seed)           # TF's graph seed is set by build_model (tf.set_random_seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed, augment.for_dataset(args.dataset, gan.VALUE_RANGE),
                         labels=data.labels)                       # (images, labels) batches
    z_sampler = gan.ZSampler(args.z_dim, args.seed)                # the z of every step (stream gan.TRAIN)
    label_sampler = cgan.LabelSampler(n_classes, args.seed)        # the labels G is asked for (stream cgan.FAKE_LABELS)
    networks = build_model(image_shape, args.z_dim, n_classes, args.seed, args.lr, device)
    generator, discriminator = networks[:2]
    train_step = make_train_step(*networks)    # TF1: before a resume, which loads into Adam's variables it makes
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
    sample_z, sample_y = cgan.sample_conditions(n_classes, args.z_dim, args.seed)   # one row per class

    with runs.Progress(run, start, args.iters, gan.FIELDS, args.log_every, resume=bool(args.resume)) as progress:
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
