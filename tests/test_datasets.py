"""common.datasets: formats, folders, conversions, bad input, downloads.

Everything runs on small fixtures in the real on-disk formats (tests/fixtures.py)
and on the imori photos shipped in Dataset/; downloads go through the real
code path against file:// URLs.  No network.
"""
from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from common import datasets as D
from common.errors import UsageError
from tests.fixtures import (CIFAR_LABEL_NAMES, cifar_arrays, cifar_batch_seed, idx_bytes,
                            make_cifar_dir, make_image_folder, make_mnist_dir, mnist_arrays,
                            write_idx)


def expected(u8, value_range):
    lo, hi = value_range
    return u8.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)


# ---------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    path = write_idx(tmp_path / f"x-idx3-ubyte{suffix}", array)
    got = D.read_idx(path)
    assert got.shape == (2, 3, 5)
    assert got.dtype.isnative and got.dtype.kind == np.dtype(dtype).kind
    np.testing.assert_array_equal(got, array)


def test_read_idx_header_is_the_official_one():
    header = idx_bytes(np.zeros((7, 28, 28), np.uint8))[:16]
    assert header[:4] == b"\x00\x00\x08\x03"  # magic 2051 of the image files
    assert header[4:8] == (7).to_bytes(4, "big")
    assert idx_bytes(np.zeros(7, np.uint8))[:4] == b"\x00\x00\x08\x01"  # 2049, labels


def test_read_idx_rejects_bad_files(tmp_path):
    good = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    (tmp_path / "short").write_bytes(good[:-10])
    with pytest.raises(UsageError, match="truncated"):
        D.read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(good + b"xx")
    with pytest.raises(UsageError, match="longer"):
        D.read_idx(tmp_path / "long")
    (tmp_path / "magic").write_bytes(b"\x12\x34\x08\x03" + good[4:])
    with pytest.raises(UsageError, match="not an IDX file"):
        D.read_idx(tmp_path / "magic")
    (tmp_path / "type").write_bytes(b"\x00\x00\x07\x03" + good[4:])
    with pytest.raises(UsageError, match="not an IDX file"):
        D.read_idx(tmp_path / "type")
    import gzip
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:40])
    with pytest.raises(UsageError, match="gzip"):
        D.read_idx(tmp_path / "cut.gz")


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_fixture_parses_to_exact_values(tmp_path, gz):
    make_mnist_dir(tmp_path, n_train=64, n_test=16, seed=3, gz=gz)
    for split, n, seed in (("train", 64, 3), ("test", 16, 4)):
        images, labels = mnist_arrays(n, seed)
        assert images.max() == 255 and (images > 0).mean() > 0.05  # real drawn digits
        for value_range in ((0.0, 1.0), (-1.0, 1.0)):
            data = D.load_dataset("mnist", split, data_dir=tmp_path, value_range=value_range)
            assert data.images.shape == (n, 28, 28, 1) and data.images.dtype == np.float32
            assert data.labels.dtype == np.int64
            np.testing.assert_array_equal(data.labels, labels)
            np.testing.assert_allclose(data.images[..., 0], expected(images, value_range), atol=1e-6)
            assert data.images.min() == value_range[0] and data.images.max() == value_range[1]
            assert data.class_names == [str(d) for d in range(10)]
            assert data.paths == [""] * n and data.masks is None


def test_fashion_mnist_uses_its_class_names(tmp_path):
    make_mnist_dir(tmp_path)
    data = D.load_dataset("fashion_mnist", "test", data_dir=tmp_path, limit=5)
    assert data.images.shape == (5, 28, 28, 1)
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"


