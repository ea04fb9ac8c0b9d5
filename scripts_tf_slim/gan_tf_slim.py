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
generate, discriminate, evaluate, generate_z, save_me, change_me; main()
uses it.
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
import time
import zipfile
from functools import partial
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, cli, compat, gan, pictures, runs  # noqa: E402
from common.errors import UsageError  # noqa: E402

tf, slim = compat.import_tf_slim()  # tf is tensorflow.compat.v1 (graphs and sessions)

QUESTION = "gan"
FRAMEWORK = "tf_slim"

# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).
VALUE_RANGE = gan.VALUE_RANGE   # the networks see and make images in [-1, 1]
G_HIDDEN = (128, 256, 512)      # G's hidden Dense layers
D_HIDDEN = (512, 256)           # D's hidden Dense layers
LEAKY_SLOPE = 0.2               # tf.nn.leaky_relu's default, set explicitly (torch 0.01, Keras 0.3);
                                # slim layers default to activation_fn=relu: every layer sets its own
# Weights Glorot-uniform (Keras' default), biases 0.  Measured on MNIST: with
# the DCGAN paper's N(0, 0.02) the signal shrinks through G's four layers and
# G still draws noise after 1000 iterations; with Glorot-uniform digit strokes
# appear after 500-600.
ADAM_BETAS = (0.5, 0.999)       # beta1 0.5 for G and D
ADAM_EPS = 1e-8                 # tf.v1 default, set explicitly (Keras' default is 1e-7)
# File names of a checkpoint (save_me's three files + the optimizers)
G_FILE, D_FILE, VAL_FILE, OPT_FILE = "generator.npz", "discriminator.npz", "variables.json", "optimizers.ckpt"
WEIGHTS_SUFFIX = ".npz"


def parse_args(argv=None, question=QUESTION, description="GAN with multilayer perceptrons (TF-Slim)."):
    """The command line (dcgan_tf_slim.py shares it, with its own question name)."""
    parser = cli.build_parser(question, FRAMEWORK, description,
                              dataset="imori", iters=5000, batch_size=64, lr=2e-4,
                              sample_every=500, checkpoint_every=1000, extra=gan.add_flags)
    return cli.parse_args(parser, argv)


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


def make_session(graph):
    # soft placement: the few ops without a GPU kernel (checkpoint I/O) run on the CPU
    return tf.Session(graph=graph, config=tf.ConfigProto(allow_soft_placement=True))


# ---- Data ----
def load_data(args, split, value_range=VALUE_RANGE):
    """Images as float32 NHWC in ``value_range`` (common loader, same in every framework)."""
    return gan.load_images(args, split, value_range)


