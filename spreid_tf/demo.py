"""The whole pipeline in minutes on a CPU: synthetic data -> parsing -> baseline and SPReID -> Table 4.

    python -m spreid_tf.demo                      # temporary folder, deleted at the end
    python -m spreid_tf.demo --workdir=/tmp/spreid_demo --keep

1. writes the synthetic miniatures of Market-1501 and LIP in their real on-disk
   layouts (`spreid_tf.data.synthetic`, bad files included) and adds more rendered
   people to both, in the same layouts, so that the evaluation has enough queries;
2. converts them to TFRecords with the real readers (`spreid_tf.data.convert`);
3. trains the parsing model on the synthetic LIP, then the InceptionV3 baseline and
   SPReID w/fg (with that parsing model, frozen) on the synthetic Market-1501 train
   split, from random weights, with the library the real runs use
   (`configs/synthetic*.flags` hold the same settings);
4. evaluates on the synthetic Market-1501 query/gallery with the Market-1501
   protocol and prints a table shaped like the paper's Table 4, with the chance level
   and an untrained network for reference.

Nothing here is downloaded. Numbers on synthetic people say that the pipeline
learns, not how well the method works on real data.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
from absl import app, flags

from spreid_tf import metrics
from spreid_tf.data import synthetic
from spreid_tf.data.convert import convert_dataset
from spreid_tf.data.manifest import split_shards
from spreid_tf.data.synthetic import files, people
from spreid_tf.models import build_baseline_model, combine_embeddings
from spreid_tf.training import config as config_lib
from spreid_tf.evaluate_lib import FeatureSet, extract_features
from spreid_tf.training import evaluation, parsing, reid

logger = logging.getLogger(__name__)

MARKET_DIRNAME = "Market-1501-v15.09.15"  # the folder the Market-1501 miniature writes
NUM_CAMERAS = 6


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Sizes and lengths of the demo (defaults: a few minutes on 2 CPU cores).

    Attributes:
        train_ids, images_per_train_id: synthetic Market-1501 people added to the train split.
        test_ids: people added to query (one image each) and gallery.
        gallery_per_test_id: gallery images per test person from other cameras (plus
            one from the query's camera, which the protocol excludes).
        distractors: gallery images of people never queried (pid 0).
        lip_train, lip_val: synthetic LIP pairs added to train and val.
        input_size: re-id input (height, width); InceptionV3 needs >= 75 a side.
        parsing_crop: parsing training crops.
        aspp_rates: ASPP rates scaled down to the ~5x5 feature grid of the crops.
        parsing_steps, reid_steps: training iterations.
        parsing_batch, reid_batch: global batch sizes.
        parsing_learning_rate: parsing backbone rate (ASPP and classifier at 10x).
        reid_learning_rate: re-id rate.
        clip_norm: global gradient clipping. Higher than the paper's 2.0: from random
            weights the stem convolutions' gradients (norm ~1e3) dominate the global
            norm, and clipping at 2.0 leaves the rest of the network almost frozen.
        seed: seeds data, weights and input order.
    """

    train_ids: int = 40
    images_per_train_id: int = 6
    test_ids: int = 30
    gallery_per_test_id: int = 3
    distractors: int = 10
    lip_train: int = 160
    lip_val: int = 24
    input_size: tuple[int, int] = (128, 80)
    parsing_crop: tuple[int, int] = (96, 96)
    aspp_rates: tuple[int, ...] = (1, 1, 2, 2)
    parsing_steps: int = 150
    reid_steps: int = 300
    parsing_batch: int = 4
    reid_batch: int = 8
    parsing_learning_rate: float = 0.03
    reid_learning_rate: float = 0.05
    clip_norm: float = 5.0
    seed: int = 0


# A small run for tests: still learns, about a third of the time.
QUICK = DemoSettings(train_ids=24, test_ids=20, lip_train=48, lip_val=8, parsing_steps=20, reid_steps=80)


