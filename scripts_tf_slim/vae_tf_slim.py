"""Variational AutoEncoder (VAE) -- TF-Slim

Question: encode a 28x28x1 MNIST digit (pixels in [0, 1]) with Dense(256)
+ReLU into the mean and the log-variance of a 2-D Gaussian latent code,
draw z = mu + eps * exp(logvar / 2) with eps ~ N(0, I) (the
reparameterisation trick), decode z with Dense(256)+ReLU, Dense(784)
+sigmoid, and train on the negative ELBO: binary cross-entropy summed over
the pixels plus KL(q(z|x) || N(0, I)) in closed form (Adam lr 1e-3,
batch 256, 10000 iterations).  The test writes test digits beside their
reconstructions, digits decoded from z ~ N(0, I), and prints the test-set
negative ELBO and its two terms.
Framework: TF-Slim (TensorFlow 1-style graph and session through
tf.compat.v1).
Paper: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014
(arXiv:1312.6114), appendix B for the closed-form KL.
How to run:
    python scripts_tf_slim/vae_tf_slim.py             # train, then test
    python scripts_tf_slim/vae_tf_slim.py --test      # test the last checkpoint
    python scripts_tf_slim/vae_tf_slim.py --latent-dim 8
    python scripts_tf_slim/vae_tf_slim.py --data-dir ../shared/datasets/mnist10k   # offline
    then: scripts_tf_slim/vae_latent_show_tf_slim.py, scripts_tf_slim/vae_latent_change_tf_slim.py
"""
# ---- Setup ----
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, cli, compat, latent, pictures, recon, runs  # noqa: E402

tf, slim = compat.import_tf_slim()  # tf is tensorflow.compat.v1 (graphs and sessions)

QUESTION = "vae"
FRAMEWORK = "tf_slim"

# ---- Config ----
VALUE_RANGE = (0.0, 1.0)    # pixels in [0, 1]: the targets of the binary cross-entropy
HIDDEN = 256                # the hidden layer of the encoder and of the decoder
LATENT_DIM = 2              # the question's latent size (--latent-dim)
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8             # tf.v1 default, set explicitly (Keras' default is 1e-7); TF adds
                            # it before the bias correction, PyTorch after (a tiny difference)
SAMPLE_COUNT = 64           # digits in each training sample picture (a fixed z batch)
TEST_SAMPLE_COUNT = 100     # digits in test/samples.png
FIELDS = ["loss", "bce", "kl"]   # the metrics.csv columns and the curves: the negative ELBO and its terms


def add_flags(group):
    group.add_argument("--latent-dim", type=cli.positive_int, default=LATENT_DIM,
                       help="size of z (the latent scripts need 2)")


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Variational autoencoder, an MLP (TF-Slim).",
                              dataset="mnist", iters=10000, batch_size=256, lr=1e-3,
                              sample_every=500, checkpoint_every=1000, extra=add_flags)
    return cli.parse_args(parser, argv)


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


