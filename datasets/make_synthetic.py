"""Writes the synthetic miniature of every benchmark's raw layout (thin wrapper).

    python datasets/make_synthetic.py --output_dir=/tmp/raw
    python datasets/convert.py --dataset=all10 --root=/tmp/raw --output_dir=/tmp/tfrecords

`<output_dir>/<name>/` is what the reader of `<name>` takes as root; with `--check_dir`
each miniature is also converted there and compared with what its writer expects.
Same as `python -m spreid_tf.data.synthetic`.
"""

from absl import app

from spreid_tf.data.synthetic.__main__ import define_flags, main

if __name__ == "__main__":
    define_flags()
    app.run(main)
