"""Training throughput (images/s) of every model of the paper, with and without mixed precision / XLA.

    python benchmarks/train_throughput.py                      # the paper's sizes, batch 15
    python benchmarks/train_throughput.py --strategy=mirrored --batch_size=16
    python benchmarks/train_throughput.py --quick              # tiny sizes, 2 steps: a CPU smoke run

Runs the real train step (`spreid_tf.training.step.Trainer`: per-group SGD, global
clipping, dynamic loss scale under mixed precision) on synthetic in-memory batches,
so the input pipeline is not measured (see benchmarks/input_pipeline.py for that).
Models start from random weights (`weights=None`); the speed does not depend on them.
Prints a Markdown table naming the device; paste it into BENCHMARKS.md.

Rows: baseline InceptionV3 / ResNet-50 / ResNet-152 at 492x164 (phase 1), SPReID
w/fg at 512x170 (phase 1) and 748x246 (phase 2), the parsing model at 512x512.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import platform
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from spreid_tf import lip  # noqa: E402
from spreid_tf.models import build_baseline_model, build_parsing_model, build_spreid_model  # noqa: E402
from spreid_tf.training import optimizers, step  # noqa: E402
from spreid_tf.training import strategy as strategy_lib  # noqa: E402

FLAGS = flags.FLAGS
NUM_IDENTITIES = 16_803  # the merged ten benchmarks: the classifier width of phase 1


@dataclasses.dataclass(frozen=True)
class Case:
    """One row group: a model, its input size and its loss."""

    name: str
    size: tuple[int, int]
    quick_size: tuple[int, int]
    build: Callable[[tuple[int, int]], keras.Model]
    parsing: bool = False


def _spreid(size: tuple[int, int]) -> keras.Model:
    return build_spreid_model(NUM_IDENTITIES, "w_fg", input_size=size,
                              parsing_model=build_parsing_model(input_shape=(None, None, 3)))


CASES = (
    Case("baseline_inception_v3", (492, 164), (96, 80),
         lambda s: build_baseline_model(NUM_IDENTITIES, "inception_v3", s)),
    Case("baseline_resnet50", (492, 164), (96, 80), lambda s: build_baseline_model(NUM_IDENTITIES, "resnet50", s)),
    Case("baseline_resnet152", (492, 164), (96, 80),
         lambda s: build_baseline_model(NUM_IDENTITIES, "resnet152", s)),
    Case("spreid_w_fg", (512, 170), (96, 80), _spreid),
    Case("spreid_w_fg_phase2", (748, 246), (112, 80), _spreid),
    Case("parsing", (512, 512), (96, 96), lambda s: build_parsing_model(input_shape=(None, None, 3)), parsing=True),
)


def define_flags() -> None:
    flags.DEFINE_list("models", [c.name for c in CASES], "Rows to run.")
    flags.DEFINE_integer("batch_size", 15, "Global batch size.")
    flags.DEFINE_integer("steps", 20, "Timed steps per row.")
    flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing, autotuning).")
    flags.DEFINE_enum("mixed_precision", "both", ["off", "on", "both"], "float32, mixed_float16, or both.")
    flags.DEFINE_enum("jit_compile", "both", ["off", "on", "both"], "XLA off, on, or both.")
    flags.DEFINE_enum("strategy", "default", list(strategy_lib.STRATEGIES), "Distribution strategy.")
    flags.DEFINE_boolean("quick", False, "Tiny inputs, batch 2, 2 steps, float32 without XLA (unless "
                         "--mixed_precision/--jit_compile are given): a smoke run that finishes on a CPU "
                         "(its numbers mean nothing).")


def device_name() -> str:
    """The accelerator's name, or the CPU's."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"{len(gpus)} x {details.get('device_name', 'GPU')}"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        model = ""
    return f"CPU: {model or platform.processor() or 'unknown'} ({os.cpu_count()} cores)"


