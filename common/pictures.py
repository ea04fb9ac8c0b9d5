"""Pictures: image grids, input | output pairs, curves, scatter, interpolation.

Everything here takes NumPy arrays and writes PNG or GIF files; nothing
imports a deep-learning framework.  Images are float NHWC (C = 1 or 3) in a
stated ``value_range`` ((-1, 1) by default, or (0, 1)); a uint8 array is taken
as already being 0..255.  Every ``save_*``/``plot_*`` function creates the
parent directories and returns the ``Path`` it wrote.

Two kinds of picture:

- raw pixels (``save_image``, ``save_grid`` without a title) are written with
  OpenCV, so the PNG holds exactly the pixels of the images;
- labelled pictures (pairs, strips, titled grids) place those same pixels
  unresampled with ``Figure.figimage`` and add text with matplotlib; plots
  (curves, scatter, latent table) are ordinary matplotlib figures.

matplotlib runs on its Agg backend and figures are plain ``Figure`` objects
(no pyplot state), so this works without a display and from any thread.
"""

import csv
import math
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import RendererAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402

from common.errors import UsageError  # noqa: E402

__all__ = [
    "to_uint8", "make_grid", "save_grid", "save_pairs", "save_image",
    "read_metrics", "plot_curves", "read_image", "pick_rows", "save_progress", "save_scatter",
    "lerp", "slerp", "great_circle", "save_strip", "save_gif", "save_table",
]

DPI = 100            # figures are laid out in pixels at this resolution
FONT_SIZE = 10       # points, for labels on pixel pictures
TITLE_SIZE = 12


# ---------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------

def to_uint8(images, value_range=(-1.0, 1.0)):
    """Map ``value_range`` to 0..255: clip, scale, round half up, uint8.

    Any shape is accepted (the mapping is per element; NHWC in, NHWC out).
    NaN becomes 0, +-inf 255 and 0.  A uint8 array is returned unchanged.
    (Clipped before scaling: the huge values of a diverged run would
    overflow the product.)
    """
    a = np.asarray(images)
    if a.dtype == np.uint8:
        return a
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise UsageError(f"value_range must be (low, high) with low < high, got {value_range}")
    a = np.clip(np.nan_to_num(a.astype(np.float64), nan=lo), lo, hi)
    return np.floor((a - lo) * (255.0 / (hi - lo)) + 0.5).astype(np.uint8)


def _as_nhwc(images, name="images"):
    """Return a 4-D NHWC array; (N, H, W) grayscale gets a channel axis."""
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or a.shape[-1] not in (1, 3):
        raise UsageError(f"{name} must be NHWC with 1 or 3 channels, got shape {a.shape}")
    if a.shape[0] == 0:
        raise UsageError(f"{name} is empty")
    return a


def _as_hwc(image, name="image"):
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3):
        raise UsageError(f"{name} must be HWC with 1 or 3 channels, got shape {a.shape}")
    return a


def _upscale(a, scale):
    """Integer nearest-neighbour upscaling of the two axes before the last."""
    scale = int(scale)
    if scale < 1:
        raise UsageError(f"scale must be a positive integer, got {scale}")
    if scale == 1:
        return a
    return np.repeat(np.repeat(a, scale, axis=-3), scale, axis=-2)


def _rgb(a):
    """uint8 HWC with 1 or 3 channels -> 3 channels."""
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a


