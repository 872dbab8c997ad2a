"""Synthetic miniatures of every benchmark's raw on-disk layout.

Each registered dataset has a writer, `MINIATURES[name](root, seed)` (the `write`
function of `synthetic/<reader module>.py`), that draws procedural people
(`people.py`) into the benchmark's real folder names and filename rules, including
the bad files the real data has (a corrupt JPEG, a zero-byte file, a stray
Thumbs.db, a badly named file), and returns the `ExpectedStats` its conversion must
yield. The writers take the benchmark's facts from its reader; readers never import
this package.

    python -m spreid_tf.data.synthetic --output_dir=/tmp/raw   # every miniature

writes `/tmp/raw/<name>/...`; `<name>/` is what that dataset's reader takes as root.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from spreid_tf.data.synthetic import (cuhk01, cuhk02, cuhk03, cuhksysu, dukemtmcreid, lip, market1501, msmt17, pes3d,
                                      prid2011, shinpuhkan, viper)
from spreid_tf.data.synthetic.stats import ExpectedStats, SplitStats

__all__ = ["MINIATURES", "ExpectedStats", "SplitStats", "write_all", "write_benchmark"]

# Registry name (spreid_tf.data.registry.DATASETS) -> `write(root, seed) -> ExpectedStats`.
MINIATURES: dict[str, Callable[..., ExpectedStats]] = {
    "market1501": market1501.write,
    "dukemtmcreid": dukemtmcreid.write,
    "msmt17": msmt17.write,
    "cuhksysu": cuhksysu.write,
    "lip": lip.write,
    "cuhk03": cuhk03.write,
    "cuhk01": cuhk01.write,
    "cuhk02": cuhk02.write,
    "viper": viper.write,
    "prid2011": prid2011.write,
    "3dpes": pes3d.write,
    "shinpuhkan": shinpuhkan.write,
}


def write_benchmark(name: str, root: os.PathLike | str, seed: int = 0) -> ExpectedStats:
    """Writes the miniature of dataset `name` under `root` (the reader's root)."""
    if name not in MINIATURES:
        raise KeyError(f"no miniature of {name!r}; known: {sorted(MINIATURES)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    expected = MINIATURES[name](root, seed)
    if expected.root is None:
        expected.root = str(root)
    return expected


def write_all(root: os.PathLike | str, seed: int = 0, names: list[str] | None = None) -> dict[str, ExpectedStats]:
    """Writes every miniature (or those of `names`) into `root/<name>/`."""
    names = sorted(MINIATURES) if names is None else names
    return {name: write_benchmark(name, Path(root) / name, seed) for name in names}
