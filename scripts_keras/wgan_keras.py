"""Wasserstein GAN (WGAN) -- Keras 3

Question: generate 32x32 images (CIFAR-10 by default; the newt photos are
resized and 28x28 digits padded to 32x32, so one network serves every data
set) with the Wasserstein loss.  Networks: the DCGAN's for 32x32 (G:
Dense(4x4x256) + BN + ReLU, 5x5 stride-2 transposed convolutions 256, 128
with BN + ReLU, then C + tanh; z ~ U(-1, 1) of size 100), but D is a
*critic*: 5x5 stride-2 convolutions 32, 64, 128 + LeakyReLU 0.2 and a
linear Dense(1) output, no sigmoid, no BatchNorm.  The critic maximises
W = mean f(real) - mean f(fake), the estimate of the Wasserstein-1
distance, G minimises -mean f(G(z)); after every critic update each critic
parameter is clipped to [-0.01, 0.01] (the Lipschitz constraint).  n_critic
5 critic updates per G update, each on a fresh real batch and fresh z;
RMSProp lr 5e-5, batch 64.
Framework: Keras 3 on the TensorFlow backend (NHWC, like common/).
Paper: Arjovsky, Chintala & Bottou, "Wasserstein GAN", 2017
(arXiv:1701.07875), Algorithm 1.
How to run:
    python scripts_keras/wgan_keras.py                   # CIFAR-10, train then test
    python scripts_keras/wgan_keras.py --dataset mnist --data-dir ../shared/datasets/mnist10k
    python scripts_keras/wgan_keras.py --dataset imori --iters 5000
    python scripts_keras/wgan_keras.py --test             # pictures from the last checkpoint
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, cli, compat, gan, runs, wgan  # noqa: E402

keras = compat.import_keras()  # Keras 3, TensorFlow backend, quiet TF start-up
import tensorflow as tf  # noqa: E402  (the backend: tf.function and GradientTape for the train step, GPU query)
from keras import layers  # noqa: E402

QUESTION = "wgan"
FRAMEWORK = "keras"


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).  The networks are the DCGAN's (dcgan_keras.py).
FIELDS = wgan.FIELDS[QUESTION]  # metrics.csv columns (common/wgan.py says what each is)
NOISE = "uniform"               # z ~ U(-1, 1)
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/8, W/8, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (the last k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # the critic's convolutions (the first k used)
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
# RMSProp: v = rho v + (1 - rho) g^2, step lr g / (sqrt(v) + eps), v starts at 0, not centred, no
# momentum: the reference code's torch defaults, set explicitly (Keras' RMSprop has rho 0.9, eps
# 1e-7 and puts eps inside the sqrt, lr g / sqrt(v + eps): the class RMSprop below moves it out).
RMSPROP_RHO = 0.99
RMSPROP_EPS = 1e-8
NORM_EPS = 1e-12                # ||g|| = sqrt(sum g^2 + NORM_EPS): finite where g = 0
JIT_COMPILE = False             # XLA off, as in dcgan_keras.py (README)
TEST_BATCH = 100                # images per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE = "generator.weights.h5", "critic.weights.h5", "optimizers.npz"   # a checkpoint


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Wasserstein GAN with weight clipping (Keras 3).",
                              dataset="cifar10", iters=100000, batch_size=64, lr=5e-5, sample_every=500,
                              checkpoint_every=1000, extra=wgan.add_flags(QUESTION, z_dim=gan.Z_DIM))
    return cli.parse_args(parser, argv)


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC 32x32 in [-1, 1] (common loader, same in every framework)."""
    return wgan.load_images(args, split)


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


# Generator and Critic are functions named like the PyTorch classes; each
# returns a Keras model.
def Generator(z_dim, image_shape, rng):
    """z (N, z_dim) -> images (N, H, W, C) in [-1, 1]: the DCGAN generator."""
    height, width, channels = image_shape
    k, (h0, w0) = gan.dcgan_stages(image_shape)
    network = [
        keras.Input(shape=(z_dim,)),                                           # (N, z_dim)
        layers.Dense(h0 * w0 * DENSE_CHANNELS, **init_weights(rng)),           # (N, 4*4*256)
        batch_norm(),
        layers.ReLU(),
        layers.Reshape((h0, w0, DENSE_CHANNELS)),                               # (N, 4, 4, 256)
    ]
    g_widths, _ = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    for features in g_widths:                                                   # 256, 128 for 32x32
        network += [layers.Conv2DTranspose(features, KERNEL, STRIDE, padding="same",
                                           **init_weights(rng)),               # (N, 2h, 2w, features)
                    batch_norm(),
                    layers.ReLU()]
    network += [layers.Conv2DTranspose(channels, KERNEL, STRIDE, padding="same", **init_weights(rng)),  # (N, H, W, C)
                layers.Activation("tanh")]
    return keras.Sequential(network, name="generator")


