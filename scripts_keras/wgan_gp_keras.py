"""WGAN with gradient penalty (WGAN-GP) -- Keras 3

Question: generate 32x32 images (CIFAR-10 by default; the newt photos are
resized and 28x28 digits padded to 32x32) with the Wasserstein loss, the
critic kept 1-Lipschitz by a gradient penalty instead of weight clipping:
    critic_loss = mean f(fake) - mean f(real) + lambda mean_i (||grad f(x_hat_i)|| - 1)^2
with x_hat_i = eps_i x_i + (1 - eps_i) G(z_i), eps_i ~ U(0, 1) one per
sample, the norm per sample over all of H, W and C; lambda 10.  Networks:
the paper's CIFAR-10 ResNet (its released gan_cifar_resnet.py), width 128,
z ~ N(0, 1) of size 128.  G: Dense(4x4x128) -> 3 up-blocks (BN, ReLU,
nearest x2, conv3x3; BN, ReLU, conv3x3; shortcut x2 + conv1x1) -> BN,
ReLU, conv3x3(C), tanh.  Critic: a first block (conv3x3, LeakyReLU,
conv3x3, 2x2 mean-pool; shortcut mean-pool + conv1x1), a down block, two
plain blocks, LeakyReLU, global mean over space, Dense(1).  No BatchNorm in
the critic (the penalty is per sample, BatchNorm would mix the samples):
its residual blocks use layer norm (per sample over H, W, C, per-channel
gain and bias) and LeakyReLU 0.2.  n_critic 5, each critic update on a
fresh real batch, z and eps; Adam lr 1e-4, betas (0, 0.9), batch 64.
Framework: Keras 3 on the TensorFlow backend (NHWC, like common/); the penalty's
gradient of a gradient is a nested tf.GradientTape, so TensorFlow only.
Paper: Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, "Improved
Training of Wasserstein GANs", 2017 (arXiv:1704.00028), Algorithm 1.
How to run:
    python scripts_keras/wgan_gp_keras.py                  # CIFAR-10, train then test
    python scripts_keras/wgan_gp_keras.py --dataset mnist --data-dir ../shared/datasets/mnist10k --width 32
    python scripts_keras/wgan_gp_keras.py --critic-norm none   # the released code's critic
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, cli, compat, gan, runs, wgan  # noqa: E402

keras = compat.import_keras()  # Keras 3, TensorFlow backend, quiet TF start-up
import tensorflow as tf  # noqa: E402  (the backend: tf.function and nested GradientTapes for the train step)
from keras import layers  # noqa: E402

QUESTION = "wgan_gp"
FRAMEWORK = "keras"


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).
FIELDS = wgan.FIELDS[QUESTION]  # metrics.csv columns (common/wgan.py says what each is)
NOISE = "normal"                # z ~ N(0, 1)
Z_DIM = 128
START = 4                       # G's Dense layer makes a 4x4 map; three x2 blocks make 32x32
LEAKY_SLOPE = 0.2               # the critic's LeakyReLU slope (G uses ReLU)
BN_EPS = 1e-5                   # G's BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
                                # (the running variance takes the unbiased batch variance, except in
                                # Keras 3, which takes the biased one: a factor n/(n-1), no switch)
LN_EPS = 1e-5                   # the critic's layer norm eps
# Weights: Glorot-uniform (limit sqrt(6 / (fan_in + fan_out)), fans counting the kernel's
# taps), zero biases, norm gains 1 and offsets 0: one explicit rule in all four versions.
ADAM_BETAS = (0.0, 0.9)         # the paper's Adam: no first-moment averaging
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
                                # (Keras adds it before the bias correction, PyTorch after)
NORM_EPS = 1e-12                # ||g|| = sqrt(sum g^2 + NORM_EPS): finite (and differentiable) where g = 0
JIT_COMPILE = False             # XLA off, as in dcgan_keras.py (README)
TEST_BATCH = 100                # images per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE = "generator.weights.h5", "critic.weights.h5", "optimizers.npz"   # a checkpoint


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "WGAN with gradient penalty, ResNet (Keras 3).",
                              dataset="cifar10", iters=100000, batch_size=64, lr=1e-4, sample_every=500,
                              checkpoint_every=1000, extra=wgan.add_flags(QUESTION, z_dim=Z_DIM))
    return cli.parse_args(parser, argv)


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC 32x32 in [-1, 1] (common loader, same in every framework)."""
    return wgan.load_images(args, split)


