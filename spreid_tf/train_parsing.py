"""Trains the human-parsing model (InceptionV3* or MobileNetV2 + ASPP) on LIP, then evaluates it on val.

    python -m spreid_tf.train_parsing --flagfile=configs/lip_parsing.flags --model_dir=/runs/lip

Flags become a frozen `ParsingConfig` (written to model_dir/config.json) and
`spreid_tf.training.parsing.train_parsing` does the rest: the backbone trains at
--learning_rate, ASPP and the classifier at --head_lr_multiplier times it (10x).
The result, model_dir/parsing.keras, is SPReID's --parsing_model.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging

from spreid_tf import cli

if __name__ == "__main__":
    cli.interrupt_quietly_while_loading()  # Ctrl-C while TensorFlow loads: one line

from spreid_tf.training import config as config_lib  # noqa: E402
from spreid_tf.training import flags as training_flags  # noqa: E402
from spreid_tf.training import inputs, loop  # noqa: E402
from spreid_tf.training import parsing  # noqa: E402
from spreid_tf.training import strategy as strategy_lib  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines the binary's flags; their defaults are ParsingConfig's (training.config): the paper's
    LIP schedule, 30K iterations with ASPP and the classifier at 10x."""
    training_flags.define_train_parsing_flags(flag_values)
    # --help lists the flags of the main module only: make these its own.
    flags.adopt_module_key_flags(training_flags, flag_values=flag_values)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = training_flags.parsing_config_from_flags(FLAGS)
    inputs.resolve_parsing_data(config.train_data, what="--train_data")
    if strategy_lib.is_chief_from_env(config.runtime.strategy):
        config_lib.write_config(config, FLAGS.model_dir)
    summary = parsing.train_parsing(config, FLAGS.model_dir)
    brief = {k: v for k, v in summary.items() if k not in ("train", "history")}
    logging.info("Done: %s", json.dumps(brief, default=str))
    # Stopped by Ctrl-C or SIGTERM (after a checkpoint): the shell's status for that signal.
    sys.exit(loop.interrupted_exit_status(summary.get("interrupted")))


if __name__ == "__main__":
    define_flags()
    app.run(cli.one_line_errors(main))
