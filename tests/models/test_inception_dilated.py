import keras
import numpy as np
import pytest

from spreid_tf.models import build_backbone, build_dilated_inception_v3, transfer_weights

SHAPE = (150, 120, 3)


@pytest.fixture(scope="module")
def plain_and_dilated(tmp_path_factory):
    keras.utils.set_random_seed(0)
    plain = build_backbone("inception_v3", SHAPE)
    path = str(tmp_path_factory.mktemp("weights") / "plain.weights.h5")
    plain.save_weights(path)
    dilated = build_dilated_inception_v3(SHAPE, weights=path)
    return plain, dilated


def _block_layers(model, first, last):
    names = [layer.name for layer in model.layers]
    return model.layers[names.index(first) + 1:names.index(last) + 1]


def test_all_mixed8_to_mixed10_weights_equal_the_plain_network(plain_and_dilated):
    plain, dilated = plain_and_dilated
    plain_layers = _block_layers(plain, "mixed7", "mixed10")
    dilated_layers = _block_layers(dilated, "mixed7", "mixed10")
    compared = 0
    for a, b in zip(plain_layers, dilated_layers, strict=True):
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(wa, wb)
            compared += 1
    # mixed8: 6 conv+BN, mixed9 and mixed10: 9 conv+BN each = 24 convs (1 kernel) + 24 BNs (3 arrays).
    assert compared == 24 * 4
    for a, b in zip(plain.weights, dilated.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_last_blocks_are_dilated_and_reduction_removed(plain_and_dilated):
    _, dilated = plain_and_dilated
    mixed8 = _block_layers(dilated, "mixed7", "mixed8")
    assert all(tuple(layer.strides) == (1, 1) for layer in mixed8 if hasattr(layer, "strides"))
    late_convs = [layer for layer in _block_layers(dilated, "mixed8", "mixed10")
                  if isinstance(layer, keras.layers.Conv2D)]
    dilated_convs = [layer for layer in late_convs if tuple(layer.kernel_size) != (1, 1)]
    # Per block: 1x3, 3x1 (3x3 branch) and 3x3, 1x3, 3x1 (double 3x3 branch).
    assert len(dilated_convs) == 10
    assert all(tuple(layer.dilation_rate) == (2, 2) for layer in dilated_convs)
    assert all(tuple(layer.dilation_rate) == (1, 1) for layer in late_convs if layer not in dilated_convs)


def test_output_grid_is_about_twice_as_fine(plain_and_dilated):
    plain, dilated = plain_and_dilated
    (ph, pw), (dh, dw) = plain.output.shape[1:3], dilated.output.shape[1:3]
    assert dilated.output.shape[-1] == 2048
    assert 2 * ph <= dh <= 2 * ph + 2 and 2 * pw <= dw <= 2 * pw + 2
    x = np.random.default_rng(0).uniform(0, 255, (1, 299, 299, 3)).astype("float32")
    assert build_dilated_inception_v3()(x).shape == (1, 17, 17, 2048)  # plain: 8 x 8


def test_transfer_weights_reproduces_the_source():
    keras.utils.set_random_seed(3)
    source = build_backbone("inception_v3", SHAPE)
    target = keras.models.clone_model(source)
    assert transfer_weights(source, target) == len(source.get_weights())
    x = np.random.default_rng(1).uniform(0, 255, (1,) + SHAPE).astype("float32")
    np.testing.assert_allclose(np.asarray(target(x)), np.asarray(source(x)), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="layers"):
        transfer_weights(source, build_backbone("resnet50", (64, 64, 3)))


def test_output_stride_8_keeps_the_weights_and_halves_the_stride_again(plain_and_dilated):
    plain, _ = plain_and_dilated
    dilated8 = build_dilated_inception_v3((None, None, 3), output_stride=8)
    assert [tuple(w.shape) for w in dilated8.weights] == [tuple(w.shape) for w in plain.weights]
    x = np.zeros((1, 299, 299, 3), "float32")
    assert dilated8(x).shape == (1, 35, 35, 2048)  # stride 16: 17 x 17, plain: 8 x 8
    rates = {layer.name: tuple(layer.dilation_rate) for layer in dilated8.layers
             if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) != (1, 1)}
    blocks = [layer.name for layer in dilated8.layers]

    def block_of(name):
        index = blocks.index(name)
        return next(b for b in (f"mixed{i}" for i in range(11)) if b in blocks and blocks.index(b) >= index)
    assert {rates[n] for n in rates if block_of(n) in ("mixed4", "mixed5", "mixed6", "mixed7")} == {(2, 2)}
    assert {rates[n] for n in rates if block_of(n) in ("mixed9", "mixed10")} == {(4, 4)}
    assert {rates[n] for n in rates if block_of(n) in ("mixed0", "mixed1", "mixed2", "mixed3", "mixed8")} == {(1, 1)}
    with pytest.raises(ValueError, match="output_stride"):
        build_dilated_inception_v3(output_stride=4)
