"""Variational AutoEncoder (VAE) -- PyTorch

Question: encode a 28x28x1 MNIST digit (pixels in [0, 1]) with Dense(256)
+ReLU into the mean and the log-variance of a 2-D Gaussian latent code,
draw z = mu + eps * exp(logvar / 2) with eps ~ N(0, I) (the
reparameterisation trick), decode z with Dense(256)+ReLU, Dense(784)
+sigmoid, and train on the negative ELBO: binary cross-entropy summed over
the pixels plus KL(q(z|x) || N(0, I)) in closed form (Adam lr 1e-3,
batch 256, 10000 iterations).  The test writes test digits beside their
reconstructions, digits decoded from z ~ N(0, I), and prints the test-set
negative ELBO and its two terms.
Framework: PyTorch.
Paper: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014
(arXiv:1312.6114), appendix B for the closed-form KL.
How to run:
    python scripts_pytorch/vae_pytorch.py             # train, then test
    python scripts_pytorch/vae_pytorch.py --test      # test the last checkpoint
    python scripts_pytorch/vae_pytorch.py --latent-dim 8
    python scripts_pytorch/vae_pytorch.py --data-dir ../shared/datasets/mnist10k   # offline
    then: scripts_pytorch/vae_latent_show_pytorch.py, scripts_pytorch/vae_latent_change_pytorch.py
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from common import augment, batching, cli, latent, pictures, recon, runs  # noqa: E402

QUESTION = "vae"
FRAMEWORK = "pytorch"

# ---- Config ----
VALUE_RANGE = (0.0, 1.0)    # pixels in [0, 1]: the targets of the binary cross-entropy
HIDDEN = 256                # the hidden layer of the encoder and of the decoder
LATENT_DIM = 2              # the question's latent size (--latent-dim)
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8             # torch default, set explicitly (Keras' default is 1e-7)
SAMPLE_COUNT = 64           # digits in each training sample picture (a fixed z batch)
TEST_SAMPLE_COUNT = 100     # digits in test/samples.png
FIELDS = ["loss", "bce", "kl"]   # the metrics.csv columns and the curves: the negative ELBO and its terms


def add_flags(group):
    group.add_argument("--latent-dim", type=cli.positive_int, default=LATENT_DIM,
                       help="size of z (the latent scripts need 2)")


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK, "Variational autoencoder, an MLP (PyTorch).",
                              dataset="mnist", iters=10000, batch_size=256, lr=1e-3,
                              sample_every=500, checkpoint_every=1000, extra=add_flags)
    return cli.parse_args(parser, argv)


def pick_device(choice):
    return torch.device("cuda" if cli.resolve_device(choice, torch.cuda.is_available()) == "gpu" else "cpu")


# ---- Data ----
def load_data(args, split):
    """Images as float32 NHWC in [0, 1] (common loader, same in every framework)."""
    return recon.load_images(args, split, VALUE_RANGE)


def flatten(images):
    """NHWC -> (N, H*W*C).  The MLP sees the pixel vector in the common
    NHWC order, so its weights match those of the other versions 1:1."""
    return images.reshape(len(images), -1)


# ---- Model ----
def init_weights(module):
    # Glorot-uniform weights, zero biases: the same explicit choice in all
    # four versions (each framework's default initialiser differs).
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class Encoder(nn.Module):
    """x -> (mu, logvar) of q(z|x) = N(mu, diag(exp(logvar)))."""

    def __init__(self, in_features, latent_dim):
        super().__init__()
        self.hidden = nn.Linear(in_features, HIDDEN)   # (N, 256), then ReLU
        self.mu = nn.Linear(HIDDEN, latent_dim)        # (N, Z)
        self.logvar = nn.Linear(HIDDEN, latent_dim)    # (N, Z)

    def forward(self, x):
        h = F.relu(self.hidden(x))
        return self.mu(h), self.logvar(h)


class Decoder(nn.Sequential):
    """z -> the logits of the pixels; sigmoid(logits) is the decoded image.
    The sigmoid is applied by `decode` for pictures and inside the loss
    (binary cross-entropy on logits, which never takes log(0))."""

    def __init__(self, latent_dim, out_features):
        super().__init__(
            nn.Linear(latent_dim, HIDDEN),     # (N, 256)
            nn.ReLU(),
            nn.Linear(HIDDEN, out_features),   # (N, H*W*C) logits; + sigmoid -> pixels in [0, 1]
        )


def reparameterize(mu, logvar, eps):
    """z = mu + eps * sigma with sigma = exp(logvar / 2): a sample of
    q(z|x) through which gradients reach mu and logvar (eps ~ N(0, I) is
    drawn outside, so the same eps gives the same z in every framework)."""
    return mu + eps * torch.exp(0.5 * logvar)


class VAE(nn.Module):
    def __init__(self, image_shape, latent_dim):
        super().__init__()
        in_features = int(np.prod(image_shape))
        self.encoder = Encoder(in_features, latent_dim)
        self.decoder = Decoder(latent_dim, in_features)
        self.apply(init_weights)

    def forward(self, x, eps):
        """x (N, H*W*C) in [0, 1], eps (N, Z) -> (logits, mu, logvar)."""
        mu, logvar = self.encoder(x)
        z = reparameterize(mu, logvar, eps)
        return self.decoder(z), mu, logvar


def model_info(image_shape, latent_dim):
    """What a checkpoint must match to be loaded into this model."""
    return {"image_shape": list(image_shape), "hidden": HIDDEN, "latent_dim": int(latent_dim)}


# ---- Losses ----
# Both terms are summed per sample (over pixels, over latent dimensions)
# and averaged over the batch: the loss is the negative ELBO per image, in
# nats.  (A mean over pixels instead would weight the KL term 784 times
# more and blur the digits.)
def reconstruction_term(logits, x):
    """-log p(x|z): binary cross-entropy of the targets x in [0, 1] and the
    decoded pixels sigmoid(logits), summed over pixels, mean over the batch.
    Computed from the logits, max(l, 0) - x * l + log(1 + exp(-|l|)),
    which is exact where sigmoid(l) rounds to 0 or 1."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1).mean()


