"""The merged training set: one label space over several converted benchmarks.

SPReID trains on the `train` splits of ten benchmarks at once (registry.MERGED_DATASETS).
Each converted dataset already labels its training ids contiguously from 0 (manifest
`splits.train.label_to_person_id`); the merged label of an image is its dataset's
offset plus that label, so labels are contiguous over all datasets and never collide
(ids are keyed by dataset name, as fast-reid prefixes pids). `label_map.json` is the
only place the number of identities comes from:

    {
      "schema_version": 1,
      "num_identities": 16803,
      "num_images": 110832,
      "datasets": {"market1501": {"offset": 0, "num_ids": 751, "num_images": 12936,
                                  "directory": "market1501",
                                  "train_shards": ["market1501/train-00000-of-00004.tfrecord", ...]},
                   ...},
      "labels": [["market1501", 2], ["market1501", 7], ...]   # label -> (dataset, person id)
    }

Paths are relative to the label map's folder (absolute when on another drive); the
training pipeline adds `offsets[dataset]` to `image/class/label`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from pathlib import Path

from spreid_tf import atomic
from spreid_tf.data import schema
from spreid_tf.data.manifest import load_manifest, split_shards

LABEL_MAP_FILENAME = "label_map.json"


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    """One dataset's place in the merged label space."""

    name: str
    offset: int
    num_ids: int
    num_images: int
    directory: Path
    train_shards: tuple[Path, ...]


@dataclasses.dataclass(frozen=True)
class LabelMap:
    """The merged label space (see the module docstring)."""

    num_identities: int
    datasets: dict[str, DatasetEntry]
    labels: tuple[tuple[str, int], ...]
    path: Path | None = None

    @property
    def label_offsets(self) -> dict[str, int]:
        """dataset name -> offset added to its `image/class/label`."""
        return {name: entry.offset for name, entry in self.datasets.items()}

    @property
    def num_images(self) -> int:
        return sum(entry.num_images for entry in self.datasets.values())

    @property
    def train_shards(self) -> list[Path]:
        """Every dataset's train shards, in label-map order."""
        return [p for entry in self.datasets.values() for p in entry.train_shards]

    def identity(self, label: int) -> tuple[str, int]:
        """(dataset, person id) of a merged label."""
        return self.labels[label]

    def label(self, dataset: str, person_id: int) -> int:
        """Merged label of (dataset, person id); KeyError if not a training id."""
        entry = self.datasets[dataset]
        for label in range(entry.offset, entry.offset + entry.num_ids):
            if self.labels[label][1] == person_id:
                return label
        raise KeyError(f"{dataset}: person id {person_id} is not a training identity")


def _relative(path: Path, start: Path) -> str:
    try:
        return Path(os.path.relpath(path, start)).as_posix()
    except ValueError:  # another drive
        return str(path.absolute())


def build_label_map(converted_dirs: list[os.PathLike | str], output_path: os.PathLike | str) -> LabelMap:
    """Builds the merged label space of the `train` splits of `converted_dirs`.

    Args:
        converted_dirs: converted dataset folders (each with a manifest), in the order
            their labels are laid out.
        output_path: where to write label_map.json (a folder gets LABEL_MAP_FILENAME).

    Returns:
        The LabelMap (also written to `output_path`).

    Raises:
        ValueError: a dataset twice, a parsing dataset, or one without a train split.
    """
    output_path = Path(output_path)
    if output_path.is_dir() or output_path.suffix != ".json":
        output_path = output_path / LABEL_MAP_FILENAME
    output_path.parent.mkdir(parents=True, exist_ok=True)
    base = output_path.parent.absolute()

    datasets: dict[str, dict] = {}
    labels: list[list] = []
    for directory in converted_dirs:
        directory = Path(directory)
        manifest = load_manifest(directory)
        name = manifest.dataset
        if name in datasets:
            raise ValueError(f"{name} given twice ({directory})")
        if manifest.kind != "reid" or "train" not in manifest.splits:
            raise ValueError(f"{directory}: not a re-id conversion with a train split")
        train = manifest.splits["train"]
        person_ids = train.label_to_person_id
        shards = split_shards(directory, "train")
        datasets[name] = {
            "offset": len(labels),
            "num_ids": len(person_ids),
            "num_images": train.num_images,
            "directory": _relative(directory.absolute(), base),
            "train_shards": [_relative(p.absolute(), base) for p in shards],
        }
        labels.extend([name, int(pid)] for pid in person_ids)

    document = {
        "schema_version": schema.SCHEMA_VERSION,
        "num_identities": len(labels),
        "num_images": sum(d["num_images"] for d in datasets.values()),
        "datasets": datasets,
        "labels": labels,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic.write_text(output_path, json.dumps(document, indent=1))
    return load_label_map(output_path)


def load_label_map(path: os.PathLike | str) -> LabelMap:
    """Loads label_map.json (a folder gets LABEL_MAP_FILENAME); paths come back absolute."""
    path = Path(path)
    if path.is_dir():
        path = path / LABEL_MAP_FILENAME
    with open(path) as f:
        document = json.load(f)
    if document.get("schema_version") != schema.SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {document.get('schema_version')} != {schema.SCHEMA_VERSION}")
    base = path.parent.absolute()
    datasets = {
        name: DatasetEntry(
            name=name, offset=d["offset"], num_ids=d["num_ids"], num_images=d["num_images"],
            directory=(base / d["directory"]).resolve(),
            train_shards=tuple((base / p).resolve() for p in d["train_shards"]))
        for name, d in document["datasets"].items()
    }
    labels = tuple((dataset, int(pid)) for dataset, pid in document["labels"])
    if document["num_identities"] != len(labels):
        raise ValueError(f"{path}: num_identities {document['num_identities']} != {len(labels)} labels")
    return LabelMap(num_identities=document["num_identities"], datasets=datasets, labels=labels, path=path)
