import json
import os

import numpy as np
import pytest
import tensorflow as tf

from spreid_tf import inference
from spreid_tf.data import schema


def _write_folder(folder, image_bytes):
    folder.mkdir(parents=True, exist_ok=True)
    files = {"p1/a.jpg": image_bytes[0], "p1/b.png": image_bytes[1], "p2/c.JPG": image_bytes[2],
             "p2/corrupt.jpg": b"\xff\xd8\xff\xe0" + bytes(300), "p2/zero.png": b"", "notes.txt": b"x"}
    for name, data in files.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def _serve(loaded, encoded):
    return loaded.signatures["serving_default"](image_bytes=tf.constant(encoded))["embedding"].numpy()


def test_batch_infer_binary_skips_bad_files_and_searches(baseline, loaded_baseline, image_bytes, python, tmp_path):
    gallery = _write_folder(tmp_path / "gallery", image_bytes)
    query = tmp_path / "query"
    query.mkdir()
    (query / "q.png").write_bytes(image_bytes[1])
    out = tmp_path / "out" / "features.npz"
    python(["export/batch_infer.py", f"--saved_model={baseline.export_dir}", f"--input={gallery}",
            f"--output={out}", "--batch_size=2", f"--query={query}", "--top_k=2"])
    features = inference.load_features(out)
    names = [os.path.relpath(f, gallery) for f in features["filenames"]]
    assert names == ["p1/a.jpg", "p1/b.png", "p2/c.JPG"]
    np.testing.assert_allclose(features["embeddings"], _serve(loaded_baseline, image_bytes[:3]), atol=1e-5)
    skipped = dict(zip((os.path.relpath(f, gallery) for f in features["skipped_filenames"]),
                       features["skipped_reasons"]))
    assert set(skipped) == {"p2/corrupt.jpg", "p2/zero.png"}
    assert skipped["p2/zero.png"] == "empty file (0 bytes)"
    assert "Invalid JPEG data" in skipped["p2/corrupt.jpg"]
    report = json.loads((tmp_path / "out" / "features.json").read_text())
    assert report["features"]["skipped_count"] == 2 and report["features"]["images"] == 3
    assert report["config"]["batch_size"] == 2
    search = json.loads((tmp_path / "out" / "features_search.json").read_text())
    assert search[0]["query"].endswith("q.png")
    assert [m["rank"] for m in search[0]["matches"]] == [1, 2]
    assert search[0]["matches"][0]["filename"].endswith("b.png")
    # The same image, embedded in another batch: the kernels' float32 sums (their order can depend
    # on the batch) move a unit embedding by ~1e-7 per coordinate; any two different images of the
    # set are > 0.1 apart, so 1e-3 separates "same image" with room on either side.
    assert search[0]["matches"][0]["distance"] < 1e-3 < search[0]["matches"][1]["distance"]
    # Atomic writes: only the finished files, no temporaries.
    assert sorted(os.listdir(tmp_path / "out")) == ["features.json", "features.npz", "features_query.npz",
                                                     "features_search.json"]


def _write_records(path, image_bytes):
    rows = [("m/0001_c1_a.jpg", image_bytes[0], 1, 0), ("m/bad_middle.jpg", b"\xff\xd8\xffjunk", 9, 1),
            ("m/0002_c2_b.png", image_bytes[1], 2, 1), ("m/0003_c3_c.jpg", image_bytes[2], 3, 2),
            ("m/bad_last.png", b"", 9, 0)]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for filename, data, pid, camera in rows:
            example = schema.make_reid_example(encoded=data, image_format="jpeg", height=1, width=1,
                                               filename=filename, label=-1, person_id=pid, dataset="market1501",
                                               camera_id=camera)
            writer.write(example.SerializeToString())


def test_tfrecord_input_carries_person_and_camera_and_counts_trailing_failures(
        baseline, loaded_baseline, image_bytes, tmp_path):
    _write_records(tmp_path / "query-00000-of-00001.tfrecord", image_bytes)
    source = inference.resolve_inputs(str(tmp_path))
    assert source.kind == "tfrecord"
    embedder = inference.load_embedder(baseline.export_dir)
    features = inference.extract_features(embedder, source, batch_size=2, log_every_s=0)
    assert list(features.filenames) == ["m/0001_c1_a.jpg", "m/0002_c2_b.png", "m/0003_c3_c.jpg"]
    assert list(features.person_ids) == [1, 2, 3] and list(features.camera_ids) == [0, 1, 2]
    assert list(features.datasets) == ["market1501"] * 3
    assert [f for f, _ in features.skipped] == ["m/bad_middle.jpg", "m/bad_last.png"]
    assert features.skipped[1][1] == "empty file (0 bytes)"
    np.testing.assert_allclose(features.embeddings, _serve(loaded_baseline, image_bytes[:3]), atol=1e-5)
    inference.save_features(tmp_path / "f.npz", features)
    saved = inference.load_features(tmp_path / "f.npz")
    assert list(saved["person_ids"]) == [1, 2, 3] and list(saved["camera_ids"]) == [0, 1, 2]