def Critic(image_shape, rng):
    """images (N, H, W, C) -> scores f(x) (N, 1): a real number, not a
    probability (no sigmoid), higher for what looks real.  No BatchNorm:
    each score depends on its own image only."""
    k, _ = gan.dcgan_stages(image_shape)
    network = [keras.Input(shape=tuple(image_shape))]                           # (N, H, W, C)
    _, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    for features in d_widths:                                                   # 32, 64, 128 for 32x32
        network += [layers.Conv2D(features, KERNEL, STRIDE, padding="same",
                                  **init_weights(rng)),                        # (N, h/2, w/2, features)
                    layers.LeakyReLU(negative_slope=LEAKY_SLOPE)]
    network += [layers.Flatten(),                                               # (N, H/8*W/8*128), NHWC order
                layers.Dense(1, **init_weights(rng))]                          # (N, 1), linear
    return keras.Sequential(network, name="critic")


class RMSprop(keras.optimizers.RMSprop):
    """Keras' RMSprop (v from 0, not centred, no momentum) with PyTorch's
    eps placement: p -= lr g / (sqrt(v) + eps), where Keras takes
    lr g / sqrt(v + eps).  The difference matters here: a clipped critic's
    gradients are small, and sqrt(1e-8) = 1e-4 is no small term next to
    sqrt(v)."""

    def update_step(self, gradient, variable, learning_rate):
        velocity = self._velocities[self._get_variable_index(variable)]   # Keras' own slot, zeros at build
        gradient = keras.ops.cast(gradient, variable.dtype)
        self.assign(velocity, self.rho * velocity + (1 - self.rho) * keras.ops.square(gradient))
        lr = keras.ops.cast(learning_rate, variable.dtype)
        self.assign_sub(variable, lr * gradient / (keras.ops.sqrt(velocity) + self.epsilon))


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    g_widths, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "noise": NOISE, "stages": k,
            "start": list(start), "generator": [DENSE_CHANNELS, *g_widths], "critic": list(d_widths)}


def build_model(image_shape, z_dim, seed, lr, device):
    """G, the critic (initialised from ``seed``, G first) and their RMSProp
    optimizers, their v made here (so that a checkpoint can fill them)."""
    with keras.device(device):   # every variable of the model goes there
        rng = keras.random.SeedGenerator(seed)
        generator, critic = Generator(z_dim, image_shape, rng), Critic(image_shape, rng)
        # Named optimizers: Keras' automatic names count up across models (see pix2pix_keras.py).
        g_optimizer, c_optimizer = (RMSprop(learning_rate=lr, rho=RMSPROP_RHO, epsilon=RMSPROP_EPS, momentum=0.0,
                                            centered=False, name=f"{prefix}_optimizer") for prefix in ("g", "c"))
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
    """mean f(fake) - mean f(real) = -W: minimising it maximises the
    Wasserstein estimate W (the sign convention of common/wgan.py)."""
    return keras.ops.mean(fake_scores) - keras.ops.mean(real_scores)


def generator_loss(fake_scores):
    """-mean f(G(z)): G moves its samples to where the critic scores high."""
    return -keras.ops.mean(fake_scores)


def gradient_norms(critic, real_images, fake_images, eps):
    """||grad_x f(x_hat_i)||_2 per sample, over all of H, W and C, at
    x_hat_i = eps_i x_i + (1 - eps_i) G(z_i) with one eps_i per sample.
    Samples do not interact in the critic, so the gradient of sum_i f(x_hat_i)
    holds every sample's own gradient.  Here (WGAN) only a measure."""
    eps = keras.ops.reshape(eps, (-1, 1, 1, 1))
    x_hat = eps * real_images + (1 - eps) * keras.ops.stop_gradient(fake_images)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        total = keras.ops.sum(critic(x_hat, training=True))     # sum_i f(x_hat_i), on the tape
    grads = tape.gradient(total, x_hat)
    return keras.ops.sqrt(keras.ops.sum(grads ** 2, axis=(1, 2, 3)) + NORM_EPS)   # (N,)


