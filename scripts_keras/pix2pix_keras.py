"""pix2pix -- Keras 3

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
Framework: Keras 3 on the TensorFlow backend (NHWC, like common/).
Paper: Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with
Conditional Adversarial Networks", CVPR 2017 (arXiv:1611.07004).
How to run:
    python scripts_keras/pix2pix_keras.py                      # photo -> mask, train then test
    python scripts_keras/pix2pix_keras.py --direction mask2photo
    python scripts_keras/pix2pix_keras.py --gan-weight 0 --out-dir out/pix2pix/l1_only
    python scripts_keras/pix2pix_keras.py --data-dir my_pairs    # <dir>/{train,test}/{images,seg_images}/<class>/
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import cli, compat, pix2pix, runs  # noqa: E402

keras = compat.import_keras()  # Keras 3, TensorFlow backend, quiet TF start-up
import tensorflow as tf  # noqa: E402  (the backend: tf.function and GradientTape for the train step, GPU query)
from keras import layers  # noqa: E402

QUESTION = "pix2pix"
FRAMEWORK = "keras"


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).
FIELDS = pix2pix.FIELDS[QUESTION]      # metrics.csv columns (common/pix2pix.py says what each is)
G_WIDTHS = (1, 2, 4, 8, 16)     # the U-Net's levels, 64x64 down to 4x4, times --width (32: 32 ... 512)
D_LAYERS = ((2, 2), (4, 2), (8, 2), (16, 1))   # the PatchGAN's (width / --width, stride) before its C1 (stride 1)
D_KERNEL, D_PAD = 4, 1          # D's 4x4 convs pad 1 pixel of zeros on every side, at stride 2 and 1
# (Keras' padding="same" pads 1/1 at stride 2, the same, but 1/2 at stride 1, which would keep 8x8 where the
# paper's D has 7x7: so ZeroPadding2D(1), then the conv with padding="valid")
LEAKY_SLOPE = 0.2               # D's LeakyReLU slope, set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (pix2pix and DCGAN papers), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
                                # (the running variance takes the unbiased batch variance, except in
                                # Keras 3, which takes the biased one: a factor n/(n-1), no switch)
ADAM_BETAS = (0.5, 0.999)
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
                                # (Keras adds it before the bias correction, PyTorch after)
JIT_COMPILE = False             # XLA off, as in dcgan_keras.py (README)
TEST_BATCH = 16                 # pairs per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE = "generator.weights.h5", "discriminator.weights.h5", "optimizers.npz"   # a checkpoint


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "pix2pix: U-Net + PatchGAN (Keras 3).", dataset="imori",
                              datasets=("imori",), iters=5000, batch_size=16, lr=2e-4, sample_every=500,
                              checkpoint_every=500, extra=pix2pix.add_flags(QUESTION))
    return pix2pix.check_args(cli.parse_args(parser, argv))


# ---- Data ----
def load_data(args, split, palette=None):
    """Photos (N, S, S, 3) in [-1, 1] and class maps (N, S, S) of a split,
    the palette of the training masks (common loader, same in every framework)."""
    return pix2pix.load_pairs(args, split, palette)


# Keras is NHWC like `common`: the pairs go in as they are (the PyTorch
# and Chainer versions transpose them to NCHW and back here).


# ---- Model ----
# The layers are named after the PyTorch version's modules (downs_0_3 is
# downs.0.3 there, net_2 is net.2), so that a weight is found by its name.
def init_weights(rng):
    """N(0, 0.02) weights drawn from ``rng`` (a keras.random.SeedGenerator,
    so building a model leaves Keras' global seed alone) and zero biases:
    the same explicit rule in all four versions (the defaults all differ)."""
    return {"kernel_initializer": keras.initializers.RandomNormal(0.0, INIT_STD, seed=rng),
            "bias_initializer": "zeros"}


def batch_norm(name):
    """BatchNorm over the channels, gamma 1, beta 0, eps 1e-5, decay 0.9."""
    return layers.BatchNormalization(momentum=BN_DECAY, epsilon=BN_EPS, gamma_initializer="ones",
                                      beta_initializer="zeros", name=name)


def conv_block(x, channels, rng, name):
    """One U-Net level: 2 x [Conv3x3 (padding "same": 1 a side at stride 1) +
    ReLU + BatchNorm], in this order: (N, H, W, I) -> (N, H, W, O)."""
    x = layers.Conv2D(channels, 3, padding="same", name=name + "_0", **init_weights(rng))(x)
    x = batch_norm(name + "_2")(keras.ops.relu(x))
    x = layers.Conv2D(channels, 3, padding="same", name=name + "_3", **init_weights(rng))(x)
    return batch_norm(name + "_5")(keras.ops.relu(x))


# Generator and Discriminator are functions named like the PyTorch classes;
# each returns a Keras functional model, called as generator(inputs) and
# discriminator([inputs, outputs]).  Any size S divisible by 16 goes in.
def Generator(in_channels, out_channels, width, rng):
    """The U-Net: inputs (N, S, S, I) -> outputs (N, S, S, O) in [-1, 1]."""
    widths = [width * k for k in G_WIDTHS]
    inputs = keras.Input(shape=(None, None, in_channels))
    x, skips = inputs, []
    for level, w in enumerate(widths):
        if level > 0:
            x = keras.ops.max_pool(x, 2, strides=2)                  # (N, h/2, w/2, C)
        x = conv_block(x, w, rng, f"downs_{level}")                  # (N, S, S, 32) ... (N, S/16, S/16, 512)
        skips.append(x)
    for level in reversed(range(len(widths) - 1)):                   # 3, 2, 1, 0: S/8 ... S
        # Up: a 2x2 stride-2 transposed conv halves the width and doubles the size (no overlap, no padding,
        # no activation), then the level's conv block reads [up-sampled map, skip] (that order).
        x = layers.Conv2DTranspose(widths[level], 2, strides=2, padding="valid", name=f"ups_{level}",
                                   **init_weights(rng))(x)           # (N, 2h, 2w, w_level)
        x = keras.ops.concatenate([x, skips[level]], axis=-1)         # (N, 2h, 2w, 2 w_level)
        x = conv_block(x, widths[level], rng, f"up_blocks_{level}")  # (N, 2h, 2w, w_level)
    x = layers.Conv2D(out_channels, 1, name="out", **init_weights(rng))(x)   # (N, S, S, O)
    return keras.Model(inputs, keras.ops.tanh(x), name="generator")


def Discriminator(in_channels, out_channels, width, rng):
    """The PatchGAN: (inputs (N, S, S, I), outputs (N, S, S, O)) -> logits
    (N, S/8 - 2, S/8 - 2, 1), one per patch: 6x6 for 64x64 pairs.
    What one patch sees: its receptive field is 70x70 pixels (the paper's
    70x70 PatchGAN: 4 -> 7 -> 16 -> 34 -> 70 going back through the
    layers), 8 pixels apart; on a 64x64 pair the window of patch (i, j)
    spans rows 8i - 23 .. 8i + 46 (columns alike), so after the zero padding
    a patch sees 47 to 64 rows and columns of the pair: nearly all of it."""
    inputs, outputs = keras.Input(shape=(None, None, in_channels)), keras.Input(shape=(None, None, out_channels))
    x = keras.ops.concatenate([inputs, outputs], axis=-1)            # the pair, input channels first
    index = 0                                                         # PyTorch's position in its Sequential
    for layer, (k, stride) in enumerate(D_LAYERS):
        norm = layer > 0                                              # no BatchNorm on the first layer
        # a conv followed by BatchNorm has no bias (BN's beta is one), as in the paper's code
        x = layers.ZeroPadding2D(D_PAD)(x)
        x = layers.Conv2D(k * width, D_KERNEL, stride, padding="valid", use_bias=not norm, name=f"net_{index}",
                          **init_weights(rng))(x)
        if norm:
            x = batch_norm(f"net_{index + 1}")(x)
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE)(x)
        index += 3 if norm else 2
        # 64x64: (N, 32, 32, 64), (N, 16, 16, 128), (N, 8, 8, 256), (N, 7, 7, 512)
    x = layers.ZeroPadding2D(D_PAD)(x)
    logits = layers.Conv2D(1, D_KERNEL, 1, padding="valid", name=f"net_{index}", **init_weights(rng))(x)
    return keras.Model([inputs, outputs], logits, name="discriminator")   # (N, 6, 6, 1): logits


def model_info(args, palette, class_names):
    """What a checkpoint must match to be loaded into this model."""
    in_channels, out_channels = pix2pix.channels(args.direction, len(palette))
    return {"size": int(args.size), "direction": args.direction, "in_channels": in_channels,
            "out_channels": out_channels, "palette": np.asarray(palette).tolist(), "class_names": list(class_names),
            "width": int(args.width), "generator": [args.width * k for k in G_WIDTHS],
            "discriminator": [[args.width * k, stride] for k, stride in D_LAYERS]}


def build_model(info, seed, lr, device):
    """G, D (initialised from ``seed``, G first) and their Adam optimizers,
    Adam's m and v made here (so that a checkpoint can fill them)."""
    with keras.device(device):   # every variable of the model goes there
        rng = keras.random.SeedGenerator(seed)
        generator = Generator(info["in_channels"], info["out_channels"], info["width"], rng)
        discriminator = Discriminator(info["in_channels"], info["out_channels"], info["width"], rng)
        # Named optimizers: Keras' automatic names (adam, adam_1, ...) count up across models, and a
        # different name in a retraced step can change its last bits, breaking a bit-for-bit resume.
        g_optimizer, d_optimizer = (keras.optimizers.Adam(learning_rate=lr, beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1],
                                                          epsilon=ADAM_EPS, name=f"{prefix}_optimizer")
                                      for prefix in ('g', 'd'))
        g_optimizer.build(generator.trainable_variables)
        d_optimizer.build(discriminator.trainable_variables)
    return generator, discriminator, g_optimizer, d_optimizer


