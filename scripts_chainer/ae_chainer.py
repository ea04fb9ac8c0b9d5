"""AutoEncoder (AE) -- Chainer

Question: flatten a 64x64x3 newt photo, squeeze it through a 64-unit
Dense layer and expand it back with a Dense layer of H*W*C units (no
activations: the original exercise's hourglass MLP, which learns the same
subspace as PCA), trained to reproduce its input (pixels in [-1, 1], MSE
loss, Adam lr 1e-3, batch 64, 1000 iterations, flips and rotations as
augmentation).
Framework: Chainer 7, an explicit loop with optimizer.update().
Paper: none (classic autoencoder; Hinton & Salakhutdinov, Science 2006).
How to run:
    python scripts_chainer/ae_chainer.py             # train, then test
    python scripts_chainer/ae_chainer.py --test      # test the last checkpoint
    python scripts_chainer/ae_chainer.py --dataset mnist --iters 3000
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, cli, compat, numpy_rng, pictures, recon, runs  # noqa: E402

chainer = compat.import_chainer()  # Chainer 7.8.1 needs a shim to import on this stack
import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402

QUESTION = "ae"
FRAMEWORK = "chainer"


def pick_device(choice):
    gpu = cli.resolve_device(choice, chainer.backends.cuda.available) == "gpu"
    return chainer.get_device("@cupy:0" if gpu else "@numpy")


# ---- Config ----
VALUE_RANGE = (-1.0, 1.0)   # images are scaled to [-1, 1]
HIDDEN = 64                 # the bottleneck width
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8             # set explicitly: the frameworks' defaults differ (1e-8, or 1e-7 in one)


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Autoencoder, an MLP hourglass (Chainer).",
                              dataset="imori", iters=1000, batch_size=64, lr=1e-3,
                              sample_every=100, checkpoint_every=500)
    return cli.parse_args(parser, argv)


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC in [-1, 1] (common loader, same in every framework)."""
    return recon.load_images(args, split, VALUE_RANGE)


def flatten(images):
    """NHWC -> (N, H*W*C).  The MLP sees the pixel vector in the common
    NHWC order, so its weights match the other versions 1:1."""
    return images.reshape(len(images), -1)


# ---- Model ----
def init_weights():
    # Glorot-uniform weights, zero biases: the same explicit choice in all
    # four versions (each framework's default initialiser differs).
    return {"initialW": chainer.initializers.GlorotUniform(), "initial_bias": chainer.initializers.Zero()}


class Encoder(chainer.Chain):
    def __init__(self, in_features):
        super().__init__()
        with self.init_scope():
            self.fc = L.Linear(in_features, HIDDEN, **init_weights())

    def forward(self, x):
        return self.fc(x)  # (N, 64)


class Decoder(chainer.Chain):
    def __init__(self, out_features):
        super().__init__()
        with self.init_scope():
            self.fc = L.Linear(HIDDEN, out_features, **init_weights())

    def forward(self, h):
        # no output activation: the target is the [-1, 1] image itself
        return self.fc(h)  # (N, H*W*C)


class AutoEncoder(chainer.Chain):
    def __init__(self, image_shape):
        super().__init__()
        in_features = int(np.prod(image_shape))
        with self.init_scope():
            self.encoder = Encoder(in_features)
            self.decoder = Decoder(in_features)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def model_info(image_shape):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "hidden": HIDDEN}


def save_checkpoint(run, iteration, model, optimizer, feed, image_shape):
    def write_files(folder):
        # the weights, Adam's state (m, v and step t) and NumPy's generator, which Chainer draws from
        chainer.serializers.save_npz(str(folder / "model.npz"), model)
        chainer.serializers.save_npz(str(folder / "optimizer.npz"), optimizer)
        numpy_rng.save(folder / "numpy_rng.npz")
    run.save_checkpoint(iteration, write_files, {"model": model_info(image_shape), "feed": feed.state_dict()})


def load_checkpoint(folder, model, optimizer=None):
    # runs.reading turns a broken file into one line naming it
    # runs.load_npz never unpickles (chainer.serializers.load_npz would, for an object array)
    with runs.reading(folder / "model.npz"):
        chainer.serializers.NpzDeserializer(runs.load_npz(folder / "model.npz")).load(model)
    if optimizer is not None:
        with runs.reading(folder / "optimizer.npz"):
            chainer.serializers.NpzDeserializer(runs.load_npz(folder / "optimizer.npz")).load(optimizer)
        numpy_rng.load(folder / "numpy_rng.npz")


# ---- Losses ----
def reconstruction_loss(outputs, targets):
    """Mean squared error over pixels, channels and the batch."""
    return F.mean_squared_error(outputs, targets)


# ---- Train step ----
# One iteration: reconstruct a minibatch, take the mean squared error to the
# minibatch itself, backpropagate it, one Adam update; the loss comes back as a float.
def make_train_step(model, optimizer):
    def train_step(real_images):
        with chainer.using_config("train", True):
            loss = reconstruction_loss(model(real_images), real_images)
        model.cleargrads()
        loss.backward()
        optimizer.update()
        return loss.item()
    return train_step


def reconstruct(model, images, device):
    """NHWC in, NHWC out, in inference mode."""
    def forward(batch):
        return chainer.backends.cuda.to_cpu(model(device.send(flatten(batch))).array).reshape(batch.shape)
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        return recon.in_batches(forward, images)


# ---- Train ----
def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    # before the model: Chainer's initialisers draw from NumPy's global generator
    cli.seed_everything(args.seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed,
                         augment.for_dataset(args.dataset, VALUE_RANGE))
    model = AutoEncoder(image_shape).to_device(device)
    optimizer = chainer.optimizers.Adam(alpha=args.lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], eps=ADAM_EPS)
    optimizer.setup(model)
    start = 0
    if args.resume:
        folder, meta = run.load_checkpoint_meta(args.resume, model_info(image_shape))
        load_checkpoint(folder, model, optimizer)
        feed.load_state_dict(meta["feed"])
        start = meta["iteration"]
        if start >= args.iters:
            print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
            return
    run.prepare_training(args, resume=bool(args.resume))
    train_step = make_train_step(model, optimizer)
    fixed_images = data.images[:8]  # the same 8 training photos in every sample picture
    with runs.Progress(run, start, args.iters, ["loss"], args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_images = device.send(flatten(feed.next()))
            loss = train_step(real_images)
            progress.log(iteration, {"loss": loss})
            if progress.due(iteration, args.sample_every):
                outputs = reconstruct(model, fixed_images, device)
                recon.save_samples(run, iteration, fixed_images, outputs, VALUE_RANGE)
            if progress.due(iteration, args.checkpoint_every):
                save_checkpoint(run, iteration, model, optimizer, feed, image_shape)
                if progress.plots_due(iteration):
                    pictures.plot_curves(run.metrics_path, run.root / "curves.png", ["loss"], logy=True,
                                         title=f"{QUESTION} ({FRAMEWORK})")


# ---- Test ----
def test(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "test")
    image_shape = data.images.shape[1:]
    folder, _ = run.load_checkpoint_meta(args.checkpoint, model_info(image_shape))
    model = AutoEncoder(image_shape).to_device(device)
    load_checkpoint(folder, model)
    outputs = reconstruct(model, data.images, device)
    return recon.report_reconstructions(run, data, outputs, VALUE_RANGE)


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
