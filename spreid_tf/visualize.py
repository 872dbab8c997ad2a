"""Pictures for evaluation reports: CMC curves, ranked lists, parsing overlays (OpenCV only).

All functions take and return RGB uint8 arrays; `write_png` writes one atomically.
Camera numbers in pictures are 1-based, as the benchmarks number them; callers pass
the data's 0-based ids and the functions that draw them add one (see `camera_label`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from spreid_tf import atomic, lip

GREEN = (40, 170, 60)
RED = (220, 40, 40)
GREY = (150, 150, 150)
_LINE_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                 (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
_MARKERS = ("circle", "square", "triangle", "diamond", "cross")
# The colours LIP's own visualisations use, one per label.
LIP_PALETTE = np.array([
    (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0), (0, 0, 85),
    (0, 119, 221), (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 255),
    (51, 170, 221), (0, 255, 255), (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0),
], np.uint8)
assert len(LIP_PALETTE) == lip.NUM_CLASSES
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def camera_label(camera_id: int) -> str:
    """The data's 0-based camera id as the benchmarks write it: `cam 1` for id 0."""
    return f"cam {int(camera_id) + 1}"


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Writes an RGB uint8 image as PNG, atomically (temporary file, then rename)."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.asarray(image, np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode a PNG for {path} from an array of shape {np.shape(image)}")
    atomic.write_bytes(path, encoded.tobytes())


def _text(canvas, text, origin, scale=0.45, colour=(0, 0, 0), thickness=1):
    cv2.putText(canvas, text, origin, _FONT, scale, colour, thickness, cv2.LINE_AA)


def _text_width(text: str, scale: float, thickness: int = 1) -> int:
    (width, _), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    return width


def _marker(canvas, centre, kind: str, colour, size: int = 4) -> None:
    x, y = centre
    if kind == "circle":
        cv2.circle(canvas, centre, size, colour, -1, cv2.LINE_AA)
    elif kind == "square":
        cv2.rectangle(canvas, (x - size, y - size), (x + size, y + size), colour, -1)
    elif kind == "triangle":
        points = np.array([(x, y - size - 1), (x - size - 1, y + size), (x + size + 1, y + size)], np.int32)
        cv2.fillPoly(canvas, [points], colour, cv2.LINE_AA)
    elif kind == "diamond":
        points = np.array([(x, y - size - 1), (x + size + 1, y), (x, y + size + 1), (x - size - 1, y)], np.int32)
        cv2.fillPoly(canvas, [points], colour, cv2.LINE_AA)
    else:  # cross
        cv2.line(canvas, (x - size, y - size), (x + size, y + size), colour, 2, cv2.LINE_AA)
        cv2.line(canvas, (x - size, y + size), (x + size, y - size), colour, 2, cv2.LINE_AA)


