"""AutoEncoder (AE) -- TF-Slim

Question: flatten a 64x64x3 newt photo, squeeze it through a 64-unit
Dense layer and expand it back with a Dense layer of H*W*C units (no
activations: the original exercise's hourglass MLP, which learns the same
subspace as PCA), trained to reproduce its input (pixels in [-1, 1], MSE
loss, Adam lr 1e-3, batch 64, 1000 iterations, flips and rotations as
augmentation).
Framework: TF-Slim (TensorFlow 1-style graph and session through tf.compat.v1).
Paper: none (classic autoencoder; Hinton & Salakhutdinov, Science 2006).
How to run:
    python scripts_tf_slim/ae_tf_slim.py             # train, then test
    python scripts_tf_slim/ae_tf_slim.py --test      # test the last checkpoint
    python scripts_tf_slim/ae_tf_slim.py --dataset mnist --iters 3000
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402

from common import augment, batching, cli, compat, pictures, recon, runs  # noqa: E402

tf, slim = compat.import_tf_slim()  # tf is tensorflow.compat.v1 (graphs and sessions)

QUESTION = "ae"
FRAMEWORK = "tf_slim"


def pick_device(choice):
    gpu_available = bool(tf.config.list_physical_devices("GPU"))
    return "/gpu:0" if cli.resolve_device(choice, gpu_available) == "gpu" else "/cpu:0"


def make_session(graph):
    # soft placement: the few ops without a GPU kernel (checkpoint I/O) run on the CPU
    return tf.Session(graph=graph, config=tf.ConfigProto(allow_soft_placement=True))


# ---- Config ----
VALUE_RANGE = (-1.0, 1.0)   # images are scaled to [-1, 1]
HIDDEN = 64                 # the bottleneck width
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8             # set explicitly: the frameworks' defaults differ (1e-8, or 1e-7 in one)


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Autoencoder, an MLP hourglass (TF-Slim).",
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
    # Slim takes them per scope: an arg_scope, entered where the layers are made.
    return slim.arg_scope([slim.fully_connected],
                          weights_initializer=tf.glorot_uniform_initializer(),
                          biases_initializer=tf.zeros_initializer())


# Encoder, Decoder and AutoEncoder are functions named like the classes of the
# other versions; each adds its layers to the current graph (TF1 style), where
# variable scopes hold the weights.
def Encoder(inputs, reuse=False):
    with tf.variable_scope("encoder", reuse=reuse), init_weights():
        x = slim.fully_connected(inputs, HIDDEN, activation_fn=None, scope="fc")  # (N, 64)
    return x


def Decoder(codes, out_features, reuse=False):
    with tf.variable_scope("decoder", reuse=reuse), init_weights():
        x = slim.fully_connected(codes, out_features, activation_fn=None, scope="fc")  # (N, H*W*C)
        # no output activation: the target is the [-1, 1] image itself
    return x


def AutoEncoder(inputs, reuse=False):
    """Adds the network to the current graph; ``reuse=True`` shares the
    variables made by an earlier call."""
    in_features = inputs.shape[1]
    return Decoder(Encoder(inputs, reuse), in_features, reuse)


def inference_graph(image_shape, reuse=False):
    """An input placeholder (flattened images) and the reconstruction it feeds: (inputs, outputs)."""
    inputs = tf.placeholder(tf.float32, (None, int(np.prod(image_shape))), name="inputs")
    return inputs, AutoEncoder(inputs, reuse=reuse)


def model_info(image_shape):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "hidden": HIDDEN}


def save_checkpoint(run, iteration, sess, saver, feed, image_shape):
    def write_files(folder):
        # TF's own format (model.ckpt.index + .data): every variable the saver
        # holds; no random state to keep, training draws no random numbers
        saver.save(sess, str(folder / "model.ckpt"), write_meta_graph=False, write_state=False)
    run.save_checkpoint(iteration, write_files, {"model": model_info(image_shape), "feed": feed.state_dict()})


def load_checkpoint(folder, sess, saver):
    # runs.reading turns a broken file into one line naming it
    with runs.reading(folder / "model.ckpt"):
        saver.restore(sess, str(folder / "model.ckpt"))


# ---- Losses ----
def reconstruction_loss(outputs, targets):
    """Mean squared error over pixels, channels and the batch."""
    return tf.reduce_mean(tf.square(outputs - targets))


# ---- Train step ----
# One iteration: reconstruct a minibatch, take the mean squared error to the
# minibatch itself, backpropagate it, one Adam update; the loss comes back as a float.
def make_train_step(real_images, optimizer):
    """Adds the model, the loss and the update op to the graph, once; the
    returned function runs one training iteration as one ``sess.run``."""
    loss = reconstruction_loss(AutoEncoder(real_images), real_images)
    train_op = optimizer.minimize(loss)

    def train_step(sess, batch):
        _, loss_value = sess.run([train_op, loss], feed_dict={real_images: batch})
        return float(loss_value)
    return train_step


def reconstruct(sess, model, images):
    """NHWC in, NHWC out, through the inference graph ``model = (inputs, outputs)``."""
    inputs, outputs = model

    def forward(batch):
        return sess.run(outputs, {inputs: flatten(batch)}).reshape(batch.shape)
    return recon.in_batches(forward, images)


# ---- Train ----
def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    feed = batching.Feed(data.images, args.batch_size, args.seed,
                         augment.for_dataset(args.dataset, VALUE_RANGE))
    with tf.Graph().as_default() as graph, tf.device(device):
        tf.set_random_seed(args.seed)
        real_images = tf.placeholder(tf.float32, (None, int(np.prod(image_shape))), name="real_images")
        optimizer = tf.train.AdamOptimizer(args.lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                                           epsilon=ADAM_EPS)
        train_step = make_train_step(real_images, optimizer)
        model = inference_graph(image_shape, reuse=True)  # the same variables, for the samples
        # all global variables: the weights, Adam's moments and its beta powers,
        # so that --resume continues the same run
        saver = tf.train.Saver(max_to_keep=None)  # runs.Run prunes old checkpoints
        init_op = tf.global_variables_initializer()
    graph.finalize()  # nothing is added to the graph during training
    with make_session(graph) as sess:
        sess.run(init_op)
        start = 0
        if args.resume:
            folder, meta = run.load_checkpoint_meta(args.resume, model_info(image_shape))
            load_checkpoint(folder, sess, saver)
            feed.load_state_dict(meta["feed"])
            start = meta["iteration"]
            if start >= args.iters:
                print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
                return
        run.prepare_training(args, resume=bool(args.resume))
        fixed_images = data.images[:8]  # the same 8 training photos in every sample picture
        with runs.Progress(run, start, args.iters, ["loss"], args.log_every, resume=bool(args.resume)) as progress:
            for iteration in progress:
                batch = flatten(feed.next())
                loss = train_step(sess, batch)
                progress.log(iteration, {"loss": loss})
                if progress.due(iteration, args.sample_every):
                    outputs = reconstruct(sess, model, fixed_images)
                    recon.save_samples(run, iteration, fixed_images, outputs, VALUE_RANGE)
                if progress.due(iteration, args.checkpoint_every):
                    save_checkpoint(run, iteration, sess, saver, feed, image_shape)
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
    with tf.Graph().as_default() as graph, tf.device(device):
        model = inference_graph(image_shape)
        # only the weights: the checkpoint also holds Adam's variables, not needed here
        saver = tf.train.Saver(slim.get_model_variables())
    with make_session(graph) as sess:
        load_checkpoint(folder, sess, saver)
        outputs = reconstruct(sess, model, data.images)
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
