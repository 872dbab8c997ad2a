"""Data fixtures: every registered miniature written once, and converted once, per session.

Tests must treat both folders as read-only; a test that changes files copies them first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spreid_tf.data import synthetic
from spreid_tf.data.convert import convert_dataset
from spreid_tf.data.synthetic import ExpectedStats


@pytest.fixture(scope="session")
def _miniatures(tmp_path_factory) -> tuple[Path, dict[str, ExpectedStats]]:
    root = tmp_path_factory.mktemp("raw")
    return root, synthetic.write_all(root, seed=0)


@pytest.fixture(scope="session")
def synthetic_root(_miniatures) -> Path:
    """Folder holding `<name>/` = the raw miniature of every registered dataset (read-only)."""
    return _miniatures[0]


@pytest.fixture(scope="session")
def synthetic_stats(_miniatures) -> dict[str, ExpectedStats]:
    """dataset name -> ExpectedStats of its miniature (`.root` is the reader's root)."""
    return _miniatures[1]


@pytest.fixture(scope="session")
def converted_root(synthetic_stats, tmp_path_factory) -> Path:
    """Folder holding `<name>/` = the conversion of every miniature (read-only)."""
    out = tmp_path_factory.mktemp("converted")
    for name, expected in synthetic_stats.items():
        convert_dataset(name, expected.root, out, num_shards=2)
    return out
