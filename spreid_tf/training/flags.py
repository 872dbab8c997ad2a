"""Command-line flags of the training binaries, grouped, and their conversion to configs.

Only the binaries call these: `define_*_flags()` at import of the binary, and
`*_config_from_flags(flag_values)` in its `main()`, which passes the absl
FlagValues object explicitly (library code never reads the global FLAGS).
"""

from __future__ import annotations

from absl import flags

from spreid_tf.models import BACKBONES, VARIANTS
from spreid_tf.models.parsing import PARSING_BACKBONES
from spreid_tf.training.config import REID_MODELS, OptimizationConfig, ParsingConfig, ReidConfig, RuntimeConfig
from spreid_tf.training.schedules import SCHEDULES
from spreid_tf.training.strategy import STRATEGIES


def _size(values: list[str] | None, name: str) -> tuple[int, int] | None:
    if not values:
        return None
    try:
        height, width = (int(v) for v in values)
    except ValueError:
        raise flags.ValidationError(
            f"--{name} must be HEIGHT,WIDTH (two integers), got {','.join(values)}") from None
    return height, width


def _is_size(values: list[str] | None) -> bool:
    return values is None or len(values) == 2 and all(v.strip().isdigit() and int(v) > 0 for v in values)


def _register_size_validator(name: str, flag_values: flags.FlagValues) -> None:
    flags.register_validator(name, _is_size, message=f"--{name} must be HEIGHT,WIDTH (two positive integers)",
                             flag_values=flag_values)


def _weights(value: str | None) -> str | None:
    return None if value is None or value.lower() in ("", "none") else value


