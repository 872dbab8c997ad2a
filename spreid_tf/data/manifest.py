"""The manifest of a converted dataset folder: written and read here only, as a typed record.

A conversion writes its shards into a temporary sibling folder and renames it into
place with `manifest.json` as the last file written, so a folder without a manifest
is an interrupted or foreign one and is refused here. A manifest of another schema
version is refused with the command that converts the benchmark again.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from spreid_tf.data import schema


class IncompleteConversionError(FileNotFoundError):
    """A converted folder has no manifest, or a shard the manifest lists is missing."""


@dataclasses.dataclass(frozen=True)
class SplitEntry:
    """One split of a conversion.

    Attributes:
        num_images: records written.
        shards: shard file names, relative to the converted folder.
        num_ids, num_cameras: re-id splits only.
        label_to_person_id: the train split of a re-id dataset: training label -> person id.
        num_transcoded_to_png: images stored as PNG because their format (BMP) is not stored.
    """

    num_images: int
    shards: tuple[str, ...]
    num_ids: int | None = None
    num_cameras: int | None = None
    label_to_person_id: tuple[int, ...] | None = None
    num_transcoded_to_png: int = 0


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What a conversion holds and how it was made (`<converted_dir>/manifest.json`).

    Attributes:
        dataset: registry name; also the folder's name.
        kind: "reid" or "parsing".
        protocol: how its query/gallery is scored (`dataset_info.PROTOCOLS`).
        splits: split name -> SplitEntry.
        source_root, reader_options: what was converted, with which reader options.
        skipped: [{"relpath", "reason", "split"}] of the files left out.
        skipped_by_reason: count per reason.
        info: the reader's facts about the conversion (protocol details, junk counts, ...).
        url, reference: where the benchmark comes from and the paper to cite.
        created, converter: when and by which spreid_tf version.
        schema_version: `schema.SCHEMA_VERSION` of the writer.
    """

    dataset: str
    kind: str
    protocol: str
    splits: dict[str, SplitEntry]
    source_root: str
    reader_options: dict[str, Any]
    skipped: tuple[dict, ...]
    skipped_by_reason: dict[str, int]
    info: dict[str, Any]
    url: str
    reference: str
    created: str
    converter: str
    schema_version: int = schema.SCHEMA_VERSION

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def to_json(self) -> dict:
        """The manifest.json document (entries without a value are left out)."""
        document = dataclasses.asdict(self)
        document["splits"] = {name: {k: v for k, v in dataclasses.asdict(entry).items()
                                     if v is not None and not (k == "num_transcoded_to_png" and v == 0)}
                              for name, entry in self.splits.items()}
        document["num_skipped"] = self.num_skipped
        return json.loads(json.dumps(document))

    @classmethod
    def from_json(cls, document: dict) -> "Manifest":
        values = {f.name: document[f.name] for f in dataclasses.fields(cls) if f.name in document}
        values["splits"] = {
            name: SplitEntry(**{**entry, "shards": tuple(entry["shards"]),
                                "label_to_person_id": (tuple(entry["label_to_person_id"])
                                                       if entry.get("label_to_person_id") is not None else None)})
            for name, entry in document["splits"].items()}
        values["skipped"] = tuple(document.get("skipped", ()))
        return cls(**values)


def write_manifest(converted_dir: os.PathLike | str, manifest: Manifest) -> Path:
    """Writes `<converted_dir>/manifest.json` (temporary file, then rename: the last file of a conversion)."""
    path = Path(converted_dir) / schema.MANIFEST_FILENAME
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(manifest.to_json(), f, indent=1)
    os.replace(tmp, path)
    return path


def reconvert_command(document: dict, converted_dir: os.PathLike | str) -> str:
    """The command that converts the same benchmark again, from an old manifest's facts."""
    options = " ".join(f"--reader_option={k}={json.dumps(v)}" for k, v in (document.get("reader_options") or {}).items())
    return (f"python datasets/convert.py --dataset={document.get('dataset', Path(converted_dir).name)} "
            f"--root={document.get('source_root', '<raw folder>')} --output_dir={Path(converted_dir).parent} "
            f"--overwrite {options}").rstrip()


def load_manifest(converted_dir: os.PathLike | str) -> Manifest:
    """Loads `<converted_dir>/manifest.json`, checking the schema version.

    Raises:
        IncompleteConversionError: no manifest (an interrupted or foreign folder).
        ValueError: a manifest written with another schema version (the message gives the
            command that converts the benchmark again).
    """
    path = Path(converted_dir) / schema.MANIFEST_FILENAME
    if not path.is_file():
        raise IncompleteConversionError(
            f"{path} not found: {converted_dir} is not a finished conversion "
            "(run datasets/convert.py to convert the benchmark)")
    with open(path) as f:
        document = json.load(f)
    if document.get("schema_version") != schema.SCHEMA_VERSION:
        raise ValueError(
            f"{path}: written by another spreid_tf (manifest schema {document.get('schema_version')}, this one "
            f"reads {schema.SCHEMA_VERSION}); convert the benchmark again: "
            f"{reconvert_command(document, converted_dir)}")
    return Manifest.from_json(document)


def split_shards(converted_dir: os.PathLike | str, split: str) -> list[Path]:
    """Absolute paths of the shards of `split`, as the manifest lists them (checked to exist)."""
    converted_dir = Path(converted_dir)
    manifest = load_manifest(converted_dir)
    if split not in manifest.splits:
        raise KeyError(f"{converted_dir}: no split {split!r}; has {sorted(manifest.splits)}")
    paths = [converted_dir / name for name in manifest.splits[split].shards]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise IncompleteConversionError(f"{converted_dir}: shards listed in the manifest are missing: {missing}")
    return paths
