"""Beam extraction (export/beam_extract.py) against batch_infer's extraction of the same inputs.

The pipeline runs in-process on Beam's FnApiRunner: what the DirectRunner runs a batch
pipeline on, without the DirectRunner's first try, PrismRunner, which downloads its
binary from GitHub (tests never download).
"""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from apache_beam.metrics.execution import MetricKey, MetricResult
from apache_beam.metrics.metricbase import MetricName
from apache_beam.runners.runner import PipelineResult, PipelineState

from spreid_tf import inference
from spreid_tf.beam import pipeline, shards
from spreid_tf.data import schema, synthetic
from spreid_tf.data.convert import convert_dataset

REPO = Path(__file__).resolve().parents[2]
RUNNER = "--runner=FnApiRunner"
# Both sides are float32 embeddings of the same uint8 images through the same SavedModel; only the
# batch composition differs, which can reorder the kernels' float32 sums: ~1e-7 per coordinate of a
# unit vector, far inside the 1e-5.
ATOL = 1e-5


def _batch_infer(export_dir, spec, batch_size):
    """batch_infer.py's path: load_embedder, extract_features, save_features, load_features."""
    features = inference.extract_features(inference.load_embedder(export_dir), inference.resolve_inputs(spec),
                                          batch_size=batch_size, log_every_s=0)
    return features


def _assert_same_output(beam_out, reference: inference.Features, tmp_path):
    inference.save_features(tmp_path / "reference.npz", reference)
    expected = inference.load_features(tmp_path / "reference.npz")
    got = shards.load_sharded_features(beam_out)
    assert sorted(got) == sorted(expected)
    if not str(beam_out).startswith("ram://"):  # batch_infer's reader takes the sharded output too
        read = inference.load_features(beam_out)
        assert sorted(read) == sorted(got) and all(np.array_equal(read[k], got[k]) for k in got)
    for key in expected:
        if key == "embeddings":
            assert got[key].dtype == np.float32 and got[key].shape == expected[key].shape
            np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=ATOL)
        else:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    return got


