"""Evaluation of trained models on converted benchmarks: features, protocols, reports.

`evaluate_reid` extracts (and caches) query and gallery embeddings, scores them with
the benchmark's protocol (`spreid_tf.metrics`), optionally with k-reciprocal
re-ranking (`spreid_tf.rerank`) and combined with other models' embeddings
(`combine_embeddings`), and writes results.json, results.md, a CMC plot, ranked-list
pictures and parsing figures. `evaluate_parsing` scores a parsing model on LIP.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from spreid_tf import atomic, lip, metrics, rerank, segmentation_metrics, visualize
from spreid_tf.data import pipelines, schema
from spreid_tf.data.manifest import load_manifest, split_shards
from spreid_tf.models import combine_embeddings

logger = logging.getLogger(__name__)

MODEL_FILENAME = "model.keras"
PARSING_FILENAME = "parsing.keras"
CACHE_VERSION = 1


@dataclasses.dataclass
class FeatureSet:
    """Embeddings of one split, in file order, with the ids the protocols need."""

    embedding: np.ndarray  # (N, D) float32
    person_id: np.ndarray  # (N,) int64
    camera_id: np.ndarray  # (N,) int64
    filename: np.ndarray  # (N,) str

    def __len__(self) -> int:
        return len(self.person_id)


def load_model(model_dir: str | os.PathLike, filename: str = MODEL_FILENAME) -> keras.Model:
    """Loads `<model_dir>/<filename>` (custom layers registered by importing spreid_tf.layers)."""
    import spreid_tf.layers  # noqa: F401  (registers the custom layers)

    path = Path(model_dir) / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: expected the model a training run saves in its model_dir")
    return keras.saving.load_model(path, compile=False)


def model_image_size(model: keras.Model) -> tuple[int, int]:
    """(height, width) the model takes; an error for models built with (None, None, 3)."""
    height, width = model.input_shape[1:3]
    if height is None or width is None:
        raise ValueError(f"{model.name} takes any image size; pass image_size explicitly")
    return int(height), int(width)


def extract_features(model: keras.Model, files: Sequence[str | os.PathLike], image_size: tuple[int, int],
                     batch_size: int = 64, log_every_s: float = 10.0, total: int | None = None) -> FeatureSet:
    """Embeddings of every record of `files` (in file order), with a progress line (rate, ETA)
    every `log_every_s` seconds and at the end.

    `total` (the record count, for the ETA) is counted with an extra pass over the files
    when not given; converted splits know it from their manifest.
    """
    embed = tf.function(lambda x: model(x, training=False)["embedding"],
                        input_signature=[tf.TensorSpec([None, *image_size, 3], tf.uint8)])
    if total is None:
        total = sum(1 for _ in tf.data.TFRecordDataset([str(f) for f in files]))
    parts: dict[str, list] = {"embedding": [], "person_id": [], "camera_id": [], "filename": []}
    start, done = time.time(), 0
    last_log = start
    dataset = pipelines.eval_dataset([str(f) for f in files], batch_size=batch_size, image_size=tuple(image_size))
    for batch in dataset:
        parts["embedding"].append(np.asarray(embed(batch["image"]), np.float32))
        parts["person_id"].append(batch["person_id"].numpy().astype(np.int64))
        parts["camera_id"].append(batch["camera_id"].numpy().astype(np.int64))
        parts["filename"].append(np.char.decode(batch["filename"].numpy().astype(bytes), "utf-8"))
        done += len(parts["person_id"][-1])
        if time.time() - last_log >= log_every_s or done == total:
            last_log = time.time()
            rate = done / max(last_log - start, 1e-9)
            logger.info("features: %d/%d images (%.1f img/s, ETA %.0fs)", done, total, rate,
                        (total - done) / max(rate, 1e-9))
    if not parts["embedding"]:
        raise ValueError(f"no records in {[str(f) for f in files]}")
    return FeatureSet(**{k: np.concatenate(v) for k, v in parts.items()})


def _cache_key(model_path: Path, converted_dir: Path, manifest: dict, split: str, image_size) -> dict:
    stat = model_path.stat() if model_path.is_file() else None
    return {"version": CACHE_VERSION, "model": str(model_path.resolve()),
            "model_mtime": stat.st_mtime if stat else None, "model_size": stat.st_size if stat else None,
            "data": str(converted_dir.resolve()), "data_created": manifest.get("created"),
            "split": split, "image_size": list(image_size)}


def cached_features(model: keras.Model, model_path: str | os.PathLike, converted_dir: str | os.PathLike,
                    split: str, cache_dir: str | os.PathLike | None, image_size: tuple[int, int] | None = None,
                    batch_size: int = 64) -> FeatureSet:
    """`extract_features` for a split, reusing `<cache_dir>/features_<dataset>_<hash of the
    conversion's path>_<split>.npz` when it was made from the same model file, conversion and
    image size."""
    converted_dir = Path(converted_dir)
    image_size = tuple(image_size or model_image_size(model))
    files = split_shards(converted_dir, split)
    manifest = load_manifest(converted_dir)
    total = manifest["splits"][split]["num_images"]
    if cache_dir is None:
        return extract_features(model, files, image_size, batch_size, total=total)
    key = _cache_key(Path(model_path), converted_dir, manifest, split, image_size)
    # The name carries the conversion's path: one model evaluated on two conversions of a
    # dataset keeps two caches instead of overwriting one.
    data_id = hashlib.sha1(key["data"].encode()).hexdigest()[:8]
    path = Path(cache_dir) / f"features_{converted_dir.name}_{data_id}_{split}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            if json.loads(str(cached["key"])) == key:
                logger.info("features: reusing %s", path)
                return FeatureSet(**{f.name: cached[f.name] for f in dataclasses.fields(FeatureSet)})
    features = extract_features(model, files, image_size, batch_size, total=total)

    with atomic.atomic_file(path) as f:
        np.savez(f, key=json.dumps(key), **dataclasses.asdict(features))
    return features


MARKET = "market1501"
CUHK03_CLASSIC = "cuhk03_classic"


def protocol_of(manifest: dict) -> str:
    """The evaluation protocol of a conversion: CUHK03's classic split (single-shot CMC, one
    gallery entry per identity drawn at random) or the Market-1501 rule (everything else,
    CUHK03 767/700 included)."""
    if manifest["dataset"] == "cuhk03" and manifest.get("info", {}).get("protocol") == "classic":
        return CUHK03_CLASSIC
    return MARKET


def first_hit_ranks(distmat: np.ndarray, q_pids, g_pids, q_camids, g_camids, chunk: int = 512) -> np.ndarray:
    """0-based rank of each query's first correct match under the Market rule (-1: none).

    Used to pick the worst queries for the ranked-list pictures.
    """
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    out = np.full(len(q_pids), -1, np.int64)
    for start in range(0, len(q_pids), chunk):
        d = distmat[start:start + chunk]
        same_pid = q_pids[start:start + chunk, None] == g_pids[None]
        excluded = (same_pid & (q_camids[start:start + chunk, None] == g_camids[None])) | (g_pids[None] == -1)
        positive = same_pid & ~excluded
        nearest = np.where(positive, d, np.inf).min(axis=1)
        ranks = ((d < nearest[:, None]) & ~excluded & ~positive).sum(axis=1)
        out[start:start + chunk] = np.where(np.isfinite(nearest), ranks, -1)
    return out


def _ranked_rows(distmat, index, q, g, top_k):
    order = np.argsort(distmat[index], kind="stable")
    same_pid = g.person_id[order] == q.person_id[index]
    excluded = (same_pid & (g.camera_id[order] == q.camera_id[index])) | (g.person_id[order] == -1)
    order = order[~excluded][:top_k]
    return order, (g.person_id[order] == q.person_id[index]).tolist()


def read_images(files: Sequence[str | os.PathLike], indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Decodes the records at `indices` (file order) of `files` to RGB uint8 arrays."""
    wanted = set(int(i) for i in indices)
    images = {}
    for i, serialized in enumerate(tf.data.TFRecordDataset([str(f) for f in files])):
        if i in wanted:
            features = schema.parse_reid_example(serialized)
            images[i] = pipelines.decode_image(features[schema.IMAGE_ENCODED]).numpy()
            if len(images) == len(wanted):
                break
    return images


