"""Synthetic miniatures of every benchmark's raw on-disk layout.

Each registered dataset has a writer (`DatasetInfo.write_miniature(root, seed)`) that
draws procedural people (`people.py`) into the benchmark's real folder names and
filename rules, including the bad files the real data has (a corrupt JPEG, a
zero-byte file, a stray Thumbs.db, a badly named file), and returns the
`ExpectedStats` its conversion must yield.

    python -m spreid_tf.data.synthetic --output_dir=/tmp/raw   # every miniature

writes `/tmp/raw/<name>/...`; `<name>/` is what that dataset's reader takes as root.
"""

from __future__ import annotations

import os
from pathlib import Path

from spreid_tf.data.synthetic.stats import ExpectedStats, SplitStats

__all__ = ["ExpectedStats", "SplitStats", "write_all", "write_benchmark"]


def write_benchmark(name: str, root: os.PathLike | str, seed: int = 0) -> ExpectedStats:
    """Writes the miniature of dataset `name` under `root` (the reader's root)."""
    from spreid_tf.data import registry  # imported late: reader modules import this package

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    expected = registry.get(name).write_miniature(root, seed)
    if expected.root is None:
        expected.root = str(root)
    return expected


def write_all(root: os.PathLike | str, seed: int = 0, names: list[str] | None = None) -> dict[str, ExpectedStats]:
    """Writes every registered miniature (or `names`) into `root/<name>/`."""
    from spreid_tf.data import registry

    names = sorted(registry.DATASETS) if names is None else names
    return {name: write_benchmark(name, Path(root) / name, seed) for name in names}
