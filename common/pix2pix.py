"""Shared pieces of the pix2pix questions (pix2pix, pix2pix_gp): everything
that is not framework code.

NumPy in, NumPy out; no deep-learning framework is imported here.  The four
versions of pix2pix_<fw>.py and pix2pix_gp_<fw>.py read their pairs, draw
their batches and penalty mixes, measure and draw their results here, so with
the same weights they make the same numbers and pictures.

- data        ``read_palette`` (the mask colours of the training masks),
              ``load_pairs`` (photos and class maps at --size, the one-line
              errors), ``network_pairs`` (the network's input and target for
              a --direction), ``PairFeed`` (augmented training batches)
- the CLI     ``add_flags`` (--direction, --l1-weight, --gan-weight, --size;
              --n-critic, --gp-weight for pix2pix_gp)
- measuring   ``FIELDS`` of metrics.csv, ``pixel_accuracy``, ``iou``,
              ``mean_iou``, ``l1``, ``psnr``
- pictures    ``colour``, ``save_samples``, ``plot_training``, ``report_test``

The data.  A photo ``images/<class>/<stem>.jpg`` is paired with the mask
``seg_images/<class>/<stem>.png`` of the same size, whose pixels are colours,
one per class.  The palette is read from the training masks: class 0 is
always the background, black; the other colours follow in the order they
first appear (files sorted, pixels row by row): for the newt masks
background, akahara (RGB 128, 0, 0), madara (RGB 0, 128, 0).  A colour of a
test mask outside the palette is an error.  Masks become class maps at the
native size, then are resized nearest-neighbour (labels never blended), the
photos with INTER_AREA, both to --size x --size (64).

What the networks see, values in [-1, 1], NHWC:
- photo2mask (default): input the photo (3 channels), target the one-hot
  class map scaled to [-1, 1] (one channel per class: 1 for the pixel's
  class, -1 for the others); the predicted class is the argmax.
- mask2photo: input that scaled one-hot map, target the photo.

Random streams (NumPy, one seed): the batch order and the augmentation
(``batching.Feed``'s two generators), and for pix2pix_gp the eps_i of the
penalty (``wgan.MixSampler``, stream ``PENALTY_MIX`` = 14).
"""
import argparse
import math

import cv2
import numpy as np

from common import augment, batching, cli, datasets, pictures, runs, wgan
from common.errors import UsageError

VALUE_RANGE = (-1.0, 1.0)      # what the networks see and G's tanh makes
IMAGE_SIZE = 64                # the question's size (--size)
WIDTH = 32                     # the question's U-Net starts with 32 channels (--width)
SIZE_STEP = 16                 # the U-Net pools 4 times: the size divides by 16 ...
MIN_SIZE = 32                  # ... and the PatchGAN needs H/8 - 2 >= 1 patches a side: at least 32 (2x2 patches)
DIRECTIONS = ("photo2mask", "mask2photo")
PHOTO_CHANNELS = 3
BACKGROUND = (0, 0, 0)         # RGB of class 0; a rotation's empty corners are this class
BACKGROUND_NAME = "background"
MAX_CLASSES = 32               # more mask colours than this: not a class map (a photo, an antialiased drawing)
PENALTY_MIX = wgan.PENALTY_MIX  # 14: the eps_i of y_hat_i = eps_i y_i + (1 - eps_i) G(x_i)
SAMPLE_COUNT = 6               # training pictures show the first 6 test pairs
PSNR_CAP = 100.0               # dB: the PSNR of a perfect image (MSE 0)

