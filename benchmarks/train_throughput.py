"""Training throughput (images/s) of every model of the paper, with and without mixed precision / XLA.

    python benchmarks/train_throughput.py                      # the paper's sizes, batch 15
    python benchmarks/train_throughput.py --strategy=mirrored --batch_size=16
    python benchmarks/train_throughput.py --quick              # tiny sizes, 2 steps: a CPU smoke run

Runs the real train step (`spreid_tf.training.step.Trainer`: per-group SGD, global
clipping, dynamic loss scale under mixed precision) on synthetic in-memory batches,
so the input pipeline is not measured (see benchmarks/input_pipeline.py for that).
Models start from random weights (`weights=None`); the speed does not depend on them.
Prints a Markdown table naming the device; paste it into BENCHMARKS.md.

Rows: baseline InceptionV3 / ResNet-50 / ResNet-152 / MobileNetV2 (the demo's backbone) at
492x164 (phase 1), SPReID w/fg at 512x170 (phase 1) and 748x246 (phase 2), the parsing model
at 512x512.

    KERAS_BACKEND=jax python benchmarks/train_throughput.py --backend=jax   # same rows under JAX

`--backend=jax` runs the models' forward and backward pass under Keras' JAX backend, one
`jax.jit` step (XLA) per row (benchmarks/_jax_bench.py): it imports no TensorFlow, so it runs
on a machine with JAX (and CUDA) but without TensorFlow (BUILD.md, "Keras backends").
`--jit_compile` and `--strategy` are TensorFlow's; under JAX the step is always compiled and
runs on the first device.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import platform
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from spreid_tf import lip  # noqa: E402

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

# Keras, TensorFlow and the models are imported in main(), once --backend has chosen Keras'
# backend; the JAX path imports no TensorFlow at all.
FLAGS = flags.FLAGS
NUM_IDENTITIES = 16_803  # the merged ten benchmarks: the classifier width of phase 1
# spreid_tf.training.strategy.STRATEGIES (not imported here: it imports TensorFlow).
STRATEGIES = ("default", "mirrored", "multi_worker")
BACKENDS = ("tensorflow", "jax")


@dataclasses.dataclass(frozen=True)
class Case:
    """One row group: a model, its input size and its loss."""

    name: str
    size: tuple[int, int]
    quick_size: tuple[int, int]
    build: Callable[[tuple[int, int]], keras.Model]
    parsing: bool = False


def _baseline(backbone: str) -> Callable[[tuple[int, int]], keras.Model]:
    def build(size: tuple[int, int]) -> keras.Model:
        from spreid_tf.models import build_baseline_model

        return build_baseline_model(NUM_IDENTITIES, backbone, size)

    return build


def _spreid(size: tuple[int, int]) -> keras.Model:
    from spreid_tf.models import build_parsing_model, build_spreid_model

    return build_spreid_model(NUM_IDENTITIES, "w_fg", input_size=size,
                              parsing_model=build_parsing_model(input_shape=(None, None, 3)))


def _parsing(size: tuple[int, int]) -> keras.Model:
    from spreid_tf.models import build_parsing_model

    return build_parsing_model(input_shape=(None, None, 3))


CASES = (
    Case("baseline_inception_v3", (492, 164), (96, 80), _baseline("inception_v3")),
    Case("baseline_resnet50", (492, 164), (96, 80), _baseline("resnet50")),
    Case("baseline_resnet152", (492, 164), (96, 80), _baseline("resnet152")),
    Case("baseline_mobilenet_v2", (492, 164), (96, 80), _baseline("mobilenet_v2")),
    Case("spreid_w_fg", (512, 170), (96, 80), _spreid),
    Case("spreid_w_fg_phase2", (748, 246), (112, 80), _spreid),
    Case("parsing", (512, 512), (96, 96), _parsing, parsing=True),
)


def define_flags() -> None:
    flags.DEFINE_list("models", [c.name for c in CASES], "Rows to run.")
    flags.DEFINE_integer("batch_size", 15, "Global batch size.")
    flags.DEFINE_integer("steps", 20, "Timed steps per row.")
    flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing, autotuning).")
    flags.DEFINE_enum("mixed_precision", "both", ["off", "on", "both"], "float32, mixed_float16, or both.")
    flags.DEFINE_enum("jit_compile", "both", ["off", "on", "both"], "XLA off, on, or both.")
    flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "Distribution strategy (TensorFlow only).")
    flags.DEFINE_enum("backend", None, list(BACKENDS), "Keras backend: tensorflow (the real train step of "
                      "spreid_tf.training) or jax (forward, backward and SGD in one jax.jit step; no TensorFlow "
                      "imported). Default: $KERAS_BACKEND, else tensorflow.")
    flags.DEFINE_boolean("quick", False, "Tiny inputs, batch 2, 2 steps, float32 without XLA (unless "
                         "--mixed_precision/--jit_compile are given): a smoke run that finishes on a CPU "
                         "(its numbers mean nothing).")


def device_name() -> str:
    """The accelerator's name, or the CPU's."""
    import tensorflow as tf

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
    """Images/s of `steps` train steps after `warmup` ones (TensorFlow backend)."""
    import keras
    import tensorflow as tf

    from spreid_tf.training import optimizers, step
    from spreid_tf.training import strategy as strategy_lib

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


def _header() -> None:
    print("| Model | Input | Precision | XLA | images/s | ms/step | first steps (s) |")
    print("|---|---|---|---|---:|---:|---:|")


def _row(case: Case, size: tuple[int, int], mixed: bool, xla: str, r: dict) -> None:
    value = f"{r['images_per_second']:.1f}" if r["error"] is None else r["error"]
    print(f"| {case.name} | {size[0]}x{size[1]} | {'mixed_float16' if mixed else 'float32'} | {xla} | {value} | "
          f"{r['step_ms']:.0f} | {r['warmup_s']:.1f} |", flush=True)


def _main_jax(batch_size: int, steps: int, warmup: int, precisions: list[bool], quick: bool) -> None:
    import _jax_bench  # benchmarks/ is sys.path[0] when this file runs as a script

    print(f"Device: {_jax_bench.device_description()}; {_jax_bench.versions()}; batch {batch_size}; "
          f"{steps} timed steps after {warmup}{' (--quick: tiny inputs)' if quick else ''}", flush=True)
    print()
    _header()
    for case in CASES:
        if case.name not in FLAGS.models:
            continue
        size = case.quick_size if quick else case.size
        images, labels = _batch(case, size, batch_size)
        for mixed in precisions:
            r = _jax_bench.measure_train(lambda: case.build(size), images, labels, case.parsing, mixed, steps, warmup)
            _row(case, size, mixed, "on (jax.jit)", r)


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
    backend = FLAGS.backend or os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend not in BACKENDS:
        raise app.UsageError(f"KERAS_BACKEND={backend!r}: this benchmark runs under {BACKENDS}")
    import _jax_bench

    _jax_bench.select_backend(backend)
    if backend == "jax":
        if FLAGS.strategy != "default":
            raise app.UsageError("--strategy is TensorFlow's; --backend=jax runs on the first device")
        _main_jax(batch_size, steps, warmup, precisions, quick)
        return

    import keras
    import tensorflow as tf

    from spreid_tf.training import strategy as strategy_lib

    strategy = strategy_lib.create_strategy(FLAGS.strategy)
    strategy_lib.check_global_batch_size(batch_size, strategy)

    print(f"Device: {device_name()}; strategy {FLAGS.strategy} ({strategy.num_replicas_in_sync} replica(s)); "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}; global batch {batch_size}; "
          f"{steps} timed steps after {warmup}{' (--quick: tiny inputs)' if quick else ''}", flush=True)
    print()
    _header()
    for case in CASES:
        if case.name not in FLAGS.models:
            continue
        size = case.quick_size if quick else case.size
        for mixed in precisions:
            for jit in jits:
                r = measure(case, size, batch_size, mixed, jit, steps, warmup, strategy)
                _row(case, size, mixed, "on" if jit else "off", r)


if __name__ == "__main__":
    define_flags()
    app.run(main)
