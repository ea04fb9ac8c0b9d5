"""WGAN with gradient penalty (WGAN-GP) -- TF-Slim

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
Framework: TF-Slim (TensorFlow 1-style graph and session through
tf.compat.v1, NHWC like common/).
Paper: Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, "Improved
Training of Wasserstein GANs", 2017 (arXiv:1704.00028), Algorithm 1.
How to run:
    python scripts_tf_slim/wgan_gp_tf_slim.py                  # CIFAR-10, train then test
    python scripts_tf_slim/wgan_gp_tf_slim.py --dataset mnist --data-dir ../shared/datasets/mnist10k --width 32
    python scripts_tf_slim/wgan_gp_tf_slim.py --critic-norm none   # the released code's critic
"""
# ---- Setup ----
import sys
from functools import partial
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, cli, compat, gan, runs, wgan  # noqa: E402

tf, slim = compat.import_tf_slim()  # tf is tensorflow.compat.v1 (graphs and sessions)

QUESTION = "wgan_gp"
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
# (DESIGN.md section 7).
FIELDS = wgan.FIELDS[QUESTION]  # metrics.csv columns (common/wgan.py says what each is)
NOISE = "normal"                # z ~ N(0, 1)
Z_DIM = 128
START = 4                       # G's Dense layer makes a 4x4 map; three x2 blocks make 32x32
LEAKY_SLOPE = 0.2               # the critic's LeakyReLU slope (G uses ReLU)
BN_EPS = 1e-5                   # G's BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
BN_SCALE = True                 # slim's batch_norm has no gamma by default (scale=False)
LN_EPS = 1e-5                   # the critic's layer norm eps (slim.layer_norm fixes it at 1e-12: written out below)
# Weights: Glorot-uniform (limit sqrt(6 / (fan_in + fan_out)), fans counting the kernel's
# taps), zero biases, norm gains 1 and offsets 0: one explicit rule in all four versions.
ADAM_BETAS = (0.0, 0.9)         # the paper's Adam: no first-moment averaging
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly (TF1 adds it before the bias correction, torch after)
NORM_EPS = 1e-12                # ||g|| = sqrt(sum g^2 + NORM_EPS): finite (and differentiable) where g = 0
TEST_BATCH = 100                # images per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE = "generator.npz", "critic.npz", "optimizers.npz"   # files of a checkpoint


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "WGAN with gradient penalty, ResNet (TF-Slim).",
                              dataset="cifar10", iters=100000, batch_size=64, lr=1e-4, sample_every=500,
                              checkpoint_every=1000, extra=wgan.add_flags(QUESTION, z_dim=Z_DIM))
    return cli.parse_args(parser, argv)


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC 32x32 in [-1, 1] (common loader, same in every framework)."""
    return wgan.load_images(args, split)


# TensorFlow is NHWC like `common`: the images go in as they are (the PyTorch
# and Chainer versions transpose them to NCHW and back here).


# ---- Model ----
# TF1 style: the networks and their blocks are functions that add layers to
# the current graph (named like the classes of the other versions); variable
# scopes hold the weights, and every call after the first shares them
# (tf.AUTO_REUSE).  Layers are created in the order of PyTorch's modules.
def leaky_relu(x):
    return tf.nn.leaky_relu(x, alpha=LEAKY_SLOPE)


def init_weights():
    """Glorot-uniform weights, zero biases, no activation and no normalizer
    unless a layer asks (slim's default activation_fn is relu).  The draws
    come from the graph's seed (tf.set_random_seed in build_model)."""
    return slim.arg_scope([slim.fully_connected, slim.conv2d], weights_initializer=tf.glorot_uniform_initializer(),
                          biases_initializer=tf.zeros_initializer(), activation_fn=None, normalizer_fn=None)


def batch_norm(x, is_training, scope):
    """G's BatchNorm over the channels, gamma 1, beta 0, eps 1e-5, decay 0.9;
    in training mode the moving-average updates go to UPDATE_OPS."""
    return slim.batch_norm(x, decay=BN_DECAY, epsilon=BN_EPS, center=True, scale=BN_SCALE,
                           param_initializers={"beta": tf.zeros_initializer(), "gamma": tf.ones_initializer(),
                                               "moving_mean": tf.zeros_initializer(),
                                               "moving_variance": tf.ones_initializer()},
                           is_training=is_training, updates_collections=tf.GraphKeys.UPDATE_OPS, scope=scope)


def layer_norm(x, kind, scope):
    """The critic's normalisation: layer norm per sample over (H, W, C)
    with a gain and an offset per channel (torch's GroupNorm with one
    group), or nothing (``--critic-norm none``).  Written out: slim.layer_norm
    fixes eps at 1e-12, and tf.nn.moments stops the gradient through the
    mean inside the variance, which leaves the first derivative right but
    the second one (the penalty's double backprop) wrong."""
    if kind != "layer":
        return x
    with tf.variable_scope(scope):
        gamma = slim.model_variable("gamma", x.shape[-1:], x.dtype.base_dtype, tf.ones_initializer())
        beta = slim.model_variable("beta", x.shape[-1:], x.dtype.base_dtype, tf.zeros_initializer())
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)                 # (N, 1, 1, 1)
        variance = tf.reduce_mean(tf.square(x - mean), axis=[1, 2, 3], keepdims=True)   # biased, as torch
        return (x - mean) * tf.rsqrt(variance + LN_EPS) * gamma + beta


