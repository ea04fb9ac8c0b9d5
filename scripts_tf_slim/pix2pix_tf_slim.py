"""pix2pix -- TF-Slim

Question: translate a newt photo into its segmentation mask (three classes:
background, akahara, madara; 16 training pairs, 6 test pairs, 64x64) with a
conditional GAN, and the reverse with --direction mask2photo.
G: a U-Net, per level 2 x [Conv3x3 + ReLU + BatchNorm], widths 32, 64, 128,
256, 512, four 2x2 max-pool downs, 2x2 stride-2 transposed-convolution ups,
each followed by the concatenation with the skip of its level, a 1x1 conv
to the output channels and tanh.  photo2mask: the output has one channel
per class in [-1, 1], the target is the one-hot mask scaled to [-1, 1], the
predicted class is the argmax; mask2photo: 3 channels, the photo.
D: the paper's PatchGAN on the pair (input, output) concatenated along the
channels: 4x4 convs C64 (stride 2, no norm) - C128 (s2, BN) - C256 (s2, BN)
- C512 (s1, BN) - C1 (s1), LeakyReLU 0.2: a logit per patch, a 6x6 map for
a 64x64 pair.  Losses, binary cross-entropy on logits per patch:
    D: 0.5 (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0))      (the fake detached)
    G: gan_weight * BCE(D(x, G(x)), 1) + l1_weight * mean |G(x) - y|
with l1_weight 100 (the paper) and gan_weight 1; --gan-weight 0 trains the
same U-Net with L1 alone (the paper's ablation: no D).  Adam lr 2e-4, betas
(0.5, 0.999), batch 16, 5000 iterations; every batch augmented the same way
for photo and mask (flips, rotation: common/augment.py).  --width W scales
both networks (G W..16W, D 2W..16W; the question's W is 32), --size the
pairs (a multiple of 16, at least 32).
Framework: TF-Slim (TensorFlow 1-style graph and session through
tf.compat.v1, NHWC like common/).
Paper: Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with
Conditional Adversarial Networks", CVPR 2017 (arXiv:1611.07004).
How to run:
    python scripts_tf_slim/pix2pix_tf_slim.py                      # photo -> mask, train then test
    python scripts_tf_slim/pix2pix_tf_slim.py --direction mask2photo
    python scripts_tf_slim/pix2pix_tf_slim.py --gan-weight 0 --out-dir out/pix2pix/l1_only
    python scripts_tf_slim/pix2pix_tf_slim.py --data-dir my_pairs    # <dir>/{train,test}/{images,seg_images}/<class>/
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

QUESTION = "pix2pix"
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
BN_EPS = 1e-5                   # BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
BN_SCALE = True                 # slim's batch_norm has no gamma by default (scale=False)
ADAM_BETAS = (0.5, 0.999)
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly (TF1 adds it before the bias correction, torch after)
TEST_BATCH = 16                 # pairs per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE = "generator.npz", "discriminator.npz", "optimizers.npz"   # files of a checkpoint


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "pix2pix: U-Net + PatchGAN (TF-Slim).", dataset="imori",
                              datasets=("imori",), iters=5000, batch_size=16, lr=2e-4, sample_every=500,
                              checkpoint_every=500, extra=pix2pix.add_flags(QUESTION))
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
    """BatchNorm over the channels, gamma 1, beta 0, eps 1e-5, decay 0.9.
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


def Discriminator(inputs, outputs, width, is_training=True):
    """The PatchGAN: (inputs (N, S, S, I), outputs (N, S, S, O)) -> logits
    (N, S/8 - 2, S/8 - 2, 1), one per patch: 6x6 for 64x64 pairs.
    What one patch sees: its receptive field is 70x70 pixels (the paper's
    70x70 PatchGAN: 4 -> 7 -> 16 -> 34 -> 70 going back through the
    layers), 8 pixels apart; on a 64x64 pair the window of patch (i, j)
    spans rows 8i - 23 .. 8i + 46 (columns alike), so after the zero padding
    a patch sees 47 to 64 rows and columns of the pair: nearly all of it."""
    with tf.variable_scope("discriminator", reuse=tf.AUTO_REUSE), init_weights():
        x = tf.concat([inputs, outputs], axis=3)                            # the pair, input channels first
        for index, (k, stride) in enumerate(D_LAYERS):
            norm = index > 0                                                # no BatchNorm on the first layer
            # a conv followed by BatchNorm has no bias (BN's beta is one), as in the paper's code
            x = slim.conv2d(pad(x), k * width, D_KERNEL, stride, padding="VALID",
                            biases_initializer=None if norm else tf.zeros_initializer(), scope=f"conv{index + 1}")
            if norm:
                x = batch_norm(x, is_training, f"bn{index + 1}")
            x = leaky_relu(x)   # 64x64: (N, 32, 32, 64), (N, 16, 16, 128), (N, 8, 8, 256), (N, 7, 7, 512)
        return slim.conv2d(pad(x), 1, D_KERNEL, 1, padding="VALID", scope="conv5")   # (N, 6, 6, 1): logits


def model_info(args, palette, class_names):
    """What a checkpoint must match to be loaded into this model."""
    in_channels, out_channels = pix2pix.channels(args.direction, len(palette))
    return {"size": int(args.size), "direction": args.direction, "in_channels": in_channels,
            "out_channels": out_channels, "palette": np.asarray(palette).tolist(), "class_names": list(class_names),
            "width": int(args.width), "generator": [args.width * k for k in G_WIDTHS],
            "discriminator": [[args.width * k, stride] for k, stride in D_LAYERS]}


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
        discriminator.output = discriminator.net(inputs, outputs, is_training=False)
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


