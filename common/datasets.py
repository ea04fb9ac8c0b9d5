"""Data sets for every question: imori photos (and any folder of class
sub-folders), MNIST, Fashion-MNIST and CIFAR-10.

Everything leaves this module as NumPy: ``ImageSet.images`` is float32 NHWC
in the value range the question asks for, RGB channel order.

    data = load_dataset("mnist", split="train", value_range=(0.0, 1.0))
    data.images.shape   # (60000, 28, 28, 1)

Where the files come from
-------------------------
* ``imori`` ships in ``Dataset/``: ``Dataset/<split>/images/<class>/*.jpg``
  with masks in ``Dataset/<split>/seg_images/<class>/<stem>.png``.  Through
  ``data_dir`` any of these layouts works, tried in this order::

      <data_dir>/<split>/images/<class>/*.jpg   (masks: <split>/seg_images/)
      <data_dir>/images/<class>/*.jpg           (masks: seg_images/)
      <data_dir>/<split>/<class>/*.jpg
      <data_dir>/<class>/*.jpg                  (your own pictures)

  In the second and the last layout there is no split: ``train`` and
  ``test`` read the same pictures.  Masks exist only in the first two.
  Class names are the sorted folder names, labels their index; pictures are
  .jpg/.jpeg/.png/.bmp (hidden files are skipped), decoded once, RGB.
* ``mnist`` / ``fashion_mnist`` read the official IDX files
  (``train-images-idx3-ubyte.gz`` ...; un-gzipped names work too) with a
  small IDX parser.  ``cifar10`` reads the official ``cifar-10-batches-py``
  pickle batches through a restricted unpickler that can build NumPy arrays
  and nothing else.
* Without ``data_dir`` these three are cached in ``Dataset/<name>/``: missing
  files are downloaded from the official locations (``MIRRORS``), checked
  against the published checksums (``CHECKSUMS``), extracted without path
  traversal (``safe_extract_tar``) and never downloaded twice.  Files you
  pass through ``data_dir`` are yours: they are read as they are (a subset of
  MNIST has other checksums), never downloaded into, never checked.

Every problem a user can cause (missing or empty folder, unreadable image,
truncated file, checksum mismatch, no network) raises ``UsageError`` with one
line saying what to do.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import pickle
import posixpath
import re
import shutil
import struct
import sys
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

import cv2
import numpy as np

from common.errors import UsageError

DATASETS = ("imori", "mnist", "fashion_mnist", "cifar10")
REPO_ROOT = Path(__file__).resolve().parent.parent
DATASET_ROOT = REPO_ROOT / "Dataset"

# A folder of pictures with differing native sizes (the imori photos are
# 256x144 and 256x455) cannot be stacked as they are: without ``size`` such
# a folder is resized to this (H, W), the size of the imori questions.
DEFAULT_FOLDER_SIZE = (64, 64)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

# ---------------------------------------------------------------------------
# Where downloads come from and what they must hash to.  Module-level so that
# tests can point them at local file:// fixtures.  Checksums are the ones the
# data sets publish (the same that torchvision pins), written "algo:hex".
# ---------------------------------------------------------------------------
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion_mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
    "cifar10": [
        "https://www.cs.toronto.edu/~kriz/",
    ],
}

CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
    },
    "cifar10": {
        "cifar-10-python.tar.gz": "md5:c58f30108f718f92721af3b95e74349a",
    },
}

PRETTY_NAMES = {
    "imori": "imori",
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
}

CLASS_NAMES: dict[str, list[str]] = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCHES = ("test_batch",)
CIFAR_META = "batches.meta"

IDX_PREFIX = {"train": "train", "test": "t10k"}
VERIFIED_MARKER = ".verified"


@dataclass
class ImageSet:
    """A whole split in memory.

    images:      float32 (N, H, W, C), RGB, in the requested value range
    labels:      int64 (N,), index into ``class_names``
    class_names: one name per class
    paths:       source file of each image (folders) or "" (IDX / CIFAR)
    masks:       float32 (N, H, W, 1) in {0, 1} (imori ``with_masks``), else None
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    paths: list[str]
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# ===========================================================================
# Public entry point
# ===========================================================================
def load_dataset(name: str, split: str = "train", data_dir=None, size=None,
                 value_range=(-1.0, 1.0), channels=None, with_masks=False,
                 download=True, limit=None) -> ImageSet:
    """Load one split of a data set as float32 NHWC.

    name:        one of DATASETS
    split:       "train" or "test"
    data_dir:    where the files are (default: Dataset/ for imori,
                 Dataset/<name>/ for the others, downloading what is missing)
    size:        (H, W) or an int to resize to (INTER_AREA for images,
                 INTER_NEAREST for masks); None keeps the native size (a
                 folder whose pictures differ in size gets DEFAULT_FOLDER_SIZE)
    value_range: (lo, hi): pixel 0 -> lo, 255 -> hi, linearly
    channels:    None keeps the native count; 1 or 3 converts gray <-> RGB
    with_masks:  imori only: also load the masks (NHW1 float32 in {0, 1})
    download:    False never touches the network (for the default cache)
    limit:       keep the first ``limit`` samples (deterministic order)
    """
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")
    if split not in ("train", "test"):
        raise UsageError(f"unknown split {split!r} (choose from train, test)")
    size = _check_size(size)
    lo, hi = _check_value_range(value_range)
    if channels not in (None, 1, 3):
        raise UsageError(f"channels must be 1 or 3, not {channels!r}")
    if limit is not None and (int(limit) != limit or limit < 1):
        raise UsageError(f"limit must be a positive integer, not {limit!r}")
    if with_masks and name != "imori":
        raise UsageError(f"{PRETTY_NAMES[name]} has no masks (with_masks is for imori)")

    if name == "imori":
        images, labels, class_names, paths, masks = _load_folder(
            data_dir, split, size, with_masks, limit)
    else:
        folder = ensure_files(name, data_dir, download=download)
        if name == "cifar10":
            images, labels, class_names = _load_cifar(folder, split, limit)
        else:
            images, labels = _load_idx_pair(name, folder, split, limit)
            class_names = list(CLASS_NAMES[name])
        paths = [""] * len(labels)
        masks = None
        if size is not None:
            images = _resize_stack(images, size, cv2.INTER_AREA)

    images = _convert_channels(images, channels)
    return ImageSet(
        images=_to_float(images, lo, hi),
        labels=np.asarray(labels, dtype=np.int64),
        class_names=list(class_names),
        paths=list(paths),
        masks=None if masks is None else masks.astype(np.float32)[..., None],
    )


