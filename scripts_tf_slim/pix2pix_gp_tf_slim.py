"""pix2pix with a gradient penalty (pix2pix_gp) -- TF-Slim

Question: pix2pix (pix2pix_tf_slim.py: newt photo -> segmentation mask, or
--direction mask2photo) with the same U-Net G, data and BCE losses, and a
gradient penalty on D:
    d_loss = 0.5 (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0))
             + gp_weight * mean_i (||grad_y_hat D_i(x_i, y_hat_i)||_2 - 1)^2
with y_hat_i = eps_i y_i + (1 - eps_i) G(x_i), eps_i ~ U(0, 1) one per
sample, D_i the mean of sample i's patch logits, the norm per sample over
all of C, H and W of the output y_hat (the input x is held fixed);
gp_weight 10.  What the penalty adds: D's BCE alone can grow its logits
without bound once it separates real from fake pairs, so its gradient,
which is what G learns from, explodes or vanishes; the penalty holds D's
slope near 1 along the lines between real and generated outputs, so D stays
a smooth judge and G's adversarial gradient keeps a usable size (the
WGAN-GP penalty of Gulrajani et al., here on a BCE PatchGAN).
D: the same PatchGAN without BatchNorm (the penalty is per sample, and
BatchNorm couples the samples of a batch), every conv with a bias.
n_critic 5 D updates per G update, each on a fresh batch of pairs and fresh
eps; then G's update on one more fresh batch.  Adam lr 2e-4, betas (0.5,
0.999), batch 16, 5000 iterations; --gan-weight 0 leaves D out entirely;
--width and --size as in pix2pix_tf_slim.py.
Framework: TF-Slim (TensorFlow 1-style graph and session through
tf.compat.v1, NHWC like common/).
Papers: Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with
Conditional Adversarial Networks", CVPR 2017 (arXiv:1611.07004); the
penalty: Gulrajani et al., "Improved Training of Wasserstein GANs", 2017
(arXiv:1704.00028).
How to run:
    python scripts_tf_slim/pix2pix_gp_tf_slim.py                   # photo -> mask, train then test
    python scripts_tf_slim/pix2pix_gp_tf_slim.py --direction mask2photo --n-critic 2
"""
# ---- Setup ----
import sys
from functools import partial
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import cli, compat, pix2pix, runs  # noqa: E402

tf, slim = compat.import_tf_slim()  # tf is tensorflow.compat.v1 (graphs and sessions)

QUESTION = "pix2pix_gp"
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
FIELDS = pix2pix.FIELDS[QUESTION]      # metrics.csv columns (common/pix2pix.py says what each is)
G_WIDTHS = (1, 2, 4, 8, 16)     # the U-Net's levels, 64x64 down to 4x4, times --width (32: 32 ... 512)
D_LAYERS = ((2, 2), (4, 2), (8, 2), (16, 1))   # the PatchGAN's (width / --width, stride) before its C1 (stride 1)
D_KERNEL, D_PAD = 4, 1          # D's 4x4 convs pad 1 pixel of zeros on every side, at stride 2 and 1
# (TF 'SAME' pads 1/1 at stride 2, the same, but 1/2 at stride 1, which would keep 8x8 where the paper's D
# has 7x7: here tf.pad pads explicitly, then the conv is 'VALID')
LEAKY_SLOPE = 0.2               # D's LeakyReLU slope, set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (pix2pix and DCGAN papers), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # G's BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
BN_SCALE = True                 # slim's batch_norm has no gamma by default (scale=False)
ADAM_BETAS = (0.5, 0.999)
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly (TF1 adds it before the bias correction, torch after)
NORM_EPS = 1e-12                # ||g|| = sqrt(sum g^2 + NORM_EPS): finite (and differentiable) where g = 0
TEST_BATCH = 16                 # pairs per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE = "generator.npz", "discriminator.npz", "optimizers.npz"   # files of a checkpoint


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "pix2pix with a gradient penalty on D (TF-Slim).",
                              dataset="imori", datasets=("imori",), iters=5000, batch_size=16, lr=2e-4,
                              sample_every=500, checkpoint_every=500, extra=pix2pix.add_flags(QUESTION))
    return pix2pix.check_args(cli.parse_args(parser, argv))