def make_session(graph):
    # soft placement: the few ops without a GPU kernel (checkpoint I/O) run on the CPU
    return tf.Session(graph=graph, config=tf.ConfigProto(allow_soft_placement=True))


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC in [0, 1] (common loader, same in every framework)."""
    return recon.load_images(args, split, VALUE_RANGE)


def flatten(images):
    """NHWC -> (N, H*W*C).  The MLP sees the pixel vector in the common
    NHWC order, so its weights match those of the other versions 1:1."""
    return images.reshape(len(images), -1)


# ---- Model ----
# TF1 style: the networks are functions that add layers to the current graph
# (named like the classes of the other versions); variable scopes hold the weights.
def init_weights():
    # Glorot-uniform weights, zero biases: the same explicit choice in all
    # four versions (each framework's default initialiser differs).
    return slim.arg_scope([slim.fully_connected],
                          weights_initializer=tf.glorot_uniform_initializer(),
                          biases_initializer=tf.zeros_initializer())


def Encoder(x, latent_dim, reuse=False):
    """x -> (mu, logvar) of q(z|x) = N(mu, diag(exp(logvar)))."""
    with tf.variable_scope("encoder", reuse=reuse), init_weights():
        h = slim.fully_connected(x, HIDDEN, activation_fn=tf.nn.relu, scope="hidden")        # (N, 256)
        mu = slim.fully_connected(h, latent_dim, activation_fn=None, scope="mu")             # (N, Z)
        logvar = slim.fully_connected(h, latent_dim, activation_fn=None, scope="logvar")     # (N, Z)
    return mu, logvar


def Decoder(z, out_features, reuse=False):
    """z -> the logits of the pixels; sigmoid(logits) is the decoded image.
    The sigmoid is applied by `decode` for pictures and inside the loss
    (binary cross-entropy on logits, which never takes log(0))."""
    with tf.variable_scope("decoder", reuse=reuse), init_weights():
        h = slim.fully_connected(z, HIDDEN, activation_fn=tf.nn.relu, scope="hidden")        # (N, 256)
        logits = slim.fully_connected(h, out_features, activation_fn=None, scope="logits")   # (N, H*W*C) logits
    return logits


def reparameterize(mu, logvar, eps):
    """z = mu + eps * sigma with sigma = exp(logvar / 2): a sample of
    q(z|x) through which gradients reach mu and logvar (eps ~ N(0, I) is
    drawn outside, so the same eps gives the same z in every framework)."""
    return mu + eps * tf.exp(0.5 * logvar)


def VAE(x, eps, latent_dim, reuse=False):
    """Adds the network to the current graph: x (N, H*W*C) in [0, 1],
    eps (N, Z) -> (logits, mu, logvar); ``reuse=True`` shares the
    variables made by an earlier call."""
    in_features = int(x.shape[1])
    mu, logvar = Encoder(x, latent_dim, reuse)
    z = reparameterize(mu, logvar, eps)
    return Decoder(z, in_features, reuse), mu, logvar


def inference_graph(image_shape, latent_dim, reuse=False):
    """The placeholders and outputs that encode, decode and evaluate run:
    ``inputs`` (flattened images) and ``eps`` -> ``mu``, ``logvar`` and the
    loss ``terms`` (negative ELBO, bce, kl stacked); ``z`` -> ``decoded``
    images in [0, 1] (N, H*W*C)."""
    in_features = int(np.prod(image_shape))
    inputs = tf.placeholder(tf.float32, (None, in_features), name="inputs")
    eps = tf.placeholder(tf.float32, (None, latent_dim), name="eps")
    z = tf.placeholder(tf.float32, (None, latent_dim), name="z")
    logits, mu, logvar = VAE(inputs, eps, latent_dim, reuse=reuse)
    decoded = tf.sigmoid(Decoder(z, in_features, reuse=True))
    return SimpleNamespace(inputs=inputs, eps=eps, mu=mu, logvar=logvar,
                           terms=tf.stack(vae_loss(logits, inputs, mu, logvar)), z=z, decoded=decoded)


def model_info(image_shape, latent_dim):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "hidden": HIDDEN, "latent_dim": int(latent_dim)}


# ---- Losses ----
# Both terms are summed per sample (over pixels, over latent dimensions)
# and averaged over the batch: the loss is the negative ELBO per image, in
# nats.  (A mean over pixels instead would weight the KL term 784 times
# more and blur the digits.)
def reconstruction_term(logits, x):
    """-log p(x|z): binary cross-entropy of the targets x in [0, 1] and the
    decoded pixels sigmoid(logits), summed over pixels, mean over the batch.
    Computed from the logits, max(l, 0) - x * l + log(1 + exp(-|l|)),
    which is exact where sigmoid(l) rounds to 0 or 1."""
    return tf.reduce_mean(tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), axis=1))


def kl_term(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) in closed form,
    -1/2 * sum(1 + logvar - mu^2 - exp(logvar)) over the latent
    dimensions, mean over the batch."""
    return tf.reduce_mean(-0.5 * tf.reduce_sum(1.0 + logvar - tf.square(mu) - tf.exp(logvar), axis=1))


