r"""Batch feature extraction into an .npz, with optional gallery search.

    python -m spreid_tf.infer --saved_model=exports/spreid/1 \
        --input=data/market1501/test-*.tfrecord --output=features.npz --batch_size=512
    python -m spreid_tf.infer --model=runs/market_spreid --mixed_precision=mixed_float16 \
        --input=gallery_dir --query=query_dir --output=gallery.npz --top_k=10

--input and --query: an image folder, a glob, a list file (.txt, one path a line) or
re-id TFRecords. Unreadable images are skipped and reported (in the log and in
`<output stem>.json`); the .npz holds `embeddings` (l2-normalised float32),
`filenames`, `skipped_filenames`, `skipped_reasons` and, for TFRecord inputs,
`person_ids`, `camera_ids`, `datasets`. With --query, the query features go to
`<output stem>_query.npz` and the top-k matches (brute force) to --search_output.

Large galleries (needs the `search` extra, faiss: pip install -e ".[search]"): --build_index
saves a search index of the --input embeddings (with their filenames and ids) to a folder;
--search looks the --input embeddings up in such a folder and writes the top-k to
--search_output:

    python -m spreid_tf.infer --saved_model=exports/spreid/1 --input=gallery_dir \
        --output=gallery.npz --build_index=gallery_index --index_kind=pq --pca_dim=256
    python -m spreid_tf.infer --saved_model=exports/spreid/1 --input=new_crops \
        --output=crops.npz --search=gallery_index --top_k=10
"""

from __future__ import annotations

import os

from absl import app, flags, logging

from spreid_tf import cli

if __name__ == "__main__":
    cli.interrupt_quietly_while_loading()  # Ctrl-C while TensorFlow loads: one line

FLAGS = flags.FLAGS


def define_infer_flags() -> None:
    """Flags of the batch inference binary."""
    flags.DEFINE_string("saved_model", None, "SavedModel folder written by spreid_tf.export.")
    flags.DEFINE_string("model", None, "Keras model instead: a model_dir holding model.keras or a .keras file.")
    flags.DEFINE_string("input", None, "Image folder, glob, list file or TFRecords (the gallery with --query).",
                        required=True)
    flags.DEFINE_enum("input_format", "auto", ["auto", "images", "list", "tfrecord"], "How to read --input/--query.")
    flags.DEFINE_string("output", None, "The .npz to write (atomically).", required=True)
    flags.DEFINE_integer("batch_size", 256, "Images per model call.")
    flags.DEFINE_enum("mixed_precision", None, ["mixed_float16", "mixed_bfloat16"],
                      "Compute policy for a Keras --model (a SavedModel's is fixed at export).")
    flags.DEFINE_integer("num_parallel_calls", -1, "Decode parallelism (-1: autotune).")
    flags.DEFINE_float("log_every_s", 10.0, "Seconds between progress lines.")
    flags.DEFINE_string("query", None, "Query images/TFRecords: search them in the --input gallery.")
    flags.DEFINE_integer("top_k", 10, "Gallery matches kept per query.")
    flags.DEFINE_string("search_output", None, "Search results (.json or .csv); default <output stem>_search.json.")
    flags.DEFINE_string("build_index", None, "Folder to save a search index of the --input embeddings in "
                        "(spreid_tf.search; needs faiss).")
    flags.DEFINE_enum("index_kind", "exact", ["exact", "ivf", "hnsw", "pq"], "--build_index: exact (brute force in "
                      "faiss), ivf (inverted file), hnsw (graph) or pq (4-bit codes, all scanned); see "
                      "spreid_tf/search.py.")
    flags.DEFINE_integer("pca_dim", 0, "--build_index: reduce to this many dimensions first (ivf, hnsw, pq; 0: no "
                         "PCA).")
    flags.DEFINE_integer("pq_m", 128, "--build_index=pq: 4-bit codes a vector (must divide --pca_dim, or the "
                         "embedding dimension without a PCA).")
    flags.DEFINE_integer("k_factor", None, "ivf, hnsw, pq: shortlist of k_factor x --top_k re-ranked with the "
                         "full vectors (recall vs speed; default 100 for pq, 20 otherwise); saved by --build_index, "
                         "overrides the saved value when given with --search.")
    flags.DEFINE_integer("nlist", 0, "--build_index=ivf: cells (0: 4 sqrt(N)).")
    flags.DEFINE_integer("nprobe", 16, "ivf: cells scanned per query (recall vs speed); saved by --build_index, "
                         "overrides the saved value when given with --search.")
    flags.DEFINE_integer("ef_search", 128, "hnsw: search list length (recall vs speed); saved by --build_index, "
                         "overrides the saved value when given with --search.")
    flags.DEFINE_string("search", None, "A folder written by --build_index: search the --input embeddings in it.")
    flags.register_multi_flags_validator(
        ["search", "query", "build_index"], lambda f: sum(f[k] is not None for k in f) <= 1,
        message="give at most one of --search, --query and --build_index")
    flags.register_multi_flags_validator(
        ["saved_model", "model"], lambda f: (f["saved_model"] is None) != (f["model"] is None),
        message="give exactly one of --saved_model and --model")


