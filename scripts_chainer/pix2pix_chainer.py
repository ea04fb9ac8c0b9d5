"""pix2pix -- Chainer

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
Framework: Chainer (NCHW inside; common/ speaks NHWC).
Paper: Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with
Conditional Adversarial Networks", CVPR 2017 (arXiv:1611.07004).
How to run:
    python scripts_chainer/pix2pix_chainer.py                      # photo -> mask, train then test
    python scripts_chainer/pix2pix_chainer.py --direction mask2photo
    python scripts_chainer/pix2pix_chainer.py --gan-weight 0 --out-dir out/pix2pix/l1_only
    python scripts_chainer/pix2pix_chainer.py --data-dir my_pairs    # <dir>/{train,test}/{images,seg_images}/<class>/
"""
# ---- Setup ----
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import cli, compat, numpy_rng, pix2pix, runs  # noqa: E402

chainer = compat.import_chainer()  # Chainer 7.8.1 needs a shim to import on this stack
import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402

QUESTION = "pix2pix"
FRAMEWORK = "chainer"


def pick_device(choice):
    gpu = cli.resolve_device(choice, chainer.backends.cuda.available) == "gpu"
    return chainer.get_device("@cupy:0" if gpu else "@numpy")


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).
FIELDS = pix2pix.FIELDS[QUESTION]      # metrics.csv columns (common/pix2pix.py says what each is)
G_WIDTHS = (1, 2, 4, 8, 16)     # the U-Net's levels, 64x64 down to 4x4, times --width (32: 32 ... 512)
D_LAYERS = ((2, 2), (4, 2), (8, 2), (16, 1))   # the PatchGAN's (width / --width, stride) before its C1 (stride 1)
D_KERNEL, D_PAD = 4, 1          # D's 4x4 convs pad 1 pixel of zeros on every side, at stride 2 and 1
# (TF 'SAME' pads 1/1 at stride 2, the same, but 1/2 at stride 1, which would keep 8x8 where the paper's D
# has 7x7: the other versions pad explicitly, then convolve 'VALID')
LEAKY_SLOPE = 0.2               # D's LeakyReLU slope, set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (pix2pix and DCGAN papers), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
ADAM_BETAS = (0.5, 0.999)
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
                                # (Chainer adds it before the bias correction, PyTorch after)
TEST_BATCH = 16                 # pairs per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE, RNG_FILE = "generator.npz", "discriminator.npz", "optimizers.npz", "numpy_rng.npz"


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "pix2pix: U-Net + PatchGAN (Chainer).", dataset="imori",
                              datasets=("imori",), iters=5000, batch_size=16, lr=2e-4, sample_every=500,
                              checkpoint_every=500, extra=pix2pix.add_flags(QUESTION))
    return pix2pix.check_args(cli.parse_args(parser, argv))


# ---- Data ----
def load_data(args, split, palette=None):
    """Photos (N, S, S, 3) in [-1, 1] and class maps (N, S, S) of a split,
    the palette of the training masks (common loader, same in every framework)."""
    return pix2pix.load_pairs(args, split, palette)


def to_nchw(images):
    """NHWC (common) -> NCHW (Chainer), a contiguous copy."""
    return np.ascontiguousarray(np.asarray(images, np.float32).transpose(0, 3, 1, 2))


def to_nhwc(outputs):
    """NCHW (Chainer) -> NHWC NumPy array."""
    return np.ascontiguousarray(chainer.backends.cuda.to_cpu(outputs).transpose(0, 2, 3, 1))


# ---- Model ----
def init_weights(rng):
    """N(0, 0.02) weights, zero biases (BatchNorm gamma 1 and beta 0 in
    batch_norm): the same explicit rule in all four versions (the defaults
    all differ).  ``rng`` is a numpy.random.RandomState, so building a model
    leaves NumPy's global generator alone."""
    return {"initialW": chainer.initializers.Normal(INIT_STD, rng=rng),
            "initial_bias": chainer.initializers.Zero()}


def batch_norm(channels):
    """BatchNorm over the channels, eps 1e-5, decay 0.9."""
    return L.BatchNormalization(channels, decay=BN_DECAY, eps=BN_EPS, initial_gamma=chainer.initializers.One(),
                                initial_beta=chainer.initializers.Zero())


