"""Feature extraction on Apache Beam runners (Direct, Dataflow, Flink, Spark): the `beam` extra.

    shards.py    the sharded output's names, the input plan and its reader (no Beam needed)
    pipeline.py  the Beam pipeline (the only module that imports apache_beam)
    extract.py   the binary: `python export/beam_extract.py` / `python -m spreid_tf.beam.extract`

Importing this package imports nothing; the base install never imports apache_beam.
"""
