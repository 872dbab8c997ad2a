"""Helpers for the miniatures of the small benchmarks (CUHK01/02, VIPeR, PRID, 3DPeS, Shinpuhkan).

A writer logs every file it writes (`Written`): the person and camera the reader must
parse from a well-named file, whether the converter must keep it (a zero-byte or
corrupt file has a good name but bad bytes), and the reason for every file that must
be refused. `expected_stats` then turns the log and a split assignment (the reader's
own protocol function, fed the ids the reader will see) into ExpectedStats.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import numpy as np

from spreid_tf.data.records import REASON_BAD_FILENAME, REASON_CORRUPT, REASON_NOT_IMAGE, REASON_ZERO_BYTE
from spreid_tf.data.synthetic import files, people
from spreid_tf.data.synthetic.stats import ExpectedStats, split_stats


def write_corrupt(path: os.PathLike | str, seed: int = 0) -> Path:
    """An image cut off half-way with garbage appended, in the format of `path`'s suffix."""
    rgb, _ = people.render(seed, seed, seed, 64, 32)
    data = files.encode(rgb, Path(path).suffix)
    garbage = np.random.default_rng(seed).integers(0, 256, 64, dtype=np.uint8).tobytes()
    return files.write_bytes(path, data[: len(data) // 2] + garbage)


@dataclasses.dataclass
class Written:
    """The log of a miniature writer (relpaths are relative to the reader's data folder)."""

    root: Path
    images: list[tuple[str, int, int, bool]] = dataclasses.field(default_factory=list)  # relpath, pid, cam, good
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)

    def person(self, relpath: str, pid: int, cam: int, person_seed: int, camera_seed: int, image_seed: int,
               height: int = 64, width: int = 32) -> None:
        """A good image of `pid` seen by camera `cam` (the reader's ids)."""
        files.write_person(self.root / relpath, person_seed, camera_seed, image_seed, height, width)
        self.images.append((relpath, pid, cam, True))

    def zero_byte(self, relpath: str, pid: int, cam: int) -> None:
        """A well-named empty file: the reader lists it, the converter refuses it."""
        files.write_zero_byte(self.root / relpath)
        self.images.append((relpath, pid, cam, False))
        self.skipped[relpath] = REASON_ZERO_BYTE

    def corrupt(self, relpath: str, pid: int, cam: int, seed: int) -> None:
        """A well-named truncated image: the reader lists it, the converter refuses it."""
        write_corrupt(self.root / relpath, seed)
        self.images.append((relpath, pid, cam, False))
        self.skipped[relpath] = REASON_CORRUPT

    def thumbs_db(self, relpath: str) -> None:
        files.write_thumbs_db(self.root / relpath)
        self.skipped[relpath] = REASON_NOT_IMAGE

    def bad_name(self, relpath: str, seed: int, reason: str = REASON_BAD_FILENAME) -> None:
        """A real image under a name the benchmark's rule rejects."""
        files.write_person(self.root / relpath, seed, seed, seed, 64, 32)
        self.skipped[relpath] = reason

    def ids(self) -> list[int]:
        """Person ids of every well-named image (what the reader sees)."""
        return sorted({pid for _, pid, _, _ in self.images})

    def expected_stats(self, assign: Callable[[str, int, int], list[str]], splits: tuple[str, ...],
                       info: dict | None = None, skipped: dict[str, str] | None = None) -> ExpectedStats:
        """ExpectedStats given `assign(relpath, pid, cam) -> splits the image goes to`."""
        items = [(split, pid, cam) for rel, pid, cam, good in self.images if good
                 for split in assign(rel, pid, cam)]
        return ExpectedStats(splits=split_stats(items, splits), skipped=dict(skipped or self.skipped),
                             info=dict(info or {}))
