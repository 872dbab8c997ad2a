"""Large-gallery search with spreid_tf.search: recall@k against exact search, queries/s,
memory and build time, on a synthetic gallery of up to millions of embeddings.

    python benchmarks/search.py                    # 1,000,000 x 2048: PCA 256 + rotation + 4-bit fast scan + 8-bit refine
    python benchmarks/search.py --kind=hnsw        # PCA 256 + HNSW48 + 8-bit refine
    python benchmarks/search.py --num_gallery=100000 --kind=ivf --nprobe=8,16,32
    python benchmarks/search.py --dim=6144 --num_gallery=300000
    python benchmarks/search.py --k_factor=50,100,150 --spread=1.0

The gallery never exists whole in memory (1,000,000 x 2048 float32 is 8 GB): it is generated
in chunks from a seed; each chunk is added to the index and scanned exactly against the queries
(float32 matmul, a running top-k), then dropped. The exact top-k is therefore computed once,
as the gallery streams by, and every approximate setting is scored against it.

Synthetic embeddings, "of the embedding's kind": identities (10 images each) whose centres and
per-image variation follow a decaying spectrum (variance of coordinate j proportional to
1/j, so that a few hundred directions hold most of the variance, as in trained CNN embeddings,
whose coordinates are strongly correlated), per-image variation at `--spread` times the spread of
the centres, l2-normalised. Queries are further images of gallery identities. Everything faiss
does here (PCA, k-means cells, L2) is unchanged by a rotation of the space, and the 8-bit
codes' error depends only on the per-coordinate variances, so the spectrum is laid along the
axes instead of being rotated (a rotation would cost a 2048 x 2048 matmul per vector).
`--spectrum=flat` gives every coordinate the same variance instead: the hardest case for any
index (no low-dimensional structure at all).

Memory: the peak resident size of this process (VmHWM) after building and after searching
(the gallery chunks, the training sample and the exact scan's blocks included), its resident
size after the build; the index's size is that of the folder `SearchIndex.save` writes (timed).
Queries/s: wall clock for all queries in one batch (faiss' threads: 2 here), and per CPU-second
times the threads (what the same run gives on cores no other job shares).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spreid_tf import search  # noqa: E402

CHUNK = 1 << 16


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


class Gallery:
    """Deterministic synthetic embeddings, generated chunk by chunk (see the module docstring)."""

    def __init__(self, num_gallery: int, dim: int, spread: float, spectrum: str, seed: int,
                 images_per_id: int = 10):
        self.num_gallery, self.dim, self.seed = num_gallery, dim, seed
        self.images_per_id = images_per_id
        self.num_ids = -(-num_gallery // images_per_id)
        j = np.arange(1, dim + 1, dtype=np.float64)
        scale = 1.0 / np.sqrt(j) if spectrum == "power" else np.ones(dim)
        self.scale = (scale / np.sqrt((scale ** 2).sum())).astype(np.float32)  # centres of unit norm on average
        self.spread = np.float32(spread)

    def _images(self, pids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # A centre is drawn from its own seed, so any chunk can rebuild the centres it needs.
        out = np.empty((len(pids), self.dim), np.float32)
        for s in range(0, len(pids), 4096):
            p = pids[s:s + 4096]
            centres = np.stack([np.random.default_rng([self.seed, 1, int(i)]).standard_normal(
                self.dim, dtype=np.float32) for i in np.unique(p)])
            x = rng.standard_normal((len(p), self.dim), dtype=np.float32)
            x *= self.spread
            x += centres[np.searchsorted(np.unique(p), p)]
            x *= self.scale
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[s:s + 4096] = x
        return out

    def chunks(self, size: int = CHUNK):
        """(start, embeddings) over the gallery, in order; row i belongs to identity i // images_per_id."""
        for c, start in enumerate(range(0, self.num_gallery, size)):
            stop = min(start + size, self.num_gallery)
            rng = np.random.default_rng([self.seed, 2, c])
            yield start, self._images(np.arange(start, stop) // self.images_per_id, rng)

    def sample(self, n: int) -> np.ndarray:
        """n further images of random identities (a training sample, iid with the gallery)."""
        rng = np.random.default_rng([self.seed, 3])
        return self._images(np.sort(rng.integers(0, self.num_ids, n)), rng)

    def queries(self, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 4])
        return self._images(rng.integers(0, self.num_ids, n), rng)


