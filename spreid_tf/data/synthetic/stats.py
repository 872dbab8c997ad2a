"""What a miniature's conversion must yield (returned by every miniature writer)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SplitStats:
    """Counts for one split, as the manifest reports them.

    num_ids counts distinct person ids in the split (a distractor id 0 counts as one);
    num_cameras counts distinct camera ids.
    """

    num_images: int
    num_ids: int
    num_cameras: int


@dataclasses.dataclass
class ExpectedStats:
    """What converting a miniature must give.

    Attributes:
        splits: split name -> SplitStats.
        skipped: relpath -> reason keyword (a records.REASON_* the manifest's reason
            must start with) for every file the reader or converter must refuse.
        info: a subset of the reader's info dict that the manifest must hold exactly.
        root: the folder to pass to the reader (set by the writer).
    """

    splits: dict[str, SplitStats]
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)
    info: dict = dataclasses.field(default_factory=dict)
    root: str | None = None

    def mismatches(self, manifest) -> list[str]:
        """Differences between a conversion's `Manifest` and these expectations ([] if none)."""
        problems = []
        if sorted(manifest.splits) != sorted(self.splits):
            problems.append(f"splits {sorted(manifest.splits)} != {sorted(self.splits)}")
        for split, want in self.splits.items():
            entry = manifest.splits.get(split)
            for key, value in dataclasses.asdict(want).items():
                if manifest.kind == "parsing" and key != "num_images":
                    continue
                got = getattr(entry, key, None)
                if got != value:
                    problems.append(f"{split}.{key}: {got} != {value}")
        reasons = {s["relpath"]: s["reason"] for s in manifest.skipped}
        if sorted(reasons) != sorted(self.skipped):
            problems.append(f"skipped {sorted(reasons)} != {sorted(self.skipped)}")
        for path, keyword in self.skipped.items():
            if path in reasons and not reasons[path].startswith(keyword):
                problems.append(f"{path}: reason {reasons[path]!r} does not start with {keyword!r}")
        for key, value in self.info.items():
            if manifest.info.get(key) != value:
                problems.append(f"info.{key}: {manifest.info.get(key)} != {value}")
        return problems


def split_stats(items: list[tuple[str, int, int]], splits: tuple[str, ...] = ()) -> dict[str, SplitStats]:
    """SplitStats from the (split, person id, camera id) of every good image a writer wrote.

    Args:
        items: one tuple per image the conversion must keep.
        splits: splits to report even when empty.
    """
    by_split: dict[str, list[tuple[int, int]]] = {s: [] for s in splits}
    for split, pid, cam in items:
        by_split.setdefault(split, []).append((pid, cam))
    return {
        split: SplitStats(num_images=len(v), num_ids=len({p for p, _ in v}), num_cameras=len({c for _, c in v}))
        for split, v in by_split.items()
    }