def kl_term(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) in closed form,
    -1/2 * sum(1 + logvar - mu^2 - exp(logvar)) over the latent
    dimensions, mean over the batch."""
    return (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


def vae_loss(logits, x, mu, logvar):
    """The negative ELBO = reconstruction_term + kl_term; returns
    (loss, bce, kl) so that both terms can be logged."""
    bce = reconstruction_term(logits, x)
    kl = kl_term(mu, logvar)
    return bce + kl, bce, kl


# ---- Train step ----
def make_train_step(model, optimizer, device):
    def train_step(real_images, eps):
        """One Adam step on the negative ELBO of a batch: real_images
        (N, H*W*C) and eps (N, Z), both NumPy."""
        real_images, eps = torch.from_numpy(real_images).to(device), torch.from_numpy(eps).to(device)
        model.train()
        optimizer.zero_grad(set_to_none=True)
        logits, mu, logvar = model(real_images, eps)
        loss, bce, kl = vae_loss(logits, real_images, mu, logvar)
        loss.backward()
        optimizer.step()
        terms = torch.stack([loss, bce, kl]).detach().cpu().numpy()   # one device -> host copy
        loss, bce, kl = terms.tolist()
        return {"loss": loss, "bce": bce, "kl": kl}
    return train_step


@torch.no_grad()
def encode(model, images, device, batch_size=1000):
    """NHWC images -> (mu, logvar), each (N, Z) NumPy, in inference mode."""
    model.eval()
    parts = [model.encoder(torch.from_numpy(flatten(images[i:i + batch_size])).to(device))
             for i in range(0, len(images), batch_size)]
    return tuple(torch.cat(p).cpu().numpy() for p in zip(*parts))


@torch.no_grad()
def decode(model, z, image_shape, device, batch_size=1000):
    """(N, Z) NumPy codes -> NHWC images in [0, 1] (sigmoid of the logits)."""
    model.eval()
    z = np.asarray(z, np.float32)
    outputs = [torch.sigmoid(model.decoder(torch.from_numpy(z[i:i + batch_size]).to(device))).cpu().numpy()
               for i in range(0, len(z), batch_size)]
    return np.concatenate(outputs).reshape((len(z), *image_shape))


@torch.no_grad()
def evaluate(model, images, eps, device, batch_size=1000):
    """The negative ELBO and its two terms, means per image over all
    ``images``, one z = mu + eps * sigma per image (``eps`` (N, Z) NumPy)."""
    model.eval()
    sums = np.zeros(3)
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(flatten(images[i:i + batch_size])).to(device)
        logits, mu, logvar = model(x, torch.from_numpy(eps[i:i + batch_size]).to(device))
        terms = torch.stack(vae_loss(logits, x, mu, logvar)).cpu().numpy()
        sums += terms.astype(np.float64) * len(x)
    loss, bce, kl = sums / len(images)
    return {"loss": loss, "bce": bce, "kl": kl}


def save_checkpoint(run, iteration, model, optimizer, feed, eps_rng, image_shape, latent_dim, dataset):
    def write_files(folder):
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),   # Adam's m, v and step
                    "torch_rng": torch.get_rng_state()}, folder / "model.pt")
    run.save_checkpoint(iteration, write_files, {"model": model_info(image_shape, latent_dim),
                                                 "feed": feed.state_dict(), "dataset": dataset,
                                                 "eps_rng": eps_rng.bit_generator.state})


def load_checkpoint(folder, model, optimizer=None):
    # weights_only=True: tensors and plain containers only, no pickled code;
    # runs.reading turns a broken file into one line naming it.
    with runs.reading(folder / "model.pt"):
        state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])


# ---- Train ----
def train(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "train")
    image_shape = data.images.shape[1:]
    torch.manual_seed(args.seed)   # the initial weights
    eps_rng = latent.eps_generator(args.seed)   # the eps of every training step, checkpointed
    feed = batching.Feed(data.images, args.batch_size, args.seed,
                         augment.for_dataset(args.dataset, VALUE_RANGE))   # none for the digit sets
    model = VAE(image_shape, args.latent_dim).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=ADAM_BETAS, eps=ADAM_EPS)
    start = 0
    if args.resume:
        folder, meta = run.load_checkpoint_meta(args.resume, model_info(image_shape, args.latent_dim))
        load_checkpoint(folder, model, optimizer)
        feed.load_state_dict(meta["feed"])
        eps_rng.bit_generator.state = meta["eps_rng"]
        start = meta["iteration"]
        if start >= args.iters:
            print(f"checkpoint {folder.name} is already at iteration {start} >= --iters {args.iters}")
            return
    run.prepare_training(args, resume=bool(args.resume))
    train_step = make_train_step(model, optimizer, device)
    fixed_z = latent.gaussian(SAMPLE_COUNT, args.latent_dim, args.seed, latent.SAMPLES)  # the same z each time
    with runs.Progress(run, start, args.iters, FIELDS, args.log_every, resume=bool(args.resume)) as progress:
        for iteration in progress:
            real_images = flatten(feed.next())
            # eps ~ N(0, I) from the checkpointed NumPy generator (latent.eps_generator):
            # the same eps in every framework, and a resumed run draws what an
            # uninterrupted one would
            eps = eps_rng.standard_normal((len(real_images), args.latent_dim)).astype(np.float32)
            losses = train_step(real_images, eps)
            progress.log(iteration, losses)
            if progress.due(iteration, args.sample_every):
                pictures.save_grid(decode(model, fixed_z, image_shape, device), run.sample_path(iteration),
                                   nrow=8, value_range=VALUE_RANGE, scale=2, title=f"iteration {iteration}")
            if progress.due(iteration, args.checkpoint_every):
                save_checkpoint(run, iteration, model, optimizer, feed, eps_rng, image_shape, args.latent_dim,
                                args.dataset)
                if progress.plots_due(iteration):
                    pictures.plot_curves(run.metrics_path, run.root / "curves.png", FIELDS, logy=True,
                                         title=f"{QUESTION} ({FRAMEWORK})")


# ---- Test ----
def test(args):
    device = pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    data = load_data(args, "test")
    image_shape = data.images.shape[1:]
    folder, _ = run.load_checkpoint_meta(args.checkpoint, model_info(image_shape, args.latent_dim))
    model = VAE(image_shape, args.latent_dim).to(device)
    load_checkpoint(folder, model)
    # one z per test image, eps from NumPy: the same in every framework
    eps = latent.gaussian(len(data.images), args.latent_dim, args.seed, latent.TEST_EPS)
    terms = evaluate(model, data.images, eps, device)
    mu, _ = encode(model, data.images, device)
    reconstructions = decode(model, mu, image_shape, device)   # decoded from the means
    z = latent.gaussian(TEST_SAMPLE_COUNT, args.latent_dim, args.seed, latent.TEST_SAMPLES)
    samples = decode(model, z, image_shape, device)
    return recon.report_vae_test(run, data, reconstructions, samples, terms, args.latent_dim, VALUE_RANGE)


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