class ExactTopK:
    """Running exact top-k (squared euclidean, float32 matmul) of the queries over gallery chunks."""

    def __init__(self, queries: np.ndarray, k: int):
        self.q, self.k = queries, k
        self.q_sq = np.einsum("ij,ij->i", queries, queries)
        self.dist = np.full((len(queries), 0), np.inf, np.float32)
        self.rows = np.zeros((len(queries), 0), np.int64)

    def add(self, start: int, chunk: np.ndarray) -> None:
        d = self.q @ chunk.T
        d *= np.float32(-2.0)
        d += self.q_sq[:, None]
        d += np.einsum("ij,ij->i", chunk, chunk)[None, :]
        k = min(self.k, d.shape[1])
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        dist = np.concatenate([self.dist, np.take_along_axis(d, part, 1)], axis=1)
        rows = np.concatenate([self.rows, part + start], axis=1)
        keep = np.argsort(dist, axis=1, kind="stable")[:, :self.k]
        self.dist, self.rows = np.take_along_axis(dist, keep, 1), np.take_along_axis(rows, keep, 1)


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |found top-k & exact top-k| / k."""
    k = exact.shape[1]
    return float(np.mean([len(np.intersect1d(a[a >= 0], b)) / k for a, b in zip(found[:, :k], exact)]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_gallery", type=int, default=1_000_000)
    parser.add_argument("--num_queries", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--kind", default="pq", choices=search.KINDS)
    parser.add_argument("--pca_dim", type=int, default=256, help="0: no PCA")
    parser.add_argument("--nlist", type=int, default=0, help="0: 4 sqrt(N)")
    parser.add_argument("--refine", default="sq8", choices=search.REFINES)
    parser.add_argument("--k_factor", default="", help="comma-separated: shortlist = k_factor x top_k "
                        "(default: the index's, 100 for pq, 20 otherwise)")
    parser.add_argument("--hnsw_m", type=int, default=48)
    parser.add_argument("--pq_m", type=int, default=128, help="4-bit codes a vector (pq)")
    parser.add_argument("--ef_construction", type=int, default=120)
    parser.add_argument("--nprobe", default="8,16,32,64", help="comma-separated: one row each (ivf)")
    parser.add_argument("--ef_search", default="128,256,512", help="comma-separated: one row each (hnsw)")
    parser.add_argument("--train_size", type=int, default=200_000)
    parser.add_argument("--top_k", type=int, default=10)
    parser.add_argument("--spread", type=float, default=0.8, help="per-image variation / centre spread")
    parser.add_argument("--spectrum", default="power", choices=["power", "flat"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    gallery = Gallery(args.num_gallery, args.dim, args.spread, args.spectrum, args.seed)
    queries = gallery.queries(args.num_queries)
    config = search.IndexConfig(kind=args.kind, dim=args.dim, pca_dim=args.pca_dim or None,
                                nlist=args.nlist or (search.default_nlist(args.num_gallery)
                                                     if args.kind == "ivf" else None),
                                refine=args.refine, hnsw_m=args.hnsw_m, ef_construction=args.ef_construction,
                                pq_m=args.pq_m)
    index = search.SearchIndex(config)
    timings = {}
    if not index.is_trained:
        t = time.perf_counter()
        sample = gallery.sample(min(args.train_size, args.num_gallery))
        timings["sample_s"] = time.perf_counter() - t
        t = time.perf_counter()
        index.train(sample, seed=args.seed)
        timings["train_s"] = time.perf_counter() - t
        del sample
    exact = ExactTopK(queries, args.top_k)
    add_s = exact_s = gen_s = 0.0
    t = time.perf_counter()
    for start, chunk in gallery.chunks():
        gen_s += time.perf_counter() - t
        t = time.perf_counter()
        index.add(chunk)
        add_s += time.perf_counter() - t
        t = time.perf_counter()
        exact.add(start, chunk)
        exact_s += time.perf_counter() - t
        print(f"  {start + len(chunk)}/{args.num_gallery} vectors: generate {gen_s:.0f} s, add {add_s:.0f} s, "
              f"exact {exact_s:.0f} s", file=sys.stderr, flush=True)
        t = time.perf_counter()
    timings.update(generate_s=gen_s, add_s=add_s, exact_scan_s=exact_s)
    build_s = timings.get("train_s", 0.0) + add_s
    rss_built = _status_mib("VmRSS")
    peak_built = _status_mib("VmHWM")
    import faiss

    knobs = ([{"nprobe": int(v)} for v in args.nprobe.split(",")] if args.kind == "ivf"
             else [{"ef_search": int(v)} for v in args.ef_search.split(",")] if args.kind == "hnsw"
             else [{}])
    if index.config.refine != "none":
        factors = [int(f) for f in args.k_factor.split(",")] if args.k_factor else [index.config.k_factor]
        knobs = [dict(knob, k_factor=f) for knob in knobs for f in factors]
    rows = []
    threads = faiss.omp_get_max_threads()
    for knob in knobs:
        index.set_search_parameters(**knob)
        index.search(queries[:100], args.top_k)  # warm-up
        t, cpu = time.perf_counter(), time.process_time()
        _, found = index.search(queries, args.top_k)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        rows.append({"kind": args.kind, "factory": index.config.factory(),
                     "knob": ", ".join(f"{k}={v}" for k, v in knob.items()),
                     "recall": recall_at_k(found, exact.rows), "qps": len(queries) / wall, "search_s": wall,
                     "qps_per_cpu_x_threads": len(queries) / cpu * threads})
    peak_searched = _status_mib("VmHWM")
    # Saved to disk last (faiss.write_index to memory would double the resident size): size and time.
    with tempfile.TemporaryDirectory(prefix="spreid_search_bench_") as tmp:
        t = time.perf_counter()
        index.save(tmp)
        save_s = time.perf_counter() - t
        index_mib = sum(f.stat().st_size for f in pathlib.Path(tmp).iterdir()) / 2 ** 20
    result = {"num_gallery": args.num_gallery, "num_queries": args.num_queries, "dim": args.dim,
              "spectrum": args.spectrum, "spread": args.spread, "top_k": args.top_k, "threads": threads,
              "build_s": build_s, **{k: round(v, 1) for k, v in timings.items()}, "index_mib": index_mib,
              "save_s": save_s, "rss_after_build_mib": rss_built, "peak_build_mib": peak_built,
              "peak_mib": peak_searched,
              "total_s": time.perf_counter() - t0, "rows": rows}
    print(f"gallery {args.num_gallery} x {args.dim} ({args.spectrum} spectrum), {args.num_queries} queries, "
          f"top-{args.top_k}, {result['threads']} threads; build {build_s:.0f} s "
          f"(train {timings.get('train_s', 0):.0f} s, add {add_s:.0f} s); index {index_mib:.0f} MiB on disk "
          f"(saved in {save_s:.0f} s); resident after build {rss_built:.0f} MiB, peak {peak_searched:.0f} MiB")
    print(f"| index | setting | recall@{args.top_k} vs exact | queries/s (wall) | queries/s (per CPU-s x "
          f"{threads}) |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['factory']} | {r['knob']} | {r['recall']:.4f} | {r['qps']:.0f} | "
              f"{r['qps_per_cpu_x_threads']:.0f} |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
