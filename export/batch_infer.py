r"""GPU batch feature extraction (same as `python -m spreid_tf.infer`).

    python export/batch_infer.py --saved_model=exports/spreid/1 --input=DIR|GLOB|LIST|TFRECORDS \
        --output=features.npz [--batch_size=512] [--query=DIR --top_k=10]
"""

from spreid_tf.infer import run

if __name__ == "__main__":
    run()