# ---- Data ----
def load_data(args, split, palette=None):
    """Photos (N, S, S, 3) in [-1, 1] and class maps (N, S, S) of a split,
    the palette of the training masks (common loader, same in every framework)."""
    return pix2pix.load_pairs(args, split, palette)


# TensorFlow is NHWC like `common`: the pairs go in as they are (the PyTorch
# and Chainer versions transpose them to NCHW and back here).


# ---- Model ----
# TF1 style: the networks and their blocks are functions that add layers to
# the current graph (named like the classes of the other versions); variable
# scopes hold the weights, and every call after the first shares them
# (tf.AUTO_REUSE).  The scopes are named after PyTorch's modules (downs_0,
# ups_3, up_blocks_3, out), which the parity test maps one to one.
def leaky_relu(x):
    return tf.nn.leaky_relu(x, alpha=LEAKY_SLOPE)


def init_weights():
    """N(0, 0.02) weights and zero biases, no activation and no normalizer
    unless a layer asks (slim's defaults are activation_fn=relu and a
    Glorot-uniform initializer): the same explicit rule in all four
    versions.  The draws come from the graph's seed (tf.set_random_seed in
    build_model): no rng argument, unlike the other versions."""
    return slim.arg_scope([slim.conv2d, slim.conv2d_transpose],
                          weights_initializer=tf.random_normal_initializer(0.0, INIT_STD),
                          biases_initializer=tf.zeros_initializer(), activation_fn=None, normalizer_fn=None)


def batch_norm(x, is_training, scope):
    """G's BatchNorm over the channels, gamma 1, beta 0, eps 1e-5, decay 0.9.
    ``is_training``: the batch's statistics, the moving-average updates go
    to UPDATE_OPS (the train step runs them); else the moving statistics."""
    return slim.batch_norm(x, decay=BN_DECAY, epsilon=BN_EPS, center=True, scale=BN_SCALE,
                           param_initializers={"beta": tf.zeros_initializer(), "gamma": tf.ones_initializer(),
                                               "moving_mean": tf.zeros_initializer(),
                                               "moving_variance": tf.ones_initializer()},
                           is_training=is_training, updates_collections=tf.GraphKeys.UPDATE_OPS, scope=scope)


def conv_block(x, channels, is_training, scope):
    """One U-Net level: 2 x [Conv3x3 ('SAME': pad 1 at stride 1) + ReLU +
    BatchNorm], in this order: (N, H, W, I) -> (N, H, W, O)."""
    with tf.variable_scope(scope):
        x = batch_norm(tf.nn.relu(slim.conv2d(x, channels, 3, padding="SAME", scope="conv1")), is_training, "bn1")
        return batch_norm(tf.nn.relu(slim.conv2d(x, channels, 3, padding="SAME", scope="conv2")), is_training, "bn2")


def Generator(inputs, out_channels, width, is_training=True):
    """The U-Net: inputs (N, S, S, I) -> outputs (N, S, S, O) in [-1, 1]."""
    widths = [width * k for k in G_WIDTHS]
    with tf.variable_scope("generator", reuse=tf.AUTO_REUSE), init_weights():
        x, skips = inputs, []
        for level, channels in enumerate(widths):
            x = x if level == 0 else slim.max_pool2d(x, 2, stride=2, padding="VALID")
            x = conv_block(x, channels, is_training, f"downs_{level}")      # (N, S, S, 32) ... (N, S/16, S/16, 512)
            skips.append(x)
        for level in reversed(range(len(widths) - 1)):                      # 3, 2, 1, 0: S/8 ... S
            # Up: a 2x2 stride-2 transposed conv halves the width and doubles the size (no overlap, no
            # padding: 'VALID', no activation), then the level's conv block reads [up-sampled map, skip].
            x = slim.conv2d_transpose(x, widths[level], 2, stride=2, padding="VALID",
                                      scope=f"ups_{level}")                  # (N, 2h, 2w, w_level)
            x = conv_block(tf.concat([x, skips[level]], axis=3), widths[level], is_training,
                           f"up_blocks_{level}")                             # (N, ., ., 2 w_level) -> w_level
        return tf.tanh(slim.conv2d(x, out_channels, 1, scope="out"))        # (N, S, S, O)


