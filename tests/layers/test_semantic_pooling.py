import keras
import numpy as np
import pytest

from numpy_reference import bilinear_resize, semantic_pooling
from spreid_tf.layers import SemanticPooling


def _random(seed, feature_shape, map_shape):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=feature_shape).astype("float32"),
            rng.uniform(0, 1, size=map_shape).astype("float32"))


def test_matches_numpy_reference_on_same_grid():
    features, maps = _random(0, (2, 5, 4, 7), (2, 5, 4, 3))
    out = SemanticPooling()([features, maps])
    assert out.shape == (2, 3, 7)
    np.testing.assert_allclose(np.asarray(out), semantic_pooling(features, maps), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("resize", ["maps", "features"])
def test_resizing_matches_bilinear_reference(resize):
    features, maps = _random(1, (2, 3, 2, 6), (2, 8, 5, 4))
    out = np.asarray(SemanticPooling(resize=resize)([features, maps]))
    if resize == "maps":
        expected = semantic_pooling(features, bilinear_resize(maps, (3, 2)))
    else:
        expected = semantic_pooling(bilinear_resize(features, (8, 5)), maps)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_uniform_map_equals_global_average_pooling():
    features, _ = _random(2, (3, 6, 5, 8), (1,))
    maps = np.full((3, 6, 5, 1), 0.37, "float32")
    out = np.asarray(SemanticPooling()([features, maps]))[:, 0]
    np.testing.assert_allclose(out, features.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_one_hot_region_equals_region_mean():
    features, _ = _random(3, (1, 6, 4, 5), (1,))
    maps = np.zeros((1, 6, 4, 2), "float32")
    maps[0, 1:4, 2:4, 0] = 1.0  # a 3x2 box
    maps[0, 5, 0, 1] = 1.0  # one pixel
    out = np.asarray(SemanticPooling()([features, maps]))
    np.testing.assert_allclose(out[0, 0], features[0, 1:4, 2:4].mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[0, 1], features[0, 5, 0], rtol=1e-5, atol=1e-6)


def test_all_zero_map_pools_to_zero():
    features, _ = _random(4, (1, 3, 3, 4), (1,))
    out = np.asarray(SemanticPooling()([features, np.zeros((1, 3, 3, 1), "float32")]))
    np.testing.assert_array_equal(out, 0.0)


def test_float32_math_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    layer = SemanticPooling()
    features, maps = _random(5, (1, 40, 30, 4), (1, 40, 30, 2))
    out = layer([features.astype("float16"), maps])
    assert layer.compute_dtype == "float32"
    assert out.dtype == "float32"
    np.testing.assert_allclose(np.asarray(out), semantic_pooling(features.astype("float16"), maps),
                               rtol=1e-5, atol=1e-5)


def test_config_round_trip_and_bad_mode():
    layer = SemanticPooling(resize="features", epsilon=1e-6, name="sp")
    clone = SemanticPooling.from_config(layer.get_config())
    assert (clone.resize, clone.epsilon, clone.name) == ("features", 1e-6, "sp")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, SemanticPooling) and restored.resize == "features"
    with pytest.raises(ValueError, match="resize must be one of"):
        SemanticPooling(resize="both")


def test_traces_with_unknown_grids():
    import tensorflow as tf

    from spreid_tf.layers import ResizeLike

    layer = SemanticPooling(resize="features")
    spec = [tf.TensorSpec([None, None, None, 6]), tf.TensorSpec([None, None, None, 4])]
    pooled = tf.function(lambda f, m: layer([f, m]), input_signature=spec)
    features, maps = _random(6, (2, 3, 2, 6), (2, 8, 5, 4))
    np.testing.assert_allclose(np.asarray(pooled(features, maps)),
                               semantic_pooling(bilinear_resize(features, (8, 5)), maps), rtol=1e-5, atol=1e-6)
    resize = tf.function(lambda x, r: ResizeLike()([x, r]), input_signature=spec)
    assert resize(features, maps).shape == (2, 8, 5, 6)
