"""TensorFlow Datasets builders for every benchmark the converters read (optional extra `tfds`).

Importing this module registers one builder per registry entry, named `spreid_<name>`
(spreid_market1501, spreid_dukemtmcreid, spreid_msmt17, spreid_cuhksysu, spreid_lip,
spreid_cuhk03, spreid_cuhk01, spreid_cuhk02, spreid_viper, spreid_prid2011, spreid_3dpes,
spreid_shinpuhkan). The raw data cannot be downloaded by TFDS: as for TFDS's other manual
datasets, `manual_dir` is the raw benchmark folder (what the reader takes as root).

    import tensorflow_datasets as tfds
from etils import epath
    import spreid_tf.data.tfds  # registers the builders

    builder = tfds.builder("spreid_cuhk03/labeled_classic0", data_dir="/data/tfds")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="/data/raw/cuhk03"))
    train = builder.as_dataset(split="train")          # or tfds.load(..., download=False)

What a build holds, and how it relates to `datasets/convert.py`:
- The same records: the builders call the registry's readers (no second parser of file
  names) and the converter's image check (`convert.check_record`: zero-byte, unknown
  format, corrupt, missing, unreadable files and bad LIP masks are skipped with the
  converter's reasons), so each split has the images a conversion of the same raw folder
  has. The skipped files and reasons are in `info.metadata["skipped"]`.
- The original encoded bytes. `image` is a `tfds.features.Image` given the file's bytes,
  which TFDS stores unchanged (it re-encodes only numpy arrays): a TFDS user gets decoded
  uint8 images as from any image dataset, and `decoders={"image": tfds.decode.SkipDecoding()}`
  gives the JPEG/PNG bytes the converter stores (BMP turned into PNG, as there), which is
  how `spreid_tf.data.pipelines` reads a `tfds:` source, so it decodes and resizes exactly as
  from the TFRecords. `image/format` says which format the bytes are.
- Re-id features: `label`, a ClassLabel over the training identities (contiguous, in person-id
  order over the train split's valid images, as the converter labels them; -1 in query and
  gallery, TFDS's "no label"); `person_id` (the benchmark's own id, 0 = distractor where the
  benchmark has them); `camera_id` (0-based); `image/filename` (relative to the raw root);
  `is_distractor` (the benchmark's distractor id, Market-1501's 0000). Junk images (Market-1501's
  -1) are left out, as the reader leaves them out; their count is in the metadata.
- LIP: `image` and `segmentation_mask` (the single-channel label PNG, stored unchanged).
- `info.metadata`: the dataset's registry name, the evaluation protocol the converter would
  write into the manifest, the reader's options and facts (`reader_info`: junk and
  distractor counts, CUHK03's splits, ...), the skipped files and counts per reason, and
  `empty_splits`: splits without a valid image (the "all" configs' query and gallery), which
  TFDS cannot hold and the build leaves out (the converter writes them empty).
- Citation, homepage, description and the raw layout come from the registry's DatasetInfo.

Beam: the builders write through Apache Beam when `download_and_prepare` is given a
`DownloadConfig` with `beam_runner` or `beam_options` (e.g. `beam_runner="DirectRunner"` on one machine):
workers then read the image files and encode and write the examples. The reader and the
image check run once in the driver first, because the contiguous training labels depend on
which images pass the check (as in the converter).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any, Iterator

import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from spreid_tf.data import convert, registry, schema
from spreid_tf.data.dataset_info import DatasetInfo
from spreid_tf.data.readers import _protocols, cuhk03
from spreid_tf.data.records import ParsingRecord, Record

logger = logging.getLogger(__name__)

PREFIX = "spreid_"
VERSION = "1.0.0"
RELEASE_NOTES = {VERSION: "First release: the registry's readers and the converter's image check."}


def builder_name(dataset: str) -> str:
    """The TFDS name of registry dataset `dataset` ("market1501" -> "spreid_market1501")."""
    return PREFIX + dataset


# ---------------------------------------------------------------------------- configs


@dataclasses.dataclass(eq=False)
class ReaderConfig(tfds.core.BuilderConfig):
    """A builder config: the reader options it passes (recorded in the metadata)."""

    reader_options: dict = dataclasses.field(default_factory=dict)


def _configs(dataset: str) -> list[ReaderConfig]:
    """The reader's protocols as configs (the first is the default); [] where it has none."""
    if dataset == "cuhk03":
        configs = []
        for image_type in ("labeled", "detected"):
            for k in range(cuhk03.NUM_CLASSIC_SPLITS):
                configs.append(ReaderConfig(
                    name=f"{image_type}_classic{k}",
                    description=f"{image_type} images, classic protocol (1,367 train / 100 test ids), split {k}",
                    reader_options={"protocol": "classic", "image_type": image_type, "split_index": k}))
            configs.append(ReaderConfig(
                name=f"{image_type}_767_700",
                description=f"{image_type} images, the 767/700 protocol of Zhong et al. (CVPR 2017)",
                reader_options={"protocol": "767/700", "image_type": image_type}))
        return configs
    if dataset in ("cuhk01", "viper", "prid2011", "3dpes"):
        return [ReaderConfig(name=f"standard{k}", description=f"the standard protocol, random split {k} of "
                             f"{_protocols.NUM_RANDOM_SPLITS} (seed 0)",
                             reader_options={"split": "standard", "split_index": k})
                for k in range(_protocols.NUM_RANDOM_SPLITS)] + [_all_config()]
    if dataset == "cuhk02":
        return [ReaderConfig(name="standard", description="the standard protocol (the fixed test camera pair)",
                             reader_options={"split": "standard"}), _all_config()]
    if dataset == "msmt17":
        return [ReaderConfig(name="with_val", description="train = list_train + list_val (the reader's default)",
                             reader_options={"include_val": True}),
                ReaderConfig(name="without_val", description="train = list_train alone",
                             reader_options={"include_val": False})]
    return []


