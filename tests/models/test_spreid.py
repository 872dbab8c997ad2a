import keras
import numpy as np
import pytest
import tensorflow as tf

from numpy_reference import bilinear_resize, semantic_pooling, softmax
from spreid_tf.models import (
    build_baseline_model,
    build_parsing_model,
    build_spreid_model,
    combine_embeddings,
)

SIZE = (112, 80)
REID_SIZE = (96, 76)


@pytest.fixture(scope="module")
def parsing_model():
    keras.utils.set_random_seed(0)
    return build_parsing_model()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (2,) + SIZE + (3,)).astype("float32")


@pytest.fixture(scope="module")
def spreid(parsing_model):
    keras.utils.set_random_seed(1)
    return build_spreid_model(7, "w_fg", input_size=SIZE, reid_input_size=REID_SIZE, parsing_model=parsing_model)


def test_embedding_sizes(parsing_model):
    assert build_spreid_model(5, "w_fg", input_size=SIZE, parsing_model=parsing_model) \
        .output["embedding"].shape == (None, 6144)
    assert build_spreid_model(5, "wo_fg", input_size=SIZE, parsing_model=parsing_model) \
        .output["embedding"].shape == (None, 4096)
    exclusive = build_spreid_model(5, "wo_fg", weight_sharing=False, input_size=SIZE, parsing_model=parsing_model)
    assert exclusive.output["embedding"].shape == (None, 4096)
    assert {"reid_backbone", "global_backbone"} <= {layer.name for layer in exclusive.layers}
    baseline = build_baseline_model(5, input_size=SIZE)
    assert baseline.output["embedding"].shape == (None, 2048)
    assert baseline.output["logits"].shape == (None, 5)


def test_embedding_matches_a_numpy_assembly_of_the_parts(spreid, images):
    """GAP, foreground and max-over-parts vectors recomputed from the sub-models with numpy."""
    out = spreid(images)
    logits = np.asarray(spreid.get_layer("parsing_branch")(images))
    probabilities = softmax(logits)
    maps = np.concatenate([1 - probabilities[..., :1]] + [
        probabilities[..., list(s)].sum(-1, keepdims=True)
        for s in ((1, 2, 4, 13), (3, 5, 6, 7, 10, 11, 14, 15), (9, 12, 16, 17), (8, 18, 19))], -1)
    reid_images = np.asarray(tf.image.resize(images, REID_SIZE, method="bilinear"))
    features = np.asarray(spreid.get_layer("reid_backbone")(reid_images))
    pooled = semantic_pooling(bilinear_resize(features, logits.shape[1:3]), maps)
    expected = np.concatenate([features.mean(axis=(1, 2)), pooled[:, 0], pooled[:, 1:].max(axis=1)], -1)
    np.testing.assert_allclose(np.asarray(out["embedding"]), expected, rtol=1e-3, atol=1e-4)
    classifier = spreid.get_layer("classifier")
    kernel, bias = (np.asarray(w) for w in classifier.weights)
    np.testing.assert_allclose(np.asarray(out["logits"]), expected @ kernel + bias, rtol=1e-3, atol=1e-3)


def test_no_gradient_reaches_the_parsing_branch(spreid, images):
    parsing_vars = spreid.get_layer("parsing_branch").weights
    trainable_ids = {id(v) for v in spreid.trainable_variables}
    assert parsing_vars and not any(id(v) in trainable_ids for v in parsing_vars)
    before = [np.array(v) for v in parsing_vars]
    reid_before = [np.array(v) for v in spreid.get_layer("reid_backbone").trainable_variables]
    optimizer = keras.optimizers.SGD(0.1)
    labels = np.array([1, 4])
    with tf.GradientTape() as tape:
        out = spreid(images, training=True)
        loss = keras.losses.sparse_categorical_crossentropy(labels, out["logits"], from_logits=True)
        loss = tf.reduce_mean(loss)
    grads = tape.gradient(loss, spreid.trainable_variables + parsing_vars)
    assert all(g is None for g in grads[len(spreid.trainable_variables):])
    optimizer.apply(grads[:len(spreid.trainable_variables)], spreid.trainable_variables)
    for b, v in zip(before, parsing_vars):  # moving BN statistics included: inference-mode BN
        np.testing.assert_array_equal(b, np.asarray(v))
    changed = [not np.array_equal(b, np.asarray(v))
               for b, v in zip(reid_before, spreid.get_layer("reid_backbone").trainable_variables)]
    assert any(changed)


