import json
import os
import shutil
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from spreid_tf import export_lib, lip
from spreid_tf.data import pipelines
from spreid_tf.models import build_baseline_model, build_parsing_model, build_spreid_model


def _decoded(encoded, size):
    return tf.stack([pipelines.resize_uint8(pipelines.decode_image(b), size) for b in encoded])


def test_saved_model_cli_lists_the_signatures(baseline, spreid, loaded_baseline, python):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out = python([cli, "show", "--all", "--dir", spreid.export_dir]).stdout
    for name in export_lib.SIGNATURES["spreid"]:
        assert f"signature_def['{name}']" in out
    assert "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in out
    assert "outputs['embedding'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 6144)" in out
    assert "outputs['semantic_maps'] tensor_info:\n        dtype: DT_FLOAT" in out
    assert "outputs['labels'] tensor_info:\n        dtype: DT_INT32\n        shape: (-1, 96, 80)" in out
    assert set(loaded_baseline.signatures) == set(export_lib.SIGNATURES["baseline"])


def test_a_fresh_process_without_spreid_tf_matches_keras(baseline, spreid, image_bytes, keras_embeddings,
                                                         python, tmp_path):
    for i, data in enumerate(image_bytes):
        (tmp_path / f"image{i}").write_bytes(data)
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        import numpy as np
        import tensorflow as tf
        images = [open(r"{tmp_path}/image%d" % i, "rb").read() for i in range({len(image_bytes)})]
        out = {{}}
        for name, path in (("baseline", r"{baseline.export_dir}"), ("spreid", r"{spreid.export_dir}")):
            loaded = tf.saved_model.load(path)
            result = loaded.signatures["serving_default"](image_bytes=tf.constant(images))
            out[name] = result["embedding"].numpy()
            out[name + "_dtype"] = np.array(str(result["embedding"].dtype))
        np.savez(r"{tmp_path}/out.npz", **out)
        assert "spreid_tf" not in sys.modules, "the SavedModel pulled in spreid_tf"
        print("spreid_tf imported:", "spreid_tf" in sys.modules)
    """))
    result = python([str(script)], cwd=str(tmp_path))
    assert "spreid_tf imported: False" in result.stdout
    out = np.load(tmp_path / "out.npz")
    for name, exported in (("baseline", baseline), ("spreid", spreid)):
        assert str(out[name + "_dtype"]) == "<dtype: 'float32'>"
        expected = keras_embeddings(exported.model, image_bytes, exported.size)
        assert out[name].shape == expected.shape
        np.testing.assert_allclose(out[name], expected, atol=1e-4, rtol=0)
        np.testing.assert_allclose(np.linalg.norm(out[name], axis=1), 1.0, atol=1e-5)


def test_embed_images_signatures_take_tensors_at_any_size(loaded_baseline, baseline, image_bytes):
    reference = loaded_baseline.signatures["serving_default"](image_bytes=tf.constant(image_bytes))["embedding"]
    at_size = _decoded(image_bytes, baseline.size)
    as_uint8 = loaded_baseline.signatures["embed_images_uint8"](images=at_size)["embedding"]
    as_float = loaded_baseline.signatures["embed_images"](images=tf.cast(at_size, tf.float32))["embedding"]
    np.testing.assert_allclose(as_uint8, reference, atol=1e-6)
    np.testing.assert_allclose(as_float, reference, atol=1e-6)
    # A uint8 batch at another size is resized in-graph exactly as in evaluation.
    other = tf.stack([pipelines.resize_uint8(pipelines.decode_image(b), (100, 60)) for b in image_bytes])
    resized = loaded_baseline.signatures["embed_images_uint8"](images=other)["embedding"]
    expected = loaded_baseline.signatures["embed_images_uint8"](
        images=pipelines.resize_uint8(other, baseline.size))["embedding"]
    np.testing.assert_allclose(resized, expected, atol=1e-6)
    np.testing.assert_array_equal(loaded_baseline.image_size(), baseline.size)


def test_parse_signature_gives_the_grouped_maps_and_lip_labels(loaded_spreid, spreid, parsing_model, image_bytes):
    out = loaded_spreid.signatures["parse"](image_bytes=tf.constant(image_bytes))
    images = tf.cast(_decoded(image_bytes, spreid.size), tf.float32)
    maps_model = keras.Model(spreid.model.input, spreid.model.get_layer("semantic_maps").output)
    expected_maps = np.asarray(maps_model(images, training=False))
    assert out["semantic_maps"].dtype == tf.float32 and out["semantic_maps"].shape[-1] == len(lip.GROUP_NAMES)
    np.testing.assert_allclose(out["semantic_maps"], expected_maps, atol=1e-5)
    probabilities = np.asarray(parsing_model(images, training=False)["probabilities"])
    assert out["labels"].dtype == tf.int32 and out["labels"].shape == (len(image_bytes), *spreid.size)
    np.testing.assert_array_equal(out["labels"], probabilities.argmax(-1))
    # GROUP_NAMES order: foreground first, = 1 - p(background) on the parsing grid.
    logits = keras.Model(spreid.model.input, spreid.model.get_layer("parsing_stop_gradient").output)(images)
    np.testing.assert_allclose(out["semantic_maps"][..., 0], 1 - tf.nn.softmax(logits)[..., 0], atol=1e-5)


@pytest.mark.slow
def test_bare_parsing_model_export(parsing_model, image_bytes, tmp_path):
    with pytest.raises(ValueError, match="pass image_size"):
        export_lib.export_saved_model(parsing_model, tmp_path / "parsing" / "1")
    path = export_lib.export_saved_model(parsing_model, tmp_path / "parsing" / "1", image_size=(96, 80),
                                         warmup_images=1)
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {"serving_default", "parse"}
    out = loaded.signatures["serving_default"](image_bytes=tf.constant(image_bytes[:2]))
    images = tf.cast(_decoded(image_bytes[:2], (96, 80)), tf.float32)
    outputs = parsing_model(images, training=False)
    np.testing.assert_array_equal(out["labels"], np.asarray(outputs["probabilities"]).argmax(-1))
    expected_maps = export_lib.group_lip_probabilities(tf.nn.softmax(outputs["logits"]))
    np.testing.assert_allclose(out["semantic_maps"], expected_maps, atol=1e-5)
    shutil.rmtree(tmp_path / "parsing")  # ~170 MB


@pytest.mark.parametrize("bad, message", [
    (b"not an image at all", r"image_bytes\[1\] is not a JPEG or PNG image .*: 19 bytes, first bytes \[110 111"),
    (b"", r"image_bytes\[1\] is not a JPEG or PNG image .*: 0 bytes"),
    (b"RIFF", r"image_bytes\[1\] is not a JPEG or PNG image .*: 4 bytes, first bytes \[82 73 70 70\]"),
    (b"\xff\xd8\xff\xe0" + bytes(200), r"image_bytes\[1\] starts like an image but its data does not decode "
                                        r"\(corrupt or truncated\): 204 bytes"),
    ("truncated", r"image_bytes\[1\] starts like an image but its data does not decode"),
])
def test_invalid_bytes_are_invalid_argument_and_serving_goes_on(loaded_baseline, image_bytes, bad, message):
    serve = loaded_baseline.signatures["serving_default"]
    if bad == "truncated":
        bad = image_bytes[1][:len(image_bytes[1]) // 2]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(image_bytes=tf.constant([image_bytes[0], bad]))
    # Every failure is counted and listed, the first one described.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"2 of 3 images failed to decode: \[1 2\]"):
        serve(image_bytes=tf.constant([image_bytes[0], bad, bad]))
    assert serve(image_bytes=tf.constant(image_bytes[:2]))["embedding"].shape == (2, 2048)


def test_warmup_requests_replay_through_the_signatures(spreid, loaded_spreid):
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(spreid.export_dir, "assets.extra", "tf_serving_warmup_requests")
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == \
        ["serving_default", "serving_default", "parse", "parse"]
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "spreid"
        images = tf.make_ndarray(request.inputs["image_bytes"])
        outputs = loaded_spreid.signatures[request.model_spec.signature_name](image_bytes=tf.constant(images))
        assert all(v.shape[0] == len(images) for v in outputs.values())
    metadata = json.load(open(os.path.join(spreid.export_dir, "assets.extra", "spreid_export.json")))
    assert metadata["kind"] == "spreid" and metadata["image_size"] == list(spreid.size)
    assert metadata["group_names"] == list(lip.GROUP_NAMES)
    assert metadata["signatures"]["serving_default"]["outputs"]["embedding"]["shape"] == [None, 6144]
    assert metadata["signatures"]["serving_default"]["inputs"] == {"image_bytes": {"dtype": "string",
                                                                                   "shape": [None]}}
    assert all(entry["inputs"] for entry in metadata["signatures"].values())


def test_export_is_atomic_and_never_overwrites_by_accident(baseline, monkeypatch, tmp_path):
    with pytest.raises(FileExistsError, match="immutable"):
        export_lib.export_saved_model(baseline.model_dir, baseline.export_dir)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    # Fails after the temporary folder exists, before anything is traced (fast).
    monkeypatch.setattr(export_lib.ServingModule, "signatures", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        export_lib.export_saved_model(baseline.model, tmp_path / "m" / "1")
    assert os.listdir(tmp_path / "m") == []  # no version folder, no temporary left behind


def _check_float32_layers(build):
    """In a model built under mixed_float16, exactly the layers apply_mixed_precision keeps are float32."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = build()
    keras.mixed_precision.set_global_policy("float32")
    for layer in export_lib._all_layers(model):
        kept = layer.name in export_lib.FLOAT32_LAYER_NAMES or isinstance(layer, export_lib._FLOAT32_LAYER_TYPES)
        assert kept == (layer.dtype_policy.name == "float32"), (layer.name, layer.dtype_policy.name)