def _all_config() -> ReaderConfig:
    return ReaderConfig(name="all", description="every image in train, empty query and gallery (how the merged "
                        "ten-benchmark training set uses it)", reader_options={"split": "all"})


# ------------------------------------------------------------------------ preparation


@dataclasses.dataclass(frozen=True)
class _Item:
    """One example to write: the record, its checked image, its training label."""

    record: Record | ParsingRecord
    image: convert.CheckedImage  # bytes kept only where they cannot be read again (as the converter)
    label: int
    is_distractor: bool


@dataclasses.dataclass
class _Prepared:
    splits: dict[str, list[_Item]]
    label_to_person_id: list[int]
    metadata: dict[str, Any]


def _prepare(info: DatasetInfo, root: Path, reader_options: dict[str, Any]) -> _Prepared:
    """Reads `root` with the dataset's reader and checks every image as the converter does."""
    result = info.read(root, **reader_options)
    missing = [s for s in info.splits if s not in result.splits]
    if missing:
        raise ValueError(f"{info.name}: reader returned splits {sorted(result.splits)}, missing {missing}")
    skipped = [{"relpath": s.relpath, "reason": s.reason, "split": None} for s in result.skipped]
    distractor_pid = result.info.get("distractor_pid")
    valid: dict[str, list[tuple[Record | ParsingRecord, convert.CheckedImage]]] = {}
    for split, records in result.splits.items():
        valid[split] = []
        for i, record in enumerate(records):
            try:
                image = convert.check_record(record)  # the converter's one skip rule
            except convert.BadImageError as e:
                logger.warning("%s/%s: skipping %s (%s)", info.name, split, record.relpath, e.reason)
                skipped.append({"relpath": record.relpath, "reason": e.reason, "split": split})
                continue
            keep = image.transcoded or getattr(record, "image_bytes", None) is not None
            valid[split].append((record, image if keep else dataclasses.replace(image, encoded=b"")))
            if (i + 1) % 1000 == 0:
                logger.info("%s/%s: checked %d/%d images", info.name, split, i + 1, len(records))
    person_ids: list[int] = []
    if info.kind == "reid" and info.train_split in valid:
        person_ids = sorted({record.person_id for record, _ in valid[info.train_split]})
    labels = {pid: label for label, pid in enumerate(person_ids)}
    splits = {
        split: [_Item(record, image,
                      labels[record.person_id] if split == info.train_split and info.kind == "reid" else -1,
                      info.kind == "reid" and distractor_pid is not None and record.person_id == distractor_pid)
                for record, image in items]
        for split, items in valid.items()}
    by_reason: dict[str, int] = {}
    for s in skipped:
        key = s["reason"].split(":")[0]
        by_reason[key] = by_reason.get(key, 0) + 1
    metadata = {"dataset": info.name, "kind": info.kind, "protocol": info.protocol(result.info),
                "reader_options": reader_options, "reader_info": result.info, "skipped": skipped,
                "skipped_by_reason": by_reason, "reference": info.reference,
                "label_to_person_id": person_ids}
    return _Prepared(splits=splits, label_to_person_id=person_ids, metadata=metadata)