# ===========================================================================
# Pixel helpers (uint8 NHWC in, uint8 NHWC out)
# ===========================================================================
def _check_size(size):
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise UsageError(f"size must be (height, width), not {size!r}") from None
    if h < 1 or w < 1:
        raise UsageError(f"size must be positive, not {size!r}")
    return (h, w)


def _check_value_range(value_range):
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise UsageError(f"value_range must be (low, high), not {value_range!r}") from None
    if not lo < hi:
        raise UsageError(f"value_range must have low < high, not {value_range!r}")
    return lo, hi


def _to_float(images: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """uint8 0..255 -> float32 lo..hi, linearly."""
    out = images.astype(np.float32)
    out *= np.float32((hi - lo) / 255.0)
    out += np.float32(lo)
    return out


def _resize_one(image: np.ndarray, size, interpolation) -> np.ndarray:
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    out = cv2.resize(image, (w, h), interpolation=interpolation)
    return out.reshape((h, w) + image.shape[2:])


def _resize_stack(images: np.ndarray, size, interpolation) -> np.ndarray:
    n, h0, w0, c = images.shape
    if (h0, w0) == tuple(size):
        return images
    out = np.empty((n,) + tuple(size) + (c,), dtype=images.dtype)
    for i in range(n):
        out[i] = _resize_one(images[i], size, interpolation)
    return out


def _convert_channels(images: np.ndarray, channels) -> np.ndarray:
    have = images.shape[-1]
    if channels is None or channels == have:
        return images
    if channels == 3:  # gray -> RGB: copy the plane
        return np.repeat(images, 3, axis=-1)
    # RGB -> gray with OpenCV's weights (0.299 R + 0.587 G + 0.114 B); the
    # whole stack goes through one call as a tall image.
    n, h, w, _ = images.shape
    gray = cv2.cvtColor(np.ascontiguousarray(images).reshape(n * h, w, 3), cv2.COLOR_RGB2GRAY)
    return gray.reshape(n, h, w, 1)


# ===========================================================================
# imori and any folder of class sub-folders
# ===========================================================================
def _is_image(path: Path) -> bool:
    # hidden files skipped: macOS copies carry "._name.jpg" resource forks
    return (path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
            and path.is_file())


def _subdirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _has_images(folder: Path) -> bool:
    return any(_is_image(p) for p in folder.iterdir())


def _find_class_root(data_dir: Path, split: str):
    """Return (folder of class sub-folders, folder of mask class sub-folders or None)."""
    if not data_dir.is_dir():
        state = "is not a folder" if data_dir.exists() else "does not exist"
        raise UsageError(f"data folder {data_dir} {state} (pass --data-dir with "
                         f"a folder of class sub-folders of pictures)")
    if (data_dir / split / "images").is_dir():
        return data_dir / split / "images", data_dir / split / "seg_images"
    if (data_dir / "images").is_dir():
        return data_dir / "images", data_dir / "seg_images"
    if (data_dir / split).is_dir() and any(_has_images(d) for d in _subdirs(data_dir / split)):
        return data_dir / split, None
    if any(_has_images(d) for d in _subdirs(data_dir)):
        return data_dir, None
    if (data_dir / "train" / "images").is_dir() or (data_dir / "test" / "images").is_dir():
        raise UsageError(f"no {split!r} split in {data_dir} (expected {data_dir / split / 'images'})")
    if _has_images(data_dir):
        raise UsageError(f"{data_dir} has pictures but no class sub-folders: move them into "
                         f"one folder per class, e.g. {data_dir / 'all'}/")
    raise UsageError(f"no pictures in {data_dir} (expected {data_dir}/<class>/*.jpg or "
                     f"{data_dir}/{split}/images/<class>/*.jpg)")


def _list_folder(class_root: Path):
    """Sorted (path, label) pairs and the class names of a folder of classes."""
    class_dirs = _subdirs(class_root)
    if not class_dirs:
        raise UsageError(f"no class sub-folders in {class_root} (expected {class_root}/<class>/*.jpg)")
    items, class_names = [], []
    for class_dir in class_dirs:
        files = sorted((p for p in class_dir.iterdir() if _is_image(p)), key=lambda p: p.name)
        if not files:
            raise UsageError(f"class folder {class_dir} has no pictures "
                             f"({'/'.join(IMAGE_EXTENSIONS)}); remove it or add some")
        label = len(class_names)
        class_names.append(class_dir.name)
        items.extend((p, label) for p in files)
    return items, class_names


def _read_image(path: Path) -> np.ndarray:
    """Decode a picture to uint8 RGB (H, W, 3) or gray (H, W)."""
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise UsageError(f"cannot read image {path}: {e.strerror or e}") from None
    image = cv2.imdecode(buf, cv2.IMREAD_ANYCOLOR) if buf.size else None
    if image is None:
        raise UsageError(f"cannot read image {path} (empty, corrupt or not a picture)")
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
    return image


def _read_mask(path: Path) -> np.ndarray:
    """A colour (or gray) segmentation PNG -> uint8 (H, W): 1 where any channel is non-zero."""
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise UsageError(f"cannot read mask {path}: {e.strerror or e}") from None
    mask = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if mask is None:
        raise UsageError(f"cannot read mask {path} (empty, corrupt or not a picture)")
    if mask.ndim == 3:
        mask = mask[..., :3].max(axis=-1)  # ignore an alpha channel
    return (mask != 0).astype(np.uint8)


def _mask_paths(class_root, mask_root, items, class_names):
    """The mask of every picture: <mask_root>/<class>/<stem>.png; one line
    when the masks folder or a picture's mask is missing."""
    if mask_root is None or not mask_root.is_dir():
        where = mask_root or class_root.parent / "seg_images"
        raise UsageError(f"no masks for {class_root}: expected {where}/<class>/<name>.png "
                         f"(use the <dir>/<split>/images + seg_images layout)")
    mask_paths = []
    for path, label in items:
        mask_path = mask_root / class_names[label] / (path.stem + ".png")
        if not mask_path.is_file():
            raise UsageError(f"no mask for {path} (expected {mask_path})")
        mask_paths.append(mask_path)
    return mask_paths


def read_mask_colours(path) -> np.ndarray:
    """A segmentation PNG as it is on disk: uint8 RGB (H, W, 3) colours (an
    alpha channel ignored, a grey mask repeated to three channels)."""
    path = Path(path)
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise UsageError(f"cannot read mask {path}: {e.strerror or e}") from None
    mask = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if mask is None:
        raise UsageError(f"cannot read mask {path} (empty, corrupt or not a picture)")
    if mask.dtype != np.uint8:
        raise UsageError(f"mask {path} has {mask.dtype} pixels; masks are 8-bit colour or grey PNGs")
    if mask.ndim == 2:
        return np.repeat(mask[..., None], 3, axis=-1)
    return cv2.cvtColor(np.ascontiguousarray(mask[..., :3]), cv2.COLOR_BGR2RGB)


@dataclass
class PairedFiles:
    """One split of an imori-layout folder as paired files (pix2pix), at the
    native sizes: ``photos`` uint8 RGB (H, W, 3) each, ``masks`` the colours
    of their segmentation PNGs (``read_mask_colours``), both lists in the
    order of ``photo_paths`` (class folders sorted, then file names)."""

    photos: list
    masks: list
    photo_paths: list
    mask_paths: list
    labels: np.ndarray
    class_names: list


def load_paired_files(data_dir=None, split="train") -> PairedFiles:
    """The photos of ``<data_dir>/<split>/images/<class>/`` (or
    ``<data_dir>/images/<class>/``) and their masks in ``seg_images/``,
    decoded but neither resized nor checked against each other (the caller
    compares sizes and colours).  A missing mask is one line (UsageError)."""
    if split not in ("train", "test"):
        raise UsageError(f"unknown split {split!r} (choose from train, test)")
    data_dir = DATASET_ROOT if data_dir is None else Path(data_dir).expanduser()
    class_root, mask_root = _find_class_root(data_dir, split)
    items, class_names = _list_folder(class_root)
    mask_paths = _mask_paths(class_root, mask_root, items, class_names)
    photos = []
    for path, _ in items:
        image = _read_image(path)
        photos.append(np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image)
    return PairedFiles(photos=photos, masks=[read_mask_colours(p) for p in mask_paths],
                       photo_paths=[p for p, _ in items], mask_paths=mask_paths,
                       labels=np.array([label for _, label in items], dtype=np.int64), class_names=class_names)


def _warn_small(images, size, where):
    """Pictures smaller than the network's input are upscaled: say so once,
    with the sizes seen (a 1x1 picture upscaled to 64x64 teaches nothing)."""
    small = sorted({im.shape[:2] for im in images if im.shape[0] < size[0] or im.shape[1] < size[1]})
    if small:
        shown = ", ".join(f"{h}x{w}" for h, w in small[:5]) + (", ..." if len(small) > 5 else "")
        count = sum(im.shape[0] < size[0] or im.shape[1] < size[1] for im in images)
        sys.stderr.write(f"warning: {count} of {len(images)} pictures in {where} are smaller than "
                         f"{size[0]}x{size[1]} ({shown}) and are upscaled\n")


def _load_folder(data_dir, split, size, with_masks, limit):
    data_dir = DATASET_ROOT if data_dir is None else Path(data_dir).expanduser()
    class_root, mask_root = _find_class_root(data_dir, split)
    items, class_names = _list_folder(class_root)
    if limit is not None:
        items = items[:limit]

    mask_paths = _mask_paths(class_root, mask_root, items, class_names) if with_masks else []

    # Decode (and resize) every picture once; augmentation happens later per
    # minibatch on these arrays.
    images = [_read_image(p) for p, _ in items]
    if size is None:   # native size if all agree, else the default
        size = images[0].shape[:2] if len({im.shape[:2] for im in images}) == 1 else DEFAULT_FOLDER_SIZE
    _warn_small(images, size, class_root)
    images = [_resize_one(im, size, cv2.INTER_AREA) for im in images]
    native_channels = 1 if all(im.ndim == 2 for im in images) else 3
    images = [im[..., None] if native_channels == 1
              else (np.repeat(im[..., None], 3, axis=-1) if im.ndim == 2 else im)
              for im in images]
    stack = np.stack(images)

    masks = None
    if with_masks:
        masks = np.stack([_resize_one(_read_mask(p), size, cv2.INTER_NEAREST) for p in mask_paths])

    labels = np.array([label for _, label in items], dtype=np.int64)
    return stack, labels, class_names, [str(p) for p, _ in items], masks


# ===========================================================================
# IDX (MNIST, Fashion-MNIST)
# ===========================================================================
# Data-type byte of the IDX header -> NumPy dtype (big-endian on disk).
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# The magic numbers of MNIST-style files: uint8 images (N, H, W) and uint8 labels (N,).
IDX_IMAGES, IDX_LABELS = 0x00000803, 0x00000801
IDX_KINDS = {IDX_IMAGES: "uint8 images of 3 dimensions", IDX_LABELS: "uint8 labels of 1 dimension"}


def read_idx(path, expect=None) -> np.ndarray:
    """Parse an IDX file (gzipped or not) into an array of its shape.

    Header: two zero bytes, a data-type byte (0x08 uint8 ... 0x0E float64),
    the number of dimensions, then each dimension as a big-endian uint32;
    the data follows, big-endian, row-major.  ``expect`` (e.g. 0x00000803,
    uint8 images of 3 dimensions) is the magic number the caller needs.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise UsageError(f"missing file {path}") from None
    except (OSError, EOFError, zlib.error) as e:
        raise UsageError(f"cannot read {path}: broken gzip data ({e}); delete it and fetch it again") from None
    if len(raw) < 4:
        raise UsageError(f"{path} is truncated (no IDX header)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        magic = struct.unpack(">I", raw[:4])[0]
        raise UsageError(f"{path} is not an IDX file (magic number 0x{magic:08x})")
    if expect is not None and raw[:4] != struct.pack(">I", expect):
        magic = struct.unpack(">I", raw[:4])[0]
        raise UsageError(f"{path} has the IDX magic number 0x{magic:08x}, expected 0x{expect:08x} "
                         f"({IDX_KINDS.get(expect, 'another IDX file')})")
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UsageError(f"{path} is truncated (incomplete IDX header)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(dims, dtype=np.int64))
    expected = header + count * dtype.itemsize
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise UsageError(f"{path} is {state}: {len(raw)} bytes, expected {expected} for shape {dims}")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_idx_pair(name, folder: Path, split, limit):
    prefix = IDX_PREFIX[split]
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    found = [_idx_file(folder, s) for s in stems]
    missing = [s + ".gz" for s, f in zip(stems, found) if f is None]
    if missing:
        raise UsageError(f"{PRETTY_NAMES[name]} files missing: put {', '.join(missing)} into "
                         f"{_show(folder)}/ (from {MIRRORS[name][0]})")
    images, labels = read_idx(found[0], IDX_IMAGES), read_idx(found[1], IDX_LABELS)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise UsageError(f"{found[0]} is not an IDX image file (shape {images.shape}, {images.dtype})")
    if labels.ndim != 1:
        raise UsageError(f"{found[1]} is not an IDX label file (shape {labels.shape})")
    if len(images) != len(labels):
        raise UsageError(f"{found[0]} has {len(images)} images but {found[1]} has {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES[name])):
        raise UsageError(f"{found[1]} has labels outside 0..{len(CLASS_NAMES[name]) - 1}")
    if len(images) == 0:
        raise UsageError(f"{found[0]} holds no images")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images[..., None], labels.astype(np.int64)


# ===========================================================================
# CIFAR-10 pickle batches, read without ever running pickled code
# ===========================================================================
class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR-10 batches: builds dicts, lists, bytes, numbers
    and NumPy arrays, and refuses every other global a pickle names (a pickle
    can otherwise call any function, e.g. ``os.system``, while loading)."""

    ALLOWED = {
        # NumPy's own pickling of ndarray / dtype (numpy 1.x and 2.x names)
        ("numpy.core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def restricted_loads(data: bytes):
    """``pickle.loads`` limited to what the CIFAR-10 batches need."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


def _get(d: dict, key: str):
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


def read_cifar_batch(path) -> dict:
    """Load one CIFAR-10 pickle file (a data batch or batches.meta) safely."""
    path = Path(path)
    try:
        obj = restricted_loads(path.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"missing file {path}") from None
    except pickle.UnpicklingError as e:
        if "refusing" in str(e):
            raise UsageError(f"{path} is not a CIFAR-10 batch: {e} (only NumPy arrays are "
                             f"allowed; it was not loaded)") from None
        raise UsageError(f"{path} is corrupt ({e})") from None
    except Exception as e:  # truncated or garbage: EOFError, ValueError, ...
        raise UsageError(f"{path} is corrupt or not a CIFAR-10 batch ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{path} is not a CIFAR-10 batch (a {type(obj).__name__}, not a dict)")
    return obj


def _read_cifar_data(path: Path):
    batch = read_cifar_batch(path)
    data, labels = _get(batch, "data"), _get(batch, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072 or labels is None or len(labels) != len(data):
        raise UsageError(f"{path} is not a CIFAR-10 batch (expected uint8 data of shape (N, 3072) "
                         f"and N labels)")
    # Each row is the 1024 red values, then green, then blue, row-major.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(labels, dtype=np.int64)


def _cifar_folder(folder: Path) -> Path:
    return folder / CIFAR_FOLDER if (folder / CIFAR_FOLDER).is_dir() else folder


def _load_cifar(folder: Path, split, limit):
    folder = _cifar_folder(folder)
    names = CIFAR_TRAIN_BATCHES if split == "train" else CIFAR_TEST_BATCHES
    missing = [n for n in names + (CIFAR_META,) if not (folder / n).is_file()]
    if missing:
        raise UsageError(f"CIFAR-10 files missing: put {', '.join(missing)} into {_show(folder)}/ "
                         f"(from {MIRRORS['cifar10'][0]}cifar-10-python.tar.gz)")
    meta = read_cifar_batch(folder / CIFAR_META)
    class_names = _get(meta, "label_names")
    if not isinstance(class_names, list) or not class_names:
        raise UsageError(f"{folder / CIFAR_META} has no label_names")
    class_names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in class_names]

    images, labels, count = [], [], 0
    for name in names:
        if limit is not None and count >= limit:
            break
        x, y = _read_cifar_data(folder / name)
        images.append(x)
        labels.append(y)
        count += len(y)
    images, labels = np.concatenate(images), np.concatenate(labels)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise UsageError(f"CIFAR-10 labels in {folder} fall outside 0..{len(class_names) - 1}")
    return np.ascontiguousarray(images), labels, class_names


# ===========================================================================
# Download cache: Dataset/<name>/
# ===========================================================================
def default_data_dir(name: str) -> Path:
    """Where ``name`` is cached (``Dataset/<name>/``)."""
    return DATASET_ROOT / name


def _show(path: Path) -> str:
    """A path as a reader would type it: relative to the repository if inside."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def ensure_files(name: str, data_dir=None, download: bool = True) -> Path:
    """Make the files of ``name`` available and return the folder to read.

    Without ``data_dir`` (or with it equal to ``Dataset/<name>/``) missing
    files are downloaded into ``Dataset/<name>/`` and verified; files already
    there are verified once (a ``.verified`` marker remembers it).  A
    ``data_dir`` of your own is only checked to exist: its files are read as
    they are and nothing is downloaded into it.
    """
    if name not in CHECKSUMS:
        raise UsageError(f"nothing to download for {name!r} (downloadable: {', '.join(CHECKSUMS)})")
    cache = default_data_dir(name)
    if data_dir is not None and not _same_dir(Path(data_dir).expanduser(), cache):
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise UsageError(f"data folder {folder} does not exist (it should hold the "
                             f"{PRETTY_NAMES[name]} files: {', '.join(_expected_files(name))})")
        return folder
    if name == "cifar10":
        _ensure_cifar(cache, download)
    else:
        _ensure_idx(name, cache, download)
    return cache


def _expected_files(name: str) -> list[str]:
    if name == "cifar10":
        return [f"{CIFAR_FOLDER}/{n}" for n in CIFAR_TRAIN_BATCHES + CIFAR_TEST_BATCHES + (CIFAR_META,)]
    return list(CHECKSUMS[name])


def _ensure_idx(name: str, cache: Path, download: bool) -> None:
    missing = []
    for filename, checksum in CHECKSUMS[name].items():
        if (cache / filename).is_file():
            _verify_cached(cache / filename, checksum)
        elif not (cache / filename[:-len(".gz")]).is_file():  # un-gzipped copy: taken as is
            missing.append(filename)
    if missing:
        if not download:
            raise UsageError(_offline_message(name, cache, missing, cannot=False))
        for filename in missing:
            _download(name, filename, cache)


def _ensure_cifar(cache: Path, download: bool) -> None:
    wanted = CIFAR_TRAIN_BATCHES + CIFAR_TEST_BATCHES + (CIFAR_META,)
    if all((cache / CIFAR_FOLDER / n).is_file() for n in wanted):
        return
    (tar_name, checksum), = CHECKSUMS["cifar10"].items()
    tar_path = cache / tar_name
    if tar_path.is_file():
        _verify_cached(tar_path, checksum)
    elif not download:
        raise UsageError(_offline_message("cifar10", cache, [tar_name], cannot=False))
    else:
        _download("cifar10", tar_name, cache)
    # Extract into a scratch folder, then move the batches into place, so an
    # interrupted extraction never looks like a complete one.
    scratch = cache / f".extract-{os.getpid()}"
    try:
        safe_extract_tar(tar_path, scratch)
        if not (scratch / CIFAR_FOLDER).is_dir():
            raise UsageError(f"{tar_path} holds no {CIFAR_FOLDER}/ folder")
        if (cache / CIFAR_FOLDER).exists():
            shutil.rmtree(cache / CIFAR_FOLDER)
        os.replace(scratch / CIFAR_FOLDER, cache / CIFAR_FOLDER)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _offline_message(name: str, cache: Path, files: Sequence[str], cannot: bool, reason: str = "") -> str:
    start = (f"cannot download {PRETTY_NAMES[name]} (no network?{' ' + reason if reason else ''})"
             if cannot else f"{PRETTY_NAMES[name]} files missing and download is off")
    what = ", ".join(files)
    if name == "cifar10":
        what += f" (or its extracted {CIFAR_FOLDER}/ folder)"
    return (f"{start}: put {what} into {_show(cache)}/ "
            f"(from {MIRRORS[name][0]}) or pass --data-dir")


def file_checksum(path: Path, algorithm: str = "md5") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _split_checksum(checksum: str):
    algorithm, _, expected = checksum.partition(":")
    return algorithm, expected.lower()


def _marker_key(path: Path, checksum: str) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "checksum": checksum}


def _read_marker(folder: Path) -> dict:
    try:
        return json.loads((folder / VERIFIED_MARKER).read_text())
    except (OSError, ValueError):
        return {}


def _write_marker(path: Path, checksum: str) -> None:
    marker = _read_marker(path.parent)
    marker[path.name] = _marker_key(path, checksum)
    tmp = path.parent / f"{VERIFIED_MARKER}.{os.getpid()}.part"
    tmp.write_text(json.dumps(marker, indent=1, sort_keys=True))
    os.replace(tmp, path.parent / VERIFIED_MARKER)


def _verify_cached(path: Path, checksum: str) -> None:
    """Check a file already in the cache, once (remembered in .verified)."""
    if _read_marker(path.parent).get(path.name) == _marker_key(path, checksum):
        return
    algorithm, expected = _split_checksum(checksum)
    actual = file_checksum(path, algorithm)
    if actual != expected:
        raise UsageError(f"{_show(path)} is not the official file ({algorithm} {actual}, expected "
                         f"{expected}): delete it to download it again, or pass --data-dir for "
                         f"files of your own")
    _write_marker(path, checksum)


def _download(name: str, filename: str, cache: Path) -> Path:
    """Fetch ``filename`` from the first mirror that works into ``cache``,
    through ``<file>.part``; keep it only if its checksum matches."""
    from tqdm import tqdm

    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / filename
    algorithm, expected = _split_checksum(CHECKSUMS[name][filename])
    mismatch, last_error = None, ""
    for base in MIRRORS[name]:
        url = base + filename
        part = cache / f"{filename}.{os.getpid()}.part"
        try:
            digest = hashlib.new(algorithm)
            with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=f"download {filename}", disable=None) as bar:
                    for block in iter(lambda: response.read(1 << 16), b""):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
            actual = digest.hexdigest()
            if actual != expected:
                mismatch = (url, actual)
                continue  # the part file is deleted below; try the next mirror
            os.replace(part, dest)
            _write_marker(dest, CHECKSUMS[name][filename])
            return dest
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            last_error = str(getattr(e, "reason", e))
        finally:
            part.unlink(missing_ok=True)
    if mismatch is not None:
        url, actual = mismatch
        raise UsageError(f"download of {url} is corrupt ({algorithm} {actual}, expected {expected}); "
                         f"it was deleted: try again, or put the official {filename} into "
                         f"{_show(cache)}/")
    raise UsageError(_offline_message(name, cache, list(CHECKSUMS[name]) if name != "cifar10"
                                      else [filename], cannot=True, reason=last_error))


# ===========================================================================
# Tar extraction without path traversal
# ===========================================================================
_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe_reason(member: tarfile.TarInfo, root: Path) -> str | None:
    name = member.name.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or _DRIVE.match(name):
        return "has an absolute path"
    if ".." in parts:
        return "has a '..' component"
    if member.isdev():
        return "is a device file or FIFO"
    if member.issym() or member.islnk():
        target = member.linkname.replace("\\", "/")
        if target.startswith("/") or _DRIVE.match(target):
            return f"links to the absolute path {member.linkname!r}"
        # a symlink is relative to its own folder, a hard link to the archive root
        joined = posixpath.join(posixpath.dirname(name), target) if member.issym() else target
        resolved = posixpath.normpath(joined)
        if resolved == ".." or resolved.startswith("../"):
            return f"links outside the archive ({member.linkname!r})"
    elif not (member.isfile() or member.isdir()):
        return "is not a regular file, folder or link"
    try:
        inside = (root / name).resolve().is_relative_to(root)
    except OSError:
        inside = False
    if not inside:
        return "would be written outside the destination"
    return None


def safe_extract_tar(tar_path, dest) -> None:
    """Extract ``tar_path`` into ``dest``, refusing (UsageError, nothing
    extracted) an archive with any member that has an absolute path, a
    ``..`` component, a link pointing outside, or that is a device file."""
    dest = Path(dest)
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            members = tar.getmembers()
            dest.mkdir(parents=True, exist_ok=True)
            root = dest.resolve()
            for member in members:
                reason = _unsafe_reason(member, root)
                if reason:
                    raise UsageError(f"refusing to extract {tar_path}: member {member.name!r} {reason}")
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(root, members=members, **extra)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise UsageError(f"cannot extract {tar_path}: {e} (delete it to download it again)") from None
    except OSError as e:
        raise UsageError(f"cannot extract {tar_path}: {e}") from None
