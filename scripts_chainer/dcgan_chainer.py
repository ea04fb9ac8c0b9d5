"""Deep Convolutional GAN (DCGAN) -- Chainer

Question: generate 64x64x3 newt photos (pixels in [-1, 1]) from noise
z ~ U(-1, 1) of size 100.  Generator: Dense(H/16 * W/16 * 256)+BN+ReLU,
then 5x5 stride-2 transposed convolutions 512, 256, 128 (each +BN+ReLU) and
C (+tanh).  Discriminator: 5x5 stride-2 convolutions 32, 64, 128, 256 (each
+LeakyReLU 0.2), then Dense(1)+sigmoid.  Binary cross-entropy with the
non-saturating generator loss, Adam lr 2e-4, beta1 0.5, batch 64, 5000
iterations; the discriminator sees the real and the fake images in
separate batches.  The depth follows the image size: k stride-2 stages
with k = 4 for 64x64, 3 for 32x32 (CIFAR-10), 2 for 28x28 (MNIST,
Fashion-MNIST); G uses the last k-1 of its widths above, D the first k
(common.gan.dcgan_stages, common.gan.dcgan_widths).
The networks are wrapped in the class API of the reference document
(dcgan_keras_class_api.md): DCGAN(name, z_dim, img_shape) with train,
generate, discriminate, evaluate, generate_z, save_me, change_me; its
framework-neutral half is common.class_api.ClassAPI, the Chainer half is here.
Framework: Chainer (NCHW inside; the class API and common/ speak NHWC).
Paper: Radford, Metz & Chintala, "Unsupervised Representation Learning with
Deep Convolutional Generative Adversarial Networks", ICLR 2016
(arXiv:1511.06434); the non-saturating loss: Goodfellow et al., "Generative
Adversarial Nets", NeurIPS 2014 (arXiv:1406.2661), section 3.
How to run:
    python scripts_chainer/dcgan_chainer.py             # train, then test
    python scripts_chainer/dcgan_chainer.py --test      # test the last checkpoint
    python scripts_chainer/dcgan_chainer.py --dataset fashion_mnist --label-smoothing 0.1
    python scripts_chainer/dcgan_chainer.py --dataset mnist --data-dir ../shared/datasets/mnist10k   # offline
As a class:
    from dcgan_chainer import DCGAN
    model = DCGAN("fmnist", z_dim=100, img_shape=(28, 28, 1))
    result = model.train(images, epochs=40, batch_size=128, ls_epsilon=0.1)   # pixels in [0, 1] or [0, 255]
    images = model.generate(model.generate_z(20))                             # pixels in [0, 1]
    model.save_me("models/")        # models/fmnist_g.npz, fmnist_d.npz, fmnist_val.json
"""
# ---- Setup ----
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, class_api, cli, compat, gan, numpy_rng, runs  # noqa: E402

chainer = compat.import_chainer()  # Chainer 7.8.1 needs a shim to import on this stack
import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402

QUESTION = "dcgan"
FRAMEWORK = "chainer"


def pick_device(choice):
    gpu = cli.resolve_device(choice, chainer.backends.cuda.available) == "gpu"
    return chainer.get_device("@cupy:0" if gpu else "@numpy")


# ---- Config ----
# Every framework default that differs between PyTorch, TF-Slim, Keras and
# Chainer is set here explicitly, the same way in all four versions
# (DESIGN.md section 7).
DENSE_CHANNELS = 256            # G's Dense layer makes a (H/2^k, W/2^k, 256) map
G_WIDTHS = (512, 256, 128)      # G's transposed convolutions before the last one (the last k-1 used)
D_WIDTHS = (32, 64, 128, 256)   # D's convolutions (the first k used)
KERNEL, STRIDE = 5, 2
# TF/Keras 'SAME' padding for a 5x5 stride-2 convolution of an even size:
# 1 row/column before, 2 after, the convention of this question.  A
# symmetric padding of 2 (pad=2 here) has the same output shape but
# other numbers: this version pads explicitly.
SAME_PAD = ((0, 0), (0, 0), (1, 2), (1, 2))   # (N, C, top/bottom, left/right) for F.pad
LEAKY_SLOPE = 0.2               # LeakyReLU slope, set explicitly: every framework has its own default
INIT_STD = 0.02                 # weights ~ N(0, 0.02) (DCGAN paper), biases 0, BN gamma 1, beta 0
BN_EPS = 1e-5                   # BatchNorm eps, set explicitly: every framework has its own default
BN_DECAY = 0.9                  # BatchNorm running statistics: running = 0.9 * running + 0.1 * batch
                                # (the running variance takes the unbiased batch variance, except in
                                # Keras 3, which takes the biased one: a factor n/(n-1), no switch)