def conv3x3(x, channels, scope):
    return slim.conv2d(x, channels, 3, padding="SAME", scope=scope)   # stride 1: 'SAME' pads 1 a side everywhere


def conv1x1(x, channels, scope):
    return slim.conv2d(x, channels, 1, scope=scope)


def upsample(x):
    """Nearest-neighbour x2: (N, H, W, C) -> (N, 2H, 2W, C)."""
    return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)


def mean_pool(x):
    """2x2 mean pool, stride 2: (N, H, W, C) -> (N, H/2, W/2, C)."""
    return slim.avg_pool2d(x, 2, stride=2, padding="VALID")


def UpBlock(x, channels, is_training, scope):
    """G's residual block: (N, H, W, C) -> (N, 2H, 2W, C')."""
    with tf.variable_scope(scope):
        h = conv3x3(upsample(tf.nn.relu(batch_norm(x, is_training, "bn1"))), channels, "conv1")   # BN, ReLU, x2, conv
        h = conv3x3(tf.nn.relu(batch_norm(h, is_training, "bn2")), channels, "conv2")          # BN, ReLU, conv3x3
        return conv1x1(upsample(x), channels, "shortcut") + h                                  # x2, conv1x1


def FirstBlock(x, channels, scope):
    """The critic's first block, on the image: (N, H, W, C) -> (N, H/2, W/2, W')."""
    with tf.variable_scope(scope):
        h = mean_pool(conv3x3(leaky_relu(conv3x3(x, channels, "conv1")), channels, "conv2"))   # conv, act, conv, pool
        return conv1x1(mean_pool(x), channels, "shortcut") + h                                 # pool, conv1x1


def CriticBlock(x, norm, down, scope):
    """The critic's residual block, (LN, LeakyReLU, conv3x3) twice; "down"
    mean-pools after the second conv and in the shortcut (conv1x1, pool):
    (N, H, W, C) -> (N, H/2, W/2, C); a plain one has the identity as shortcut."""
    channels = int(x.shape[-1])
    with tf.variable_scope(scope):
        h = conv3x3(leaky_relu(layer_norm(x, norm, "norm1")), channels, "conv1")
        h = conv3x3(leaky_relu(layer_norm(h, norm, "norm2")), channels, "conv2")
        if down:
            return mean_pool(conv1x1(x, channels, "shortcut")) + mean_pool(h)
        return x + h


