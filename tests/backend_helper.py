"""The cases of tests/test_backends.py and the stage of it that runs under JAX.

    KERAS_BACKEND=jax PYTHONPATH=tests/no_tensorflow python tests/backend_helper.py WORKDIR

Stages, in the order the test runs them:

- `stage_build` (TensorFlow, in the test's process): builds every case (each layer of
  spreid_tf.layers in a tiny functional model, every model variant), draws batch-norm
  statistics at random, and writes the inputs (`inputs.npz`), the weights
  (`weights/CASE.npz`, `get_weights()` order), the outputs (`outputs_build.npz`) and each
  model as `tf/CASE.keras`.
- `stage_check` (JAX, this script in a subprocess): builds the same cases with the same
  builders, sets the weights and runs them under `jax.jit` (`outputs_built.npz`); loads the
  TensorFlow `.keras` files (`outputs_loaded.npz`) and saves them again as `jax/CASE.keras`;
  runs two SGD steps of SPReID through Keras' JAX trainer (`train.json`).
  tests/no_tensorflow on PYTHONPATH makes `import tensorflow` fail, as on a machine
  without TensorFlow.
- `stage_load` (TensorFlow, in the test's process): loads the `.keras` files saved under
  JAX (`outputs_reloaded.npz`).

Outputs are saved as `CASE/KEY` arrays; the test compares them.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from spreid_tf import layers  # noqa: E402
from spreid_tf.models import build_baseline_model, build_parsing_model, build_spreid_model  # noqa: E402

IDENTITIES = 5


def _layer_model(layer, *shapes, training: bool | None = None) -> keras.Model:
    inputs = [keras.Input(shape) for shape in shapes]
    call_inputs = inputs[0] if len(inputs) == 1 else inputs
    outputs = layer(call_inputs) if training is None else layer(call_inputs, training=training)
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=f"{layer.name}_model")


def _cases() -> dict:
    """name -> (build function, input shapes without the batch, input kind)."""
    parsing_mobilenet = {}

    def mobilenet_parser():
        # One parser shared by the two SPReID cases (built once per process, in case order).
        if "model" not in parsing_mobilenet:
            parsing_mobilenet["model"] = build_parsing_model(
                input_shape=(None, None, 3), backbone="mobilenet_v2", decoder=True, aspp_filters=8,
                output_stride=8, name="parser_mobilenet")
        return parsing_mobilenet["model"]

    return {
        # Layers, one tiny model each; "image" inputs are integers in [0, 255] as floats.
        "aspp": (lambda: _layer_model(layers.ASPP(rates=(1, 2, 3), pooling_filters=4, pointwise_filters=5,
                                                  atrous_filters=3, output_filters=6, name="aspp"),
                                      (None, None, 8), training=False), [(7, 5, 8)], "normal"),
        "decoder": (lambda: _layer_model(layers.DeepLabDecoder(low_level_filters=4, filters=6, name="decoder"),
                                         (3, 2, 6), (9, 7, 5), training=False), [(3, 2, 6), (9, 7, 5)], "normal"),
        "group_lip": (lambda: _layer_model(layers.GroupLIPProbabilities(name="group"), (4, 3, 20)),
                      [(4, 3, 20)], "probabilities"),
        "preprocessing_inception": (lambda: _layer_model(layers.ImagePreprocessing("inception", name="pre"),
                                                         (4, 3, 3)), [(4, 3, 3)], "image"),
        "preprocessing_caffe": (lambda: _layer_model(layers.ImagePreprocessing("caffe", name="pre"), (4, 3, 3)),
                                [(4, 3, 3)], "image"),
        "part_max": (lambda: _layer_model(layers.PartMaxPooling(name="part_max"), (5, 6)), [(5, 6)], "normal"),
        # Bilinear resizing up, down and both at once (one axis each way).
        "resize_like_up": (lambda: _layer_model(layers.ResizeLike(name="resize"), (3, 4, 5), (7, 9, 2)),
                           [(3, 4, 5), (7, 9, 2)], "normal"),
        "resize_like_down": (lambda: _layer_model(layers.ResizeLike(name="resize"), (11, 13, 5), (4, 5, 1)),
                             [(11, 13, 5), (4, 5, 1)], "normal"),
        "resize_like_mixed": (lambda: _layer_model(layers.ResizeLike(name="resize"), (5, 9, 3), (11, 4, 1)),
                              [(5, 9, 3), (11, 4, 1)], "normal"),
        "resize_to_down": (lambda: _layer_model(layers.ResizeTo(4, 5, name="resize"), (9, 11, 3)),
                           [(9, 11, 3)], "normal"),
        "resize_to_up": (lambda: _layer_model(layers.ResizeTo(10, 7, name="resize"), (3, 4, 3)),
                         [(3, 4, 3)], "normal"),
        "semantic_pooling_maps": (lambda: _layer_model(layers.SemanticPooling(resize="maps", name="sp"),
                                                       (3, 4, 6), (8, 5, 4)), [(3, 4, 6), (8, 5, 4)], "maps"),
        "semantic_pooling_features": (lambda: _layer_model(layers.SemanticPooling(resize="features", name="sp"),
                                                           (3, 4, 6), (8, 5, 4)), [(3, 4, 6), (8, 5, 4)], "maps"),
        "stop_gradient": (lambda: _layer_model(layers.StopGradient(name="stop"), (3, 4)), [(3, 4)], "normal"),
        # Chainer's pooling (the authors' InceptionV3): zero-padded 5x5 average, ceil-mode 3x3/2 max
        # on sizes where the last window reaches past the input.
        "zero_padded_average": (lambda: _layer_model(layers.ZeroPaddedAveragePooling2D(5, 2, name="avg"),
                                                     (7, 6, 3)), [(7, 6, 3)], "normal"),
        "ceil_mode_max": (lambda: _layer_model(layers.CeilModeMaxPooling2D(3, 2, name="max"), (8, 11, 3)),
                          [(8, 11, 3)], "normal"),
        # Models: the paper's InceptionV3* parser (output stride 16, ASPP), the MobileNetV2 parser
        # at output stride 8 with the decoder, the baseline, SPReID w/fg (shared backbone, re-id
        # branch scaled down) and wo/fg (exclusive backbones); all built with (None, None, 3)
        # parsers, as for training.
        "parsing_inception": (lambda: build_parsing_model(input_shape=(None, None, 3), aspp_filters=8),
                              [(80, 80, 3)], "image"),
        "parsing_mobilenet_decoder": (mobilenet_parser, [(64, 48, 3)], "image"),
        "baseline_inception_v3": (lambda: build_baseline_model(IDENTITIES, "inception_v3", (80, 80)),
                                  [(80, 80, 3)], "image"),
        "spreid_w_fg_shared": (lambda: build_spreid_model(IDENTITIES, "w_fg", backbone="mobilenet_v2_c3",
                                                          input_size=(96, 80), reid_input_size=(64, 48),
                                                          parsing_model=mobilenet_parser()),
                               [(96, 80, 3)], "image"),
        "spreid_wo_fg_exclusive": (lambda: build_spreid_model(IDENTITIES, "wo_fg", weight_sharing=False,
                                                              backbone="mobilenet_v2", input_size=(96, 80),
                                                              parsing_model=mobilenet_parser()),
                                   [(96, 80, 3)], "image"),
    }


def _make_input(rng: np.random.Generator, shape: tuple, kind: str) -> np.ndarray:
    shape = (2, *shape)
    if kind == "image":
        return rng.integers(0, 256, shape).astype("float32")
    if kind == "probabilities":
        logits = rng.normal(size=shape)
        return (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype("float32")
    if kind == "maps":
        return rng.uniform(0.0, 1.0, shape).astype("float32")
    return rng.normal(size=shape).astype("float32")


def _model_inputs(arrays: list[np.ndarray]):
    return arrays[0] if len(arrays) == 1 else arrays


def _flat_outputs(case: str, outputs) -> dict[str, np.ndarray]:
    if isinstance(outputs, dict):
        items = outputs.items()
    elif isinstance(outputs, (list, tuple)):
        items = ((str(i), value) for i, value in enumerate(outputs))
    else:
        items = (("output", outputs),)
    return {f"{case}/{key}": np.asarray(keras.ops.convert_to_numpy(value), np.float32) for key, value in items}


def _forward(model: keras.Model, inputs):
    """Inference-mode outputs: eager under TensorFlow, one `jax.jit` under JAX."""
    if keras.backend.backend() != "jax":
        return model(inputs, training=False)
    import jax

    def call(trainable, non_trainable, x):
        return model.stateless_call(trainable, non_trainable, x, training=False)[0]

    return jax.jit(call)([v.value for v in model.trainable_variables],
                         [v.value for v in model.non_trainable_variables], inputs)


def _randomise_statistics(model: keras.Model, rng: np.random.Generator) -> None:
    """Batch-norm moving statistics away from (0, 1), so that their order and use are checked too."""
    for variable in model.non_trainable_weights:
        if variable.path.endswith("moving_variance"):
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
        elif variable.path.endswith("moving_mean"):
            variable.assign(rng.normal(0.0, 0.1, variable.shape).astype("float32"))


def _timed(log: dict, name: str, fn):
    start = time.perf_counter()
    result = fn()
    log[name] = round(time.perf_counter() - start, 2)
    return result


def stage_build(workdir: str) -> None:
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(workdir, "weights"), exist_ok=True)
    os.makedirs(os.path.join(workdir, "tf"), exist_ok=True)
    inputs, outputs, times = {}, {}, {}
    for case, (build, shapes, kind) in _cases().items():
        model = _timed(times, f"build {case}", build)
        _randomise_statistics(model, rng)
        arrays = [_make_input(rng, shape, kind) for shape in shapes]
        inputs.update({f"{case}/{i}": a for i, a in enumerate(arrays)})
        outputs.update(_flat_outputs(case, _forward(model, _model_inputs(arrays))))
        np.savez(os.path.join(workdir, "weights", f"{case}.npz"), *model.get_weights())
        _timed(times, f"save {case}", lambda: model.save(os.path.join(workdir, "tf", f"{case}.keras")))
    np.savez(os.path.join(workdir, "inputs.npz"), **inputs)
    np.savez(os.path.join(workdir, "outputs_build.npz"), **outputs)
    _write_json(workdir, "times_build.json", times)


def _load_inputs(workdir: str, case: str) -> list[np.ndarray]:
    with np.load(os.path.join(workdir, "inputs.npz")) as data:
        return [data[key] for key in sorted(k for k in data.files if k.startswith(case + "/"))]


def _train_steps(model: keras.Model, x: np.ndarray, y, loss, frozen_layer: str) -> dict:
    """Losses of two SGD steps through Keras' JAX trainer (jit), and which weights moved.

    `train_on_batch` returns the loss of the forward pass before its update, so the second
    step's loss is the first update's effect.
    """
    frozen_weights = model.get_layer(frozen_layer).weights
    frozen = [keras.ops.convert_to_numpy(v) for v in frozen_weights]
    trainable = [keras.ops.convert_to_numpy(v) for v in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss, jit_compile=True)
    before = float(model.train_on_batch(x, y))
    after = float(model.train_on_batch(x, y))
    return {
        "loss_before": before,
        "loss_after": after,
        "trainable_changed": sum(not np.array_equal(a, keras.ops.convert_to_numpy(v))
                                 for a, v in zip(trainable, model.trainable_weights)),
        "trainable": len(trainable),
        # No weight of the frozen parser may move, batch-norm statistics included (training=False).
        "frozen_changed": sum(not np.array_equal(a, keras.ops.convert_to_numpy(v))
                              for a, v in zip(frozen, frozen_weights)),
        "frozen": len(frozen),
    }


def stage_check(workdir: str) -> None:
    assert keras.backend.backend() == "jax", keras.backend.backend()
    import jax

    built, loaded, times = {}, {}, {}
    os.makedirs(os.path.join(workdir, "jax"), exist_ok=True)
    cases = _cases()
    for case, (build, _, _) in cases.items():
        arrays = _load_inputs(workdir, case)
        model = _timed(times, f"build {case}", build)
        with np.load(os.path.join(workdir, "weights", f"{case}.npz")) as data:
            model.set_weights([data[f"arr_{i}"] for i in range(len(data.files))])
        built.update(_flat_outputs(case, _timed(times, f"call {case}",
                                                lambda: _forward(model, _model_inputs(arrays)))))
        restored = _timed(times, f"load {case}", lambda: keras.saving.load_model(
            os.path.join(workdir, "tf", f"{case}.keras"), compile=False))
        loaded.update(_flat_outputs(case, _forward(restored, _model_inputs(arrays))))
        _timed(times, f"save {case}", lambda: restored.save(os.path.join(workdir, "jax", f"{case}.keras")))
        if case == "spreid_w_fg_shared":
            spreid = model
    np.savez(os.path.join(workdir, "outputs_built.npz"), **built)
    np.savez(os.path.join(workdir, "outputs_loaded.npz"), **loaded)

    rng = np.random.default_rng(1)
    image = _load_inputs(workdir, "spreid_w_fg_shared")[0]
    labels = rng.integers(0, IDENTITIES, len(image))
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    train = {"spreid": _timed(times, "train spreid", lambda: _train_steps(
        spreid, image, {"logits": labels}, {"logits": cross_entropy}, "parsing_branch"))}
    train["devices"] = [str(d) for d in jax.devices()]
    train["tensorflow_imported"] = "tensorflow" in sys.modules
    _write_json(workdir, "train.json", train)
    _write_json(workdir, "times_check.json", times)


def stage_load(workdir: str) -> None:
    outputs, times = {}, {}
    for case in _cases():
        model = _timed(times, f"load {case}", lambda: keras.saving.load_model(
            os.path.join(workdir, "jax", f"{case}.keras"), compile=False))
        outputs.update(_flat_outputs(case, _forward(model, _model_inputs(_load_inputs(workdir, case)))))
    np.savez(os.path.join(workdir, "outputs_reloaded.npz"), **outputs)
    _write_json(workdir, "times_load.json", times)


def _write_json(workdir: str, name: str, value) -> None:
    with open(os.path.join(workdir, name), "w") as f:
        json.dump(value, f, indent=1)


if __name__ == "__main__":
    stage_check(sys.argv[1])