def pad(x):
    """D_PAD zeros on every side of H and W: (N, H, W, C) -> (N, H + 2, W + 2, C)."""
    return tf.pad(x, [[0, 0], [D_PAD, D_PAD], [D_PAD, D_PAD], [0, 0]])


def Discriminator(inputs, outputs, width):
    """The PatchGAN without BatchNorm: (inputs (N, S, S, I), outputs
    (N, S, S, O)) -> logits (N, S/8 - 2, S/8 - 2, 1), one per patch: 6x6 for
    64x64 pairs.  What one patch sees: a 70x70 receptive field (4 -> 7 ->
    16 -> 34 -> 70 going back through the layers), 8 pixels apart; on a
    64x64 pair patch (i, j) spans rows 8i - 23 .. 8i + 46 (columns alike):
    47 to 64 rows and columns of the pair, nearly all of it.  Train and
    inference mode are the same network (no BatchNorm): no is_training."""
    with tf.variable_scope("discriminator", reuse=tf.AUTO_REUSE), init_weights():
        x = tf.concat([inputs, outputs], axis=3)                            # the pair, input channels first
        for index, (k, stride) in enumerate(D_LAYERS):
            x = slim.conv2d(pad(x), k * width, D_KERNEL, stride, padding="VALID",
                            scope=f"conv{index + 1}")                       # with a bias: no BN here
            x = leaky_relu(x)   # 64x64: (N, 32, 32, 64), (N, 16, 16, 128), (N, 8, 8, 256), (N, 7, 7, 512)
        return slim.conv2d(pad(x), 1, D_KERNEL, 1, padding="VALID", scope="conv5")   # (N, 6, 6, 1): logits


def model_info(args, palette, class_names):
    """What a checkpoint must match to be loaded into this model."""
    in_channels, out_channels = pix2pix.channels(args.direction, len(palette))
    return {"size": int(args.size), "direction": args.direction, "in_channels": in_channels,
            "out_channels": out_channels, "palette": np.asarray(palette).tolist(), "class_names": list(class_names),
            "width": int(args.width), "generator": [args.width * k for k in G_WIDTHS],
            "discriminator": [[args.width * k, stride] for k, stride in D_LAYERS], "d_norm": "none"}


def build_model(info, seed, lr, device):
    """G, D (initialised from ``seed``) and their Adam optimizers, in a new
    graph and session.  TF1 has no network objects: G and D are namespaces
    of the graph function (``net``), the placeholders (``inputs``), the
    ``output`` of inference mode, the ``variables`` (BatchNorm moving
    statistics included), the session and the device."""
    graph = tf.Graph()
    sess = make_session(graph)
    size = info["size"]
    with graph.as_default(), tf.device(device):
        tf.set_random_seed(seed)                                        # the initial weights
        inputs = tf.placeholder(tf.float32, (None, size, size, info["in_channels"]), name="inputs")
        outputs = tf.placeholder(tf.float32, (None, size, size, info["out_channels"]), name="outputs")
        generator = SimpleNamespace(net=partial(Generator, out_channels=info["out_channels"], width=info["width"]),
                                    inputs=inputs)
        discriminator = SimpleNamespace(net=partial(Discriminator, width=info["width"]), inputs=(inputs, outputs))
        generator.output = generator.net(inputs, is_training=False)     # inference mode: the moving statistics
        discriminator.output = discriminator.net(inputs, outputs)
        for network, scope in ((generator, "generator/"), (discriminator, "discriminator/")):
            network.variables, network.sess, network.device = slim.get_model_variables(scope), sess, device
        g_optimizer, d_optimizer = (tf.train.AdamOptimizer(lr, ADAM_BETAS[0], ADAM_BETAS[1], ADAM_EPS, name=name)
                                    for name in ("g_adam", "d_adam"))
        sess.run(tf.global_variables_initializer())
    return generator, discriminator, g_optimizer, d_optimizer


