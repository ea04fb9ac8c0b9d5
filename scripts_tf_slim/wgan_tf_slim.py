"""Wasserstein GAN (WGAN) -- TF-Slim

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
Framework: TF-Slim (TensorFlow 1-style graph and session through
tf.compat.v1, NHWC like common/).
Paper: Arjovsky, Chintala & Bottou, "Wasserstein GAN", 2017
(arXiv:1701.07875), Algorithm 1.
How to run:
    python scripts_tf_slim/wgan_tf_slim.py                   # CIFAR-10, train then test
    python scripts_tf_slim/wgan_tf_slim.py --dataset mnist --data-dir ../shared/datasets/mnist10k
    python scripts_tf_slim/wgan_tf_slim.py --dataset imori --iters 5000
    python scripts_tf_slim/wgan_tf_slim.py --test             # pictures from the last checkpoint
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

QUESTION = "wgan"
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
FIELDS = wgan.FIELDS[QUESTION]  # metrics.csv columns (common/wgan.py says what each is)
NOISE = "uniform"               # z ~ U(-1, 1)
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/8, W/8, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (the last k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # the critic's convolutions (the first k used)
KERNEL, STRIDE = 5, 2
PADDING = "SAME"                # TF 'SAME' for 5x5 stride 2: 1 before, 2 after (PyTorch and Chainer pad explicitly)
LEAKY_SLOPE = 0.2               # LeakyReLU slope, set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
BN_SCALE = True                 # slim's batch_norm has no gamma by default (scale=False)
# RMSProp: v = rho v + (1 - rho) g^2, step lr g / (sqrt(v) + eps), v starts at 0, not centred, no
# momentum: the reference code's torch defaults.  TF 1's RMSPropOptimizer starts v at 1 and puts
# eps inside the sqrt, lr g / sqrt(v + eps): the update is written out below instead (RMSProp).
RMSPROP_RHO = 0.99
RMSPROP_EPS = 1e-8
NORM_EPS = 1e-12                # ||g|| = sqrt(sum g^2 + NORM_EPS): finite where g = 0
TEST_BATCH = 100                # images per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE = "generator.npz", "critic.npz", "optimizers.npz"   # files of a checkpoint


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Wasserstein GAN with weight clipping (TF-Slim).",
                              dataset="cifar10", iters=100000, batch_size=64, lr=5e-5, sample_every=500,
                              checkpoint_every=1000, extra=wgan.add_flags(QUESTION, z_dim=gan.Z_DIM))
    return cli.parse_args(parser, argv)


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC 32x32 in [-1, 1] (common loader, same in every framework)."""
    return wgan.load_images(args, split)


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
    """z (N, z_dim) -> images (N, H, W, C) in [-1, 1]: the DCGAN generator.
    The Dense and transposed-convolution layers keep their biases before
    BatchNorm, as in the other versions."""
    height, width, channels = image_shape
    k, (h0, w0) = gan.dcgan_stages(image_shape)
    with tf.variable_scope("generator", reuse=tf.AUTO_REUSE), init_weights():
        x = slim.fully_connected(z, h0 * w0 * DENSE_CHANNELS, scope="dense")           # (N, 4*4*256)
        x = tf.nn.relu(batch_norm(x, is_training, "bn0"))
        x = tf.reshape(x, [-1, h0, w0, DENSE_CHANNELS])                                # (N, 4, 4, 256)
        g_widths, _ = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
        for i, features in enumerate(g_widths, start=1):                    # 256, 128 for 32x32
            x = slim.conv2d_transpose(x, features, KERNEL, stride=STRIDE, padding=PADDING,
                                      scope=f"deconv{i}")                              # (N, 2h, 2w, features)
            x = tf.nn.relu(batch_norm(x, is_training, f"bn{i}"))
        x = slim.conv2d_transpose(x, channels, KERNEL, stride=STRIDE, padding=PADDING,
                                  scope=f"deconv{k}")                                  # (N, H, W, C)
        return tf.tanh(x)


def Critic(images, image_shape):
    """images (N, H, W, C) -> scores f(x) (N, 1): a real number, not a
    probability (no sigmoid), higher for what looks real.  No BatchNorm:
    each score depends on its own image only."""
    k, _ = gan.dcgan_stages(image_shape)
    with tf.variable_scope("critic", reuse=tf.AUTO_REUSE), init_weights():
        x = images
        _, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
        for i, features in enumerate(d_widths, start=1):                    # 32, 64, 128 for 32x32
            x = slim.conv2d(x, features, KERNEL, stride=STRIDE, padding=PADDING,
                            activation_fn=leaky_relu, scope=f"conv{i}")               # (N, h/2, w/2, features)
        x = slim.flatten(x)                                                            # (N, H/8*W/8*128), NHWC order
        return slim.fully_connected(x, 1, scope="dense")                               # (N, 1), linear


