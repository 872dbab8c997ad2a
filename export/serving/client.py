r"""TF Serving client: embeds a folder of images through a served spreid model.

    # REST (port 8501)
    python export/serving/client.py --server=localhost:8501 --images=query_dir --output=query.npz
    # gRPC (port 8500; needs tensorflow-serving-api)
    python export/serving/client.py --protocol=grpc --server=localhost:8500 \
        --images=query_dir --output=query.npz

The client sends the encoded files as they are (the server decodes and resizes them
in-graph, exactly as in evaluation) and writes `embeddings` (float32, l2-normalised),
`filenames`, `skipped_filenames` and `skipped_reasons` to the .npz. Files that are
not JPEG/PNG are skipped before sending; when the server rejects a batch
(InvalidArgument: a corrupt image), its images are retried one by one so that only
the bad ones are skipped.

Stand-alone: it does not import spreid_tf. REST needs only numpy and absl-py; gRPC and the
PredictRequest helpers need tensorflow-serving-api (and so TensorFlow).

The conversion helpers (`rest_body_to_tensors`, `predict_request_to_tensors`) turn a
request into the tensors the server feeds to the signature, as TF Serving does; the
tests run them against the SavedModel to check the wire formats end to end.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
IMAGE_BYTES = "image_bytes"
EMBEDDING = "embedding"
SERVING_DEFAULT = "serving_default"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


class ServerError(RuntimeError):
    """The server refused a request; `invalid_argument` is True for bad inputs."""

    def __init__(self, message: str, invalid_argument: bool = False):
        super().__init__(message)
        self.invalid_argument = invalid_argument


# ---------------------------------------------------------------------- REST format


def rest_request_body(images: Sequence[bytes], signature_name: str = SERVING_DEFAULT,
                      columnar: bool = False) -> dict:
    """The JSON body of POST /v1/models/<name>:predict for encoded images.

    Row format: {"signature_name", "instances": [{"image_bytes": {"b64": ...}}, ...]};
    columnar: {"signature_name", "inputs": {"image_bytes": [{"b64": ...}, ...]}}.
    Binary values travel base64-encoded in {"b64": ...} objects (TF Serving's rule for
    inputs whose name ends in "_bytes").
    """
    values = [{"b64": base64.b64encode(data).decode("ascii")} for data in images]
    if columnar:
        return {"signature_name": signature_name, "inputs": {IMAGE_BYTES: values}}
    return {"signature_name": signature_name, "instances": [{IMAGE_BYTES: v} for v in values]}


def _decode_json_value(value):
    if isinstance(value, Mapping) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_json_value(v) for v in value]
    return value


def rest_body_to_tensors(body: Mapping | str) -> dict:
    """Converts a predict JSON body to the signature's input tensors, as TF Serving does.

    Accepts the row ("instances", each a {name: value} object or, for one-input
    signatures, a bare value) and columnar ("inputs") forms; {"b64": ...} becomes
    bytes. Returns {input name: tf.Tensor}.
    """
    import tensorflow as tf

    if isinstance(body, str):
        body = json.loads(body)
    if "instances" in body:
        instances = body["instances"]
        if instances and all(isinstance(i, Mapping) and set(i) != {"b64"} for i in instances):
            names = list(instances[0])
            columns = {name: [_decode_json_value(i[name]) for i in instances] for name in names}
        else:
            columns = {IMAGE_BYTES: [_decode_json_value(i) for i in instances]}
    elif "inputs" in body:
        inputs = body["inputs"]
        columns = {name: _decode_json_value(v) for name, v in inputs.items()} if isinstance(inputs, Mapping) \
            else {IMAGE_BYTES: _decode_json_value(inputs)}
    else:
        raise ValueError("a predict body needs 'instances' (row format) or 'inputs' (columnar format)")
    return {name: tf.constant(values, dtype=tf.string if name.endswith("_bytes") else None)
            for name, values in columns.items()}


def embeddings_from_rest_response(response: Mapping | str) -> np.ndarray:
    """float32 (N, D) from a predict response: {"predictions": ...} or {"outputs": ...}."""
    if isinstance(response, str):
        response = json.loads(response)
    if "error" in response:
        raise ServerError(response["error"])
    values = response.get("predictions", response.get("outputs"))
    if values is None:
        raise ValueError(f"no 'predictions' or 'outputs' in the response: {sorted(response)}")
    if isinstance(values, Mapping):  # columnar, several outputs
        values = values[EMBEDDING]
    elif values and isinstance(values[0], Mapping):  # rows, several outputs
        values = [row[EMBEDDING] for row in values]
    return np.asarray(values, dtype=np.float32).reshape(len(values), -1)


# ---------------------------------------------------------------------- gRPC format


def make_predict_request(images: Sequence[bytes], model_name: str = "spreid",
                         signature_name: str = SERVING_DEFAULT, version: int | None = None):
    """A tensorflow_serving PredictRequest with `image_bytes` = the encoded images."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    request.inputs[IMAGE_BYTES].CopyFrom(tf.make_tensor_proto(list(images), dtype=tf.string))
    request.output_filter.append(EMBEDDING)
    return request


