"""AutoEncoder (AE) -- PyTorch

Question: flatten a 64x64x3 newt photo, squeeze it through a 64-unit
Dense layer and expand it back with a Dense layer of H*W*C units (no
activations: the original exercise's hourglass MLP, which learns the same
subspace as PCA), trained to reproduce its input (pixels in [-1, 1], MSE
loss, Adam lr 1e-3, batch 64, 1000 iterations, flips and rotations as
augmentation).
Framework: PyTorch.
Paper: none (classic autoencoder; Hinton & Salakhutdinov, Science 2006).
How to run:
    python scripts_pytorch/ae_pytorch.py             # train, then test
    python scripts_pytorch/ae_pytorch.py --test      # test the last checkpoint
    python scripts_pytorch/ae_pytorch.py --dataset mnist --iters 3000
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from common import augment, batching, cli, pictures, recon, runs  # noqa: E402

QUESTION = "ae"
FRAMEWORK = "pytorch"


def pick_device(choice):
    return torch.device("cuda" if cli.resolve_device(choice, torch.cuda.is_available()) == "gpu" else "cpu")


# ---- Config ----
VALUE_RANGE = (-1.0, 1.0)   # images are scaled to [-1, 1]
HIDDEN = 64                 # the bottleneck width
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8             # set explicitly: the frameworks' defaults differ (1e-8, or 1e-7 in one)


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Autoencoder, an MLP hourglass (PyTorch).",
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
def init_weights(module):
    # Glorot-uniform weights, zero biases: the same explicit choice in all
    # four versions (each framework's default initialiser differs).
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class Encoder(nn.Sequential):
    def __init__(self, in_features):
        super().__init__(
            nn.Linear(in_features, HIDDEN),  # (N, 64)
        )


class Decoder(nn.Sequential):
    def __init__(self, out_features):
        super().__init__(
            nn.Linear(HIDDEN, out_features),  # (N, H*W*C)
            # no output activation: the target is the [-1, 1] image itself
        )


class AutoEncoder(nn.Module):
    def __init__(self, image_shape):
        super().__init__()
        in_features = int(np.prod(image_shape))
        self.encoder = Encoder(in_features)
        self.decoder = Decoder(in_features)
        self.apply(init_weights)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def model_info(image_shape):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "hidden": HIDDEN}


def save_checkpoint(run, iteration, model, optimizer, feed, image_shape):
    def write_files(folder):
        # the weights, Adam's state and the generator of torch's random numbers
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state()}, folder / "model.pt")
    run.save_checkpoint(iteration, write_files, {"model": model_info(image_shape), "feed": feed.state_dict()})


def load_checkpoint(folder, model, optimizer=None):
    # runs.reading turns a broken file into one line naming it
    # weights_only=True: tensors and plain containers only, no pickled code
    with runs.reading(folder / "model.pt"):
        state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])


# ---- Losses ----
def reconstruction_loss(outputs, targets):
    """Mean squared error over pixels, channels and the batch."""
    return ((outputs - targets) ** 2).mean()


# ---- Train step ----
# One iteration: reconstruct a minibatch, take the mean squared error to the
# minibatch itself, backpropagate it, one Adam update; the loss comes back as a float.
def make_train_step(model, optimizer):
    def train_step(real_images):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = reconstruction_loss(model(real_images), real_images)
        loss.backward()
        optimizer.step()
        return loss.item()
    return train_step


def reconstruct(model, images, device):
    """NHWC in, NHWC out, in inference mode."""
    def forward(batch):
        return model(torch.from_numpy(flatten(batch)).to(device)).cpu().numpy().reshape(batch.shape)
    model.eval()
    with torch.no_grad():
        return recon.in_batches(forward, images)


# ---- Train ----
def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    cli.seed_everything(args.seed)
    torch.manual_seed(args.seed)
    feed = batching.Feed(data.images, args.batch_size, args.seed,
                         augment.for_dataset(args.dataset, VALUE_RANGE))
    model = AutoEncoder(image_shape).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=ADAM_BETAS, eps=ADAM_EPS)
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
            real_images = torch.from_numpy(flatten(feed.next())).to(device)
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
    model = AutoEncoder(image_shape).to(device)
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