def test_keras_model_with_mixed_precision(baseline, loaded_baseline, image_bytes, tmp_path):
    for i, data in enumerate(image_bytes):
        (tmp_path / f"{i}.png").write_bytes(data)
    source = inference.resolve_inputs(str(tmp_path / "*.png"))
    reference = _serve(loaded_baseline, image_bytes)
    embedder = inference.load_embedder(baseline.model_dir, mixed_precision="mixed_float16")
    features = inference.extract_features(embedder, source, batch_size=4, log_every_s=0)
    assert features.embeddings.dtype == np.float32 and not features.skipped
    np.testing.assert_allclose(features.embeddings, reference, atol=2e-3)
    with pytest.raises(ValueError, match="precision was fixed when it was exported"):
        inference.load_embedder(baseline.export_dir, mixed_precision="mixed_float16")


def test_input_resolution(tmp_path):
    (tmp_path / "imgs").mkdir()
    for name in ("b.jpg", "a.png", "c.txt"):
        (tmp_path / "imgs" / name).write_bytes(b"x")
    (tmp_path / "list.txt").write_text("imgs/b.jpg\n# comment\n\nimgs/a.png\n")
    listed = inference.resolve_inputs(str(tmp_path / "list.txt"))
    assert listed.kind == "images" and listed.paths == (str(tmp_path / "imgs/b.jpg"), str(tmp_path / "imgs/a.png"))
    folder = inference.resolve_inputs(str(tmp_path / "imgs"))
    assert [os.path.basename(p) for p in folder.paths] == ["a.png", "b.jpg"]
    with pytest.raises(FileNotFoundError, match="no files match input '.*nothing-\\*.jpg'"):
        inference.resolve_inputs(str(tmp_path / "nothing-*.jpg"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .jpg/.jpeg/.png images in folder '.*empty'"):
        inference.resolve_inputs(str(tmp_path / "empty"))


def test_search_gallery_against_numpy():
    rng = np.random.default_rng(0)

    def features(n):
        e = rng.normal(size=(n, 8)).astype(np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        return inference.Features(e, np.array([f"f{i}" for i in range(n)]), np.arange(n, dtype=np.int32),
                                  np.zeros(n, np.int32))

    query, gallery = features(3), features(7)
    results = inference.search_gallery(query, gallery, top_k=4)
    # Independent reference in float64: euclidean distance between the unit vectors.
    q64, g64 = query.embeddings.astype(np.float64), gallery.embeddings.astype(np.float64)
    distances = np.sqrt(((q64[:, None] - g64[None]) ** 2).sum(-1))
    for q, entry in enumerate(results):
        order = np.argsort(distances[q], kind="stable")[:4]
        assert [m["filename"] for m in entry["matches"]] == [f"f{i}" for i in order]
        assert [m["person_id"] for m in entry["matches"]] == list(order)
        # float32 |q|^2 + |g|^2 - 2 q.g of unit 8-D vectors: absolute error of d^2 <= ~(8 + 4) * 2^-24 * 4,
        # so d within sqrt of that (1e-3) near 0 and far tighter elsewhere.
        np.testing.assert_allclose([m["distance"] for m in entry["matches"]], distances[q, order], atol=1e-3)


def test_skip_reasons_are_tf_s_message_without_the_op_suffix(image_bytes):
    truncated = image_bytes[0][: len(image_bytes[0]) // 2]
    reason = inference._why_image_fails(truncated)
    assert reason.startswith("cannot decode: ") and "jpeg" in reason.lower()
    assert "[Op:" not in reason and not reason.rstrip().endswith("name:")


def test_skip_reasons_on_a_remote_file_system_name_the_decoder_error(image_bytes, tmp_path):
    """gs:// images (here TensorFlow's ram:// file system) get the decoder's reason, as local ones do."""
    truncated = image_bytes[0][: len(image_bytes[0]) // 2]
    (tmp_path / "bad.jpg").write_bytes(truncated)
    remote = f"ram://{tmp_path.name}/bad.jpg"
    with tf.io.gfile.GFile(remote, "wb") as f:
        f.write(truncated)
    local_reason = inference.diagnose_files([str(tmp_path / "bad.jpg")])[0][1]
    assert local_reason.startswith("cannot decode: ")
    missing = f"ram://{tmp_path.name}/missing.jpg"
    (bad, bad_reason), (gone, gone_reason) = inference.diagnose_files([remote, missing])
    assert (bad, bad_reason) == (remote, local_reason)
    assert gone == missing and gone_reason.startswith("cannot read: ") and len(gone_reason) > len("cannot read: ")


def test_record_count_of_converted_splits_comes_from_the_manifest(tmp_path):
    from spreid_tf.data.manifest import Manifest, SplitEntry, write_manifest

    splits = {"query": SplitEntry(5, ("query-00000-of-00001.tfrecord",)),
              "gallery": SplitEntry(7, ("gallery-00000-of-00002.tfrecord", "gallery-00001-of-00002.tfrecord"))}
    write_manifest(tmp_path, Manifest(dataset="market1501", kind="reid", protocol="market1501", splits=splits,
                                      source_root="raw", reader_options={}, skipped=(), skipped_by_reason={}, info={},
                                      url="", reference="", created="", converter=""))
    manifest = json.loads((tmp_path / schema.MANIFEST_FILENAME).read_text())
    shard = lambda name: str(tmp_path / name)  # noqa: E731
    assert inference.converted_record_count([shard("query-00000-of-00001.tfrecord")]) == 5
    assert inference.converted_record_count([shard(n) for s in manifest["splits"].values() for n in s["shards"]]) == 12
    assert inference.converted_record_count([shard("gallery-00000-of-00002.tfrecord")]) is None  # half a split
    assert inference.converted_record_count([str(tmp_path / "other" / "x.tfrecord")]) is None  # no manifest


@pytest.mark.slow  # two runs of the binary: ~15 s on 2 quiet cores
def test_batch_infer_builds_a_search_index_and_searches_it(baseline, loaded_baseline, image_bytes, python, tmp_path):
    pytest.importorskip("faiss")
    from spreid_tf import search

    gallery = _write_folder(tmp_path / "gallery", image_bytes)
    python(["export/batch_infer.py", f"--saved_model={baseline.export_dir}", f"--input={gallery}",
            f"--output={tmp_path / 'gallery.npz'}", f"--build_index={tmp_path / 'index'}"])
    index = search.SearchIndex.load(tmp_path / "index")
    assert [os.path.relpath(f, gallery) for f in index.filenames] == ["p1/a.jpg", "p1/b.png", "p2/c.JPG"]
    assert index.config.kind == "exact"
    report = json.loads((tmp_path / "gallery.json").read_text())
    assert report["index"] == {"folder": str(tmp_path / "index"), "factory": "Flat", "entries": 3}

    query = tmp_path / "query"
    query.mkdir()
    (query / "q.png").write_bytes(image_bytes[1])
    (query / "r.jpg").write_bytes(image_bytes[2])
    python(["export/batch_infer.py", f"--saved_model={baseline.export_dir}", f"--input={query}",
            f"--output={tmp_path / 'query.npz'}", f"--search={tmp_path / 'index'}", "--top_k=2",
            f"--search_output={tmp_path / 'found.csv'}"])
    rows = (tmp_path / "found.csv").read_text().splitlines()
    assert rows[0] == "query,rank,filename,distance" and len(rows) == 5
    # Each query image is in the gallery: it finds itself first (distance ~0: the same image in another
    # batch moves a unit embedding by ~1e-7 a coordinate, see the test above), then another image.
    for line, name in zip((rows[1], rows[3]), ("p1/b.png", "p2/c.JPG")):
        _, rank, filename, distance = line.split(",")
        assert rank == "1" and filename.endswith(name) and float(distance) < 1e-3
    assert float(rows[2].split(",")[3]) > 1e-3 and float(rows[4].split(",")[3]) > 1e-3
    # The same ranking as the brute-force search of the same embeddings.
    saved = inference.load_features(tmp_path / "query.npz")
    gallery_features = inference.load_features(tmp_path / "gallery.npz")
    expected = inference.search_gallery(
        inference.Features(saved["embeddings"], saved["filenames"]),
        inference.Features(gallery_features["embeddings"], gallery_features["filenames"]), top_k=2)
    assert [[m["filename"] for m in e["matches"]] for e in expected] == \
        [[r.split(",")[2] for r in rows[1:3]], [r.split(",")[2] for r in rows[3:5]]]