# Keras is NHWC like `common`: the images go in as they are (the PyTorch
# and Chainer versions transpose them to NCHW and back here).


# ---- Model ----
# The layers are named after the PyTorch version's modules (blocks_1_norm2
# is blocks.1.norm2 there), so that a weight is found by its name.
def init_weights(rng):
    """Glorot-uniform weights drawn from ``rng`` (a keras.random.SeedGenerator,
    so building a model leaves Keras' global seed alone), zero biases."""
    return {"kernel_initializer": keras.initializers.GlorotUniform(seed=rng), "bias_initializer": "zeros"}


def batch_norm(name):
    """G's BatchNorm over the channels, gamma 1, beta 0, eps 1e-5, decay 0.9."""
    return layers.BatchNormalization(momentum=BN_DECAY, epsilon=BN_EPS, gamma_initializer="ones",
                                      beta_initializer="zeros", name=name)


class LayerNorm(layers.Layer):
    """Layer norm per sample over (H, W, C), eps 1e-5, with a gain (1) and an
    offset (0) per channel: torch's GroupNorm(1, C).  Not Keras' GroupNormalization
    (groups=1): same numbers and gradients, but its tf.nn.moments stops the
    gradient at the mean, which drops a term of the gradient of a gradient where
    the input also feeds a shortcut: a wrong penalty update (tests show it)."""

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="beta")

    def call(self, x):
        mean = keras.ops.mean(x, axis=(1, 2, 3), keepdims=True)                 # (N, 1, 1, 1)
        variance = keras.ops.mean(keras.ops.square(x - mean), axis=(1, 2, 3), keepdims=True)
        return (x - mean) * keras.ops.rsqrt(variance + LN_EPS) * self.gamma + self.beta


def layer_norm(kind, name):
    """The critic's normalisation: LayerNorm, or nothing (``--critic-norm none``)."""
    return LayerNorm(name=name) if kind == "layer" else (lambda x: x)


def conv3x3(channels, rng, name):
    return layers.Conv2D(channels, 3, padding="same", name=name, **init_weights(rng))   # stride 1: pads 1 a side


def conv1x1(channels, rng, name):
    return layers.Conv2D(channels, 1, name=name, **init_weights(rng))


def upsample(x):
    """Nearest-neighbour x2: (N, H, W, C) -> (N, 2H, 2W, C)."""
    return keras.ops.repeat(keras.ops.repeat(x, 2, axis=1), 2, axis=2)


def mean_pool(x):
    """2x2 mean pool, stride 2: (N, H, W, C) -> (N, H/2, W/2, C)."""
    return keras.ops.average_pool(x, 2, strides=2, padding="valid")


def leaky_relu(x):
    return keras.ops.leaky_relu(x, negative_slope=LEAKY_SLOPE)


# The blocks and networks are functions named like the PyTorch classes: a block adds
# its layers to the functional model being built, Generator and Critic return models.
def UpBlock(x, channels, rng, name):
    """G's residual block: (N, H, W, C) -> (N, 2H, 2W, C')."""
    h = batch_norm(name + "_norm1")(x)
    h = conv3x3(channels, rng, name + "_conv1")(upsample(keras.ops.relu(h)))     # BN, ReLU, x2, conv3x3
    h = conv3x3(channels, rng, name + "_conv2")(keras.ops.relu(batch_norm(name + "_norm2")(h)))   # BN, ReLU, conv
    return conv1x1(channels, rng, name + "_shortcut")(upsample(x)) + h            # x2, conv1x1


def FirstBlock(x, channels, rng, name):
    """The critic's first block, on the image: (N, H, W, C) -> (N, H/2, W/2, W')."""
    h = leaky_relu(conv3x3(channels, rng, name + "_conv1")(x))
    h = mean_pool(conv3x3(channels, rng, name + "_conv2")(h))                     # conv, act, conv, pool
    return conv1x1(channels, rng, name + "_shortcut")(mean_pool(x)) + h           # pool, conv1x1


def CriticBlock(x, norm, down, rng, name):
    """The critic's residual block, (LN, LeakyReLU, conv3x3) twice; "down" mean-pools
    after the second conv and in the shortcut (conv1x1 then pool): (N, H, W, C) ->
    (N, H/2, W/2, C); a plain block keeps the size, the identity as shortcut."""
    channels = x.shape[-1]
    h = conv3x3(channels, rng, name + "_conv1")(leaky_relu(layer_norm(norm, name + "_norm1")(x)))
    h = conv3x3(channels, rng, name + "_conv2")(leaky_relu(layer_norm(norm, name + "_norm2")(h)))
    if down:
        return mean_pool(conv1x1(channels, rng, name + "_shortcut")(x)) + mean_pool(h)
    return x + h


