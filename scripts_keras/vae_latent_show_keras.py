"""VAE latent space: the test-set means as a scatter plot -- Keras 3

Question: load the trained vae (the checkpoint written by
scripts_keras/vae_keras.py), encode every test image and draw the means
mu of q(z|x) in the 2-D latent plane, one colour per class, with a legend
(digits for MNIST, clothing names for Fashion-MNIST).  This script trains
nothing: train the vae first, with --latent-dim 2 (its default).
Framework: Keras 3 on the TensorFlow backend (NHWC).
Paper: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014
(arXiv:1312.6114), figure 4 for a learned 2-D MNIST manifold.
How to run:
    python scripts_keras/vae_keras.py                 # train the vae first
    python scripts_keras/vae_latent_show_keras.py     # -> out/vae_latent_show/keras/test/
    python scripts_keras/vae_keras.py --dataset fashion_mnist --out-dir out/vae_fashion/keras
    python scripts_keras/vae_latent_show_keras.py --dataset fashion_mnist --vae-dir out/vae_fashion/keras
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`
sys.path.insert(0, str(Path(__file__).resolve().parent))      # this folder, for the vae answer

import vae_keras as vae  # noqa: E402  (the network and its checkpoint loader)

from common import cli, compat, latent, runs  # noqa: E402

keras = compat.import_keras()  # the Keras 3 (TensorFlow backend) that vae_keras imported

QUESTION = "vae_latent_show"
FRAMEWORK = "keras"

# ---- Config ----
LATENT_DIM = latent.LATENT_DIM   # a plane: the vae must have been trained with --latent-dim 2


def add_flags(group):
    latent.add_vae_flags(group, FRAMEWORK)


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK,
                              "Scatter plot of the trained VAE's test-set means (Keras 3); trains nothing.",
                              dataset="mnist", iters=10000, batch_size=256, lr=1e-3,
                              sample_every=500, checkpoint_every=1000, extra=add_flags)
    return latent.parse_args(parser, argv, QUESTION, FRAMEWORK)


# ---- Data ----
def load_data(args, split):
    """The vae's data: float32 NHWC in [0, 1] and the labels that colour the plot."""
    return vae.load_data(args, split)


# ---- Model ----
# the vae answer's VAE (imported above), loaded from its checkpoint


# ---- Losses ----
# none: nothing is trained here


# ---- Train step ----
# none: nothing is trained here


# ---- Train ----
# none: train the vae with scripts_keras/vae_keras.py


# ---- Test ----
def test(args):
    device = vae.pick_device(args.device)
    run = runs.Run(QUESTION, FRAMEWORK, args.out_dir)
    vae_run, folder = latent.find_vae_checkpoint(args, QUESTION, FRAMEWORK)
    data = load_data(args, "test")
    image_shape = data.images.shape[1:]
    folder, _ = vae_run.load_checkpoint_meta(folder, vae.model_info(image_shape, LATENT_DIM))
    with keras.device(device):   # every variable and op goes there
        model = vae.VAE(image_shape, LATENT_DIM)
        vae.load_checkpoint(folder, model)
        mu, _ = vae.encode(model, data.images)
    return latent.save_scatter(run, mu, data, args.dataset)


# ---- Main ----
def main(argv=None):
    args = parse_args(argv)   # --train and --resume are refused: this script only tests
    return test(args)


if __name__ == "__main__":
    cli.run_main(main)
