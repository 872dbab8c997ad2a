"""Re-id run pieces: identity counts from the data, phase-2 initialisation from phase 1."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pytest

from spreid_tf import run_folder
from spreid_tf.data import merge, synthetic
from spreid_tf.data.convert import convert_dataset
from spreid_tf.models import build_baseline_model
from spreid_tf.training import inputs, reid


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    logging.getLogger("spreid_tf.data.convert").setLevel(logging.ERROR)
    raw = tmp_path_factory.mktemp("raw")
    out = tmp_path_factory.mktemp("converted")
    for name, expected in synthetic.write_all(raw, names=["market1501", "dukemtmcreid"]).items():
        convert_dataset(name, expected.root, out)
    return out


def test_identity_count_comes_from_the_manifest(converted):
    data = inputs.resolve_reid_data(converted / "market1501")
    assert data.num_identities == 8 and data.num_images == 32  # the miniature's train split
    assert data.label_offsets is None and data.eval_dir == str(converted / "market1501")
    assert all(f.endswith(".tfrecord") for f in data.train_files)


def test_identity_count_comes_from_the_merged_label_map(converted):
    label_map = merge.build_label_map([converted / "market1501", converted / "dukemtmcreid"], converted)
    for path in (converted, converted / merge.LABEL_MAP_FILENAME):
        data = inputs.resolve_reid_data(path)
        assert data.num_identities == label_map.num_identities > 8
        assert data.label_offsets == {"market1501": 0, "dukemtmcreid": 8}
        assert data.eval_dir is None and data.name == "merged"
        assert len(data.train_files) == len(label_map.train_shards)


def test_missing_or_wrong_data_is_named(tmp_path, converted):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        inputs.resolve_reid_data(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="parsing data"):
        inputs.resolve_parsing_data(tmp_path / "nope")
    with pytest.raises(ValueError, match="not a parsing conversion"):
        inputs.resolve_parsing_data(converted / "market1501")


@pytest.mark.slow
def test_phase2_copies_everything_but_the_classifier(tmp_path):
    keras.utils.set_random_seed(0)
    phase1 = build_baseline_model(6, input_size=(80, 80))
    phase1.save(tmp_path / run_folder.MODEL_FILENAME)
    keras.utils.set_random_seed(1)
    phase2 = build_baseline_model(4, input_size=(96, 80))  # other identities, other size
    classifier_before = [w.numpy() for w in phase2.get_layer("classifier").weights]
    copied = reid.load_initial_weights(phase2, str(tmp_path))
    assert copied == ["backbone"]
    for a, b in zip(phase1.get_layer("backbone").weights, phase2.get_layer("backbone").weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for before, w in zip(classifier_before, phase2.get_layer("classifier").weights):
        np.testing.assert_array_equal(before, w.numpy())
    assert phase2.get_layer("classifier").weights[0].shape == (2048, 4)
    with pytest.raises(FileNotFoundError, match="model.keras"):
        reid.load_initial_weights(phase2, str(tmp_path / "missing"))
