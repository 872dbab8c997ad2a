"""python -m spreid_tf.data.synthetic --output_dir=DIR [--seed=0] [--datasets=a,b] [--check_dir=DIR]

`<output_dir>/<name>/` is what the reader of `<name>` takes as root; with `--check_dir`
each miniature is also converted into `<check_dir>` and compared with what its writer
expects.
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags, logging

from spreid_tf.data import synthetic

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("output_dir", None, "Receives one raw miniature per dataset.", required=True)
    flags.DEFINE_integer("seed", 0, "Random seed of the miniatures.")
    flags.DEFINE_list("datasets", None, "Datasets to write (default: every registered one).")
    flags.DEFINE_string("check_dir", None, "If set, convert each miniature here and check the counts.")


def main(argv: list[str]) -> None:
    del argv
    written = synthetic.write_all(FLAGS.output_dir, seed=FLAGS.seed, names=FLAGS.datasets)
    for name, expected in written.items():
        logging.info("%s -> %s: %s", name, expected.root,
                     json.dumps({s: vars(v) for s, v in expected.splits.items()}))
    if FLAGS.check_dir:
        from spreid_tf.data.convert import convert_dataset

        failed = {}
        for name, expected in written.items():
            manifest = convert_dataset(name, expected.root, Path(FLAGS.check_dir), overwrite=True)
            problems = expected.mismatches(manifest)
            if problems:
                failed[name] = problems
        if failed:
            raise SystemExit(f"miniatures that do not convert as expected: {failed}")
        logging.info("all %d miniatures convert as expected", len(written))


if __name__ == "__main__":
    define_flags()
    app.run(main)
