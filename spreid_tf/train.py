"""Trains a re-id model (baseline or SPReID), phase 1 or phase 2, then evaluates it.

    python -m spreid_tf.train --flagfile=configs/all10.flags --model_dir=/runs/all10
    python -m spreid_tf.train --flagfile=configs/market.flags --model_dir=/runs/market \\
        --init_from=/runs/all10

Flags become a frozen `ReidConfig` (written to model_dir/config.json) and
`spreid_tf.training.reid.train_and_evaluate` does the rest. A run restarts from the
latest checkpoint in model_dir. The number of identities comes from --train_data.
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
from spreid_tf.training import reid  # noqa: E402
from spreid_tf.training import strategy as strategy_lib  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines the binary's flags; their defaults are ReidConfig's (training.config)."""
    training_flags.define_train_flags(flag_values)
    # --help lists the flags of the main module only: make these its own.
    flags.adopt_module_key_flags(training_flags, flag_values=flag_values)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = training_flags.reid_config_from_flags(FLAGS)
    # The identity count is resolved from the data, never configured: record it.
    data = inputs.resolve_reid_data(config.train_data, what="--train_data")
    # Before config.json is written: a run that cannot start leaves nothing behind.
    reid.check_model_files(config)
    if strategy_lib.is_chief_from_env(config.runtime.strategy):
        config_lib.write_config(config, FLAGS.model_dir, num_identities=data.num_identities,
                                num_train_images=data.num_images)
    summary = reid.train_and_evaluate(config, FLAGS.model_dir)
    brief = {k: v for k, v in summary.items() if k not in ("train", "history")}
    logging.info("Done: %s", json.dumps(brief, default=str))
    # Stopped by Ctrl-C or SIGTERM (after a checkpoint): the shell's status for that signal.
    sys.exit(loop.interrupted_exit_status(summary.get("interrupted")))


if __name__ == "__main__":
    define_flags()
    app.run(cli.one_line_errors(main))
