"""Small data sets in the real on-disk formats, for any test.

    from tests.fixtures import make_mnist_dir, make_cifar_dir, make_image_folder

Each ``make_*`` function writes into ``root`` (created if needed) and returns
the folder to pass as ``data_dir`` to ``common.datasets.load_dataset``.  The
content is deterministic for a seed and structured (drawn digits, coloured
shapes, gradients), so a network can learn something from it; the
``*_arrays`` functions return exactly what was written, for comparisons.
"""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import cv2
import numpy as np

# ---------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# ---------------------------------------------------------------------------
_IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}


def idx_bytes(array) -> bytes:
    """The IDX encoding of ``array``: 0, 0, type byte, ndim, big-endian dims, data."""
    array = np.asarray(array)
    dtype = array.dtype if array.dtype.itemsize == 1 else array.dtype.newbyteorder(">")
    if dtype not in _IDX_CODES:
        raise ValueError(f"no IDX type for {array.dtype}")
    header = bytes([0, 0, _IDX_CODES[dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write_idx(path, array) -> Path:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends with .gz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def write_idx_images(path, array_uint8) -> Path:
    """(N, H, W) uint8 -> IDX3 (magic 0x00000803)."""
    array_uint8 = np.asarray(array_uint8)
    assert array_uint8.dtype == np.uint8 and array_uint8.ndim == 3, array_uint8.shape
    return write_idx(path, array_uint8)


def write_idx_labels(path, labels) -> Path:
    """(N,) labels -> IDX1 uint8 (magic 0x00000801)."""
    return write_idx(path, np.asarray(labels, dtype=np.uint8))


def mnist_arrays(n: int, seed: int = 0):
    """``n`` 28x28 uint8 digits drawn with cv2.putText (random position,
    scale, thickness) and their labels (every class, shuffled)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        scale = rng.uniform(0.7, 0.9)
        thickness = int(rng.integers(1, 3))
        x, y = int(rng.integers(5, 10)), int(rng.integers(19, 24))
        cv2.putText(images[i], str(int(label)), (x, y), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, 255, thickness, cv2.LINE_AA)
    return images, labels


def make_mnist_dir(root, n_train: int = 64, n_test: int = 16, seed: int = 0, gz: bool = True) -> Path:
    """Write the four MNIST IDX files into ``root``; returns ``root``.

    Train content is ``mnist_arrays(n_train, seed)``, test content
    ``mnist_arrays(n_test, seed + 1)``.  Works as Fashion-MNIST too.
    """
    root = Path(root)
    suffix = ".gz" if gz else ""
    for prefix, n, s in (("train", n_train, seed), ("t10k", n_test, seed + 1)):
        images, labels = mnist_arrays(n, s)
        write_idx_images(root / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx_labels(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return root


# ---------------------------------------------------------------------------
# CIFAR-10 pickle batches
# ---------------------------------------------------------------------------
CIFAR_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
                     "dog", "frog", "horse", "ship", "truck"]


class _Py2StylePickler(pickle._Pickler):
    """Writes bytes the way Python 2 wrote its ``str`` (SHORT_BINSTRING /
    BINSTRING opcodes), as in the official batches, so readers loading with
    ``encoding='bytes'`` see the same opcodes as in the real files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_style_pickle(obj) -> bytes:
    """Protocol-2 pickle of ``obj`` laid out like the official CIFAR files."""
    import io
    buf = io.BytesIO()
    _Py2StylePickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def cifar_arrays(n: int, seed: int = 0):
    """``n`` 32x32 RGB uint8 images and labels: a class-coloured disc or
    square on a smooth gradient, every class present."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32) / 31.0
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        a, b = rng.uniform(0, 1, 2)
        background = np.stack([60 + 80 * (a * xx + (1 - a) * yy),
                               60 + 80 * (b * yy + (1 - b) * xx),
                               np.full_like(xx, 40 + 10 * label)], axis=-1)
        image = np.ascontiguousarray(background.astype(np.uint8))
        colour = tuple(int(c) for c in ((label * 73) % 256, (label * 151 + 60) % 256, 255 - label * 20))
        cx, cy, r = (int(v) for v in (rng.integers(10, 22), rng.integers(10, 22), rng.integers(5, 9)))
        if label % 2:
            cv2.circle(image, (cx, cy), r, colour, -1)
        else:
            cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
        images[i] = image
    return images, labels


def cifar_batch_seed(seed: int, batch: str) -> int:
    """The seed of ``cifar_arrays`` for a batch: data_batch_i -> seed + i, test_batch -> seed + 6."""
    return seed + (6 if batch == "test_batch" else int(batch.rsplit("_", 1)[1]))


def make_cifar_dir(root, n_per_batch: int = 20, seed: int = 0) -> Path:
    """Write ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``
    under ``root`` in the official format; returns ``root``.

    Each data file is a pickled dict {b'batch_label', b'labels' (list of int),
    b'data' (uint8 (N, 3072): 1024 R, 1024 G, 1024 B values, row-major),
    b'filenames'}; batches.meta holds b'label_names'.
    """
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for batch in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images, labels = cifar_arrays(n_per_batch, cifar_batch_seed(seed, batch))
        data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
        content = {
            b"batch_label": f"{batch.replace('_', ' ')} of 6 (fixture)".encode(),
            b"labels": [int(v) for v in labels],
            b"data": np.ascontiguousarray(data),
            b"filenames": [f"{CIFAR_LABEL_NAMES[v]}_s_{i:06d}.png".encode() for i, v in enumerate(labels)],
        }
        (folder / batch).write_bytes(py2_style_pickle(content))
    meta = {b"num_cases_per_batch": n_per_batch,
            b"label_names": [n.encode() for n in CIFAR_LABEL_NAMES],
            b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_style_pickle(meta))
    return Path(root)


# ---------------------------------------------------------------------------
# Folders of pictures (imori layout, or plain class sub-folders)
# ---------------------------------------------------------------------------
_MASK_COLOURS_BGR = [(0, 0, 128), (0, 128, 0), (128, 0, 0), (0, 128, 128)]


def folder_picture(label: int, size=(64, 64), rng=None):
    """One BGR picture (gradient background, a class-coloured disc) and its
    binary mask (1 on the disc)."""
    rng = np.random.default_rng(rng)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0.3, 1.0)
    background = np.stack([90 + 60 * a * xx / max(w - 1, 1),
                           90 + 60 * yy / max(h - 1, 1),
                           np.full_like(xx, 60 + 40 * a)], axis=-1)
    image = np.ascontiguousarray(background.astype(np.uint8))
    radius = max(2, int(min(h, w) * rng.uniform(0.15, 0.3)))
    cx = int(rng.integers(radius, max(radius + 1, w - radius)))
    cy = int(rng.integers(radius, max(radius + 1, h - radius)))
    colour = [(40, 40, 220), (40, 200, 40), (220, 60, 40), (40, 200, 200)][label % 4]
    cv2.circle(image, (cx, cy), radius, colour, -1)
    mask = np.zeros((h, w), dtype=np.uint8)
    cv2.circle(mask, (cx, cy), radius, 1, -1)
    return image, mask


def make_image_folder(root, classes=("a", "b"), n_per_class: int = 4, size=(64, 64), seed: int = 0,
                      with_masks: bool = False, split_layout: bool = True) -> Path:
    """Write JPEG pictures per class; returns ``root``.

    split_layout=True: the imori layout, for both splits,
        root/{train,test}/images/<cls>/<cls>_NNNN.jpg
        root/{train,test}/seg_images/<cls>/<cls>_NNNN.png   (with_masks; coloured
        like the imori masks: class colour on the object, black elsewhere)
    split_layout=False: a plain folder of class sub-folders,
        root/<cls>/<cls>_NNNN.jpg   (no masks)
    """
    if with_masks and not split_layout:
        raise ValueError("masks need split_layout=True (images/ and seg_images/)")
    root = Path(root)
    rng = np.random.default_rng(seed)
    splits = [("train", root / "train"), ("test", root / "test")] if split_layout else [(None, root)]
    for _, base in splits:
        for label, cls in enumerate(classes):
            image_dir = base / "images" / cls if split_layout else base / cls
            image_dir.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                image, mask = folder_picture(label, size, rng)
                stem = f"{cls}_{i:04d}"
                if not cv2.imwrite(str(image_dir / f"{stem}.jpg"), image):
                    raise OSError(f"cv2.imwrite failed for {image_dir / stem}.jpg")
                if with_masks:
                    mask_dir = base / "seg_images" / cls
                    mask_dir.mkdir(parents=True, exist_ok=True)
                    coloured = np.zeros(mask.shape + (3,), dtype=np.uint8)
                    coloured[mask > 0] = _MASK_COLOURS_BGR[label % len(_MASK_COLOURS_BGR)]
                    cv2.imwrite(str(mask_dir / f"{stem}.png"), coloured)
    return root
