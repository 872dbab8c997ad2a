"""The run folder's one source of names, loading, kind and input size."""

import keras
import pytest

from spreid_tf import run_folder
from spreid_tf.models import build_baseline_model, build_parsing_model


@pytest.fixture(scope="module")
def baseline():
    return build_baseline_model(3, "mobilenet_v2_c3", input_size=(64, 32))


def test_loads_from_a_run_folder_or_a_keras_file_and_names_the_flag(baseline, tmp_path):
    baseline.save(tmp_path / run_folder.MODEL_FILENAME)
    for source in (tmp_path, tmp_path / run_folder.MODEL_FILENAME):
        loaded = run_folder.load_model(source)
        assert run_folder.model_kind(loaded) == run_folder.BASELINE
        assert run_folder.model_image_size(loaded) == (64, 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"--init_from='.*empty': .*empty/model.keras does not exist"):
        run_folder.model_file(tmp_path / "empty", flag="init_from")
    with pytest.raises(FileNotFoundError, match=r"model '.*missing' does not exist \(expected a model_dir"):
        run_folder.model_file(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="parsing.keras"):
        run_folder.model_file(tmp_path, run_folder.PARSING_FILENAME)
    assert run_folder.eval_report_dir(tmp_path, "market1501") == str(tmp_path / "eval_market1501")


def test_kind_and_input_size_errors(baseline):
    inputs = keras.Input((4,))
    other = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="not a spreid_tf model"):
        run_folder.model_kind(other)
    with pytest.raises(ValueError, match="differs from the model's input size"):
        run_folder.model_image_size(baseline, (90, 80))
    parsing = build_parsing_model(backbone="mobilenet_v2", input_shape=(None, None, 3), aspp_filters=8)
    assert run_folder.model_kind(parsing) == run_folder.PARSING
    with pytest.raises(ValueError, match="takes inputs of any size"):
        run_folder.model_image_size(parsing)
    assert run_folder.model_image_size(parsing, (64, 32)) == (64, 32)