ADAM_BETAS = (0.5, 0.999)       # beta1 0.5 for G and D
ADAM_EPS = 1e-8                 # Adam's eps, set explicitly: every framework has its own default
                                # (Chainer adds it before the bias correction, PyTorch after)
# File names of a checkpoint (save_me's three files + the optimizers and NumPy's global generator)
G_FILE, D_FILE, VAL_FILE, OPT_FILE = "generator.npz", "discriminator.npz", "variables.json", "optimizers.npz"
RNG_FILE = "numpy_rng.npz"


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "DCGAN (Chainer).", dataset="imori", iters=5000, batch_size=64,
                              lr=2e-4, sample_every=500, checkpoint_every=1000, extra=gan.add_flags)
    return cli.parse_args(parser, argv)


# ---- Data ----
def load_data(args, split, value_range=gan.VALUE_RANGE):
    """Images as float32 NHWC in ``value_range`` (common loader, same in every framework)."""
    return gan.load_images(args, split, value_range)


def to_nchw(images):
    """NHWC (common) -> NCHW (Chainer), a contiguous copy."""
    return np.ascontiguousarray(np.asarray(images, np.float32).transpose(0, 3, 1, 2))


def to_nhwc(outputs):
    """NCHW (Chainer) -> NHWC NumPy array."""
    return np.ascontiguousarray(chainer.backends.cuda.to_cpu(outputs).transpose(0, 2, 3, 1))


# ---- Model ----
class Convolution2DSame(L.Convolution2D):
    """5x5 stride-2 convolution with TF's 'SAME' padding (even sizes only,
    which the stage rule guarantees): (N, I, H, W) -> (N, O, H/2, W/2)."""

    def __init__(self, in_channels, out_channels, **init):
        super().__init__(in_channels, out_channels, KERNEL, STRIDE, pad=0, **init)

    def forward(self, x):
        return super().forward(F.pad(x, SAME_PAD, "constant"))


class Deconvolution2DSame(L.Deconvolution2D):
    """5x5 stride-2 transposed convolution equal to TF's conv2d_transpose
    with 'SAME' padding: (N, I, H, W) -> (N, O, 2H, 2W).  The full output
    is 2H+3 wide; TF crops 1 row/column before and 2 after, as pad=1 with
    outsize=(2H, 2W) does (pad=2 would be shifted by one pixel)."""

    def __init__(self, in_channels, out_channels, **init):
        super().__init__(in_channels, out_channels, KERNEL, STRIDE, pad=1, **init)

    def forward(self, x):
        height, width = x.shape[2:]
        return F.deconvolution_2d(x, self.W, self.b, self.stride, self.pad, outsize=(2 * height, 2 * width))


def init_weights(rng):
    """N(0, 0.02) weights and zero biases: the same explicit rule in all
    four versions (the defaults all differ).  ``rng`` is a
    numpy.random.RandomState, so building a model leaves NumPy's global
    generator alone."""
    return {"initialW": chainer.initializers.Normal(INIT_STD, rng=rng),
            "initial_bias": chainer.initializers.Zero()}


def batch_norm(size):
    """BatchNorm with gamma 1, beta 0, eps 1e-5, decay 0.9 (set explicitly)."""
    return L.BatchNormalization(size, decay=BN_DECAY, eps=BN_EPS, initial_gamma=chainer.initializers.One(),
                                initial_beta=chainer.initializers.Zero())


leaky_relu = functools.partial(F.leaky_relu, slope=LEAKY_SLOPE)


