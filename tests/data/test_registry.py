"""The registry and the miniatures: one entry per benchmark, each with a miniature writer."""

from __future__ import annotations

import pytest

from spreid_tf.data import registry, synthetic
from spreid_tf.data.dataset_info import DatasetInfo


def test_every_dataset_has_a_miniature():
    names = {name for name, info in registry.DATASETS.items() if info.kind in ("reid", "parsing")}
    assert names == set(registry.DATASETS)
    assert set(synthetic.MINIATURES) == names


def test_every_reader_is_registered_under_its_own_name():
    assert len(registry.DATASETS) == len(registry._READERS)  # no two readers share a name
    for reader in registry._READERS:
        assert registry.DATASETS[reader.INFO.name] is reader.INFO
        assert reader.INFO.name == reader.NAME
    assert set(registry.MERGED_DATASETS) <= set(registry.DATASETS)


def test_get_names_the_known_datasets():
    assert registry.get("3dpes").name == "3dpes"
    with pytest.raises(KeyError, match="market1501"):
        registry.get("market")
    with pytest.raises(KeyError, match="market1501"):
        synthetic.write_benchmark("market", "/nonexistent")


def test_dataset_info_checks_its_kind():
    with pytest.raises(ValueError, match="kind"):
        DatasetInfo(name="toy", read=lambda root: None, expected_tree="", kind="detection")