def draw_cmc(curves: Mapping[str, Sequence[float]], max_rank: int = 20,
             size: tuple[int, int] = (480, 640), title: str = "CMC") -> np.ndarray:
    """Plots CMC curves (matching rate in [0, 1] per rank, rank 1 first) as an RGB image.

    `size` is the plot's (height, width); the legend gets a column of its own on the
    right, as wide as the longest name needs, so it never covers a curve and no name is
    cut. Each curve has its own colour and marker shape, its markers staggered with the
    others' so that curves which coincide stay visible.
    """
    if not curves:
        raise ValueError("draw_cmc needs at least one curve")
    height, plot_width = size
    entries = [f"{name}: rank-1 {float(np.asarray(c, np.float64)[0]) * 100:.1f}%" for name, c in curves.items()]
    legend_width = max(_text_width(e, 0.4) for e in entries) + 45
    width = plot_width + legend_width
    canvas = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 72, plot_width - 10, 40, height - 50
    ranks = min(max_rank, max(len(c) for c in curves.values()))
    low = min(float(np.min(np.asarray(c)[:ranks])) for c in curves.values())
    y_min = max(0.0, np.floor(low * 10) / 10 - 0.1) if ranks > 1 else 0.0

    def to_px(rank, value):
        x = left + (rank - 1) * (right - left) / max(ranks - 1, 1)
        y = bottom - (value - y_min) * (bottom - top) / max(1.0 - y_min, 1e-6)
        return int(round(x)), int(round(y))

    for tick in np.arange(y_min, 1.0001, 0.1):
        _, y = to_px(1, tick)
        cv2.line(canvas, (left, y), (right, y), (230, 230, 230), 1)
        label = f"{tick * 100:.0f}%"
        _text(canvas, label, (left - 6 - _text_width(label, 0.4), y + 4), 0.4)
    for rank in range(1, ranks + 1):
        if rank == 1 or rank % 5 == 0:
            x, _ = to_px(rank, y_min)
            _text(canvas, str(rank), (x - _text_width(str(rank), 0.4) // 2, bottom + 18), 0.4)
    cv2.rectangle(canvas, (left, top), (right, bottom), (0, 0, 0), 1)
    _text(canvas, "rank", ((left + right) // 2 - _text_width("rank", 0.45) // 2, height - 12))
    # The y label, written on its own strip and turned a quarter to read bottom-up.
    y_label = "matching rate"
    strip = np.full((20, _text_width(y_label, 0.45) + 4, 3), 255, np.uint8)
    _text(strip, y_label, (2, 14))
    strip = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
    y0 = (top + bottom) // 2 - strip.shape[0] // 2
    canvas[y0:y0 + strip.shape[0], 4:4 + strip.shape[1]] = strip
    _text(canvas, title, (left, 25), 0.55)
    legend_x = plot_width + 5
    for i, (entry, curve) in enumerate(zip(entries, curves.values())):
        colour = _LINE_COLOURS[i % len(_LINE_COLOURS)]
        marker = _MARKERS[i % len(_MARKERS)]
        values = np.asarray(curve, np.float64)[:ranks]
        points = np.array([to_px(r + 1, v) for r, v in enumerate(values)], np.int32)
        cv2.polylines(canvas, [points], False, colour, 2, cv2.LINE_AA)
        # Markers at every len(curves)-th rank, staggered by curve, so curves that coincide
        # alternate their markers along the shared line instead of hiding one another.
        for point in points[i % len(curves)::len(curves)]:
            _marker(canvas, (int(point[0]), int(point[1])), marker, colour)
        legend_y = top + 12 + 22 * i
        cv2.line(canvas, (legend_x, legend_y - 4), (legend_x + 30, legend_y - 4), colour, 2)
        _marker(canvas, (legend_x + 15, legend_y - 4), marker, colour)
        _text(canvas, entry, (legend_x + 38, legend_y), 0.4)
    return canvas


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    image = np.asarray(image, np.uint8)
    width = max(1, int(round(image.shape[1] * height / image.shape[0])))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def _colour_key(items: Sequence[tuple[tuple[int, int, int], str]], scale: float = 0.4) -> np.ndarray:
    """One row of swatches with their meanings, as an RGB strip."""
    widths = [18 + _text_width(text, scale) + 14 for _, text in items]
    strip = np.full((20, sum(widths) + 4, 3), 255, np.uint8)
    x = 2
    for (colour, text), w in zip(items, widths):
        cv2.rectangle(strip, (x, 5), (x + 12, 15), tuple(int(c) for c in colour), -1)
        _text(strip, text, (x + 16, 15), scale)
        x += w
    return strip


def ranked_list(query: np.ndarray, gallery: Sequence[np.ndarray], correct: Sequence[bool | None],
                height: int = 128, border: int = 4, gap: int = 6, caption: str = "",
                query_lines: Sequence[str] = (), gallery_lines: Sequence[Sequence[str]] | None = None
                ) -> np.ndarray:
    """Query then its top-k gallery images, with green (right) / red (wrong) / grey (unscored) borders.

    `query_lines` and `gallery_lines[i]` are short texts printed under each tile (for
    example the person id, the camera as `camera_label` writes it and the distance); a
    colour key under the tiles says what the borders mean.
    """
    if len(gallery) != len(correct):
        raise ValueError(f"ranked_list: {len(gallery)} gallery images but {len(correct)} correctness flags")
    if gallery_lines is not None and len(gallery_lines) != len(gallery):
        raise ValueError(f"ranked_list: {len(gallery)} gallery images but {len(gallery_lines)} text entries")
    texts = [list(query_lines)] + [list(t) for t in (gallery_lines or [()] * len(gallery))]
    tiles = [cv2.copyMakeBorder(_fit_height(query, height), border, border, border, border,
                                cv2.BORDER_CONSTANT, value=(0, 0, 0))]
    for image, ok in zip(gallery, correct):
        colour = GREY if ok is None else (GREEN if ok else RED)
        tiles.append(cv2.copyMakeBorder(_fit_height(image, height), border, border, border, border,
                                        cv2.BORDER_CONSTANT, value=colour))
    scale, line_h = 0.35, 13
    slots = [max(t.shape[1], *(_text_width(s, scale) + 2 for s in lines)) if lines else t.shape[1]
             for t, lines in zip(tiles, texts)]
    key_items = [(GREEN, "same person"), (RED, "other person")]
    if any(ok is None for ok in correct):
        key_items.append((GREY, "not scored"))
    key = _colour_key(key_items)
    top = 18 if caption else 0  # a caption gets its own row above the rank numbers
    caption_h = top + 22
    text_h = line_h * max(len(t) for t in texts) + (4 if any(texts) else 0)
    tiles_w = sum(slots) + gap * (len(tiles) + 1) + gap * 2
    width = max(tiles_w, key.shape[1] + 2 * gap, _text_width(caption, 0.4) + 2 * gap if caption else 0)
    tile_h = height + 2 * border
    canvas = np.full((caption_h + gap + tile_h + text_h + key.shape[0] + 2 * gap, width, 3), 255, np.uint8)
    if caption:
        _text(canvas, caption, (gap, 13), 0.4)
    x = gap
    for i, (tile, slot, lines) in enumerate(zip(tiles, slots, texts)):
        tx = x + (slot - tile.shape[1]) // 2
        canvas[caption_h + gap:caption_h + gap + tile.shape[0], tx:tx + tile.shape[1]] = tile
        _text(canvas, "query" if i == 0 else str(i), (x + 2, caption_h - 6), 0.4)
        for j, line in enumerate(lines):
            _text(canvas, line, (x + 1, caption_h + gap + tile_h + line_h * (j + 1)), scale)
        x += slot + gap + (gap * 2 if i == 0 else 0)
    y = caption_h + gap + tile_h + text_h + gap
    canvas[y:y + key.shape[0], gap:gap + key.shape[1]] = key
    return canvas


def colour_labels(labels: np.ndarray) -> np.ndarray:
    """LIP label map `(H, W)` -> RGB with LIP's palette (ignored/unknown labels black)."""
    labels = np.asarray(labels)
    safe = np.where((labels >= 0) & (labels < lip.NUM_CLASSES), labels, 0).astype(np.int64)
    return LIP_PALETTE[safe]


def _heat(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB through OpenCV's JET map (0 blue, 1 red), on an absolute scale."""
    scaled = (np.clip(values, 0.0, 1.0) * 255).round().astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def _colour_bar(height: int, width: int = 14) -> np.ndarray:
    """A vertical bar for probabilities 0 (bottom) to 1 (top) with its ticks."""
    inner = height - 12
    values = np.linspace(1.0, 0.0, inner)[:, None].repeat(width, axis=1)
    panel = np.full((height, width + 30, 3), 255, np.uint8)
    panel[6:6 + inner, :width] = _heat(values)
    for value in (1.0, 0.5, 0.0):
        y = 6 + int(round((1.0 - value) * (inner - 1)))
        _text(panel, f"{value:g}", (width + 3, y + 4), 0.33)
    return panel


def parsing_figure(image: np.ndarray, maps: np.ndarray, labels: np.ndarray | None = None,
                   height: int = 192) -> np.ndarray:
    """The paper's Figure 2: the image, its LIP labels, then the five SPReID maps as overlays.

    The maps are probabilities, drawn on one absolute scale (0 blue to 1 red, the colour
    bar on the right) so a flat map looks flat; the label panel has a key naming each
    label that occurs in it.

    Args:
        image: `(H, W, 3)` RGB uint8.
        maps: `(h, w, 5)` grouped maps in `lip.GROUP_NAMES` order, values in [0, 1]
            (any grid; resized).
        labels: optional `(H, W)` LIP label map.
    """
    maps = np.asarray(maps, np.float32)
    if maps.ndim != 3 or maps.shape[-1] != lip.NUM_GROUPS:
        raise ValueError(f"parsing_figure: maps must be (h, w, {lip.NUM_GROUPS}), got {maps.shape}")
    base = _fit_height(image, height)
    size = (base.shape[1], base.shape[0])
    panels = [base]
    if labels is not None:
        panels.append(cv2.resize(colour_labels(labels).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST))
    for k in range(lip.NUM_GROUPS):
        heat = cv2.resize(maps[..., k], size, interpolation=cv2.INTER_LINEAR)
        panels.append((0.45 * base + 0.55 * _heat(heat)).astype(np.uint8))
    names = ["image"] + (["labels"] if labels is not None else []) + list(lip.GROUP_NAMES)
    panels.append(_colour_bar(height))
    names.append("probability")
    key = None
    if labels is not None:
        present = [int(v) for v in np.unique(labels) if 0 <= v < lip.NUM_CLASSES]
        key = _label_key(present, height)
    gap, caption_h = 4, 16
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) + 1) + (key.shape[1] + gap if key is not None else 0)
    canvas = np.full((height + caption_h + 2 * gap, width, 3), 255, np.uint8)
    x = gap
    for name, panel in zip(names, panels):
        canvas[caption_h + gap:caption_h + gap + height, x:x + panel.shape[1]] = panel
        _text(canvas, name.replace("_", " "), (x, caption_h - 3), 0.33)
        x += panel.shape[1] + gap
    if key is not None:
        canvas[caption_h + gap:caption_h + gap + key.shape[0], x:x + key.shape[1]] = key
    return canvas


def _label_key(labels: Sequence[int], height: int, scale: float = 0.33, row: int = 12) -> np.ndarray:
    """Swatches and names of `labels`, in columns of at most `height` pixels."""
    per_column = max(1, height // row)
    columns = [labels[i:i + per_column] for i in range(0, len(labels), per_column)] or [[]]
    widths = [max((_text_width(lip.LABEL_NAMES[v], scale) for v in col), default=0) + 22 for col in columns]
    key = np.full((height, sum(widths), 3), 255, np.uint8)
    x = 0
    for col, w in zip(columns, widths):
        for j, value in enumerate(col):
            y = j * row
            cv2.rectangle(key, (x + 2, y + 2), (x + 12, y + 10), tuple(int(c) for c in LIP_PALETTE[value]), -1)
            cv2.rectangle(key, (x + 2, y + 2), (x + 12, y + 10), (120, 120, 120), 1)
            _text(key, lip.LABEL_NAMES[value], (x + 16, y + 10), scale)
        x += w
    return key