def translate(generator, inputs, device):
    """G(x) in inference mode (BatchNorm's moving statistics), NumPy in
    and out: (N, S, S, I) -> (N, S, S, O) in [-1, 1] (``device``: fixed in the graph)."""
    return np.concatenate([generator.sess.run(generator.output, {generator.inputs: inputs[i:i + TEST_BATCH]})
                           for i in range(0, len(inputs), TEST_BATCH)])


# ---- Losses ----
def bce(logits, target):
    """Binary cross-entropy of sigmoid(logits) against ``target`` (1: real,
    0: fake), averaged over every patch of every pair."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), target),
                                                                  logits=logits))


def discriminator_loss(real_logits, fake_logits):
    """0.5 (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)): halved, as in the paper,
    so that D learns at half G's pace."""
    return 0.5 * (bce(real_logits, 1.0) + bce(fake_logits, 0.0))


def generator_loss(fake_logits, fake_outputs, targets, gan_weight, l1_weight):
    """gan_weight * BCE(D(x, G(x)), 1) + l1_weight * mean |G(x) - y|; returns
    (loss, adversarial term, L1 term).  fake_logits None: no D (gan_weight 0)."""
    gan_term = bce(fake_logits, 1.0) if fake_logits is not None else tf.zeros(())
    l1_term = tf.reduce_mean(tf.abs(fake_outputs - targets))
    return gan_weight * gan_term + l1_weight * l1_term, gan_term, l1_term


def gradient_norms(discriminator, inputs, real_outputs, fake_outputs, eps):
    """||grad_y_hat D_i(x_i, y_hat_i)||_2 per sample, over all of H, W and C
    of y_hat_i = eps_i y_i + (1 - eps_i) G(x_i), one eps_i per sample, D_i
    the mean of sample i's patch logits; x_i is held fixed.  The samples do
    not interact in D (no BatchNorm), so the gradient of sum_i D_i holds
    every sample's own gradient.  TF1: tf.gradients adds the gradient to the
    graph as ordinary ops, which a loss made of these norms can be
    differentiated through again (double backprop; PyTorch's create_graph=True)."""
    eps = tf.reshape(eps, [-1, 1, 1, 1])
    mixed = eps * real_outputs + (1.0 - eps) * tf.stop_gradient(fake_outputs)
    scores = tf.reduce_mean(discriminator.net(inputs, mixed), axis=[1, 2, 3])   # (N,): the mean patch logit
    (grads,) = tf.gradients(tf.reduce_sum(scores), [mixed])
    return tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + NORM_EPS)   # (N,)


def gradient_penalty(norms):
    """mean_i (||grad D_i|| - 1)^2, before the weight gp_weight."""
    return tf.reduce_mean(tf.square(norms - 1.0))


