"""Variational AutoEncoder (VAE) -- Keras 3

Question: encode a 28x28x1 MNIST digit (pixels in [0, 1]) with Dense(256)
+ReLU into the mean and the log-variance of a 2-D Gaussian latent code,
draw z = mu + eps * exp(logvar / 2) with eps ~ N(0, I) (the
reparameterisation trick), decode z with Dense(256)+ReLU, Dense(784)
+sigmoid, and train on the negative ELBO: binary cross-entropy summed over
the pixels plus KL(q(z|x) || N(0, I)) in closed form (Adam lr 1e-3,
batch 256, 10000 iterations).  The test writes test digits beside their
reconstructions, digits decoded from z ~ N(0, I), and prints the test-set
negative ELBO and its two terms.
Framework: Keras 3 on the TensorFlow backend (NHWC).
Paper: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014
(arXiv:1312.6114), appendix B for the closed-form KL.
How to run:
    python scripts_keras/vae_keras.py             # train, then test
    python scripts_keras/vae_keras.py --test      # test the last checkpoint
    python scripts_keras/vae_keras.py --latent-dim 8
    python scripts_keras/vae_keras.py --data-dir ../shared/datasets/mnist10k   # offline
    then: scripts_keras/vae_latent_show_keras.py, scripts_keras/vae_latent_change_keras.py
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, cli, compat, latent, pictures, recon, runs  # noqa: E402

keras = compat.import_keras()  # Keras 3, TensorFlow backend, quiet TF start-up
import tensorflow as tf  # noqa: E402  (the backend: tf.function for the train step, GPU query)
from keras import layers  # noqa: E402

QUESTION = "vae"
FRAMEWORK = "keras"

# ---- Config ----
VALUE_RANGE = (0.0, 1.0)    # pixels in [0, 1]: the targets of the binary cross-entropy
HIDDEN = 256                # the hidden layer of the encoder and of the decoder
LATENT_DIM = 2              # the question's latent size (--latent-dim)
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8             # as in torch, set explicitly (Keras' default is 1e-7); Keras adds it
                            # before the bias correction, PyTorch after (a tiny difference)
JIT_COMPILE = True          # XLA fuses the train step: this small MLP step is bound by op launches
SAMPLE_COUNT = 64           # digits in each training sample picture (a fixed z batch)
TEST_SAMPLE_COUNT = 100     # digits in test/samples.png
FIELDS = ["loss", "bce", "kl"]   # the metrics.csv columns and the curves: the negative ELBO and its terms


def add_flags(group):
    group.add_argument("--latent-dim", type=cli.positive_int, default=LATENT_DIM,
                       help="size of z (the latent scripts need 2)")


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Variational autoencoder, an MLP (Keras 3).",
                              dataset="mnist", iters=10000, batch_size=256, lr=1e-3,
                              sample_every=500, checkpoint_every=1000, extra=add_flags)
    return cli.parse_args(parser, argv)


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC in [0, 1] (common loader, same in every framework)."""
    return recon.load_images(args, split, VALUE_RANGE)


def flatten(images):
    """NHWC -> (N, H*W*C).  The MLP sees the pixel vector in the common
    NHWC order, so its weights match those of the other versions 1:1."""
    return images.reshape(len(images), -1)


# ---- Model ----
# Encoder, Decoder and VAE are functions named like the PyTorch classes; each
# returns a Keras model, and the layers carry the PyTorch attribute names.
def init_weights():
    # Glorot-uniform weights, zero biases: the same explicit choice in all
    # four versions (each framework's default initialiser differs).
    return {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}


def Encoder(in_features, latent_dim):
    """x -> (mu, logvar) of q(z|x) = N(mu, diag(exp(logvar)))."""
    x = keras.Input(shape=(in_features,), name="x")                                   # (N, H*W*C)
    h = layers.Dense(HIDDEN, activation="relu", name="hidden", **init_weights())(x)  # (N, 256)
    mu = layers.Dense(latent_dim, name="mu", **init_weights())(h)                     # (N, Z)
    logvar = layers.Dense(latent_dim, name="logvar", **init_weights())(h)             # (N, Z)
    return keras.Model(x, [mu, logvar], name="encoder")