def conv_block(in_channels, out_channels, rng):
    """One U-Net level: 2 x [Conv3x3 (pad 1, = 'SAME') + ReLU + BatchNorm],
    in this order: (N, I, H, W) -> (N, O, H, W)."""
    return chainer.Sequential(L.Convolution2D(in_channels, out_channels, 3, pad=1, **init_weights(rng)), F.relu,
                              batch_norm(out_channels),
                              L.Convolution2D(out_channels, out_channels, 3, pad=1, **init_weights(rng)), F.relu,
                              batch_norm(out_channels))


def max_pool(x):
    """2x2 max-pool, stride 2: (N, C, H, W) -> (N, C, H/2, W/2).  cover_all=False pools like
    PyTorch and TF (Chainer's default, True, adds a partial window at an odd edge; the sizes here
    are always even, as --size is a multiple of 16)."""
    return F.max_pooling_2d(x, 2, stride=2, cover_all=False)


class Generator(chainer.Chain):
    """The U-Net: inputs (N, I, S, S) -> outputs (N, O, S, S) in [-1, 1]."""

    def __init__(self, in_channels, out_channels, width, rng):
        super().__init__()
        widths = [width * k for k in G_WIDTHS]
        with self.init_scope():
            self.downs = chainer.ChainList(*[conv_block(i, o, rng) for i, o in zip((in_channels, *widths[:-1]),
                                                                                   widths)])
            # Up: a 2x2 stride-2 transposed conv halves the width and doubles the size (no overlap, no padding,
            # no activation), then the level's conv block reads [up-sampled map, skip] (that order).
            self.ups = chainer.ChainList(*[L.Deconvolution2D(o, i, 2, stride=2, **init_weights(rng))
                                           for i, o in zip(widths[:-1], widths[1:])])
            self.up_blocks = chainer.ChainList(*[conv_block(2 * w, w, rng) for w in widths[:-1]])
            self.out = L.Convolution2D(widths[0], out_channels, 1, **init_weights(rng))

    def forward(self, x):
        skips = []
        for level, block in enumerate(self.downs):
            x = block(x if level == 0 else max_pool(x))           # (N, 32, S, S) ... (N, 512, S/16, S/16)
            skips.append(x)
        for level in reversed(range(len(self.ups))):              # 3, 2, 1, 0: S/8 ... S
            x = self.ups[level](x)                                 # (N, w_level, 2h, 2w)
            x = self.up_blocks[level](F.concat([x, skips[level]], axis=1))   # (N, 2 w_level, ...) -> (N, w_level, ...)
        return F.tanh(self.out(x))                                 # (N, O, S, S)


class Discriminator(chainer.Chain):
    """The PatchGAN: (inputs (N, I, S, S), outputs (N, O, S, S)) -> logits
    (N, 1, S/8 - 2, S/8 - 2), one per patch: 6x6 for 64x64 pairs.
    What one patch sees: its receptive field is 70x70 pixels (the paper's
    70x70 PatchGAN: 4 -> 7 -> 16 -> 34 -> 70 going back through the
    layers), 8 pixels apart; on a 64x64 pair the window of patch (i, j)
    spans rows 8i - 23 .. 8i + 46 (columns alike), so after the zero padding
    a patch sees 47 to 64 rows and columns of the pair: nearly all of it."""

    def __init__(self, in_channels, out_channels, width, rng):
        super().__init__()
        layers, channels = [], in_channels + out_channels          # the pair, input channels first
        for index, (k, stride) in enumerate(D_LAYERS):
            norm = index > 0                                       # no BatchNorm on the first layer
            # a conv followed by BatchNorm has no bias (BN's beta is one), as in the paper's code;
            # Chainer's pad=1 pads both sides, as PyTorch's padding=1
            layers.append(L.Convolution2D(channels, k * width, D_KERNEL, stride, pad=D_PAD, nobias=norm,
                                          **init_weights(rng)))
            if norm:
                layers.append(batch_norm(k * width))
            layers.append(functools.partial(F.leaky_relu, slope=LEAKY_SLOPE))
            channels = k * width        # 64x64: (N, 64, 32, 32), (N, 128, 16, 16), (N, 256, 8, 8), (N, 512, 7, 7)
        layers.append(L.Convolution2D(channels, 1, D_KERNEL, 1, pad=D_PAD, **init_weights(rng)))   # (N, 1, 6, 6)
        with self.init_scope():
            self.net = chainer.Sequential(*layers)

    def forward(self, inputs, outputs):
        return self.net(F.concat([inputs, outputs], axis=1))