# ---- Train step ----
def make_train_step(generator, discriminator, g_optimizer, d_optimizer, gan_weight, l1_weight, gp_weight):
    """One iteration: n_critic D updates, each on its own batch of pairs
    (x, y) and its own eps, then one G update on one more batch.
    D step: fake_outputs = G(x) in training mode without gradient (G's
    BatchNorm uses and updates this batch's statistics), D(x, y) and
    D(x, G(x)), the halved BCE plus gp_weight * the penalty, whose gradient
    needs the gradient of a gradient: the optimizer's tf.gradients runs back
    through gradient_norms' tf.gradients.
    G step: gan_weight * BCE(D(x, G(x)), 1) + l1_weight * L1; only G is
    updated.  With gan_weight 0 there are no D steps (d_batches empty).

    d_batches: list of (inputs, targets) NHWC; eps: list of (N,);
    g_batch: (inputs, targets).  Returns the metrics of pix2pix.FIELDS (D's
    numbers averaged over its steps).  TF1: the D step and the G step are
    added to the graph once (Adam's variables initialised here); the
    returned function runs them, one ``sess.run`` each."""
    sess = generator.sess
    with sess.graph.as_default(), tf.device(generator.device):
        inputs = tf.placeholder(tf.float32, generator.inputs.shape, name="train_inputs")
        targets = tf.placeholder(tf.float32, discriminator.inputs[1].shape, name="train_targets")
        mix = tf.placeholder(tf.float32, (None,), name="eps")
        if gan_weight > 0:
            with tf.name_scope("d_step"):
                fake_outputs = tf.stop_gradient(generator.net(inputs, is_training=True))   # BN on this batch
                # G's moving statistics move at every D step, as in torch's train-mode forward
                bn_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope="d_step/")
                real_logits, fake_logits = discriminator.net(inputs, targets), discriminator.net(inputs, fake_outputs)
                norms = gradient_norms(discriminator, inputs, targets, fake_outputs, mix)
                penalty = gradient_penalty(norms)
                d_gan = discriminator_loss(real_logits, fake_logits)
                d_loss = d_gan + gp_weight * penalty
                d_update = d_optimizer.minimize(d_loss, var_list=tf.trainable_variables("discriminator/"))
                d_op = tf.group(d_update, *bn_updates)
                row = tf.stack([d_loss, d_gan, penalty, tf.reduce_mean(norms), tf.reduce_mean(tf.sigmoid(real_logits)),
                                tf.reduce_mean(tf.sigmoid(fake_logits))])

        with tf.name_scope("g_step"):
            fake_outputs = generator.net(inputs, is_training=True)
            fake_logits = discriminator.net(inputs, fake_outputs) if gan_weight > 0 else None
            g_loss, gan_term, l1_term = generator_loss(fake_logits, fake_outputs, targets, gan_weight, l1_weight)
            g_update = g_optimizer.minimize(g_loss, var_list=tf.trainable_variables("generator/"))   # D frozen
            g_op = tf.group(g_update, *tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope="g_step/"))
            g_values = tf.stack([g_loss, l1_term, gan_term])
        sess.run(tf.variables_initializer(g_optimizer.variables() + d_optimizer.variables()))
    sess.graph.finalize()                                         # nothing is added while training

    def train_step(d_batches, eps, g_batch):
        rows = [sess.run([d_op, row], {inputs: x, targets: y, mix: e})[1] for (x, y), e in zip(d_batches, eps)]
        _, (g_loss_value, l1_value, gan_value) = sess.run([g_op, g_values], dict(zip((inputs, targets), g_batch)))
        values = {"g_loss": float(g_loss_value), "g_l1": float(l1_value)}
        if rows:
            d_loss_value, d_gan_value, penalty_value, grad_norm, real, fake = np.mean(rows, axis=0).tolist()
            values.update(d_loss=d_loss_value, d_gan=d_gan_value, gradient_penalty=penalty_value,
                          grad_norm=grad_norm, g_gan=float(gan_value), d_real=real, d_fake=fake)
        return values

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


def optimizer_variables(sess, g_optimizer, d_optimizer):
    with sess.graph.as_default():   # TF1 looks an optimizer's variables (moments, beta powers) up in its graph
        return g_optimizer.variables() + d_optimizer.variables()