class Generator(chainer.Chain):
    """z (N, z_dim) -> images (N, C, H, W) in [-1, 1]."""

    def __init__(self, z_dim, image_shape, rng):
        super().__init__()
        height, width, channels = image_shape
        k, (h0, w0) = gan.dcgan_stages(image_shape)
        self.start = (h0, w0)
        with self.init_scope():
            self.dense = chainer.Sequential(
                L.Linear(z_dim, h0 * w0 * DENSE_CHANNELS, **init_weights(rng)),      # (N, h0*w0*256), NHWC order
                batch_norm(h0 * w0 * DENSE_CHANNELS),
                F.relu,
            )
            layers, in_channels = [], DENSE_CHANNELS
            g_widths, _ = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
            for features in g_widths:                                       # 512, 256, 128 for k = 4; 128 for 28x28
                layers += [Deconvolution2DSame(in_channels, features, **init_weights(rng)),   # (N, features, 2h, 2w)
                           batch_norm(features),
                           F.relu]
                in_channels = features
            layers += [Deconvolution2DSame(in_channels, channels, **init_weights(rng)),    # (N, C, H, W)
                       F.tanh]
            self.deconvs = chainer.Sequential(*layers)

    def forward(self, z):
        h0, w0 = self.start
        x = self.dense(z)                                                     # (N, h0*w0*256)
        # The Dense units are read as an NHWC map, as in the NHWC frameworks,
        # so that the Dense and BatchNorm weights match theirs 1:1.
        x = F.transpose(F.reshape(x, (-1, h0, w0, DENSE_CHANNELS)), (0, 3, 1, 2))   # (N, 256, h0, w0)
        return self.deconvs(x)                                                # (N, C, H, W)


class Discriminator(chainer.Chain):
    """images (N, C, H, W) -> logits (N, 1); D(x) = sigmoid(logits) is the
    probability that x is real.  The sigmoid is applied by `discriminate`
    and inside the loss (binary cross-entropy on logits, which never takes
    log(0))."""

    def __init__(self, image_shape, rng):
        super().__init__()
        height, width, channels = image_shape
        k, _ = gan.dcgan_stages(image_shape)
        layers, in_channels = [], channels
        _, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
        for features in d_widths:                                           # 32, 64, 128, 256 for k = 4
            layers += [Convolution2DSame(in_channels, features, **init_weights(rng)),   # (N, features, h/2, w/2)
                       leaky_relu]
            in_channels = features
        with self.init_scope():
            self.convs = chainer.Sequential(*layers)
            self.dense = L.Linear((height >> k) * (width >> k) * in_channels, 1, **init_weights(rng))   # (N, 1)

    def forward(self, x):
        x = self.convs(x)                                                     # (N, 256, H/16, W/16)
        # Flatten in NHWC order, as the NHWC frameworks do, so that the
        # Dense weights match theirs without a row permutation.
        x = F.reshape(F.transpose(x, (0, 2, 3, 1)), (len(x), -1))             # (N, H/16*W/16*256)
        return self.dense(x)                                                  # (N, 1)


def model_info(image_shape, z_dim):
    """What a checkpoint must match to be loaded into this model."""
    k, start = gan.dcgan_stages(image_shape)
    g_widths, d_widths = gan.dcgan_widths(k, G_WIDTHS, D_WIDTHS)
    return {"image_shape": list(image_shape), "z_dim": int(z_dim), "stages": k, "start": list(start),
            "generator": [DENSE_CHANNELS, *g_widths], "discriminator": list(d_widths)}


# ---- Losses ----
def bce_with_logits(logits, target):
    """Mean binary cross-entropy of sigmoid(logits) and the constant label
    ``target``, as softplus(l) - target * l (exact where the sigmoid rounds to
    0 or 1); F.sigmoid_cross_entropy takes only 0/1 integer labels."""
    return F.mean(F.softplus(logits) - target * logits)


def discriminator_loss(real_logits, fake_logits, ls_epsilon=0.0):
    """Binary cross-entropy of D on the real batch (labels 1 - eps) and on
    the fake batch (labels eps), averaged over both batches (eps: label
    smoothing, 0 by default)."""
    real_loss = bce_with_logits(real_logits, 1.0 - ls_epsilon)
    fake_loss = bce_with_logits(fake_logits, ls_epsilon)
    return 0.5 * (real_loss + fake_loss)


