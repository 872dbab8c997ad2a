"""SPReID's effect in minutes on a CPU: synthetic data -> parser -> baseline vs SPReID, 3 seeds.

    python -m spreid_tf.demo                                  # ~6.5 min on 2 cores
    python -m spreid_tf.demo --quick --results_json=r.json    # two seeds, fewer steps
    python -m spreid_tf.demo --workdir=/tmp/spreid_demo --keep

1. writes a synthetic LIP (the LIP miniature plus rendered people, real layout) and
   a synthetic *part-layout* Market-1501 (`spreid_tf.data.synthetic.part_layout`):
   identities share a six-colour palette; the four people of an outfit group wear the
   same top and pants and differ by the colour of cap and shoes (~3% of the image).
   Cameras change light, background, scale, shift and pose. Ground-truth part masks of
   the test images are written beside the tree (not in it);
2. converts both with the real readers (`spreid_tf.data.convert`);
3. trains the parsing model on the synthetic LIP and scores it on LIP val (20-label and
   five-group mean IoU). The demo's backbone is MobileNetV2 (keras.applications; DeepLab's
   atrous MobileNetV2 at output stride 16 with the DeepLabv3+ decoder for the parser, at
   output stride 16 for re-id): InceptionV3 from random weights does not train far enough
   in ten CPU minutes (`--parsing_backbone`/`--reid_backbone` of the library choose it);
4. for each of three seeds trains the baseline and SPReID w/fg (with that
   parser, frozen) from random weights with the library the real runs use
   (`configs/synthetic*.flags` hold the same settings);
   The jobs run in two worker processes with one thread each, so the same seed gives
   the same table (TensorFlow's multi-threaded CPU sums are not reproducible);
5. evaluates every model with one convention (l2-normalised embeddings, euclidean
   distance, Market-1501 protocol) and prints the table: chance, the untrained
   network, baseline, SPReID w/fg, and two rows that bound the mechanism: the trained
   SPReID pooled at test time with the ground-truth part masks instead of the parser
   (upper bound), and with uniform maps (= global average pooling).

Nothing here is downloaded. The numbers say whether the mechanism works in this code
(part-aligned pooling beats global pooling when the part layout is what identifies a
person); they do not say how well SPReID does on real data.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from spreid_tf import cli

if __name__ == "__main__":
    cli.interrupt_quietly_while_loading()  # Ctrl-C while TensorFlow loads: one line

import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from spreid_tf import atomic, lip  # noqa: E402
from spreid_tf.data import pipelines, synthetic  # noqa: E402
from spreid_tf.data.convert import convert_dataset  # noqa: E402
from spreid_tf.data.manifest import split_shards  # noqa: E402
from spreid_tf.data.synthetic import files, part_layout, people  # noqa: E402
from spreid_tf.evaluation import protocols  # noqa: E402
from spreid_tf.evaluation.features import FeatureSet, extract_features, l2_normalize  # noqa: E402
from spreid_tf.models import build_baseline_model, build_pooling_probe  # noqa: E402
from spreid_tf.training import config as config_lib  # noqa: E402
from spreid_tf.training import parsing, reid  # noqa: E402

logger = logging.getLogger(__name__)

MARKET = "market1501"


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Sizes and lengths of the demo (defaults: under 10 minutes on 2 CPU cores).

    Attributes:
        train_ids, images_per_train_id: part-layout people of the train split.
        test_ids: people in query (one image each) and gallery; whole outfit groups of 4
            (see part_layout), so the people who differ only by cap and shoes are in the test set.
        gallery_per_test_id: gallery images per test person from other cameras (plus
            one from the query's camera, which the protocol excludes).
        distractors: gallery images of people never queried (pid 0).
        lip_train, lip_val: synthetic LIP pairs added to train and val.
        input_size: re-id and parsing input (height, width).
        reid_backbone: "mobilenet_v2_c3": MobileNetV2's stride-8 features (a 16x10 grid at
            128x80, receptive field 59 px). Local features are what part pooling needs: the
            deep backbones trained from random weights ("mobilenet_v2_os16", "inception_v3_os16")
            learn features that see the whole crop at every position, and their part-pooled,
            foreground-pooled and globally pooled vectors then score the same (BUILD.md).
        parsing_backbone, parsing_decoder: the parser's backbone and DeepLabv3+'s decoder
            (logits at stride 4: without it the stride-16 or -8 logits miss the shoes).
        parsing_crop: parsing training crops.
        parsing_output_stride: the backbone's output stride (the decoder adds stride 4).
        aspp_rates, aspp_filters: ASPP scaled down to the ~16x10 grid and the CPU.
        parsing_steps, reid_steps: training iterations.
        parsing_batch, reid_batch: global batch sizes.
        parsing_learning_rate, parsing_head_multiplier: parsing rate and the ASPP and
            classifier's multiple of it (the paper: 10x from ImageNet weights; from random
            weights 10x drove the head to the label prior, background everywhere).
        reid_learning_rate, reid_head_multiplier: the same for re-id (a 10x classifier
            made the loss climb from 5.2 to 13 in the first 24 steps).
        warmup_steps: linear warm-up of every run (from random weights the first
            gradients have norms in the hundreds).
        clip_norm: global gradient clipping; 0 = off: from random weights the first
            gradients (norms ~100) would be cut to a tenth of the rate or less; the warm-up
            keeps those steps small instead.
        precise_bn_batches: batches that recompute the batch-norm statistics after
            each run (training.precise_bn).
        seeds: seeds of the re-id runs (the data and the parser use the first).
    """

    train_ids: int = 32
    images_per_train_id: int = 6
    test_ids: int = 24
    gallery_per_test_id: int = 3
    distractors: int = 8
    lip_train: int = 96
    lip_val: int = 24
    input_size: tuple[int, int] = (128, 80)
    reid_backbone: str = "mobilenet_v2_c3"
    parsing_backbone: str = "mobilenet_v2"
    parsing_decoder: bool = True
    parsing_crop: tuple[int, int] = (128, 80)
    parsing_output_stride: int = 16
    aspp_rates: tuple[int, ...] = (1, 2, 3, 4)
    aspp_filters: int = 64
    parsing_steps: int = 400
    reid_steps: int = 400
    parsing_batch: int = 8
    reid_batch: int = 16
    parsing_learning_rate: float = 0.1
    parsing_head_multiplier: float = 1.0
    reid_learning_rate: float = 0.02
    reid_head_multiplier: float = 1.0
    warmup_steps: int = 30
    clip_norm: float = 0.0
    precise_bn_batches: int = 8
    seeds: tuple[int, ...] = (0, 1, 2)


