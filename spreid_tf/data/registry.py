"""The benchmark registry: one DatasetInfo per converted dataset.

Each reader module (`spreid_tf/data/readers/<name>.py`) calls `register(...)` at
import time; this module imports every module listed in `READER_MODULES`, so
`DATASETS` is complete once `spreid_tf.data.registry` is imported.

    from spreid_tf.data.registry import DATASETS
    result = DATASETS["market1501"].read(Path("/data/market1501"))
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

# The ten benchmarks the paper merges for training (Sec. 4.1), in this order.
MERGED_DATASETS: tuple[str, ...] = (
    "market1501", "dukemtmcreid", "cuhk03", "cuhk01", "cuhk02", "viper",
    "prid2011", "3dpes", "cuhksysu", "shinpuhkan",
)

# Modules that register datasets (relative to spreid_tf.data.readers).
READER_MODULES: list[str] = [
    "market1501",
    "dukemtmcreid",
    "msmt17",
    "cuhksysu",
    "lip",
    "cuhk03",
    "cuhk01",
    "cuhk02",
    "viper",
    "prid2011",
    "pes3d",  # registers "3dpes"
    "shinpuhkan",
]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Facts about one benchmark.

    Attributes:
        name: registry name; also the converted folder's name and `person/dataset`.
        read: `read(root: Path, **options) -> ReadResult`.
        expected_tree: the raw folder tree, drawn as in the reader's docstring.
        write_miniature: `write_miniature(root: Path, seed: int) -> ExpectedStats`;
            writes a miniature of the raw layout under `root`.
        url: where to get the raw data.
        reference: the paper to cite.
        kind: "reid" (re-id Examples) or "parsing" (image + mask Examples).
        splits: the splits the reader returns.
        train_split: the split that gets contiguous training labels ("train");
            None if the dataset has none.
        merge_options: reader options used when the dataset is converted for the
            merged ten-benchmark training set (e.g. {"split": "all"}).
    """

    name: str
    read: Callable[..., Any]
    expected_tree: str
    write_miniature: Callable[..., Any]
    url: str = ""
    reference: str = ""
    kind: str = "reid"
    splits: tuple[str, ...] = ("train", "query", "gallery")
    train_split: str | None = "train"
    merge_options: dict = dataclasses.field(default_factory=dict)


DATASETS: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    """Adds `info` to DATASETS (re-registering the same name replaces it)."""
    if info.kind not in ("reid", "parsing"):
        raise ValueError(f"{info.name}: kind must be 'reid' or 'parsing', got {info.kind!r}")
    DATASETS[info.name] = info
    return info


def get(name: str) -> DatasetInfo:
    """The DatasetInfo named `name`; a KeyError lists the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None


def _import_readers() -> None:
    for module in READER_MODULES:
        importlib.import_module(f"spreid_tf.data.readers.{module}")


_import_readers()
