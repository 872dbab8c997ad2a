"""The distributed train step: losses, gradients, one all-reduce, global clipping, groups.

One step, in each replica:

1. forward and backward pass on the replica's batch (optionally XLA-compiled):
   gradients of the replica's mean loss, times the dynamic loss scale under
   mixed precision;
2. each replica weighs its gradients by its share of the global batch
   (`count / global count`: images for re-id, labelled pixels for parsing) and
   one all-reduce sums them, so the result is the gradient of the loss averaged
   over the global batch, exactly what one device would compute;
3. the loss scale is divided out and the gradients are clipped by their global
   norm over all variables (not per optimizer group);
4. each `VariableGroup`'s optimizer applies its slice. Under mixed precision a step
   with non-finite gradients is skipped (no update, no momentum or weight decay)
   and the loss scale halves; it doubles after `growth_steps` finite steps, as
   keras' LossScaleOptimizer does. One scale serves all groups.

Losses return sums and counts, not means, so that metrics and normalisation stay
exact when replicas see different numbers of labelled pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import keras
import tensorflow as tf

from spreid_tf import lip, run_folder
from spreid_tf.training.optimizers import VariableGroup

# (outputs, labels) -> LossSums
LossFn = Callable[[dict, tf.Tensor], "LossSums"]


class LossSums(NamedTuple):
    """A replica's loss summed over its examples (or pixels), their count, and correct ones."""

    loss_sum: tf.Tensor
    count: tf.Tensor
    correct: tf.Tensor


def reid_loss(outputs: dict, labels: tf.Tensor) -> LossSums:
    """Softmax cross-entropy over identities (`outputs[run_folder.LOGITS]`), summed over the batch."""
    logits = tf.cast(outputs[run_folder.LOGITS], tf.float32)
    labels = tf.cast(labels, tf.int32)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    correct = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels)
    return LossSums(tf.reduce_sum(losses), tf.cast(tf.size(labels), tf.float32),
                    tf.reduce_sum(tf.cast(correct, tf.float32)))


def parsing_loss(outputs: dict, masks: tf.Tensor, ignore_label: int = lip.IGNORE_LABEL) -> LossSums:
    """Per-pixel softmax cross-entropy of the parsing logits, pixels == ignore_label left out.

    The stride-16 logits are bilinearly upsampled to the mask's size (as TF DeepLab
    does), so every labelled pixel of the crop contributes.
    """
    logits = tf.cast(outputs[run_folder.LOGITS], tf.float32)
    size = tf.shape(masks)[1:3]
    logits = tf.image.resize(logits, size, method="bilinear")
    labels = tf.cast(masks[..., 0], tf.int32)
    valid = tf.not_equal(labels, ignore_label)
    safe_labels = tf.where(valid, labels, tf.zeros_like(labels))
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe_labels, logits=logits)
    valid_f = tf.cast(valid, tf.float32)
    correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
    return LossSums(tf.reduce_sum(losses * valid_f), tf.reduce_sum(valid_f), tf.reduce_sum(correct * valid_f))


class DynamicLossScale(tf.Module):
    """One dynamic loss scale for all optimizer groups (mixed precision).

    Same policy as keras.optimizers.LossScaleOptimizer: start at `initial_scale`,
    halve on a step with non-finite gradients, double after `growth_steps`
    consecutive finite steps. Its variables are checkpointed with the model.
    """

    def __init__(self, initial_scale: float = 2.0 ** 15, growth_steps: int = 2000):
        super().__init__(name="dynamic_loss_scale")
        kwargs = dict(trainable=False, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                      synchronization=tf.VariableSynchronization.ON_WRITE)
        self.scale = tf.Variable(float(initial_scale), dtype=tf.float32, name="scale", **kwargs)
        self.good_steps = tf.Variable(0, dtype=tf.int64, name="good_steps", **kwargs)
        self.growth_steps = int(growth_steps)

    def update(self, finite: tf.Tensor) -> None:
        """Halves the scale after a non-finite step, doubles it after growth_steps finite ones."""
        def on_finite():
            grow = tf.equal(self.good_steps + 1, self.growth_steps)
            self.scale.assign(tf.where(grow, self.scale * 2.0, self.scale))
            self.good_steps.assign(tf.where(grow, tf.constant(0, tf.int64), self.good_steps + 1))

        def on_non_finite():
            self.scale.assign(tf.maximum(self.scale * 0.5, 1.0))
            self.good_steps.assign(0)

        tf.cond(finite, on_finite, on_non_finite)