def generator_loss(fake_logits):
    """The non-saturating generator loss -mean(log D(G(z))): the fake
    images labelled real (1, never smoothed).  Its gradient is strong
    exactly when D rejects the fakes, early in training, unlike the
    minimax loss mean(log(1 - D(G(z))))."""
    return bce_with_logits(fake_logits, 1.0)


def discriminator_accuracy(real_logits, fake_logits):
    """Fraction of both batches on the right side of D(x) = 0.5 (logit 0)."""
    xp = chainer.backend.get_array_module(real_logits)
    right = xp.concatenate([real_logits.array > 0, fake_logits.array <= 0])
    return F.mean(right.astype(np.float32))


# ---- Train step ----
def make_train_step(generator, discriminator, g_optimizer, d_optimizer):
    """One iteration: one D update, then one G update, on one z batch.

    1. fake_images = G(z), once (G's BatchNorm uses and tracks the fake batch's statistics);
    2. D step: D(real_images) and D(fake_images) in two separate batches
       (BatchNorm never mixes their statistics), the loss averaged over
       both; no gradient reaches G;
    3. G step: the updated D judges the same fake_images, labelled real;
       only G is updated.
    Returns d_loss, g_loss, d_accuracy, d_real, d_fake (common.gan.FIELDS),
    measured in the D step except g_loss."""

    def train_step(real_images, z, ls_epsilon):
        with chainer.using_config("train", True):
            fake_images = generator(z)

            real_logits = discriminator(real_images)
            fake_logits = discriminator(fake_images.array)         # the array: no gradient reaches G
            d_loss = discriminator_loss(real_logits, fake_logits, ls_epsilon)
            discriminator.cleargrads()
            d_loss.backward()
            d_optimizer.update()

            # backward also fills D's gradients (Chainer has no per-parameter switch);
            # d_optimizer is not called, and the next D step clears them: only G is updated
            g_loss = generator_loss(discriminator(fake_images))
            generator.cleargrads()
            g_loss.backward()
            g_optimizer.update()

        with chainer.no_backprop_mode():
            values = F.stack([d_loss, g_loss, discriminator_accuracy(real_logits, fake_logits),
                              F.mean(F.sigmoid(real_logits)), F.mean(F.sigmoid(fake_logits))]).array
        return dict(zip(gan.FIELDS, chainer.backends.cuda.to_cpu(values).tolist()))   # one device -> host copy

    return train_step


class DCGAN(class_api.ClassAPI):
    """The DCGAN of the reference document's class API (the calls: common.class_api.ClassAPI),
    its Chainer half: build, step, forward, save and load weights.  Extras:
    ``seed``, ``lr``, ``device`` ('auto', 'cpu', 'gpu').  Attributes: ``generator``,
    ``discriminator``, ``g_optimizer``, ``d_optimizer``, ``z_sampler``."""

    QUESTION, FRAMEWORK, WEIGHTS_SUFFIX = QUESTION, FRAMEWORK, ".npz"
    model_info = staticmethod(model_info)

    def __init__(self, name, z_dim=gan.Z_DIM, img_shape=(28, 28, 1), *, seed=0, lr=2e-4, device="auto"):
        self.device = pick_device(device) if device in ("auto", "cpu", "gpu") else device   # or picked
        super().__init__(name, z_dim, img_shape, seed=seed, lr=lr)

    def _build_networks(self, z_dim, img_shape):
        rng = np.random.RandomState(self._seed % 2**32)
        self.generator = Generator(z_dim, img_shape, rng)
        self.discriminator = Discriminator(img_shape, rng)
        for network in (self.generator, self.discriminator):
            network.to_device(self.device)
        self.g_optimizer = chainer.optimizers.Adam(alpha=self._lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                                                   eps=ADAM_EPS).setup(self.generator)
        self.d_optimizer = chainer.optimizers.Adam(alpha=self._lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                                                   eps=ADAM_EPS).setup(self.discriminator)
        self._train_step = make_train_step(self.generator, self.discriminator, self.g_optimizer, self.d_optimizer)

    def _step(self, real_images, z, ls_epsilon):
        return self._train_step(self.device.send(to_nchw(real_images)), self.device.send(z), ls_epsilon)

    def _generate_batch(self, z):
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            return to_nhwc(self.generator(self.device.send(z)).array)

    def _discriminate_batch(self, images):
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            return chainer.backends.cuda.to_cpu(self.discriminator(self.device.send(to_nchw(images))).array)

    def _save_weights(self, g_path, d_path):
        chainer.serializers.save_npz(str(g_path), self.generator)      # BatchNorm running statistics included
        chainer.serializers.save_npz(str(d_path), self.discriminator)

    def _read_weights(self, path):
        with np.load(path, allow_pickle=False) as npz:                  # never unpickle
            return dict(npz)

    def _load_weights(self, g_state, d_state):
        chainer.serializers.NpzDeserializer(g_state).load(self.generator)
        chainer.serializers.NpzDeserializer(d_state).load(self.discriminator)