def flatten(images):
    """NHWC -> (N, H*W*C).  The MLPs see the pixel vector in the common
    NHWC order, so their weights match the PyTorch/Keras/Chainer versions 1:1."""
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
    (tf.set_random_seed in GAN._build)."""
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


def inference_graph(generator, discriminator, z_dim, network_shape):
    """The placeholders and outputs of generate and discriminate, on the
    variables of the training graph (``reuse=True``), in inference mode:
    ``z`` -> ``fake_images``; ``images`` (the network's layout) -> ``logits``."""
    z = tf.placeholder(tf.float32, (None, z_dim), name="inference_z")
    images = tf.placeholder(tf.float32, (None, *network_shape), name="inference_images")
    return SimpleNamespace(z=z, fake_images=generator(z, is_training=False, reuse=True),
                           images=images, logits=discriminator(images, reuse=True))


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

    1. fake_images = G(z), once (G's BatchNorm uses the fake batch's
       statistics; slim puts its moving-average updates in the UPDATE_OPS
       collection, and they run once, with the step);
    2. D step: D(real_images) and D(fake_images) in two separate batches,
       the loss averaged over both; stop_gradient: no gradient reaches G;
    3. G step: the updated D judges the same fake_images, labelled real.
       That D is built under a control dependency on the D update, so it
       reads D's weights after the update; only G's variables are updated.
    Returns d_loss, g_loss, d_accuracy, d_real, d_fake (common.gan.FIELDS),
    measured in the D step except g_loss."""
    fake_images = generator(z, is_training=True)
    bn_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)            # G's only: D has no BatchNorm

    with tf.name_scope("d_step"):
        real_logits = discriminator(real_images)
        fake_logits = discriminator(tf.stop_gradient(fake_images), reuse=True)
        d_loss = discriminator_loss(real_logits, fake_logits, ls_epsilon)
        d_train_op = d_optimizer.minimize(d_loss, var_list=tf.trainable_variables("discriminator/"))

    with tf.name_scope("g_step"):
        with tf.control_dependencies([d_train_op]):   # D's weights are read after its update
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


# ---- Class API ----
class GAN:
    """The GAN in the DCGAN's class API (reference document
    dcgan_keras_class_api.md), on NumPy NHWC arrays.

    GAN(name, z_dim=100, img_shape=(28, 28, 1)) builds the networks and
    their optimizers in a graph of its own, with a session.  Images given
    to it are pixels in [0, 1] or [0, 255] (NHWC); images it returns are
    pixels in [0, 1].  Noise is z ~ U(-1, 1) (DESIGN.md; the original drew
    N(0, 1)).  Keyword-only extras: ``seed`` (weights, z_fixed_for_sample
    and every z it draws), ``lr`` and ``device`` ('auto', 'cpu', 'gpu').

    Public attributes for scripts and tests: ``generator``,
    ``discriminator`` (the network functions), ``g_optimizer``,
    ``d_optimizer``, ``z_sampler``; and, TF1's own, ``graph``, ``sess``,
    ``g_variables``, ``d_variables`` (each network's model variables,
    BatchNorm moving statistics included) and ``optimizer_saver`` (a Saver
    of both Adams' moments and beta powers).

    The DCGAN of dcgan_tf_slim.py is this class with other networks: it
    overrides QUESTION, model_info, _make_networks and the two layout
    conversions _to_network and _from_network, nothing else."""

    QUESTION = QUESTION

    def __init__(self, name, z_dim=gan.Z_DIM, img_shape=(28, 28, 1), *, seed=0, lr=2e-4, device="auto"):
        self._name = str(name)
        self._seed = int(seed)
        self._lr = float(lr)
        self.device = pick_device(device)
        self._iterations = 0
        self.sess = None
        self._build(int(z_dim), tuple(int(v) for v in img_shape))

    # -- what a subclass changes ------------------------------------------
    @staticmethod
    def model_info(image_shape, z_dim):
        return model_info(image_shape, z_dim)

    def _make_networks(self, z_dim, img_shape):
        """The generator and the discriminator as graph-building functions,
        ``generator(z, is_training, reuse)`` and ``discriminator(images,
        reuse)``.  Their weights are initialised when the session starts,
        from the graph seed ``seed`` (see _build)."""
        return partial(Generator, image_shape=img_shape), partial(Discriminator, image_shape=img_shape)

    def _to_network(self, images):
        """NHWC NumPy images -> the discriminator's input (NumPy, fed to the graph)."""
        return flatten(np.asarray(images, np.float32))

    def _from_network(self, outputs):
        """The generator's output -> NHWC NumPy images."""
        return unflatten(outputs, self._img_shape)

    # -- building ----------------------------------------------------------
    def _build(self, z_dim, img_shape):
        """A new graph and session: placeholders, the train step, the
        inference graph, the ops that load weights, the optimizers' Saver;
        then the graph is finalised (nothing is added while training)."""
        if len(img_shape) != 3 or min(img_shape) < 1:
            raise UsageError(f"img_shape must be (H, W, C), got {img_shape}")
        self._z_dim, self._img_shape = z_dim, img_shape
        self.generator, self.discriminator = self._make_networks(z_dim, img_shape)
        network_shape = self._to_network(np.zeros((1, *img_shape), np.float32)).shape[1:]
        if self.sess is not None:
            self.sess.close()
        self.graph = tf.Graph()
        with self.graph.as_default(), tf.device(self.device):
            tf.set_random_seed(self._seed)    # the initial weights
            real_images = tf.placeholder(tf.float32, (None, *network_shape), name="real_images")
            z = tf.placeholder(tf.float32, (None, z_dim), name="z")
            ls_epsilon = tf.placeholder(tf.float32, (), name="ls_epsilon")
            self.g_optimizer = tf.train.AdamOptimizer(self._lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                                                      epsilon=ADAM_EPS, name="g_adam")
            self.d_optimizer = tf.train.AdamOptimizer(self._lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                                                      epsilon=ADAM_EPS, name="d_adam")
            self._train_step = make_train_step(self.generator, self.discriminator, self.g_optimizer,
                                               self.d_optimizer, real_images, z, ls_epsilon)
            self._inference = inference_graph(self.generator, self.discriminator, z_dim, network_shape)
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
        values = self._train_step(self.sess, self._to_network(real_images), np.asarray(z, np.float32),
                                  float(ls_epsilon))
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
    def generator_output(self, z, batch_size=256):
        """z -> G(z) in [-1, 1] (the network's own range), NHWC NumPy, in
        inference mode.  generate() is this mapped to pixels in [0, 1]."""
        z = gan.check_z(z, self._z_dim)
        model = self._inference
        out = [self._from_network(self.sess.run(model.fake_images, feed_dict={model.z: z[i:i + batch_size]}))
               for i in range(0, len(z), batch_size)]
        return np.concatenate(out)

    def discriminator_logits(self, images, batch_size=256):
        """NHWC images in [-1, 1] -> D's logits (N, 1), in inference mode.
        discriminate() is the sigmoid of this for pixels in [0, 1] or [0, 255]."""
        model = self._inference
        out = [self.sess.run(model.logits, feed_dict={model.images: self._to_network(images[i:i + batch_size])})
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
        """Write G's and D's weights (NumPy .npz archives of the model
        variables by their graph names, BatchNorm moving statistics
        included) and the variables file (JSON: name, z_dim, img_shape,
        z_fixed_for_sample) into ``files_dir``.  Empty names default to
        <name>_g.npz, <name>_d.npz, <name>_val.json.  Returns the three
        paths."""
        files_dir = Path(files_dir)
        files_dir.mkdir(parents=True, exist_ok=True)
        g_name, d_name, val_name = gan.file_names(self._name, g_file_name, d_file_name, val_file_name, WEIGHTS_SUFFIX)
        for variables, file_name in ((self.g_variables, g_name), (self.d_variables, d_name)):
            values = self.sess.run(variables)
            with open(files_dir / file_name, "wb") as f:     # a file object: np.savez adds no suffix
                np.savez(f, **{v.op.name: value for v, value in zip(variables, values)})
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
        values = {}
        for path in (files_dir / g_name, files_dir / d_name):
            try:
                with np.load(path, allow_pickle=False) as archive:
                    values.update({key: archive[key] for key in archive.files})
            except FileNotFoundError:
                raise UsageError(f"weights file {path} does not exist") from None
            except (OSError, ValueError, zipfile.BadZipFile) as err:
                raise UsageError(f"{path} is not a weights file written by save_me ({type(err).__name__})") from None
        self._build(z_dim, img_shape)
        wanted = {name: tuple(value.shape) for name, (value, _) in self._assign.items()}
        got = {key: tuple(value.shape) for key, value in values.items()}
        if got != wanted:
            missing = sorted(set(wanted) - set(got))
            unexpected = sorted(set(got) - set(wanted))
            shapes = sorted(k for k in set(got) & set(wanted) if got[k] != wanted[k])
            detail = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected
                      else f"{shapes[0]} has shape {got[shapes[0]]}, the model {wanted[shapes[0]]}")
            raise UsageError(f"the weights in {files_dir} do not fit a {self.QUESTION} of img_shape {img_shape}, "
                             f"z_dim {z_dim}: {detail}")
        self.sess.run([op for _, op in self._assign.values()],
                      feed_dict={value: values[key] for key, (value, _) in self._assign.items()})
        self._name, self._z_fixed = name, z_fixed


# ---- Train ----
def save_checkpoint(run, iteration, model, feed, image_shape, args):
    def write_files(folder):
        model.save_me(folder, G_FILE, D_FILE, VAL_FILE)
        # TF's own format (optimizers.ckpt.index + .data): both Adams' moments
        # and beta powers.  No TensorFlow random state to keep: the graph draws
        # random numbers only for the initial weights; z and the minibatches
        # come from NumPy (z_sampler and feed, in meta.json).  The Saver works
        # in its graph: outside one, TF 2 runs eagerly and would not find it.
        with model.graph.as_default():
            model.optimizer_saver.save(model.sess, str(folder / OPT_FILE), write_meta_graph=False,
                                       write_state=False)
    run.save_checkpoint(iteration, write_files, {
        "model": model.model_info(image_shape, model.z_dim), "feed": feed.state_dict(),
        "z_sampler": model.z_sampler.state_dict(), "dataset": args.dataset,
        "label_smoothing": args.label_smoothing})


def load_checkpoint(folder, meta, model, feed):
    """Continue a run: weights, optimizers, RNG states and data order."""
    model.change_me(folder, G_FILE, D_FILE, VAL_FILE)
    try:
        with model.graph.as_default():
            model.optimizer_saver.restore(model.sess, str(folder / OPT_FILE))
    except (tf.errors.OpError, ValueError):
        raise UsageError(f"{folder / OPT_FILE} is not a TF checkpoint of this model's optimizers") from None
    model.z_sampler.load_state_dict(meta["z_sampler"])
    feed.load_state_dict(meta["feed"])


def train(args, model_class=None):
    """Train ``model_class`` (GAN here; dcgan_tf_slim.py passes its DCGAN)."""
    model_class = model_class or GAN
    run = runs.Run(model_class.QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    info = model_class.model_info(image_shape, args.z_dim)
    cli.seed_everything(args.seed)   # TF's graph seed is set by the model (tf.set_random_seed)
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