def Generator(z, image_shape, width, is_training=True):
    """z (N, z_dim) -> images (N, 32, 32, C) in [-1, 1]."""
    with tf.variable_scope("generator", reuse=tf.AUTO_REUSE), init_weights():
        x = slim.fully_connected(z, START * START * width, scope="dense")       # (N, 4*4*width)
        x = tf.reshape(x, [-1, START, START, width])                           # (N, 4, 4, width)
        for i in range(1, 4):                                                  # 4 -> 8 -> 16 -> 32
            x = UpBlock(x, width, is_training, f"block{i}")                     # (N, 2h, 2w, width)
        x = tf.nn.relu(batch_norm(x, is_training, "bn"))
        return tf.tanh(conv3x3(x, image_shape[2], "out"))                       # (N, 32, 32, C)


def Critic(images, width, norm):
    """images (N, 32, 32, C) -> scores f(x) (N, 1), linear."""
    with tf.variable_scope("critic", reuse=tf.AUTO_REUSE), init_weights():
        x = FirstBlock(images, width, "block1")                               # (N, 16, 16, width)
        x = CriticBlock(x, norm, down=True, scope="block2")                     # (N, 8, 8, width)
        x = CriticBlock(x, norm, down=False, scope="block3")                    # (N, 8, 8, width)
        x = CriticBlock(x, norm, down=False, scope="block4")                    # (N, 8, 8, width)
        x = tf.reduce_mean(leaky_relu(x), axis=[1, 2])                          # global mean -> (N, width)
        return slim.fully_connected(x, 1, scope="dense")                        # (N, 1)


def model_info(image_shape, z_dim, width, norm):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "noise": NOISE, "width": int(width),
            "critic_norm": norm}


def build_model(image_shape, z_dim, width, norm, seed, lr, device):
    """G, the critic (initialised from ``seed``) and their Adam optimizers, in
    a new graph and session.  G and the critic are namespaces: graph function
    ``net``, placeholder ``inputs``, inference ``output``, ``variables``
    (BatchNorm moving statistics included), ``sess``, ``device``."""
    graph = tf.Graph()
    sess = make_session(graph)
    with graph.as_default(), tf.device(device):
        tf.set_random_seed(seed)                                        # the initial weights
        z = tf.placeholder(tf.float32, (None, z_dim), name="z")
        images = tf.placeholder(tf.float32, (None, *image_shape), name="images")
        generator = SimpleNamespace(net=partial(Generator, image_shape=image_shape, width=width), inputs=z)
        critic = SimpleNamespace(net=partial(Critic, width=width, norm=norm), inputs=images)
        generator.output = generator.net(z, is_training=False)          # inference mode: the moving statistics
        critic.output = critic.net(images)
        for network, scope in ((generator, "generator/"), (critic, "critic/")):
            network.variables, network.sess, network.device = slim.get_model_variables(scope), sess, device
        g_optimizer, c_optimizer = (tf.train.AdamOptimizer(lr, ADAM_BETAS[0], ADAM_BETAS[1], ADAM_EPS, name=name)
                                    for name in ("g_adam", "c_adam"))
        sess.run(tf.global_variables_initializer())
    return generator, critic, g_optimizer, c_optimizer


def generate(generator, z, device):
    """G(z) in inference mode (BatchNorm's moving statistics), NumPy in and out:
    (N, z_dim) -> images (N, H, W, C) in [-1, 1] (``device``: fixed in the graph)."""
    return np.concatenate([generator.sess.run(generator.output, {generator.inputs: z[i:i + TEST_BATCH]})
                           for i in range(0, len(z), TEST_BATCH)])


def criticize(critic, images, device):
    """The critic's scores (N, 1) of NHWC images, NumPy in and out."""
    return np.concatenate([critic.sess.run(critic.output, {critic.inputs: images[i:i + TEST_BATCH]})
                           for i in range(0, len(images), TEST_BATCH)])


# ---- Losses ----
def critic_loss(real_scores, fake_scores):
    """mean f(fake) - mean f(real) = -W (the sign convention of common/wgan.py)."""
    return tf.reduce_mean(fake_scores) - tf.reduce_mean(real_scores)


