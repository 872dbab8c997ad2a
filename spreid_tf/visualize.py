"""Pictures for evaluation reports: CMC curves, ranked lists, parsing overlays (OpenCV only).

All functions take and return RGB uint8 arrays; `write_png` writes one atomically.
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
# The colours LIP's own visualisations use, one per label.
LIP_PALETTE = np.array([
    (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0), (0, 0, 85),
    (0, 119, 221), (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 255),
    (51, 170, 221), (0, 255, 255), (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0),
], np.uint8)
assert len(LIP_PALETTE) == lip.NUM_CLASSES


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Writes an RGB uint8 image as PNG, atomically (temporary file, then rename)."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.asarray(image, np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode a PNG for {path} from an array of shape {np.shape(image)}")
    atomic.write_bytes(path, encoded.tobytes())


def _text(canvas, text, origin, scale=0.45, colour=(0, 0, 0), thickness=1):
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def draw_cmc(curves: Mapping[str, Sequence[float]], max_rank: int = 20,
             size: tuple[int, int] = (480, 640), title: str = "CMC") -> np.ndarray:
    """Plots CMC curves (matching rate in [0, 1] per rank, rank 1 first) as an RGB image."""
    if not curves:
        raise ValueError("draw_cmc needs at least one curve")
    height, width = size
    canvas = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 60, width - 20, 40, height - 50
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
        _text(canvas, f"{tick * 100:.0f}%", (8, y + 4), 0.4)
    for rank in range(1, ranks + 1):
        if rank == 1 or rank % 5 == 0:
            x, _ = to_px(rank, y_min)
            _text(canvas, str(rank), (x - 5, bottom + 18), 0.4)
    cv2.rectangle(canvas, (left, top), (right, bottom), (0, 0, 0), 1)
    _text(canvas, "rank", ((left + right) // 2 - 15, height - 12))
    _text(canvas, title, (left, 25), 0.55)
    for i, (name, curve) in enumerate(curves.items()):
        colour = _LINE_COLOURS[i % len(_LINE_COLOURS)]
        values = np.asarray(curve, np.float64)[:ranks]
        points = np.array([to_px(r + 1, v) for r, v in enumerate(values)], np.int32)
        cv2.polylines(canvas, [points], False, colour, 2, cv2.LINE_AA)
        legend_y = bottom - 15 - 18 * (len(curves) - 1 - i)
        cv2.line(canvas, (right - 200, legend_y - 4), (right - 180, legend_y - 4), colour, 2)
        _text(canvas, f"{name}: r1 {values[0] * 100:.1f}%", (right - 175, legend_y), 0.4)
    return canvas


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    image = np.asarray(image, np.uint8)
    width = max(1, int(round(image.shape[1] * height / image.shape[0])))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def ranked_list(query: np.ndarray, gallery: Sequence[np.ndarray], correct: Sequence[bool | None],
                height: int = 128, border: int = 4, gap: int = 6, caption: str = "") -> np.ndarray:
    """Query then its top-k gallery images, with green (right) / red (wrong) / grey (unscored) borders."""
    if len(gallery) != len(correct):
        raise ValueError(f"ranked_list: {len(gallery)} gallery images but {len(correct)} correctness flags")
    tiles = [cv2.copyMakeBorder(_fit_height(query, height), border, border, border, border,
                                cv2.BORDER_CONSTANT, value=(0, 0, 0))]
    for image, ok in zip(gallery, correct):
        colour = GREY if ok is None else (GREEN if ok else RED)
        tiles.append(cv2.copyMakeBorder(_fit_height(image, height), border, border, border, border,
                                        cv2.BORDER_CONSTANT, value=colour))
    top = 18 if caption else 0  # a caption gets its own row above the rank numbers
    caption_h = top + 22
    width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) + 1) + gap * 2
    canvas = np.full((height + 2 * border + caption_h + 2 * gap, width, 3), 255, np.uint8)
    if caption:
        _text(canvas, caption, (gap, 13), 0.4)
    x = gap
    for i, tile in enumerate(tiles):
        canvas[caption_h + gap:caption_h + gap + tile.shape[0], x:x + tile.shape[1]] = tile
        _text(canvas, "query" if i == 0 else str(i), (x + 2, caption_h - 6), 0.4)
        x += tile.shape[1] + gap + (gap * 2 if i == 0 else 0)
    return canvas


def colour_labels(labels: np.ndarray) -> np.ndarray:
    """LIP label map `(H, W)` -> RGB with LIP's palette (ignored/unknown labels black)."""
    labels = np.asarray(labels)
    safe = np.where((labels >= 0) & (labels < lip.NUM_CLASSES), labels, 0).astype(np.int64)
    return LIP_PALETTE[safe]


def parsing_figure(image: np.ndarray, maps: np.ndarray, labels: np.ndarray | None = None,
                   height: int = 192) -> np.ndarray:
    """The paper's Figure 2: the image, its LIP labels, then the five SPReID maps as overlays.

    Args:
        image: `(H, W, 3)` RGB uint8.
        maps: `(h, w, 5)` grouped maps in `lip.GROUP_NAMES` order (any grid; resized).
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
        heat = np.clip(heat / max(float(heat.max()), 1e-6), 0, 1)
        coloured = cv2.cvtColor(cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET),
                                cv2.COLOR_BGR2RGB)
        panels.append((0.45 * base + 0.55 * coloured).astype(np.uint8))
    names = ["image"] + (["labels"] if labels is not None else []) + list(lip.GROUP_NAMES)
    gap, caption_h = 4, 16
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) + 1)
    canvas = np.full((height + caption_h + 2 * gap, width, 3), 255, np.uint8)
    x = gap
    for name, panel in zip(names, panels):
        canvas[caption_h + gap:caption_h + gap + height, x:x + panel.shape[1]] = panel
        _text(canvas, name.replace("_", " ")[:10], (x, caption_h - 3), 0.33)
        x += panel.shape[1] + gap
    return canvas
