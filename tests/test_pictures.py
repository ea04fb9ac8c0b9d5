"""Tests of common.pictures: grids, pairs, curves, scatter, interpolation."""

import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from common import pictures as P
from common.errors import UsageError

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def read_rgb(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, f"cannot read {path}"
    if img.ndim == 3:                  # OpenCV order is BGR(A); drop alpha
        img = img[..., 2::-1]
    return img


def solid(colours, h=4, w=5, value_range=(-1.0, 1.0)):
    """N constant-colour float images (N, h, w, 3) in value_range."""
    lo, hi = value_range
    a = np.asarray(colours, np.float64)[:, None, None, :] / 255.0 * (hi - lo) + lo
    return np.broadcast_to(a, (len(colours), h, w, 3)).astype(np.float32)


def count_colour(img, colour):
    return int((img[..., :3] == np.asarray(colour, np.uint8)).all(-1).sum())


# ---- to_uint8 ----

def test_to_uint8_symmetric_range_clips_and_scales():
    x = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0, np.nan])
    assert P.to_uint8(x).tolist() == [0, 0, 128, 191, 255, 255, 0]
    assert P.to_uint8(x).dtype == np.uint8


def test_to_uint8_unit_range_keeps_shape():
    x = np.array([-0.1, 0.0, 0.5, 1.0, 1.5], np.float32).reshape(1, 1, 5, 1)
    out = P.to_uint8(x, value_range=(0, 1))
    assert out.shape == (1, 1, 5, 1)
    assert out.ravel().tolist() == [0, 0, 128, 255, 255]


def test_to_uint8_maps_huge_and_infinite_values_without_overflow():
    # a diverged run's samples (the hostile-files test trains at lr 1e30): clipped, not overflowed
    x = np.array([1e308, -1e308, np.inf, -np.inf, np.nan, 1.0, -1.0])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        assert P.to_uint8(x).tolist() == [255, 0, 255, 0, 0, 255, 0]
        assert P.to_uint8(x, value_range=(0, 255)).tolist() == [255, 0, 255, 0, 0, 1, 0]


def test_to_uint8_rejects_empty_range():
    with pytest.raises(UsageError):
        P.to_uint8(np.zeros(3), value_range=(1, 1))


# ---- make_grid / save_grid ----

def test_make_grid_arrangement_and_padding():
    imgs = solid([RED, GREEN, BLUE, WHITE], h=4, w=5)
    g = P.make_grid(imgs, padding=2, pad_value=7)       # 2 x 2 by default
    assert g.shape == (2 * 4 + 3 * 2, 2 * 5 + 3 * 2, 3) and g.dtype == np.uint8
    assert g[2, 2].tolist() == list(RED)                  # row 0, col 0
    assert g[2, 2 + 5 + 2].tolist() == list(GREEN)        # row 0, col 1
    assert g[2 + 4 + 2, 2].tolist() == list(BLUE)         # row 1, col 0
    assert g[-3, -3].tolist() == list(WHITE)              # row 1, col 1
    assert (g[0] == 7).all() and (g[:, 0] == 7).all()     # border
    assert (g[:, 2 + 5:2 + 5 + 2] == 7).all()             # gap between columns
    assert (g[2:6, 2:7] == RED).all()                     # whole first cell


def test_make_grid_nrow_is_images_per_row_and_gray():
    imgs = np.linspace(-1, 1, 3)[:, None, None, None] * np.ones((3, 2, 3, 1))
    g = P.make_grid(imgs, nrow=3, padding=1, pad_value=0)
    assert g.shape == (2 + 2, 3 * 3 + 4, 1)
    assert [g[1, 1 + 4 * i, 0] for i in range(3)] == [0, 128, 255]
    g2 = P.make_grid(imgs[..., 0], nrow=2, padding=0)    # (N, H, W) works too
    assert g2.shape == (4, 6, 1)
    assert g2[2, 0, 0] == 255 and (g2[2:, 3:] == 255).all()   # empty cell = pad


