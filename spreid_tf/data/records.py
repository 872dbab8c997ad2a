"""What a dataset reader returns, and the checks every reader shares.

A reader turns a raw benchmark folder into a `ReadResult`: lists of `Record`s per
split, the files it refused (`Skipped`, each with a reason), and protocol facts
(`info`) that the converter copies into the manifest. Readers never open image
bytes; the converter checks and decodes each image once.

Readers accept as `root` either the benchmark's own top folder (e.g.
`Market-1501-v15.09.15/`) or the folder that holds it (torchreid's `root`), and
check every folder they need before anything runs (`require_dir`), with an error
that names the missing path and draws the tree they expected.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Sequence

# Reason keywords shared by readers, the converter and the tests (a reason starts
# with one of these, optionally followed by ": details").
REASON_ZERO_BYTE = "zero-byte file"
REASON_CORRUPT = "corrupt image"
REASON_NOT_IMAGE = "not an image file"
REASON_BAD_FILENAME = "bad filename"
REASON_MISSING = "missing file"
REASON_UNREADABLE = "unreadable file"
REASON_MASK = "bad mask"


@dataclasses.dataclass(frozen=True)
class Record:
    """One re-id image of a benchmark split.

    Attributes:
        relpath: path relative to the source root; stored as `image/filename`.
        person_id: the benchmark's own id (0 = distractor where applicable).
        camera_id: 0-based camera index.
        dataset: registry name, e.g. "market1501".
        path: absolute path of the image file; None when `image_bytes` is given.
        image_bytes: already-encoded PNG/JPEG for images that only exist as
            arrays (CUHK03's .mat file).
    """

    relpath: str
    person_id: int
    camera_id: int
    dataset: str
    path: str | None = None
    image_bytes: bytes | None = None

    def __post_init__(self):
        if (self.path is None) == (self.image_bytes is None):
            raise ValueError(f"{self.relpath}: give exactly one of path and image_bytes")


@dataclasses.dataclass(frozen=True)
class ParsingRecord:
    """One human-parsing pair (LIP): an image and its label mask.

    Attributes:
        relpath: image path relative to the source root (`image/filename`).
        path: absolute path of the image.
        mask_relpath: mask path relative to the source root.
        mask_path: absolute path of the single-channel PNG mask.
        dataset: registry name, e.g. "lip".
    """

    relpath: str
    path: str
    mask_relpath: str
    mask_path: str
    dataset: str


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A file the reader or converter refused, and why (starts with a REASON_*)."""

    relpath: str
    reason: str


@dataclasses.dataclass
class ReadResult:
    """A reader's output.

    Attributes:
        splits: split name -> records, e.g. {"train": [...], "query": [...],
            "gallery": [...]}.
        skipped: files refused by the reader (bad names, non-images, ...).
        info: protocol facts for the manifest (JSON-serialisable).
    """

    splits: dict[str, list[Record]]
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    info: dict = dataclasses.field(default_factory=dict)


class DatasetLayoutError(FileNotFoundError):
    """A benchmark folder is missing a path it needs; the message draws the expected tree."""


def layout_error(path: os.PathLike | str, expected_tree: str, what: str = "folder") -> DatasetLayoutError:
    """Builds the error for a missing `path`, drawing `expected_tree`."""
    tree = "\n".join("    " + line for line in expected_tree.strip("\n").splitlines())
    return DatasetLayoutError(
        f"missing {what}: {path}\nExpected layout:\n{tree}"
    )


def require_dir(path: os.PathLike | str, expected_tree: str) -> Path:
    """Returns `path` as a Path if it is a folder; raises DatasetLayoutError at once otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise layout_error(path, expected_tree, "folder")
    return path


def require_file(path: os.PathLike | str, expected_tree: str) -> Path:
    """Returns `path` as a Path if it is a file; raises DatasetLayoutError at once otherwise."""
    path = Path(path)
    if not path.is_file():
        raise layout_error(path, expected_tree, "file")
    return path


def resolve_root(root: os.PathLike | str, dirnames: Sequence[str], marker: str,
                 expected_tree: str) -> Path:
    """Finds the benchmark's top folder given it or its parent (torchreid's `root`).

    Args:
        root: the folder the user passed.
        dirnames: names the benchmark's top folder may have (e.g.
            ["Market-1501-v15.09.15", "Market-1501"]).
        marker: a sub-path that only the top folder holds (e.g. "bounding_box_train").
        expected_tree: drawn in the error.

    Returns:
        `root` if it holds `marker`, else `root/<dirname>` for the first dirname
        that holds it.

    Raises:
        DatasetLayoutError: neither form found.
    """
    root = Path(root)
    if not root.exists():
        raise layout_error(root, expected_tree, "dataset root")
    if (root / marker).exists():
        return root
    for name in dirnames:
        if (root / name / marker).exists():
            return root / name
    candidates = [root / marker] + [root / name / marker for name in dirnames]
    raise layout_error(" or ".join(str(c) for c in candidates), expected_tree)


def relpath(path: os.PathLike | str, root: os.PathLike | str) -> str:
    """`path` relative to `root`, with forward slashes."""
    return Path(os.path.relpath(path, root)).as_posix()


def scan_images(directory: os.PathLike | str, root: os.PathLike | str,
                extensions: Iterable[str] = (".jpg",),
                recursive: bool = False) -> tuple[list[Path], list[Skipped]]:
    """Lists image files in `directory` (sorted); other files become Skipped.

    Args:
        directory: folder to list.
        root: source root, for the Skipped relpaths.
        extensions: accepted suffixes, compared case-insensitively.
        recursive: descend into sub-folders.

    Returns:
        (image paths, skipped non-image files such as Thumbs.db).
    """
    directory = Path(directory)
    extensions = tuple(e.lower() for e in extensions)
    images: list[Path] = []
    skipped: list[Skipped] = []
    entries = sorted(directory.rglob("*") if recursive else directory.iterdir())
    for entry in entries:
        if entry.is_dir():
            continue
        if entry.suffix.lower() in extensions:
            images.append(entry)
        else:
            skipped.append(Skipped(relpath(entry, root), f"{REASON_NOT_IMAGE}: suffix not in {list(extensions)}"))
    return images, skipped