# metrics.csv columns (runs.Progress adds iteration first and sec_per_iter last).
# With --gan-weight 0 there is no D: its columns stay empty.
FIELDS = {
    "pix2pix": ["d_loss", "g_loss", "g_gan", "g_l1", "d_real", "d_fake"],
    "pix2pix_gp": ["d_loss", "d_gan", "gradient_penalty", "grad_norm", "g_loss", "g_gan", "g_l1", "d_real",
                   "d_fake"],
}
D_FIELDS = ("d_loss", "d_gan", "gradient_penalty", "grad_norm", "g_gan", "d_real", "d_fake")
FIELD_HELP = {
    "d_loss": "what D minimises: 0.5 (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)) per patch (+ gp_weight * penalty)",
    "d_gan": "pix2pix_gp: D's halved BCE alone, without the penalty",
    "gradient_penalty": "mean over the samples of (||grad_y_hat mean-patch D(x, y_hat)||_2 - 1)^2, before its weight",
    "grad_norm": "mean over the samples of ||grad_y_hat mean-patch D(x, y_hat)||_2 (per sample over C, H, W)",
    "g_loss": "what G minimises: gan_weight * g_gan + l1_weight * g_l1",
    "g_gan": "BCE(D(x, G(x)), 1) per patch: G's adversarial term (non-saturating)",
    "g_l1": "mean |G(x) - y| over every pixel and channel: G's L1 term, before its weight",
    "d_real": "mean sigmoid(D(x, y)) over the patches of the real pairs",
    "d_fake": "mean sigmoid(D(x, G(x))) over the patches of the fake pairs",
}
LOSSES_PNG, L1_PNG, PROBABILITIES_PNG, GRAD_NORM_PNG = (
    "losses.png", "l1.png", "d_probabilities.png", "gradient_norm.png")
PREDICTIONS_PNG, PREDICTIONS_NPY, METRICS_JSON = "predictions.png", "predictions.npy", "metrics.json"
PLOT_SMOOTH = 10


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

class Pairs:
    """One split in memory: ``photos`` float32 (N, S, S, 3) in [-1, 1],
    ``classes`` int64 (N, S, S) class maps, ``palette`` uint8 (K, 3) RGB,
    ``class_names`` (K,), ``names`` the file stems."""

    def __init__(self, photos, classes, palette, class_names, names):
        self.photos, self.classes, self.palette = photos, classes, palette
        self.class_names, self.names = list(class_names), list(names)

    @property
    def n_classes(self):
        return len(self.palette)

    def __len__(self):
        return len(self.photos)


def _rgb(colour):
    return f"RGB ({colour[0]}, {colour[1]}, {colour[2]})"


def _check_sizes(files):
    for photo, mask, photo_path, mask_path in zip(files.photos, files.masks, files.photo_paths, files.mask_paths):
        if photo.shape[:2] != mask.shape[:2]:
            raise UsageError(f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} pixels, its photo {photo_path} "
                             f"{photo.shape[1]}x{photo.shape[0]}: a mask must have its photo's size")


def _codes(colours):
    """uint8 RGB (..., 3) -> one int64 per colour."""
    return np.asarray(colours, np.int64) @ np.array([65536, 256, 1], np.int64)


def palette_of(masks, mask_paths):
    """(palette uint8 (K, 3), class names) from colour masks: black first
    (background), then the other colours in the order they first appear.  A
    colour is named after the class folder of its masks when it appears in
    that folder only and is the folder's only colour; else by its RGB."""
    colours, folders, colours_in = [BACKGROUND], {}, {}
    for mask, path in zip(masks, mask_paths):
        flat = mask.reshape(-1, 3)
        _, first = np.unique(_codes(flat), return_index=True)
        for index in np.sort(first):                       # this mask's colours, in raster order
            colour = tuple(int(v) for v in flat[index])
            if colour not in colours:
                colours.append(colour)
            if colour != BACKGROUND:
                folders.setdefault(colour, set()).add(path.parent.name)
                colours_in.setdefault(path.parent.name, set()).add(colour)
    if len(colours) > MAX_CLASSES:
        raise UsageError(f"the training masks hold {len(colours)} colours (at most {MAX_CLASSES} classes): a mask "
                         f"paints each class in one exact colour (no antialiasing, no JPEG), e.g. {mask_paths[0]}")
    names = [BACKGROUND_NAME]
    for colour in colours[1:]:
        (folder, *others) = sorted(folders[colour])
        names.append(folder if not others and colours_in[folder] == {colour} else _rgb(colour))
    return np.array(colours, np.uint8), names


def decode_mask(mask, palette, path):
    """Colours (H, W, 3) -> class indices (H, W) int64; a colour outside the
    palette is one line naming it and the file."""
    codes, known = _codes(mask), _codes(palette)
    order = np.argsort(known)
    position = np.minimum(np.searchsorted(known[order], codes), len(known) - 1)
    found = known[order][position] == codes
    if not found.all():
        y, x = np.argwhere(~found)[0]
        raise UsageError(f"mask {path} has the colour {_rgb(mask[y, x])} (at x={x}, y={y}), which is not one of "
                         f"the training masks' colours {', '.join(_rgb(c) for c in palette)}")
    return order[position]


