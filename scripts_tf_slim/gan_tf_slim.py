"""Generative Adversarial Network (GAN), multilayer perceptrons -- TF-Slim

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
Framework: TF-Slim (TensorFlow 1-style graph and session through
tf.compat.v1; the MLPs see the pixels as one NHWC-ordered vector).
Paper: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014
(arXiv:1406.2661); the non-saturating generator loss is its section 3.
How to run:
    python scripts_tf_slim/gan_tf_slim.py             # train, then test
    python scripts_tf_slim/gan_tf_slim.py --test      # test the last checkpoint
    python scripts_tf_slim/gan_tf_slim.py --dataset cifar10 --label-smoothing 0.1
    python scripts_tf_slim/gan_tf_slim.py --dataset mnist --data-dir ../shared/datasets/mnist10k   # offline
As a class:
    from gan_tf_slim import GAN
    model = GAN("digits", z_dim=100, img_shape=(28, 28, 1))
    result = model.train(images, epochs=40, batch_size=64)            # pixels in [0, 1] or [0, 255]
    images = model.generate(model.generate_z(20))                     # pixels in [0, 1]
"""
# ---- Setup ----
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, class_api, cli, compat, gan, runs  # noqa: E402
from common.errors import UsageError  # noqa: E402

tf, slim = compat.import_tf_slim()  # tf is tensorflow.compat.v1 (graphs and sessions)

QUESTION = "gan"
FRAMEWORK = "tf_slim"


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


def make_session(graph):
    # soft placement: the few ops without a GPU kernel (checkpoint I/O) run on the CPU
    return tf.Session(graph=graph, config=tf.ConfigProto(allow_soft_placement=True))


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
G_FILE, D_FILE, VAL_FILE, OPT_FILE = "generator.npz", "discriminator.npz", "variables.json", "optimizers.ckpt"


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "GAN with multilayer perceptrons (TF-Slim).", dataset="imori",
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
    return np.ascontiguousarray(images.reshape(len(images), -1), dtype=np.float32)


def unflatten(vectors, image_shape):
    """(N, H*W*C) -> NHWC."""
    return vectors.reshape((len(vectors), *image_shape))


# ---- Model ----
# TF1 style: the networks are functions that add layers to the current graph
# (named like the classes of the other versions); variable scopes hold the
# weights, ``reuse=True`` shares those of an earlier call.
def leaky_relu(x):
    return tf.nn.leaky_relu(x, alpha=LEAKY_SLOPE)


def init_weights():
    """Glorot-uniform weights, U(-a, a) with a = sqrt(6 / (fan_in + fan_out)),
    and zero biases: the same explicit rule in all four versions (the
    defaults all differ).  The draws come from the graph's seed
    (tf.set_random_seed in GAN._build_networks)."""
    return slim.arg_scope([slim.fully_connected],
                          weights_initializer=tf.glorot_uniform_initializer(),
                          biases_initializer=tf.zeros_initializer())


def Generator(z, image_shape, is_training=True, reuse=False):
    """z (N, z_dim) -> images as (N, H*W*C) vectors in [-1, 1].
    (``is_training`` switches BatchNorm in the DCGAN; this MLP has none.)"""
    with tf.variable_scope("generator", reuse=reuse), init_weights():
        x = slim.fully_connected(z, G_HIDDEN[0], activation_fn=leaky_relu, scope="dense1")   # (N, 128)
        x = slim.fully_connected(x, G_HIDDEN[1], activation_fn=leaky_relu, scope="dense2")   # (N, 256)
        x = slim.fully_connected(x, G_HIDDEN[2], activation_fn=leaky_relu, scope="dense3")   # (N, 512)
        x = slim.fully_connected(x, int(np.prod(image_shape)), activation_fn=tf.tanh,
                                 scope="dense4")                                            # (N, H*W*C)
    return x


