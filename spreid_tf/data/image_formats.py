"""Encoded image formats: telling them apart by their first bytes, and TensorFlow's decoder errors
in a user's words. One table for the converter (which stores JPEG and PNG, and turns BMP
into PNG) and the SavedModel's in-graph check (every format `tf.io.decode_image` reads).
"""

from __future__ import annotations

import re

# Leading bytes of the formats tf.io.decode_image reads; WebP is RIFF....WEBP (see `sniff_format`).
MAGIC: dict[str, tuple[bytes, ...]] = {
    "jpeg": (b"\xff\xd8\xff",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "gif": (b"GIF87a", b"GIF89a"),
    "bmp": (b"BM",),
    "jpeg_xl": (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n"),
}
WEBP_RIFF, WEBP_TAG = b"RIFF", b"WEBP"  # bytes 0-3 and 8-11


def sniff_format(data: bytes) -> str | None:
    """"jpeg", "png", "gif", "bmp", "jpeg_xl" or "webp" from the first bytes, or None."""
    for name, prefixes in MAGIC.items():
        if data.startswith(prefixes):
            return name
    if data[:4] == WEBP_RIFF and data[8:12] == WEBP_TAG:
        return "webp"
    return None


def decoder_message(error: BaseException) -> str:
    """A TensorFlow decoder error in one line: its own words, without `{{function_node ...}}`
    prefixes, `[[...]]` node lists or the `[Op:DecodeImage] name:` suffix of eager errors."""
    text = getattr(error, "message", None) or str(error)
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)
    # Graph errors open with "Graph execution error:" and list nodes in [[...]]: not the cause.
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith(("[[", "Detected at node"))
             and line.strip() != "Graph execution error:"]
    detail = lines[0] if lines else type(error).__name__
    return re.sub(r"\s*\[Op:\w+\](\s*name:\s*\S*)?\s*$", "", detail) or type(error).__name__