def test_save_grid_raw_pixels_and_scale(tmp_path):
    imgs = solid([RED, GREEN, BLUE, WHITE], h=3, w=3)
    p = P.save_grid(imgs, tmp_path / "a" / "grid.png", nrow=4, scale=2)
    assert p.exists() and p.parent.name == "a"
    img = read_rgb(p)
    assert img.shape == ((3 + 4) * 2, (4 * 3 + 5 * 2) * 2, 3)  # scaled with padding
    assert img[4, 4].tolist() == list(RED)                     # BGR handled
    assert img[4, (2 + 3 + 2) * 2 + 1].tolist() == list(GREEN)


def test_save_grid_with_title_keeps_pixels(tmp_path):
    imgs = solid([RED, BLUE], h=6, w=6)
    p = P.save_grid(imgs, tmp_path / "t.png", title="Generated samples, iteration 1000")
    img = read_rgb(p)
    assert count_colour(img, RED) == 36 and count_colour(img, BLUE) == 36
    assert img.shape[1] > 2 * 6 + 3 * 2        # widened for the title
    assert (img.max(-1) < 100).any()            # dark title text (images are bright)


def test_save_image(tmp_path):
    img = np.zeros((5, 6, 3), np.float32)
    img[..., 1] = 1.0
    p = P.save_image(img, tmp_path / "x" / "one.png", value_range=(0, 1))
    assert read_rgb(p).shape == (5, 6, 3) and count_colour(read_rgb(p), GREEN) == 30
    g = P.save_image(np.zeros((4, 4, 1)), tmp_path / "gray.png")
    assert read_rgb(g).shape == (4, 4) and (read_rgb(g) == 128).all()


# ---- save_pairs ----

def test_save_pairs_one_row_is_wide_and_has_pixels(tmp_path):
    inp = solid([RED], h=8, w=8)
    out = solid([BLUE], h=8, w=8)
    p = P.save_pairs(inp, out, tmp_path / "pairs.png", scale=2)
    img = read_rgb(p)
    assert img.shape[1] > img.shape[0]
    assert count_colour(img, RED) == 16 * 16
    assert count_colour(img, BLUE) == 16 * 16
    ys, xs = np.nonzero((img == RED).all(-1))
    yb, xb = np.nonzero((img == BLUE).all(-1))
    assert xs.max() < xb.min() and ys.min() == yb.min()   # input left of output


def test_save_pairs_rows_titles_targets_and_mixed_channels(tmp_path):
    inp = solid([RED, GREEN, BLUE], h=6, w=6)
    mask = np.ones((3, 6, 6, 1), np.float32)                # gray, range (0, 1)
    p = P.save_pairs(inp, mask, tmp_path / "p.png", targets=mask * 0,
                     value_range=((-1, 1), (0, 1), (0, 1)),
                     titles=["a.jpg", "b.jpg", "mse 0.0123"])
    img = read_rgb(p)
    assert img.shape[0] > 3 * 6 and img.shape[1] > 3 * 6
    for c in (RED, GREEN, BLUE):
        assert count_colour(img, c) == 36
    assert count_colour(img, (0, 0, 0)) >= 3 * 36          # black targets
    ys = [np.nonzero((img == c).all(-1))[0].min() for c in (RED, GREEN, BLUE)]
    assert ys[0] < ys[1] < ys[2]                           # one row per sample


def test_save_pairs_bad_input(tmp_path):
    with pytest.raises(UsageError):
        P.save_pairs(solid([RED, RED]), solid([RED]), tmp_path / "bad.png")
    with pytest.raises(UsageError):
        P.save_pairs(np.zeros((2, 4, 4, 2)), np.zeros((2, 4, 4, 2)), tmp_path / "bad.png")


# ---- metrics ----

def write_csv(path, text):
    path.write_text(text)
    return path


def test_read_metrics_parses_columns_and_empty_cells(tmp_path):
    p = write_csv(tmp_path / "metrics.csv",
                  "iteration,loss_g,loss_d,note\n1,2.5,0.7,a\n2,,0.6,b\n3,1.5\n")
    m = P.read_metrics(p)
    assert list(m) == ["iteration", "loss_g", "loss_d", "note"]
    assert m["iteration"].tolist() == [1.0, 2.0, 3.0] and m["iteration"].dtype == np.float64
    assert m["loss_g"][0] == 2.5 and np.isnan(m["loss_g"][1]) and m["loss_g"][2] == 1.5
    assert np.isnan(m["loss_d"][2])
    assert m["note"].tolist() == ["a", "b", ""]