def Generator(z_dim, image_shape, width, rng):
    """z (N, z_dim) -> images (N, 32, 32, C) in [-1, 1]."""
    z = keras.Input(shape=(z_dim,))
    x = layers.Dense(START * START * width, name="dense", **init_weights(rng))(z)   # (N, 4*4*width), NHWC order
    x = layers.Reshape((START, START, width))(x)                                  # (N, 4, 4, width)
    for i in range(3):                                                              # 4 -> 8 -> 16 -> 32
        x = UpBlock(x, width, rng, f"blocks_{i}")                                   # (N, 2h, 2w, width)
    x = conv3x3(image_shape[2], rng, "out")(keras.ops.relu(batch_norm("norm")(x)))  # (N, 32, 32, C)
    return keras.Model(z, keras.ops.tanh(x), name="generator")


def Critic(image_shape, width, norm, rng):
    """images (N, 32, 32, C) -> scores f(x) (N, 1), linear."""
    images = keras.Input(shape=tuple(image_shape))
    x = FirstBlock(images, width, rng, "blocks_0")                                  # (N, 16, 16, width)
    x = CriticBlock(x, norm, True, rng, "blocks_1")                                 # (N, 8, 8, width)
    x = CriticBlock(x, norm, False, rng, "blocks_2")                                # (N, 8, 8, width)
    x = CriticBlock(x, norm, False, rng, "blocks_3")                                # (N, 8, 8, width)
    x = keras.ops.mean(leaky_relu(x), axis=(1, 2))                                  # global mean -> (N, width)
    return keras.Model(images, layers.Dense(1, name="dense", **init_weights(rng))(x), name="critic")   # (N, 1)


def model_info(image_shape, z_dim, width, norm):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "noise": NOISE, "width": int(width),
            "critic_norm": norm}


def build_model(image_shape, z_dim, width, norm, seed, lr, device):
    """G, the critic (initialised from ``seed``, G first) and their Adam
    optimizers, Adam's m and v made here (so that a checkpoint can fill them)."""
    with keras.device(device):   # every variable of the model goes there
        rng = keras.random.SeedGenerator(seed)
        generator, critic = Generator(z_dim, image_shape, width, rng), Critic(image_shape, width, norm, rng)
        # Named optimizers: Keras' automatic names (adam, adam_1, ...) count up across models, and a
        # different name in a retraced step can change its last bits, breaking a bit-for-bit resume.
        g_optimizer, c_optimizer = (keras.optimizers.Adam(learning_rate=lr, beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1],
                                                          epsilon=ADAM_EPS, name=f"{prefix}_optimizer")
                                      for prefix in ('g', 'c'))
        g_optimizer.build(generator.trainable_variables)
        c_optimizer.build(critic.trainable_variables)
    return generator, critic, g_optimizer, c_optimizer


# Inference: plain eager calls with training=False (a handful per run, no graph).
def generate(generator, z, device):
    """G(z) in inference mode (BatchNorm's moving statistics), NumPy in and
    out: (N, z_dim) -> images (N, H, W, C) in [-1, 1]."""
    with keras.device(device):
        return np.concatenate([keras.ops.convert_to_numpy(generator(z[i:i + TEST_BATCH], training=False))
                               for i in range(0, len(z), TEST_BATCH)])


def criticize(critic, images, device):
    """The critic's scores (N, 1) of NHWC images, NumPy in and out."""
    with keras.device(device):
        return np.concatenate([keras.ops.convert_to_numpy(critic(images[i:i + TEST_BATCH], training=False))
                               for i in range(0, len(images), TEST_BATCH)])


# ---- Losses ----
def critic_loss(real_scores, fake_scores):
    """mean f(fake) - mean f(real) = -W (the sign convention of common/wgan.py)."""
    return keras.ops.mean(fake_scores) - keras.ops.mean(real_scores)


def generator_loss(fake_scores):
    """-mean f(G(z))."""
    return -keras.ops.mean(fake_scores)