def _results_markdown(title: str, rows: dict[str, dict]) -> str:
    lines = [f"# {title}", "", "| model | mAP | rank-1 | rank-5 | rank-10 | mINP | valid queries |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {100 * r['mAP']:.1f} | {100 * r.get('rank1', 0):.1f} | "
                     f"{100 * r.get('rank5', 0):.1f} | {100 * r.get('rank10', 0):.1f} | {100 * r['mINP']:.1f} | "
                     f"{r['num_valid_queries']} (+{r['num_skipped_queries']} skipped) |")
    return "\n".join(lines) + "\n"


def evaluate_reid(
    model_dir: str | os.PathLike,
    converted_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    combine_dirs: Sequence[str | os.PathLike] = (),
    rerank_results: bool = False,
    metric: str = "euclidean",
    batch_size: int = 64,
    use_cache: bool = True,
    queries: Sequence[str] = (),
    num_worst: int = 5,
    top_k: int = 10,
    num_parsing_figures: int = 4,
    rerank_options: dict | None = None,
) -> dict:
    """Evaluates `<model_dir>/model.keras` on a converted benchmark's query/gallery splits.

    Protocol (`protocol_of`): the Market-1501/DukeMTMC rule (also CUHK03 767/700 and the small
    benchmarks' query/gallery): gallery entries with the query's id and camera are excluded,
    junk ignored, distractors are wrong matches; a CUHK03 classic conversion is scored with
    `metrics.evaluate_cuhk03_classic` (its one split; average the 20 conversions for the table). With `combine_dirs`, the embeddings of each
    model (each from its own model_dir, same dataset) are l2-normalised and concatenated; the
    results then hold a row for each model alone and one for the combination.

    Writes to `output_dir`: results.json, results.md, cmc.png, ranked/*.png (chosen
    `queries` by filename, else the `num_worst` queries with the latest first correct
    match), parsing/*.png for models with a parsing branch.

    Returns:
        The results dict written to results.json.
    """
    converted_dir, output_dir = Path(converted_dir), Path(output_dir)
    manifest = load_manifest(converted_dir)
    model_dirs = [Path(model_dir)] + [Path(d) for d in combine_dirs]
    feature_sets = {}
    models = {}
    for directory in model_dirs:
        model = load_model(directory)
        models[directory] = model
        cache = directory if use_cache else None
        feature_sets[directory] = {
            split: cached_features(model, directory / MODEL_FILENAME, converted_dir, split, cache,
                                   batch_size=batch_size)
            for split in ("query", "gallery")}
    q, g = feature_sets[model_dirs[0]]["query"], feature_sets[model_dirs[0]]["gallery"]
    for directory in model_dirs[1:]:
        for split, reference in (("query", q), ("gallery", g)):
            if not np.array_equal(feature_sets[directory][split].filename, reference.filename):
                raise ValueError(f"{directory}: its {split} features do not list the same images as "
                                 f"{model_dirs[0]}'s; extract both from the same conversion")

    def embeddings(split):
        sets = [feature_sets[d][split].embedding for d in model_dirs]
        return np.asarray(combine_embeddings(*sets)) if len(sets) > 1 else sets[0]

    q_emb, g_emb = embeddings("query"), embeddings("gallery")
    name = model_dirs[0].name if len(model_dirs) == 1 else " + ".join(d.name for d in model_dirs)
    protocol = protocol_of(manifest)
    score = metrics.evaluate_cuhk03_classic if protocol == CUHK03_CLASSIC else metrics.evaluate_rank
    started = time.time()
    logger.info("scoring %d queries against %d gallery images (%s distance, %s protocol)", len(q), len(g),
                metric, protocol)
    distmat = metrics.pairwise_distance(q_emb, g_emb, metric)
    rows, curves = {}, {}
    if len(model_dirs) > 1:
        # Each model alone first, as the paper's tables show them next to the combination.
        names = [d.name for d in model_dirs]
        for directory in model_dirs:
            alone = directory.name if names.count(directory.name) == 1 else str(directory)
            single = score(metrics.pairwise_distance(feature_sets[directory]["query"].embedding,
                                                     feature_sets[directory]["gallery"].embedding, metric),
                           q.person_id, g.person_id, q.camera_id, g.camera_id)
            rows[alone], curves[alone] = single.as_dict(), single.cmc
    result = score(distmat, q.person_id, g.person_id, q.camera_id, g.camera_id)
    rows[name] = result.as_dict()
    curves[name] = result.cmc
    logger.info("scored in %.1f s", time.time() - started)
    if rerank_results:
        started = time.time()
        logger.info("re-ranking (k-reciprocal, %d x %d)", len(q), len(g))
        reranked = rerank.re_ranking(q_emb, g_emb, metric=metric, **(rerank_options or {}))
        logger.info("re-ranked in %.1f s", time.time() - started)
        rr = score(reranked, q.person_id, g.person_id, q.camera_id, g.camera_id)
        rows[f"{name} + re-ranking"] = rr.as_dict()
        curves[f"{name} + re-ranking"] = rr.cmc
    output_dir.mkdir(parents=True, exist_ok=True)
    visualize.write_png(output_dir / "cmc.png", visualize.draw_cmc(
        curves, title=f"CMC: {manifest['dataset']} ({protocol} protocol, {metric} distance)"))

    # Ranked lists for chosen queries, or the worst ones.
    if queries:
        lookup = {f: i for i, f in enumerate(q.filename)}
        missing = [f for f in queries if f not in lookup]
        if missing:
            raise ValueError(f"queries not in {converted_dir.name}'s query split: {missing}")
        chosen = [lookup[f] for f in queries]
    else:
        hits = first_hit_ranks(distmat, q.person_id, g.person_id, q.camera_id, g.camera_id)
        # Latest first correct match first; queries without any valid match cannot be drawn.
        chosen = [int(i) for i in np.argsort(-hits, kind="stable") if hits[i] >= 0][:num_worst]
    ranked = {i: _ranked_rows(distmat, i, q, g, top_k) for i in chosen}
    q_images = read_images(split_shards(converted_dir, "query"), chosen)
    g_images = read_images(split_shards(converted_dir, "gallery"),
                           sorted({int(j) for order, _ in ranked.values() for j in order}))
    for i, (order, correct) in ranked.items():
        picture = visualize.ranked_list(
            q_images[i], [g_images[int(j)] for j in order], correct,
            caption=f"{q.filename[i]} (pid {q.person_id[i]}, {visualize.camera_label(q.camera_id[i])}, "
                    f"{metric} distance)",
            query_lines=[f"pid {q.person_id[i]}", visualize.camera_label(q.camera_id[i])],
            gallery_lines=[[f"pid {g.person_id[j]}", visualize.camera_label(g.camera_id[j]),
                            f"d {distmat[i, j]:.3f}"] for j in order])
        visualize.write_png(output_dir / "ranked" / f"{Path(q.filename[i]).stem}.png", picture)

    # Figure 2: the parsing maps of a few queries, for models with a parsing branch.
    model = models[model_dirs[0]]
    figures = []
    if num_parsing_figures and "semantic_maps" in {layer.name for layer in model.layers}:
        parts = keras.Model(model.input, [model.get_layer("semantic_maps").output,
                                          model.get_layer("parsing_softmax").output])
        size = model_image_size(model)
        for i in chosen[:num_parsing_figures]:
            image = tf.cast(pipelines.resize_uint8(q_images[i], size), tf.float32)[None]
            maps, probabilities = parts(image)
            labels = tf.image.resize(probabilities, size, method="bilinear")[0].numpy().argmax(-1)
            path = output_dir / "parsing" / f"{Path(q.filename[i]).stem}.png"
            visualize.write_png(path, visualize.parsing_figure(image[0].numpy().astype(np.uint8),
                                                               maps[0].numpy(), labels))
            figures.append(str(path.relative_to(output_dir)))

    results = {
        "dataset": manifest["dataset"], "converted_dir": str(converted_dir), "metric": metric,
        "protocol": protocol,
        "models": [str(d) for d in model_dirs], "num_query": len(q), "num_gallery": len(g),
        "results": rows, "ranked_lists": sorted(str(p.relative_to(output_dir))
                                                for p in (output_dir / "ranked").glob("*.png")),
        "parsing_figures": figures,
    }
    atomic.write_text(output_dir / "results.json", json.dumps(results, indent=2))
    atomic.write_text(output_dir / "results.md",
                      _results_markdown(f"{manifest['dataset']}: {len(q)} queries, {len(g)} gallery images", rows))
    return results