def test_mixed_precision_build_gives_float32_embedding(parsing_model, images):
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = build_spreid_model(3, "w_fg", input_size=SIZE, parsing_model=build_parsing_model())
    assert model.get_layer("reid_backbone").layers[-1].compute_dtype == "float16"
    out = model(images)
    assert out["embedding"].dtype == tf.float32 and out["logits"].dtype == tf.float32
    assert np.isfinite(np.asarray(out["embedding"])).all()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["parsing", "baseline", "baseline_resnet50", "w_fg", "wo_fg", "w_fg_exclusive"])
def test_variants_round_trip_through_keras_files(kind, parsing_model, images, tmp_path):
    keras.utils.set_random_seed(2)
    if kind == "parsing":
        model = parsing_model
    elif kind.startswith("baseline"):
        model = build_baseline_model(4, backbone="resnet50" if kind.endswith("resnet50") else "inception_v3",
                                     input_size=SIZE)
    else:
        model = build_spreid_model(4, kind[:5].rstrip("_"), weight_sharing=not kind.endswith("exclusive"),
                                   input_size=SIZE, reid_input_size=REID_SIZE, parsing_model=parsing_model)
    expected = model(images)
    path = str(tmp_path / f"{kind}.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    got = restored(images)
    for key in expected:
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(expected[key]), rtol=1e-5, atol=1e-5)


def test_parsing_model_from_a_keras_file(parsing_model, tmp_path):
    path = str(tmp_path / "parsing.keras")
    parsing_model.save(path)
    model = build_spreid_model(3, input_size=SIZE, parsing_model=path)
    assert model.output["embedding"].shape == (None, 6144)
    with pytest.raises(FileNotFoundError, match="nope.keras"):
        build_spreid_model(3, input_size=SIZE, parsing_model=str(tmp_path / "nope.keras"))


def test_clear_errors(parsing_model):
    with pytest.raises(ValueError, match="unknown SPReID variant 'with_fg'"):
        build_spreid_model(3, "with_fg", input_size=SIZE, parsing_model=parsing_model)
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        build_parsing_model(input_shape=(None, None, 1))
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        build_spreid_model(3, input_size=SIZE + (1,), parsing_model=parsing_model)
    with pytest.raises(FileNotFoundError, match="/missing/weights.h5"):
        build_spreid_model(3, input_size=SIZE, parsing_model=parsing_model, weights="/missing/weights.h5")
    with pytest.raises(ValueError, match="num_identities"):
        build_baseline_model(1, input_size=SIZE)


def test_calling_with_a_non_rgb_image_names_the_shape(spreid):
    with pytest.raises(ValueError, match="112, 80, 1"):
        spreid(np.zeros((1,) + SIZE + (1,), "float32"))


def test_combine_embeddings_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 6))
    expected = np.concatenate([a / np.linalg.norm(a, axis=1, keepdims=True),
                               b / np.linalg.norm(b, axis=1, keepdims=True)], 1)
    np.testing.assert_allclose(np.asarray(combine_embeddings(a, b)), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="different numbers of rows"):
        combine_embeddings(a, b[:2])


def test_pooling_probe_reproduces_the_model_and_uniform_maps_give_global_pooling(spreid, images):
    from spreid_tf.layers import GroupLIPProbabilities  # noqa: F401
    from spreid_tf.models import build_pooling_probe

    probe = build_pooling_probe(spreid)
    logits = spreid.get_layer("parsing_branch")(images)
    maps = np.asarray(spreid.get_layer("semantic_maps")(tf.nn.softmax(logits)))
    np.testing.assert_allclose(np.asarray(probe({"image": images, "maps": maps})),
                               np.asarray(spreid(images)["embedding"]), rtol=1e-5, atol=1e-6)
    # Uniform maps: every pooled vector is the mean of the upsampled features, i.e. (up to the
    # bilinear resize's border weights) the global average: here the 3 pieces are equal.
    uniform = np.asarray(probe({"image": images, "maps": np.ones((2, 7, 5, 5), "float32")}))
    np.testing.assert_allclose(uniform[:, 2048:4096], uniform[:, 4096:], rtol=1e-5, atol=1e-7)
    # Share the weights: the probe has no variables of its own.
    assert {id(v) for v in probe.weights} <= {id(v) for v in spreid.weights}
    with pytest.raises(ValueError, match="needs a SPReID model"):
        build_pooling_probe(build_baseline_model(3, input_size=SIZE))