def generator_loss(fake_scores):
    """-mean f(G(z))."""
    return -tf.reduce_mean(fake_scores)


def gradient_norms(critic, real_images, fake_images, eps):
    """||grad_x f(x_hat_i)||_2 per sample, over all of H, W and C, at
    x_hat_i = eps_i x_i + (1 - eps_i) G(z_i) with one eps_i per sample.
    Samples do not interact in the critic (layer norm is per sample), so the
    gradient of sum_i f(x_hat_i) holds every sample's own gradient.  TF1:
    tf.gradients adds the gradient to the graph as ordinary ops, which a
    loss can be differentiated through again (PyTorch's create_graph=True)."""
    eps = tf.reshape(eps, [-1, 1, 1, 1])
    x_hat = eps * real_images + (1.0 - eps) * tf.stop_gradient(fake_images)
    (grads,) = tf.gradients(tf.reduce_sum(critic.net(x_hat)), [x_hat])
    return tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + NORM_EPS)   # (N,)


def gradient_penalty(norms):
    """mean_i (||grad f(x_hat_i)|| - 1)^2, before the weight lambda."""
    return tf.reduce_mean(tf.square(norms - 1.0))


# ---- Train step ----
def make_train_step(generator, critic, g_optimizer, c_optimizer, gp_weight):
    """One iteration (Algorithm 1 of the paper): n_critic critic updates,
    each on its own real batch, z and eps, the loss with the gradient
    penalty (the gradient of a gradient: the optimizer's tf.gradients runs
    back through gradient_norms' tf.gradients); then one G update on a fresh z.

    real_batches, critic_z, eps: lists of n_critic batches (N, H, W, C),
    (N, z_dim) and (N,); g_z (N, z_dim).  Returns the metrics of wgan.FIELDS
    (the critic's averaged over its n_critic steps).  TF1: the critic step
    and the G step are added to the graph once (Adam's variables initialised
    here); the returned function runs them, one ``sess.run`` each."""
    sess = generator.sess
    with sess.graph.as_default(), tf.device(generator.device):
        critic_variables, generator_variables = tf.trainable_variables("critic/"), tf.trainable_variables("generator/")
        real_images = tf.placeholder(tf.float32, critic.inputs.shape, name="real_images")    # (N, H, W, C)
        z = tf.placeholder(tf.float32, generator.inputs.shape, name="critic_z")
        eps = tf.placeholder(tf.float32, (None,), name="eps")
        with tf.name_scope("critic_step"):
            fake_images = tf.stop_gradient(generator.net(z, is_training=True))   # training mode: BN on this batch
            # G's moving statistics move at every critic step, as in torch's train-mode forward
            bn_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope="critic_step/")
            real_scores, fake_scores = critic.net(real_images), critic.net(fake_images)
            norms = gradient_norms(critic, real_images, fake_images, eps)
            penalty = gradient_penalty(norms)
            wasserstein = tf.reduce_mean(real_scores) - tf.reduce_mean(fake_scores)
            loss = critic_loss(real_scores, fake_scores) + gp_weight * penalty
            critic_op = tf.group(c_optimizer.minimize(loss, var_list=critic_variables), *bn_updates)
            row = tf.stack([loss, wasserstein, tf.reduce_mean(real_scores), tf.reduce_mean(fake_scores),
                            tf.reduce_mean(norms), penalty])

        g_z = tf.placeholder(tf.float32, generator.inputs.shape, name="g_z")
        with tf.name_scope("g_step"):
            g_loss = generator_loss(critic.net(generator.net(g_z, is_training=True)))
            g_update = g_optimizer.minimize(g_loss, var_list=generator_variables)   # only G: the critic is frozen
            g_op = tf.group(g_update, *tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope="g_step/"))
        sess.run(tf.variables_initializer(g_optimizer.variables() + c_optimizer.variables()))
    sess.graph.finalize()                                         # nothing is added while training

    def train_step(real_batches, critic_z, eps_batches, g_z_batch):
        rows = [sess.run([critic_op, row], {real_images: real_batch, z: z_batch, eps: eps_batch})[1]
                for real_batch, z_batch, eps_batch in zip(real_batches, critic_z, eps_batches)]
        _, g_loss_value = sess.run([g_op, g_loss], {g_z: g_z_batch})
        loss_value, wasserstein_value, real, fake, grad_norm, penalty_value = np.mean(rows, axis=0).tolist()
        return {"critic_loss": loss_value, "g_loss": float(g_loss_value), "wasserstein": wasserstein_value,
                "critic_real": real, "critic_fake": fake, "grad_norm": grad_norm, "gradient_penalty": penalty_value}

    return train_step