def _resize(image, size, interpolation):
    return cv2.resize(image, (size, size), interpolation=interpolation).reshape((size, size) + image.shape[2:])


def read_palette(args):
    """The palette and class names of the training masks of ``args.data_dir``."""
    files = datasets.load_paired_files(args.data_dir, "train")
    return palette_of(files.masks, files.mask_paths)


def load_pairs(args, split, palette=None):
    """The ``split``'s photos and class maps at ``args.size`` (``Pairs``).
    ``palette``: (colours, names) of the training masks (default: read from
    this split's own masks, which is what training does)."""
    files = datasets.load_paired_files(args.data_dir, split)
    _check_sizes(files)
    colours, names = palette if palette is not None else palette_of(files.masks, files.mask_paths)
    photos = np.stack([_resize(photo, args.size, cv2.INTER_AREA) for photo in files.photos])
    classes = np.stack([_resize(decode_mask(mask, colours, path).astype(np.uint8), args.size, cv2.INTER_NEAREST)
                        for mask, path in zip(files.masks, files.mask_paths)]).astype(np.int64)
    lo, hi = VALUE_RANGE
    photos = (photos.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)).astype(np.float32)
    return Pairs(photos, classes, np.asarray(colours, np.uint8), names, [p.stem for p in files.photo_paths])


def one_hot(classes, n_classes):
    """Class maps (N, H, W) -> float32 (N, H, W, n_classes): 1 for the
    pixel's class, -1 elsewhere (the one-hot map scaled to [-1, 1])."""
    classes = np.asarray(classes, np.int64)
    return (2.0 * (classes[..., None] == np.arange(n_classes)) - 1.0).astype(np.float32)


def channels(direction, n_classes):
    """(input channels, output channels) of G for a direction."""
    return (PHOTO_CHANNELS, n_classes) if direction == "photo2mask" else (n_classes, PHOTO_CHANNELS)


def network_pairs(photos, classes, direction, n_classes):
    """(inputs, targets) float32 NHWC in [-1, 1] for ``direction``."""
    masks = one_hot(classes, n_classes)
    return (photos, masks) if direction == "photo2mask" else (masks, photos)


class PairFeed:
    """The training batches: ``next()`` is (inputs, targets) of one
    minibatch, float32 NHWC in [-1, 1], after the paired augmentation of
    the newt photos (the same flips and rotation for a photo and its class
    map: bilinear for the photo with black corners, nearest for the map
    with background corners).  The state (batch order, augmentation) is a
    JSON-able dict saved in every checkpoint."""

    def __init__(self, pairs, batch_size, seed, direction):
        self.direction, self.n_classes = direction, pairs.n_classes
        masks = pairs.classes[..., None].astype(np.float32)     # class indices; nearest keeps them whole
        self.feed = batching.Feed(pairs.photos, batch_size, seed, augment.for_dataset("imori", VALUE_RANGE),
                                  masks=masks)

    def next(self):
        photos, masks = self.feed.next()
        return network_pairs(photos, np.rint(masks[..., 0]).astype(np.int64), self.direction, self.n_classes)

    def state_dict(self):
        return self.feed.state_dict()

    def load_state_dict(self, state):
        self.feed.load_state_dict(state)


MixSampler = wgan.MixSampler   # eps_i ~ U(0, 1), one per sample (stream PENALTY_MIX)


# ---------------------------------------------------------------------------
# The CLI
# ---------------------------------------------------------------------------

