"""pix2pix with a gradient penalty (pix2pix_gp) -- Chainer

Question: pix2pix (pix2pix_chainer.py: newt photo -> segmentation mask, or
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
--width and --size as in pix2pix_chainer.py.
Framework: Chainer (NCHW inside; common/ speaks NHWC).
Papers: Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with
Conditional Adversarial Networks", CVPR 2017 (arXiv:1611.07004); the
penalty: Gulrajani et al., "Improved Training of Wasserstein GANs", 2017
(arXiv:1704.00028).
How to run:
    python scripts_chainer/pix2pix_gp_chainer.py                   # photo -> mask, train then test
    python scripts_chainer/pix2pix_gp_chainer.py --direction mask2photo --n-critic 2
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
from chainer.functions.connection import deconvolution_2d  # noqa: E402

QUESTION = "pix2pix_gp"
FRAMEWORK = "chainer"


def fix_deconvolution_double_backprop():
    """Chainer 7.8.1 on the CPU: Deconvolution2DFunction.backward hands
    _set_cover_all the variables x and W where it expects their shapes when
    only W's gradient is wanted (ValueError: not enough values to unpack).
    The penalty meets it: the gradient of a convolution's input is a
    deconvolution of its output gradient by W, and for D's last conv that
    output gradient is a constant (d mean / d logits), so differentiating the
    penalty again wants W's gradient alone.  Fixed upstream after the last
    release (chainer/chainer#8624); the same fix here: shapes of whatever is
    passed.  Idempotent."""
    function = deconvolution_2d.Deconvolution2DFunction
    original = function._set_cover_all
    if getattr(original, "takes_variables", False):
        return

    def set_cover_all(self, x_shape, w_shape):
        return original(self, getattr(x_shape, "shape", x_shape), getattr(w_shape, "shape", w_shape))
    set_cover_all.takes_variables = True
    function._set_cover_all = set_cover_all


fix_deconvolution_double_backprop()


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
BN_EPS = 1e-5                   # G's BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
ADAM_BETAS = (0.5, 0.999)
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
                                # (Chainer adds it before the bias correction, PyTorch after)
NORM_EPS = 1e-12                # ||g|| = sqrt(sum g^2 + NORM_EPS): finite (and differentiable) where g = 0
TEST_BATCH = 16                 # pairs per forward pass in the test and the samples
G_FILE, D_FILE, OPT_FILE, RNG_FILE = "generator.npz", "discriminator.npz", "optimizers.npz", "numpy_rng.npz"


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "pix2pix with a gradient penalty on D (Chainer).",
                              dataset="imori", datasets=("imori",), iters=5000, batch_size=16, lr=2e-4,
                              sample_every=500, checkpoint_every=500, extra=pix2pix.add_flags(QUESTION))
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
    """G's BatchNorm over the channels, eps 1e-5, decay 0.9."""
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
    """The PatchGAN without BatchNorm: (inputs (N, I, S, S), outputs
    (N, O, S, S)) -> logits (N, 1, S/8 - 2, S/8 - 2), one per patch: 6x6 for
    64x64 pairs.  What one patch sees: a 70x70 receptive field (4 -> 7 ->
    16 -> 34 -> 70 going back through the layers), 8 pixels apart; on a
    64x64 pair patch (i, j) spans rows 8i - 23 .. 8i + 46 (columns alike):
    47 to 64 rows and columns of the pair, nearly all of it."""

    def __init__(self, in_channels, out_channels, width, rng):
        super().__init__()
        layers, channels = [], in_channels + out_channels          # the pair, input channels first
        for k, stride in D_LAYERS:
            # with a bias: no BN here; Chainer's pad=1 pads both sides, as PyTorch's padding=1
            layers += [L.Convolution2D(channels, k * width, D_KERNEL, stride, pad=D_PAD, **init_weights(rng)),
                       functools.partial(F.leaky_relu, slope=LEAKY_SLOPE)]
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
            "discriminator": [[args.width * k, stride] for k, stride in D_LAYERS], "d_norm": "none"}


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


def gradient_norms(discriminator, inputs, real_outputs, fake_outputs, eps, create_graph=False):
    """||grad_y_hat D_i(x_i, y_hat_i)||_2 per sample, over all of C, H and W
    of y_hat_i = eps_i y_i + (1 - eps_i) G(x_i), one eps_i per sample, D_i
    the mean of sample i's patch logits; x_i is held fixed (arrays in: no
    gradient reaches G or x).  The samples do not interact in D (no
    BatchNorm), so the gradient of sum_i D_i holds every sample's own
    gradient (chainer.grad leaves the parameters' .grad alone).
    create_graph: keep the graph of the gradient, so that a loss made of
    these norms can be differentiated again (double backprop)."""
    eps = eps.reshape(-1, 1, 1, 1)
    mixed = chainer.Variable(eps * real_outputs + (1 - eps) * fake_outputs)
    scores = F.mean(discriminator(inputs, mixed), axis=(1, 2, 3))     # (N,): the mean patch logit
    (grads,) = chainer.grad([F.sum(scores)], [mixed], enable_double_backprop=create_graph)
    return F.sqrt(F.sum(grads ** 2, axis=(1, 2, 3)) + NORM_EPS)       # (N,)