def gradient_norms(critic, real_images, fake_images, eps):
    """||grad_x f(x_hat_i)||_2 per sample, over all of H, W and C, at
    x_hat_i = eps_i x_i + (1 - eps_i) G(z_i) with one eps_i per sample.
    Samples do not interact in the critic (layer norm is per sample), so the
    gradient of sum_i f(x_hat_i) holds every sample's own gradient.  Under an
    outer tape this gradient is recorded too and can be differentiated again
    (double backprop: create_graph=True in the PyTorch version)."""
    eps = keras.ops.reshape(eps, (-1, 1, 1, 1))
    x_hat = eps * real_images + (1 - eps) * keras.ops.stop_gradient(fake_images)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        total = keras.ops.sum(critic(x_hat, training=True))     # sum_i f(x_hat_i), on the tape
    grads = tape.gradient(total, x_hat)
    return keras.ops.sqrt(keras.ops.sum(grads ** 2, axis=(1, 2, 3)) + NORM_EPS)   # (N,)


def gradient_penalty(norms):
    """mean_i (||grad f(x_hat_i)|| - 1)^2, before the weight lambda."""
    return keras.ops.mean((norms - 1.0) ** 2)


# ---- Train step ----
# No compiled models and no `trainable` flags (dcgan_keras.py says why): each update
# takes its gradients with tf.GradientTape and applies them to one network's variables.
def make_train_step(generator, critic, g_optimizer, c_optimizer, gp_weight, jit_compile=JIT_COMPILE):
    """One iteration (Algorithm 1 of the paper): n_critic critic updates, each
    on its own real batch, z and eps, the loss with the gradient penalty (the
    tape of gradient_norms inside the critic's tape); then one G update on a fresh z.

    real_batches, critic_z, eps: lists of n_critic batches (N, H, W, C),
    (N, z_dim) and (N,); g_z (N, z_dim).  Returns the metrics of wgan.FIELDS
    (the critic's numbers averaged over its n_critic steps)."""

    # Two TensorFlow graphs, each traced once on its first call (the batch
    # shapes never change): a critic step, run n_critic times, and the G step.
    @tf.function(jit_compile=jit_compile)
    def critic_step(real_images, z, eps):
        fake_images = generator(z, training=True)              # no tape records it: BN on this batch, no gradient
        with tf.GradientTape() as tape:
            real_scores, fake_scores = critic(real_images, training=True), critic(fake_images, training=True)
            norms = gradient_norms(critic, real_images, fake_images, eps)   # on this tape: double backprop
            penalty = gradient_penalty(norms)
            wasserstein = keras.ops.mean(real_scores) - keras.ops.mean(fake_scores)
            loss = critic_loss(real_scores, fake_scores) + gp_weight * penalty
        gradients = tape.gradient(loss, critic.trainable_variables)
        c_optimizer.apply_gradients(zip(gradients, critic.trainable_variables))
        return keras.ops.stack([loss, wasserstein, keras.ops.mean(real_scores), keras.ops.mean(fake_scores),
                                keras.ops.mean(norms), penalty])

    @tf.function(jit_compile=jit_compile)
    def generator_step(g_z):
        with tf.GradientTape() as tape:                        # only G is updated: the critic stays
            g_loss = generator_loss(critic(generator(g_z, training=True), training=True))
        gradients = tape.gradient(g_loss, generator.trainable_variables)
        g_optimizer.apply_gradients(zip(gradients, generator.trainable_variables))
        return g_loss

    def train_step(real_batches, critic_z, eps, g_z):
        rows = keras.ops.stack([critic_step(*batch) for batch in zip(real_batches, critic_z, eps)])
        g_loss = generator_step(g_z)
        values = keras.ops.concatenate([keras.ops.mean(rows, axis=0), keras.ops.stack([g_loss])])
        loss, wasserstein, real, fake, grad_norm, penalty, g_loss = keras.ops.convert_to_numpy(values).tolist()
        return {"critic_loss": loss, "g_loss": g_loss, "wasserstein": wasserstein, "critic_real": real,
                "critic_fake": fake, "grad_norm": grad_norm, "gradient_penalty": penalty}

    train_step.graphs = (critic_step, generator_step)   # for the tests: experimental_get_tracing_count()
    return train_step