def _encoded(item: _Item) -> bytes:
    """The bytes to store: kept ones, or the file read again (checked unchanged since the check)."""
    if item.image.encoded:
        return item.image.encoded
    data = Path(item.record.path).read_bytes()
    if len(data) != item.image.num_source_bytes:
        raise RuntimeError(f"{item.record.path} changed size since it was checked")
    return data


def _example(kind: str, item: _Item) -> tuple[str, dict[str, Any]]:
    """(key, features) of one item; a module-level function so Beam workers can run it."""
    record, image = item.record, item.image
    example: dict[str, Any] = {
        "image": _encoded(item),
        "image/filename": record.relpath,
        "image/format": image.image_format,
        "image/height": image.height,
        "image/width": image.width,
    }
    if kind == "parsing":
        example["segmentation_mask"] = Path(record.mask_path).read_bytes()
        example["segmentation_mask/filename"] = record.mask_relpath
    else:
        example.update({"label": item.label, "person_id": record.person_id, "camera_id": record.camera_id,
                        "is_distractor": item.is_distractor})
    return record.relpath, example


# --------------------------------------------------------------------------- builders


class SpreidBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the `spreid_<name>` builders; `DATASET` is the registry's DatasetInfo."""

    DATASET: DatasetInfo
    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = RELEASE_NOTES
    # TFDS 4.9.10 finds a builder's source file through `importlib_resources`, which neither it nor
    # etils >= 1.10 installs on Python >= 3.9 (ModuleNotFoundError at download_and_prepare): name it.
    code_path = epath.Path(__file__)

    def __init__(self, **kwargs: Any):
        self._use_beam = False
        super().__init__(**kwargs)

    def download_and_prepare(self, *, download_dir=None, download_config=None, **kwargs) -> None:
        """TFDS's, noting whether a Beam runner or options were given (then the examples go through Beam)."""
        self._use_beam = bool(download_config is not None
                              and (download_config.beam_runner is not None
                                   or download_config.beam_options is not None))
        return super().download_and_prepare(download_dir=download_dir, download_config=download_config, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        info = self.DATASET
        common = {
            "image": tfds.features.Image(shape=(None, None, 3), doc="The original JPEG/PNG bytes (BMP as PNG)."),
            "image/filename": tfds.features.Text(doc="Path relative to the raw benchmark folder."),
            "image/format": tfds.features.Text(doc="jpeg or png: the format of the stored bytes."),
            "image/height": tfds.features.Scalar(tf.int64),
            "image/width": tfds.features.Scalar(tf.int64),
        }
        if info.kind == "parsing":
            features = {**common,
                        "segmentation_mask": tfds.features.Image(
                            shape=(None, None, 1), encoding_format="png", use_colormap=False,
                            doc="LIP labels 0-19 (255 = ignore), the annotation PNG unchanged."),
                        "segmentation_mask/filename": tfds.features.Text()}
            supervised_keys = ("image", "segmentation_mask")
        else:
            features = {**common,
                        "label": tfds.features.ClassLabel(
                            doc="Training label: contiguous over the train split's identities in person-id "
                                "order (names: the person ids); -1 in query and gallery."),
                        "person_id": tfds.features.Scalar(tf.int64, doc="The benchmark's own person id."),
                        "camera_id": tfds.features.Scalar(tf.int64, doc="0-based camera index."),
                        "is_distractor": tfds.features.Scalar(tf.bool, doc="The benchmark's distractor id "
                                                              "(Market-1501's 0000)."),
                        }
            supervised_keys = ("image", "label")
        return self.dataset_info_from_configs(
            description=_description(info),
            features=tfds.features.FeaturesDict(features),
            supervised_keys=supervised_keys,
            homepage=info.url,
            citation=info.citation,
            metadata=tfds.core.MetadataDict(),
        )

    def _reader_options(self) -> dict[str, Any]:
        config = self.builder_config
        return dict(config.reader_options) if isinstance(config, ReaderConfig) else {}

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        info = self.DATASET
        prepared = _prepare(info, Path(dl_manager.manual_dir), self._reader_options())
        if info.kind == "reid":
            self.info.features["label"].names = [str(pid) for pid in prepared.label_to_person_id]
        self.info.metadata.update(prepared.metadata)
        # TFDS cannot hold an empty split (the converter writes one with no records): left out, and named.
        empty = sorted(split for split, items in prepared.splits.items() if not items)
        if empty:
            logger.warning("%s: no valid images in %s; TFDS holds no empty split, so they are left out",
                           self.name, empty)
        self.info.metadata["empty_splits"] = empty
        return {split: self._generate_examples(items) for split, items in prepared.splits.items() if items}

    def _generate_examples(self, items: list[_Item]) -> Iterator[tuple[str, dict[str, Any]]]:
        kind = self.DATASET.kind
        if self._use_beam:
            beam = tfds.core.lazy_imports.apache_beam
            return beam.Create(items) | beam.Map(lambda item: _example(kind, item))
        return (_example(kind, item) for item in items)


def _description(info: DatasetInfo) -> str:
    """The reader's module docstring (layout, statistics, protocol), as the registry's reader states it."""
    doc = sys.modules[info.read.__module__].__doc__ or info.reference
    return doc.strip()


def _manual_instructions(info: DatasetInfo) -> str:
    tree = "\n".join("    " + line for line in info.expected_tree.strip("\n").splitlines())
    return (f"{info.reference}. Get the raw data from {info.url} (it cannot be downloaded automatically) and "
            f"pass its folder as manual_dir (`tfds build {builder_name(info.name)} --imports=spreid_tf.data.tfds "
            f"--manual_dir=...`, or download_config=tfds.download.DownloadConfig(manual_dir=...)): the "
            f"benchmark's top folder or the folder that holds it:\n{tree}")


def _define_builder(info: DatasetInfo) -> type[SpreidBuilder]:
    name = builder_name(info.name)
    class_name = "Spreid" + "".join(part.capitalize() for part in info.name.split("_"))
    return type(class_name, (SpreidBuilder,), {
        "name": name,
        "__module__": __name__,
        "__doc__": f"TFDS builder `{name}`: {info.reference}.",
        "DATASET": info,
        "BUILDER_CONFIGS": _configs(info.name),
        "MANUAL_DOWNLOAD_INSTRUCTIONS": _manual_instructions(info),
    })


# Registry name -> builder class; defining them registers them with TFDS.
BUILDERS: dict[str, type[SpreidBuilder]] = {name: _define_builder(info) for name, info in registry.DATASETS.items()}


# ----------------------------------------------------------------- reading for pipelines


def prepared_builder(name: str, data_dir: str | None = None,
                     what: str = "a tfds: source") -> tfds.core.DatasetBuilder:
    """The built dataset `name` (TFDS's `name[/config][:version]`) in `data_dir` (None: TFDS's default).

    Nothing is downloaded or prepared here: the dataset must have been built.

    Raises:
        KeyError: no such spreid builder (the message lists them).
        FileNotFoundError: not built in the data_dir (the message says how to build it).
    """
    registered = name.split("/")[0].split(":")[0]
    if registered not in {cls.name for cls in BUILDERS.values()}:
        raise KeyError(f"{what}: {registered!r} is not a spreid_tf TFDS builder; known: "
                       f"{sorted(cls.name for cls in BUILDERS.values())}")
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"{what}: {name} is not built in {builder.data_dir}: build it first from the raw benchmark folder: "
            f"tfds build {name} --imports=spreid_tf.data.tfds --manual_dir=RAW_FOLDER"
            f"{'' if data_dir is None else f' --data_dir={data_dir}'} (BUILD.md)")
    return builder


