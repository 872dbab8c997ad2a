import numpy as np
import pytest

from spreid_tf.models import build_parsing_model


@pytest.fixture(scope="module")
def model():
    return build_parsing_model()


def test_outputs_logits_at_stride_16_and_probabilities_at_input(model):
    x = np.random.default_rng(0).uniform(0, 255, (2, 161, 97, 3)).astype("float32")
    out = model(x)
    logits, probabilities = np.asarray(out["logits"]), np.asarray(out["probabilities"])
    assert logits.shape == (2, 8, 4, 20)  # the plain InceptionV3 grid would be 3 x 1
    assert probabilities.shape == (2, 161, 97, 20) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)


def test_any_input_size_and_fixed_sizes(model):
    assert model(np.zeros((1, 120, 80, 3), "float32"))["logits"].shape == (1, 5, 3, 20)
    fixed = build_parsing_model(num_classes=7, input_shape=(96, 96, 3), aspp_rates=(2, 4))
    assert fixed.output["logits"].shape == (None, 4, 4, 7)
    assert fixed.get_layer("aspp").rates == (2, 4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        build_parsing_model(input_shape=(96, 96, 4))
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        build_parsing_model(weights="missing.h5")


def test_mobilenet_with_decoder_gives_stride_4_logits_and_round_trips(tmp_path):
    import keras

    from spreid_tf.training.optimizers import PARSING_HEAD_LAYERS, parsing_head_layers

    model = build_parsing_model(input_shape=(None, None, 3), backbone="mobilenet_v2", decoder=True,
                                aspp_filters=8, aspp_rates=(1, 2))
    x = np.random.default_rng(0).uniform(0, 255, (2, 128, 80, 3)).astype("float32")
    out = model(x)
    assert out["logits"].shape == (2, 32, 20, 20) and out["probabilities"].shape == (2, 128, 80, 20)
    assert parsing_head_layers(model) == PARSING_HEAD_LAYERS + ("decoder",)
    assert parsing_head_layers(build_parsing_model(aspp_filters=8)) == PARSING_HEAD_LAYERS
    path = tmp_path / "parsing.keras"
    model.save(path)
    again = keras.saving.load_model(path, compile=False)(x)
    np.testing.assert_array_equal(np.asarray(again["logits"]), np.asarray(out["logits"]))
    with pytest.raises(ValueError, match="unknown parsing backbone"):
        build_parsing_model(backbone="vgg16")


def test_inception_decoder_uses_the_stride_4_pooling():
    model = build_parsing_model(input_shape=(128, 80, 3), decoder=True, aspp_filters=8, aspp_rates=(1,))
    assert model.output["logits"].shape == (None, 30, 18, 20)  # InceptionV3's first max pooling ("valid")
