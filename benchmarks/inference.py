r"""End-to-end batch inference vs the bare model forward, same model, batch and machine.

Builds a model with random weights (or takes --saved_model), exports it with
`spreid_tf.export_lib`, writes synthetic JPEG crops shaped like re-id data, then
times, alternately, after a warm-up:

- bare forward: the SavedModel's `embed_images_uint8` on a uint8 batch already in
  memory at the model's input size (what the accelerator can do);
- end to end: `spreid_tf.inference.extract_features` over the JPEG folder (file
  reads, parallel decode and resize in tf.data, the same model calls, results back
  to numpy) plus writing the .npz, i.e. what `export/batch_infer.py` does;
- for reference, the input pipeline alone (read, decode, resize, batch; no model).

    python benchmarks/inference.py --model=baseline --input_size=492x164 \
        --num_images=256 --batch_size=64 --rounds=2

    KERAS_BACKEND=jax python benchmarks/inference.py --backend=jax --model=spreid --input_size=512x170

`--backend=jax` times only the model's forward pass (to the l2-normalised embedding) under
Keras' JAX backend, one `jax.jit` (XLA) call per batch, float32 and mixed_float16
(`--mixed_precision`), on a batch kept on the device (benchmarks/_jax_bench.py). It imports
no TensorFlow, so it runs on a GPU machine that has JAX but no TensorFlow (BUILD.md, "Keras
backends"); there is no SavedModel and no tf.data on that path.

It prints a markdown table with images/s of both and their ratio (the target is
end to end >= 90% of the bare forward), also per CPU-second of the process (all
threads), which is steadier than wall time on a shared machine. On a CPU-only machine the decode threads
and the model share the same cores, so the ratio is a lower bound of what a GPU
machine gets, where decoding overlaps with the accelerator.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

# TensorFlow and Keras are imported where they are used, after --backend has chosen Keras' backend:
# the JAX path imports no TensorFlow.
_BACKEND = flags.DEFINE_enum("backend", None, ["tensorflow", "jax"], "Keras backend: tensorflow (SavedModel, "
                             "tf.data, end to end) or jax (the model's forward pass alone, jax.jit). Default: "
                             "$KERAS_BACKEND, else tensorflow.")
_MODEL = flags.DEFINE_enum("model", "baseline", ["baseline", "spreid"], "Model to build (random weights).")
_BACKBONE = flags.DEFINE_string("backbone", "inception_v3", "Re-id backbone of the model (spreid_tf.models.BACKBONES).")
_MIXED = flags.DEFINE_enum("mixed_precision", "both", ["off", "on", "both"],
                           "--backend=jax: float32, mixed_float16, or both.")
_STEPS = flags.DEFINE_integer("steps", 20, "--backend=jax: timed batches per row, after 3 untimed ones.")
_QUICK = flags.DEFINE_boolean("quick", False, "Smoke run on a CPU (its numbers mean nothing): 96x80 input, batch 2 "
                              "(16 JPEGs with TensorFlow; 2 timed batches, float32 unless --mixed_precision is "
                              "given, with JAX).")
_INPUT_SIZE = flags.DEFINE_string("input_size", "492x164", "Model input size HxW.")
_REID_SIZE = flags.DEFINE_string("reid_input_size", None, "SPReID: re-id branch size HxW (default input).")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Time this SavedModel instead of building one.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 256, "Synthetic JPEGs in the folder.")
_SOURCE = flags.DEFINE_string("source_size", "128x64", "Size HxW of the synthetic JPEGs (Market-1501: 128x64).")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Batch size of both measurements.")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Alternating rounds; the best of each is reported.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Scratch folder (default: a temporary one, deleted).")


def _size(text: str) -> tuple[int, int]:
    height, width = text.lower().split("x")
    return int(height), int(width)


def _write_jpegs(folder: str, count: int, size: tuple[int, int]) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        coarse = rng.integers(0, 256, (1, max(size[0] // 16, 2), max(size[1] // 16, 2), 3)).astype(np.float32)
        image = tf.image.resize(coarse, size, method="bicubic")[0] + rng.normal(0, 6, (*size, 3))
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        tf.io.write_file(os.path.join(folder, f"{i:05d}.jpg"), tf.io.encode_jpeg(image, quality=90))


def _input_size() -> tuple[int, int]:
    return (96, 80) if _QUICK.value else _size(_INPUT_SIZE.value)


def _build_model():
    from spreid_tf.models import build_baseline_model, build_spreid_model

    if _MODEL.value == "baseline":
        return build_baseline_model(751, backbone=_BACKBONE.value, input_size=_input_size())
    reid = _size(_REID_SIZE.value) if _REID_SIZE.value and not _QUICK.value else None
    return build_spreid_model(751, backbone=_BACKBONE.value, input_size=_input_size(), reid_input_size=reid)


def _export(workdir: str) -> str:
    from spreid_tf import export_lib

    return export_lib.export_saved_model(_build_model(), os.path.join(workdir, "export", "1"), warmup_images=0)


class _Timer:
    """Wall-clock and process CPU seconds (all threads) of a block."""

    def __enter__(self) -> "_Timer":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def _bare_forward(embedder, count: int, batch_size: int) -> tuple[float, float]:
    """(images per wall second, images per CPU second)."""
    import tensorflow as tf

    height, width = embedder.image_size
    images = tf.constant(np.random.default_rng(1).integers(0, 256, (batch_size, height, width, 3), np.uint8))
    calls = -(-count // batch_size)
    with _Timer() as timer:
        for _ in range(calls):
            embedder(images).numpy()
    return calls * batch_size / timer.wall, calls * batch_size / timer.cpu


def _pipeline_only(source, image_size, batch_size: int) -> float:
    from spreid_tf import inference

    start = time.perf_counter()
    count = sum(int(batch["image"].shape[0]) for batch in inference.image_dataset(source, image_size, batch_size))
    return count / (time.perf_counter() - start)


def _end_to_end(embedder, source, batch_size: int, output: str) -> tuple[float, float]:
    """(images per wall second, images per CPU second)."""
    from spreid_tf import inference

    with _Timer() as timer:
        features = inference.extract_features(embedder, source, batch_size=batch_size, log_every_s=0)
        inference.save_features(output, features)
    return len(features.filenames) / timer.wall, len(features.filenames) / timer.cpu


def _device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return ", ".join(tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus)
    return f"CPU only, {os.cpu_count()} cores ({platform.processor() or platform.machine()})"


def _main_jax() -> None:
    import _jax_bench  # benchmarks/ is sys.path[0] when this file runs as a script

    if _SAVED_MODEL.value:
        raise app.UsageError("--saved_model is TensorFlow's; --backend=jax builds the model (--model, --input_size)")
    batch = 2 if _QUICK.value else _BATCH.value
    steps, warmup = (2, 1) if _QUICK.value else (_STEPS.value, 3)
    choices = {"off": [False], "on": [True], "both": [False, True]}
    precisions = [False] if _QUICK.value and not flags.FLAGS["mixed_precision"].present else choices[_MIXED.value]
    size = _input_size()
    images = np.random.default_rng(1).integers(0, 256, (batch, *size, 3), np.uint8)
    print(f"\n{datetime.date.today()} | {_jax_bench.device_description()} | {_jax_bench.versions()} | "
          f"forward pass of a random-weight {_MODEL.value} ({_BACKBONE.value}), {steps} timed batches after "
          f"{warmup}{' (--quick)' if _QUICK.value else ''}\n")
    print("| model | backbone | input | batch | precision | XLA | forward img/s | ms/batch | first calls (s) |")
    print("|---|---|---|---:|---|---|---:|---:|---:|")
    for mixed in precisions:
        r = _jax_bench.measure_forward(_build_model, images, mixed, steps, warmup)
        value = f"{r['images_per_second']:.1f}" if r["error"] is None else r["error"]
        print(f"| {_MODEL.value} | {_BACKBONE.value} | {size[0]}x{size[1]} | {batch} | "
              f"{'mixed_float16' if mixed else 'float32'} | on (jax.jit) | {value} | {r['step_ms']:.1f} | "
              f"{r['warmup_s']:.1f} |", flush=True)


def main(argv: list[str]) -> None:
    del argv
    import _jax_bench

    backend = _BACKEND.value or os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend not in ("tensorflow", "jax"):
        raise app.UsageError(f"KERAS_BACKEND={backend!r}: this benchmark runs under tensorflow or jax")
    _jax_bench.select_backend(backend)
    if backend == "jax":
        _main_jax()
        return

    import tensorflow as tf

    from spreid_tf import inference

    workdir = _WORKDIR.value or tempfile.mkdtemp(prefix="spreid_inference_bench_")
    try:
        saved_model = _SAVED_MODEL.value or _export(workdir)
        images = os.path.join(workdir, "images")
        num_images = 16 if _QUICK.value else _NUM_IMAGES.value
        _write_jpegs(images, num_images, _size(_SOURCE.value))
        embedder = inference.load_embedder(saved_model)
        source = inference.resolve_inputs(images)
        batch = 2 if _QUICK.value else _BATCH.value
        # Warm-up: the first calls of the model and of a tf.data pipeline build and tune them.
        _bare_forward(embedder, 2 * batch, batch)
        _end_to_end(embedder, inference.resolve_inputs(list(source.paths[:batch])), batch,
                    os.path.join(workdir, "warmup.npz"))
        bare, e2e, pipeline = [], [], []
        for _ in range(_ROUNDS.value):
            bare.append(_bare_forward(embedder, num_images, batch))
            e2e.append(_end_to_end(embedder, source, batch, os.path.join(workdir, "features.npz")))
            pipeline.append(_pipeline_only(source, embedder.image_size, batch))
        best_bare, best_e2e = max(b[0] for b in bare), max(e[0] for e in e2e)
        median_ratio = float(np.median([e[0] / b[0] for b, e in zip(bare, e2e)]))
        cpu_bare, cpu_e2e = max(b[1] for b in bare), max(e[1] for e in e2e)
        print(f"\n{datetime.date.today()} | {_device()} | TF {tf.__version__} | "
              f"{embedder.description.split(' ')[0]} of a random-weight {_MODEL.value}\n")
        print("| model | input | batch | images | bare forward img/s | end to end img/s | ratio (best) "
              "| ratio (median of rounds) | ratio per CPU-second | input pipeline alone img/s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        print(f"| {_MODEL.value} | {embedder.image_size[0]}x{embedder.image_size[1]} | {batch} | "
              f"{num_images} ({_SOURCE.value} JPEG) | {best_bare:.1f} | {best_e2e:.1f} | "
              f"{best_e2e / best_bare:.0%} | {median_ratio:.0%} | {cpu_e2e / cpu_bare:.0%} | {max(pipeline):.0f} |")
        print(f"\nrounds (wall img/s, CPU img/s): bare {[(round(w, 1), round(c, 2)) for w, c in bare]}, "
              f"end to end {[(round(w, 1), round(c, 2)) for w, c in e2e]}, "
              f"pipeline alone {[round(v) for v in pipeline]}")
    finally:
        if not _WORKDIR.value:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