# ---- Train ----
def save_checkpoint(run, iteration, model, feed, args):
    def write_files(folder):
        model.save_me(folder, G_FILE, D_FILE, VAL_FILE)
        optimizers = chainer.serializers.DictionarySerializer()
        optimizers["g_optimizer"].save(model.g_optimizer)      # Adam's m, v and step t of each
        optimizers["d_optimizer"].save(model.d_optimizer)
        np.savez(folder / OPT_FILE, **optimizers.target)
        numpy_rng.save(folder / RNG_FILE)                      # the generator Chainer draws from
    run.save_checkpoint(iteration, write_files, {
        "model": model.model_info(model.img_shape, model.z_dim), "feed": feed.state_dict(),
        "z_sampler": model.z_sampler.state_dict(), "dataset": args.dataset,
        "label_smoothing": args.label_smoothing})


def load_checkpoint(folder, model):
    """Weights, optimizers, NumPy's global RNG (data order, noise: meta.json)."""
    model.change_me(folder, G_FILE, D_FILE, VAL_FILE)
    with runs.reading(folder / OPT_FILE):   # runs.load_npz never unpickles; a broken file: one line
        optimizers = chainer.serializers.NpzDeserializer(runs.load_npz(folder / OPT_FILE))
        optimizers["g_optimizer"].load(model.g_optimizer)
        optimizers["d_optimizer"].load(model.d_optimizer)
    numpy_rng.load(folder / RNG_FILE)


def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    cli.seed_everything(args.seed)           # NumPy's global generator, from which Chainer draws
    feed = batching.Feed(data.images, args.batch_size, args.seed, augment.for_dataset(args.dataset, gan.VALUE_RANGE))
    model = DCGAN(f"{QUESTION}_{args.dataset}", args.z_dim, image_shape, seed=args.seed, lr=args.lr, device=device)
    start = 0
    if args.resume:
        folder, meta = run.load_checkpoint_meta(args.resume, model_info(image_shape, args.z_dim))
        load_checkpoint(folder, model)
        model.z_sampler.load_state_dict(meta["z_sampler"])
        feed.load_state_dict(meta["feed"])
        start = meta["iteration"]
        if start >= args.iters:
            print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
            return
    run.prepare_training(args, resume=bool(args.resume))
    with runs.Progress(run, start, args.iters, gan.FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_images = feed.next()                      # NHWC in [-1, 1]; the model makes it NCHW
            losses = model.train_step(real_images, model.generate_z(args.batch_size), args.label_smoothing)
            progress.log(iteration, losses)
            if progress.due(iteration, args.sample_every):
                gan.save_samples(run, iteration, model.generate(model.z_fixed_for_sample))
            if progress.due(iteration, args.checkpoint_every):
                save_checkpoint(run, iteration, model, feed, args)
                if progress.plots_due(iteration):
                    gan.plot_training(run)


# ---- Test ----
def test(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "test", gan.PIXEL_RANGE)   # pixels in [0, 1], as the class API takes them
    image_shape = data.images.shape[1:]
    folder, _ = run.load_checkpoint_meta(args.checkpoint, model_info(image_shape, args.z_dim))
    model = DCGAN(QUESTION, args.z_dim, image_shape, seed=args.seed, device=device)
    model.change_me(folder, G_FILE, D_FILE, VAL_FILE)
    return gan.report_model_test(run, model, data.images, args.z_dim, args.seed)


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
