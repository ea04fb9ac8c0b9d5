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

from common import augment, batching, cli, compat, pictures, recon, runs  # noqa: E402

chainer = compat.import_chainer()  # Chainer 7.8.1 needs a shim to import on this stack
import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402

QUESTION = "ae"
FRAMEWORK = "chainer"

# ---- Config ----
VALUE_RANGE = (-1.0, 1.0)   # images are scaled to [-1, 1]
HIDDEN = 64                 # the bottleneck width
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8             # Chainer default, set explicitly (Keras' default is 1e-7)


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Autoencoder, an MLP hourglass (Chainer).",
                              dataset="imori", iters=1000, batch_size=64, lr=1e-3,
                              sample_every=100, checkpoint_every=500)
    return cli.parse_args(parser, argv)


def pick_device(choice):
    gpu = cli.resolve_device(choice, chainer.backends.cuda.available) == "gpu"
    return chainer.get_device("@cupy:0" if gpu else "@numpy")


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC in [-1, 1] (common loader, same in every framework)."""
    return recon.load_images(args, split, VALUE_RANGE)


def flatten(images):
    """NHWC -> (N, H*W*C).  The MLP sees the pixel vector in the common
    NHWC order, so its weights match the PyTorch/Keras/TF versions 1:1."""
    return images.reshape(len(images), -1)


# ---- Model ----
def init_weights():
    # Glorot-uniform weights, zero biases: the same explicit choice in all
    # four versions (each framework's default initialiser differs).  Chainer's
    # initialisers draw from NumPy's global generator (seeded in train()).
    return {"initialW": chainer.initializers.GlorotUniform(),
            "initial_bias": chainer.initializers.Zero()}


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
        return self.fc(h)  # (N, H*W*C), no output activation


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


# ---- Losses ----
def reconstruction_loss(outputs, targets):
    """Mean squared error over pixels, channels and the batch."""
    return F.mean_squared_error(outputs, targets)


# ---- Train step ----
def make_train_step(model, optimizer):
    def train_step(real_images):
        with chainer.using_config("train", True):
            loss = reconstruction_loss(model(real_images), real_images)
        model.cleargrads()
        loss.backward()
        optimizer.update()
        return float(loss.array)
    return train_step


def reconstruct(model, images, device, batch_size=256):
    """NHWC in, NHWC out, in inference mode."""
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        outputs = [chainer.backends.cuda.to_cpu(model(device.send(flatten(images[i:i + batch_size]))).array)
                   for i in range(0, len(images), batch_size)]
    return np.concatenate(outputs).reshape(images.shape)


def save_checkpoint(run, iteration, model, optimizer, feed, image_shape):
    def write_files(folder):
        chainer.serializers.save_npz(str(folder / "model.npz"), model)
        chainer.serializers.save_npz(str(folder / "optimizer.npz"), optimizer)  # Adam's m, v and step t
        _, key, pos, has_gauss, gauss = np.random.get_state()  # the generator Chainer draws from
        np.savez(folder / "numpy_rng.npz", key=key, pos=pos, has_gauss=has_gauss, gauss=gauss)
    run.save_checkpoint(iteration, write_files, {"model": model_info(image_shape), "feed": feed.state_dict()})


def load_checkpoint(folder, model, optimizer=None):
    # runs.load_npz reads with allow_pickle=False (chainer.serializers.load_npz
    # would unpickle an object array: a shared checkpoint must never run code);
    # runs.reading turns a broken file into one line naming it.
    with runs.reading(folder / "model.npz"):
        chainer.serializers.NpzDeserializer(runs.load_npz(folder / "model.npz")).load(model)
    if optimizer is not None:
        with runs.reading(folder / "optimizer.npz"):
            chainer.serializers.NpzDeserializer(runs.load_npz(folder / "optimizer.npz")).load(optimizer)
        rng = runs.load_npz(folder / "numpy_rng.npz")
        with runs.reading(folder / "numpy_rng.npz"):
            np.random.set_state(("MT19937", rng["key"], int(rng["pos"]), int(rng["has_gauss"]),
                                 float(rng["gauss"])))


# ---- Train ----
def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    cli.seed_everything(args.seed)  # before the model: Chainer initialises from NumPy's global generator
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

    def step(iteration):
        real_images = device.send(flatten(feed.next()))
        return {"loss": train_step(real_images)}

    def on_sample(iteration):
        pictures.save_pairs(fixed_images, reconstruct(model, fixed_images, device),
                            run.sample_path(iteration), value_range=VALUE_RANGE,
                            titles=[f"iteration {iteration}"] + [""] * (len(fixed_images) - 1))

    runs.train_loop(run, start=start, iters=args.iters, step=step, fields=["loss"],
                    on_sample=on_sample,
                    on_checkpoint=lambda it: save_checkpoint(run, it, model, optimizer, feed, image_shape),
                    sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
                    log_every=args.log_every, resume_at=start if args.resume else None, curves=["loss"])


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