def Discriminator(images, image_shape, reuse=False):
    """images as (N, H*W*C) vectors -> logits (N, 1); D(x) = sigmoid(logits)
    is the probability that x is real.  The sigmoid is applied by
    `discriminate` and inside the loss (binary cross-entropy on logits,
    which never takes log(0))."""
    with tf.variable_scope("discriminator", reuse=reuse), init_weights():
        x = slim.fully_connected(images, D_HIDDEN[0], activation_fn=leaky_relu, scope="dense1")  # (N, 512)
        x = slim.fully_connected(x, D_HIDDEN[1], activation_fn=leaky_relu, scope="dense2")       # (N, 256)
        logits = slim.fully_connected(x, 1, activation_fn=None, scope="dense3")                  # (N, 1) logits
    return logits


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "z_dim": int(z_dim),
            "generator": list(G_HIDDEN), "discriminator": list(D_HIDDEN)}


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
    """The non-saturating generator loss -mean(log D(G(z))): the fake
    images labelled real (1, never smoothed).  Its gradient is strong
    exactly when D rejects the fakes, early in training, unlike the
    minimax loss mean(log(1 - D(G(z))))."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(fake_logits),
                                                                  logits=fake_logits))


def discriminator_accuracy(real_logits, fake_logits):
    """Fraction of both batches on the right side of D(x) = 0.5 (logit 0)."""
    return tf.reduce_mean(tf.cast(tf.concat([real_logits > 0, fake_logits <= 0], axis=0), tf.float32))


# ---- Train step ----
def make_train_step(generator, discriminator, g_optimizer, d_optimizer, real_images, z, ls_epsilon):
    """Adds one iteration to the graph, once: one D update, then one G
    update, on one z batch; the returned function runs it as one
    ``sess.run`` (no graph is built per step).

    1. fake_images = G(z), once (G's BatchNorm uses and tracks the fake batch's statistics);
    2. D step: D(real_images) and D(fake_images) in two separate batches
       (BatchNorm never mixes their statistics), the loss averaged over
       both; no gradient reaches G;
    3. G step: the updated D judges the same fake_images, labelled real;
       only G is updated.
    Returns d_loss, g_loss, d_accuracy, d_real, d_fake (common.gan.FIELDS),
    measured in the D step except g_loss."""
    fake_images = generator(z, is_training=True)
    # slim puts BatchNorm's moving-average updates in UPDATE_OPS (G's only: D has
    # no BatchNorm); they run once, with the step
    bn_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)

    with tf.name_scope("d_step"):
        real_logits = discriminator(real_images)
        fake_logits = discriminator(tf.stop_gradient(fake_images), reuse=True)   # no gradient reaches G
        d_loss = discriminator_loss(real_logits, fake_logits, ls_epsilon)
        d_train_op = d_optimizer.minimize(d_loss, var_list=tf.trainable_variables("discriminator/"))

    with tf.name_scope("g_step"):
        with tf.control_dependencies([d_train_op]):   # this D reads D's weights after the update
            g_loss = generator_loss(discriminator(fake_images, reuse=True))
        g_train_op = g_optimizer.minimize(g_loss, var_list=tf.trainable_variables("generator/"))
    train_op = tf.group(d_train_op, g_train_op, *bn_updates)

    values = tf.stack([d_loss, g_loss, discriminator_accuracy(real_logits, fake_logits),
                       tf.reduce_mean(tf.sigmoid(real_logits)), tf.reduce_mean(tf.sigmoid(fake_logits))])

    def train_step(sess, real_batch, z_batch, ls_epsilon_value):
        _, out = sess.run([train_op, values], feed_dict={real_images: real_batch, z: z_batch,
                                                         ls_epsilon: ls_epsilon_value})
        return dict(zip(gan.FIELDS, out.tolist()))

    return train_step


class GAN(class_api.ClassAPI):
    """The GAN in the DCGAN's class API (the calls: common.class_api.ClassAPI),
    its TF-Slim half: build, step, forward, save and load weights.  Extras:
    ``seed``, ``lr``, ``device`` ('auto', 'cpu', 'gpu').  Attributes: ``generator``,
    ``discriminator``, ``g_optimizer``, ``d_optimizer``, ``z_sampler``.
    TF1's own: ``graph``, ``sess``, ``g_variables``, ``d_variables`` (model
    variables), ``optimizer_saver`` (both Adams' slots)."""

    QUESTION, FRAMEWORK, WEIGHTS_SUFFIX = QUESTION, FRAMEWORK, ".npz"
    model_info = staticmethod(model_info)

    def __init__(self, name, z_dim=gan.Z_DIM, img_shape=(28, 28, 1), *, seed=0, lr=2e-4, device="auto"):
        self.device = pick_device(device) if device in ("auto", "cpu", "gpu") else device   # or picked
        self.sess = None
        super().__init__(name, z_dim, img_shape, seed=seed, lr=lr)

    def _build_networks(self, z_dim, img_shape):
        """A new graph and session: placeholders, the train step, the
        inference outputs, the ops that load weights, the optimizers' Saver;
        then the graph is finalised (nothing is added while training)."""
        self.generator = partial(Generator, image_shape=img_shape)
        self.discriminator = partial(Discriminator, image_shape=img_shape)
        if self.sess is not None:
            self.sess.close()
        pixels = int(np.prod(img_shape))   # the MLPs see (N, H*W*C) vectors
        self.graph = tf.Graph()
        with self.graph.as_default(), tf.device(self.device):
            tf.set_random_seed(self._seed)    # the initial weights
            real_images = tf.placeholder(tf.float32, (None, pixels), name="real_images")
            z = tf.placeholder(tf.float32, (None, z_dim), name="z")
            ls_epsilon = tf.placeholder(tf.float32, (), name="ls_epsilon")
            self.g_optimizer = tf.train.AdamOptimizer(self._lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                                                      epsilon=ADAM_EPS, name="g_adam")
            self.d_optimizer = tf.train.AdamOptimizer(self._lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                                                      epsilon=ADAM_EPS, name="d_adam")
            self._train_step = make_train_step(self.generator, self.discriminator, self.g_optimizer,
                                               self.d_optimizer, real_images, z, ls_epsilon)
            # inference mode, on the same variables (reuse=True)
            self._z = tf.placeholder(tf.float32, (None, z_dim), name="inference_z")
            self._images = tf.placeholder(tf.float32, (None, pixels), name="inference_images")
            self._fake_images = self.generator(self._z, is_training=False, reuse=True)
            self._logits = self.discriminator(self._images, reuse=True)
            # weights, biases, BatchNorm gamma, beta and moving statistics (not Adam's slots)
            self.g_variables = slim.get_model_variables("generator/")
            self.d_variables = slim.get_model_variables("discriminator/")
            self._assign = {}
            for v in self.g_variables + self.d_variables:
                value = tf.placeholder(v.dtype.base_dtype, v.shape, name=f"load/{v.op.name}")
                self._assign[v.op.name] = (value, v.assign(value))
            self.optimizer_saver = tf.train.Saver(self.g_optimizer.variables() + self.d_optimizer.variables(),
                                                  max_to_keep=None)
            init_op = tf.global_variables_initializer()
        self.graph.finalize()
        self.sess = make_session(self.graph)
        self.sess.run(init_op)

    def _step(self, real_images, z, ls_epsilon):
        return self._train_step(self.sess, flatten(real_images), z, ls_epsilon)

    def _generate_batch(self, z):
        return unflatten(self.sess.run(self._fake_images, feed_dict={self._z: z}), self.img_shape)

    def _discriminate_batch(self, images):
        return self.sess.run(self._logits, feed_dict={self._images: flatten(images)})

    def _save_weights(self, g_path, d_path):
        for variables, path in ((self.g_variables, g_path), (self.d_variables, d_path)):
            values = self.sess.run(variables)
            with open(path, "wb") as f:     # a file object: np.savez adds no suffix
                np.savez(f, **{v.op.name: value for v, value in zip(variables, values)})

    def _read_weights(self, path):
        with np.load(path, allow_pickle=False) as archive:   # never unpickle
            return {key: archive[key] for key in archive.files}

    def _load_weights(self, g_state, d_state):
        values = {**g_state, **d_state}
        wanted = {name: tuple(value.shape) for name, (value, _) in self._assign.items()}
        got = {key: tuple(value.shape) for key, value in values.items()}
        if got != wanted:
            missing, unexpected = sorted(set(wanted) - set(got)), sorted(set(got) - set(wanted))
            shapes = sorted(k for k in set(got) & set(wanted) if got[k] != wanted[k])
            raise ValueError(f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected
                             else f"{shapes[0]} has shape {got[shapes[0]]}, the model {wanted[shapes[0]]}")
        self.sess.run([op for _, op in self._assign.values()],
                      feed_dict={value: values[key] for key, (value, _) in self._assign.items()})


# ---- Train ----
def save_checkpoint(run, iteration, model, feed, args):
    def write_files(folder):
        model.save_me(folder, G_FILE, D_FILE, VAL_FILE)
        # TF's own format (optimizers.ckpt.index + .data): both Adams' moments
        # and beta powers.  No TensorFlow random state to keep: the graph draws
        # random numbers only for the initial weights.  The Saver works in its
        # graph: outside one, TF 2 runs eagerly and would not find it.
        with model.graph.as_default():
            model.optimizer_saver.save(model.sess, str(folder / OPT_FILE), write_meta_graph=False,
                                       write_state=False)
    run.save_checkpoint(iteration, write_files, {
        "model": model.model_info(model.img_shape, model.z_dim), "feed": feed.state_dict(),
        "z_sampler": model.z_sampler.state_dict(), "dataset": args.dataset,
        "label_smoothing": args.label_smoothing})


def load_checkpoint(folder, model):
    """Weights and optimizers (the data order and the noise are in meta.json)."""
    model.change_me(folder, G_FILE, D_FILE, VAL_FILE)
    try:
        with model.graph.as_default():
            model.optimizer_saver.restore(model.sess, str(folder / OPT_FILE))
    except (tf.errors.OpError, ValueError):
        raise UsageError(f"{folder / OPT_FILE} is not a TF checkpoint of this model's optimizers") from None


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    cli.seed_everything(args.seed)           # TF's graph seed is set by the model (tf.set_random_seed)
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
