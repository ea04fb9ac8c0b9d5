"""VAE latent space: walking through z -- Keras 3

Question: load the trained vae (the checkpoint written by
scripts_keras/vae_keras.py) and decode (a) the points of the straight
line from z = (-2, -2) to (2, 2) and (b) a grid of z1, z2 in [-4, 4]
(15 x 15 by default), drawn as a table whose axes carry the z values.
This script trains nothing: train the vae first, with --latent-dim 2
(its default).
Framework: Keras 3 on the TensorFlow backend (NHWC).
Paper: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014
(arXiv:1312.6114), figure 4 (the learned 2-D MNIST manifold).
How to run:
    python scripts_keras/vae_keras.py                   # train the vae first
    python scripts_keras/vae_latent_change_keras.py     # -> out/vae_latent_change/keras/test/
    python scripts_keras/vae_latent_change_keras.py --steps 20 --grid-size 21 --grid-range 3
    python scripts_keras/vae_latent_change_keras.py --dataset fashion_mnist --vae-dir out/vae_fashion/keras
"""
# ---- Setup ----
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `common`
sys.path.insert(0, str(Path(__file__).resolve().parent))      # this folder, for the vae answer

import vae_keras as vae  # noqa: E402  (the network and its checkpoint loader)

from common import cli, compat, latent, runs  # noqa: E402

keras = compat.import_keras()  # the Keras 3 (TensorFlow backend) that vae_keras imported

QUESTION = "vae_latent_change"
FRAMEWORK = "keras"

# ---- Config ----
LATENT_DIM = latent.LATENT_DIM   # a plane: the vae must have been trained with --latent-dim 2


def add_flags(group):
    latent.add_vae_flags(group, FRAMEWORK)
    group.add_argument("--steps", type=latent.at_least_two, default=latent.LINE_STEPS,
                       help=f"points decoded along the line from {latent.LINE_FROM} to {latent.LINE_TO}")
    group.add_argument("--grid-size", type=latent.at_least_two, default=latent.GRID_SIZE,
                       help="points per side of the grid")
    group.add_argument("--grid-range", type=cli.positive_float, default=latent.GRID_RANGE,
                       help="the grid covers z1, z2 in [-R, R]")


def parse_args(argv=None):
    parser = cli.build_parser(QUESTION, FRAMEWORK,
                              "Digits decoded along a line and over a grid of the trained VAE's "
                              "latent plane (Keras 3); trains nothing.",
                              dataset="mnist", iters=10000, batch_size=256, lr=1e-3,
                              sample_every=500, checkpoint_every=1000, extra=add_flags)
    return latent.parse_args(parser, argv, QUESTION, FRAMEWORK)


# ---- Data ----
def load_data(args, split):
    """The vae's data: only its image shape is needed (the decoder's output)."""
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
        # (a) the straight line from (-2, -2) to (2, 2)
        z_line = latent.line(steps=args.steps)
        line_path = latent.save_line(run, vae.decode(model, z_line, image_shape), z_line, vae.VALUE_RANGE)
        # (b) the grid: rows z2 (top: +R), columns z1 (left: -R)
        z_grid, row_values, col_values = latent.grid(args.grid_size, args.grid_range)
        images = vae.decode(model, z_grid, image_shape)
        images = images.reshape((len(row_values), len(col_values), *image_shape))
        grid_path = latent.save_grid(run, images, row_values, col_values, vae.VALUE_RANGE)
    return latent.report_change(run, line_path, grid_path, z_line, row_values, col_values)


# ---- Main ----
def main(argv=None):
    args = parse_args(argv)   # --train and --resume are refused: this script only tests
    return test(args)


if __name__ == "__main__":
    cli.run_main(main)
