import keras
import numpy as np
import pytest

from spreid_tf.layers import ImagePreprocessing


def test_modes_match_keras_applications_preprocess_input():
    images = np.random.default_rng(0).uniform(0, 255, (2, 4, 3, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(ImagePreprocessing("inception")(images)),
                               keras.applications.inception_v3.preprocess_input(images.copy()), atol=1e-5)
    np.testing.assert_allclose(np.asarray(ImagePreprocessing("caffe")(images)),
                               keras.applications.resnet50.preprocess_input(images.copy()), atol=1e-4)


def test_uint8_images_are_accepted():
    images = np.full((1, 2, 2, 3), 255, "uint8")
    np.testing.assert_allclose(np.asarray(ImagePreprocessing()(images)), 1.0)


def test_non_rgb_input_and_bad_mode_are_errors():
    with pytest.raises(ValueError, match="3 channels"):
        ImagePreprocessing()(np.zeros((1, 4, 4, 1), "float32"))
    with pytest.raises(ValueError, match="mode must be one of"):
        ImagePreprocessing("torch")
