r"""Feature extraction on Apache Beam (same as `python -m spreid_tf.beam.extract`; needs the "beam" extra).

    python export/beam_extract.py --saved_model=exports/spreid/1 --input=DIR|GLOB|LIST|TFRECORDS \
        --output=out/features.npz [--images_per_shard=4096] [--runner=DataflowRunner --project=... ...]
"""

from spreid_tf.beam.extract import run

if __name__ == "__main__":
    run()