# ---- Train ----
def save_variables(sess, variables, path):
    """The variables' values in an .npz file, by variable name."""
    values = sess.run(variables)
    with open(path, "wb") as f:     # a file object: np.savez adds no suffix
        np.savez(f, **{v.op.name: value for v, value in zip(variables, values)})


def load_variables(sess, variables, path):
    """Each variable gets its value by name from ``path`` through its initializer,
    the value fed in: no op is added to the finalized graph.  A broken file: one line."""
    with runs.reading(path), np.load(path, allow_pickle=False) as saved:
        missing = [v.op.name for v in variables if v.op.name not in saved.files]
        if missing:
            raise ValueError(f"{missing[0]} is missing")
        sess.run([v.initializer for v in variables], {v.initializer.inputs[1]: saved[v.op.name] for v in variables})


def save_checkpoint(run, iteration, networks, feed, z_sampler, mix_sampler, info, args):
    generator, critic, g_optimizer, c_optimizer = networks
    sess = generator.sess

    def write_files(folder):
        save_variables(sess, generator.variables, folder / G_FILE)    # BatchNorm moving statistics included
        save_variables(sess, critic.variables, folder / D_FILE)
        # No TF random state to keep: the graph draws random numbers only for the initial weights.
        with sess.graph.as_default():   # TF1 looks an optimizer's variables (moments, beta powers) up in its graph
            save_variables(sess, g_optimizer.variables() + c_optimizer.variables(), folder / OPT_FILE)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "feed": feed.state_dict(), "z_sampler": z_sampler.state_dict(),
        "mix_sampler": mix_sampler.state_dict(), "generator_steps": iteration,
        "critic_steps": iteration * args.n_critic, "dataset": args.dataset, "n_critic": args.n_critic,
        "gp_weight": args.gp_weight})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state (data order, noise, mixes: meta.json)."""
    generator, critic, *optimizers = networks
    for network, name in ((generator, G_FILE), (critic, D_FILE)):
        load_variables(network.sess, network.variables, folder / name)
    if optimizers:
        with generator.sess.graph.as_default():   # (the optimizers' variables are looked up in the graph)
            load_variables(generator.sess, optimizers[0].variables() + optimizers[1].variables(), folder / OPT_FILE)


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    info = model_info(image_shape, args.z_dim, args.width, args.critic_norm)
    cli.seed_everything(args.seed)           # TF's graph seed is set by build_model (tf.set_random_seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed, augment.for_dataset(args.dataset, gan.VALUE_RANGE))
    z_sampler = wgan.NormalZSampler(args.z_dim, args.seed)         # the z of every step (stream wgan.TRAIN)
    mix_sampler = wgan.MixSampler(args.seed)                       # eps_i of every critic step
    networks = build_model(image_shape, args.z_dim, args.width, args.critic_norm, args.seed, args.lr, device)
    generator, critic = networks[:2]
    train_step = make_train_step(*networks, gp_weight=args.gp_weight)   # TF1: before a resume (Adam's variables)
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
    sample_z = wgan.sample_latents(args.z_dim, args.seed, NOISE)

    with runs.Progress(run, start, args.iters, FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_batches = [feed.next() for _ in range(args.n_critic)]   # fresh for each step, NHWC as they are
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