# Inference: plain eager calls with training=False (a handful per run, no graph).
def translate(generator, inputs, device):
    """G(x) in inference mode (BatchNorm's moving statistics), NumPy in
    and out: (N, S, S, I) -> (N, S, S, O) in [-1, 1]."""
    with keras.device(device):
        return np.concatenate([keras.ops.convert_to_numpy(generator(inputs[i:i + TEST_BATCH], training=False))
                               for i in range(0, len(inputs), TEST_BATCH)])


# ---- Losses ----
def bce(logits, target):
    """Binary cross-entropy of sigmoid(logits) against ``target`` (1: real,
    0: fake), averaged over every patch of every pair."""
    # keras.ops.binary_crossentropy is per element (no reduction); from_logits
    # is tf.nn.sigmoid_cross_entropy_with_logits, max(l, 0) - t * l + log(1 + exp(-|l|))
    return keras.ops.mean(keras.ops.binary_crossentropy(keras.ops.full_like(logits, target), logits,
                                                        from_logits=True))


def discriminator_loss(real_logits, fake_logits):
    """0.5 (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)): halved, as in the paper,
    so that D learns at half G's pace."""
    return 0.5 * (bce(real_logits, 1.0) + bce(fake_logits, 0.0))


def generator_loss(fake_logits, fake_outputs, targets, gan_weight, l1_weight):
    """gan_weight * BCE(D(x, G(x)), 1) + l1_weight * mean |G(x) - y|; returns
    (loss, adversarial term, L1 term).  fake_logits None: no D (gan_weight 0)."""
    gan_term = bce(fake_logits, 1.0) if fake_logits is not None else keras.ops.zeros(())
    l1_term = keras.ops.mean(keras.ops.abs(fake_outputs - targets))
    return gan_weight * gan_term + l1_weight * l1_term, gan_term, l1_term