def vae_loss(logits, x, mu, logvar):
    """The negative ELBO = reconstruction_term + kl_term; returns
    (loss, bce, kl) so that both terms can be logged."""
    bce = reconstruction_term(logits, x)
    kl = kl_term(mu, logvar)
    return bce + kl, bce, kl


# ---- Train step ----
def make_train_step(image_shape, latent_dim, optimizer):
    """Adds the model, the loss and the update op to the graph, once; the
    returned function runs one training iteration as one ``sess.run``."""
    real_images = tf.placeholder(tf.float32, (None, int(np.prod(image_shape))), name="real_images")
    eps = tf.placeholder(tf.float32, (None, latent_dim), name="train_eps")
    logits, mu, logvar = VAE(real_images, eps, latent_dim)
    loss, bce, kl = vae_loss(logits, real_images, mu, logvar)
    train_op = optimizer.minimize(loss)
    terms = tf.stack([loss, bce, kl])

    def train_step(sess, real_images_batch, eps_batch):
        """One Adam step on the negative ELBO of a batch: real_images
        (N, H*W*C) and eps (N, Z), both NumPy."""
        feed_dict = {real_images: real_images_batch, eps: eps_batch}
        _, terms_value = sess.run([train_op, terms], feed_dict)   # the step and the terms in one run
        loss, bce, kl = terms_value.tolist()
        return {"loss": loss, "bce": bce, "kl": kl}
    return train_step


def encode(sess, model, images, batch_size=1000):
    """NHWC images -> (mu, logvar), each (N, Z) NumPy, through the inference graph."""
    parts = [sess.run((model.mu, model.logvar), feed_dict={model.inputs: flatten(images[i:i + batch_size])})
             for i in range(0, len(images), batch_size)]
    return tuple(np.concatenate(p) for p in zip(*parts))


def decode(sess, model, z, image_shape, batch_size=1000):
    """(N, Z) NumPy codes -> NHWC images in [0, 1] (sigmoid of the logits)."""
    z = np.asarray(z, np.float32)
    outputs = [sess.run(model.decoded, feed_dict={model.z: z[i:i + batch_size]})
               for i in range(0, len(z), batch_size)]
    return np.concatenate(outputs).reshape((len(z), *image_shape))


def evaluate(sess, model, images, eps, batch_size=1000):
    """The negative ELBO and its two terms, means per image over all
    ``images``, one z = mu + eps * sigma per image (``eps`` (N, Z) NumPy)."""
    sums = np.zeros(3)
    for i in range(0, len(images), batch_size):
        x = flatten(images[i:i + batch_size])
        terms = sess.run(model.terms, feed_dict={model.inputs: x, model.eps: eps[i:i + batch_size]})
        sums += terms.astype(np.float64) * len(x)
    loss, bce, kl = sums / len(images)
    return {"loss": loss, "bce": bce, "kl": kl}


def save_checkpoint(run, iteration, sess, saver, feed, eps_rng, image_shape, latent_dim, dataset):
    def write_files(folder):
        # TF's own format (model.ckpt.index + .data): every variable the
        # saver holds (weights, Adam's moments and beta powers)
        saver.save(sess, str(folder / "model.ckpt"), write_meta_graph=False, write_state=False)
    run.save_checkpoint(iteration, write_files, {"model": model_info(image_shape, latent_dim),
                                                 "feed": feed.state_dict(), "dataset": dataset,
                                                 "eps_rng": eps_rng.bit_generator.state})


def load_checkpoint(folder, sess, saver):
    with runs.reading(folder / "model.ckpt"):   # a broken file: one line naming it
        saver.restore(sess, str(folder / "model.ckpt"))


