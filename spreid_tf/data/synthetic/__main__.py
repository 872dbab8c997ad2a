"""python -m spreid_tf.data.synthetic --output_dir=DIR [--seed=0] [--datasets=a,b]"""

from __future__ import annotations

import json

from absl import app, flags, logging

from spreid_tf.data import synthetic

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("output_dir", None, "Folder that receives one raw miniature per dataset.", required=True)
    flags.DEFINE_integer("seed", 0, "Random seed of the miniatures.")
    flags.DEFINE_list("datasets", None, "Datasets to write (default: every registered one).")


def main(argv: list[str]) -> None:
    del argv
    written = synthetic.write_all(FLAGS.output_dir, seed=FLAGS.seed, names=FLAGS.datasets)
    for name, expected in written.items():
        logging.info("%s -> %s: %s", name, expected.root,
                     json.dumps({s: vars(v) for s, v in expected.splits.items()}))


if __name__ == "__main__":
    define_flags()
    app.run(main)