def _batch(case: Case, size: tuple[int, int], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch_size, *size, 3), dtype=np.uint8)
    if case.parsing:
        labels = rng.integers(0, lip.NUM_CLASSES, (batch_size, *size, 1), dtype=np.uint8)
    else:
        labels = rng.integers(0, NUM_IDENTITIES, batch_size).astype(np.int32)
    return images, labels


def measure(case: Case, size: tuple[int, int], batch_size: int, mixed: bool, jit: bool, steps: int, warmup: int,
            strategy: tf.distribute.Strategy) -> dict:
    """Images/s of `steps` train steps after `warmup` ones."""
    keras.backend.clear_session()
    gc.collect()
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    try:
        with strategy.scope():
            model = case.build(size)
            if strategy.num_replicas_in_sync > 1 and not jit:
                strategy_lib.set_synchronized_batch_norm(model, True)
            head = optimizers.PARSING_HEAD_LAYERS if case.parsing else ()
            groups = optimizers.make_variable_groups(model, base_lr=0.01, total_steps=200_000, head_layers=head,
                                                     head_lr_multiplier=10.0 if case.parsing else 1.0)
        trainer = step.Trainer(strategy, model, groups, step.parsing_loss if case.parsing else step.reid_loss,
                               mixed_precision=mixed, jit_compile=jit)
        images, labels = _batch(case, size, batch_size)

        def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            per_replica = ctx.get_per_replica_batch_size(batch_size)
            return tf.data.Dataset.from_tensors((images[:per_replica], labels[:per_replica])).repeat()

        iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
        start = time.perf_counter()
        for _ in range(warmup):
            outputs = trainer.train_step(iterator)
        float(outputs["loss_sum"])  # wait for the device
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            outputs = trainer.train_step(iterator)
        float(outputs["loss_sum"])
        elapsed = time.perf_counter() - start
        return {"images_per_second": steps * batch_size / elapsed, "step_ms": 1000 * elapsed / steps,
                "warmup_s": first, "error": None}
    except (tf.errors.OpError, ValueError, RuntimeError) as e:  # e.g. out of memory: report, go on
        return {"images_per_second": float("nan"), "step_ms": float("nan"), "warmup_s": float("nan"),
                "error": f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"}
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main(argv: list[str]) -> None:
    del argv
    unknown = set(FLAGS.models) - {c.name for c in CASES}
    if unknown:
        raise app.UsageError(f"unknown --models {sorted(unknown)}; known: {[c.name for c in CASES]}")
    quick = FLAGS.quick
    batch_size = 2 if quick else FLAGS.batch_size
    steps, warmup = (2, 1) if quick else (FLAGS.steps, FLAGS.warmup)
    choices = {"off": [False], "on": [True], "both": [False, True]}
    # --quick runs float32 without XLA unless those flags are given explicitly.
    precisions = [False] if quick and not FLAGS["mixed_precision"].present else choices[FLAGS.mixed_precision]
    jits = [False] if quick and not FLAGS["jit_compile"].present else choices[FLAGS.jit_compile]
    strategy = strategy_lib.create_strategy(FLAGS.strategy)
    strategy_lib.check_global_batch_size(batch_size, strategy)

    print(f"Device: {device_name()}; strategy {FLAGS.strategy} ({strategy.num_replicas_in_sync} replica(s)); "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}; global batch {batch_size}; "
          f"{steps} timed steps after {warmup}{' (--quick: tiny inputs)' if quick else ''}", flush=True)
    print()
    print("| Model | Input | Precision | XLA | images/s | ms/step | first steps (s) |")
    print("|---|---|---|---|---:|---:|---:|")
    for case in CASES:
        if case.name not in FLAGS.models:
            continue
        size = case.quick_size if quick else case.size
        for mixed in precisions:
            for jit in jits:
                r = measure(case, size, batch_size, mixed, jit, steps, warmup, strategy)
                value = f"{r['images_per_second']:.1f}" if r["error"] is None else r["error"]
                print(f"| {case.name} | {size[0]}x{size[1]} | {'mixed_float16' if mixed else 'float32'} | "
                      f"{'on' if jit else 'off'} | {value} | {r['step_ms']:.0f} | {r['warmup_s']:.1f} |", flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