def Decoder(latent_dim, out_features):
    """z -> the logits of the pixels; sigmoid(logits) is the decoded image.
    The sigmoid is applied by `decode` for pictures and inside the loss
    (binary cross-entropy on logits, which never takes log(0))."""
    return keras.Sequential([
        keras.Input(shape=(latent_dim,)),                                  # (N, Z)
        layers.Dense(HIDDEN, activation="relu", **init_weights()),        # (N, 256)
        layers.Dense(out_features, **init_weights()),                     # (N, H*W*C) logits
        # + sigmoid -> pixels in [0, 1]
    ], name="decoder")


def reparameterize(mu, logvar, eps):
    """z = mu + eps * sigma with sigma = exp(logvar / 2): a sample of
    q(z|x) through which gradients reach mu and logvar (eps ~ N(0, I) is
    drawn outside, so the same eps gives the same z in every framework)."""
    return mu + eps * keras.ops.exp(0.5 * logvar)


def VAE(image_shape, latent_dim):
    """[x (N, H*W*C) in [0, 1], eps (N, Z)] -> [logits, mu, logvar]."""
    in_features = int(np.prod(image_shape))
    encoder = Encoder(in_features, latent_dim)
    decoder = Decoder(latent_dim, in_features)
    x = keras.Input(shape=(in_features,), name="x")     # (N, H*W*C)
    eps = keras.Input(shape=(latent_dim,), name="eps")  # (N, Z)
    mu, logvar = encoder(x)
    z = reparameterize(mu, logvar, eps)                 # keras.ops on symbolic tensors: a graph node
    return keras.Model([x, eps], [decoder(z), mu, logvar], name="vae")


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
    # keras.ops.binary_crossentropy is per element (no reduction); from_logits
    # is tf.nn.sigmoid_cross_entropy_with_logits, the stable form above
    bce = keras.ops.binary_crossentropy(x, logits, from_logits=True)
    return keras.ops.mean(keras.ops.sum(bce, axis=1))