@pytest.mark.slow  # ~10 s on 2 quiet cores: a fresh process imports TensorFlow and Beam
def test_image_folder_binary_matches_batch_infer_with_skips(baseline, python, tmp_path):
    raw = tmp_path / "raw"
    synthetic.write_benchmark("market1501", raw)
    folder = next(raw.rglob("bounding_box_train"))  # holds the miniature's corrupt JPEG and zero-byte file
    out = tmp_path / "out"
    out.mkdir()
    # An earlier run's output at the same --output: removed first, so the report never mixes runs.
    (out / "features-00007-of-00009.npz").write_bytes(b"stale")
    (out / "features.json").write_text('{"shards": ["features-00007-of-00009.npz"]}')
    result = python(["export/beam_extract.py", f"--saved_model={baseline.export_dir}", f"--input={folder}",
                     f"--output={out / 'features.npz'}", "--images_per_shard=8", "--batch_size=3", RUNNER,
                     "--direct_num_workers=1"])
    # Beam's import-time notices about BigQuery client libraries (nothing here reads BigQuery) are not shown.
    assert "apitools" not in result.stderr and "bigquery" not in result.stderr.lower(), result.stderr[-2000:]
    reference = _batch_infer(baseline.export_dir, str(folder), batch_size=5)
    assert len(reference.skipped) == 2  # the miniature's bad files, so the skip list is really compared
    got = _assert_same_output(out / "features.npz", reference, tmp_path)
    assert {r.split(":")[0] for r in got["skipped_reasons"]} == {"empty file (0 bytes)", "cannot decode"}
    num_shards = -(-(len(reference.filenames) + len(reference.skipped)) // 8)
    names = [shards.shard_path("features", i, num_shards) for i in range(num_shards)]
    assert sorted(os.listdir(out)) == sorted([*names, "features.json"])  # no temporaries, nothing stale
    report = json.loads((out / "features.json").read_text())
    assert report["shards"] == names
    assert set(report["features"]) == set(inference.features_report(reference))
    assert report["features"]["images"] == len(reference.filenames)
    assert report["features"]["skipped"] == [{"filename": f, "reason": r} for f, r in reference.skipped]
    assert report["config"]["pipeline_args"] == [RUNNER, "--direct_num_workers=1"]
    for name in names:  # each shard on its own is a batch_infer .npz
        assert set(inference.load_features(out / name)) == set(got)


def _bad_record_shard(path, image):
    rows = [("extra/good_first.png", image, 7, 0), ("extra/truncated.png", image[: len(image) // 2], 8, 1),
            ("extra/good_last.png", image, 9, 2)]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for filename, data, pid, camera in rows:
            example = schema.make_reid_example(encoded=data, image_format="png", height=1, width=1, filename=filename,
                                               label=-1, person_id=pid, dataset="extra", camera_id=camera)
            writer.write(example.SerializeToString())


def test_converted_tfrecords_on_a_remote_file_system_match_batch_infer(baseline, image_bytes, tmp_path):
    """The converted miniature's shards and one with a truncated image, read and written through the
    remote path (tf.io.gfile, as for gs://): TensorFlow's in-memory ram:// file system stands in for
    Cloud Storage, shared by the in-process runner's worker."""
    synthetic.write_benchmark("market1501", tmp_path / "raw")
    convert_dataset("market1501", tmp_path / "raw", tmp_path / "tfrecords", num_shards=2, progress_every=0)
    converted = tmp_path / "tfrecords" / "market1501"
    _bad_record_shard(converted / "extra-00000-of-00001.tfrecord", image_bytes[1])
    remote = f"ram://{tmp_path.name}"
    for shard in converted.glob("*.tfrecord"):
        tf.io.gfile.copy(str(shard), f"{remote}/tfrecords/{shard.name}")
    output = f"{remote}/out/features.npz"
    report = pipeline.run_extraction(baseline.export_dir, f"{remote}/tfrecords/*.tfrecord", output, batch_size=4,
                                     log_every_s=0, pipeline_args=[RUNNER])
    reference = _batch_infer(baseline.export_dir, str(converted), batch_size=16)  # the local copy
    assert [f for f, _ in reference.skipped] == ["extra/truncated.png"]
    got = _assert_same_output(output, reference, tmp_path)
    assert len(got["filenames"]) == 5 + 18 + 32 + 2 and set(got["datasets"]) == {"market1501", "extra"}
    assert report["shards"] == [shards.shard_path("features", i, 7) for i in range(7)]  # one per input file
    assert report["features"]["skipped"] == [{"filename": "extra/truncated.png", "reason": reference.skipped[0][1]}]
    with pytest.raises(FileNotFoundError, match=r"no files match input 'ram://.*/nothing-\*\.jpg'"):
        pipeline.resolve_inputs(f"{remote}/nothing-*.jpg")
    with pytest.raises(ValueError, match=r"--output='out.npz' is a local path, which Dataflow workers cannot see"):
        pipeline.run_extraction(f"{remote}/model", f"{remote}/tfrecords/*.tfrecord", "out.npz",
                                pipeline_args=["--runner=DataflowRunner"])


def test_an_unreadable_shard_is_written_empty_and_a_failed_run_leaves_nothing(baseline, image_bytes, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(image_bytes[1])
    (folder / "b.jpg").write_bytes(image_bytes[0][:100])
    (folder / "c.png").write_bytes(b"")
    output = tmp_path / "out" / "f.npz"
    pipeline.run_extraction(baseline.export_dir, str(folder), str(output), images_per_shard=1, log_every_s=0,
                            pipeline_args=[RUNNER])
    empty = inference.load_features(tmp_path / "out" / "f-00002-of-00003.npz")
    assert empty["embeddings"].shape == (0, 2048) and list(empty["skipped_reasons"]) == ["empty file (0 bytes)"]
    got = shards.load_sharded_features(tmp_path / "out" / "f.json")
    assert [os.path.basename(f) for f in got["filenames"]] == ["a.png"]
    assert [os.path.basename(f) for f in got["skipped_filenames"]] == ["b.jpg", "c.png"]
    # A run where nothing is readable fails after writing its shards: they are deleted, and the earlier
    # run's output at the same --output went before it started, so nothing is left to mistake for a result.
    (folder / "a.png").unlink()
    with pytest.raises(ValueError, match="none of the 2 inputs could be read"):
        pipeline.run_extraction(baseline.export_dir, str(folder), str(output), images_per_shard=1, log_every_s=0,
                                pipeline_args=[RUNNER])
    assert os.listdir(tmp_path / "out") == []


class _RunningJob(PipelineResult):
    """A job on a cluster as the launcher sees it: running for three looks, then done, with counters."""

    def __init__(self):
        super().__init__(PipelineState.RUNNING)
        self.looks = 0

    @property
    def state(self):
        self.looks += 1
        return PipelineState.DONE if self.looks > 3 else PipelineState.RUNNING

    def metrics(self):
        job = self

        class Counters:
            def query(self, _):
                done = job.looks  # one more shard each look
                values = {"shards": done, "images": 100 * done, "skipped": 1}
                return {"counters": [MetricResult(MetricKey("Extract", MetricName(pipeline.METRICS_NAMESPACE, name)),
                                                  value, value) for name, value in values.items()]}

        return Counters()


def test_the_launcher_logs_progress_while_a_cluster_runs(caplog):
    with caplog.at_level("INFO"):
        pipeline._follow(_RunningJob(), num_shards=4, log_every_s=0.01)
    lines = [r.getMessage() for r in caplog.records if "shards" in r.getMessage()]
    assert [line.split(",")[0] for line in lines] == ["RUNNING: 2/4 shards", "RUNNING: 3/4 shards", "DONE: 4/4 shards"]
    assert re.fullmatch(r"RUNNING: 2/4 shards, 200 images, [\d.]+ img/s, 1 skipped, ETA \d+m\d\ds", lines[0])


def test_pipeline_options_pass_through_and_unknown_flags_are_refused():
    # The command lines of BUILD.md ("Feature extraction on Apache Beam"), flag for flag.
    pipeline.check_pipeline_args([
        "--runner=DataflowRunner", "--project=PROJECT", "--region=europe-west4", "--temp_location=gs://BUCKET/tmp",
        "--staging_location=gs://BUCKET/staging",
        "--sdk_container_image=europe-west4-docker.pkg.dev/PROJECT/REPO/spreid-beam:0.1.0",
        "--sdk_location=container", "--machine_type=n1-standard-8", "--max_num_workers=20",
        "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"])
    pipeline.check_pipeline_args(["--runner=DataflowRunner", "--project=P", "--region=R", "--temp_location=gs://B/t",
                                  "--setup_file=./setup.py", "--requirements_file=requirements.txt"])
    pipeline.check_pipeline_args(["--runner=FlinkRunner", "--flink_master=flink-jobmanager:8081",
                                  "--flink_version=1.20", "--parallelism=16", "--environment_type=DOCKER",
                                  "--environment_config=registry.example.com/spreid-beam:0.1.0"])
    pipeline.check_pipeline_args(["--runner=SparkRunner", "--spark_master_url=spark://spark-master:7077",
                                  "--environment_type=DOCKER",
                                  "--environment_config=registry.example.com/spreid-beam:0.1.0"])
    pipeline.check_pipeline_args(["--runner=FnApiRunner", "--direct_num_workers=2",
                                  "--direct_running_mode=multi_processing"])
    with pytest.raises(ValueError, match=r"unknown flags \['--batchsize=8'\]"):
        pipeline.check_pipeline_args(["--runner=DirectRunner", "--batchsize=8"])
    with pytest.raises(FileNotFoundError, match=r"--saved_model='.*nowhere' is not a SavedModel folder"):
        pipeline.run_extraction(str(REPO / "nowhere"), str(REPO), "out.npz", pipeline_args=[RUNNER])


def test_missing_apache_beam_and_a_missing_flag_are_one_line(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'apache_beam':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "export/beam_extract.py", "--saved_model=m", "--input=i",
                             "--output=o.npz"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        'error: Apache Beam is not installed: pip install -e ".[beam]" (the optional extra "beam")']
    # A missing flag of ours ends as in every absl binary, before Beam or TensorFlow is imported.
    result = subprocess.run([sys.executable, "export/beam_extract.py", "--input=i", "--output=o.npz",
                             "--runner=DirectRunner"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("FATAL Flags parsing error: flag --saved_model=None: Flag --saved_model must have")


def test_only_spreid_tf_beam_pipeline_imports_apache_beam():
    """The base install never imports Beam: only this module does, and only the Beam binary imports it."""
    importers, pipeline_importers = set(), set()
    for path in sorted((REPO / "spreid_tf").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            relative = str(path.relative_to(REPO))
            if any(name.split(".")[0] == "apache_beam" for name in names):
                importers.add(relative)
            if "spreid_tf.beam.pipeline" in names:
                pipeline_importers.add(relative)
    assert importers == {"spreid_tf/beam/pipeline.py"}
    assert pipeline_importers == {"spreid_tf/beam/extract.py"}