def define_model_dir_flag(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    flags.DEFINE_string("model_dir", None, "Run folder: checkpoints, TensorBoard events, config.json, the "
                        "trained model. A run restarts from the latest checkpoint found here.",
                        required=True, flag_values=flag_values)


def define_optimization_flags(total_steps: int = 200_000, learning_rate: float = 0.01,
                              head_lr_multiplier: float = 1.0,
                              flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """SGD, learning-rate schedule and clipping flags (defaults: the paper)."""
    kw = {"flag_values": flag_values}
    flags.DEFINE_integer("batch_size", 15, "Global batch size (split over the replicas).", **kw)
    flags.DEFINE_integer("total_steps", total_steps, "Training iterations.", **kw)
    flags.DEFINE_float("learning_rate", learning_rate, "Base learning rate.", **kw)
    flags.DEFINE_enum("schedule", "exponential", SCHEDULES,
                      "exponential: lr * decay_rate^floor(step*num_decays/total_steps); "
                      "poly: lr * (1 - floor(step*num_decays/total_steps)/num_decays)^poly_power.", **kw)
    flags.DEFINE_integer("num_decays", 10, "Learning-rate steps over the run.", **kw)
    flags.DEFINE_float("decay_rate", 0.9, "Decay factor per step of the exponential schedule.", **kw)
    flags.DEFINE_float("poly_power", 0.9, "Exponent of the poly schedule.", **kw)
    flags.DEFINE_float("momentum", 0.9, "SGD momentum.", **kw)
    flags.DEFINE_boolean("nesterov", True, "Nesterov momentum.", **kw)
    flags.DEFINE_float("weight_decay", 5e-4, "Decoupled weight decay of keras SGD (w -= lr * wd * w); 0 = off.",
                       **kw)
    flags.DEFINE_float("clip_norm", 2.0, "Clip the gradients by their global norm over all variables; 0 = off.",
                       **kw)
    flags.DEFINE_float("head_lr_multiplier", head_lr_multiplier, "Learning rate of the head (parsing: ASPP + "
                       "classifier; re-id: the classifier) over the base rate.", **kw)
    flags.DEFINE_integer("warmup_steps", 0, "Linear learning-rate warm-up over this many steps, from "
                         "warmup_factor x the rate (0 = none; use one when training from random weights).", **kw)
    flags.DEFINE_float("warmup_factor", 0.1, "Starting fraction of the warm-up.", **kw)
    flags.DEFINE_integer("precise_bn_batches", 100, "After training, recompute the batch-norm moving averages "
                         "from this many training batches (0 = keep the moving averages).", **kw)


def define_runtime_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Strategy, precision, checkpoint and logging flags."""
    kw = {"flag_values": flag_values}
    flags.DEFINE_enum("strategy", "default", STRATEGIES,
                      "default: one device; mirrored: all local GPUs; multi_worker: from TF_CONFIG.", **kw)
    flags.DEFINE_boolean("mixed_precision", False, "mixed_float16 compute with a dynamic loss scale.", **kw)
    flags.DEFINE_boolean("jit_compile", False, "XLA-compile the forward/backward pass "
                         "(with several replicas only together with --nosync_batchnorm).", **kw)
    flags.DEFINE_boolean("sync_batchnorm", True, "Batch-norm statistics over all replicas.", **kw)
    flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.", **kw)
    flags.DEFINE_integer("keep_checkpoints", 5, "Checkpoints to keep.", **kw)
    flags.DEFINE_integer("log_every", 100, "Steps between log lines and TensorBoard points.", **kw)
    flags.DEFINE_integer("seed", None, "Random seed (weights and input order); default: random.", **kw)
    flags.DEFINE_integer("stop_after", None, "Stop at this step (the run can be resumed later).", **kw)


def define_reid_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Data and model flags of the re-id binary."""
    kw = {"flag_values": flag_values}
    flags.DEFINE_string("train_data", None, "Converted dataset folder (with manifest.json) or merged "
                        "label_map.json (or its folder). The identity count is read from it.",
                        required=True, **kw)
    flags.DEFINE_enum("model", "baseline", REID_MODELS, "baseline (global pooling) or spreid.", **kw)
    flags.DEFINE_enum("backbone", "inception_v3", BACKBONES, "Re-id backbone.", **kw)
    flags.DEFINE_enum("variant", "w_fg", VARIANTS, "SPReID variant: with or without the foreground vector.", **kw)
    flags.DEFINE_boolean("weight_sharing", True, "SPReID: one backbone for both branches (else exclusive).", **kw)
    flags.DEFINE_list("input_size", ["492", "164"], "HEIGHT,WIDTH of the input (SPReID: the parsing "
                      "resolution).", **kw)
    flags.DEFINE_list("reid_input_size", None, "SPReID: HEIGHT,WIDTH of the re-id branch (default: "
                      "input_size).", **kw)
    _register_size_validator("input_size", flag_values)
    _register_size_validator("reid_input_size", flag_values)
    flags.DEFINE_string("parsing_model", None, "SPReID: the parsing.keras written by spreid_tf.train_parsing.",
                        **kw)
    flags.DEFINE_string("weights", "imagenet", "Backbone initialisation: imagenet, none, or a weights file.", **kw)
    flags.DEFINE_string("init_from", None, "Phase 2: the phase-1 model_dir (or its .keras file); every weight "
                        "but the classifier's is copied.", **kw)
    flags.DEFINE_boolean("evaluate", True, "Evaluate on the query/gallery splits at the end (if present).", **kw)
    flags.DEFINE_integer("eval_batch_size", 64, "Evaluation batch size.", **kw)
    flags.DEFINE_integer("shuffle_buffer", 8192, "Records in the shuffle buffer.", **kw)


def define_parsing_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Data and model flags of the parsing binary."""
    kw = {"flag_values": flag_values}
    flags.DEFINE_string("train_data", None, "Converted LIP folder (with manifest.json).", required=True, **kw)
    flags.DEFINE_list("crop_size", ["512", "512"], "HEIGHT,WIDTH of the training crops.", **kw)
    _register_size_validator("crop_size", flag_values)
    flags.DEFINE_float("min_scale", 0.5, "Smallest random scale of the training images.", **kw)
    flags.DEFINE_float("max_scale", 2.0, "Largest random scale of the training images.", **kw)
    flags.DEFINE_string("weights", "imagenet", "Backbone initialisation: imagenet, none, or a weights file.", **kw)
    flags.DEFINE_list("aspp_rates", ["3", "6", "9", "12"], "Dilation rates of the ASPP 3x3 branches.", **kw)
    flags.DEFINE_enum("backbone", "inception_v3", PARSING_BACKBONES, "Parsing backbone: inception_v3 (the "
                      "paper's InceptionV3*) or mobilenet_v2 (DeepLab's atrous MobileNetV2; ~10x less work).", **kw)
    flags.DEFINE_boolean("decoder", False, "DeepLabv3+'s decoder: logits at stride 4, refined with the "
                         "backbone's stride-4 features (small parts on small images).", **kw)
    flags.DEFINE_enum("output_stride", "16", ["8", "16"], "Output stride of the dilated backbone (16: the paper; "
                      "8: finer logits for small crops).", **kw)
    flags.DEFINE_integer("aspp_filters", 256, "Width of an ASPP atrous branch (the authors': 256; the pooling "
                         "and 1x1 branches are 2x, the projection 4x).", **kw)
    flags.DEFINE_boolean("evaluate", True, "Mean IoU on LIP val at the end (if converted).", **kw)
    flags.DEFINE_integer("eval_batch_size", 8, "Evaluation batch size.", **kw)
    flags.DEFINE_integer("shuffle_buffer", 2048, "Records in the shuffle buffer.", **kw)


def optimization_config_from_flags(values: flags.FlagValues) -> OptimizationConfig:
    return OptimizationConfig(
        batch_size=values.batch_size, total_steps=values.total_steps, learning_rate=values.learning_rate,
        schedule=values.schedule, num_decays=values.num_decays, decay_rate=values.decay_rate,
        poly_power=values.poly_power, momentum=values.momentum, nesterov=values.nesterov,
        weight_decay=values.weight_decay, clip_norm=values.clip_norm, head_lr_multiplier=values.head_lr_multiplier,
        warmup_steps=values.warmup_steps, warmup_factor=values.warmup_factor,
        precise_bn_batches=values.precise_bn_batches)


def runtime_config_from_flags(values: flags.FlagValues) -> RuntimeConfig:
    return RuntimeConfig(
        strategy=values.strategy, mixed_precision=values.mixed_precision, jit_compile=values.jit_compile,
        sync_batchnorm=values.sync_batchnorm, checkpoint_every=values.checkpoint_every,
        keep_checkpoints=values.keep_checkpoints, log_every=values.log_every, seed=values.seed,
        stop_after=values.stop_after)


def reid_config_from_flags(values: flags.FlagValues) -> ReidConfig:
    """The ReidConfig of the parsed flags `values`."""
    return ReidConfig(
        train_data=values.train_data, model=values.model, backbone=values.backbone, variant=values.variant,
        weight_sharing=values.weight_sharing, input_size=_size(values.input_size, "input_size"),
        reid_input_size=_size(values.reid_input_size, "reid_input_size"), parsing_model=values.parsing_model,
        weights=_weights(values.weights), init_from=values.init_from, evaluate=values.evaluate,
        eval_batch_size=values.eval_batch_size, shuffle_buffer=values.shuffle_buffer,
        optimization=optimization_config_from_flags(values), runtime=runtime_config_from_flags(values))


def parsing_config_from_flags(values: flags.FlagValues) -> ParsingConfig:
    """The ParsingConfig of the parsed flags `values`."""
    return ParsingConfig(
        train_data=values.train_data, crop_size=_size(values.crop_size, "crop_size"), min_scale=values.min_scale,
        max_scale=values.max_scale, weights=_weights(values.weights),
        aspp_rates=tuple(int(r) for r in values.aspp_rates), output_stride=int(values.output_stride),
        aspp_filters=values.aspp_filters, backbone=values.backbone, decoder=values.decoder,
        evaluate=values.evaluate,
        eval_batch_size=values.eval_batch_size, shuffle_buffer=values.shuffle_buffer,
        optimization=optimization_config_from_flags(values), runtime=runtime_config_from_flags(values))
