"""The framework-neutral half of the DCGAN document's class API
(dcgan_keras_class_api.md), shared by every ``gan_<fw>.py`` / ``dcgan_<fw>.py``.

``DCGAN(name, z_dim=100, img_shape=(28, 28, 1))`` on NumPy NHWC arrays:
``ClassAPI`` holds the properties, generate_z, train (the epochs, their
measurements and the result dictionary), generate, discriminate, evaluate,
the file names and the JSON variables file of save_me / change_me, and the
input checks.  A script's class subclasses it and adds only framework code
(build, step, forward, save and load weights; see ``ClassAPI``).

NumPy only; no deep-learning framework is imported here.  The noise streams
and the measurements of D come from ``common.gan``.
"""
import datetime
import json
import math
import time
from pathlib import Path

import numpy as np

from common import batching, pictures, runs
from common.errors import UsageError
from common.gan import (BATCHES, EVALUATE, PIXEL_RANGE, SAMPLE_COUNT, SAMPLES, Z_DIM, ZSampler,
                        bce_with_logits, check_label_smoothing, d_measures, g_loss, rng, sigmoid,
                        uniform_z)

EVAL_COUNT = 1000      # real images (and as many z) measured after each epoch of DCGAN.train
CLASS_SAMPLE_COUNT = 32  # images shown every sample_img_interval epochs by DCGAN.train
# The class API's variables file (JSON, never pickle)
VARIABLES_FORMAT = 1


# ---------------------------------------------------------------------------
# Pixels and the input checks
# ---------------------------------------------------------------------------

def to_model_range(images, img_shape=None, name="imgs"):
    """Pixels in [0, 1] or [0, 255] (NHWC) -> float32 in [-1, 1].

    uint8 arrays, and float arrays whose maximum is above 1, are taken as
    0..255; other arrays as 0..1.  ``img_shape`` (H, W, C), if given, must
    match; an (N, H, W) array of a one-channel shape gets its channel axis."""
    a = check_images(images, img_shape, name)
    if a.dtype == np.uint8 or float(a.max()) > 1.0:
        a = a.astype(np.float32) / 255.0
    if float(a.min()) < 0.0 or float(a.max()) > 1.0:
        raise UsageError(f"{name}: pixel values must lie in [0, 1] or [0, 255], "
                         f"got [{float(a.min()):g}, {float(a.max()):g}]")
    return (a.astype(np.float32) * 2.0 - 1.0).astype(np.float32)


def to_pixels(images):
    """The generator's [-1, 1] output -> float32 pixels in [0, 1] (clipped)."""
    return np.clip((np.asarray(images, np.float32) + 1.0) * 0.5, 0.0, 1.0).astype(np.float32)


def check_images(images, img_shape=None, name="imgs"):
    """A finite NHWC array (N >= 1) of the instance's ``img_shape``."""
    a = np.asarray(images)
    if img_shape is not None and a.ndim == 3 and len(img_shape) == 3 and img_shape[2] == 1:
        a = a[..., None]
    if a.ndim != 4 or a.shape[0] == 0:
        raise UsageError(f"{name} must be a non-empty (N, H, W, C) array, got shape {a.shape}")
    if img_shape is not None and tuple(a.shape[1:]) != tuple(img_shape):
        raise UsageError(f"{name} has images of shape {tuple(a.shape[1:])}, this model makes "
                         f"{tuple(img_shape)}")
    if a.dtype != np.uint8 and not np.isfinite(a).all():
        raise UsageError(f"{name} holds NaN or infinite values")
    return a


def check_z(z, z_dim):
    z = np.asarray(z, np.float32)
    if z.ndim != 2 or z.shape[1] != int(z_dim) or z.shape[0] == 0:
        raise UsageError(f"z must be a non-empty (N, {z_dim}) array, got shape {z.shape}")
    return z


def check_labels(labels, n):
    """(N, 1) or (N,) labels of 0 (fake) and 1 (real) -> float32 (N,)."""
    y = np.asarray(labels, np.float32).reshape(-1)
    if y.shape[0] != n:
        raise UsageError(f"{y.shape[0]} labels for {n} images")
    if not np.isin(y, (0.0, 1.0)).all():
        raise UsageError("labels must be 1 (real) or 0 (fake)")
    return y