# ---- Train step ----
# No compiled models and no `trainable` flags (dcgan_keras.py says why): each update
# takes its gradients with tf.GradientTape and applies them to one network's variables.
def make_train_step(generator, discriminator, g_optimizer, d_optimizer, gan_weight, l1_weight,
                    jit_compile=JIT_COMPILE):
    """One iteration on one batch of pairs (x, y), NHWC:
    1. fake_outputs = G(x), once, in training mode, on the outer tape;
    2. D step, with the outer tape paused: D(x, y) and D(x, G(x)) in two
       separate batches (BatchNorm statistics per batch), the halved BCE;
       no gradient reaches G (stop_gradient, and only D's variables are updated);
    3. G step: the updated D judges the same (x, G(x)), now labelled real,
       plus the L1 term; the outer tape differentiates through D to G's
       variables, and only G's are updated.
    With gan_weight 0 steps 2 and D's part of 3 are left out: the U-Net
    learns from L1 alone.  Returns the metrics of pix2pix.FIELDS, D's
    numbers measured in its step (none without D)."""
    g_optimizer.build(generator.trainable_variables)       # Adam's m and v, made here rather than in the graph
    d_optimizer.build(discriminator.trainable_variables)   # (no-ops when build_model made them)

    # One TensorFlow graph, traced once on the first call (the batch shapes never change).
    @tf.function(jit_compile=jit_compile)
    def graph_step(inputs, targets):
        with tf.GradientTape() as g_tape:
            fake_outputs = generator(inputs, training=True)
            fake_logits = None
            if gan_weight > 0:                                      # Python: decided when the graph is traced
                with g_tape.stop_recording():
                    with tf.GradientTape() as d_tape:
                        real_logits = discriminator([inputs, targets], training=True)
                        d_fake_logits = discriminator([inputs, keras.ops.stop_gradient(fake_outputs)],
                                                      training=True)
                        d_loss = discriminator_loss(real_logits, d_fake_logits)
                    d_gradients = d_tape.gradient(d_loss, discriminator.trainable_variables)
                    d_optimizer.apply_gradients(zip(d_gradients, discriminator.trainable_variables))
                # the graph runs this after D's update (tf.function orders the variable reads and writes)
                fake_logits = discriminator([inputs, fake_outputs], training=True)
            g_loss, gan_term, l1_term = generator_loss(fake_logits, fake_outputs, targets, gan_weight, l1_weight)
        g_gradients = g_tape.gradient(g_loss, generator.trainable_variables)
        g_optimizer.apply_gradients(zip(g_gradients, generator.trainable_variables))
        if gan_weight == 0:
            return keras.ops.stack([g_loss, l1_term])
        return keras.ops.stack([d_loss, g_loss, gan_term, l1_term, keras.ops.mean(keras.ops.sigmoid(real_logits)),
                                keras.ops.mean(keras.ops.sigmoid(d_fake_logits))])

    def train_step(inputs, targets):
        values = graph_step(inputs, targets).numpy().tolist()        # one device -> host copy
        return dict(zip(("g_loss", "g_l1") if gan_weight == 0 else FIELDS, values))

    train_step.graph_step = graph_step   # for the tests: graph_step.experimental_get_tracing_count()
    return train_step