def model_info(args, palette, class_names):
    """What a checkpoint must match to be loaded into this model."""
    in_channels, out_channels = pix2pix.channels(args.direction, len(palette))
    return {"size": int(args.size), "direction": args.direction, "in_channels": in_channels,
            "out_channels": out_channels, "palette": np.asarray(palette).tolist(), "class_names": list(class_names),
            "width": int(args.width), "generator": [args.width * k for k in G_WIDTHS],
            "discriminator": [[args.width * k, stride] for k, stride in D_LAYERS]}


def build_model(info, seed, lr, device):
    """G, D (initialised from ``seed``, G first) and their Adam optimizers."""
    rng = np.random.RandomState(seed % 2**32)
    generator = Generator(info["in_channels"], info["out_channels"], info["width"], rng)
    discriminator = Discriminator(info["in_channels"], info["out_channels"], info["width"], rng)
    for network in (generator, discriminator):
        network.to_device(device)
    g_optimizer, d_optimizer = (chainer.optimizers.Adam(alpha=lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                                                        eps=ADAM_EPS).setup(network)
                                for network in (generator, discriminator))
    return generator, discriminator, g_optimizer, d_optimizer


def translate(generator, inputs, device):
    """G(x) in inference mode (BatchNorm's running statistics), NumPy in
    and out: (N, S, S, I) -> (N, S, S, O) in [-1, 1]."""
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        return np.concatenate([to_nhwc(generator(device.send(to_nchw(inputs[i:i + TEST_BATCH]))).array)
                               for i in range(0, len(inputs), TEST_BATCH)])


# ---- Losses ----
def bce(logits, target):
    """Binary cross-entropy of sigmoid(logits) against ``target`` (1: real,
    0: fake), averaged over every patch of every pair.  Chainer's labels are
    integers, an array the shape of the logits.  (F.sigmoid_cross_entropy,
    not softplus(l) - target * l: F.softplus's gradient evaluates exp(l),
    which overflows (a NumPy warning) once a patch's logit passes ~88.)"""
    xp = chainer.backend.get_array_module(logits)
    return F.sigmoid_cross_entropy(logits, xp.full(logits.shape, target, np.int32))


def discriminator_loss(real_logits, fake_logits):
    """0.5 (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)): halved, as in the paper,
    so that D learns at half G's pace."""
    return 0.5 * (bce(real_logits, 1.0) + bce(fake_logits, 0.0))


def generator_loss(fake_logits, fake_outputs, targets, gan_weight, l1_weight):
    """gan_weight * BCE(D(x, G(x)), 1) + l1_weight * mean |G(x) - y|; returns
    (loss, adversarial term, L1 term).  fake_logits None: no D (gan_weight 0)."""
    gan_term = bce(fake_logits, 1.0) if fake_logits is not None else chainer.Variable(
        fake_outputs.xp.zeros((), fake_outputs.dtype))
    l1_term = F.mean(F.absolute(fake_outputs - targets))
    return gan_weight * gan_term + l1_weight * l1_term, gan_term, l1_term


