"""Convolutional AutoEncoder (ConvAE) -- Keras 3

Question: encode a 64x64x3 newt photo with two Conv+ReLU+MaxPool stages,
decode it with two stride-2 transposed convolutions, and train the network
to reproduce its input (pixels in [-1, 1], MSE loss, Adam lr 1e-3,
batch 64, 1000 iterations, flips and rotations as augmentation).
Framework: Keras 3 on the TensorFlow backend (NHWC).
Paper: none (classic convolutional autoencoder).
How to run:
    python scripts_keras/convae_keras.py             # train, then test
    python scripts_keras/convae_keras.py --test      # test the last checkpoint
    python scripts_keras/convae_keras.py --dataset cifar10 --iters 5000
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, cli, compat, pictures, recon, runs  # noqa: E402

keras = compat.import_keras()  # Keras 3, TensorFlow backend, quiet TF start-up
import tensorflow as tf  # noqa: E402  (the backend: tf.function for the train step, GPU query)
from keras import layers  # noqa: E402

QUESTION = "convae"
FRAMEWORK = "keras"


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


# ---- Config ----
VALUE_RANGE = (-1.0, 1.0)   # images are scaled to [-1, 1]
CHANNELS = (32, 16)         # encoder widths; the decoder mirrors them
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8             # set explicitly: the frameworks' defaults differ (1e-8, or 1e-7 in one)
                            # Keras adds it before Adam's bias correction, PyTorch after (a tiny difference)
JIT_COMPILE = False         # XLA off for the train step, as Keras' own "auto" does on CPU


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Convolutional autoencoder (Keras 3).",
                              dataset="imori", iters=1000, batch_size=64, lr=1e-3,
                              sample_every=100, checkpoint_every=500)
    return cli.parse_args(parser, argv)


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC in [-1, 1] (common loader, same in every framework)."""
    return recon.load_images(args, split, VALUE_RANGE)


# Keras is NHWC like `common`: the images go in as they are (PyTorch
# transposes them to NCHW and back here).


# ---- Model ----
def init_weights():
    # Glorot-uniform weights, zero biases: the same explicit choice in all
    # four versions (each framework's default initialiser differs).
    return {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}


# Encoder, Decoder and ConvAE are functions named like the classes of the
# other versions; each returns a Keras model.
def Encoder():
    # padding="same" with a 3x3 kernel and stride 1 pads 1 on each side (PyTorch's padding=1)
    return keras.Sequential([
        layers.Conv2D(CHANNELS[0], kernel_size=3, strides=1, padding="same", activation="relu",
                      **init_weights()),                                # (N,H,W,32)
        layers.MaxPooling2D(pool_size=2, strides=2, padding="valid"),  # (N,H/2,W/2,32)
        layers.Conv2D(CHANNELS[1], kernel_size=3, strides=1, padding="same", activation="relu",
                      **init_weights()),                                # (N,H/2,W/2,16)
        layers.MaxPooling2D(pool_size=2, strides=2, padding="valid"),  # (N,H/4,W/4,16)
    ], name="encoder")


def Decoder(out_channels):
    return keras.Sequential([
        layers.Conv2DTranspose(CHANNELS[0], kernel_size=2, strides=2, padding="valid", activation="relu",
                               **init_weights()),                       # (N,H/2,W/2,32)
        layers.Conv2DTranspose(out_channels, kernel_size=2, strides=2, padding="valid", activation=None,
                               **init_weights()),                       # (N,H,W,C)
        # no output activation: the target is the [-1, 1] image itself
    ], name="decoder")


def ConvAE(image_shape):
    height, width, channels = image_shape
    if height % 4 or width % 4:
        raise ValueError(f"image size {height}x{width} must be divisible by 4 (two 2x2 poolings)")
    encoder = Encoder()
    decoder = Decoder(channels)
    real_images = keras.Input(shape=tuple(image_shape))  # (N,H,W,C)
    return keras.Model(real_images, decoder(encoder(real_images)), name="convae")


def model_info(image_shape):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "channels": list(CHANNELS)}


def save_checkpoint(run, iteration, model, optimizer, feed, image_shape):
    def write_files(folder):
        # the weights and Adam's state (step count, learning rate, m and v); no
        # random layers: the only random state, the data's, is in meta["feed"]
        model.save_weights(folder / "model.weights.h5")
        optimizer_state = {}
        optimizer.save_own_variables(optimizer_state)
        np.savez(folder / "optimizer.npz", **optimizer_state)
    run.save_checkpoint(iteration, write_files, {"model": model_info(image_shape), "feed": feed.state_dict()})


def load_checkpoint(folder, model, optimizer=None):
    # runs.reading turns a broken file into one line naming it
    # runs.load_npz never unpickles
    with runs.reading(folder / "model.weights.h5"):
        model.load_weights(folder / "model.weights.h5")
    if optimizer is not None:
        optimizer.build(model.trainable_variables)  # create Adam's m and v, then fill them
        optimizer_state = runs.load_npz(folder / "optimizer.npz")
        with runs.reading(folder / "optimizer.npz"):
            optimizer.load_own_variables(optimizer_state)


# ---- Losses ----
def reconstruction_loss(outputs, targets):
    """Mean squared error over pixels, channels and the batch."""
    return keras.ops.mean(keras.ops.square(outputs - targets))


# ---- Train step ----
# One iteration: reconstruct a minibatch, take the mean squared error to the
# minibatch itself, backpropagate it, one Adam update; the loss comes back as a float.
def make_train_step(model, optimizer):
    optimizer.build(model.trainable_variables)  # Adam's m and v, made here rather than in the graph

    # One TensorFlow graph, traced once on the first call (every minibatch
    # has the same shape and dtype, so it is never traced again).
    @tf.function(jit_compile=JIT_COMPILE)
    def graph_step(real_images):
        with tf.GradientTape() as tape:
            loss = reconstruction_loss(model(real_images, training=True), real_images)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    def train_step(real_images):
        return float(graph_step(real_images))
    return train_step


def reconstruct(model, images):
    """NHWC in, NHWC out, in inference mode."""
    def forward(batch):
        # plain eager calls: a handful per run, not worth tracing a graph for
        return model(batch, training=False).numpy()
    return recon.in_batches(forward, images)


# ---- Train ----
def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    keras.utils.set_random_seed(args.seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed,
                         augment.for_dataset(args.dataset, VALUE_RANGE))
    # every variable and op of the run goes to the device
    with keras.device(device):
        model = ConvAE(image_shape)
        optimizer = keras.optimizers.Adam(learning_rate=args.lr, beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1],
                                          epsilon=ADAM_EPS)
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
                real_images = feed.next()
                loss = train_step(real_images)
                progress.log(iteration, {"loss": loss})
                if progress.due(iteration, args.sample_every):
                    outputs = reconstruct(model, fixed_images)
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
    with keras.device(device):
        model = ConvAE(image_shape)
        load_checkpoint(folder, model)
        outputs = reconstruct(model, data.images)
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