def check_positive_int(value, name):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise UsageError(f"{name} must be a positive whole number, got {value!r}")
    return int(value)


def evaluate_logits(logits, labels, logits_fake):
    """The class API's evaluate(): (d_loss, d_accuracy, g_loss) for D's
    ``logits`` of images with ``labels`` (1 real, 0 fake) and D's logits of
    freshly generated images."""
    x = np.asarray(logits, np.float64).reshape(-1)
    y = np.asarray(labels, np.float64).reshape(-1)
    d_loss = float(bce_with_logits(x, y).mean())
    d_accuracy = float(((x > 0.0) == (y > 0.5)).mean())
    return d_loss, d_accuracy, g_loss(logits_fake)


# ---------------------------------------------------------------------------
# The class API: per-epoch log and the result dictionary
# ---------------------------------------------------------------------------

def format_duration(seconds):
    """'2 hours 5 minutes 35 seconds' (units that are zero are left out,
    except seconds when everything is zero)."""
    total = int(round(float(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v} {unit}{'' if v == 1 else 's'}" for v, unit in
             ((hours, "hour"), (minutes, "minute"), (secs, "second")) if v]
    return " ".join(parts) if parts else "0 seconds"


class History:
    """The per-epoch record of DCGAN.train and its result dictionary.

    ``add`` takes the measurements made after an epoch (``d_measures`` of
    the fixed real images and of the images generated from the fixed z),
    prints them and keeps them; ``result`` returns the dictionary of the
    original class API."""

    def __init__(self, name, epochs, batch_size, ls_epsilon, verbose=True):
        self.name, self.epochs, self.batch_size, self.ls_epsilon = name, int(epochs), int(batch_size), float(ls_epsilon)
        self.verbose = verbose
        self.rows = []
        self.start = time.perf_counter()

    def add(self, epoch, iterations, measures, seconds, n_real, n_fake):
        self.rows.append({**measures, "seconds": float(seconds)})
        if self.verbose:
            print(f"Epoch: {epoch}\n"
                  f" iteration count: {iterations}\n"
                  f" g_loss_epoch: {measures['g_loss']}\n"
                  f" d_loss_epoch: {measures['d_loss']}\n"
                  f" d_accuracy_epoch: {measures['d_accuracy']}\n"
                  f" D took the {n_fake} fake images for real with mean probability {measures['d_fake']:.6g}\n"
                  f" D took the {n_real} real images for real with mean probability {measures['d_real']:.6g}\n"
                  f" Processing time (seconds): {seconds:.0f}\n"
                  f" Time: {datetime.datetime.now():%H:%M:%S}", flush=True)

    def result(self):
        total = time.perf_counter() - self.start
        col = {k: [r[k] for r in self.rows] for k in ("d_loss", "d_accuracy", "g_loss", "d_real", "d_fake", "seconds")}
        return {
            "name": self.name,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "ls_epsilon": self.ls_epsilon,
            "d_loss_epochs": col["d_loss"],
            "d_accuracy_epochs": col["d_accuracy"],
            "d_acuracy_epochs": col["d_accuracy"],   # the original's spelling, kept so its code runs
            "g_loss_epochs": col["g_loss"],
            "probs_real_epochs": col["d_real"],
            "probs_fake_epochs": col["d_fake"],
            "processing_time_epochs": col["seconds"],
            "processing_time_total": format_duration(total),
            "processing_time_total_td": datetime.timedelta(seconds=total),
        }


RESULT_KEYS = ("name", "epochs", "batch_size", "ls_epsilon", "d_loss_epochs", "d_accuracy_epochs",
               "d_acuracy_epochs", "g_loss_epochs", "probs_real_epochs", "probs_fake_epochs",
               "processing_time_epochs", "processing_time_total", "processing_time_total_td")


def file_names(name, g_file_name, d_file_name, val_file_name, weights_suffix):
    """save_me's file names: empty names default to <name>_g, <name>_d,
    <name>_val; a name that does not end in the framework's weight suffix
    (``weights_suffix``; .json for the variables) gets it appended, so a
    model name with a dot ("dcgan_0.1") still gets its suffix."""
    def pick(given, default, suffix):
        given = str(given or default)
        return given if given.endswith(suffix) else given + suffix
    return (pick(g_file_name, f"{name}_g", weights_suffix), pick(d_file_name, f"{name}_d", weights_suffix),
            pick(val_file_name, f"{name}_val", ".json"))


def variables(question, framework, name, z_dim, img_shape, z_fixed_for_sample):
    """The JSON variables file of save_me."""
    return {"format": VARIABLES_FORMAT, "question": question, "framework": framework, "name": str(name),
            "z_dim": int(z_dim), "img_shape": [int(v) for v in img_shape],
            "z_fixed_for_sample": np.asarray(z_fixed_for_sample, np.float32).tolist()}


def write_variables(path, values):
    return runs.atomic_write_json(path, values)


def read_variables(path, question, framework, weights_suffix=None):
    """Read and check a variables file written by ``save_me`` of the same
    question and framework.  Returns ``(name, z_dim, img_shape, z_fixed)``."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"variables file {path} does not exist") from None
    except (OSError, ValueError):
        raise UsageError(f"{path} is not a variables file written by save_me (not JSON)") from None
    if not isinstance(values, dict) or "z_dim" not in values or "img_shape" not in values:
        raise UsageError(f"{path} is not a variables file written by save_me")
    if values.get("question") != question:
        raise UsageError(f"{path} belongs to question '{values.get('question')}', not '{question}'")
    if values.get("framework") != framework:
        raise UsageError(f"{path} was written by the {values.get('framework')} version; load it with "
                         f"scripts_{values.get('framework')}/{question}_{values.get('framework')}.py")
    z_fixed = np.asarray(values["z_fixed_for_sample"], np.float32)
    return str(values["name"]), int(values["z_dim"]), tuple(int(v) for v in values["img_shape"]), z_fixed


def epoch_iterations(n, batch_size):
    """Iterations of one epoch: every image once (the last batch is
    completed with the next epoch's first images, see common.batching)."""
    return max(1, math.ceil(int(n) / int(batch_size)))


# ---------------------------------------------------------------------------
# The class API's framework-neutral half
# ---------------------------------------------------------------------------

class ClassAPI:
    """The DCGAN class API of the reference document (dcgan_keras_class_api.md)
    on NumPy NHWC arrays, less its framework code.

    ``DCGAN(name, z_dim=100, img_shape=(28, 28, 1))``; images given to it
    are pixels in [0, 1] or [0, 255] (NHWC), images it returns are pixels
    in [0, 1]; noise is z ~ U(-1, 1) (DESIGN.md; the original drew N(0, 1)).
    Keyword-only extras: ``seed`` (weights, z_fixed_for_sample and every z
    it draws) and ``lr``.  Here: the properties, generate_z, train (the
    epochs, their measurements and the result dictionary), generate,
    discriminate, evaluate, the file names and the JSON variables file of
    save_me / change_me, the input checks.

    A framework's class sets QUESTION, FRAMEWORK and WEIGHTS_SUFFIX and
    writes only framework code:

    ``_build_networks(z_dim, img_shape)``  the networks and their optimizers
    ``_step(real_images, z, ls_epsilon)``  one training iteration on NHWC
                                           NumPy arrays -> dict of FIELDS
    ``_generate_batch(z)``                 G(z) in inference mode, NHWC in [-1, 1]
    ``_discriminate_batch(images)``        D's logits (N, 1) in inference mode
    ``_save_weights(g_path, d_path)``      G's and D's weights, its own format
    ``_read_weights(path)``                one weights file (before the rebuild)
    ``_load_weights(g_state, d_state)``    into the rebuilt networks; a
                                           KeyError / ValueError / RuntimeError
                                           means they do not fit"""

    QUESTION = FRAMEWORK = WEIGHTS_SUFFIX = None
    BATCH = 256            # inference batch of generator_output / discriminator_logits

    def __init__(self, name, z_dim=Z_DIM, img_shape=(28, 28, 1), *, seed=0, lr=2e-4):
        self._name, self._seed, self._lr, self._iterations = str(name), int(seed), float(lr), 0
        self._build(int(z_dim), tuple(int(v) for v in img_shape))

    def _build(self, z_dim, img_shape):
        if len(img_shape) != 3 or min(img_shape) < 1:
            raise UsageError(f"img_shape must be (H, W, C), got {img_shape}")
        self._z_dim, self._img_shape = z_dim, img_shape
        self._build_networks(z_dim, img_shape)
        self.z_sampler = ZSampler(z_dim, self._seed)
        self._batch_rng = rng(self._seed, BATCHES)
        self._z_fixed = uniform_z(SAMPLE_COUNT, z_dim, self._seed, SAMPLES)

    @property
    def img_shape(self):
        return self._img_shape

    @property
    def z_dim(self):
        return self._z_dim

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, value):
        self._name = str(value)

    @property
    def z_fixed_for_sample(self):
        """The fixed z of the training sample pictures (a copy)."""
        return self._z_fixed.copy()

    def generate_z(self, len_z):
        """(len_z, z_dim) float32 z ~ U(-1, 1), from the instance's generator."""
        return self.z_sampler(len_z)

    def train_step(self, real_images, z, ls_epsilon=0.0):
        """One iteration (one D update, one G update) on ``real_images``
        (NHWC, already in [-1, 1]) and ``z``; returns the metrics dict."""
        values = self._step(np.asarray(real_images, np.float32), np.asarray(z, np.float32), float(ls_epsilon))
        self._iterations += 1
        return values

    def train(self, imgs_train, epochs, batch_size=128, ls_epsilon=0, sample_img_interval=0,
              sample_dir="samples"):
        """Train for ``epochs`` epochs of ``imgs_train`` (N, *img_shape),
        pixels in [0, 1] or [0, 255], and return the result dictionary
        (per-epoch d_loss, d_accuracy, g_loss, mean D(real), mean D(fake),
        seconds, and the total time; keys in RESULT_KEYS).

        After each epoch D and G are measured in inference mode on fixed
        data: the first EVAL_COUNT training images and as many fixed z.
        With ``sample_img_interval`` > 0, 32 images from z_fixed_for_sample
        are written to ``sample_dir`` after the first epoch, every
        ``sample_img_interval`` epochs and after the last one."""
        images = to_model_range(imgs_train, self._img_shape, "imgs_train")
        ls_epsilon = check_label_smoothing(ls_epsilon)
        epochs, batch_size = check_positive_int(epochs, "epochs"), check_positive_int(batch_size, "batch_size")
        batches = batching.Minibatches(len(images), batch_size, self._batch_rng)
        eval_real = images[:EVAL_COUNT]
        eval_z = uniform_z(len(eval_real), self._z_dim, self._seed, EVALUATE)
        history = History(self._name, epochs, batch_size, ls_epsilon)
        for epoch in range(epochs):
            start = time.perf_counter()
            for _ in range(epoch_iterations(len(images), batch_size)):
                self.train_step(images[next(batches)], self.generate_z(batch_size), ls_epsilon)
            measures = d_measures(self.discriminator_logits(eval_real),
                                  self.discriminator_logits(self.generator_output(eval_z)))
            history.add(epoch, self._iterations, measures, time.perf_counter() - start, len(eval_real), len(eval_z))
            if sample_img_interval > 0 and (epoch % sample_img_interval == 0 or epoch == epochs - 1):
                path = Path(sample_dir) / f"{self._name}_epoch_{epoch:04d}.png"
                pictures.save_grid(self.generate(self._z_fixed[:CLASS_SAMPLE_COUNT]), path, nrow=8,
                                   value_range=PIXEL_RANGE, scale=max(1, 56 // self._img_shape[0]),
                                   title=f"{self._name}, epoch {epoch}")
                print(f" samples: {path}")
        return history.result()

    def generator_output(self, z):
        """z -> G(z) in [-1, 1] (the network's own range), NHWC NumPy, in
        inference mode.  generate() is this mapped to pixels in [0, 1]."""
        z = check_z(z, self._z_dim)
        return np.concatenate([self._generate_batch(z[i:i + self.BATCH]) for i in range(0, len(z), self.BATCH)])

    def discriminator_logits(self, images):
        """NHWC images in [-1, 1] -> D's logits (N, 1), in inference mode.
        discriminate() is the sigmoid of this for pixels in [0, 1] or [0, 255]."""
        images = np.asarray(images, np.float32)
        return np.concatenate([self._discriminate_batch(images[i:i + self.BATCH])
                               for i in range(0, len(images), self.BATCH)])

    def generate(self, z):
        """(N, z_dim) -> (N, *img_shape) images, pixels in [0, 1]."""
        return to_pixels(self.generator_output(z))

    def discriminate(self, imgs):
        """(N, *img_shape) pixels in [0, 1] or [0, 255] -> (N, 1), the
        probability D gives each image of being real."""
        return sigmoid(self.discriminator_logits(to_model_range(imgs, self._img_shape))).astype(np.float32)

    def evaluate(self, imgs, labels):
        """``(d_loss, d_accuracy, g_loss)``: D's binary cross-entropy and
        accuracy on ``imgs`` with ``labels`` (1 real, 0 fake), and G's loss
        on as many images generated from new z (generate_z)."""
        images = to_model_range(imgs, self._img_shape)
        labels = check_labels(labels, len(images))
        fake_logits = self.discriminator_logits(self.generator_output(self.generate_z(len(images))))
        return evaluate_logits(self.discriminator_logits(images), labels, fake_logits)

    def save_me(self, files_dir, g_file_name="", d_file_name="", val_file_name=""):
        """Write G's and D's weights (the framework's format, BatchNorm
        statistics included) and the variables file (JSON: name, z_dim,
        img_shape, z_fixed_for_sample) into ``files_dir``.  Empty names
        default to <name>_g<suffix>, <name>_d<suffix>, <name>_val.json.
        Returns the three paths."""
        files_dir = Path(files_dir)
        files_dir.mkdir(parents=True, exist_ok=True)
        names = file_names(self._name, g_file_name, d_file_name, val_file_name, self.WEIGHTS_SUFFIX)
        g_path, d_path, val_path = (files_dir / name for name in names)
        self._save_weights(g_path, d_path)
        write_variables(val_path, variables(self.QUESTION, self.FRAMEWORK, self._name, self._z_dim,
                                            self._img_shape, self._z_fixed))
        return g_path, d_path, val_path

    def change_me(self, files_dir, g_file_name, d_file_name, val_file_name):
        """Become the model saved by save_me in ``files_dir``: its name,
        z_dim, img_shape, z_fixed_for_sample and weights.  The optimizers
        and the noise generator start afresh (a checkpoint restores them
        separately)."""
        files_dir = Path(files_dir)
        names = file_names(self._name, g_file_name, d_file_name, val_file_name, self.WEIGHTS_SUFFIX)
        name, z_dim, img_shape, z_fixed = read_variables(files_dir / names[2], self.QUESTION, self.FRAMEWORK)
        states = []
        for path in (files_dir / names[0], files_dir / names[1]):   # read before the model is rebuilt
            if not path.is_file():
                raise UsageError(f"weights file {path} does not exist")
            try:
                states.append(self._read_weights(path))
            except UsageError:
                raise
            except Exception as err:   # each framework raises several types for a file not its own
                raise UsageError(f"{path} is not a {self.FRAMEWORK} weights file ({type(err).__name__})") from None
        self._build(z_dim, img_shape)
        try:
            self._load_weights(*states)
        except (KeyError, ValueError, RuntimeError, OSError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(f"the weights in {files_dir} do not fit a {self.QUESTION} of img_shape {img_shape}, "
                             f"z_dim {z_dim}: {reason}") from None
        self._name, self._z_fixed = name, z_fixed
