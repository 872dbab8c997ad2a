import keras
import numpy as np
import pytest

from spreid_tf.models import build_backbone

SHAPE = (107, 75, 3)


def test_inception_v3_has_keras_parameter_count_and_stride_32():
    model = build_backbone("inception_v3", (299, 299, 3))
    reference = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(299, 299, 3))
    assert model.count_params() == reference.count_params()
    assert model.output.shape == (None, 8, 8, 2048)


def test_resnet50_features():
    model = build_backbone("resnet50", (64, 64, 3))
    assert model.output.shape == (None, 2, 2, 2048)
    assert model.count_params() == keras.applications.ResNet50(include_top=False, weights=None,
                                                               input_shape=(64, 64, 3)).count_params()


@pytest.mark.slow
def test_resnet152_features():
    model = build_backbone("resnet152", (64, 32, 3))
    assert model.output.shape == (None, 2, 1, 2048)


def test_local_weights_file_is_loaded(tmp_path):
    keras.utils.set_random_seed(0)
    source = build_backbone("inception_v3", SHAPE)
    path = str(tmp_path / "inception.weights.h5")
    source.save_weights(path)
    keras.utils.set_random_seed(1)
    loaded = build_backbone("inception_v3", SHAPE, weights=path)
    fresh = build_backbone("inception_v3", SHAPE)
    x = np.random.default_rng(0).uniform(0, 255, (1,) + SHAPE).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(source(x)), rtol=1e-5, atol=1e-5)
    assert not np.allclose(np.asarray(fresh(x)), np.asarray(source(x)))


def test_raw_images_go_in():
    model = build_backbone("inception_v3", SHAPE)
    x = np.random.default_rng(0).uniform(0, 255, (1,) + SHAPE).astype("float32")
    manual = keras.Model(model.get_layer("preprocessing").output, model.output)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(manual(x / 127.5 - 1.0)), rtol=1e-4, atol=1e-4)


def test_clear_errors():
    with pytest.raises(FileNotFoundError, match="no/such/file.h5"):
        build_backbone("inception_v3", SHAPE, weights="no/such/file.h5")
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        build_backbone("inception_v3", (107, 75, 1))
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'"):
        build_backbone("vgg16", SHAPE)
    with pytest.raises(ValueError, match="at least 75 pixels"):
        build_backbone("inception_v3", (64, 64, 3))
