"""Training: schedules, per-group optimizers, strategies, the distributed train step and loop.

The binaries `spreid_tf.train` (re-id) and `spreid_tf.train_parsing` (LIP parsing)
turn flags into a `config` dataclass and call `reid.train_and_evaluate` or
`parsing.train_parsing`; everything here takes plain arguments.
"""