def test_mnist_missing_or_mismatched_files(tmp_path):
    make_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    D.load_dataset("mnist", "train", data_dir=tmp_path)  # train files are all there
    with pytest.raises(UsageError, match="t10k-labels-idx1-ubyte.gz"):
        D.load_dataset("mnist", "test", data_dir=tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(UsageError, match="16 images but .* 3 labels"):
        D.load_dataset("mnist", "test", data_dir=tmp_path)


# ---------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------
def cifar_expected(split, n_per_batch, seed):
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    parts = [cifar_arrays(n_per_batch, cifar_batch_seed(seed, b)) for b in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_cifar_fixture_parses_to_exact_values(tmp_path):
    make_cifar_dir(tmp_path, n_per_batch=12, seed=5)
    for split, n in (("train", 60), ("test", 12)):
        images, labels = cifar_expected(split, 12, 5)
        data = D.load_dataset("cifar10", split, data_dir=tmp_path, value_range=(0.0, 1.0))
        assert data.images.shape == (n, 32, 32, 3)
        np.testing.assert_array_equal(data.labels, labels)
        np.testing.assert_allclose(data.images, expected(images, (0.0, 1.0)), atol=1e-6)
        assert data.class_names == CIFAR_LABEL_NAMES
    # the files directly in data_dir work too, and limit takes the first samples
    data = D.load_dataset("cifar10", "train", data_dir=tmp_path / "cifar-10-batches-py", limit=15)
    images, labels = cifar_expected("train", 12, 5)
    np.testing.assert_allclose(data.images, expected(images[:15], (-1.0, 1.0)), atol=1e-6)
    np.testing.assert_array_equal(data.labels, labels[:15])


def test_cifar_layout_is_rgb_planes(tmp_path):
    # one pixel per plane: R=10, G=20, B=30 everywhere -> channels in that order
    make_cifar_dir(tmp_path, n_per_batch=2)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch = D.read_cifar_batch(path)
    batch[b"data"][:] = np.repeat(np.array([10, 20, 30], np.uint8), 1024)
    from tests.fixtures import py2_style_pickle
    path.write_bytes(py2_style_pickle(batch))
    data = D.load_dataset("cifar10", "test", data_dir=tmp_path, value_range=(0.0, 255.0))
    np.testing.assert_allclose(data.images[0, 5, 7], [10, 20, 30], atol=1e-4)


def test_cifar_missing_batch(tmp_path):
    make_cifar_dir(tmp_path, n_per_batch=2)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(UsageError, match="data_batch_3"):
        D.load_dataset("cifar10", "train", data_dir=tmp_path)


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    # A hand-written pickle that would call os.system("touch <marker>") if loaded.
    command = f"touch {marker}".encode()
    evil = (b"\x80\x02cos\nsystem\nq\x00X" + len(command).to_bytes(4, "little") + command
            + b"\x85q\x01Rq\x02.")
    with pytest.raises(Exception, match="os.system"):
        D.restricted_loads(evil)
    assert not marker.exists()
    folder = make_cifar_dir(tmp_path / "c", n_per_batch=2) / "cifar-10-batches-py"
    (folder / "test_batch").write_bytes(evil)
    with pytest.raises(UsageError, match="os.system"):
        D.load_dataset("cifar10", "test", data_dir=folder)
    assert not marker.exists()
    (folder / "test_batch").write_bytes(b"\x80\x02}q\x00(U\x04data")  # truncated
    with pytest.raises(UsageError, match="corrupt"):
        D.load_dataset("cifar10", "test", data_dir=folder)


# ---------------------------------------------------------------------------
# imori and folders of class sub-folders
# ---------------------------------------------------------------------------
def test_imori_shipped_dataset():
    train = D.load_dataset("imori", "train", with_masks=True)
    test = D.load_dataset("imori", "test", with_masks=True, size=(32, 32), value_range=(0.0, 1.0))
    assert train.class_names == test.class_names == ["akahara", "madara"]
    assert len(train) == 16 and len(test) == 6
    assert train.images.shape == (16,) + D.DEFAULT_FOLDER_SIZE + (3,)  # photos differ in size
    assert train.masks.shape == (16,) + D.DEFAULT_FOLDER_SIZE + (1,)
    assert test.images.shape == (6, 32, 32, 3) and test.masks.shape == (6, 32, 32, 1)
    np.testing.assert_array_equal(np.bincount(train.labels), [8, 8])
    for data in (train, test):
        assert set(np.unique(data.masks)) == {0.0, 1.0} and data.masks.dtype == np.float32
        assert 0.05 < data.masks.mean() < 0.8
        assert all(Path(p).parent.name == data.class_names[label]
                   for p, label in zip(data.paths, data.labels))
    assert D.load_dataset("imori", "train").masks is None


def test_class_folder_layouts_and_exact_values(tmp_path):
    make_image_folder(tmp_path / "flat", classes=("cats", "dogs"), n_per_class=3, size=(40, 50),
                      split_layout=False)
    data = D.load_dataset("imori", data_dir=tmp_path / "flat", value_range=(0.0, 1.0))
    assert data.class_names == ["cats", "dogs"] and data.images.shape == (6, 40, 50, 3)
    np.testing.assert_array_equal(data.labels, [0, 0, 0, 1, 1, 1])
    for image, path in zip(data.images, data.paths):
        rgb = cv2.imread(path)[..., ::-1]
        np.testing.assert_allclose(image, expected(rgb, (0.0, 1.0)), atol=1e-6)
    # split is ignored for a plain folder of classes
    assert len(D.load_dataset("imori", "test", data_dir=tmp_path / "flat")) == 6
    # <data_dir>/<split>/<class>/ works too
    make_image_folder(tmp_path / "split" / "train", classes=("x", "y", "z"), n_per_class=2,
                      split_layout=False)
    data = D.load_dataset("imori", "train", data_dir=tmp_path / "split")
    assert data.class_names == ["x", "y", "z"] and len(data) == 6
    # imori layout with masks, made by the fixture
    make_image_folder(tmp_path / "imori", n_per_class=2, with_masks=True)
    data = D.load_dataset("imori", "test", data_dir=tmp_path / "imori", with_masks=True)
    assert data.images.shape == (4, 64, 64, 3) and data.masks.shape == (4, 64, 64, 1)
    assert 0.0 < data.masks.mean() < 0.5


def test_rgb_order_grayscale_and_channels(tmp_path):
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 2] = 255  # BGR on disk
    (tmp_path / "red").mkdir()
    cv2.imwrite(str(tmp_path / "red" / "r.png"), red)
    data = D.load_dataset("imori", data_dir=tmp_path)
    np.testing.assert_array_equal(data.images[0, 0, 0], [1.0, -1.0, -1.0])
    gray = D.load_dataset("imori", data_dir=tmp_path, channels=1, value_range=(0.0, 255.0))
    assert gray.images.shape == (1, 8, 8, 1)
    np.testing.assert_allclose(gray.images[0, 0, 0, 0], 76.0, atol=1e-4)  # 0.299 * 255
    # a folder of gray pictures is natively 1 channel; channels=3 copies it
    (tmp_path / "g" / "k").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "g" / "k" / "g.png"), np.full((8, 8), 100, np.uint8))
    assert D.load_dataset("imori", data_dir=tmp_path / "g").images.shape == (1, 8, 8, 1)
    rgb = D.load_dataset("imori", data_dir=tmp_path / "g", channels=3, value_range=(0.0, 255.0))
    np.testing.assert_allclose(rgb.images[0, 3, 3], [100, 100, 100], atol=1e-4)


