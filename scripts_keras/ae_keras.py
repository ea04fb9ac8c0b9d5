"""AutoEncoder (AE) -- Keras 3

Question: flatten a 64x64x3 newt photo, squeeze it through a 64-unit
Dense layer and expand it back with a Dense layer of H*W*C units (no
activations: the original exercise's hourglass MLP, which learns the same
subspace as PCA), trained to reproduce its input (pixels in [-1, 1], MSE
loss, Adam lr 1e-3, batch 64, 1000 iterations, flips and rotations as
augmentation).
Framework: Keras 3 on the TensorFlow backend (NHWC).
Paper: none (classic autoencoder; Hinton & Salakhutdinov, Science 2006).
How to run:
    python scripts_keras/ae_keras.py             # train, then test
    python scripts_keras/ae_keras.py --test      # test the last checkpoint
    python scripts_keras/ae_keras.py --dataset mnist --iters 3000
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

QUESTION = "ae"
FRAMEWORK = "keras"

# ---- Config ----
VALUE_RANGE = (-1.0, 1.0)   # images are scaled to [-1, 1]
HIDDEN = 64                 # the bottleneck width
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8             # as in torch, set explicitly (Keras' default is 1e-7); Keras adds it
                            # before the bias correction, PyTorch after (a tiny difference)
JIT_COMPILE = False         # XLA off: on CPU it made this step no faster (~0.014 s either way,
                            # 2 cores) and costs ~1 s of compiling; Keras' own "auto" also skips it on CPU


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Autoencoder, an MLP hourglass (Keras 3).",
                              dataset="imori", iters=1000, batch_size=64, lr=1e-3,
                              sample_every=100, checkpoint_every=500)
    return cli.parse_args(parser, argv)


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC in [-1, 1] (common loader, same in every framework)."""
    return recon.load_images(args, split, VALUE_RANGE)


# The images go in as NHWC arrays, as `common` gives them; the model's
# Flatten layer makes the pixel vector in that NHWC order (the PyTorch and
# TF-Slim versions flatten here, in the same order), so the Dense weights
# match the other versions 1:1.


# ---- Model ----
# Glorot-uniform weights, zero biases: the same explicit choice in all four
# versions (each framework's default initialiser differs), written on every
# layer.  Encoder, Decoder and AutoEncoder are functions named like the
# PyTorch classes; each returns a Keras model.
def Encoder():
    return keras.Sequential([
        layers.Flatten(),                                                            # (N, H*W*C), NHWC order
        layers.Dense(HIDDEN, activation=None,
                     kernel_initializer="glorot_uniform", bias_initializer="zeros"),  # (N, 64)
    ], name="encoder")


def Decoder(image_shape):
    return keras.Sequential([
        layers.Dense(int(np.prod(image_shape)), activation=None,
                     kernel_initializer="glorot_uniform", bias_initializer="zeros"),  # (N, H*W*C)
        layers.Reshape(tuple(image_shape)),                                          # (N,H,W,C)
        # no output activation: the target is the [-1, 1] image itself
    ], name="decoder")


def AutoEncoder(image_shape):
    encoder = Encoder()
    decoder = Decoder(image_shape)
    real_images = keras.Input(shape=tuple(image_shape))  # (N,H,W,C)
    return keras.Model(real_images, decoder(encoder(real_images)), name="autoencoder")


def model_info(image_shape):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "hidden": HIDDEN}


# ---- Losses ----
def reconstruction_loss(outputs, targets):
    """Mean squared error over pixels, channels and the batch."""
    return keras.ops.mean(keras.ops.square(outputs - targets))


# ---- Train step ----
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


def reconstruct(model, images, batch_size=256):
    """NHWC in, NHWC out, in inference mode."""
    # plain eager calls: a handful per run, not worth tracing a graph for
    outputs = [model(images[i:i + batch_size], training=False).numpy()
               for i in range(0, len(images), batch_size)]
    return np.concatenate(outputs)


def save_checkpoint(run, iteration, model, optimizer, feed, image_shape):
    def write_files(folder):
        model.save_weights(folder / "model.weights.h5")
        optimizer_state = {}
        optimizer.save_own_variables(optimizer_state)  # step count, learning rate, Adam's m and v
        np.savez(folder / "optimizer.npz", **optimizer_state)
        # (no random layers: the only RNG state, the data's, is in meta["feed"])
    run.save_checkpoint(iteration, write_files, {"model": model_info(image_shape), "feed": feed.state_dict()})


def load_checkpoint(folder, model, optimizer=None):
    with runs.reading(folder / "model.weights.h5"):   # a broken file: one line naming it
        model.load_weights(folder / "model.weights.h5")
    if optimizer is not None:
        optimizer.build(model.trainable_variables)  # create Adam's m and v, then fill them
        optimizer_state = runs.load_npz(folder / "optimizer.npz")   # never unpickles
        with runs.reading(folder / "optimizer.npz"):
            optimizer.load_own_variables(optimizer_state)


# ---- Train ----
def train(args):
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    keras.utils.set_random_seed(args.seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed,
                         augment.for_dataset(args.dataset, VALUE_RANGE))
    model = AutoEncoder(image_shape)
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

    def step(iteration):
        real_images = feed.next()
        return {"loss": train_step(real_images)}

    def on_sample(iteration):
        pictures.save_pairs(fixed_images, reconstruct(model, fixed_images),
                            run.sample_path(iteration), value_range=VALUE_RANGE,
                            titles=[f"iteration {iteration}"] + [""] * (len(fixed_images) - 1))

    runs.train_loop(run, start=start, iters=args.iters, step=step, fields=["loss"],
                    on_sample=on_sample,
                    on_checkpoint=lambda it: save_checkpoint(run, it, model, optimizer, feed, image_shape),
                    sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
                    log_every=args.log_every, resume_at=start if args.resume else None, curves=["loss"])


# ---- Test ----
def test(args):
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "test")
    image_shape = data.images.shape[1:]
    folder, _ = run.load_checkpoint_meta(args.checkpoint, model_info(image_shape))
    model = AutoEncoder(image_shape)
    load_checkpoint(folder, model)
    outputs = reconstruct(model, data.images)
    return recon.report_reconstructions(run, data, outputs, VALUE_RANGE)


# ---- Main ----
def main(argv=None):
    args = parse_args(argv)
    with keras.device(pick_device(args.device)):  # every variable and op of the run goes there
        if args.train:
            train(args)
        if args.test:
            return test(args)
    return None


if __name__ == "__main__":
    cli.run_main(main)