@dataclasses.dataclass
class DemoResult:
    """Rows of the table (name -> metrics dict), training curves and the parsing scores.

    Attributes:
        rows: table row name -> `RankingResult.as_dict()` (mAP, rank1, rank10, ...).
        training: trained model name -> {"first_loss", "last_loss", "accuracy",
            "num_identities"}: the first and last logged training windows.
        parsing: the parsing model's scores on synthetic LIP val.
    """

    rows: dict[str, dict]
    training: dict[str, dict]
    parsing: dict
    num_queries: int
    num_gallery: int
    seconds: float
    workdir: str


BASELINE, SPREID, UNTRAINED = "Baseline (InceptionV3)", "SPReID w/fg", "InceptionV3, random weights (no training)"


# ------------------------------------------------------------------------------- data


def _market_name(pid: int, cam: int, frame: int) -> str:
    # Market-1501's convention: PPPP_cCsS_FFFFFF_BB.jpg
    return f"{pid:04d}_c{cam}s1_{frame:06d}_01.jpg"


def add_market_people(root: Path, settings: DemoSettings) -> None:
    """Adds rendered people to a Market-1501 miniature, in its layout and naming.

    Person ids from 1000 (train) and 1500 (test) do not collide with the miniature's.
    """
    data = root / MARKET_DIRNAME
    rng = np.random.default_rng([settings.seed, 1501])
    frame = 200_000

    def person(directory: str, pid: int, cam: int, identity_seed: int) -> None:
        nonlocal frame
        frame += 7
        files.write_person(data / directory / _market_name(pid, cam, frame), identity_seed,
                           settings.seed * 31 + cam, frame, 128, 64)

    for i in range(settings.train_ids):
        pid = 1000 + i
        for cam in rng.choice(np.arange(1, NUM_CAMERAS + 1), settings.images_per_train_id):
            person("bounding_box_train", pid, int(cam), 50_000 + 11 * pid)
    for i in range(settings.test_ids):
        pid = 1500 + i
        cams = rng.permutation(np.arange(1, NUM_CAMERAS + 1))
        query_cam = int(cams[0])
        person("query", pid, query_cam, 50_000 + 11 * pid)
        person("bounding_box_test", pid, query_cam, 50_000 + 11 * pid)  # same camera: excluded
        for cam in cams[1:1 + settings.gallery_per_test_id]:
            person("bounding_box_test", pid, int(cam), 50_000 + 11 * pid)
    for i in range(settings.distractors):
        person("bounding_box_test", 0, int(rng.integers(1, NUM_CAMERAS + 1)), 90_000 + 13 * i)


def add_lip_people(root: Path, settings: DemoSettings) -> None:
    """Adds rendered (image, mask) pairs to a LIP miniature, listed in its id files."""
    image_base = root / "LIP" / "TrainVal_images"
    mask_base = root / "LIP" / "TrainVal_parsing_annotations"
    rng = np.random.default_rng([settings.seed, 20])
    for split, count in (("train", settings.lip_train), ("val", settings.lip_val)):
        ids = []
        for k in range(count):
            image_id = f"{700_000 + k}_{int(rng.integers(100_000, 600_000))}"
            height, width = int(rng.integers(96, 144)), int(rng.integers(48, 80))
            identity = people.make_identity(70_000 + k + (100_000 if split == "val" else 0))
            rgb, mask = people.render_person(identity, people.make_camera(int(rng.integers(0, 1000))), height,
                                             width, np.random.default_rng([settings.seed, k, split == "val"]))
            files.write_image(image_base / f"{split}_images" / f"{image_id}.jpg", rgb)
            files.write_image(mask_base / f"{split}_segmentations" / f"{image_id}.png", mask)
            ids.append(image_id)
        id_file = image_base / f"{split}_id.txt"
        listed = id_file.read_text() if id_file.exists() else ""
        id_file.write_text(listed + "".join(f"{i}\n" for i in ids))


