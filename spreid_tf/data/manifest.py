"""Reading a converted dataset folder: only a folder with a manifest counts.

A conversion writes its shards into a temporary sibling folder and renames it into
place with `manifest.json` as the last file written, so a folder without a manifest
is an interrupted or foreign one and is refused here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from spreid_tf.data import schema


class IncompleteConversionError(FileNotFoundError):
    """A converted folder has no manifest, or a shard the manifest lists is missing."""


def load_manifest(converted_dir: os.PathLike | str) -> dict:
    """Loads `<converted_dir>/manifest.json`, checking the schema version.

    Raises:
        IncompleteConversionError: no manifest (an interrupted or foreign folder).
        ValueError: a manifest written with another schema version.
    """
    path = Path(converted_dir) / schema.MANIFEST_FILENAME
    if not path.is_file():
        raise IncompleteConversionError(
            f"{path} not found: {converted_dir} is not a finished conversion "
            "(run datasets/convert.py to convert the benchmark)")
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get("schema_version") != schema.SCHEMA_VERSION:
        raise ValueError(
            f"{path}: schema_version {manifest.get('schema_version')} != "
            f"{schema.SCHEMA_VERSION}; convert the benchmark again with overwrite")
    return manifest


def split_shards(converted_dir: os.PathLike | str, split: str) -> list[Path]:
    """Absolute paths of the shards of `split`, as the manifest lists them (checked to exist)."""
    converted_dir = Path(converted_dir)
    manifest = load_manifest(converted_dir)
    if split not in manifest["splits"]:
        raise KeyError(f"{converted_dir}: no split {split!r}; has {sorted(manifest['splits'])}")
    paths = [converted_dir / name for name in manifest["splits"][split]["shards"]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise IncompleteConversionError(f"{converted_dir}: shards listed in the manifest are missing: {missing}")
    return paths
