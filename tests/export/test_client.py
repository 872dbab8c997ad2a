"""The serving client's wire formats, run through the SavedModel signature as TF Serving would."""

import importlib.util
import json
import os

import numpy as np
import pytest
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_client():
    spec = importlib.util.spec_from_file_location("spreid_serving_client",
                                                  os.path.join(REPO, "export", "serving", "client.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


client = _load_client()


@pytest.fixture(scope="module")
def serve(loaded_baseline):
    return loaded_baseline.signatures["serving_default"]


@pytest.fixture(scope="module")
def expected(serve, image_bytes):
    return serve(image_bytes=tf.constant(image_bytes))["embedding"].numpy()


def test_predict_request_runs_through_the_signature(serve, image_bytes, expected):
    from tensorflow_serving.apis import predict_pb2

    request = client.make_predict_request(image_bytes, model_name="spreid", version=1)
    # Over the wire and back.
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert request.model_spec.signature_name == "serving_default" and request.model_spec.version.value == 1
    tensors = client.predict_request_to_tensors(request)
    assert set(tensors) == {"image_bytes"} and tensors["image_bytes"].dtype == tf.string
    outputs = serve(**tensors)
    np.testing.assert_allclose(outputs["embedding"], expected, atol=1e-6)
    response = predict_pb2.PredictResponse()
    response.outputs["embedding"].CopyFrom(tf.make_tensor_proto(outputs["embedding"]))
    np.testing.assert_allclose(client.embeddings_from_predict_response(response), expected, atol=1e-6)


@pytest.mark.parametrize("columnar", [False, True])
def test_rest_json_body_with_b64_runs_through_the_signature(serve, image_bytes, expected, columnar):
    body = json.dumps(client.rest_request_body(image_bytes, columnar=columnar))
    parsed = json.loads(body)
    assert ("inputs" if columnar else "instances") in parsed
    first = parsed["inputs"]["image_bytes"][0] if columnar else parsed["instances"][0]["image_bytes"]
    assert set(first) == {"b64"}
    outputs = serve(**client.rest_body_to_tensors(body))
    np.testing.assert_allclose(outputs["embedding"], expected, atol=1e-6)
    # TF Serving's answers: row format "predictions", columnar "outputs" (one output: bare values).
    key = "outputs" if columnar else "predictions"
    reply = json.dumps({key: outputs["embedding"].numpy().tolist()})
    np.testing.assert_allclose(client.embeddings_from_rest_response(reply), expected, atol=1e-6)


def test_bare_b64_instances_of_a_one_input_signature(serve, image_bytes, expected):
    body = {"instances": [{"b64": v["image_bytes"]["b64"]}
                          for v in client.rest_request_body(image_bytes)["instances"]]}
    np.testing.assert_allclose(serve(**client.rest_body_to_tensors(body))["embedding"], expected, atol=1e-6)


def test_embed_files_skips_unreadable_and_rejected_images(serve, image_bytes, expected, tmp_path):
    names = ["a.jpg", "b.png", "empty.jpg", "text.png", "corrupt.jpg", "c.jpg"]
    contents = [image_bytes[0], image_bytes[1], b"", b"hello", b"\xff\xd8\xff\xe0" + bytes(100), image_bytes[2]]
    for name, data in zip(names, contents):
        (tmp_path / name).write_bytes(data)
    calls = []

    def predict(images):  # the REST path, served by the signature; bad images -> HTTP 400
        calls.append(len(images))
        try:
            outputs = serve(**client.rest_body_to_tensors(json.dumps(client.rest_request_body(images))))
        except tf.errors.InvalidArgumentError as error:
            raise client.ServerError(error.message, invalid_argument=True) from error
        return client.embeddings_from_rest_response({"predictions": outputs["embedding"].numpy().tolist()})

    paths = client.list_images(str(tmp_path))
    assert [os.path.basename(p) for p in paths] == sorted(names)
    result = client.embed_files(paths, predict, batch_size=8, log=lambda message: None)
    assert [os.path.basename(f) for f in result["filenames"]] == ["a.jpg", "b.png", "c.jpg"]
    np.testing.assert_allclose(result["embeddings"], expected[:3], atol=1e-6)
    reasons = {os.path.basename(f): r for f, r in result["skipped"]}
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["text.png"] == "not a JPEG or PNG file"
    assert "rejected by the server" in reasons["corrupt.jpg"] and "does not decode" in reasons["corrupt.jpg"]
    assert calls[0] == 4 and len(calls) == 5  # one failed batch of 4, then one by one
    client.save_npz(str(tmp_path / "out" / "emb.npz"), result)
    saved = np.load(tmp_path / "out" / "emb.npz")
    assert list(saved["skipped_filenames"]) == [f for f, _ in result["skipped"]]
    assert os.listdir(tmp_path / "out") == ["emb.npz"]


def test_no_server_is_one_line_naming_the_flags(tmp_path):
    import socket
    import subprocess
    import sys

    import cv2

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    done = subprocess.run([sys.executable, "export/serving/client.py", f"--server=127.0.0.1:{port}",
                           f"--images={tmp_path}", f"--output={tmp_path / 'out.npz'}"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot reach TF Serving's REST API at 127.0.0.1:")
    assert "--server" in done.stderr and not (tmp_path / "out.npz").exists()


def test_local_saved_model_mode_runs_the_rest_requests_without_a_server(baseline, image_bytes, expected, tmp_path):
    names = ["a.jpg", "b.png", "truncated.jpg", "c.jpg"]
    contents = [image_bytes[0], image_bytes[1], image_bytes[0][:len(image_bytes[0]) // 2], image_bytes[2]]
    for name, data in zip(names, contents):
        (tmp_path / name).write_bytes(data)
    predict = client.local_predict_fn(baseline.export_dir)
    result = client.embed_files(client.list_images(str(tmp_path)), predict, batch_size=8, log=lambda message: None)
    assert [os.path.basename(f) for f in result["filenames"]] == ["a.jpg", "b.png", "c.jpg"]
    np.testing.assert_allclose(result["embeddings"], expected[:3], atol=1e-6)
    (skipped, reason), = result["skipped"]
    assert os.path.basename(skipped) == "truncated.jpg"
    assert "image_bytes[0] starts like an image but its data does not decode (corrupt or truncated)" in reason
    with pytest.raises(SystemExit, match="--signature_name='nope' is not in"):
        client.local_predict_fn(baseline.export_dir, "nope")
    with pytest.raises(SystemExit, match="--saved_model=.* is not a SavedModel version folder"):
        client.local_predict_fn(str(tmp_path))
