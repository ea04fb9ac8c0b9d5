"""Shared pieces of the reconstruction questions (AE, ConvAE, VAE):
loading a split at the question's size and writing the answer pictures."""
import json

import numpy as np

from common import datasets, pictures
from common.runs import atomic_save_npy, atomic_write_text

# The VAE test's reconstructions of the first 1000 test images and their classes, uint8 (as
# alpha-GAN's, for tools/score_digits.py: does a reconstruction keep its digit?)
RECONSTRUCTIONS_NPY, RECONSTRUCTION_LABELS_NPY, SCORED_COUNT = "reconstructions.npy", "reconstruction_labels.npy", 1000

# The newt photos are trained at 64x64 (the questions' size); the other
# sets keep their native size (MNIST 28x28x1, CIFAR-10 32x32x3).
DEFAULT_SIZE = {"imori": (64, 64)}


def load_images(args, split, value_range, limit=None):
    """The ``split`` of ``args.dataset`` as an ImageSet (float32 NHWC)."""
    return datasets.load_dataset(args.dataset, split, data_dir=args.data_dir,
                                 size=DEFAULT_SIZE.get(args.dataset), value_range=value_range,
                                 limit=limit)


def per_image_mse(inputs, outputs):
    """Mean squared error of each image, over its pixels and channels."""
    diff = np.asarray(outputs, np.float64) - np.asarray(inputs, np.float64)
    return (diff ** 2).reshape(len(diff), -1).mean(axis=1)


def report_reconstructions(run, data, outputs, value_range, show=16):
    """Write ``test/reconstructions.png`` (input | output for the first
    ``show`` images, each titled with its file name and MSE), one
    ``answer_<name>.png`` pair per image for the first ``show`` images, and
    ``test/metrics.json``; print and return the test-set MSE (mean over all
    test images, pixels in ``value_range``)."""
    test_dir = run.prepare_test()
    errors = per_image_mse(data.images, outputs)
    names = [p.rsplit("/", 1)[-1].rsplit(".", 1)[0] if p else f"{i:05d}" for i, p in enumerate(data.paths)]
    if not any(data.paths):
        names = [f"{data.class_names[lab]}_{i:05d}" for i, lab in enumerate(data.labels)]
    k = min(show, len(outputs))
    titles = [f"{n}  MSE {e:.4f}" for n, e in zip(names[:k], errors[:k])]
    scale = max(1, 128 // data.images.shape[1])
    pictures.save_pairs(data.images[:k], outputs[:k], test_dir / "reconstructions.png",
                        value_range=value_range, titles=titles, scale=scale)
    for i in range(k):
        pictures.save_pairs(data.images[i:i + 1], outputs[i:i + 1], test_dir / f"answer_{names[i]}.png",
                            value_range=value_range, scale=scale)
    mse = float(errors.mean())
    atomic_write_text(test_dir / "metrics.json", json.dumps(
        {"test_mse": mse, "images": len(errors), "value_range": list(value_range),
         "per_image": dict(zip(names, map(float, errors)))}, indent=2) + "\n")
    print(f"{run.question} {run.framework}: test MSE {mse:.5f} over {len(errors)} test images "
          f"(pixels in [{value_range[0]:g}, {value_range[1]:g}]); pictures in {test_dir}")
    return mse


def in_batches(function, images, batch_size=256):
    """``function`` (a NumPy batch of images -> a NumPy batch of outputs)
    applied to ``images`` ``batch_size`` at a time, the outputs concatenated."""
    return np.concatenate([function(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def save_samples(run, iteration, images, outputs, value_range):
    """The sample picture of ``iteration``: each of the fixed training
    ``images`` next to its reconstruction."""
    pictures.save_pairs(images, outputs, run.sample_path(iteration), value_range=value_range,
                        titles=[f"iteration {iteration}"] + [""] * (len(images) - 1))


# ---------------------------------------------------------------------------
# VAE
# ---------------------------------------------------------------------------

def pick_round_robin(labels, show=20):
    """Indices of up to ``show`` images taken class by class: the first
    image of every class (in class order), then the second of every class,
    and so on -- so a picture of MNIST reconstructions shows 0..9, 0..9."""
    labels = np.asarray(labels).reshape(-1)
    per_class = [np.flatnonzero(labels == k) for k in np.unique(labels)]
    order = [idx[i] for i in range(max(map(len, per_class), default=0)) for idx in per_class if i < len(idx)]
    return np.asarray(order[:show], dtype=np.int64)


def report_vae_test(run, data, reconstructions, samples, terms, latent_dim, value_range=(0.0, 1.0),
                    show=20, per_row=10):
    """The VAE test: write ``test/reconstructions.png`` (rows of
    ``per_row`` test images, each row followed by the row of their
    reconstructions; images picked class by class by
    ``pick_round_robin``), ``test/samples.png`` (the decoded z ~ N(0, I)
    ``samples``), ``test/metrics.json`` (with the test L1 and MSE per pixel
    in [0, 1] units) and the reconstructions.npy / reconstruction_labels.npy
    of the first SCORED_COUNT test images; print and return ``terms``
    (``{"loss": negative ELBO, "bce": ..., "kl": ...}``, means per test
    image over the whole test split)."""
    test_dir = run.prepare_test()
    idx = pick_round_robin(data.labels, show)
    per_row = max(1, min(per_row, len(idx)))
    idx = idx[:len(idx) // per_row * per_row]
    rows = []
    for start in range(0, len(idx), per_row):
        chunk = idx[start:start + per_row]
        rows += [data.images[chunk], reconstructions[chunk]]
    scale = max(1, 84 // data.images.shape[1])
    pictures.save_strip(np.stack(rows), test_dir / "reconstructions.png", value_range=value_range,
                        scale=scale, rows_labels=["input", "output"] * (len(rows) // 2),
                        title=f"test images and their reconstructions ({run.framework})")
    nrow = int(np.ceil(np.sqrt(len(samples))))
    pictures.save_grid(samples, test_dir / "samples.png", nrow=nrow, value_range=value_range,
                       scale=max(1, 56 // data.images.shape[1]),
                       title=f"decoded from z ~ N(0, I) ({run.framework})")
    result = {k: float(terms[k]) for k in ("loss", "bce", "kl")}
    # Comparable with alpha-GAN's: |x - x'| and (x - x')^2 per pixel in [0, 1] units, and the
    # reconstructions (decoded from the means) with their classes for tools/score_digits.py.
    difference = (np.asarray(data.images, np.float64) - np.asarray(reconstructions, np.float64)) / (
        value_range[1] - value_range[0])
    atomic_save_npy(test_dir / RECONSTRUCTIONS_NPY, pictures.to_uint8(reconstructions[:SCORED_COUNT], value_range))
    atomic_save_npy(test_dir / RECONSTRUCTION_LABELS_NPY, np.asarray(data.labels, np.int64)[:SCORED_COUNT])
    atomic_write_text(test_dir / "metrics.json", json.dumps(
        {"negative_elbo": result["loss"], "bce": result["bce"], "kl": result["kl"],
         "images": len(data.images), "latent_dim": int(latent_dim),
         "units": "nats per test image (sums over pixels and latent dimensions, mean over images)",
         "test_l1": float(np.abs(difference).mean()), "test_mse": float((difference ** 2).mean()),
         "value_range": list(value_range)}, indent=2) + "\n")
    print(f"{run.question} {run.framework}: test negative ELBO {result['loss']:.3f} = "
          f"BCE {result['bce']:.3f} + KL {result['kl']:.3f} (nats per image, mean over "
          f"{len(data.images)} test images); pictures in {test_dir}")
    return result
