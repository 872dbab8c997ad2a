"""What a training run reads: shard lists, label offsets and identity counts from the data.

The number of identities of a re-id run is read here, never configured: from the
merged `label_map.json` (phase 1, several benchmarks) or from the converted
dataset's manifest (`splits.train.label_to_person_id`, phase 2), or, for a `tfds:` source
(a TensorFlow Datasets build of `spreid_tf.data.tfds`), from its ClassLabel.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from spreid_tf.data import merge, tfds_source
from spreid_tf.data.manifest import load_manifest, split_shards


@dataclasses.dataclass(frozen=True)
class ReidData:
    """A re-id training set.

    Attributes:
        train_files: TFRecord shards of the training images, or one `tfds:` source (its train split).
        num_identities: training identities (the classifier width).
        num_images: training images.
        label_offsets: dataset -> label offset (merged data), or None (one dataset).
        eval_dir: the converted folder holding "query" and "gallery" splits, or None (also for a
            `tfds:` source: the evaluation reads conversions).
        name: dataset name, or "merged".
    """

    train_files: tuple[str, ...]
    num_identities: int
    num_images: int
    label_offsets: dict[str, int] | None
    eval_dir: str | None
    name: str


def resolve_reid_data(path: os.PathLike | str, what: str = "training data") -> ReidData:
    """Reads a converted dataset folder or a merged label map (file or folder).

    `what` names the path in messages (a command line passes its flag, `--train_data`).

    Raises:
        FileNotFoundError: `path` is neither (the message says what was expected).
        ValueError: the folder is not a re-id conversion with a train split.
    """
    if tfds_source.is_tfds_source(path):
        return _reid_data_from_tfds(str(path), what)
    path = Path(path)
    label_map_path = path if path.suffix == ".json" else path / merge.LABEL_MAP_FILENAME
    if label_map_path.is_file():
        label_map = merge.load_label_map(label_map_path)
        return ReidData(
            train_files=tuple(str(p) for p in label_map.train_shards),
            num_identities=label_map.num_identities,
            num_images=label_map.num_images,
            label_offsets=label_map.label_offsets,
            eval_dir=None,
            name="merged",
        )
    if not path.is_dir():
        raise FileNotFoundError(
            f"{what}={str(path)!r} not found: expected a converted dataset folder (with manifest.json) or a "
            f"merged {merge.LABEL_MAP_FILENAME} (datasets/convert.py writes both; `python -m spreid_tf.demo "
            f"--workdir=DIR --data_only` writes the synthetic demo's to DIR/tfrecords)")
    manifest = load_manifest(path)
    if manifest.kind != "reid" or "train" not in manifest.splits:
        raise ValueError(f"{path}: not a re-id conversion with a train split "
                         f"(kind {manifest.kind!r}, splits {sorted(manifest.splits)})")
    train = manifest.splits["train"]
    has_eval = "query" in manifest.splits and "gallery" in manifest.splits
    return ReidData(
        train_files=tuple(str(p) for p in split_shards(path, "train")),
        num_identities=len(train.label_to_person_id),
        num_images=train.num_images,
        label_offsets=None,
        eval_dir=str(path) if has_eval else None,
        name=manifest.dataset,
    )


def _reid_data_from_tfds(text: str, what: str) -> ReidData:
    source = tfds_source.parse_tfds_source(text, what)
    split = source.split or "train"
    facts = tfds_source.builders_module(f"{what}={text}").built_facts(source.name, source.data_dir, f"{what}={text}")
    if facts.kind != "reid" or split not in facts.num_images:
        raise ValueError(f"{what}={text}: not a re-id dataset with a {split!r} split "
                         f"(kind {facts.kind!r}, splits {sorted(facts.num_images)})")
    return ReidData(
        train_files=(source.with_split(split).text(),),
        num_identities=facts.num_identities,
        num_images=facts.num_images[split],
        label_offsets=None,
        eval_dir=None,
        name=facts.dataset,
    )


@dataclasses.dataclass(frozen=True)
class ParsingData:
    """A converted LIP folder: train shards and, if converted, val shards."""

    train_files: tuple[str, ...]
    val_files: tuple[str, ...]
    num_images: int


def resolve_parsing_data(path: os.PathLike | str, what: str = "parsing data") -> ParsingData:
    """Reads a converted parsing dataset (LIP) folder or a `tfds:` source (`what` names it in messages)."""
    if tfds_source.is_tfds_source(path):
        return _parsing_data_from_tfds(str(path), what)
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what}={str(path)!r} not found: expected the converted LIP folder (with "
                                "manifest.json; see datasets/convert.py; `python -m spreid_tf.demo --workdir=DIR "
                                "--data_only` writes the synthetic demo's to DIR/tfrecords/lip)")
    manifest = load_manifest(path)
    if manifest.kind != "parsing" or "train" not in manifest.splits:
        raise ValueError(f"{path}: not a parsing conversion with a train split "
                         f"(kind {manifest.kind!r}, splits {sorted(manifest.splits)})")
    val = tuple(str(p) for p in split_shards(path, "val")) if "val" in manifest.splits else ()
    return ParsingData(
        train_files=tuple(str(p) for p in split_shards(path, "train")),
        val_files=val,
        num_images=manifest.splits["train"].num_images,
    )


def _parsing_data_from_tfds(text: str, what: str) -> ParsingData:
    source = tfds_source.parse_tfds_source(text, what)
    facts = tfds_source.builders_module(f"{what}={text}").built_facts(source.name, source.data_dir, f"{what}={text}")
    if facts.kind != "parsing" or "train" not in facts.num_images:
        raise ValueError(f"{what}={text}: not a parsing dataset with a train split "
                         f"(kind {facts.kind!r}, splits {sorted(facts.num_images)})")
    return ParsingData(
        train_files=(source.with_split(source.split or "train").text(),),
        val_files=(source.with_split("val").text(),) if "val" in facts.num_images else (),
        num_images=facts.num_images[source.split or "train"],
    )