def main(argv: list[str]) -> None:
    del argv
    cli.quiet_tensorflow_logs()  # the skip report names each image that does not decode
    import tensorflow as tf  # after flag parsing: importing TensorFlow is slow

    from spreid_tf import inference

    stem = os.path.splitext(FLAGS.output)[0]
    index = None
    if FLAGS.search or FLAGS.build_index:
        try:  # the base install has no faiss: say which extra before minutes of extraction
            from spreid_tf import search
            search.require_faiss()
        except ImportError as error:  # one line through cli.one_line_errors
            raise ValueError(f"--{'search' if FLAGS.search else 'build_index'}: {error}") from None
        if FLAGS.search:
            index = search.SearchIndex.load(FLAGS.search)
            # The index keeps the knobs it was built with; given flags override them for this search.
            index.set_search_parameters(**{k: FLAGS[k].value for k in ("nprobe", "ef_search", "k_factor")
                                           if FLAGS[k].present})
    parallel = tf.data.AUTOTUNE if FLAGS.num_parallel_calls < 0 else FLAGS.num_parallel_calls
    if FLAGS.saved_model and not inference.is_saved_model(FLAGS.saved_model):
        raise FileNotFoundError(f"--saved_model={FLAGS.saved_model!r} is not a SavedModel folder (no saved_model.pb; "
                                "expected a version folder that spreid_tf.export writes, e.g. exports/spreid/1)")
    embedder = inference.load_embedder(FLAGS.saved_model or FLAGS.model, FLAGS.mixed_precision)
    logging.info("%s, input size %s", embedder.description, embedder.image_size)
    config = {name: FLAGS[name].value for name in (
        "saved_model", "model", "input", "input_format", "output", "batch_size", "mixed_precision",
        "query", "top_k", "search_output", "search", "build_index", "index_kind", "pca_dim", "nlist", "nprobe",
        "ef_search", "pq_m", "k_factor")}

    def run(spec: str, name: str) -> inference.Features:
        source = inference.resolve_inputs(spec, FLAGS.input_format)
        return inference.extract_features(embedder, source, batch_size=FLAGS.batch_size,
                                          num_parallel_calls=parallel, log_every_s=FLAGS.log_every_s, name=name)

    gallery = run(FLAGS.input, "gallery" if FLAGS.query else "features")
    inference.save_features(FLAGS.output, gallery)
    report = {"config": config, "features": inference.features_report(gallery)}
    if FLAGS.query:
        query = run(FLAGS.query, "query")
        inference.save_features(f"{stem}_query.npz", query)
        search_output = FLAGS.search_output or f"{stem}_search.json"
        inference.save_search_results(search_output, inference.search_gallery(query, gallery, FLAGS.top_k))
        report["query"] = inference.features_report(query)
        logging.info("Wrote %s_query.npz and %s", stem, search_output)
    if index is not None:
        search_output = FLAGS.search_output or f"{stem}_search.json"
        inference.save_search_results(search_output, inference.search_index(gallery, index, FLAGS.top_k))
        logging.info("Searched %d embeddings in %s (%d entries, %s): wrote %s", len(gallery.filenames), FLAGS.search,
                     len(index), index.config.factory(), search_output)
    if FLAGS.build_index:
        built = search.build_index(
            gallery.embeddings, FLAGS.index_kind, filenames=gallery.filenames, person_ids=gallery.person_ids,
            camera_ids=gallery.camera_ids, pca_dim=FLAGS.pca_dim or None, nlist=FLAGS.nlist or None,
            nprobe=FLAGS.nprobe, ef_search=FLAGS.ef_search, pq_m=FLAGS.pq_m, k_factor=FLAGS.k_factor)
        built.save(FLAGS.build_index)
        report["index"] = {"folder": FLAGS.build_index, "factory": built.config.factory(), "entries": len(built)}
        logging.info("Wrote the search index %s (%s, %d entries)", FLAGS.build_index, built.config.factory(),
                     len(built))
    inference.write_report(f"{stem}.json", report)
    logging.info("Wrote %s (%d embeddings, %d skipped) and %s.json", FLAGS.output, len(gallery.filenames),
                 len(gallery.skipped), stem)


def run() -> None:
    """Entry point: `python -m spreid_tf.infer` and export/batch_infer.py."""
    define_infer_flags()
    app.run(cli.one_line_errors(main))


if __name__ == "__main__":
    run()
