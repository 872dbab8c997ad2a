"""Human-parsing training on LIP: InceptionV3* + ASPP, backbone at 1x and head at 10x.

    summary = train_parsing(ParsingConfig(train_data="/data/tfrecords/lip"), "/runs/lip")

writes checkpoints and TensorBoard events to model_dir, `parsing.keras` (the file
SPReID's `--parsing_model` takes) when the run completes, and `eval.json` (pixel
accuracy and mean IoU on LIP val) if the val split was converted.
"""

from __future__ import annotations

import logging
import os

import tensorflow as tf

from spreid_tf import evaluation, lip, run_folder
from spreid_tf.data import pipelines
from spreid_tf.models import build_parsing_model
from spreid_tf.training import common, inputs, loop, optimizers, step
from spreid_tf.training.config import ParsingConfig

logger = logging.getLogger(__name__)


def train_parsing(config: ParsingConfig, model_dir: str) -> dict:
    """Trains (or resumes) the parsing model, saves parsing.keras, and evaluates it on val.

    The model is built for inputs of any size (None x None), so the saved file
    serves SPReID at any resolution.

    Returns:
        {"final_step", "train": last logged metrics, "history": [(step, metrics)] of
         this call, "model": path of parsing.keras or None (the run stopped early),
         "eval": evaluation dict or None}.
    """
    data = inputs.resolve_parsing_data(config.train_data)
    opt, runtime = config.optimization, config.runtime
    logger.info("LIP: %d training images in %d shards", data.num_images, len(data.train_files))
    with common.precision_policy(runtime.mixed_precision):
        strategy = common.create_checked_strategy(runtime, opt.batch_size)
        common.seed_everything(runtime.seed)
        with strategy.scope():
            model = build_parsing_model(input_shape=(None, None, 3), weights=config.weights,
                                        aspp_rates=config.aspp_rates, output_stride=config.output_stride,
                                        aspp_filters=config.aspp_filters, backbone=config.backbone,
                                        decoder=config.decoder)
        trainer = common.make_trainer(strategy, model, opt, runtime, optimizers.parsing_head_layers(model),
                                      step.parsing_loss)

        def dataset_fn(context: tf.distribute.InputContext | None, start_step: int) -> tf.data.Dataset:
            seed = None if runtime.seed is None else runtime.seed + start_step
            return pipelines.parsing_dataset(list(data.train_files), batch_size=opt.batch_size,
                                             crop_size=config.crop_size, training=True,
                                             min_scale=config.min_scale, max_scale=config.max_scale,
                                             ignore_label=lip.IGNORE_LABEL, seed=seed,
                                             shuffle_buffer=config.shuffle_buffer, input_context=context)

        result = loop.train_loop(trainer, dataset_fn, total_steps=opt.total_steps, model_dir=model_dir,
                                 global_batch_size=opt.batch_size, checkpoint_every=runtime.checkpoint_every,
                                 keep_checkpoints=runtime.keep_checkpoints, log_every=runtime.log_every,
                                 stop_after=runtime.stop_after)
        summary = {"final_step": result.final_step, "train": result.metrics,
                   "history": result.history, "model": None, "eval": None,
                   "interrupted": result.interrupted}
        if result.final_step < opt.total_steps:
            logger.info("Stopped at step %d of %d; run again to resume", result.final_step, opt.total_steps)
            return summary
        common.recompute_batch_norm(model, dataset_fn(None, (runtime.seed or 0) + opt.total_steps),
                                    opt.precise_bn_batches)
        summary["model"] = common.save_model(model, os.path.join(model_dir, run_folder.PARSING_FILENAME), strategy)
        if config.evaluate and data.val_files:
            summary["eval"] = evaluation.evaluate_parsing(model, list(data.val_files), config.crop_size,
                                                          config.eval_batch_size)
            logger.info("LIP val: pixel accuracy %.4f, mean IoU %.4f (20 labels), %.4f (SPReID's five regions)",
                        summary["eval"]["pixel_accuracy"], summary["eval"]["mean_iou"],
                        summary["eval"]["group_mean_iou"])
            common.write_json(summary["eval"], os.path.join(model_dir, run_folder.EVAL_FILENAME), strategy)
    return summary