def _read(name: str, data_dir: str | None, split: str, decoders: dict, what: str, shuffle_files: bool,
          seed: int | None, input_context: tf.distribute.InputContext | None
          ) -> tuple[tf.data.Dataset, tfds.core.DatasetBuilder]:
    builder = prepared_builder(name, data_dir, what)
    read_config = tfds.ReadConfig(shuffle_seed=seed, input_context=input_context)
    try:
        ds = builder.as_dataset(split=split, decoders=decoders, shuffle_files=shuffle_files,
                                read_config=read_config)
    except (KeyError, ValueError) as e:
        raise ValueError(f"{what}: no split {split!r} in {name} (has {sorted(builder.info.splits)}): "
                         f"{e}") from None
    return ds, builder


def _image_keys(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """The image features of a TFDS example under the TFRecord schema's keys (bytes as stored)."""
    return {
        schema.IMAGE_ENCODED: example["image"],
        schema.IMAGE_FORMAT: example["image/format"],
        schema.IMAGE_HEIGHT: example["image/height"],
        schema.IMAGE_WIDTH: example["image/width"],
        schema.IMAGE_FILENAME: example["image/filename"],
    }


def reid_features(name: str, split: str, data_dir: str | None = None, *, what: str = "a tfds: source",
                  shuffle_files: bool = False, seed: int | None = None,
                  input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """Split `split` of the built re-id dataset `name` as dicts keyed as `schema.parse_reid_example` returns them.

    The image stays encoded (the stored bytes); `person/dataset` is the registry name, as the
    converter writes it, so the pipelines treat both sources alike.
    """
    ds, builder = _read(name, data_dir, split, {"image": tfds.decode.SkipDecoding()}, what, shuffle_files, seed,
                        input_context)
    dataset = builder.DATASET
    if dataset.kind != "reid":
        raise ValueError(f"{what}: {name} is a {dataset.kind} dataset, not re-id")

    def to_schema(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {
            **_image_keys(example),
            schema.CLASS_LABEL: example["label"],
            schema.PERSON_ID: example["person_id"],
            schema.PERSON_DATASET: tf.constant(dataset.name),
            schema.CAMERA_ID: example["camera_id"],
        }

    return ds.map(to_schema, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def parsing_features(name: str, split: str, data_dir: str | None = None, *, what: str = "a tfds: source",
                     shuffle_files: bool = False, seed: int | None = None,
                     input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """Split `split` of the built LIP dataset `name` as dicts keyed as `schema.parse_parsing_example` returns
    them (bytes as stored)."""
    skip = tfds.decode.SkipDecoding()
    ds, builder = _read(name, data_dir, split, {"image": skip, "segmentation_mask": skip}, what, shuffle_files,
                        seed, input_context)
    if builder.DATASET.kind != "parsing":
        raise ValueError(f"{what}: {name} is a {builder.DATASET.kind} dataset, not parsing")

    def to_schema(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {
            **_image_keys(example),
            schema.MASK_ENCODED: example["segmentation_mask"],
            schema.MASK_FORMAT: tf.constant("png"),
        }

    return ds.map(to_schema, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@dataclasses.dataclass(frozen=True)
class BuiltFacts:
    """What a training run reads from a built dataset (as `training.inputs` reads a manifest)."""

    dataset: str
    kind: str
    num_images: dict[str, int]
    num_identities: int
    protocol: str


def built_facts(name: str, data_dir: str | None = None, what: str = "a tfds: source") -> BuiltFacts:
    """Split sizes, the number of training identities and the protocol of the built dataset `name`."""
    builder = prepared_builder(name, data_dir, what)
    info = builder.info
    kind = builder.DATASET.kind
    return BuiltFacts(dataset=builder.DATASET.name, kind=kind,
                      num_images={name: split.num_examples for name, split in info.splits.items()},
                      num_identities=info.features["label"].num_classes if kind == "reid" else 0,
                      protocol=info.metadata.get("protocol", ""))