def test_apply_mixed_precision_matches_building_under_the_policy():
    _check_float32_layers(lambda: build_baseline_model(3, input_size=(80, 80)))
    _check_float32_layers(lambda: build_parsing_model(input_shape=(96, 80, 3)))
    model = export_lib.apply_mixed_precision(build_baseline_model(3, input_size=(80, 80)), "mixed_bfloat16")
    policies = {layer.name: layer.dtype_policy.name for layer in export_lib._all_layers(model)}
    assert policies["embedding"] == "float32" and policies["global_pool"] == "mixed_bfloat16"


@pytest.mark.slow
def test_apply_mixed_precision_matches_building_spreid_under_the_policy():
    _check_float32_layers(lambda: build_spreid_model(3, input_size=(96, 80)))


def test_mixed_precision_model_exports_float32_outputs(image_bytes, tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(3)
    model = build_baseline_model(3, input_size=(80, 80))
    keras.mixed_precision.set_global_policy("float32")
    path = export_lib.export_saved_model(model, tmp_path / "exports" / "1", warmup_images=1)
    loaded = tf.saved_model.load(path)
    assert loaded.signatures["serving_default"].structured_outputs["embedding"].dtype == tf.float32
    embedding = loaded.signatures["serving_default"](image_bytes=tf.constant(image_bytes[:2]))["embedding"]
    assert embedding.dtype == tf.float32
    reference = model(tf.cast(_decoded(image_bytes[:2], (80, 80)), tf.float32))["embedding"]
    reference = reference / tf.norm(reference, axis=1, keepdims=True)
    np.testing.assert_allclose(embedding, reference, atol=1e-3)
    shutil.rmtree(tmp_path / "exports")  # ~90 MB


def test_the_export_is_readable_by_other_users_as_the_umask_allows(baseline):
    """TF Serving may run as another user: no 0700 version folder, no 0600 files."""
    import stat

    from spreid_tf import atomic

    readable_files, readable_folders = atomic.file_mode() & 0o444, atomic.folder_mode() & 0o555
    assert stat.S_IMODE(os.stat(baseline.export_dir).st_mode) == atomic.folder_mode()
    for root, folders, files in os.walk(baseline.export_dir):
        for name in folders:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) & 0o555 == readable_folders, name
        for name in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) & 0o444 == readable_files, name