# ---- Train step ----
def make_train_step(generator, discriminator, g_optimizer, d_optimizer, gan_weight, l1_weight):
    """One iteration on one batch of pairs (x, y), NHWC:
    1. fake_outputs = G(x), once, in training mode;
    2. D step: D(x, y) and D(x, G(x)) in two separate batches (BatchNorm
       statistics per batch), the halved BCE; no gradient reaches G;
    3. G step: the updated D judges the same (x, G(x)), now labelled real,
       plus the L1 term; only G is updated.
    With gan_weight 0 steps 2 and D's part of 3 are left out: the U-Net
    learns from L1 alone.  Returns the metrics of pix2pix.FIELDS, D's
    numbers measured in its step (none without D).
    TF1: this adds the iteration to the graph once (and Adam's variables,
    which it initialises); the returned function runs it as one ``sess.run``.
    D's BatchNorm moving statistics move at each of its three forward
    passes, as in torch's train mode, one after the other (control
    dependencies: two updates of one variable in one run would race)."""
    sess = generator.sess
    with sess.graph.as_default(), tf.device(generator.device):
        inputs = tf.placeholder(tf.float32, generator.inputs.shape, name="train_inputs")
        targets = tf.placeholder(tf.float32, discriminator.inputs[1].shape, name="train_targets")

        def updates(scope):   # the BatchNorm moving-average updates made in one name scope
            return tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope=scope)

        with tf.name_scope("g_forward"):
            fake_outputs = generator.net(inputs, is_training=True)
        ops, fake_logits = updates("g_forward/"), None                  # G's moving statistics: once
        if gan_weight > 0:
            with tf.name_scope("d_real"):
                real_logits = discriminator.net(inputs, targets, is_training=True)
            with tf.name_scope("d_fake"), tf.control_dependencies(updates("d_real/")):
                d_fake_logits = discriminator.net(inputs, tf.stop_gradient(fake_outputs))   # no gradient reaches G
            d_loss = discriminator_loss(real_logits, d_fake_logits)
            d_update = d_optimizer.minimize(d_loss, var_list=tf.trainable_variables("discriminator/"))
            with tf.name_scope("g_judge"), tf.control_dependencies([d_update, *updates("d_fake/")]):
                fake_logits = discriminator.net(inputs, fake_outputs)   # the updated D, in training mode
            ops += [d_update, *updates("g_judge/")]
        g_loss, gan_term, l1_term = generator_loss(fake_logits, fake_outputs, targets, gan_weight, l1_weight)
        g_update = g_optimizer.minimize(g_loss, var_list=tf.trainable_variables("generator/"))   # D frozen: only G
        train_op = tf.group(g_update, *ops)
        if gan_weight > 0:
            values = tf.stack([d_loss, g_loss, gan_term, l1_term, tf.reduce_mean(tf.sigmoid(real_logits)),
                               tf.reduce_mean(tf.sigmoid(d_fake_logits))])
            names = FIELDS
        else:
            values, names = tf.stack([g_loss, l1_term]), ["g_loss", "g_l1"]
        sess.run(tf.variables_initializer(g_optimizer.variables() + d_optimizer.variables()))
    sess.graph.finalize()                                         # nothing is added while training

    def train_step(input_batch, target_batch):
        _, out = sess.run([train_op, values], {inputs: input_batch, targets: target_batch})
        return dict(zip(names, out.tolist()))

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


def save_checkpoint(run, iteration, networks, feed, info, args):
    generator, discriminator, g_optimizer, d_optimizer = networks
    sess = generator.sess

    def write_files(folder):
        save_variables(sess, generator.variables, folder / G_FILE)    # BatchNorm moving statistics included
        save_variables(sess, discriminator.variables, folder / D_FILE)
        # No TF random state to keep: the graph draws random numbers only for the initial weights.
        save_variables(sess, optimizer_variables(sess, g_optimizer, d_optimizer), folder / OPT_FILE)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "feed": feed.state_dict(), "generator_steps": iteration,
        "discriminator_steps": iteration if args.gan_weight > 0 else 0, "l1_weight": args.l1_weight,
        "gan_weight": args.gan_weight})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state (the
    batch order and augmentation are in meta.json).  A broken file: one line."""
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
    networks = build_model(info, args.seed, args.lr, device)
    generator = networks[0]
    train_step = make_train_step(*networks, gan_weight=args.gan_weight,
                                 l1_weight=args.l1_weight)                 # TF1: before a resume (Adam's variables)
    start = 0
    if args.resume:
        folder, meta = run.load_checkpoint_meta(args.resume, info)
        load_checkpoint(folder, networks)
        feed.load_state_dict(meta["feed"])
        start = meta["generator_steps"]
        if start >= args.iters:
            print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
            return
    run.prepare_training(args, resume=bool(args.resume))
    shown_inputs, _ = pix2pix.network_pairs(shown.photos, shown.classes, args.direction, shown.n_classes)

    with runs.Progress(run, start, args.iters, FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            inputs, targets = feed.next()                          # NHWC in [-1, 1], augmented, as they are
            losses = train_step(inputs, targets)
            progress.log(iteration, losses)
            if progress.due(iteration, args.sample_every):
                pix2pix.save_samples(run, iteration, args.direction, shown,
                                     translate(generator, shown_inputs, device))
            if progress.due(iteration, args.checkpoint_every):
                save_checkpoint(run, iteration, networks, feed, info, args)
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