# ---- Train ----
def save_checkpoint(run, iteration, networks, feed, info, args):
    generator, discriminator, g_optimizer, d_optimizer = networks

    def write_files(folder):
        generator.save_weights(folder / G_FILE)      # BatchNorm moving statistics included
        discriminator.save_weights(folder / D_FILE)
        optimizer_state = {}
        for prefix, optimizer in (("g", g_optimizer), ("d", d_optimizer)):
            store = {}
            optimizer.save_own_variables(store)   # step count, learning rate, Adam's m and v
            optimizer_state.update({f"{prefix}_{key}": value for key, value in store.items()})
        np.savez(folder / OPT_FILE, **optimizer_state)
        # (nothing random runs in Keras: the batches and their augmentation are NumPy's, their state in meta)
    run.save_checkpoint(iteration, write_files, {
        "model": info, "feed": feed.state_dict(), "generator_steps": iteration,
        "discriminator_steps": iteration if args.gan_weight > 0 else 0, "l1_weight": args.l1_weight,
        "gan_weight": args.gan_weight})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state (the
    batch order and augmentation are in meta.json).  The optimizer file is
    read without unpickling; a broken file: one line."""
    generator, discriminator, *optimizers = networks
    for network, name in ((generator, G_FILE), (discriminator, D_FILE)):
        with runs.reading(folder / name):
            network.load_weights(folder / name)
    if optimizers:
        optimizer_state = runs.load_npz(folder / OPT_FILE)   # Adam's m and v were built by build_model
        with runs.reading(folder / OPT_FILE):
            for prefix, optimizer in zip(("g", "d"), optimizers):
                optimizer.load_own_variables({key[len(prefix) + 1:]: value for key, value in optimizer_state.items()
                                              if key.startswith(prefix + "_")})


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    shown = pix2pix.subset(load_data(args, "test", (data.palette, data.class_names)))   # the training pictures' pairs
    info = model_info(args, data.palette, data.class_names)
    cli.seed_everything(args.seed)
    keras.utils.set_random_seed(args.seed)   # Keras' global seed (the weights draw from the model's own)
    feed = pix2pix.PairFeed(data, args.batch_size, args.seed, args.direction)   # augmented (inputs, targets)
    networks = build_model(info, args.seed, args.lr, device)
    generator = networks[0]
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
    train_step = make_train_step(*networks, gan_weight=args.gan_weight, l1_weight=args.l1_weight)
    shown_inputs, _ = pix2pix.network_pairs(shown.photos, shown.classes, args.direction, shown.n_classes)

    with keras.device(device), runs.Progress(run, start, args.iters, FIELDS, args.log_every,
                                             resume=bool(args.resume)) as progress:
        for iteration in progress:
            inputs, targets = feed.next()                          # NHWC in [-1, 1], augmented
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