def save_checkpoint(run, iteration, networks, feed, mix_sampler, info, args):
    generator, discriminator, g_optimizer, d_optimizer = networks
    sess = generator.sess

    def write_files(folder):
        save_variables(sess, generator.variables, folder / G_FILE)    # BatchNorm moving statistics included
        save_variables(sess, discriminator.variables, folder / D_FILE)
        # No TF random state to keep: the graph draws random numbers only for the initial weights.
        save_variables(sess, optimizer_variables(sess, g_optimizer, d_optimizer), folder / OPT_FILE)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "feed": feed.state_dict(), "mix_sampler": mix_sampler.state_dict(),
        "generator_steps": iteration, "discriminator_steps": d_steps(iteration, args), "l1_weight": args.l1_weight,
        "gan_weight": args.gan_weight, "n_critic": args.n_critic, "gp_weight": args.gp_weight})


def d_steps(iterations, args):
    """D updates in ``iterations`` iterations: n_critic each (none without D)."""
    return iterations * args.n_critic if args.gan_weight > 0 else 0


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state (the
    batch order, augmentation and eps are in meta.json).  A broken file: one line."""
    generator, discriminator, *optimizers = networks
    for network, name in ((generator, G_FILE), (discriminator, D_FILE)):
        load_variables(network.sess, network.variables, folder / name)
    if optimizers:
        load_variables(generator.sess, optimizer_variables(generator.sess, *optimizers), folder / OPT_FILE)


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    shown = pix2pix.subset(load_data(args, "test", (data.palette, data.class_names)))   # the training pictures' pairs
    info = model_info(args, data.palette, data.class_names)
    cli.seed_everything(args.seed)           # TF's graph seed is set by build_model (tf.set_random_seed)
    feed = pix2pix.PairFeed(data, args.batch_size, args.seed, args.direction)   # augmented (inputs, targets)
    mix_sampler = pix2pix.MixSampler(args.seed)                    # eps_i of every D step (stream PENALTY_MIX)
    networks = build_model(info, args.seed, args.lr, device)
    generator = networks[0]
    train_step = make_train_step(*networks, gan_weight=args.gan_weight, l1_weight=args.l1_weight,
                                 gp_weight=args.gp_weight)                 # TF1: before a resume (Adam's variables)
    start = 0
    if args.resume:
        folder, meta = run.load_checkpoint_meta(args.resume, info)
        load_checkpoint(folder, networks)
        feed.load_state_dict(meta["feed"])
        mix_sampler.load_state_dict(meta["mix_sampler"])
        start = meta["generator_steps"]
        if start >= args.iters:
            print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
            return
    run.prepare_training(args, resume=bool(args.resume))
    n_critic = args.n_critic if args.gan_weight > 0 else 0       # no D: no D steps
    shown_inputs, _ = pix2pix.network_pairs(shown.photos, shown.classes, args.direction, shown.n_classes)

    with runs.Progress(run, start, args.iters, FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            # in this order: n_critic fresh batches for D, their eps, one more batch for G (NHWC, as they are)
            d_batches = [feed.next() for _ in range(n_critic)]
            eps = [mix_sampler(args.batch_size) for _ in range(n_critic)]
            g_batch = feed.next()
            losses = train_step(d_batches, eps, g_batch)
            progress.log(iteration, losses)
            if progress.due(iteration, args.sample_every):
                pix2pix.save_samples(run, iteration, args.direction, shown,
                                     translate(generator, shown_inputs, device))
            if progress.due(iteration, args.checkpoint_every):
                save_checkpoint(run, iteration, networks, feed, mix_sampler, info, args)
                if progress.plots_due(iteration):
                    pix2pix.plot_training(run, FIELDS)


# ---- Test ----
def test(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    palette, class_names = pix2pix.read_palette(args)                 # the training masks' colours
    data = load_data(args, "test", (palette, class_names))
    info = model_info(args, palette, class_names)
    folder, _ = run.load_checkpoint_meta(args.checkpoint, info)
    generator, discriminator = build_model(info, args.seed, args.lr, device)[:2]
    load_checkpoint(folder, (generator, discriminator))
    inputs, _ = pix2pix.network_pairs(data.photos, data.classes, args.direction, data.n_classes)
    return pix2pix.report_test(run, args.direction, data, translate(generator, inputs, device))


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