# ---- Train ----
def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    eps_rng = latent.eps_generator(args.seed)   # the eps of every training step, checkpointed
    feed = batching.Feed(data.images, args.batch_size, args.seed,
                         augment.for_dataset(args.dataset, VALUE_RANGE))   # none for the digit sets
    with tf.Graph().as_default() as graph, tf.device(device):
        tf.set_random_seed(args.seed)   # the initial weights
        optimizer = tf.train.AdamOptimizer(args.lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], epsilon=ADAM_EPS)
        train_step = make_train_step(image_shape, args.latent_dim, optimizer)
        model = inference_graph(image_shape, args.latent_dim, reuse=True)  # the same variables, for the samples
        # all global variables: the weights, Adam's moments and its beta powers,
        # so that --resume continues the same run
        saver = tf.train.Saver(max_to_keep=None)  # runs.Run prunes old checkpoints
        init_op = tf.global_variables_initializer()
    graph.finalize()  # nothing is added to the graph during training
    with make_session(graph) as sess:
        sess.run(init_op)
        start = 0
        if args.resume:
            folder, meta = run.load_checkpoint_meta(args.resume, model_info(image_shape, args.latent_dim))
            load_checkpoint(folder, sess, saver)
            feed.load_state_dict(meta["feed"])
            eps_rng.bit_generator.state = meta["eps_rng"]
            start = meta["iteration"]
            if start >= args.iters:
                print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
                return
        run.prepare_training(args, resume=bool(args.resume))
        fixed_z = latent.gaussian(SAMPLE_COUNT, args.latent_dim, args.seed, latent.SAMPLES)  # the same z each time
        with runs.Progress(run, start, args.iters, FIELDS, args.log_every, resume=bool(args.resume)) as progress:
            for iteration in progress:
                real_images = flatten(feed.next())
                # eps ~ N(0, I) from the checkpointed NumPy generator (latent.eps_generator):
                # the same eps in every framework, and a resumed run draws what an
                # uninterrupted one would
                eps = eps_rng.standard_normal((len(real_images), args.latent_dim)).astype(np.float32)
                losses = train_step(sess, real_images, eps)
                progress.log(iteration, losses)
                if progress.due(iteration, args.sample_every):
                    pictures.save_grid(decode(sess, model, fixed_z, image_shape), run.sample_path(iteration),
                                       nrow=8, value_range=VALUE_RANGE, scale=2, title=f"iteration {iteration}")
                if progress.due(iteration, args.checkpoint_every):
                    save_checkpoint(run, iteration, sess, saver, feed, eps_rng, image_shape, args.latent_dim,
                                    args.dataset)
                    if progress.plots_due(iteration):
                        pictures.plot_curves(run.metrics_path, run.root / "curves.png", FIELDS, logy=True,
                                             title=f"{QUESTION} ({FRAMEWORK})")


# ---- Test ----
def test(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "test")
    image_shape = data.images.shape[1:]
    folder, _ = run.load_checkpoint_meta(args.checkpoint, model_info(image_shape, args.latent_dim))
    with tf.Graph().as_default() as graph, tf.device(device):
        model = inference_graph(image_shape, args.latent_dim)
        # only the weights: the checkpoint also holds Adam's variables, not needed here
        saver = tf.train.Saver(slim.get_model_variables())
    graph.finalize()
    with make_session(graph) as sess:
        load_checkpoint(folder, sess, saver)
        # one z per test image, eps from NumPy: the same in every framework
        eps = latent.gaussian(len(data.images), args.latent_dim, args.seed, latent.TEST_EPS)
        terms = evaluate(sess, model, data.images, eps)
        mu, _ = encode(sess, model, data.images)
        reconstructions = decode(sess, model, mu, image_shape)   # decoded from the means
        z = latent.gaussian(TEST_SAMPLE_COUNT, args.latent_dim, args.seed, latent.TEST_SAMPLES)
        samples = decode(sess, model, z, image_shape)
    return recon.report_vae_test(run, data, reconstructions, samples, terms, args.latent_dim, VALUE_RANGE)


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