def _weight(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _size(text):
    value = cli.positive_int(text)
    if value % SIZE_STEP or value < MIN_SIZE:
        raise argparse.ArgumentTypeError(f"must be a multiple of {SIZE_STEP} and at least {MIN_SIZE} (the U-Net "
                                         f"halves it 4 times, the PatchGAN needs 2x2 patches), got {value}")
    return value


def add_flags(question):
    """``extra`` for cli.build_parser: the question's own flags, each
    checked (a bad value is one line, exit 2)."""
    def extra(group):
        group.add_argument("--direction", choices=DIRECTIONS, default="photo2mask",
                           help="photo2mask: segment the photo (one output channel per mask colour); "
                                "mask2photo: draw the photo from its mask")
        group.add_argument("--l1-weight", type=_weight, default=100.0, metavar="LAMBDA",
                           help="weight of G's L1 term mean |G(x) - y| (the paper's 100)")
        group.add_argument("--gan-weight", type=_weight, default=1.0,
                           help="weight of G's adversarial term; 0 trains the U-Net with L1 alone, no D "
                                "(the paper's ablation)")
        group.add_argument("--size", type=_size, default=IMAGE_SIZE,
                           help="photos and masks are resized to SIZE x SIZE")
        group.add_argument("--width", type=cli.positive_int, default=WIDTH,
                           help="G's levels have W, 2W, 4W, 8W, 16W channels, D's layers 2W, 4W, 8W, 16W "
                                "(the question's 32: G 32..512, D 64..512)")
        if question == "pix2pix_gp":
            group.add_argument("--n-critic", type=cli.positive_int, default=5,
                               help="D updates per G update, each on a fresh batch")
            group.add_argument("--gp-weight", type=cli.positive_float, default=10.0, metavar="LAMBDA",
                               help="weight of D's gradient penalty")
    return extra


def check_args(args):
    """What argparse cannot check alone: one line, exit 2."""
    if args.l1_weight == 0 and args.gan_weight == 0:
        raise UsageError("--l1-weight 0 with --gan-weight 0 leaves G nothing to learn")
    return args


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------

def classes_of(outputs):
    """G's photo2mask outputs (N, H, W, K) -> predicted classes (N, H, W): the argmax."""
    return np.asarray(outputs).argmax(axis=-1)


def pixel_accuracy(predicted, truth):
    """The share of pixels whose predicted class is the true one."""
    return float(np.mean(np.asarray(predicted) == np.asarray(truth)))


def iou(predicted, truth, n_classes):
    """Per class, over all the pixels given: |predicted c and true c| /
    |predicted c or true c|; NaN for a class in neither."""
    predicted, truth = np.asarray(predicted).ravel(), np.asarray(truth).ravel()
    out = np.full(n_classes, np.nan)
    for c in range(n_classes):
        union = np.sum((predicted == c) | (truth == c))
        if union:
            out[c] = np.sum((predicted == c) & (truth == c)) / union
    return out


def mean_iou(predicted, truth, n_classes):
    """The mean of ``iou`` over the classes present in the prediction or the truth."""
    values = iou(predicted, truth, n_classes)
    return float(np.nanmean(values))


def l1(outputs, targets):
    """mean |outputs - targets| over every value (in [-1, 1] units: G's L1 term)."""
    return float(np.mean(np.abs(np.asarray(outputs, np.float64) - np.asarray(targets, np.float64))))


def psnr(outputs, targets, value_range=VALUE_RANGE):
    """Peak signal-to-noise ratio in dB per image, pixels mapped to [0, 1]:
    10 log10(1 / MSE), averaged over the images (a perfect image counts
    PSNR_CAP)."""
    lo, hi = value_range
    a = (np.asarray(outputs, np.float64) - lo) / (hi - lo)
    b = (np.asarray(targets, np.float64) - lo) / (hi - lo)
    mse = ((np.clip(a, 0, 1) - b) ** 2).reshape(len(a), -1).mean(axis=1)
    return float(np.mean([PSNR_CAP if m == 0 else min(PSNR_CAP, 10 * np.log10(1.0 / m)) for m in mse]))


# ---------------------------------------------------------------------------
# Pictures and plots
# ---------------------------------------------------------------------------

def colour(classes, palette):
    """Class maps (N, H, W) -> uint8 RGB pictures (N, H, W, 3) in the mask colours."""
    return np.asarray(palette, np.uint8)[np.asarray(classes, np.int64)]


def _columns(direction, pairs, outputs):
    """The three picture columns, input | prediction | truth, each uint8 RGB
    or float in [-1, 1], and their labels."""
    if direction == "photo2mask":
        return ((pairs.photos, colour(classes_of(outputs), pairs.palette), colour(pairs.classes, pairs.palette)),
                ("input photo", "predicted mask", "true mask"))
    return ((colour(pairs.classes, pairs.palette), outputs, pairs.photos),
            ("input mask", "predicted photo", "true photo"))


def save_pictures(path, direction, pairs, outputs):
    """One row per pair: input | prediction | truth, masks in their colours."""
    (inputs, predicted, truth), labels = _columns(direction, pairs, outputs)
    scale = max(1, 128 // pairs.photos.shape[1])
    return pictures.save_pairs(inputs, predicted, path, value_range=VALUE_RANGE, labels=labels, titles=pairs.names,
                               scale=scale, targets=truth)


def subset(pairs, count=SAMPLE_COUNT):
    """The first ``count`` pairs (the training pictures' fixed inputs)."""
    return Pairs(pairs.photos[:count], pairs.classes[:count], pairs.palette, pairs.class_names, pairs.names[:count])


def save_samples(run, iteration, direction, pairs, outputs):
    """After iteration ``iteration``: ``samples/iter_NNNNNN.png``, G's
    translations of the fixed pairs."""
    return save_pictures(run.sample_path(iteration), direction, pairs, outputs)


def plot_training(run, fields):
    """The plots of metrics.csv: ``l1.png`` (G's L1 term) and, when D was
    trained, ``losses.png`` (D's loss and G's adversarial term: both
    BCE), ``d_probabilities.png`` (mean D(real pair), mean D(fake pair))
    and for pix2pix_gp ``gradient_norm.png``.  Returns their paths."""
    what = f"{run.question} ({run.framework})"
    csv, smooth = run.metrics_path, PLOT_SMOOTH
    paths = [pictures.plot_curves(csv, run.root / L1_PNG, ["g_l1"], labels=["mean |G(x) - y|"],
                                  title=f"{what}: G's L1 term", ylabel="L1", smooth=smooth)]
    if not np.isfinite(pictures.read_metrics(csv)["g_gan"]).any():
        return paths                                      # --gan-weight 0: no D
    d_term = "d_gan" if "d_gan" in fields else "d_loss"
    paths += [
        pictures.plot_curves(csv, run.root / LOSSES_PNG, [d_term, "g_gan"],
                             labels=["D loss (halved BCE)", "G adversarial term"], title=f"{what}: losses",
                             ylabel="binary cross-entropy", smooth=smooth),
        pictures.plot_curves(csv, run.root / PROBABILITIES_PNG, ["d_real", "d_fake"],
                             labels=["mean D(x, y)", "mean D(x, G(x))"], title=f"{what}: D on real and fake pairs",
                             ylabel="probability of 'real'", smooth=smooth, ylim=(-0.02, 1.02), hline=0.5),
    ]
    if "grad_norm" in fields:
        paths.append(pictures.plot_curves(csv, run.root / GRAD_NORM_PNG, ["grad_norm"],
                                          labels=["mean ||grad D(x, y_hat)||"], title=f"{what}: D's gradient norm",
                                          ylabel="norm", smooth=smooth, hline=1.0))
    return paths


# ---------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------

def report_test(run, direction, pairs, outputs):
    """The answer of a test run: ``test/predictions.png`` (input |
    prediction | truth for every test pair), ``test/predictions.npy`` (the
    predicted class maps, uint8, or photos, uint8 RGB) and
    ``test/metrics.json``: pixel accuracy, mean IoU and the IoU per class
    (photo2mask), PSNR (mask2photo), and G's L1 against the target (both).
    Returns the metrics."""
    test_dir = run.prepare_test()
    save_pictures(test_dir / PREDICTIONS_PNG, direction, pairs, outputs)
    _, targets = network_pairs(pairs.photos, pairs.classes, direction, pairs.n_classes)
    result = {"direction": direction, "test_pairs": len(pairs), "size": int(pairs.photos.shape[1]),
              "class_names": pairs.class_names, "l1": l1(outputs, targets)}
    if direction == "photo2mask":
        predicted = classes_of(outputs)
        per_class = iou(predicted, pairs.classes, pairs.n_classes)
        result.update(pixel_accuracy=pixel_accuracy(predicted, pairs.classes),
                      mean_iou=mean_iou(predicted, pairs.classes, pairs.n_classes),
                      iou={name: (None if np.isnan(v) else float(v)) for name, v in zip(pairs.class_names, per_class)})
        runs.atomic_save_npy(test_dir / PREDICTIONS_NPY, predicted.astype(np.uint8))
        summary = f"pixel accuracy {result['pixel_accuracy']:.1%}, mean IoU {result['mean_iou']:.3f}"
    else:
        result["psnr"] = psnr(outputs, targets)
        runs.atomic_save_npy(test_dir / PREDICTIONS_NPY, pictures.to_uint8(outputs, VALUE_RANGE))
        summary = f"PSNR {result['psnr']:.2f} dB"
    runs.atomic_write_json(test_dir / METRICS_JSON, result)
    print(f"{run.question} {run.framework} ({direction}): {summary}, L1 {result['l1']:.4f} over {len(pairs)} "
          f"test pairs; pictures in {test_dir}")
    return result