def predict_request_to_tensors(request) -> dict:
    """{input name: tf.Tensor} from a PredictRequest, as TF Serving feeds the signature."""
    import tensorflow as tf

    return {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}


def embeddings_from_predict_response(response) -> np.ndarray:
    """float32 (N, D) from a PredictResponse."""
    import tensorflow as tf

    return tf.make_ndarray(response.outputs[EMBEDDING]).astype(np.float32)


# -------------------------------------------------------------------------- clients


def rest_predict_fn(server: str, model_name: str = "spreid", signature_name: str = SERVING_DEFAULT,
                    version: int | None = None, timeout_s: float = 60.0,
                    columnar: bool = False) -> Callable[[Sequence[bytes]], np.ndarray]:
    """A function images -> embeddings that POSTs to http://<server>/v1/models/<name>:predict."""
    base = server if server.startswith(("http://", "https://")) else f"http://{server}"
    version_part = f"/versions/{version}" if version is not None else ""
    url = f"{base}/v1/models/{model_name}{version_part}:predict"

    def predict(images: Sequence[bytes]) -> np.ndarray:
        body = json.dumps(rest_request_body(images, signature_name, columnar)).encode("utf-8")
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as reply:
                return embeddings_from_rest_response(reply.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            try:
                text = json.loads(text).get("error", text)
            except ValueError:
                pass
            raise ServerError(f"{url}: HTTP {error.code}: {text}", invalid_argument=error.code == 400) from error

    return predict


def grpc_predict_fn(server: str, model_name: str = "spreid", signature_name: str = SERVING_DEFAULT,
                    version: int | None = None, timeout_s: float = 60.0,
                    max_message_bytes: int = 64 << 20) -> Callable[[Sequence[bytes]], np.ndarray]:
    """A function images -> embeddings calling PredictionService/Predict on <server> (host:port)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(server, options=[("grpc.max_send_message_length", max_message_bytes),
                                                     ("grpc.max_receive_message_length", max_message_bytes)])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def predict(images: Sequence[bytes]) -> np.ndarray:
        request = make_predict_request(images, model_name, signature_name, version)
        try:
            return embeddings_from_predict_response(stub.Predict(request, timeout=timeout_s))
        except grpc.RpcError as error:
            invalid = error.code() == grpc.StatusCode.INVALID_ARGUMENT
            raise ServerError(f"{server}: {error.code().name}: {error.details()}", invalid) from error

    predict.channel = channel  # type: ignore[attr-defined]
    return predict


def local_predict_fn(saved_model: str, signature_name: str = SERVING_DEFAULT,
                     columnar: bool = False) -> Callable[[Sequence[bytes]], np.ndarray]:
    """Images -> embeddings without a server: each batch's REST body is built, turned into the
    signature's tensors as TF Serving turns it (`rest_body_to_tensors`), and run on the
    SavedModel in this process. For trying an export and the client before deploying."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the skip list names each rejected image
    import tensorflow as tf

    if not os.path.isfile(os.path.join(saved_model, "saved_model.pb")):
        raise SystemExit(f"error: --saved_model={saved_model!r} is not a SavedModel version folder "
                         "(no saved_model.pb)")
    loaded = tf.saved_model.load(saved_model)
    if signature_name not in loaded.signatures:
        raise SystemExit(f"error: --signature_name={signature_name!r} is not in {saved_model} "
                         f"(it has {sorted(loaded.signatures)})")
    signature = loaded.signatures[signature_name]

    def predict(images: Sequence[bytes]) -> np.ndarray:
        body = json.dumps(rest_request_body(images, signature_name, columnar))
        try:
            outputs = signature(**rest_body_to_tensors(body))
        except tf.errors.InvalidArgumentError as error:
            lines = [line.strip() for line in error.message.splitlines() if "image_bytes" in line]
            raise ServerError(f"{saved_model}: {(lines or [error.message.strip()])[0]}",
                              invalid_argument=True) from error
        key = "predictions" if not columnar else "outputs"
        return embeddings_from_rest_response({key: outputs["embedding"].numpy().tolist()})

    return predict


# ------------------------------------------------------------------------- folders


def list_images(spec: str) -> list[str]:
    """A folder (recursively), a glob or a list file (.txt) -> sorted image paths."""
    import glob

    if os.path.isdir(spec):
        return sorted(os.path.join(root, name) for root, _, names in os.walk(spec)
                      for name in names if name.lower().endswith(IMAGE_EXTENSIONS))
    if spec.endswith(".txt") and os.path.isfile(spec):
        base = os.path.dirname(os.path.abspath(spec))
        with open(spec) as f:
            return [p if os.path.isabs(p) else os.path.join(base, p) for p in (line.strip() for line in f) if p]
    return sorted(glob.glob(spec, recursive=True))


def embed_files(paths: Sequence[str], predict: Callable[[Sequence[bytes]], np.ndarray], batch_size: int = 32,
                log: Callable[[str], None] = lambda message: print(message, file=sys.stderr)) -> dict:
    """Embeds image files through `predict`, skipping unreadable or rejected ones.

    Returns:
        {"embeddings" float32 (N, D), "filenames" (N,), "skipped": [(path, reason)]}.
    """
    embeddings: list[np.ndarray] = []
    filenames: list[str] = []
    skipped: list[tuple[str, str]] = []
    batch: list[tuple[str, bytes]] = []

    def send(items: list[tuple[str, bytes]]) -> None:
        try:
            embeddings.append(predict([data for _, data in items]))
            filenames.extend(path for path, _ in items)
        except ServerError as error:
            if not error.invalid_argument:
                raise
            if len(items) > 1:  # one bad image fails the whole batch: find it
                for item in items:
                    send([item])
                return
            skipped.append((items[0][0], f"rejected by the server: {error}"))
            log(f"skipped {items[0][0]}: {error}")

    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as error:
            skipped.append((path, f"cannot read: {error.strerror or error}"))
            continue
        if not data.startswith(_MAGIC):
            reason = "empty file (0 bytes)" if not data else "not a JPEG or PNG file"
            skipped.append((path, reason))
            log(f"skipped {path}: {reason}")
            continue
        batch.append((path, data))
        if len(batch) >= batch_size:
            send(batch)
            batch = []
    if batch:
        send(batch)
    stacked = np.concatenate(embeddings) if embeddings else np.zeros([0, 0], np.float32)
    return {"embeddings": stacked, "filenames": np.array(filenames, dtype=str), "skipped": skipped}


def save_npz(path: str, result: Mapping) -> None:
    """Writes the result of `embed_files` to an .npz atomically (temporary file, then rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, embeddings=result["embeddings"], filenames=result["filenames"],
                     skipped_filenames=np.array([p for p, _ in result["skipped"]], dtype=str),
                     skipped_reasons=np.array([r for _, r in result["skipped"]], dtype=str))
        # mkstemp makes the file 0600; give it what open() would (stand-alone: not spreid_tf.atomic).
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def main(argv: Sequence[str]) -> None:
    del argv
    flags = FLAGS
    paths = list_images(flags.images)
    if not paths:
        raise SystemExit(f"no images match {flags.images!r}")
    if flags.saved_model:
        predict = local_predict_fn(flags.saved_model, flags.signature_name, flags.columnar)
    elif flags.protocol == "rest":
        predict = rest_predict_fn(flags.server, flags.model_name, flags.signature_name, flags.model_version,
                                  flags.timeout_s, flags.columnar)
    else:
        predict = grpc_predict_fn(flags.server, flags.model_name, flags.signature_name, flags.model_version,
                                  flags.timeout_s)
    try:
        result = embed_files(paths, predict, flags.batch_size)
    except ServerError as e:  # HTTP or gRPC status from (or on the way to) the server
        if flags.saved_model:
            raise SystemExit(f"error: {e} (--saved_model, --signature_name)") from None
        raise SystemExit(f"error: TF Serving at {flags.server}: {e} (--server, --protocol, --model_name, "
                         "--model_version, --signature_name)") from None
    except urllib.error.URLError as e:
        raise SystemExit(f"error: cannot reach TF Serving's REST API at {flags.server}: {e.reason} "
                         "(is the server running? --server, --protocol)") from None
    save_npz(flags.output, result)
    print(f"{flags.output}: {len(result['filenames'])} embeddings, {len(result['skipped'])} skipped",
          file=sys.stderr)


def define_flags() -> None:
    """Flags of the client binary."""
    flags.DEFINE_string("server", "localhost:8501", "host:port of TF Serving (8501 REST, 8500 gRPC).")
    flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "Wire protocol.")
    flags.DEFINE_string("model_name", "spreid", "Model name in models.config.")
    flags.DEFINE_integer("model_version", None, "Version to query (default: the server's latest).")
    flags.DEFINE_string("signature_name", SERVING_DEFAULT, "Signature to call.")
    flags.DEFINE_string("images", None, "Image folder, glob or .txt list.", required=True)
    flags.DEFINE_string("output", None, "The .npz to write.", required=True)
    flags.DEFINE_integer("batch_size", 32, "Images per request.")
    flags.DEFINE_float("timeout_s", 60.0, "Per-request timeout.")
    flags.DEFINE_bool("columnar", False, "REST: send the columnar 'inputs' form instead of 'instances'.")
    flags.DEFINE_string("saved_model", None, "No server: run the REST requests on this exported version folder "
                        "in this process (needs TensorFlow), to try an export and the client before serving.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