def prepare_data(workdir: Path, settings: DemoSettings) -> dict[str, Path]:
    """Writes the raw synthetic benchmarks and converts them; returns {name: converted folder}."""
    raw, converted = workdir / "raw", workdir / "tfrecords"
    if raw.exists():
        shutil.rmtree(raw)
    written = synthetic.write_all(raw, seed=settings.seed, names=["market1501", "lip"])
    add_market_people(Path(written["market1501"].root), settings)
    add_lip_people(Path(written["lip"].root), settings)
    out = {}
    for name, expected in written.items():
        convert_dataset(name, expected.root, converted, overwrite=True, progress_every=100_000)
        out[name] = converted / name
    return out


# ---------------------------------------------------------------------------- training


def _optimization(steps: int, batch: int, learning_rate: float, clip_norm: float,
                  head: float = 1.0) -> config_lib.OptimizationConfig:
    return config_lib.OptimizationConfig(batch_size=batch, total_steps=steps, learning_rate=learning_rate,
                                         clip_norm=clip_norm, head_lr_multiplier=head)


def _runtime(steps: int, seed: int) -> config_lib.RuntimeConfig:
    return config_lib.RuntimeConfig(checkpoint_every=max(steps, 1), keep_checkpoints=1,
                                    log_every=max(steps // 5, 1), seed=seed)


def _embeddings(model: keras.Model, converted: Path, settings: DemoSettings) -> dict[str, FeatureSet]:
    return {split: extract_features(model, split_shards(converted, split), settings.input_size, batch_size=32)
            for split in ("query", "gallery")}


def _score(query: FeatureSet, gallery: FeatureSet, q_features: np.ndarray, g_features: np.ndarray) -> dict:
    return metrics.evaluate_features(q_features, g_features, query.person_id, gallery.person_id,
                                     query.camera_id, gallery.camera_id, metric="cosine").as_dict()


def run_demo(workdir: str | os.PathLike, settings: DemoSettings = DemoSettings()) -> DemoResult:
    """Runs the demo in `workdir` (data, runs) and returns the table's numbers."""
    start = time.perf_counter()
    workdir = Path(workdir)
    data = prepare_data(workdir, settings)
    runs = workdir / "runs"

    logger.info("Training the parsing model on synthetic LIP (%d steps)", settings.parsing_steps)
    parsing_config = config_lib.ParsingConfig(
        train_data=str(data["lip"]), crop_size=settings.parsing_crop, min_scale=0.75, max_scale=1.25,
        weights=None, aspp_rates=settings.aspp_rates, eval_batch_size=8, shuffle_buffer=512,
        optimization=_optimization(settings.parsing_steps, settings.parsing_batch, settings.parsing_learning_rate,
                                   settings.clip_norm, head=10.0),
        runtime=_runtime(settings.parsing_steps, settings.seed))
    config_lib.write_config(parsing_config, str(runs / "parsing"))
    parsing_summary = parsing.train_parsing(parsing_config, str(runs / "parsing"))

    reid_configs = {
        BASELINE: ("baseline", config_lib.ReidConfig(
            train_data=str(data["market1501"]), model="baseline", input_size=settings.input_size, weights=None,
            evaluate=False, shuffle_buffer=1024,
            optimization=_optimization(settings.reid_steps, settings.reid_batch, settings.reid_learning_rate,
                                       settings.clip_norm),
            runtime=_runtime(settings.reid_steps, settings.seed))),
        SPREID: ("spreid_w_fg", config_lib.ReidConfig(
            train_data=str(data["market1501"]), model="spreid", variant="w_fg", input_size=settings.input_size,
            parsing_model=parsing_summary["model"], weights=None, evaluate=False, shuffle_buffer=1024,
            optimization=_optimization(settings.reid_steps, settings.reid_batch, settings.reid_learning_rate,
                                       settings.clip_norm),
            runtime=_runtime(settings.reid_steps, settings.seed))),
    }
    embeddings, training = {}, {}
    for name, (folder, config) in reid_configs.items():
        logger.info("Training %s on synthetic Market-1501 (%d steps)", name, settings.reid_steps)
        config_lib.write_config(config, str(runs / folder))
        summary = reid.train_and_evaluate(config, str(runs / folder))
        history = summary["history"]
        training[name] = {"first_loss": history[0][1]["loss"], "last_loss": history[-1][1]["loss"],
                          "accuracy": history[-1][1]["accuracy"], "num_identities": summary["num_identities"]}
        model = keras.saving.load_model(summary["model"], compile=False)
        embeddings[name] = _embeddings(model, data["market1501"], settings)

    # Random features already separate people by colour: the reference that training must beat.
    keras.utils.set_random_seed(settings.seed)
    untrained = build_baseline_model(2, input_size=settings.input_size, weights=None)
    embeddings[UNTRAINED] = _embeddings(untrained, data["market1501"], settings)

    query, gallery = embeddings[BASELINE]["query"], embeddings[BASELINE]["gallery"]
    rows = {"Chance (random ranking)": evaluation.chance_reid(data["market1501"], seed=settings.seed)}
    for name in (UNTRAINED, BASELINE, SPREID):
        rows[name] = _score(query, gallery, embeddings[name]["query"].embedding,
                            embeddings[name]["gallery"].embedding)
    combined = [np.asarray(combine_embeddings(embeddings[BASELINE][split].embedding,
                                              embeddings[SPREID][split].embedding))
                for split in ("query", "gallery")]
    rows[f"{SPREID} + baseline (combined)"] = _score(query, gallery, *combined)
    return DemoResult(rows=rows, training=training, parsing=parsing_summary["eval"] or {},
                      num_queries=len(query), num_gallery=len(gallery),
                      seconds=time.perf_counter() - start, workdir=str(workdir))


def format_table(result: DemoResult) -> str:
    """The result as a Markdown table shaped like the paper's Table 4, and the training curves."""
    lines = [
        f"Synthetic Market-1501: {result.num_queries} queries, {result.num_gallery} gallery images "
        "(single query, Market-1501 protocol, cosine distance)",
        "",
        "| Model | mAP | rank-1 | rank-10 |",
        "|---|---:|---:|---:|",
    ]
    for name, row in result.rows.items():
        lines.append(f"| {name} | {100 * row['mAP']:.1f} | {100 * row['rank1']:.1f} | "
                     f"{100 * row.get('rank10', float('nan')):.1f} |")
    lines.append("")
    for name, t in result.training.items():
        lines.append(f"{name}: training loss {t['first_loss']:.2f} -> {t['last_loss']:.2f} "
                     f"(uniform guess: {np.log(t['num_identities']):.2f}), training accuracy "
                     f"{100 * t['accuracy']:.0f}% (chance {100 / t['num_identities']:.0f}%)")
    if result.parsing:
        scores = result.parsing
        lines.append(f"Parsing model on synthetic LIP val: pixel accuracy {100 * scores['pixel_accuracy']:.1f}%, "
                     f"mean IoU {100 * scores['mean_iou']:.1f}%")
    lines.append(f"({result.seconds / 60:.1f} min; runs in {result.workdir}/runs)")
    return "\n".join(lines)


# -------------------------------------------------------------------------------- main

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "Folder for the data and the runs (default: a temporary one).")
    flags.DEFINE_boolean("keep", False, "Keep the working folder (a temporary one is deleted otherwise).")
    flags.DEFINE_boolean("quick", False, "A shorter run (fewer people and steps).")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # The library logs progress through Python logging; show it with absl's handler.
    logging.getLogger("spreid_tf").setLevel(logging.INFO)
    logging.getLogger("spreid_tf.data.convert").setLevel(logging.ERROR)  # the miniatures' bad files, on purpose
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="spreid_demo_")
    try:
        result = run_demo(workdir, QUICK if FLAGS.quick else DemoSettings())
        print(format_table(result), flush=True)
    finally:
        if not FLAGS.workdir and not FLAGS.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
