"""Shared reading for the Market-1501 family layout (bounding_box_train / query / bounding_box_test)."""

from __future__ import annotations

import re
from pathlib import Path

from spreid_tf.data.records import (REASON_BAD_FILENAME, ReadResult, Record, Skipped, relpath, require_dir,
                                    scan_images)

SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def read_bounding_box_layout(data_dir: Path, dataset: str, pattern: re.Pattern, num_cameras: int,
                             expected_tree: str, junk_pid: int | None = None,
                             distractor_pid: int | None = None) -> ReadResult:
    """Reads the three split folders of a Market-style benchmark.

    Args:
        data_dir: the benchmark's top folder (holds bounding_box_train etc.).
        dataset: registry name.
        pattern: full-match filename regex with groups `pid` and `cam` (1-based).
        num_cameras: cameras are 1..num_cameras in the names.
        expected_tree: drawn in layout errors.
        junk_pid: images of this pid are dropped and counted in info (Market's -1).
        distractor_pid: images of this pid are kept and counted in info (Market's 0).

    Returns:
        ReadResult with train/query/gallery; relpaths are relative to `data_dir`.
    """
    dirs = {split: require_dir(data_dir / name, expected_tree) for split, name in SPLIT_DIRS.items()}
    splits: dict[str, list[Record]] = {}
    skipped: list[Skipped] = []
    junk: dict[str, int] = {}
    distractors: dict[str, int] = {}
    for split, directory in dirs.items():
        images, others = scan_images(directory, data_dir, (".jpg",))
        skipped.extend(others)
        records = []
        junk[split] = distractors[split] = 0
        for path in images:
            rel = relpath(path, data_dir)
            match = pattern.fullmatch(path.name)
            if match is None:
                skipped.append(Skipped(rel, f"{REASON_BAD_FILENAME}: expected {pattern.pattern}"))
                continue
            pid, cam = int(match["pid"]), int(match["cam"])
            if not 1 <= cam <= num_cameras:
                skipped.append(Skipped(rel, f"{REASON_BAD_FILENAME}: camera c{cam} outside c1..c{num_cameras}"))
                continue
            if junk_pid is not None and pid == junk_pid:
                junk[split] += 1
                continue
            if distractor_pid is not None and pid == distractor_pid:
                distractors[split] += 1
            records.append(Record(relpath=rel, person_id=pid, camera_id=cam - 1, dataset=dataset,
                                  path=str(path.absolute())))
        splits[split] = records
    info: dict = {"num_cameras": num_cameras, "split_dirs": dict(SPLIT_DIRS)}
    if junk_pid is not None:
        info["junk_pid"] = junk_pid
        info["num_junk_ignored"] = junk
    if distractor_pid is not None:
        info["distractor_pid"] = distractor_pid
        info["num_distractors"] = distractors
    return ReadResult(splits=splits, skipped=skipped, info=info)
