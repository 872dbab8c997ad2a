"""Writing miniature files: images in the real formats, and the bad files real data has."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from spreid_tf.data.synthetic import people


def encode(rgb: np.ndarray, ext: str) -> bytes:
    """Encodes an RGB (or single-channel) uint8 image as `ext` (".jpg", ".png", ".bmp")."""
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext.lower() in (".jpg", ".jpeg") else []
    ok, buffer = cv2.imencode(ext, image, params)
    if not ok:
        raise ValueError(f"cannot encode {rgb.shape} as {ext}")
    return buffer.tobytes()


def write_bytes(path: os.PathLike | str, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_image(path: os.PathLike | str, rgb: np.ndarray) -> Path:
    """Writes `rgb` in the format of `path`'s suffix."""
    path = Path(path)
    return write_bytes(path, encode(rgb, path.suffix))


def write_person(path: os.PathLike | str, person_seed: int, camera_seed: int, image_seed: int,
                 height: int = 128, width: int = 64) -> Path:
    """Renders a person (people.render) and writes it to `path`."""
    rgb, _ = people.render(person_seed, camera_seed, image_seed, height, width)
    return write_image(path, rgb)


def write_corrupt_jpeg(path: os.PathLike | str, seed: int = 0) -> Path:
    """A JPEG cut off half-way and with garbage in the scan (real crawls have these)."""
    rgb, _ = people.render(seed, seed, seed, 64, 32)
    data = encode(rgb, ".jpg")
    garbage = np.random.default_rng(seed).integers(0, 256, 64, dtype=np.uint8).tobytes()
    return write_bytes(path, data[: len(data) // 2] + garbage)


def write_zero_byte(path: os.PathLike | str) -> Path:
    return write_bytes(path, b"")


def write_thumbs_db(path: os.PathLike | str) -> Path:
    """A Windows thumbnail cache (an OLE2 file header), as Market-1501 ships."""
    return write_bytes(path, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504)