def test_export_logs_no_wall_of_input_names(baseline, tmp_path):
    import logging

    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    absl_logger = logging.getLogger("absl")  # TensorFlow's saver logs through absl, as the binaries show
    level = absl_logger.level
    absl_logger.setLevel(logging.INFO)
    absl_logger.addHandler(handler)
    try:
        export_lib.export_saved_model(baseline.model_dir, str(tmp_path / "1"), warmup_images=0)
        logging.getLogger("absl").info("probe")  # the capture works: this line is seen
    finally:
        absl_logger.removeHandler(handler)
        absl_logger.setLevel(level)
    messages = [r.getMessage() for r in records]
    assert "probe" in messages
    assert not [m for m in messages if "contains input name" in m]
    assert max(len(m) for m in messages) < 1000


def test_write_warmup_names_the_image_that_does_not_decode(baseline, image_bytes, tmp_path, python):
    import subprocess

    export_dir = tmp_path / "1"
    shutil.copytree(baseline.export_dir, export_dir)
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(image_bytes[0])
    (images / "b.jpg").write_bytes(image_bytes[0][: len(image_bytes[0]) // 2])  # truncated
    args = [sys.executable, "export/serving/write_warmup.py", f"--saved_model={export_dir}", f"--images={images}"]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {images / 'b.jpg'}: ")
    (images / "b.jpg").unlink()
    python(["export/serving/write_warmup.py", f"--saved_model={export_dir}", f"--images={images}"])
    assert (export_dir / "assets.extra" / export_lib.WARMUP_FILENAME).stat().st_size > 0