# ---- Train step ----
# No compiled models and no `trainable` flags (dcgan_keras.py says why): each update
# takes its gradients with tf.GradientTape and applies them to one network's variables.
def make_train_step(generator, critic, g_optimizer, c_optimizer, clip, jit_compile=JIT_COMPILE):
    """One iteration (Algorithm 1): n_critic critic updates, each on its own
    real batch and z, each followed by clipping every critic parameter to
    [-clip, clip]; then one G update on a fresh z.

    real_batches, critic_z: lists of n_critic batches (N, H, W, C) and (N, z_dim);
    eps (N,): the mix of the gradient-norm measure, taken once per iteration
    after the critic updates on the last critic batch; g_z (N, z_dim).
    Returns the metrics of wgan.FIELDS but clip_fraction (the critic's
    numbers averaged over its n_critic steps)."""

    # Three TensorFlow graphs, each traced once on its first call (the batch
    # shapes never change): a critic step, run n_critic times, the measure
    # and the G step.
    @tf.function(jit_compile=jit_compile)
    def critic_step(real_images, z):
        fake_images = generator(z, training=True)              # no tape records it: BN on this batch, no gradient
        with tf.GradientTape() as tape:
            real_scores, fake_scores = critic(real_images, training=True), critic(fake_images, training=True)
            loss = critic_loss(real_scores, fake_scores)
        gradients = tape.gradient(loss, critic.trainable_variables)
        c_optimizer.apply_gradients(zip(gradients, critic.trainable_variables))
        for parameter in critic.trainable_variables:           # the Lipschitz constraint, by force
            parameter.assign(keras.ops.clip(parameter, -clip, clip))
        return fake_images, keras.ops.stack([loss, -loss, keras.ops.mean(real_scores), keras.ops.mean(fake_scores)])

    @tf.function(jit_compile=jit_compile)
    def mean_gradient_norm(real_images, fake_images, eps):
        return keras.ops.mean(gradient_norms(critic, real_images, fake_images, eps))

    @tf.function(jit_compile=jit_compile)
    def generator_step(g_z):
        with tf.GradientTape() as tape:                        # only G is updated: the critic stays
            g_loss = generator_loss(critic(generator(g_z, training=True), training=True))
        gradients = tape.gradient(g_loss, generator.trainable_variables)
        g_optimizer.apply_gradients(zip(gradients, generator.trainable_variables))
        return g_loss

    def train_step(real_batches, critic_z, eps, g_z):
        rows = []
        for real_images, z in zip(real_batches, critic_z):
            fake_images, row = critic_step(real_images, z)
            rows.append(row)
        grad_norm = mean_gradient_norm(real_images, fake_images, eps)
        g_loss = generator_step(g_z)
        values = keras.ops.concatenate([keras.ops.mean(keras.ops.stack(rows), axis=0),
                                        keras.ops.stack([g_loss, grad_norm])])
        loss, wasserstein, real, fake, g_loss, grad_norm = keras.ops.convert_to_numpy(values).tolist()   # one copy
        return {"critic_loss": loss, "g_loss": g_loss, "wasserstein": wasserstein, "critic_real": real,
                "critic_fake": fake, "grad_norm": grad_norm}

    train_step.graphs = (critic_step, mean_gradient_norm, generator_step)   # for the tests: tracing counts
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
            optimizer.save_own_variables(store)   # step count, learning rate, RMSProp's v
            optimizer_state.update({f"{prefix}_{key}": value for key, value in store.items()})
        np.savez(folder / OPT_FILE, **optimizer_state)
        # (nothing random runs in Keras: the batches, z and eps are NumPy's, their states in meta)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "feed": feed.state_dict(), "z_sampler": z_sampler.state_dict(),
        "mix_sampler": mix_sampler.state_dict(), "generator_steps": iteration,
        "critic_steps": iteration * args.n_critic, "dataset": args.dataset, "n_critic": args.n_critic,
        "clip": args.clip})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state (the
    data order, the noise and the mixes are in meta.json).  The optimizer
    file is read without unpickling; a broken file: one line."""
    generator, critic, *optimizers = networks
    for network, name in ((generator, G_FILE), (critic, D_FILE)):
        with runs.reading(folder / name):
            network.load_weights(folder / name)
    if optimizers:
        optimizer_state = runs.load_npz(folder / OPT_FILE)   # RMSProp's v was built by build_model
        with runs.reading(folder / OPT_FILE):
            for prefix, optimizer in zip(("g", "c"), optimizers):
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
    feed = batching.Feed(data.images, args.batch_size, args.seed, augment.for_dataset(args.dataset, gan.VALUE_RANGE))
    z_sampler = wgan.ZSampler(args.z_dim, args.seed)               # the z of every step (stream wgan.TRAIN)
    mix_sampler = wgan.MixSampler(args.seed)                       # eps of the gradient-norm measure
    networks = build_model(image_shape, args.z_dim, args.seed, args.lr, device)
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
    train_step = make_train_step(*networks, clip=args.clip)
    sample_z = wgan.sample_latents(args.z_dim, args.seed, NOISE)

    with keras.device(device), runs.Progress(run, start, args.iters, FIELDS, args.log_every,
                                             resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_batches = [feed.next() for _ in range(args.n_critic)]   # fresh for each step, NHWC in [-1, 1]
            critic_z = [z_sampler(args.batch_size) for _ in range(args.n_critic)]
            eps = mix_sampler(args.batch_size)
            g_z = z_sampler(args.batch_size)
            losses = train_step(real_batches, critic_z, eps, g_z)
            losses["clip_fraction"] = wgan.clip_fraction([p.numpy() for p in critic.trainable_variables], args.clip)
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
    folder, _ = run.load_checkpoint_meta(args.checkpoint, model_info(image_shape, args.z_dim))
    generator, critic = build_model(image_shape, args.z_dim, args.seed, args.lr, device)[:2]
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