# Same checks on two seeds, fewer steps.
QUICK = DemoSettings(parsing_steps=250, reid_steps=250, warmup_steps=20, seeds=(0, 1))

# Row keys (the --results_json names) and their table labels.
UNTRAINED, BASELINE, SPREID = "untrained", "baseline", "spreid_w_fg"
GT_MASKS, UNIFORM_MAPS = "spreid_w_fg_gt_masks", "spreid_w_fg_uniform_maps"
CHANCE = "chance"
LABELS = {
    CHANCE: "Chance (random ranking)",
    UNTRAINED: "{backbone}, random weights (no training)",
    BASELINE: "Baseline ({backbone}, global average pooling)",
    SPREID: "SPReID w/fg (parser's part maps)",
    GT_MASKS: "SPReID w/fg, pooled with ground-truth part masks (test time only)",
    UNIFORM_MAPS: "SPReID w/fg, pooled with uniform maps = GAP (test time only)",
}
TRAINED = (BASELINE, SPREID)
# The grid of the ground-truth maps of the upper-bound row (a parser at output stride 8 at best).
GT_MAPS_STRIDE = 8


@dataclasses.dataclass
class DemoResult:
    """The table's numbers.

    Attributes:
        rows: row key -> {"mAP", "rank1", "rank10" (means), "mAP_per_seed",
            "rank1_per_seed", "rank10_per_seed"} (fractions); "chance" is one value.
        training: "baseline"/"spreid_w_fg" -> per-seed loss summaries {"first", "min",
            "last", "accuracy", "num_identities"}.
        parsing: the parser's scores on synthetic LIP val.
    """

    rows: dict[str, dict]
    training: dict[str, list[dict]]
    parsing: dict
    num_queries: int
    num_gallery: int
    seeds: tuple[int, ...]
    seconds: float
    workdir: str
    reid_backbone: str = "mobilenet_v2_c3"

    def as_json(self) -> dict:
        """The --results_json document."""
        keys = ("mAP", "rank1", "mAP_per_seed", "rank1_per_seed")
        return {"rows": {name: {k: self.rows[name][k] for k in keys}
                         for name in (UNTRAINED, BASELINE, SPREID, GT_MASKS, UNIFORM_MAPS)},
                "parsing": {k: self.parsing[k] for k in ("group_mean_iou", "mean_iou", "pixel_accuracy")},
                "seconds": self.seconds,
                "chance": {k: self.rows[CHANCE][k] for k in ("mAP", "rank1")},
                "training": self.training, "seeds": list(self.seeds),
                "protocol": protocols.MARKET1501, "metric": protocols.DEFAULT_METRIC,
                "scored_with": protocols.describe(protocols.MARKET1501)}


