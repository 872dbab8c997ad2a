"""Model speed under Keras' JAX backend: the `--backend=jax` path of train_throughput.py and inference.py.

Only keras, numpy, jax and `spreid_tf.models` are imported here, never TensorFlow: a GPU
machine with JAX and CUDA and no TensorFlow runs these benchmarks (BUILD.md, "Keras
backends"). Every step is one `jax.jit`-compiled function (XLA), fed with device-resident
synthetic batches, so neither an input pipeline nor host-to-device copies are measured.

- Training: forward and backward pass and the update of `keras.optimizers.SGD` with the
  paper's settings (Nesterov momentum 0.9, weight decay 5e-4, global clipping 2.0), one
  optimizer for all variables (the TensorFlow trainer's per-group learning rates cost the
  same); under mixed precision a `LossScaleOptimizer` (dynamic scale) wraps it. Losses as in
  `spreid_tf.training.step`: softmax cross-entropy over identities; for the parser, per-pixel
  cross-entropy of the logits upsampled to the mask.
- Inference: the forward pass to the l2-normalised embedding (what the SavedModel serves).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable


def select_backend(name: str) -> None:
    """Makes Keras use backend `name`; must run before Keras is first imported."""
    keras_module = sys.modules.get("keras")
    if keras_module is not None:
        current = keras_module.backend.backend()
        if current != name:
            raise RuntimeError(f"Keras was already imported with the {current!r} backend; run with "
                               f"KERAS_BACKEND={name} (or import nothing that imports Keras before main)")
        return
    os.environ["KERAS_BACKEND"] = name


def device_description() -> str:
    """`jax.devices()` in words, e.g. "1 x NVIDIA H200 (gpu)"."""
    import jax

    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    return f"{len(devices)} x {', '.join(kinds)} ({devices[0].platform}); jax.devices() = {devices}"


def versions() -> str:
    import jax
    import keras

    return f"JAX {jax.__version__}, Keras {keras.__version__} (backend {keras.backend.backend()})"


def set_precision(mixed: bool) -> None:
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")


def reid_loss(outputs: dict, labels):
    """Mean softmax cross-entropy over identities."""
    from keras import ops

    logits = ops.cast(outputs["logits"], "float32")
    return ops.mean(ops.sparse_categorical_crossentropy(labels, logits, from_logits=True))


def parsing_loss(outputs: dict, masks, ignore_label: int = 255):
    """Per-pixel cross-entropy of the logits upsampled to the masks, `ignore_label` left out."""
    from keras import ops

    logits = ops.cast(outputs["logits"], "float32")
    logits = ops.image.resize(logits, tuple(masks.shape[1:3]), interpolation="bilinear", antialias=False)
    labels = ops.cast(masks[..., 0], "int32")
    valid = ops.cast(ops.not_equal(labels, ignore_label), "float32")
    losses = ops.sparse_categorical_crossentropy(ops.where(labels == ignore_label, 0, labels), logits,
                                                 from_logits=True)
    return ops.sum(losses * valid) / ops.maximum(ops.sum(valid), 1.0)


def _optimizer(mixed: bool):
    import keras

    optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4,
                                     global_clipnorm=2.0)
    return keras.optimizers.LossScaleOptimizer(optimizer) if mixed else optimizer


def make_train_step(model, optimizer, loss_fn: Callable) -> Callable:
    """A jitted `step(state, images, labels) -> (loss, state)`, state = (trainable, non-trainable, optimizer)."""
    import jax
    import keras

    def compute_loss(trainable, non_trainable, optimizer_variables, images, labels):
        outputs, non_trainable = model.stateless_call(trainable, non_trainable, images, training=True)
        loss = loss_fn(outputs, labels)
        # The loss scale is an optimizer variable: read it from the state, not from the object.
        with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, optimizer_variables))):
            scaled = optimizer.scale_loss(loss)
        return scaled, (loss, non_trainable)

    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

    def step(state, images, labels):
        trainable, non_trainable, optimizer_variables = state
        (_, (loss, non_trainable)), grads = grad_fn(trainable, non_trainable, optimizer_variables, images, labels)
        trainable, optimizer_variables = optimizer.stateless_apply(optimizer_variables, grads, trainable)
        return loss, (trainable, non_trainable, optimizer_variables)

    return jax.jit(step, donate_argnums=0)


def _timed_loop(call: Callable, steps: int, warmup: int, batch_size: int) -> dict:
    """Images/s of `steps` calls after `warmup` (compilation) ones; `call()` returns what to wait for."""
    import jax

    start = time.perf_counter()
    for _ in range(warmup):
        out = call()
    jax.block_until_ready(out)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        out = call()
    jax.block_until_ready(out)
    elapsed = time.perf_counter() - start
    return {"images_per_second": steps * batch_size / elapsed, "step_ms": 1000 * elapsed / steps,
            "warmup_s": first, "error": None}


def _failure(error: Exception) -> dict:
    return {"images_per_second": float("nan"), "step_ms": float("nan"), "warmup_s": float("nan"),
            "error": f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"}


def measure_train(build: Callable, images, labels, parsing: bool, mixed: bool, steps: int, warmup: int) -> dict:
    """Training images/s of the model `build()` makes, on one batch kept on the device."""
    import jax
    import keras

    keras.backend.clear_session()
    set_precision(mixed)
    try:
        model = build()
        optimizer = _optimizer(mixed)
        optimizer.build(model.trainable_variables)
        step = make_train_step(model, optimizer, parsing_loss if parsing else reid_loss)
        state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
                 [v.value for v in optimizer.variables])
        images, labels = jax.device_put(images), jax.device_put(labels)
        holder = {"state": state}

        def call():
            loss, holder["state"] = step(holder["state"], images, labels)
            return loss

        return _timed_loop(call, steps, warmup, len(images))
    except (ValueError, RuntimeError, MemoryError) as e:  # e.g. out of device memory: report, go on
        return _failure(e)
    finally:
        set_precision(False)


def measure_forward(build: Callable, images, mixed: bool, steps: int, warmup: int) -> dict:
    """Inference images/s (forward to the l2-normalised embedding) on one batch kept on the device."""
    import jax
    import keras
    from keras import ops

    keras.backend.clear_session()
    set_precision(mixed)
    try:
        model = build()

        def forward(trainable, non_trainable, x):
            outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return ops.normalize(ops.cast(outputs["embedding"], "float32"), axis=-1)

        forward = jax.jit(forward)
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        images = jax.device_put(images)
        return _timed_loop(lambda: forward(trainable, non_trainable, images), steps, warmup, len(images))
    except (ValueError, RuntimeError, MemoryError) as e:
        return _failure(e)
    finally:
        set_precision(False)