def kl_term(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) in closed form,
    -1/2 * sum(1 + logvar - mu^2 - exp(logvar)) over the latent
    dimensions, mean over the batch."""
    return keras.ops.mean(-0.5 * keras.ops.sum(1.0 + logvar - keras.ops.square(mu) - keras.ops.exp(logvar),
                                               axis=1))


def vae_loss(logits, x, mu, logvar):
    """The negative ELBO = reconstruction_term + kl_term; returns
    (loss, bce, kl) so that both terms can be logged."""
    bce = reconstruction_term(logits, x)
    kl = kl_term(mu, logvar)
    return bce + kl, bce, kl


# ---- Train step ----
def make_train_step(model, optimizer):
    optimizer.build(model.trainable_variables)  # Adam's m and v, made here rather than in the graph

    # One TensorFlow graph, traced once on the first call (every minibatch
    # has the same shape and dtype, so it is never traced again).
    @tf.function(jit_compile=JIT_COMPILE)
    def graph_step(real_images, eps):
        with tf.GradientTape() as tape:
            logits, mu, logvar = model([real_images, eps], training=True)
            loss, bce, kl = vae_loss(logits, real_images, mu, logvar)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return keras.ops.stack([loss, bce, kl])

    def train_step(real_images, eps):
        """One Adam step on the negative ELBO of a batch: real_images
        (N, H*W*C) and eps (N, Z), both NumPy."""
        terms = graph_step(real_images, eps).numpy()   # one device -> host copy
        loss, bce, kl = terms.tolist()
        return {"loss": loss, "bce": bce, "kl": kl}
    return train_step


# Inference: plain batched eager calls (a handful per run, not worth tracing
# a graph for), with training=False.
def encode(model, images, batch_size=1000):
    """NHWC images -> (mu, logvar), each (N, Z) NumPy, in inference mode."""
    encoder = model.get_layer("encoder")
    parts = [encoder(flatten(images[i:i + batch_size]), training=False)
             for i in range(0, len(images), batch_size)]
    return tuple(np.concatenate([keras.ops.convert_to_numpy(t) for t in p]) for p in zip(*parts))


def decode(model, z, image_shape, batch_size=1000):
    """(N, Z) NumPy codes -> NHWC images in [0, 1] (sigmoid of the logits)."""
    decoder = model.get_layer("decoder")
    z = np.asarray(z, np.float32)
    outputs = [keras.ops.convert_to_numpy(keras.ops.sigmoid(decoder(z[i:i + batch_size], training=False)))
               for i in range(0, len(z), batch_size)]
    return np.concatenate(outputs).reshape((len(z), *image_shape))


def evaluate(model, images, eps, batch_size=1000):
    """The negative ELBO and its two terms, means per image over all
    ``images``, one z = mu + eps * sigma per image (``eps`` (N, Z) NumPy)."""
    sums = np.zeros(3)
    for i in range(0, len(images), batch_size):
        x = flatten(images[i:i + batch_size])
        logits, mu, logvar = model([x, eps[i:i + batch_size]], training=False)
        terms = keras.ops.convert_to_numpy(keras.ops.stack(vae_loss(logits, x, mu, logvar)))
        sums += terms.astype(np.float64) * len(x)
    loss, bce, kl = sums / len(images)
    return {"loss": loss, "bce": bce, "kl": kl}


def save_checkpoint(run, iteration, model, optimizer, feed, eps_rng, image_shape, latent_dim, dataset):
    def write_files(folder):
        model.save_weights(folder / "model.weights.h5")
        optimizer_state = {}
        optimizer.save_own_variables(optimizer_state)  # Adam's m, v and step, the learning rate
        np.savez(folder / "optimizer.npz", **optimizer_state)
    run.save_checkpoint(iteration, write_files, {"model": model_info(image_shape, latent_dim),
                                                 "feed": feed.state_dict(), "dataset": dataset,
                                                 "eps_rng": eps_rng.bit_generator.state})


def load_checkpoint(folder, model, optimizer=None):
    with runs.reading(folder / "model.weights.h5"):   # a broken file: one line naming it
        model.load_weights(folder / "model.weights.h5")
    if optimizer is not None:
        optimizer.build(model.trainable_variables)  # create Adam's m and v, then fill them
        optimizer_state = runs.load_npz(folder / "optimizer.npz")   # never unpickles
        with runs.reading(folder / "optimizer.npz"):
            optimizer.load_own_variables(optimizer_state)


# ---- Train ----
def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    keras.utils.set_random_seed(args.seed)   # the initial weights
    eps_rng = latent.eps_generator(args.seed)   # the eps of every training step, checkpointed
    feed = batching.Feed(data.images, args.batch_size, args.seed,
                         augment.for_dataset(args.dataset, VALUE_RANGE))   # none for the digit sets
    with keras.device(device):   # every variable and op of the run goes there
        model = VAE(image_shape, args.latent_dim)
        optimizer = keras.optimizers.Adam(learning_rate=args.lr, beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1],
                                          epsilon=ADAM_EPS)
        start = 0
        if args.resume:
            folder, meta = run.load_checkpoint_meta(args.resume, model_info(image_shape, args.latent_dim))
            load_checkpoint(folder, model, optimizer)
            feed.load_state_dict(meta["feed"])
            eps_rng.bit_generator.state = meta["eps_rng"]
            start = meta["iteration"]
            if start >= args.iters:
                print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
                return
        run.prepare_training(args, resume=bool(args.resume))
        train_step = make_train_step(model, optimizer)
        fixed_z = latent.gaussian(SAMPLE_COUNT, args.latent_dim, args.seed, latent.SAMPLES)  # the same z each time
        with runs.Progress(run, start, args.iters, FIELDS, args.log_every, resume=bool(args.resume)) as progress:
            for iteration in progress:
                real_images = flatten(feed.next())
                # eps ~ N(0, I) from the checkpointed NumPy generator (latent.eps_generator):
                # the same eps in every framework, and a resumed run draws what an
                # uninterrupted one would
                eps = eps_rng.standard_normal((len(real_images), args.latent_dim)).astype(np.float32)
                losses = train_step(real_images, eps)
                progress.log(iteration, losses)
                if progress.due(iteration, args.sample_every):
                    pictures.save_grid(decode(model, fixed_z, image_shape), run.sample_path(iteration),
                                       nrow=8, value_range=VALUE_RANGE, scale=2, title=f"iteration {iteration}")
                if progress.due(iteration, args.checkpoint_every):
                    save_checkpoint(run, iteration, model, optimizer, feed, eps_rng, image_shape, args.latent_dim,
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
    with keras.device(device):
        model = VAE(image_shape, args.latent_dim)
        load_checkpoint(folder, model)
        # one z per test image, eps from NumPy: the same in every framework
        eps = latent.gaussian(len(data.images), args.latent_dim, args.seed, latent.TEST_EPS)
        terms = evaluate(model, data.images, eps)
        mu, _ = encode(model, data.images)
        reconstructions = decode(model, mu, image_shape)   # decoded from the means
        z = latent.gaussian(TEST_SAMPLE_COUNT, args.latent_dim, args.seed, latent.TEST_SAMPLES)
        samples = decode(model, z, image_shape)
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