def test_read_metrics_missing_file(tmp_path):
    with pytest.raises(UsageError):
        P.read_metrics(tmp_path / "nope.csv")


def test_plot_curves(tmp_path):
    n = 50
    rows = "\n".join(f"{i},{1.0 / (i + 1)},{'' if i % 2 else 0.5}" for i in range(n))
    p = write_csv(tmp_path / "metrics.csv", "iteration,loss,val\n" + rows + "\n")
    out = P.plot_curves(p, tmp_path / "plots" / "loss.png", ["loss", "val"],
                        title="Loss", ylabel="loss", logy=True, smooth=5)
    img = read_rgb(out)
    assert out.stat().st_size > 0 and 200 < img.shape[0] < 2000 and 300 < img.shape[1] < 3000
    assert P.plot_curves(p, tmp_path / "one.png", "loss").exists()
    with pytest.raises(UsageError, match="missing_col"):
        P.plot_curves(p, tmp_path / "bad.png", ["loss", "missing_col"])
    with pytest.raises(UsageError):
        P.plot_curves(p, tmp_path / "bad.png", ["loss"], x="epoch")
    with pytest.raises(UsageError):
        P.plot_curves(tmp_path / "absent.csv", tmp_path / "bad.png", ["loss"])
    assert not (tmp_path / "bad.png").exists()


def test_moving_average():
    y = np.array([1.0, 3.0, 5.0, 7.0])
    assert P._moving_average(y, 2).tolist() == [1.0, 2.0, 4.0, 6.0]


# ---- interpolation ----

def test_lerp_endpoints_and_midpoint():
    z0, z1 = np.array([1.0, -2.0, 3.0]), np.array([3.0, 2.0, -1.0])
    z = P.lerp(z0, z1, 5)
    assert z.shape == (5, 3)
    assert np.array_equal(z[0], z0) and np.array_equal(z[-1], z1)
    np.testing.assert_allclose(z[2], [2.0, 0.0, 1.0])
    np.testing.assert_allclose(np.diff(z, axis=0), np.diff(z, axis=0)[:1].repeat(4, 0))


def test_slerp_keeps_norm_and_differs_from_lerp():
    rng = np.random.default_rng(0)
    z0, z1 = rng.normal(size=16), rng.normal(size=16)
    z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)
    s = P.slerp(z0, z1, 9)
    assert np.array_equal(s[0], z0) and np.array_equal(s[-1], z1)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), np.linalg.norm(z0), rtol=1e-10)
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    mid = P.slerp(a, b, 3)[1]
    np.testing.assert_allclose(mid, [np.sqrt(0.5), np.sqrt(0.5)])
    assert not np.allclose(mid, P.lerp(a, b, 3)[1])


def test_slerp_parallel_falls_back_to_lerp_and_keeps_shape():
    a = np.array([1.0, 2.0, 3.0])
    s = P.slerp(a, 2 * a, 3)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s, P.lerp(a, 2 * a, 3))
    z = P.slerp(np.ones((4, 1, 1)), -np.ones((4, 1, 1)) + 0.5, 6)  # (C, 1, 1) latents
    assert z.shape == (6, 4, 1, 1)


