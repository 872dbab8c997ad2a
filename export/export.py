r"""Exports a trained model as a SavedModel for TF Serving (same as `python -m spreid_tf.export`).

    python export/export.py --model_dir=runs/market_spreid --output=exports/spreid/1
"""

from spreid_tf.export import run

if __name__ == "__main__":
    run()
