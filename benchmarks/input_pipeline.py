r"""Throughput of the tf.data input pipelines on synthetic TFRecords.

Writes a temporary TFRecord set shaped like the real data (re-id crops of 128x64 as
JPEG; LIP-like images of ~300x200 as JPEG with PNG label masks), then times each
pipeline of `spreid_tf.data.pipelines` at the paper's sizes after a warm-up and
prints a markdown table of images per second.

    python benchmarks/input_pipeline.py \
        --num_reid=2000 --num_parsing=400 --batch_sizes=15,64 --seconds=3

Synthetic images are smooth (upsampled blocks plus mild noise) so that their JPEG
sizes and decode costs resemble real photographs rather than white noise.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from spreid_tf import lip  # noqa: E402
from spreid_tf.data import pipelines, schema  # noqa: E402

_NUM_REID = flags.DEFINE_integer("num_reid", 2000, "Synthetic re-id images to write.")
_REID_SOURCE = flags.DEFINE_string("reid_source", "128x64", "Re-id source size HxW.")
_NUM_PARSING = flags.DEFINE_integer("num_parsing", 400, "Synthetic LIP-like images to write.")
_PARSING_SOURCE = flags.DEFINE_string(
    "parsing_source", "300x200", "Mean LIP-like source size HxW (each varies by +-20%)."
)
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 8, "Shards per synthetic split.")
_TRAIN_SIZES = flags.DEFINE_list(
    "train_sizes", ["492x164", "512x170", "748x246"], "Re-id output sizes HxW (train and eval)."
)
_CROP = flags.DEFINE_string("parsing_crop", "512x512", "Parsing crop size HxW.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["15", "64"], "Batch sizes to time.")
_PIPELINES = flags.DEFINE_list(
    "pipelines", ["train", "eval", "parsing_train", "parsing_eval"], "Pipelines to time."
)
_WARMUP = flags.DEFINE_integer("warmup_batches", 5, "Batches discarded before timing.")
_SECONDS = flags.DEFINE_float("seconds", 3.0, "Seconds timed per configuration.")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Where to write the TFRecords (default: a temporary folder, deleted)."
)


def _size(text: str) -> tuple[int, int]:
    height, width = text.lower().split("x")
    return int(height), int(width)


def _smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    coarse = rng.integers(0, 256, size=(max(height // 16, 2), max(width // 16, 2), 3))
    image = cv2.resize(coarse.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 6, size=image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _blob_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    for _ in range(8):
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(5, width // 3)), int(rng.integers(5, height // 3)))
        label = int(rng.integers(1, lip.NUM_CLASSES))
        cv2.ellipse(mask, center, axes, 0, 0, 360, label, thickness=-1)
    return mask


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def _write_data(root: str) -> dict[str, float]:
    """Writes reid-*.tfrecord and lip-*.tfrecord under root; returns mean encoded KB."""
    rng = np.random.default_rng(0)
    height, width = _size(_REID_SOURCE.value)
    shards = _NUM_SHARDS.value
    writers = [tf.io.TFRecordWriter(os.path.join(root, schema.shard_name("reid", i, shards)))
               for i in range(shards)]
    reid_bytes = 0
    for i in range(_NUM_REID.value):
        encoded = _jpeg(_smooth_image(rng, height, width))
        reid_bytes += len(encoded)
        example = schema.make_reid_example(
            encoded=encoded, image_format="jpeg", height=height, width=width,
            filename=f"synthetic/{i:06d}.jpg", label=i % 500, person_id=i % 500,
            dataset="synthetic", camera_id=i % 6,
        )
        writers[i % shards].write(example.SerializeToString())
    for writer in writers:
        writer.close()

    mean_h, mean_w = _size(_PARSING_SOURCE.value)
    writers = [tf.io.TFRecordWriter(os.path.join(root, schema.shard_name("lip", i, shards)))
               for i in range(shards)]
    lip_bytes = 0
    for i in range(_NUM_PARSING.value):
        h = int(mean_h * rng.uniform(0.8, 1.2))
        w = int(mean_w * rng.uniform(0.8, 1.2))
        encoded = _jpeg(_smooth_image(rng, h, w))
        ok, mask_png = cv2.imencode(".png", _blob_mask(rng, h, w))
        assert ok
        lip_bytes += len(encoded) + len(mask_png)
        example = schema.make_parsing_example(
            encoded=encoded, image_format="jpeg", height=h, width=w,
            filename=f"synthetic/{i:06d}.jpg", mask_png=mask_png.tobytes(),
        )
        writers[i % shards].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    return {
        "reid_kb": reid_bytes / max(_NUM_REID.value, 1) / 1024,
        "lip_kb": lip_bytes / max(_NUM_PARSING.value, 1) / 1024,
    }


def _images_per_second(ds: tf.data.Dataset) -> tuple[float, int]:
    """Images/s over _SECONDS after _WARMUP batches; also returns the batches timed."""
    iterator = iter(ds)
    for _ in range(_WARMUP.value):
        next(iterator)
    images = batches = 0
    start = time.perf_counter()
    while time.perf_counter() - start < _SECONDS.value:
        element = next(iterator)
        first = element["image"] if isinstance(element, dict) else element[0]
        images += int(first.shape[0])
        batches += 1
    return images / (time.perf_counter() - start), batches


def _configurations(root: str):
    reid = os.path.join(root, schema.shard_pattern("reid"))
    lip_files = os.path.join(root, schema.shard_pattern("lip"))
    crop = _size(_CROP.value)
    for batch_text in _BATCH_SIZES.value:
        batch = int(batch_text)
        for size_text in _TRAIN_SIZES.value:
            size = _size(size_text)
            if "train" in _PIPELINES.value:
                yield "train", size_text, batch, pipelines.train_dataset(
                    reid, batch_size=batch, image_size=size)
            if "eval" in _PIPELINES.value:
                # Repeated so the timing window never runs out of data.
                yield "eval", size_text, batch, pipelines.eval_dataset(
                    reid, batch_size=batch, image_size=size).repeat()
        if "parsing_train" in _PIPELINES.value:
            yield "parsing_train", _CROP.value, batch, pipelines.parsing_dataset(
                lip_files, batch_size=batch, crop_size=crop)
        if "parsing_eval" in _PIPELINES.value:
            yield "parsing_eval", _CROP.value, batch, pipelines.parsing_dataset(
                lip_files, batch_size=batch, crop_size=crop, training=False).repeat()


def main(argv: list[str]) -> None:
    del argv
    root = _WORKDIR.value or tempfile.mkdtemp(prefix="spreid_input_bench_")
    os.makedirs(root, exist_ok=True)
    try:
        start = time.perf_counter()
        sizes = _write_data(root)
        print(f"Wrote {_NUM_REID.value} re-id ({_REID_SOURCE.value}, {sizes['reid_kb']:.1f} KB "
              f"JPEG) and {_NUM_PARSING.value} LIP-like (~{_PARSING_SOURCE.value}, "
              f"{sizes['lip_kb']:.1f} KB JPEG+PNG) records in "
              f"{time.perf_counter() - start:.1f} s")
        print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs "
              f"({platform.processor() or platform.machine()}), "
              f"GPUs: {len(tf.config.list_physical_devices('GPU'))}; "
              f"warm-up {_WARMUP.value} batches, {_SECONDS.value:g} s timed per row\n")
        print("| pipeline | output HxW | batch | images/s | batches timed |")
        print("| --- | --- | ---: | ---: | ---: |")
        for name, size_text, batch, ds in _configurations(root):
            rate, batches = _images_per_second(ds)
            print(f"| {name} | {size_text} | {batch} | {rate:,.0f} | {batches} |", flush=True)
    finally:
        if _WORKDIR.value is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
