"""DatasetInfo: what the registry knows about one benchmark.

Each reader module (`spreid_tf/data/readers/<name>.py`) describes its benchmark in a
module-level `INFO = DatasetInfo(...)`; `spreid_tf.data.registry` collects them. This
module imports nothing of spreid_tf, so readers can use it without importing the
registry that imports them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

KINDS = ("reid", "parsing")
# How a conversion's query/gallery is scored (spreid_tf.evaluation.protocols): the Market-1501
# rule (same identity and camera excluded, junk ignored) or CUHK03's classic single shot.
MARKET1501_PROTOCOL = "market1501"
CUHK03_CLASSIC_PROTOCOL = "cuhk03_classic"
PROTOCOLS = (MARKET1501_PROTOCOL, CUHK03_CLASSIC_PROTOCOL)


def market1501_protocol(reader_info: dict) -> str:
    """Every benchmark's protocol but CUHK03 classic's: the Market-1501 rule."""
    del reader_info
    return MARKET1501_PROTOCOL


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Facts about one benchmark.

    Attributes:
        name: registry name; also the converted folder's name and `person/dataset`.
        read: `read(root: Path, **options) -> ReadResult`.
        expected_tree: the raw folder tree, drawn as in the reader's docstring.
        url: where to get the raw data.
        reference: the paper to cite, in one line (manifests, logs).
        citation: the same paper(s) as BibTeX (TensorFlow Datasets' DatasetInfo.citation).
        kind: "reid" (re-id Examples) or "parsing" (image + mask Examples).
        splits: the splits the reader returns.
        train_split: the split that gets contiguous training labels ("train");
            None if the dataset has none.
        merge_options: reader options used when the dataset is converted for the
            merged ten-benchmark training set (e.g. {"split": "all"}).
        protocol: `protocol(reader_info) -> name in PROTOCOLS`: how a conversion is
            scored, given what the reader reported about it (its `ReadResult.info`); the
            converter writes the answer into the manifest.
    """

    name: str
    read: Callable[..., Any]
    expected_tree: str
    url: str = ""
    reference: str = ""
    citation: str = ""
    kind: str = "reid"
    splits: tuple[str, ...] = ("train", "query", "gallery")
    train_split: str | None = "train"
    merge_options: dict = dataclasses.field(default_factory=dict)
    protocol: Callable[[dict], str] = market1501_protocol

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be 'reid' or 'parsing', got {self.kind!r}")