# ------------------------------------------------------------------------------- data


def add_lip_people(root: Path, settings: DemoSettings) -> None:
    """Adds rendered (image, mask) pairs to a LIP miniature, listed in its id files."""
    image_base = root / "LIP" / "TrainVal_images"
    mask_base = root / "LIP" / "TrainVal_parsing_annotations"
    seed = settings.seeds[0]
    rng = np.random.default_rng([seed, 20])
    for split, count in (("train", settings.lip_train), ("val", settings.lip_val)):
        ids = []
        for k in range(count):
            image_id = f"{700_000 + k}_{int(rng.integers(100_000, 600_000))}"
            height, width = int(rng.integers(112, 144)), int(rng.integers(56, 80))
            identity = people.make_identity(70_000 + k + (100_000 if split == "val" else 0))
            rgb, mask = people.render_person(identity, people.make_camera(int(rng.integers(0, 1000))), height,
                                             width, np.random.default_rng([seed, k, split == "val"]))
            files.write_image(image_base / f"{split}_images" / f"{image_id}.jpg", rgb)
            files.write_image(mask_base / f"{split}_segmentations" / f"{image_id}.png", mask)
            ids.append(image_id)
        id_file = image_base / f"{split}_id.txt"
        listed = id_file.read_text() if id_file.exists() else ""
        id_file.write_text(listed + "".join(f"{i}\n" for i in ids))


def prepare_data(workdir: Path, settings: DemoSettings) -> dict[str, Path]:
    """Writes the raw synthetic benchmarks and converts them.

    Returns:
        {"lip": converted LIP, "market1501": converted part-layout Market-1501,
         "masks": ground-truth masks of the Market images}.
    """
    raw, converted = workdir / "raw", workdir / "tfrecords"
    if raw.exists():
        shutil.rmtree(raw)
    seed = settings.seeds[0]
    lip_root = Path(synthetic.write_all(raw, seed=seed, names=["lip"])["lip"].root)
    add_lip_people(lip_root, settings)
    masks = raw / "market1501_masks"
    part_layout.write_part_layout_market(
        raw / MARKET, num_train_ids=settings.train_ids, images_per_train_id=settings.images_per_train_id,
        num_test_ids=settings.test_ids, gallery_per_test_id=settings.gallery_per_test_id,
        num_distractors=settings.distractors, seed=seed, masks_dir=masks)
    convert_dataset("lip", lip_root, converted, overwrite=True, progress_every=100_000)
    convert_dataset(MARKET, raw / MARKET, converted, overwrite=True, progress_every=100_000)
    return {"lip": converted / "lip", MARKET: converted / MARKET, "masks": masks}


