"""Re-id training: the baseline and SPReID, phase 1 (merged data) and phase 2 (one benchmark).

    config = ReidConfig(train_data="/data/tfrecords/market1501", model="spreid",
                        parsing_model="/runs/lip/parsing.keras", init_from="/runs/phase1")
    summary = train_and_evaluate(config, "/runs/market_phase2")

writes checkpoints and TensorBoard events to model_dir, `model.keras` when the run
completes, and `eval.json` (query/gallery CMC and mAP, `spreid_tf.evaluation.evaluate_model`:
the numbers `python -m spreid_tf.evaluate` gives) if the data has those splits.
"""

from __future__ import annotations

import logging
import os

import keras
import tensorflow as tf

from spreid_tf import evaluation, run_folder
from spreid_tf.data import pipelines
from spreid_tf.models import build_baseline_model, build_spreid_model
from spreid_tf.training import common, inputs, loop, optimizers, step
from spreid_tf.training.config import ReidConfig

logger = logging.getLogger(__name__)


def build_reid_model(config: ReidConfig, num_identities: int) -> keras.Model:
    """The baseline or SPReID model that `config` describes, with `num_identities` classes."""
    if config.model == "baseline":
        return build_baseline_model(num_identities, backbone=config.backbone, input_size=config.input_size,
                                    weights=config.weights)
    if config.parsing_model is None:
        raise ValueError("SPReID training needs --parsing_model: the parsing.keras file that "
                         "`python -m spreid_tf.train_parsing` writes (trained on LIP)")
    return build_spreid_model(num_identities, variant=config.variant, weight_sharing=config.weight_sharing,
                              backbone=config.backbone, input_size=config.input_size,
                              reid_input_size=config.reid_input_size, parsing_model=config.parsing_model,
                              weights=config.weights)


def check_model_files(config: ReidConfig) -> None:
    """Raises FileNotFoundError naming the flag if --init_from or --parsing_model does not exist."""
    if config.init_from:
        run_folder.model_file(config.init_from, flag="init_from")
    if config.model == "spreid" and config.parsing_model and not tf.io.gfile.exists(config.parsing_model):
        raise FileNotFoundError(f"--parsing_model={config.parsing_model!r} does not exist (expected the "
                                "parsing.keras that `python -m spreid_tf.train_parsing` writes)")


def load_initial_weights(model: keras.Model, source: str,
                         skip: tuple[str, ...] = optimizers.REID_CLASSIFIER_LAYERS) -> list[str]:
    """Copies the weights of a trained model into `model`, layer by layer, except `skip`.

    Phase 2 starts from phase 1 with a new classifier (the new dataset has other
    identities), usually at another input size: convolution weights do not depend
    on it. Layers are matched by their (stable) names. Frozen layers (SPReID's
    parsing branch) keep the weights they were built with, so phase 2 may use
    another parsing model.

    Args:
        model: the new model.
        source: a model_dir holding model.keras, or a .keras file.
        skip: top-level layer names not copied.

    Returns:
        The names of the layers copied.

    Raises:
        ValueError: a trainable layer with weights has no counterpart in the source,
            or the weight shapes differ.
    """
    path = run_folder.model_file(source, flag="init_from")
    trained = run_folder.load_model(path)
    copied, missing = [], []
    for layer in model.layers:
        if layer.name in skip or not layer.weights or not layer.trainable:
            continue
        try:
            src = trained.get_layer(layer.name)
        except ValueError:
            missing.append(layer.name)
            continue
        target_shapes = [tuple(w.shape) for w in layer.weights]
        source_shapes = [tuple(w.shape) for w in src.weights]
        if target_shapes != source_shapes:
            raise ValueError(f"--init_from {path}: layer {layer.name!r} has weights of shapes "
                             f"{source_shapes[:4]}..., the new model {target_shapes[:4]}... "
                             "(another backbone or variant?)")
        layer.set_weights(src.get_weights())
        copied.append(layer.name)
    if missing:
        raise ValueError(f"--init_from {path}: the model there has no layers {missing}; "
                         f"it has {[l.name for l in trained.layers]} (another model type or variant?)")
    logger.info("Initialised %s from %s (all but %s)", copied, path, list(skip))
    return copied


def train_and_evaluate(config: ReidConfig, model_dir: str) -> dict:
    """Trains (or resumes) a re-id model, saves model.keras, and evaluates it.

    Args:
        config: the run (see ReidConfig).
        model_dir: checkpoints, TensorBoard events, model.keras and eval.json.

    Returns:
        {"final_step", "num_identities", "train": last logged metrics, "history":
         [(step, metrics)] of this call, "model": path of model.keras or None
         (the run stopped early), "eval": evaluation dict or None}.
    """
    data = inputs.resolve_reid_data(config.train_data)
    opt, runtime = config.optimization, config.runtime
    logger.info("Training data %s: %d images of %d identities in %d shards", data.name, data.num_images,
                data.num_identities, len(data.train_files))
    with common.precision_policy(runtime.mixed_precision):
        strategy = common.create_checked_strategy(runtime, opt.batch_size)
        common.seed_everything(runtime.seed)
        with strategy.scope():
            model = build_reid_model(config, data.num_identities)
        resuming = tf.train.latest_checkpoint(model_dir) is not None
        if config.init_from and not resuming:
            load_initial_weights(model, config.init_from)
        trainer = common.make_trainer(strategy, model, opt, runtime, optimizers.REID_CLASSIFIER_LAYERS,
                                      step.reid_loss)

        def dataset_fn(context: tf.distribute.InputContext | None, start_step: int) -> tf.data.Dataset:
            # A resumed run gets another seed: it should not replay the batches already seen.
            seed = None if runtime.seed is None else runtime.seed + start_step
            return pipelines.train_dataset(list(data.train_files), batch_size=opt.batch_size,
                                           image_size=config.input_size, label_offsets=data.label_offsets,
                                           shuffle_buffer=config.shuffle_buffer, seed=seed,
                                           input_context=context)

        result = loop.train_loop(trainer, dataset_fn, total_steps=opt.total_steps, model_dir=model_dir,
                                 global_batch_size=opt.batch_size, checkpoint_every=runtime.checkpoint_every,
                                 keep_checkpoints=runtime.keep_checkpoints, log_every=runtime.log_every,
                                 stop_after=runtime.stop_after)
        summary = {"final_step": result.final_step, "num_identities": data.num_identities,
                   "train": result.metrics,
                   "history": result.history, "model": None, "eval": None,
                   "interrupted": result.interrupted}
        if result.final_step < opt.total_steps:
            logger.info("Stopped at step %d of %d; run again to resume", result.final_step, opt.total_steps)
            return summary
        # Same batches on every worker (a fixed seed), so every copy gets the same statistics.
        common.recompute_batch_norm(model, dataset_fn(None, (runtime.seed or 0) + opt.total_steps),
                                    opt.precise_bn_batches)
        summary["model"] = common.save_model(model, os.path.join(model_dir, run_folder.MODEL_FILENAME), strategy)
        if config.evaluate and data.eval_dir is not None:
            summary["eval"] = evaluation.evaluate_model(model, data.eval_dir, config.input_size,
                                                        config.eval_batch_size)
            common.write_json(summary["eval"], os.path.join(model_dir, run_folder.EVAL_FILENAME), strategy)
    return summary
