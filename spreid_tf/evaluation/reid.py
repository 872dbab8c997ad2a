"""Re-id evaluation of a model on a converted benchmark: numbers (`evaluate_model`) and the
full report of `python -m spreid_tf.evaluate` (`evaluate_run`).

Both extract l2-normalised embeddings (`features`), compare them with one distance and score
them with the conversion's protocol (`protocols`), so training's eval.json and evaluate's
results.json give the same numbers for the same model.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from spreid_tf import atomic, metrics, rerank, run_folder, visualize
from spreid_tf.data import pipelines
from spreid_tf.data.manifest import Manifest, load_manifest
from spreid_tf.evaluation import features as features_lib
from spreid_tf.evaluation import protocols
from spreid_tf.evaluation.features import FeatureSet

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64


def _header(manifest: Manifest, protocol: str, metric: str, num_query: int, num_gallery: int) -> dict:
    return {"dataset": manifest.dataset, "protocol": protocol, "metric": metric,
            "scored_with": protocols.describe(protocol, metric), "num_query": num_query, "num_gallery": num_gallery}


def evaluate_model(model: keras.Model, converted_dir: str | os.PathLike, image_size: tuple[int, int] | None = None,
                   batch_size: int = DEFAULT_BATCH_SIZE, metric: str = protocols.DEFAULT_METRIC) -> dict:
    """Scores `model` on a converted benchmark's query/gallery splits.

    Returns:
        {"dataset", "protocol", "metric", "scored_with", "num_query", "num_gallery"} and
        `metrics.RankingResult.as_dict()` (mAP, mINP, rank1/5/10, cmc, valid queries).
    """
    manifest = load_manifest(converted_dir)
    protocol = protocols.protocol_of(manifest)
    query, gallery = (features_lib.split_features(model, converted_dir, split, image_size, batch_size)
                      for split in ("query", "gallery"))
    result = protocols.score(query, gallery, protocol, metric).as_dict()
    out = _header(manifest, protocol, metric, len(query), len(gallery))
    out.update(result)
    logger.info("%s: mAP %.4f, rank-1 %.4f, rank-10 %.4f (%d queries, %d gallery images; %s)", manifest.dataset,
                result["mAP"], result["rank1"], result.get("rank10", float("nan")), len(query), len(gallery),
                out["scored_with"])
    return out


def _ranked_rows(distmat, index, q, g, top_k):
    order = np.argsort(distmat[index], kind="stable")
    same_pid = g.person_id[order] == q.person_id[index]
    excluded = (same_pid & (g.camera_id[order] == q.camera_id[index])) | (g.person_id[order] == -1)
    order = order[~excluded][:top_k]
    return order, (g.person_id[order] == q.person_id[index]).tolist()


def results_markdown(results: dict) -> str:
    """results.md: a title naming the dataset, sizes, protocol and distance, then one row per model."""
    lines = [f"# {results['dataset']}: {results['num_query']} queries, {results['num_gallery']} gallery images",
             "", f"Scored with the {results['scored_with']}.", "",
             "| model | mAP | rank-1 | rank-5 | rank-10 | mINP | valid queries |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results["results"].items():
        lines.append(f"| {name} | {100 * r['mAP']:.1f} | {100 * r.get('rank1', 0):.1f} | "
                     f"{100 * r.get('rank5', 0):.1f} | {100 * r.get('rank10', 0):.1f} | {100 * r['mINP']:.1f} | "
                     f"{r['num_valid_queries']} (+{r['num_skipped_queries']} skipped) |")
    return "\n".join(lines) + "\n"


def evaluate_run(
    model_dir: str | os.PathLike,
    converted_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    combine_dirs: Sequence[str | os.PathLike] = (),
    rerank_results: bool = False,
    metric: str = protocols.DEFAULT_METRIC,
    batch_size: int = DEFAULT_BATCH_SIZE,
    use_cache: bool = True,
    queries: Sequence[str] = (),
    num_worst: int = 5,
    top_k: int = 10,
    num_parsing_figures: int = 4,
    rerank_options: dict | None = None,
) -> dict:
    """Evaluates the model of a run folder (`model.keras`) on a converted benchmark's query/gallery.

    With `combine_dirs`, the l2-normalised embeddings of each model (each from its own
    model_dir, same conversion) are concatenated and normalised again; the results then hold a
    row for each model alone and one for the combination (as the paper's tables do).

    Writes to `output_dir`: results.json, results.md, cmc.png, ranked/*.png (chosen `queries`
    by filename, else the `num_worst` queries with the latest first correct match),
    parsing/*.png for models with a parsing branch.

    Returns:
        The results dict written to results.json: `evaluate_model`'s header and
        {"results": {row name: RankingResult.as_dict()}, "models", "converted_dir", ...}.
    """
    converted_dir, output_dir = Path(converted_dir), Path(output_dir)
    manifest = load_manifest(converted_dir)
    protocol = protocols.protocol_of(manifest)
    model_dirs = [Path(model_dir)] + [Path(d) for d in combine_dirs]
    feature_sets: dict[Path, dict[str, FeatureSet]] = {}
    models = {}
    for directory in model_dirs:
        path = run_folder.model_file(directory, flag="model_dir" if directory == model_dirs[0] else "combine")
        model = run_folder.load_model(path)
        models[directory] = model
        feature_sets[directory] = {
            split: features_lib.split_features(model, converted_dir, split, batch_size=batch_size,
                                               cache_dir=directory if use_cache else None, model_path=path)
            for split in ("query", "gallery")}
    q, g = feature_sets[model_dirs[0]]["query"], feature_sets[model_dirs[0]]["gallery"]
    for directory in model_dirs[1:]:
        for split, reference in (("query", q), ("gallery", g)):
            if not np.array_equal(feature_sets[directory][split].filename, reference.filename):
                raise ValueError(f"{directory}: its {split} features do not list the same images as "
                                 f"{model_dirs[0]}'s; extract both from the same conversion")

    def combined(split: str) -> np.ndarray:
        sets = [feature_sets[d][split].embedding for d in model_dirs]
        return features_lib.l2_normalize(np.concatenate(sets, axis=1)) if len(sets) > 1 else sets[0]

    q_emb, g_emb = combined("query"), combined("gallery")
    name = model_dirs[0].name if len(model_dirs) == 1 else " + ".join(d.name for d in model_dirs)
    started = time.time()
    logger.info("scoring %d queries against %d gallery images (%s)", len(q), len(g),
                protocols.describe(protocol, metric))

    def score(query_emb, gallery_emb):
        return protocols.score(FeatureSet(query_emb, q.person_id, q.camera_id, q.filename),
                               FeatureSet(gallery_emb, g.person_id, g.camera_id, g.filename), protocol, metric)

    rows, curves = {}, {}
    if len(model_dirs) > 1:
        # Each model alone first, as the paper's tables show them next to the combination.
        names = [d.name for d in model_dirs]
        for directory in model_dirs:
            alone = directory.name if names.count(directory.name) == 1 else str(directory)
            single = score(feature_sets[directory]["query"].embedding, feature_sets[directory]["gallery"].embedding)
            rows[alone], curves[alone] = single.as_dict(), single.cmc
    # One distance matrix for the main row, the worst queries and the ranked lists.
    distmat = metrics.pairwise_distance(q_emb, g_emb, metric)
    result = protocols.score_distances(distmat, q.person_id, g.person_id, q.camera_id, g.camera_id, protocol)
    rows[name], curves[name] = result.as_dict(), result.cmc
    logger.info("scored in %.1f s", time.time() - started)
    if rerank_results:
        started = time.time()
        logger.info("re-ranking (k-reciprocal, %d x %d, %s distance)", len(q), len(g), metric)
        if protocol == protocols.MARKET1501:
            # Only the scores use the re-ranked distances (the ranked lists show the plain
            # ones): streamed by blocks of queries, equal to evaluate_rank of the whole
            # re-ranked matrix, which is never held (3.6 GiB at MSMT17 size).
            rr = rerank.evaluate_reranked(q_emb, g_emb, q.person_id, g.person_id, q.camera_id, g.camera_id,
                                          metric=metric, **(rerank_options or {}))
            logger.info("re-ranked and scored in %.1f s", time.time() - started)
        else:  # CUHK03 classic draws from the whole matrix
            reranked = rerank.re_ranking(q_emb, g_emb, metric=metric, **(rerank_options or {}))
            logger.info("re-ranked in %.1f s", time.time() - started)
            rr = protocols.score_distances(reranked, q.person_id, g.person_id, q.camera_id, g.camera_id,
                                           protocol)
        rows[f"{name} + re-ranking"], curves[f"{name} + re-ranking"] = rr.as_dict(), rr.cmc
    output_dir.mkdir(parents=True, exist_ok=True)
    visualize.write_png(output_dir / "cmc.png", visualize.draw_cmc(
        curves, title=f"CMC: {manifest.dataset} ({protocols.describe(protocol, metric)})"))

    # Ranked lists for chosen queries, or the worst ones.
    if queries:
        lookup = {f: i for i, f in enumerate(q.filename)}
        missing = [f for f in queries if f not in lookup]
        if missing:
            raise ValueError(f"--queries: not in {converted_dir.name}'s query split: {missing}")
        chosen = [lookup[f] for f in queries]
    else:
        hits = protocols.first_hit_ranks(distmat, q.person_id, g.person_id, q.camera_id, g.camera_id)
        # Latest first correct match first; queries without any valid match cannot be drawn.
        chosen = [int(i) for i in np.argsort(-hits, kind="stable") if hits[i] >= 0][:num_worst]
    ranked = {i: _ranked_rows(distmat, i, q, g, top_k) for i in chosen}
    q_images = features_lib.read_images(converted_dir, "query", chosen)
    g_images = features_lib.read_images(converted_dir, "gallery",
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
    if num_parsing_figures and run_folder.model_kind(model) == run_folder.SPREID:
        parts = keras.Model(model.input, [model.get_layer(run_folder.SEMANTIC_MAPS).output,
                                          model.get_layer(run_folder.PARSING_SOFTMAX).output])
        size = run_folder.model_image_size(model)
        for i in chosen[:num_parsing_figures]:
            image = tf.cast(pipelines.resize_uint8(q_images[i], size), tf.float32)[None]
            maps, probabilities = parts(image)
            labels = tf.image.resize(probabilities, size, method="bilinear")[0].numpy().argmax(-1)
            path = output_dir / "parsing" / f"{Path(q.filename[i]).stem}.png"
            visualize.write_png(path, visualize.parsing_figure(image[0].numpy().astype(np.uint8),
                                                               maps[0].numpy(), labels))
            figures.append(str(path.relative_to(output_dir)))

    results = _header(manifest, protocol, metric, len(q), len(g))
    results.update({
        "converted_dir": str(converted_dir), "models": [str(d) for d in model_dirs], "results": rows,
        "ranked_lists": sorted(str(p.relative_to(output_dir)) for p in (output_dir / "ranked").glob("*.png")),
        "parsing_figures": figures,
    })
    atomic.write_text(output_dir / "results.json", json.dumps(results, indent=2))
    atomic.write_text(output_dir / "results.md", results_markdown(results))
    return results