def make_grid(images, nrow=None, padding=2, pad_value=255, value_range=(-1.0, 1.0)):
    """Tile N images into one uint8 (H, W, C) array.

    ``nrow`` images per row (default ceil(sqrt(N))), filled row by row;
    ``padding`` pixels of ``pad_value`` between the cells and around the
    border.  Images are (N, H, W, C) or (N, H, W).
    """
    a = to_uint8(_as_nhwc(images), value_range)
    n, h, w, c = a.shape
    nrow = int(nrow) if nrow else int(math.ceil(math.sqrt(n)))
    if nrow < 1:
        raise UsageError(f"nrow must be positive, got {nrow}")
    ncol = min(nrow, n)
    nrows = int(math.ceil(n / nrow))
    p = int(padding)
    grid = np.full((nrows * (h + p) + p, ncol * (w + p) + p, c), pad_value, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        y, x = p + r * (h + p), p + q * (w + p)
        grid[y:y + h, x:x + w] = a[i]
    return grid


# ---------------------------------------------------------------------------
# Writing files
# ---------------------------------------------------------------------------

def _out_path(path, default_suffix=".png"):
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(default_suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _write_raw(path, img):
    """Write uint8 HWC (RGB or gray) with OpenCV (which wants BGR)."""
    path = _out_path(path)
    if img.shape[-1] == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
    else:
        img = img[..., 0]
    ok, buf = cv2.imencode(path.suffix, np.ascontiguousarray(img))
    if not ok:
        raise UsageError(f"cannot encode an image as {path.suffix!r}: {path}")
    buf.tofile(str(path))       # works for non-ASCII paths, unlike imwrite
    return path


def _save_figure(fig, path, **kwargs):
    path = _out_path(path)
    fig.savefig(path, dpi=DPI, facecolor="white", **kwargs)
    return path


_RENDERER = None


def _text_size(s, size=FONT_SIZE, weight="normal"):
    """(width, height) in pixels of text drawn at ``size`` points."""
    global _RENDERER
    if not s:
        return 0, 0
    if _RENDERER is None:
        _RENDERER = RendererAgg(1, 1, DPI)
    prop = FontProperties(size=size, weight=weight)
    lines = str(s).split("\n")
    w = max(_RENDERER.get_text_width_height_descent(ln or " ", prop, ismath=False)[0]
            for ln in lines)
    h = size * DPI / 72.0 * 1.25 * len(lines)
    return int(math.ceil(w)), int(math.ceil(h))


def _compose(path, width, height, images, texts):
    """Write a white canvas of width x height pixels holding uint8 RGB
    ``images`` [(array, x, y)] unresampled at their top-left corners and
    ``texts`` [dict(s, x, y, ha, va, size, weight)] in pixel coordinates
    (origin top left)."""
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    for img, x, y in images:
        fig.figimage(img, xo=int(x), yo=int(height - y - img.shape[0]),
                     origin="upper", resize=False)
    for t in texts:
        fig.text(t["x"] / width, 1.0 - t["y"] / height, t["s"],
                 ha=t.get("ha", "center"), va=t.get("va", "center"),
                 fontsize=t.get("size", FONT_SIZE), weight=t.get("weight", "normal"))
    return _save_figure(fig, path)


def _save_rows(path, rows, col_labels=None, row_labels=None, title=None, gap=4, margin=6):
    """Lay out rows of uint8 cells (each row a list of HWC arrays) with an
    optional column header, labels left of each row and a title on top."""
    rows = [[_rgb(c) for c in row] for row in rows]     # figimage wants RGB
    ncols = max(len(r) for r in rows)
    col_labels = list(col_labels or [])
    row_labels = [str(s) for s in (row_labels or [])]

    col_w = [0] * ncols
    for row in rows:
        for j, c in enumerate(row):
            col_w[j] = max(col_w[j], c.shape[1])
    header_h = 0
    for j, s in enumerate(col_labels[:ncols]):
        tw, th = _text_size(str(s))
        col_w[j] = max(col_w[j], tw + 4)
        header_h = max(header_h, th + 4)
    row_h = [max(c.shape[0] for c in row) for row in rows]
    for i, s in enumerate(row_labels[:len(rows)]):
        row_h[i] = max(row_h[i], _text_size(s)[1])
    label_w = max([_text_size(s)[0] for s in row_labels] + [0])
    label_w = label_w + gap + 2 if label_w else 0

    body_w = label_w + sum(col_w) + gap * (ncols - 1)
    title_w, title_h = _text_size(title, TITLE_SIZE, "bold") if title else (0, 0)
    width = max(body_w, title_w + 4) + 2 * margin
    x0 = margin + (width - 2 * margin - body_w) // 2
    y = margin

    images, texts = [], []
    if title:
        texts.append(dict(s=title, x=width / 2, y=y + title_h / 2, size=TITLE_SIZE,
                          weight="bold"))
        y += title_h + gap
    col_x = [x0 + label_w + sum(col_w[:j]) + gap * j for j in range(ncols)]
    if header_h:
        for j, s in enumerate(col_labels[:ncols]):
            texts.append(dict(s=str(s), x=col_x[j] + col_w[j] / 2, y=y + header_h / 2))
        y += header_h
    for i, row in enumerate(rows):
        for j, c in enumerate(row):
            images.append((c, col_x[j] + (col_w[j] - c.shape[1]) // 2,
                           y + (row_h[i] - c.shape[0]) // 2))
        if i < len(row_labels):
            texts.append(dict(s=row_labels[i], x=x0 + label_w - gap - 2,
                              y=y + row_h[i] / 2, ha="right"))
        y += row_h[i] + gap
    height = y - gap + margin
    return _compose(path, width, height, images, texts)


def save_image(image, path, value_range=(-1.0, 1.0)):
    """Write one HWC (or HW) image as raw pixels."""
    return _write_raw(path, to_uint8(_as_hwc(image), value_range))


def save_grid(images, path, nrow=None, value_range=(-1.0, 1.0), scale=1, title=None):
    """Write ``make_grid(images)`` upscaled ``scale`` times (nearest
    neighbour); raw pixels, or with ``title`` drawn above the grid."""
    grid = _upscale(make_grid(images, nrow=nrow, value_range=value_range), scale)
    if not title:
        return _write_raw(path, grid)
    return _save_rows(path, [[grid]], title=title)


def _per_column_ranges(value_range, k):
    if (isinstance(value_range, (list, tuple)) and len(value_range) > 0
            and isinstance(value_range[0], (list, tuple))):
        if len(value_range) != k:
            raise UsageError(f"need {k} value ranges, got {len(value_range)}")
        return list(value_range)
    return [value_range] * k


def save_pairs(inputs, outputs, path, value_range=(-1.0, 1.0), labels=("input", "output"),
               titles=None, scale=1, targets=None):
    """One row per sample: input | output (| target), a header with the
    column ``labels`` and, if given, ``titles[i]`` left of row i.

    The columns may differ in channels (a gray mask next to a colour photo)
    and size.  ``value_range`` is one (low, high) for all columns or one per
    column, e.g. ``((-1, 1), (0, 1))``.
    """
    columns = [_as_nhwc(inputs, "inputs"), _as_nhwc(outputs, "outputs")]
    if targets is not None:
        columns.append(_as_nhwc(targets, "targets"))
    n = columns[0].shape[0]
    if any(c.shape[0] != n for c in columns):
        raise UsageError(f"inputs/outputs/targets differ in number: {[c.shape[0] for c in columns]}")
    if titles is not None and len(titles) != n:
        raise UsageError(f"{len(titles)} titles for {n} samples")
    ranges = _per_column_ranges(value_range, len(columns))
    columns = [_upscale(to_uint8(c, r), scale) for c, r in zip(columns, ranges)]
    if labels is not None:
        labels = list(labels)
        if targets is not None and len(labels) == 2:
            labels.append("target")
    rows = [[c[i] for c in columns] for i in range(n)]
    return _save_rows(path, rows, col_labels=labels, row_labels=titles)


def save_strip(images, path, value_range=(-1.0, 1.0), scale=1, rows_labels=None, title=None):
    """Interpolation strips: images (R, S, H, W, C) as R rows of S frames, or
    (S, H, W, C) as one row; ``rows_labels`` (e.g. ("linear", "spherical"))
    are drawn left of the rows."""
    a = np.asarray(images)
    if a.ndim == 4:
        a = a[None]
    if a.ndim != 5 or a.shape[-1] not in (1, 3) or 0 in a.shape[:2]:
        raise UsageError(f"strip images must be (R, S, H, W, C) or (S, H, W, C), got {a.shape}")
    if rows_labels is not None and len(rows_labels) != a.shape[0]:
        raise UsageError(f"{len(rows_labels)} row labels for {a.shape[0]} rows")
    a = _upscale(to_uint8(a, value_range), scale)
    rows = [[a[r, s] for s in range(a.shape[1])] for r in range(a.shape[0])]
    return _save_rows(path, rows, row_labels=rows_labels, title=title, gap=2)


def save_gif(frames, path, value_range=(-1.0, 1.0), fps=10, scale=1):
    """Animated GIF of (T, H, W, C) frames that loops forever.

    Note: GIF writers merge identical consecutive frames, so a GIF of
    repeated frames has fewer than T frames (same total duration).
    """
    from PIL import Image  # Pillow ships with matplotlib

    a = _upscale(to_uint8(_as_nhwc(frames, "frames"), value_range), scale)
    if fps <= 0:
        raise UsageError(f"fps must be positive, got {fps}")
    if a.shape[-1] == 1:
        pics = [Image.fromarray(f[..., 0], mode="L") for f in a]
    else:
        pics = [Image.fromarray(np.ascontiguousarray(f), mode="RGB") for f in a]
    path = _out_path(path, ".gif")
    pics[0].save(path, format="GIF", save_all=True, append_images=pics[1:],
                 duration=max(20, int(round(1000.0 / fps))), loop=0, optimize=False)
    return path


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------

def read_metrics(csv_path):
    """Columns of a metrics CSV with a header row.

    Numeric columns become float64 arrays (empty cells -> nan); a column
    with any non-numeric cell stays an array of strings.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise UsageError(f"metrics file not found: {csv_path}")
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        raise UsageError(f"metrics file is empty: {csv_path}")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    out = {}
    for j, name in enumerate(header):
        cells = [(r[j].strip() if j < len(r) else "") for r in body]
        try:
            out[name] = np.array([float(c) if c else np.nan for c in cells], np.float64)
        except ValueError:
            out[name] = np.array(cells, dtype=str)
    return out


def _moving_average(y, window):
    """Trailing mean over ``window`` samples (shorter at the start)."""
    c = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_curves(csv_path, path, columns, x="iteration", title=None, ylabel=None,
                logy=False, smooth=0, labels=None, ylim=None, hline=None):
    """Line plot of ``columns`` of a metrics CSV against column ``x``.

    Rows where a column is empty are skipped for that column.  With
    ``smooth`` > 1 a curve longer than that is drawn faded under its
    trailing moving average of that many rows; a short unsmoothed curve
    gets a marker at each point.  ``labels`` names the columns in the
    legend (default: the column names); ``ylim`` fixes the y range and
    ``hline`` draws a dashed reference line (e.g. 0.5 for probabilities).
    """
    data = read_metrics(csv_path)
    if isinstance(columns, str):
        columns = [columns]
    columns = list(columns)
    labels = list(labels) if labels is not None else columns
    missing = [c for c in [x] + columns if c not in data]
    if missing:
        raise UsageError(f"{csv_path}: no column {', '.join(map(repr, missing))} "
                         f"(columns: {', '.join(data)})")
    for c in [x] + columns:
        if data[c].dtype.kind != "f":
            raise UsageError(f"{csv_path}: column {c!r} is not numeric")
    fig = Figure(figsize=(6.4, 4.0), dpi=DPI)
    ax = fig.add_subplot()
    smooth = int(smooth or 0)
    for k, (name, label) in enumerate(zip(columns, labels)):
        xs, ys = data[x], data[name]
        ok = np.isfinite(xs) & np.isfinite(ys)
        if logy:
            ok &= ys > 0
        xs, ys = xs[ok], ys[ok]
        color = f"C{k % 10}"
        if smooth > 1 and len(ys) > smooth:
            ax.plot(xs, ys, color=color, alpha=0.25, linewidth=1)
            ax.plot(xs, _moving_average(ys, smooth), color=color, linewidth=1.5,
                    label=f"{label} (mean of {smooth} rows)")
        else:
            ax.plot(xs, ys, color=color, linewidth=1.5, marker="." if len(ys) < 20 else None, label=label)
    if hline is not None:
        ax.axhline(hline, color="0.5", linewidth=0.8, linestyle="--")
    if ylim is not None:
        ax.set_ylim(*ylim)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    _fit_margins(fig, ax)
    return _save_figure(fig, path)


def _label_size(text):
    """(width, height) in pixels of a tick label or axis text as drawn."""
    global _RENDERER
    if _RENDERER is None:
        _RENDERER = RendererAgg(1, 1, DPI)
    size = matplotlib.rcParams["font.size"]
    w, h, _ = _RENDERER.get_text_width_height_descent(text or " ", FontProperties(size=size),
                                                      ismath="$" in text)
    return w, h


def _fit_margins(fig, ax, pad=6):
    """Margins that just hold the tick labels, axis labels and title (what
    matplotlib's constrained layout finds, measured from the few texts
    instead of drawing the figure twice: a third of a plot's time)."""
    width, height = fig.get_size_inches() * DPI

    def labels(axis):
        locs = [v for v in axis.get_majorticklocs() if np.isfinite(v)]
        lo, hi = sorted(axis.get_view_interval())
        shown = [v for v in locs if lo - 1e-9 * abs(hi - lo) <= v <= hi + 1e-9 * abs(hi - lo)]
        return [_label_size(t) for t in axis.get_major_formatter().format_ticks(shown) if t] or [(0, 0)]

    y_ticks, x_ticks = labels(ax.yaxis), labels(ax.xaxis)
    _, label_h = _label_size("Ag")
    left = pad + (label_h + pad if ax.get_ylabel() else 0) + max(w for w, _ in y_ticks) + 3.5 + pad
    bottom = pad + (label_h + pad if ax.get_xlabel() else 0) + max(h for _, h in x_ticks) + 3.5 + pad
    top = pad + (_label_size(ax.get_title())[1] * 1.2 + pad if ax.get_title() else max(h for _, h in y_ticks) / 2)
    right = pad + max(x_ticks[-1][0] / 2, 0)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height)


# ---------------------------------------------------------------------------
# Progress pictures: rows saved during training, assembled into one picture
# ---------------------------------------------------------------------------

def read_image(path):
    """A PNG/JPEG as an HWC uint8 array (RGB, or one channel for a grey
    picture), or None when the file is missing or cannot be decoded."""
    data = np.fromfile(str(path), np.uint8) if Path(path).is_file() else np.zeros(0, np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        return None
    if img.ndim == 2:
        return img[..., None]
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def pick_rows(keys, limit):
    """At most ``limit`` of the sorted ``keys``, evenly spread, always with
    the first and the last."""
    keys = sorted(keys)
    if len(keys) <= limit:
        return keys
    idx = np.unique(np.round(np.linspace(0, len(keys) - 1, limit)).astype(int))
    return [keys[i] for i in idx]


def save_progress(row_dir, path, columns, image_shape, upto=None, limit=10, scale=1, title=None):
    """One picture of how training went: ``row_dir`` holds rows
    ``iter_NNNNNN.png``, each ``columns`` images of ``image_shape`` (H, W, C)
    side by side as raw pixels; the rows up to iteration ``upto`` (all if
    None), at most ``limit`` evenly spread ones including the first and the
    last, become the labelled rows of ``path``.  Rows that cannot be read or
    have another size are skipped.  Returns the path, or None without rows."""
    h, w, c = (int(v) for v in image_shape)
    rows = {}
    for row_path in Path(row_dir).glob("iter_*.png"):
        iteration = int(row_path.stem.split("_")[1])
        if upto is not None and iteration > upto:
            continue
        img = read_image(row_path)
        if img is not None and img.shape == (h, w * columns, c):
            rows[iteration] = img.reshape(h, columns, w, c).transpose(1, 0, 2, 3)
    chosen = pick_rows(rows, limit)
    if not chosen:
        return None
    return save_strip(np.stack([rows[it] for it in chosen]), path, scale=scale,
                      rows_labels=[f"iteration {it}" for it in chosen], title=title)


# ---------------------------------------------------------------------------
# Latent space
# ---------------------------------------------------------------------------

def save_scatter(points, labels, path, class_names=None, title=None, xlabel="z1", ylabel="z2",
                 background=None, background_label=None):
    """Scatter of 2-D latent codes (N, 2) coloured by integer ``labels``
    (tab10; tab20 for labels above 9), legend with ``class_names`` (a list
    indexed by label, or a dict).  ``labels=None`` draws one colour.
    ``background`` (M, 2): points drawn first, in grey (e.g. a prior sample),
    named ``background_label`` in the legend."""
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or p.shape[0] == 0:
        raise UsageError(f"points must be (N, 2), got shape {p.shape}")
    p = p[:, :2]
    fig = Figure(figsize=(6.0, 5.0), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    size = float(np.clip(3000.0 / len(p), 2.0, 30.0))
    if background is not None:
        b = np.asarray(background, np.float64).reshape(len(background), -1)[:, :2]
        ax.scatter(b[:, 0], b[:, 1], s=size, color="0.75", alpha=0.6, linewidths=0, label=background_label)
    if labels is None:
        ax.scatter(p[:, 0], p[:, 1], s=size, alpha=0.7, linewidths=0)
    else:
        lab = np.asarray(labels).reshape(-1).astype(np.int64)
        if len(lab) != len(p):
            raise UsageError(f"{len(lab)} labels for {len(p)} points")
        classes = np.unique(lab)
        cmap = matplotlib.colormaps["tab10" if classes.max() < 10 else "tab20"]
        for k in classes:
            m = lab == k
            if class_names is None:
                name = str(k)
            elif isinstance(class_names, dict):
                name = str(class_names.get(int(k), k))
            else:
                name = str(class_names[k]) if 0 <= k < len(class_names) else str(k)
            ax.scatter(p[m, 0], p[m, 1], s=size, color=cmap(int(k) % cmap.N),
                       alpha=0.7, linewidths=0, label=name)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=max(1.0, 6.0 / math.sqrt(size)),
                  fontsize=9, frameon=False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return _save_figure(fig, path)


def _pair(z0, z1):
    a = np.asarray(z0, np.float64)
    b = np.asarray(z1, np.float64)
    if a.shape != b.shape:
        raise UsageError(f"z0 and z1 differ in shape: {a.shape} vs {b.shape}")
    return a, b


def _steps(steps):
    steps = int(steps)
    if steps < 2:
        raise UsageError(f"steps must be at least 2, got {steps}")
    return steps


def lerp(z0, z1, steps):
    """(steps, *z0.shape): straight line from z0 to z1, both ends included."""
    a, b = _pair(z0, z1)
    t = np.linspace(0.0, 1.0, _steps(steps)).reshape((-1,) + (1,) * a.ndim)
    out = (1.0 - t) * a + t * b
    out[0], out[-1] = a, b
    return out


def slerp(z0, z1, steps):
    """(steps, *z0.shape): spherical interpolation (Shoemake), both ends
    included; for endpoints of equal norm every point keeps that norm.
    Nearly parallel or antiparallel endpoints (no unique great circle)
    fall back to ``lerp``."""
    a, b = _pair(z0, z1)
    steps = _steps(steps)
    fa, fb = a.reshape(-1), b.reshape(-1)
    na, nb = np.linalg.norm(fa), np.linalg.norm(fb)
    if na == 0 or nb == 0:
        return lerp(a, b, steps)
    omega = np.arccos(np.clip(fa @ fb / (na * nb), -1.0, 1.0))
    so = np.sin(omega)
    if so < 1e-6:
        return lerp(a, b, steps)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    out = (np.sin((1.0 - t) * omega) / so) * fa + (np.sin(t * omega) / so) * fb
    out = out.reshape((steps,) + a.shape)
    out[0], out[-1] = a, b
    return out


def great_circle(z0, z1, steps):
    """(steps, *z0.shape): one full turn round the great circle through z0
    and the direction of z1, at the norm of z0, starting at z0 and stopping
    one step short of it so that a looping GIF has no repeated frame.
    (The loop passes through z1 scaled to the norm of z0.)"""
    a, b = _pair(z0, z1)
    steps = _steps(steps)
    fa, fb = a.reshape(-1), b.reshape(-1)
    r = np.linalg.norm(fa)
    if r == 0 or fa.size < 2:
        raise UsageError("great_circle needs a nonzero z0 with at least 2 dimensions")
    u = fa / r
    v = fb - (fb @ u) * u
    if np.linalg.norm(v) < 1e-9 * max(1.0, np.linalg.norm(fb)):
        # z1 parallel to z0: any perpendicular direction gives a great circle
        e = np.zeros_like(u)
        e[np.argmin(np.abs(u))] = 1.0
        v = e - (e @ u) * u
    v /= np.linalg.norm(v)
    theta = 2.0 * np.pi * np.arange(steps)[:, None] / steps
    out = r * (np.cos(theta) * u + np.sin(theta) * v)
    out = out.reshape((steps,) + a.shape)
    out[0] = a
    return out


def _tick_label(v):
    if isinstance(v, (float, np.floating)):
        return f"{v:.3g}"
    return str(v)


def _mosaic(u8):
    """(R, C, H, W, ch) -> (R*H, C*W, ch), cells edge to edge, row 0 on top."""
    R, C, H, W, ch = u8.shape
    return u8.transpose(0, 2, 1, 3, 4).reshape(R * H, C * W, ch)


def save_table(images, path, row_values, col_values, value_range=(0.0, 1.0),
               xlabel="z1", ylabel="z2", title=None):
    """An R x C table of images (R, C, H, W, ch) drawn edge to edge as one
    picture whose axis ticks mark each row/column with its value (the
    latent grid of a 2-D VAE: columns z1, rows z2; row 0 is at the top)."""
    a = np.asarray(images)
    if a.ndim == 4:
        a = a[..., None]
    if a.ndim != 5 or a.shape[-1] not in (1, 3) or 0 in a.shape[:2]:
        raise UsageError(f"table images must be (R, C, H, W, ch), got shape {a.shape}")
    R, C, H, W, ch = a.shape
    if len(row_values) != R or len(col_values) != C:
        raise UsageError(f"{len(row_values)} row / {len(col_values)} column values "
                         f"for a {R} x {C} table")
    mosaic = _mosaic(to_uint8(a, value_range))
    # show the mosaic at an integer zoom, at least ~360 px on its long side
    zoom = max(1, int(math.ceil(360 / max(R * H, C * W))))
    mosaic = _rgb(_upscale(mosaic, zoom))
    mh, mw = mosaic.shape[:2]

    def every(n):
        return max(1, int(math.ceil(n / 12)))

    rstep, cstep = every(R), every(C)
    rlabels = [_tick_label(row_values[i]) for i in range(0, R, rstep)]
    clabels = [_tick_label(col_values[j]) for j in range(0, C, cstep)]
    tick_h = _text_size("0")[1]
    left = max(_text_size(s)[0] for s in rlabels) + 8 + tick_h + 14
    bottom = tick_h + 8 + tick_h + 12
    top = (_text_size(title, TITLE_SIZE)[1] + 12) if title else 12
    right = max(16, _text_size(clabels[-1])[0] // 2 + 8)
    fw, fh = left + mw + right, top + mh + bottom

    fig = Figure(figsize=(fw / DPI, fh / DPI), dpi=DPI, facecolor="white")
    ax = fig.add_axes([left / fw, bottom / fh, mw / fw, mh / fh])
    ax.imshow(mosaic, interpolation="nearest", extent=(0, C, R, 0), aspect="auto")
    ax.set_xticks(np.arange(0, C, cstep) + 0.5, clabels)
    ax.set_yticks(np.arange(0, R, rstep) + 0.5, rlabels)
    ax.tick_params(labelsize=FONT_SIZE, length=3)
    ax.set_xlabel(xlabel, fontsize=FONT_SIZE)
    ax.set_ylabel(ylabel, fontsize=FONT_SIZE)
    if title:
        ax.set_title(title, fontsize=TITLE_SIZE)
    return _save_figure(fig, path)