class RMSProp:
    """torch.optim.RMSprop(lr, alpha=rho, eps, momentum=0, centered=False) in
    the graph, with the two methods of a tf.train optimizer used here.  Per
    parameter p with gradient g:  v <- rho v + (1 - rho) g^2;  p <- p - lr g / (sqrt(v) + eps),
    v from 0 (tf.train.RMSPropOptimizer: v from 1, lr g / sqrt(v + eps))."""

    def __init__(self, lr, rho=RMSPROP_RHO, eps=RMSPROP_EPS, name="rmsprop"):
        self._lr, self._rho, self._epsilon, self._name = lr, rho, eps, name
        self._slots = []                              # v of every parameter, in var_list order

    def minimize(self, loss, var_list):
        """The op that updates ``var_list`` once (built once, run every step)."""
        updates = []
        with tf.variable_scope(self._name):
            for var, grad in zip(var_list, tf.gradients(loss, var_list)):
                v = tf.get_variable(var.op.name, var.shape, var.dtype.base_dtype, tf.zeros_initializer(),
                                    trainable=False)   # v starts at 0
                self._slots.append(v)
                v_new = tf.assign(v, self._rho * v + (1.0 - self._rho) * tf.square(grad))
                updates.append(tf.assign_sub(var, self._lr * grad / (tf.sqrt(v_new) + self._epsilon)))
        return tf.group(*updates)

    def variables(self):
        return list(self._slots)


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    g_widths, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "noise": NOISE, "stages": k,
            "start": list(start), "generator": [DENSE_CHANNELS, *g_widths], "critic": list(d_widths)}


def build_model(image_shape, z_dim, seed, lr, device):
    """G, the critic (initialised from ``seed``) and their RMSProp optimizers,
    in a new graph and session.  TF1 has no network objects: G and the critic
    are namespaces: graph function ``net``, placeholder ``inputs``, inference
    ``output``, ``variables`` (BatchNorm moving statistics included), ``sess``, ``device``."""
    graph = tf.Graph()
    sess = make_session(graph)
    with graph.as_default(), tf.device(device):
        tf.set_random_seed(seed)                                        # the initial weights
        z = tf.placeholder(tf.float32, (None, z_dim), name="z")
        images = tf.placeholder(tf.float32, (None, *image_shape), name="images")
        generator = SimpleNamespace(net=partial(Generator, image_shape=image_shape), inputs=z)
        critic = SimpleNamespace(net=partial(Critic, image_shape=image_shape), inputs=images)
        generator.output = generator.net(z, is_training=False)          # inference mode: the moving statistics
        critic.output = critic.net(images)
        for network, scope in ((generator, "generator/"), (critic, "critic/")):
            network.variables, network.sess, network.device = slim.get_model_variables(scope), sess, device
        g_optimizer, c_optimizer = RMSProp(lr, name="g_rmsprop"), RMSProp(lr, name="c_rmsprop")
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
    """mean f(fake) - mean f(real) = -W: minimising it maximises the
    Wasserstein estimate W (the sign convention of common/wgan.py)."""
    return tf.reduce_mean(fake_scores) - tf.reduce_mean(real_scores)


def generator_loss(fake_scores):
    """-mean f(G(z)): G moves its samples to where the critic scores high."""
    return -tf.reduce_mean(fake_scores)


def gradient_norms(critic, real_images, fake_images, eps):
    """||grad_x f(x_hat_i)||_2 per sample, over all of H, W and C, at
    x_hat_i = eps_i x_i + (1 - eps_i) G(z_i) with one eps_i per sample.
    Samples do not interact in the critic, so the gradient of sum_i f(x_hat_i)
    holds every sample's own gradient.  Here (WGAN) only a measure."""
    eps = tf.reshape(eps, [-1, 1, 1, 1])
    x_hat = eps * real_images + (1.0 - eps) * tf.stop_gradient(fake_images)
    (grads,) = tf.gradients(tf.reduce_sum(critic.net(x_hat)), [x_hat])
    return tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + NORM_EPS)   # (N,)