def evaluate_parsing(model: keras.Model, files: Sequence[str | os.PathLike], crop_size: tuple[int, int],
                     batch_size: int = 8, num_classes: int = lip.NUM_CLASSES) -> dict:
    """Pixel accuracy, mean accuracy and mean IoU of a parsing model on LIP-style records.

    Images are fitted into `crop_size` and padded (`pipelines.parsing_dataset` with
    training=False); padded pixels carry the ignore label and are not scored.
    """
    predict = tf.function(lambda x: tf.argmax(model(x, training=False)["probabilities"], axis=-1,
                                              output_type=tf.int32), reduce_retracing=True)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    dataset = pipelines.parsing_dataset([str(f) for f in files], batch_size=batch_size, crop_size=tuple(crop_size),
                                        training=False)
    for images, masks in dataset:
        confusion += segmentation_metrics.confusion_matrix(masks.numpy(), predict(images).numpy(), num_classes)
    scores = segmentation_metrics.segmentation_scores(confusion)
    names = lip.LABEL_NAMES if num_classes == lip.NUM_CLASSES else [str(i) for i in range(num_classes)]
    scores["iou"] = dict(zip(names, scores.pop("per_class_iou")))
    if num_classes == lip.NUM_CLASSES:
        # SPReID pools with five regions, not 20 labels: score those too.
        grouped = segmentation_metrics.segmentation_scores(
            segmentation_metrics.group_confusion(confusion, lip.label_to_segmentation_group()))
        scores["group_mean_iou"] = grouped["mean_iou"]
        scores["group_pixel_accuracy"] = grouped["pixel_accuracy"]
        scores["group_iou"] = dict(zip(lip.SEGMENTATION_GROUP_NAMES, grouped["per_class_iou"]))
    scores["num_pixels"] = int(confusion.sum())
    return scores