# ---- Train ----
def save_checkpoint(run, iteration, networks, feed, z_sampler, mix_sampler, info, args):
    generator, critic, g_optimizer, c_optimizer = networks

    def write_files(folder):
        generator.save_weights(folder / G_FILE)      # BatchNorm moving statistics included
        critic.save_weights(folder / D_FILE)
        optimizer_state = {}
        for prefix, optimizer in (("g", g_optimizer), ("c", c_optimizer)):
            store = {}
            optimizer.save_own_variables(store)   # step count, learning rate, Adam's m and v
            optimizer_state.update({f"{prefix}_{key}": value for key, value in store.items()})
        np.savez(folder / OPT_FILE, **optimizer_state)
        # (nothing random runs in Keras: the batches, z and eps are NumPy's, their states in meta)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "feed": feed.state_dict(), "z_sampler": z_sampler.state_dict(),
        "mix_sampler": mix_sampler.state_dict(), "generator_steps": iteration,
        "critic_steps": iteration * args.n_critic, "dataset": args.dataset, "n_critic": args.n_critic,
        "gp_weight": args.gp_weight})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state (the
    data order, the noise and the mixes are in meta.json).  The optimizer
    file is read without unpickling; a broken file: one line."""
    generator, critic, *optimizers = networks
    for network, name in ((generator, G_FILE), (critic, D_FILE)):
        with runs.reading(folder / name):
            network.load_weights(folder / name)
    if optimizers:
        optimizer_state = runs.load_npz(folder / OPT_FILE)   # Adam's m and v were built by build_model
        with runs.reading(folder / OPT_FILE):
            for prefix, optimizer in zip(("g", "c"), optimizers):
                optimizer.load_own_variables({key[len(prefix) + 1:]: value for key, value in optimizer_state.items()
                                              if key.startswith(prefix + "_")})


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    info = model_info(image_shape, args.z_dim, args.width, args.critic_norm)
    cli.seed_everything(args.seed)
    keras.utils.set_random_seed(args.seed)   # Keras' global seed (the weights draw from the model's own)
    feed = batching.Feed(data.images, args.batch_size, args.seed, augment.for_dataset(args.dataset, gan.VALUE_RANGE))
    z_sampler = wgan.NormalZSampler(args.z_dim, args.seed)         # the z of every step (stream wgan.TRAIN)
    mix_sampler = wgan.MixSampler(args.seed)                       # eps_i of every critic step
    networks = build_model(image_shape, args.z_dim, args.width, args.critic_norm, args.seed, args.lr, device)
    generator, critic = networks[:2]
    start = 0
    if args.resume:
        folder, meta = run.load_checkpoint_meta(args.resume, info)
        load_checkpoint(folder, networks)
        for sampler, key in ((feed, "feed"), (z_sampler, "z_sampler"), (mix_sampler, "mix_sampler")):
            sampler.load_state_dict(meta[key])
        start = meta["generator_steps"]
        if start >= args.iters:
            print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
            return
    run.prepare_training(args, resume=bool(args.resume))
    train_step = make_train_step(*networks, gp_weight=args.gp_weight)
    sample_z = wgan.sample_latents(args.z_dim, args.seed, NOISE)

    with keras.device(device), runs.Progress(run, start, args.iters, FIELDS, args.log_every,
                                             resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_batches = [feed.next() for _ in range(args.n_critic)]   # fresh for each step, NHWC in [-1, 1]
            critic_z = [z_sampler(args.batch_size) for _ in range(args.n_critic)]
            eps = [mix_sampler(args.batch_size) for _ in range(args.n_critic)]
            g_z = z_sampler(args.batch_size)
            losses = train_step(real_batches, critic_z, eps, g_z)
            progress.log(iteration, losses)
            if progress.due(iteration, args.sample_every):
                wgan.save_samples(run, iteration, generate(generator, sample_z, device))
            if progress.due(iteration, args.checkpoint_every):
                save_checkpoint(run, iteration, networks, feed, z_sampler, mix_sampler, info, args)
                if progress.plots_due(iteration):
                    wgan.plot_training(run, FIELDS)


# ---- Test ----
def test(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "test")
    image_shape = data.images.shape[1:]
    info = model_info(image_shape, args.z_dim, args.width, args.critic_norm)
    folder, _ = run.load_checkpoint_meta(args.checkpoint, info)
    generator, critic = build_model(image_shape, args.z_dim, args.width, args.critic_norm, args.seed, args.lr,
                                    device)[:2]
    load_checkpoint(folder, (generator, critic))
    z = wgan.test_latents(args.z_dim, args.seed, NOISE)
    frames, paths = z["morph"].shape[:2]
    images = {name: generate(generator, z[name].reshape(-1, args.z_dim), device)
              for name in ("samples", "linear", "spherical", "morph", "scored")}
    return wgan.report_test(run, images["samples"], images["linear"], images["spherical"],
                            images["morph"].reshape(frames, paths, *image_shape), images["scored"],
                            criticize(critic, data.images, device), criticize(critic, images["scored"], device),
                            NOISE)


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