# ---- Train step ----
def make_train_step(generator, discriminator, g_optimizer, d_optimizer, gan_weight, l1_weight):
    """One iteration on one batch of pairs (x, y), NCHW:
    1. fake_outputs = G(x), once, in training mode;
    2. D step: D(x, y) and D(x, G(x)) in two separate batches (BatchNorm
       statistics per batch), the halved BCE; no gradient reaches G;
    3. G step: the updated D judges the same (x, G(x)), now labelled real,
       plus the L1 term; only G is updated.
    With gan_weight 0 steps 2 and D's part of 3 are left out: the U-Net
    learns from L1 alone.  Returns the metrics of pix2pix.FIELDS, D's
    numbers measured in its step (none without D)."""

    def train_step(inputs, targets):
        with chainer.using_config("train", True):
            fake_outputs = generator(inputs)
            fake_logits = None
            if gan_weight > 0:
                real_logits = discriminator(inputs, targets)
                d_fake_logits = discriminator(inputs, fake_outputs.array)   # the array: no gradient reaches G
                d_loss = discriminator_loss(real_logits, d_fake_logits)
                discriminator.cleargrads()
                d_loss.backward()
                d_optimizer.update()
                # backward below also fills D's gradients (Chainer has no per-parameter switch);
                # d_optimizer is not called, and the next D step clears them: only G is updated
                fake_logits = discriminator(inputs, fake_outputs)

            g_loss, gan_term, l1_term = generator_loss(fake_logits, fake_outputs, targets, gan_weight, l1_weight)
            generator.cleargrads()
            g_loss.backward()
            g_optimizer.update()

        if gan_weight == 0:
            return {"g_loss": float(g_loss.array), "g_l1": float(l1_term.array)}
        with chainer.no_backprop_mode():
            values = F.stack([d_loss, g_loss, gan_term, l1_term, F.mean(F.sigmoid(real_logits)),
                              F.mean(F.sigmoid(d_fake_logits))]).array
        return dict(zip(FIELDS, chainer.backends.cuda.to_cpu(values).tolist()))   # one device -> host copy

    return train_step


# ---- Train ----
def save_checkpoint(run, iteration, networks, feed, info, args):
    generator, discriminator, g_optimizer, d_optimizer = networks

    def write_files(folder):
        chainer.serializers.save_npz(str(folder / G_FILE), generator)      # BatchNorm running statistics included
        chainer.serializers.save_npz(str(folder / D_FILE), discriminator)
        optimizers = chainer.serializers.DictionarySerializer()
        optimizers["g_optimizer"].save(g_optimizer)                        # Adam's m, v and step t of each
        optimizers["d_optimizer"].save(d_optimizer)
        np.savez(folder / OPT_FILE, **optimizers.target)
        numpy_rng.save(folder / RNG_FILE)                                  # NumPy's global RNG, Chainer draws from it
    run.save_checkpoint(iteration, write_files, {
        "model": info, "feed": feed.state_dict(), "generator_steps": iteration,
        "discriminator_steps": iteration if args.gan_weight > 0 else 0, "l1_weight": args.l1_weight,
        "gan_weight": args.gan_weight})


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state and
    NumPy's global RNG state (the batch order and augmentation are in
    meta.json).  runs.load_npz never unpickles; a broken file: one line."""
    generator, discriminator, *optimizers = networks
    for network, name in ((generator, G_FILE), (discriminator, D_FILE)):
        with runs.reading(folder / name):
            chainer.serializers.NpzDeserializer(runs.load_npz(folder / name)).load(network)
    if optimizers:
        g_optimizer, d_optimizer = optimizers
        with runs.reading(folder / OPT_FILE):
            state = chainer.serializers.NpzDeserializer(runs.load_npz(folder / OPT_FILE))
            state["g_optimizer"].load(g_optimizer)
            state["d_optimizer"].load(d_optimizer)
        numpy_rng.load(folder / RNG_FILE)


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    shown = pix2pix.subset(load_data(args, "test", (data.palette, data.class_names)))   # the training pictures' pairs
    info = model_info(args, data.palette, data.class_names)
    cli.seed_everything(args.seed)                             # NumPy's global generator, from which Chainer draws
    feed = pix2pix.PairFeed(data, args.batch_size, args.seed, args.direction)   # augmented (inputs, targets)
    networks = build_model(info, args.seed, args.lr, device)
    if args.gan_weight == 0:
        # no D steps: Chainer makes Adam's m and v at a rule's first update, so D's never
        # exist; a disabled rule lets a checkpoint without them load (resume)
        networks[1].disable_update()
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

    with runs.Progress(run, start, args.iters, FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            inputs, targets = feed.next()                          # NHWC in [-1, 1], augmented
            losses = train_step(device.send(to_nchw(inputs)), device.send(to_nchw(targets)))
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