def test_resize_and_channels_on_idx(tmp_path):
    make_mnist_dir(tmp_path, n_train=10)
    data = D.load_dataset("mnist", data_dir=tmp_path, size=(32, 32), channels=3, value_range=(0.0, 1.0))
    assert data.images.shape == (10, 32, 32, 3)
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    np.testing.assert_array_equal(data.images[..., 0], data.images[..., 2])
    images, _ = mnist_arrays(10, 0)
    resized = cv2.resize(images[4], (32, 32), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(data.images[4, ..., 1], resized / 255.0, atol=1e-6)
    assert D.load_dataset("mnist", data_dir=tmp_path, size=14).images.shape == (10, 14, 14, 1)
    make_cifar_dir(tmp_path, n_per_batch=2)
    gray = D.load_dataset("cifar10", "test", data_dir=tmp_path, channels=1, size=(16, 16))
    assert gray.images.shape == (2, 16, 16, 1)


def test_bad_input_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"unknown dataset 'x' \(choose from imori, mnist, fashion_mnist, cifar10\)"):
        D.load_dataset("x")
    with pytest.raises(UsageError, match="split"):
        D.load_dataset("imori", "val")
    with pytest.raises(UsageError, match="does not exist"):
        D.load_dataset("imori", data_dir=tmp_path / "nope")
    with pytest.raises(UsageError, match="does not exist"):
        D.load_dataset("mnist", data_dir=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no pictures"):
        D.load_dataset("imori", data_dir=tmp_path / "empty")
    (tmp_path / "loose").mkdir()
    cv2.imwrite(str(tmp_path / "loose" / "a.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(UsageError, match="no class sub-folders"):
        D.load_dataset("imori", data_dir=tmp_path / "loose")
    make_image_folder(tmp_path / "f", n_per_class=1, split_layout=False)
    (tmp_path / "f" / "empty_class").mkdir()
    with pytest.raises(UsageError, match="empty_class has no pictures"):
        D.load_dataset("imori", data_dir=tmp_path / "f")
    (tmp_path / "f" / "empty_class").rmdir()
    (tmp_path / "f" / "a" / "broken.jpg").write_bytes(b"this is not a jpeg" * 10)
    with pytest.raises(UsageError, match="broken.jpg"):
        D.load_dataset("imori", data_dir=tmp_path / "f")
    (tmp_path / "f" / "a" / "broken.jpg").write_bytes(b"")
    with pytest.raises(UsageError, match="broken.jpg"):
        D.load_dataset("imori", data_dir=tmp_path / "f")
    with pytest.raises(UsageError, match="no masks"):
        D.load_dataset("imori", data_dir=tmp_path / "f", with_masks=True)
    make_image_folder(tmp_path / "m", n_per_class=1, with_masks=True)
    next((tmp_path / "m" / "train" / "seg_images" / "b").iterdir()).unlink()
    with pytest.raises(UsageError, match="no mask for"):
        D.load_dataset("imori", data_dir=tmp_path / "m", with_masks=True)
    make_image_folder(tmp_path / "t", n_per_class=1)
    shutil.rmtree(tmp_path / "t" / "test")
    with pytest.raises(UsageError, match="no 'test' split"):
        D.load_dataset("imori", "test", data_dir=tmp_path / "t")
    with pytest.raises(UsageError, match="value_range"):
        D.load_dataset("imori", value_range=(1.0, 0.0))
    with pytest.raises(UsageError, match="channels"):
        D.load_dataset("imori", channels=2)
    with pytest.raises(UsageError, match="masks"):
        D.load_dataset("mnist", data_dir=tmp_path, with_masks=True)


# ---------------------------------------------------------------------------
# Downloads (real code path, file:// URLs)
# ---------------------------------------------------------------------------
def md5(path):
    return "md5:" + hashlib.md5(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    """Dataset/ moved to a temporary folder, and every urlopen counted."""
    root = tmp_path / "Dataset"
    monkeypatch.setattr(D, "DATASET_ROOT", root)
    calls = []
    real = urllib.request.urlopen

    def counting(url, *args, **kwargs):
        calls.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", counting)
    return SimpleNamespace(root=root, calls=calls)


def serve_mnist(tmp_path, monkeypatch, name="mnist"):
    server = make_mnist_dir(tmp_path / "server", n_train=20, n_test=10)
    monkeypatch.setitem(D.MIRRORS, name, [(tmp_path / "missing").as_uri() + "/", server.as_uri() + "/"])
    monkeypatch.setitem(D.CHECKSUMS, name, {f: md5(server / f) for f in D.CHECKSUMS[name]})
    return server


def test_download_verifies_and_never_repeats(tmp_path, monkeypatch, cache_root):
    server = serve_mnist(tmp_path, monkeypatch)
    data = D.load_dataset("mnist", "train")
    assert data.images.shape == (20, 28, 28, 1)
    cache = cache_root.root / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(list(D.CHECKSUMS["mnist"]) + [".verified"])
    assert len(cache_root.calls) == 8  # 4 files, each first tried on the dead mirror
    mtimes = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    shutil.rmtree(server)  # a second download would now fail
    test = D.load_dataset("mnist", "test")
    assert test.images.shape == (10, 28, 28, 1)
    assert len(cache_root.calls) == 8
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == mtimes
    # an explicit data_dir equal to the cache is the cache
    assert len(D.load_dataset("mnist", data_dir=cache)) == 20


def test_corrupted_download_is_rejected_and_removed(tmp_path, monkeypatch, cache_root):
    serve_mnist(tmp_path, monkeypatch, "fashion_mnist")
    monkeypatch.setitem(D.CHECKSUMS["fashion_mnist"], "train-images-idx3-ubyte.gz", "md5:" + "0" * 32)
    with pytest.raises(UsageError, match="corrupt.*deleted"):
        D.load_dataset("fashion_mnist", "train")
    cache = cache_root.root / "fashion_mnist"
    assert not (cache / "train-images-idx3-ubyte.gz").exists()
    assert not list(cache.glob("*.part"))


def test_cached_file_with_wrong_checksum_is_reported_not_deleted(tmp_path, monkeypatch, cache_root):
    serve_mnist(tmp_path, monkeypatch)
    cache = make_mnist_dir(cache_root.root / "mnist", n_train=5, n_test=5, seed=9)  # someone else's files
    with pytest.raises(UsageError, match="not the official file"):
        D.load_dataset("mnist")
    assert (cache / "train-images-idx3-ubyte.gz").exists()
    assert cache_root.calls == []


def test_offline_message_says_what_to_put_where(tmp_path, monkeypatch, cache_root):
    monkeypatch.setitem(D.MIRRORS, "mnist", [(tmp_path / "nowhere").as_uri() + "/"])
    with pytest.raises(UsageError) as error:
        D.load_dataset("mnist")
    message = str(error.value)
    assert message.startswith("cannot download MNIST (no network?")
    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "--data-dir", "mnist"):
        assert f in message
    assert "\n" not in message
    with pytest.raises(UsageError, match="download is off"):
        D.load_dataset("cifar10", download=False)
    assert not list((cache_root.root / "mnist").glob("*.part"))


def make_tar(path, members):
    """members: (TarInfo, bytes or None)."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def test_cifar_download_and_extract(tmp_path, monkeypatch, cache_root):
    source = make_cifar_dir(tmp_path / "src", n_per_batch=4)
    server = tmp_path / "server"
    server.mkdir()
    with tarfile.open(server / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setitem(D.MIRRORS, "cifar10", [server.as_uri() + "/"])
    monkeypatch.setitem(D.CHECKSUMS, "cifar10",
                        {"cifar-10-python.tar.gz": md5(server / "cifar-10-python.tar.gz")})
    data = D.load_dataset("cifar10", "train")
    assert data.images.shape == (20, 32, 32, 3) and data.class_names == CIFAR_LABEL_NAMES
    (server / "cifar-10-python.tar.gz").unlink()
    assert len(D.load_dataset("cifar10", "test")) == 4
    assert len(cache_root.calls) == 1
    assert not [p for p in (cache_root.root / "cifar10").iterdir() if p.name.startswith(".extract")]


def test_cifar_download_with_traversal_member_is_refused(tmp_path, monkeypatch, cache_root):
    server = tmp_path / "server"
    server.mkdir()
    make_tar(server / "cifar-10-python.tar.gz",
             [(tarfile.TarInfo("cifar-10-batches-py/../../../evil.txt"), b"boom")])
    monkeypatch.setitem(D.MIRRORS, "cifar10", [server.as_uri() + "/"])
    monkeypatch.setitem(D.CHECKSUMS, "cifar10",
                        {"cifar-10-python.tar.gz": md5(server / "cifar-10-python.tar.gz")})
    with pytest.raises(UsageError, match=r"evil\.txt.*'\.\.'"):
        D.load_dataset("cifar10")
    assert not list(tmp_path.rglob("evil.txt"))


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("member, pattern", [
    ((tarfile.TarInfo("../evil.txt"), b"x"), "'..'"),
    ((tarfile.TarInfo("a/../../evil.txt"), b"x"), "'..'"),
    ((tarfile.TarInfo("/tmp/evil.txt"), b"x"), "absolute"),
    ((_link("a/link", "../../etc"), None), "outside"),
    ((_link("link", "/etc/passwd"), None), "absolute"),
    ((_link("hard", "../outside", tarfile.LNKTYPE), None), "outside"),
    ((_link("dev", "", tarfile.CHRTYPE), None), "device"),
    ((_link("fifo", "", tarfile.FIFOTYPE), None), "device"),
])
def test_safe_extract_tar_refuses_unsafe_members(tmp_path, member, pattern):
    ok = (tarfile.TarInfo("ok/file.txt"), b"fine")
    tar = make_tar(tmp_path / "t.tar.gz", [ok, member])
    dest = tmp_path / "out" / "dest"
    with pytest.raises(UsageError, match=pattern):
        D.safe_extract_tar(tar, dest)
    assert not (dest / "ok" / "file.txt").exists()  # nothing is extracted at all
    assert not list(tmp_path.rglob("evil.txt"))


def test_safe_extract_tar_accepts_inside_links(tmp_path):
    tar = make_tar(tmp_path / "t.tar", [(tarfile.TarInfo("d/file.txt"), b"fine"),
                                        (_link("d/link", "file.txt"), None)])
    D.safe_extract_tar(tar, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "link").read_bytes() == b"fine"
    (tmp_path / "garbage.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(UsageError, match="cannot extract"):
        D.safe_extract_tar(tmp_path / "garbage.tar.gz", tmp_path / "out2")