# ---- Train step ----
def make_train_step(generator, critic, g_optimizer, c_optimizer, clip):
    """One iteration (Algorithm 1): n_critic critic updates, each on its own
    real batch and z, each followed by clipping every critic parameter to
    [-clip, clip]; then one G update on a fresh z.

    real_batches, critic_z: lists of n_critic batches (N, H, W, C) and (N, z_dim);
    eps (N,): the mix of the gradient-norm measure, taken once per iteration
    after the critic updates on the last critic batch; g_z (N, z_dim).
    Returns the metrics of wgan.FIELDS but clip_fraction (the critic's
    averaged over its n_critic steps).  TF1: the critic step and the G step
    are added to the graph once (the optimizers' variables initialised here);
    the returned function runs them, one ``sess.run`` each."""
    sess = generator.sess
    with sess.graph.as_default(), tf.device(generator.device):
        critic_variables, generator_variables = tf.trainable_variables("critic/"), tf.trainable_variables("generator/")
        real_images = tf.placeholder(tf.float32, critic.inputs.shape, name="real_images")    # (N, H, W, C)
        z = tf.placeholder(tf.float32, generator.inputs.shape, name="critic_z")
        with tf.name_scope("critic_step"):
            fake_images = tf.stop_gradient(generator.net(z, is_training=True))   # training mode: BN on this batch
            # G's moving statistics move at every critic step, as in torch's train-mode forward
            bn_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope="critic_step/")
            real_scores, fake_scores = critic.net(real_images), critic.net(fake_images)
            loss = critic_loss(real_scores, fake_scores)
            update = c_optimizer.minimize(loss, var_list=critic_variables)
            with tf.control_dependencies([update]):           # the Lipschitz constraint, by force, after the update
                clipping = [tf.assign(p, tf.clip_by_value(p.read_value(), -clip, clip)) for p in critic_variables]
            critic_op = tf.group(*clipping, *bn_updates)
            row = tf.stack([loss, -loss, tf.reduce_mean(real_scores), tf.reduce_mean(fake_scores)])

        last_real = tf.placeholder(tf.float32, critic.inputs.shape, name="last_real_images")
        last_fake = tf.placeholder(tf.float32, critic.inputs.shape, name="last_fake_images")
        eps = tf.placeholder(tf.float32, (None,), name="eps")
        g_z = tf.placeholder(tf.float32, generator.inputs.shape, name="g_z")
        with tf.name_scope("g_step"):
            grad_norm = tf.reduce_mean(gradient_norms(critic, last_real, last_fake, eps))
            g_loss = generator_loss(critic.net(generator.net(g_z, is_training=True)))
            g_update = g_optimizer.minimize(g_loss, var_list=generator_variables)   # only G: the critic is frozen
            g_op = tf.group(g_update, *tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope="g_step/"))
        sess.run(tf.variables_initializer(g_optimizer.variables() + c_optimizer.variables()))
    sess.graph.finalize()                                         # nothing is added while training

    def train_step(real_batches, critic_z, eps_batch, g_z_batch):
        rows = []
        for real_batch, z_batch in zip(real_batches, critic_z):
            _, fake_batch, values = sess.run([critic_op, fake_images, row], {real_images: real_batch, z: z_batch})
            rows.append(values)
        # the measure (the critic after its last update and clipping) and the G update, in one run
        _, g_loss_value, grad_norm_value = sess.run([g_op, g_loss, grad_norm], {
            last_real: real_batch, last_fake: fake_batch, eps: eps_batch, g_z: g_z_batch})
        loss_value, wasserstein, real, fake = np.mean(rows, axis=0).tolist()
        return {"critic_loss": loss_value, "g_loss": float(g_loss_value), "wasserstein": wasserstein,
                "critic_real": real, "critic_fake": fake, "grad_norm": float(grad_norm_value)}

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
        save_variables(sess, g_optimizer.variables() + c_optimizer.variables(), folder / OPT_FILE)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "feed": feed.state_dict(), "z_sampler": z_sampler.state_dict(),
        "mix_sampler": mix_sampler.state_dict(), "generator_steps": iteration,
        "critic_steps": iteration * args.n_critic, "dataset": args.dataset, "n_critic": args.n_critic,
        "clip": args.clip})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state (data order, noise, mixes: meta.json)."""
    generator, critic, *optimizers = networks
    for network, name in ((generator, G_FILE), (critic, D_FILE)):
        load_variables(network.sess, network.variables, folder / name)
    if optimizers:
        g_optimizer, c_optimizer = optimizers
        load_variables(generator.sess, g_optimizer.variables() + c_optimizer.variables(), folder / OPT_FILE)


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    info = model_info(image_shape, args.z_dim)
    cli.seed_everything(args.seed)           # TF's graph seed is set by build_model (tf.set_random_seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed, augment.for_dataset(args.dataset, gan.VALUE_RANGE))
    z_sampler = wgan.ZSampler(args.z_dim, args.seed)               # the z of every step (stream wgan.TRAIN)
    mix_sampler = wgan.MixSampler(args.seed)                       # eps of the gradient-norm measure
    networks = build_model(image_shape, args.z_dim, args.seed, args.lr, device)
    generator, critic = networks[:2]
    train_step = make_train_step(*networks, clip=args.clip)   # TF1: before a resume, which loads into its variables
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
            eps = mix_sampler(args.batch_size)
            g_z = z_sampler(args.batch_size)
            losses = train_step(real_batches, critic_z, eps, g_z)
            losses["clip_fraction"] = wgan.clip_fraction(critic.sess.run(critic.variables), args.clip)
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