class Trainer:
    """Owns the train step of a model with per-group optimizers under a strategy.

    Build the model and the groups (`optimizers.make_variable_groups`) under
    `strategy.scope()` first; the Trainer builds the optimizers' slots there too,
    so that a checkpoint restores them.

    Attributes:
        step: int64 variable, train steps run (checkpointed).
        loss_scale: the DynamicLossScale, or None without mixed precision.
    """

    def __init__(
        self,
        strategy: tf.distribute.Strategy,
        model: keras.Model,
        groups: Sequence[VariableGroup],
        loss_fn: LossFn,
        *,
        clip_norm: float | None = 2.0,
        mixed_precision: bool = False,
        jit_compile: bool = False,
        loss_scale_growth_steps: int = 2000,
    ):
        self.strategy = strategy
        self.model = model
        self.groups = list(groups)
        self.loss_fn = loss_fn
        self.clip_norm = float(clip_norm) if clip_norm else None
        self.jit_compile = bool(jit_compile)
        self._check_groups()
        self.variables = [v for g in self.groups for v in g.variables]
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self.loss_scale = DynamicLossScale(growth_steps=loss_scale_growth_steps) if mixed_precision else None
            for group in self.groups:
                group.optimizer.build(group.variables)
        # XLA compiles the forward and backward pass only; the all-reduce and the
        # optimizer updates (merge calls) stay outside, where tf.distribute needs them.
        # A nested tf.function cannot hold a cross-replica sync point, so without XLA
        # the pass is traced inline (synchronized batch norm all-reduces in it).
        self._forward_backward = (tf.function(self._forward_backward_fn, jit_compile=True)
                                  if self.jit_compile else self._forward_backward_fn)
        self._train_step = tf.function(self._train_step_fn)

    def _check_groups(self) -> None:
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError(f"variable group names must be unique, got {names}")
        seen: dict[int, str] = {}
        for group in self.groups:
            if not group.variables:
                raise ValueError(f"variable group {group.name!r} is empty")
            for v in group.variables:
                if id(v) in seen:
                    raise ValueError(f"variable {v.path} is in groups {seen[id(v)]!r} and {group.name!r}")
                seen[id(v)] = group.name
        missing = [v.path for v in self.model.trainable_variables if id(v) not in seen]
        if missing:
            raise ValueError(f"trainable variables in no group: {missing[:5]}{' ...' if len(missing) > 5 else ''}")

    # ----------------------------------------------------------------- replica side

    def _forward_backward_fn(self, images, labels, scale):
        with tf.GradientTape() as tape:
            outputs = self.model(images, training=True)
            sums = self.loss_fn(outputs, labels)
            mean_loss = sums.loss_sum / tf.maximum(sums.count, 1.0)
            scaled = mean_loss * scale
        grads = tape.gradient(scaled, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return sums, grads

    def _apply(self, grads) -> None:
        start = 0
        for group in self.groups:
            stop = start + len(group.variables)
            group.optimizer.apply(grads[start:stop], group.variables)
            start = stop

    def _apply_if_finite(self, finite, grads) -> None:
        """Applies the groups' updates only if `finite` (same value on every replica)."""
        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            def apply_fn():
                self._apply(grads)
                return tf.constant(True)

            tf.cond(finite, apply_fn, lambda: tf.constant(False))
            self.loss_scale.update(finite)
            return

        # Optimizer updates use merge_call, which cannot run inside a cond in a
        # replica context: branch in the cross-replica context instead (as
        # keras' LossScaleOptimizer does).
        def merge_fn(distribution, finite, grads):
            finite = distribution.experimental_local_results(finite)[0]

            def apply_fn():
                distribution.extended.call_for_each_replica(self._apply, args=(grads,))
                return tf.constant(True)

            tf.cond(finite, apply_fn, lambda: tf.constant(False))
            self.loss_scale.update(finite)

        tf.distribute.get_replica_context().merge_call(merge_fn, args=(finite, grads))

    def _replica_step(self, images, labels):
        ctx = tf.distribute.get_replica_context()
        scale = self.loss_scale.scale.read_value() if self.loss_scale is not None else tf.constant(1.0)
        sums, grads = self._forward_backward(images, labels, scale)
        global_count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, sums.count)
        # This replica's share of the global mean, with the loss scale divided out.
        weight = tf.math.divide_no_nan(sums.count, global_count) / scale
        grads = [tf.cast(g, tf.float32) * weight for g in grads]
        grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        grad_norm = tf.linalg.global_norm(grads)
        if self.clip_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, self.clip_norm, use_norm=grad_norm)
        if self.loss_scale is not None:
            finite = tf.math.is_finite(grad_norm)
            self._apply_if_finite(finite, grads)
        else:
            finite = tf.constant(True)
            self._apply(grads)
        return {
            "loss_sum": sums.loss_sum,
            "count": sums.count,
            "correct": sums.correct,
            # Identical on every replica; summed below, so divide by the replicas here.
            "grad_norm": grad_norm / self.strategy.num_replicas_in_sync,
            "skipped": (1.0 - tf.cast(finite, tf.float32)) / self.strategy.num_replicas_in_sync,
        }

    # ------------------------------------------------------------ cross-replica side

    def _train_step_fn(self, iterator):
        images, labels = next(iterator)
        per_replica = self.strategy.run(self._replica_step, args=(images, labels))
        sums = {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
        self.step.assign_add(1)
        return sums

    def train_step(self, iterator) -> dict[str, tf.Tensor]:
        """Runs one step on the next global batch of a distributed iterator.

        Returns:
            Sums over the global batch: "loss_sum", "count", "correct"; and the
            pre-clipping global gradient norm "grad_norm" and "skipped" (1.0 if a
            mixed-precision step was skipped).
        """
        return self._train_step(iterator)

    def learning_rates(self) -> dict[str, float]:
        """Current learning rate of each group (the schedule at its optimizer's iteration)."""
        return {g.name: float(keras.ops.convert_to_numpy(g.optimizer.learning_rate)) for g in self.groups}

    def checkpoint(self, **extra) -> tf.train.Checkpoint:
        """A tf.train.Checkpoint over the model, the step, every optimizer and the loss scale."""
        objects = {"model": self.model, "step": self.step}
        for group in self.groups:
            objects[f"optimizer_{group.name}"] = group.optimizer
        if self.loss_scale is not None:
            objects["loss_scale"] = self.loss_scale
        objects.update(extra)
        return tf.train.Checkpoint(**objects)