def gradient_penalty(norms):
    """mean_i (||grad D_i|| - 1)^2, before the weight gp_weight."""
    return F.mean((norms - 1.0) ** 2)


# ---- Train step ----
def make_train_step(generator, discriminator, g_optimizer, d_optimizer, gan_weight, l1_weight, gp_weight):
    """One iteration: n_critic D updates, each on its own batch of pairs
    (x, y) and its own eps, then one G update on one more batch.
    D step: fake_outputs = G(x) in training mode without gradient (G's
    BatchNorm uses and updates this batch's statistics), D(x, y) and
    D(x, G(x)), the halved BCE plus gp_weight * the penalty, whose gradient
    needs the gradient of a gradient: chainer.grad(enable_double_backprop=True).
    G step: gan_weight * BCE(D(x, G(x)), 1) + l1_weight * L1; only G is
    updated.  With gan_weight 0 there are no D steps (d_batches empty).

    d_batches: list of (inputs, targets) NCHW; eps: list of (N,);
    g_batch: (inputs, targets).  Returns the metrics of pix2pix.FIELDS (D's
    numbers averaged over its steps)."""
    xp = generator.xp

    def d_step(inputs, targets, eps):
        with chainer.no_backprop_mode():
            fake_outputs = generator(inputs).array                 # training mode: BN on this batch
        real_logits, fake_logits = discriminator(inputs, targets), discriminator(inputs, fake_outputs)
        norms = gradient_norms(discriminator, inputs, targets, fake_outputs, eps, create_graph=True)
        penalty = gradient_penalty(norms)
        d_gan = discriminator_loss(real_logits, fake_logits)
        d_loss = d_gan + gp_weight * penalty
        discriminator.cleargrads()
        d_loss.backward()
        d_optimizer.update()
        return xp.stack([v.array for v in (d_loss, d_gan, penalty, F.mean(norms), F.mean(F.sigmoid(real_logits)),
                                           F.mean(F.sigmoid(fake_logits)))])

    def train_step(d_batches, eps, g_batch):
        with chainer.using_config("train", True):
            rows = [d_step(*batch, e) for batch, e in zip(d_batches, eps)]

            # backward also fills D's gradients (Chainer has no per-parameter switch);
            # d_optimizer is not called, and the next D step clears them: only G is updated
            inputs, targets = g_batch
            fake_outputs = generator(inputs)
            fake_logits = discriminator(inputs, fake_outputs) if gan_weight > 0 else None
            g_loss, gan_term, l1_term = generator_loss(fake_logits, fake_outputs, targets, gan_weight, l1_weight)
            generator.cleargrads()
            g_loss.backward()
            g_optimizer.update()

        values = {"g_loss": float(g_loss.array), "g_l1": float(l1_term.array)}
        if rows:
            d_loss, d_gan, penalty, grad_norm, real, fake = chainer.backends.cuda.to_cpu(
                xp.stack(rows).mean(axis=0)).tolist()
            values.update(d_loss=d_loss, d_gan=d_gan, gradient_penalty=penalty, grad_norm=grad_norm,
                          g_gan=float(gan_term.array), d_real=real, d_fake=fake)
        return values

    return train_step


# ---- Train ----
def save_checkpoint(run, iteration, networks, feed, mix_sampler, info, args):
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
        "model": info, "feed": feed.state_dict(), "mix_sampler": mix_sampler.state_dict(),
        "generator_steps": iteration, "discriminator_steps": d_steps(iteration, args), "l1_weight": args.l1_weight,
        "gan_weight": args.gan_weight, "n_critic": args.n_critic, "gp_weight": args.gp_weight})


def d_steps(iterations, args):
    """D updates in ``iterations`` iterations: n_critic each (none without D)."""
    return iterations * args.n_critic if args.gan_weight > 0 else 0


def load_checkpoint(folder, networks):
    """Weights, and with the optimizers in ``networks`` their state and
    NumPy's global RNG state (the batch order, augmentation and eps are in
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
    mix_sampler = pix2pix.MixSampler(args.seed)                    # eps_i of every D step (stream PENALTY_MIX)
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
        mix_sampler.load_state_dict(meta["mix_sampler"])
        start = meta["generator_steps"]
        if start >= args.iters:
            print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
            return
    run.prepare_training(args, resume=bool(args.resume))
    train_step = make_train_step(*networks, gan_weight=args.gan_weight, l1_weight=args.l1_weight,
                                 gp_weight=args.gp_weight)
    n_critic = args.n_critic if args.gan_weight > 0 else 0       # no D: no D steps
    shown_inputs, _ = pix2pix.network_pairs(shown.photos, shown.classes, args.direction, shown.n_classes)

    with runs.Progress(run, start, args.iters, FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            # in this order: n_critic fresh batches for D, their eps, one more batch for G
            d_batches = [tuple(device.send(to_nchw(a)) for a in feed.next()) for _ in range(n_critic)]
            eps = [device.send(mix_sampler(args.batch_size)) for _ in range(n_critic)]
            g_batch = tuple(device.send(to_nchw(a)) for a in feed.next())
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