def test_great_circle_loop():
    rng = np.random.default_rng(1)
    z0, z1 = rng.normal(size=8), 3 * rng.normal(size=8)
    g = P.great_circle(z0, z1, 12)
    assert g.shape == (12, 8) and np.array_equal(g[0], z0)
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), np.linalg.norm(z0))
    # steps are equal angles and the loop closes: the step after the last is z0
    d = np.linalg.norm(np.diff(np.vstack([g, g[:1]]), axis=0), axis=1)
    np.testing.assert_allclose(d, d[0])
    assert not np.allclose(g[6], z0) and np.allclose(g[6], -z0)
    # it lies in the plane of z0 and z1 and passes through z1's direction
    basis = np.linalg.qr(np.stack([z0, z1], 1))[0]
    np.testing.assert_allclose(basis @ (basis.T @ g.T), g.T, atol=1e-9)
    cos = g @ z1 / (np.linalg.norm(g, axis=1) * np.linalg.norm(z1))
    dense = P.great_circle(z0, z1, 3600) @ z1
    assert cos.max() <= 1 + 1e-12 and dense.max() / (np.linalg.norm(z0) * np.linalg.norm(z1)) > 0.9999
    par = P.great_circle(z0, 2 * z0, 4)                      # parallel: still a loop
    np.testing.assert_allclose(np.linalg.norm(par, axis=1), np.linalg.norm(z0))
    assert not np.allclose(par[1], z0)


# ---- strip and GIF ----

def test_save_strip_rows(tmp_path):
    lin = solid([RED, GREEN, BLUE], h=5, w=5)
    sph = solid([BLUE, GREEN, RED], h=5, w=5)
    p = P.save_strip(np.stack([lin, sph]), tmp_path / "strip.png", scale=2,
                     rows_labels=["linear", "spherical"])
    img = read_rgb(p)
    assert img.shape[1] > img.shape[0]
    for c in (RED, GREEN, BLUE):
        assert count_colour(img, c) == 2 * 100
    one = read_rgb(P.save_strip(lin, tmp_path / "one.png"))
    assert count_colour(one, RED) == 25
    with pytest.raises(UsageError):
        P.save_strip(np.stack([lin, sph]), tmp_path / "bad.png", rows_labels=["x"])


def test_save_gif_frames_and_loop(tmp_path):
    t = 6
    frames = np.stack([np.full((8, 8, 3), v) for v in np.linspace(-1, 1, t)])
    p = P.save_gif(frames, tmp_path / "g" / "anim.gif", fps=5, scale=2)
    with Image.open(p) as im:
        assert im.format == "GIF"
        assert im.n_frames == t
        assert im.info.get("loop") == 0
        assert im.size == (16, 16)
        assert im.info.get("duration") == 200
        for k in (0, 3, t - 1):                   # frame k shows frame k's grey
            im.seek(k)
            want = P.to_uint8(frames[k, 0, 0, 0])
            assert np.abs(np.asarray(im.convert("RGB")).astype(int) - int(want)).max() <= 2
    gray = P.save_gif(frames[..., :1], tmp_path / "gray.gif")
    with Image.open(gray) as im:
        assert im.n_frames == t


# ---- scatter and table ----

def test_save_scatter(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)
    pts = rng.normal(size=(200, 2)) + labels[:, None]
    p = P.save_scatter(pts, labels, tmp_path / "s" / "scatter.png",
                       class_names=[f"class {i}" for i in range(10)], title="latent")
    img = read_rgb(p)
    assert p.stat().st_size > 1000 and 300 < img.shape[0] < 2000 and 300 < img.shape[1] < 2500
    assert P.save_scatter(pts, None, tmp_path / "plain.png").exists()
    with pytest.raises(UsageError):
        P.save_scatter(pts[:, :1], labels, tmp_path / "bad.png")


def test_table_mosaic_arrangement():
    u8 = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5, 1)
    m = P._mosaic(u8)
    assert m.shape == (8, 15, 1)
    for r in range(2):
        for c in range(3):
            assert np.array_equal(m[r * 4:(r + 1) * 4, c * 5:(c + 1) * 5], u8[r, c])


def test_save_table(tmp_path):
    r, c = 5, 7
    imgs = np.random.default_rng(0).random((r, c, 6, 6, 1))
    imgs[0, 0] = 1.0
    p = P.save_table(imgs, tmp_path / "t" / "table.png", np.linspace(2, -2, r),
                     np.linspace(-3, 3, c), title="latent grid")
    img = read_rgb(p)
    assert p.stat().st_size > 1000
    assert 300 < img.shape[0] < 1500 and 300 < img.shape[1] < 1500
    assert count_colour(img, WHITE) > 0
    with pytest.raises(UsageError):
        P.save_table(imgs, tmp_path / "bad.png", [0] * r, [0] * (c - 1))
