"""`tfds:` data sources: a TensorFlow Datasets split named where TFRecord shards are expected.

    tfds:spreid_market1501                                   the builder's default config
    tfds:spreid_cuhk03/labeled_classic0                      a config
    tfds:spreid_market1501:1.0.0,data_dir=/data/tfds         a version and a data_dir
    tfds:spreid_market1501,split=query                       a split (TFDS split syntax: query+gallery, train[:10%])

`NAME[/CONFIG][:VERSION]` is TFDS's own dataset name; the options after commas are
`data_dir=` (default: TFDS's, `$TFDS_DATA_DIR` or ~/tensorflow_datasets) and `split=`
(default: what the reader asks for, "train" for training). The builders are those of
`spreid_tf.data.tfds` (`spreid_<registry name>`); the dataset must have been built
(`download_and_prepare` with `manual_dir` at the raw benchmark folder; BUILD.md).

This module only parses the text: it imports no TensorFlow Datasets, so the base install
(without the `tfds` extra) can name the extra in its error. `builders_module()` imports
`spreid_tf.data.tfds` when a source is read.
"""

from __future__ import annotations

import dataclasses
import re
from types import ModuleType

PREFIX = "tfds:"
INSTALL_HINT = 'pip install -e ".[tfds]"'
OPTIONS = ("data_dir", "split")
# TFDS names: snake_case name, optional /config (letters, digits, _ . -), optional :version (1.0.0 or 1.*.*).
_NAME = re.compile(r"[a-z][a-z0-9_]*(/[A-Za-z0-9_.-]+)?(:[0-9*]+(\.[0-9*]+){0,2})?")


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """A parsed `tfds:` source.

    Attributes:
        name: TFDS's `name[/config][:version]`, e.g. "spreid_cuhk03/labeled_classic0".
        data_dir: where the built dataset lives; None: TFDS's default.
        split: the split (TFDS split syntax); None: the reader's default.
    """

    name: str
    data_dir: str | None = None
    split: str | None = None

    @property
    def builder_name(self) -> str:
        """The registered builder's name, without config and version ("spreid_cuhk03")."""
        return self.name.split("/")[0].split(":")[0]

    def with_split(self, split: str) -> "TfdsSource":
        return dataclasses.replace(self, split=split)

    def text(self) -> str:
        """The source as a `tfds:` string (parses back to itself)."""
        options = "".join(f",{key}={getattr(self, key)}" for key in OPTIONS if getattr(self, key) is not None)
        return f"{PREFIX}{self.name}{options}"


def is_tfds_source(value: object) -> bool:
    """Whether `value` is a `tfds:` string (any other value is a path or glob)."""
    return isinstance(value, str) and value.startswith(PREFIX)


def parse_tfds_source(value: str, what: str = "data source") -> TfdsSource:
    """Parses `tfds:NAME[/CONFIG][:VERSION][,data_dir=DIR][,split=SPLIT]`.

    Args:
        value: the text.
        what: names the value in errors (a binary passes its flag, `--train_data`).

    Raises:
        ValueError: not of that form (the message names the value and the form).
    """
    form = f"{PREFIX}NAME[/CONFIG][:VERSION][,data_dir=DIR][,split=SPLIT], e.g. {PREFIX}spreid_market1501"
    if not is_tfds_source(value):
        raise ValueError(f"{what}={value!r} is not a TFDS source ({form})")
    name, *options = value[len(PREFIX):].split(",")
    if not _NAME.fullmatch(name):
        raise ValueError(f"{what}={value!r}: {name!r} is not a TFDS dataset name (expected {form})")
    parsed: dict[str, str] = {}
    for option in options:
        key, sep, option_value = option.partition("=")
        if key not in OPTIONS or not sep or not option_value:
            raise ValueError(f"{what}={value!r}: option {option!r} is not one of data_dir=DIR, split=SPLIT "
                             f"(expected {form})")
        if key in parsed:
            raise ValueError(f"{what}={value!r}: {key} given twice")
        parsed[key] = option_value
    return TfdsSource(name=name, **parsed)


def builders_module(what: str = "a tfds: source") -> ModuleType:
    """`spreid_tf.data.tfds` (importing it registers the `spreid_*` builders).

    Raises:
        ValueError: tensorflow-datasets is not installed (one line naming the extra).
    """
    try:
        from spreid_tf.data import tfds
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != "tensorflow_datasets":
            raise
        # ValueError, so the binaries' one-line error handler prints it (spreid_tf.cli).
        raise ValueError(f"{what} needs TensorFlow Datasets, which is not installed: {INSTALL_HINT} "
                         "(the optional extra tfds)") from None
    return tfds