# ---------------------------------------------------------------------------- training


def _optimization(settings: DemoSettings, steps: int, batch: int, learning_rate: float,
                  head: float) -> config_lib.OptimizationConfig:
    return config_lib.OptimizationConfig(batch_size=batch, total_steps=steps, learning_rate=learning_rate,
                                         clip_norm=settings.clip_norm, head_lr_multiplier=head,
                                         warmup_steps=settings.warmup_steps,
                                         precise_bn_batches=settings.precise_bn_batches)


def _runtime(steps: int, seed: int) -> config_lib.RuntimeConfig:
    return config_lib.RuntimeConfig(checkpoint_every=max(steps, 1), keep_checkpoints=1,
                                    log_every=max(steps // 10, 1), seed=seed)


def parsing_config(settings: DemoSettings, lip_dir: str) -> config_lib.ParsingConfig:
    """The demo's parsing run (configs/synthetic_parsing.flags holds the same)."""
    return config_lib.ParsingConfig(
        train_data=lip_dir, crop_size=settings.parsing_crop, min_scale=0.75, max_scale=1.25, weights=None,
        aspp_rates=settings.aspp_rates, output_stride=settings.parsing_output_stride,
        aspp_filters=settings.aspp_filters, backbone=settings.parsing_backbone,
        decoder=settings.parsing_decoder, eval_batch_size=8,
        shuffle_buffer=512,
        optimization=_optimization(settings, settings.parsing_steps, settings.parsing_batch,
                                   settings.parsing_learning_rate, head=settings.parsing_head_multiplier),
        runtime=_runtime(settings.parsing_steps, settings.seeds[0]))


def reid_config(settings: DemoSettings, model: str, market_dir: str, seed: int,
                parsing_model: str | None = None) -> config_lib.ReidConfig:
    """The demo's re-id run (configs/synthetic.flags holds the same for the baseline)."""
    return config_lib.ReidConfig(
        train_data=market_dir, model=model, backbone=settings.reid_backbone, variant="w_fg",
        input_size=settings.input_size,
        parsing_model=parsing_model, weights=None, evaluate=False, shuffle_buffer=1024,
        optimization=_optimization(settings, settings.reid_steps, settings.reid_batch,
                                   settings.reid_learning_rate, head=settings.reid_head_multiplier),
        runtime=_runtime(settings.reid_steps, seed))


def _loss_summary(summary: dict) -> dict:
    losses = [metrics_["loss"] for _, metrics_ in summary["history"]]
    return {"first": losses[0], "min": min(losses), "last": losses[-1],
            "accuracy": summary["history"][-1][1]["accuracy"], "num_identities": summary["num_identities"]}


# -------------------------------------------------------------------------- evaluation


def _score(query: FeatureSet, gallery: FeatureSet, q: np.ndarray, g: np.ndarray) -> dict:
    """The rows' embeddings `q`, `g` of the query and gallery images, scored as every evaluation of
    the package scores (l2-normalised, euclidean distance, the conversion's protocol: Market-1501)."""
    return protocols.score(FeatureSet(l2_normalize(q), query.person_id, query.camera_id, query.filename),
                           FeatureSet(l2_normalize(g), gallery.person_id, gallery.camera_id, gallery.filename),
                           protocols.MARKET1501).as_dict()


def ground_truth_maps(masks: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(N, H, W) LIP label masks -> (N, h, w, 5) soft group maps (lip.GROUP_NAMES order) on `grid`.

    Area-averaged one-hot maps: the fraction of each cell covered by each group, as a
    parser's probabilities at that grid would be at best.
    """
    groups = np.zeros((masks.shape[0],) + masks.shape[1:] + (lip.NUM_GROUPS,), np.float32)
    groups[..., 0] = masks != lip.BACKGROUND
    for channel, labels in enumerate(lip.PART_GROUPS.values(), start=1):
        groups[..., channel] = np.isin(masks, labels)
    # cv2 resizes at most 4 channels at a time: one map at a time.
    return np.stack([np.stack([cv2.resize(np.ascontiguousarray(g[..., c]), (grid[1], grid[0]),
                                          interpolation=cv2.INTER_AREA) for c in range(lip.NUM_GROUPS)], -1)
                     for g in groups])


def probe_function(model: keras.Model):
    """`embed(image, maps) -> embedding` of a SPReID model pooled with the given maps (traced once)."""
    probe = build_pooling_probe(model)
    signature = [tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32),
                 tf.TensorSpec((None, None, None, lip.NUM_GROUPS), tf.float32)]
    return tf.function(lambda image, maps: probe({"image": image, "maps": maps}), input_signature=signature)


def probe_embeddings(embed, converted: Path, split: str, image_size: tuple[int, int], maps_fn,
                     batch_size: int = 32) -> np.ndarray:
    """Embeddings of `split` from `embed = probe_function(model)` with the maps `maps_fn(filenames)`."""
    out = []
    for batch in pipelines.eval_dataset([str(f) for f in split_shards(converted, split)], batch_size=batch_size,
                                        image_size=tuple(image_size)):
        names = [n.decode() for n in batch["filename"].numpy()]
        out.append(np.asarray(embed(tf.cast(batch["image"], tf.float32), tf.constant(maps_fn(names), tf.float32))))
    return np.concatenate(out)


def _rows_from_seeds(per_seed: list[dict]) -> dict:
    row = {}
    for key in ("mAP", "rank1", "rank10"):
        values = [float(r[key]) for r in per_seed]
        row[key] = float(np.mean(values))
        row[f"{key}_std"] = float(np.std(values))
        row[f"{key}_per_seed"] = values
    return row


# ------------------------------------------------------------------------------- jobs
#
# Same seed, same table: TensorFlow's CPU kernels split their sums over the intra-op
# threads in an order that varies from run to run (checked: seeded input identical, losses
# differing from the fourth step on, with and without oneDNN; identical with one thread).
# So every job that trains or embeds runs in one of two worker processes with one thread
# each: as fast on 2 cores as one process with two threads, and bit-reproducible.


def _init_worker() -> None:
    # Ctrl-C reaches the whole process group: the parent answers it (one line, the pool
    # terminated); the workers ignore it, so the training loop keeps the default actions.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("spreid_tf").setLevel(logging.INFO)
    logging.getLogger("spreid_tf.data.convert").setLevel(logging.ERROR)


def _parsing_job(settings: DemoSettings, lip_dir: str, run_dir: str) -> dict:
    config = parsing_config(settings, lip_dir)
    config_lib.write_config(config, run_dir)
    summary = parsing.train_parsing(config, run_dir)
    return {"model": summary["model"], "eval": summary["eval"]}


def _embed(model: keras.Model, market: Path, settings: DemoSettings) -> dict[str, FeatureSet]:
    return {split: extract_features(model, split_shards(market, split), settings.input_size, batch_size=32)
            for split in ("query", "gallery")}


def _reid_job(settings: DemoSettings, key: str, data: dict[str, Path], seed: int, run_dir: str,
              parsing_model: str | None = None) -> dict:
    """Trains one model and returns its loss summary and embeddings ({row key: (query, gallery)})."""
    market = data[MARKET]
    config = reid_config(settings, "spreid" if key == SPREID else "baseline", str(market), seed, parsing_model)
    config_lib.write_config(config, run_dir)
    summary = reid.train_and_evaluate(config, run_dir)
    model = keras.saving.load_model(summary["model"], compile=False)
    sets = _embed(model, market, settings)
    out = {"training": _loss_summary(summary), "ids": sets,
           "embeddings": {key: (sets["query"].embedding, sets["gallery"].embedding)}}
    if key == SPREID:
        grid = tuple(-(-side // GT_MAPS_STRIDE) for side in settings.input_size)
        folders = {"query": "query", "gallery": "bounding_box_test"}

        def gt_maps(split):
            return lambda names: ground_truth_maps(part_layout.read_masks(data["masks"], folders[split], names), grid)

        def uniform_maps(split):
            return lambda names: np.ones((len(names),) + grid + (lip.NUM_GROUPS,), np.float32)

        embed = probe_function(model)
        for probe_key, maps_fn in ((GT_MASKS, gt_maps), (UNIFORM_MAPS, uniform_maps)):
            out["embeddings"][probe_key] = tuple(
                probe_embeddings(embed, market, split, settings.input_size, maps_fn(split))
                for split in ("query", "gallery"))
    else:
        # Random features already separate people by colour: the reference training must beat.
        keras.utils.set_random_seed(seed)
        untrained = build_baseline_model(2, backbone=settings.reid_backbone, input_size=settings.input_size,
                                         weights=None)
        sets = _embed(untrained, market, settings)
        out["embeddings"][UNTRAINED] = (sets["query"].embedding, sets["gallery"].embedding)
    return out


def run_demo(workdir: str | os.PathLike, settings: DemoSettings = DemoSettings()) -> DemoResult:
    """Runs the demo in `workdir` (data, runs) and returns the table's numbers.

    The parser and the baselines train at once (two worker processes); the SPReID runs
    follow as soon as the parser is saved.
    """
    start = time.perf_counter()
    workdir = Path(workdir)
    data = prepare_data(workdir, settings)
    runs = workdir / "runs"
    if runs.exists():
        # Runs resume from their checkpoints: a kept workdir would replay old results.
        shutil.rmtree(runs)
    market = data[MARKET]

    # oneDNN's dilated convolutions (the stride-8 parser) give different sums run to run even on
    # one thread; TensorFlow's own kernels do not. The spawned workers inherit this setting.
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    context = multiprocessing.get_context("spawn")  # a fresh TensorFlow runtime per worker
    # One process per job (maxtasksperchild=1): what ran before in a worker changed the next job's numbers.
    with context.Pool(2, initializer=_init_worker, maxtasksperchild=1) as pool:
        try:
            logger.info("Training the parser (%d steps) and the baselines (%d steps, seeds %s) in two processes",
                        settings.parsing_steps, settings.reid_steps, list(settings.seeds))
            parser_job = pool.apply_async(_parsing_job, (settings, str(data["lip"]), str(runs / "parsing")))
            jobs = {(BASELINE, seed): pool.apply_async(_reid_job, (settings, BASELINE, data, seed,
                                                                   str(runs / f"{BASELINE}_seed{seed}")))
                    for seed in settings.seeds}
            parser = parser_job.get()
            logger.info("Parser on synthetic LIP val: five-group mean IoU %.3f, 20-label mean IoU %.3f",
                        parser["eval"]["group_mean_iou"], parser["eval"]["mean_iou"])
            for seed in settings.seeds:
                run_dir = str(runs / f"{SPREID}_seed{seed}")
                jobs[(SPREID, seed)] = pool.apply_async(_reid_job, (settings, SPREID, data, seed, run_dir,
                                                                    parser["model"]))
            results = {key: job.get() for key, job in jobs.items()}
        except KeyboardInterrupt:
            # Ctrl-C: the workers (which ignore SIGINT) stop now, mid-step (the next demo starts its
            # runs afresh); the pool's own SIGTERM would let each finish its step and checkpoint first.
            for worker in multiprocessing.active_children():
                worker.kill()
            raise

    per_seed: dict[str, list[dict]] = {k: [] for k in (UNTRAINED, BASELINE, SPREID, GT_MASKS, UNIFORM_MAPS)}
    training: dict[str, list[dict]] = {BASELINE: [], SPREID: []}
    query, gallery = results[(BASELINE, settings.seeds[0])]["ids"].values()
    for seed in settings.seeds:
        for key in (BASELINE, SPREID):
            result = results[(key, seed)]
            training[key].append(result["training"])
            for row, (q, g) in result["embeddings"].items():
                per_seed[row].append(_score(query, gallery, q, g))
        logger.info("Seed %d: %s", seed, ", ".join(f"{k} mAP {100 * v[-1]['mAP']:.1f}" for k, v in per_seed.items()))

    rows = {CHANCE: protocols.chance(market, seed=settings.seeds[0])}
    rows.update({key: _rows_from_seeds(values) for key, values in per_seed.items()})
    return DemoResult(rows=rows, training=training, parsing=parser["eval"], num_queries=len(query),
                      num_gallery=len(gallery), seeds=tuple(settings.seeds),
                      seconds=time.perf_counter() - start, workdir=str(workdir),
                      reid_backbone=settings.reid_backbone)


# ----------------------------------------------------------------------------- report


def checks(result: DemoResult) -> list[tuple[str, bool]]:
    """What the demo is meant to show, each with whether this run shows it."""
    base, spreid = result.rows[BASELINE], result.rows[SPREID]
    gains = [s - b for s, b in zip(spreid["mAP_per_seed"], base["mAP_per_seed"])]
    untrained = result.rows[UNTRAINED]["mAP_per_seed"]
    beats_untrained = all(result.rows[k]["mAP_per_seed"][i] > untrained[i]
                          for k in TRAINED for i in range(len(untrained)))
    return [
        (f"parser: five-group mean IoU {result.parsing['group_mean_iou']:.2f} >= 0.60",
         result.parsing["group_mean_iou"] >= 0.60),
        (f"SPReID w/fg beats the baseline by {100 * np.mean(gains):+.1f} mAP on average (>= 5), "
         f"in {sum(g > 0 for g in gains)}/{len(gains)} seeds", np.mean(gains) >= 0.05 and all(g > 0 for g in gains)),
        ("every trained model beats the untrained network in every seed", beats_untrained),
    ]


def format_table(result: DemoResult, runs_kept: bool = True) -> str:
    """The result as a Markdown table (mean +- std over seeds, per-seed values) and the training curves."""
    seeds = ", ".join(str(s) for s in result.seeds)

    def label(key: str) -> str:
        return LABELS[key].format(backbone=result.reid_backbone)

    lines = [
        f"Synthetic part-layout Market-1501: {result.num_queries} queries, {result.num_gallery} gallery images "
        f"(single query; {protocols.describe(protocols.MARKET1501)}); "
        f"seeds {seeds}; all models from random weights",
        "",
        "| Model | mAP | rank-1 | rank-10 | mAP per seed | rank-1 per seed |",
        "|---|---:|---:|---:|---|---|",
    ]
    for key, row in result.rows.items():
        if key == CHANCE:
            lines.append(f"| {label(key)} | {100 * row['mAP']:.1f} | {100 * row['rank1']:.1f} | "
                         f"{100 * row['rank10']:.1f} | | |")
            continue
        per = lambda name: " / ".join(f"{100 * v:.1f}" for v in row[f"{name}_per_seed"])  # noqa: E731
        lines.append(f"| {label(key)} | {100 * row['mAP']:.1f} ± {100 * row['mAP_std']:.1f} | "
                     f"{100 * row['rank1']:.1f} ± {100 * row['rank1_std']:.1f} | {100 * row['rank10']:.1f} | "
                     f"{per('mAP')} | {per('rank1')} |")
    lines.append("")
    for key, runs in result.training.items():
        curves = "; ".join(f"{r['first']:.2f} -> min {r['min']:.2f} -> {r['last']:.2f} (acc {100 * r['accuracy']:.0f}%)"
                           for r in runs)
        lines.append(f"{label(key)}: training loss first -> min -> last per seed: {curves}; "
                     f"uniform guess {np.log(runs[0]['num_identities']):.2f}")
    p = result.parsing
    lines.append(f"Parser on synthetic LIP val: five-group mean IoU {100 * p['group_mean_iou']:.1f}% "
                 f"({', '.join(f'{k} {100 * v:.0f}' for k, v in p['group_iou'].items())}), "
                 f"20-label mean IoU {100 * p['mean_iou']:.1f}%, pixel accuracy {100 * p['pixel_accuracy']:.1f}%")
    lines.append("")
    for text, ok in checks(result):
        lines.append(f"[{'x' if ok else ' '}] {text}")
    where = f"runs in {result.workdir}/runs" if runs_kept else "runs deleted: --keep or --workdir=DIR keeps them"
    lines.append(f"({result.seconds / 60:.1f} min; {where})")
    return "\n".join(lines)


# -------------------------------------------------------------------------------- main

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "Folder for the data and the runs (default: a temporary one).")
    flags.DEFINE_boolean("keep", False, "Keep the working folder (a temporary one is deleted otherwise).")
    flags.DEFINE_boolean("quick", False, "A shorter run (fewer people and steps; same checks).")
    flags.DEFINE_string("results_json", None, "Also write the numbers to this JSON file.")
    flags.DEFINE_boolean("data_only", False, "Only write and convert the demo's data into --workdir (seconds), "
                         "for configs/synthetic*.flags; print the commands that train and evaluate on it.")


def data_only_commands(workdir: str) -> str:
    """What to run on the data `--data_only` wrote into `workdir`."""
    tfrecords, runs = Path(workdir) / "tfrecords", Path(workdir) / "runs"
    return "\n".join([
        f"Converted the demo's data into {tfrecords}. Train and evaluate on it:",
        f"  python -m spreid_tf.train_parsing --flagfile=configs/synthetic_parsing.flags "
        f"--train_data={tfrecords / 'lip'} --model_dir={runs / 'parsing'}",
        f"  python -m spreid_tf.train --flagfile=configs/synthetic.flags "
        f"--train_data={tfrecords / MARKET} --model_dir={runs / 'baseline'}",
        f"  python -m spreid_tf.train --flagfile=configs/synthetic.flags --model=spreid "
        f"--parsing_model={runs / 'parsing' / 'parsing.keras'} "
        f"--train_data={tfrecords / MARKET} --model_dir={runs / 'spreid'}",
        f"  python -m spreid_tf.evaluate --model_dir={runs / 'spreid'} --data_dir={tfrecords} "
        f"--dataset={MARKET} --combine={runs / 'baseline'}",
    ])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # The library logs progress through Python logging; show it with absl's handler.
    logging.getLogger("spreid_tf").setLevel(logging.INFO)
    logging.getLogger("spreid_tf.data.convert").setLevel(logging.ERROR)  # the miniatures' bad files, on purpose
    if FLAGS.data_only:
        if not FLAGS.workdir:
            raise ValueError("--data_only needs --workdir=DIR (the data is kept there for the training commands)")
        prepare_data(Path(FLAGS.workdir), QUICK if FLAGS.quick else DemoSettings())
        print(data_only_commands(FLAGS.workdir))
        return
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="spreid_demo_")
    try:
        result = run_demo(workdir, QUICK if FLAGS.quick else DemoSettings())
        print(format_table(result, runs_kept=bool(FLAGS.workdir or FLAGS.keep)), flush=True)
        if FLAGS.results_json:
            atomic.write_text(FLAGS.results_json, json.dumps(result.as_json(), indent=2))
            print(f"Wrote {FLAGS.results_json}")
    finally:
        if not FLAGS.workdir and not FLAGS.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    define_flags()
    # After Ctrl-C a normal exit (sys.exit), not cli.exit_now: multiprocessing must unlink its
    # semaphores at exit, or its resource tracker warns about leaked ones.
    app.run(cli.one_line_errors(main, on_interrupt=sys.exit))
