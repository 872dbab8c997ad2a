"""Re-identification evaluation: pairwise distances, CMC, mAP and mINP.

Protocols:

* Market-1501, DukeMTMC-reID and CUHK03 on the new 767/700 split
  (Zhong et al. 2017): `evaluate_rank` (distance matrix) or `evaluate_features`
  (features; distances are computed chunk by chunk and never stored whole).
  For each query, gallery entries with the query's pid AND camera are excluded;
  junk gallery entries (pid -1) are removed; distractors (pid 0 in Market-1501)
  are ordinary wrong matches; queries without any valid match are skipped and
  counted. Results equal torchreid's / fast-reid's `eval_market1501` (with mINP).
* CUHK03 classic protocol (Li et al. 2014, 20 random splits of 100 test
  identities, single-shot): `evaluate_cuhk03_classic` for one split and
  `evaluate_cuhk03_classic_splits` to average the 20 splits.

Ranking ties: entries at equal distance are ordered by gallery index (a stable
sort). torchreid's `np.argsort` (quicksort) leaves the order of ties
unspecified, so the two can differ when a positive and a negative are at exactly
the same distance. float32 distances do tie: a Market-sized query row has
dozens of exactly equal pairs, which moves mAP by ~1e-7 against torchreid; with
a stable argsort in torchreid's code the results are identical.

How the fast path works: CMC, AP and INP need only the rank of every positive
among the query's valid gallery entries. For a chunk of queries, the negatives
at most as far as each query's farthest positive are found with one vectorised
comparison (usually a few hundred of the ~16K per query); each is packed into a
uint64 key (row, distance bits, gallery index) and located by binary search
among the sorted keys of the positives. Counting negatives per slot then gives
every positive's rank: nothing but the positives is ever sorted.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

METRICS = ("euclidean", "sqeuclidean", "cosine")
JUNK_PID = -1

# Rows of the query x gallery block evaluated at once. 1024 x 16K float32 is
# 64 MiB: big enough for an efficient matmul, small enough to stay cheap.
_DEFAULT_CHUNK = 1024


@dataclasses.dataclass(frozen=True)
class RankingResult:
    """Evaluation result.

    Attributes:
        cmc: float64 array (max_rank,): fraction of valid queries with a correct
            match within the first k+1 ranks.
        mAP: mean average precision over valid queries.
        mINP: mean inverse negative penalty (Ye et al. 2021) over valid queries.
        num_valid_queries: queries with at least one valid gallery match.
        num_skipped_queries: queries without one (not in cmc, mAP, mINP).
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped_queries: int

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python dict (for JSON): rank-1/5/10 are included for convenience."""
        out = {
            "mAP": float(self.mAP),
            "mINP": float(self.mINP),
            "cmc": [float(v) for v in self.cmc],
            "num_valid_queries": int(self.num_valid_queries),
            "num_skipped_queries": int(self.num_skipped_queries),
        }
        for k in (1, 5, 10):
            if k <= len(self.cmc):
                out[f"rank{k}"] = float(self.cmc[k - 1])
        return out


# --------------------------------------------------------------------------- checks


def _check_features(x: Any, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num, dim), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"{name} must be real numbers, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x).all(axis=1)))
        raise ValueError(f"{name} (shape {x.shape}) has NaN or inf in {bad} rows")
    return x


def _check_pair(query: np.ndarray, gallery: np.ndarray) -> None:
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            "query and gallery features differ in dimension: "
            f"query {query.shape}, gallery {gallery.shape}"
        )


def _check_ids(x: Any, name: str, length: int, against: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if len(x) != length:
        raise ValueError(
            f"{name} has length {len(x)} but {against} has {length} entries"
        )
    if len(x) and not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {x.dtype}")
    return x.astype(np.int64)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _check_max_rank(max_rank: int, chunk_size: int = 1) -> None:
    if int(max_rank) != max_rank or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def _check_distmat(distmat: Any) -> np.ndarray:
    d = np.asarray(distmat)
    if d.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got {d.shape}")
    if d.shape[0] == 0 or d.shape[1] == 0:
        raise ValueError(f"distmat has an empty query or gallery axis: shape {d.shape}")
    if d.dtype not in (np.float32, np.float64):
        d = d.astype(np.float64)
    if not np.isfinite(d).all():
        raise ValueError(f"distmat (shape {d.shape}) has NaN or inf entries")
    return d


# ------------------------------------------------------------------------ distances


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    # Same epsilon as torch.nn.functional.normalize: a zero vector stays zero
    # (cosine distance 1 to everything) instead of becoming NaN.
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    return x / np.maximum(norms, np.float32(1e-12))[:, None]


class _DistanceBlocks:
    """Computes query-chunk x gallery distance blocks with one float32 matmul each.

    Squared euclidean distances as |q|^2 + |g|^2 - 2 q.g in float32 have a forward error of
    at most gamma_n (|q| + |g|)^2, gamma_n = n u / (1 - n u), u = 2^-24, n = 2 * dim
    (Higham, dot products): any BLAS, any summation order. Entries whose computed value is
    within that bound of zero (where cancellation leaves no correct digit; the block's
    largest norms set one bound for the block) are recomputed
    directly as sum((q - g)^2) in float64, so a self-distance is exactly 0 and near
    duplicates keep their order.
    """

    def __init__(self, gallery: np.ndarray, metric: str):
        self.metric = metric
        if metric == "cosine":
            self.gallery = _normalize_rows(gallery)
            self.gallery_sq = None
        else:
            self.gallery = gallery
            self.gallery_sq = np.einsum("ij,ij->i", gallery, gallery)
            n, u = 2 * gallery.shape[1], 2.0 ** -24
            self.gamma = n * u / (1 - n * u)
            self.gallery_max_norm = float(np.sqrt(self.gallery_sq.max(initial=0.0)))

    def __call__(self, query: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if self.metric == "cosine":
            out = np.matmul(_normalize_rows(query), self.gallery.T, out=out)
            np.negative(out, out=out)
            out += np.float32(1.0)
        else:
            out = np.matmul(query, self.gallery.T, out=out)
            out *= np.float32(-2.0)
            query_sq = np.einsum("ij,ij->i", query, query)
            out += query_sq[:, None]
            out += self.gallery_sq[None, :]
            # One scalar bound for the block (the largest norms): a superset of the entries
            # within their own bound of zero; recomputing the others too is exact, just slower.
            bound = self.gamma * (float(np.sqrt(query_sq.max(initial=0.0))) + self.gallery_max_norm) ** 2
            # flatnonzero + divmod: np.nonzero of a 2-D mask is several times slower.
            rows, cols = np.divmod(np.flatnonzero(out <= np.float32(bound)), out.shape[1])
            for start in range(0, len(rows), 4096):  # near-duplicates: few, in bounded batches
                r, c = rows[start:start + 4096], cols[start:start + 4096]
                diff = query[r].astype(np.float64) - self.gallery[c].astype(np.float64)
                out[r, c] = np.einsum("ij,ij->i", diff, diff)
        # Rounding can make a distance slightly negative; distances are >= 0.
        np.maximum(out, np.float32(0.0), out=out)
        if self.metric == "euclidean":
            np.sqrt(out, out=out)
        return out


def pairwise_distance(query: Any, gallery: Any, metric: str = "euclidean") -> np.ndarray:
    """Distances between every query and every gallery feature.

    Args:
        query: (num_query, dim) features.
        gallery: (num_gallery, dim) features.
        metric: "euclidean", "sqeuclidean" (squared euclidean; what torchreid's
            "euclidean" returns) or "cosine" (1 - cosine similarity).

    Returns:
        float32 array (num_query, num_gallery), computed in float32 as
        |q|^2 + |g|^2 - 2 q.g (or 1 - q.g of normalised rows) and clipped at 0.

    Raises:
        ValueError: on a bad metric, shapes that do not match, empty inputs, or
            NaN / inf features.
    """
    _check_metric(metric)
    q = _check_features(query, "query")
    g = _check_features(gallery, "gallery")
    _check_pair(q, g)
    return _DistanceBlocks(g, metric)(q)


# -------------------------------------------------------------------------- ranking


def _sortable_bits(values: np.ndarray) -> np.ndarray:
    """uint64 keys ordered like the float32 values (after -0.0 -> +0.0)."""
    bits = (values + np.float32(0.0)).view(np.int32).astype(np.int64)
    # Negative floats: flip the magnitude bits so larger magnitude sorts first.
    bits = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return (bits + (1 << 31)).astype(np.uint64)


class _GalleryIndex:
    """Gallery entries grouped by pid, to find a query's same-pid entries fast."""

    def __init__(self, g_pids: np.ndarray, g_camids: np.ndarray):
        self.g_pids = g_pids
        self.g_camids = g_camids
        # Stable sort keeps gallery order within a pid.
        self.order = np.argsort(g_pids, kind="stable")
        self.sorted_pids = g_pids[self.order]

    def same_pid_pairs(self, q_pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, gallery index) of every gallery entry sharing a query's pid, by row."""
        lo = np.searchsorted(self.sorted_pids, q_pids, side="left")
        hi = np.searchsorted(self.sorted_pids, q_pids, side="right")
        counts = hi - lo
        rows = np.repeat(np.arange(len(q_pids)), counts)
        starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
        cols = self.order[starts + np.arange(len(rows))]
        return rows, cols


def _positive_ranks(d: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray,
                    index: _GalleryIndex) -> tuple[np.ndarray, np.ndarray]:
    """0-based rank of every valid positive among each query's valid gallery entries.

    Entries are ordered by (distance, gallery index).

    Args:
        d: (num_rows, num_gallery) distances, float32 or float64.
        q_pids, q_camids: (num_rows,) query ids.
        index: the gallery (junk already removed).

    Returns:
        (rows, ranks), both int64, sorted by row then rank: one entry per valid
        positive (same pid, other camera).
    """
    num_rows, num_gallery = d.shape
    rows, cols = index.same_pid_pairs(q_pids)
    positive = index.g_camids[cols] != q_camids[rows]
    pos_rows, pos_cols = rows[positive], cols[positive]
    if len(pos_rows) == 0:
        return pos_rows, pos_rows
    pos_vals = d[pos_rows, pos_cols]
    # Only negatives up to the farthest positive can precede a positive.
    farthest = np.full(num_rows, -np.inf, dtype=d.dtype)
    np.maximum.at(farthest, pos_rows, pos_vals)
    mask = d <= farthest[:, None]
    mask[rows, cols] = False  # same pid: positives and excluded same-camera entries
    # flatnonzero + divmod: np.nonzero of a 2-D mask is several times slower.
    neg_rows, neg_cols = np.divmod(np.flatnonzero(mask), num_gallery)
    neg_vals = d[neg_rows, neg_cols]

    row_bits = max(int(num_rows - 1).bit_length(), 1)
    col_bits = max(int(num_gallery - 1).bit_length(), 1)
    if d.dtype != np.float32 or row_bits + 32 + col_bits > 64:
        return _positive_ranks_lexsort(pos_rows, pos_vals, pos_cols,
                                       neg_rows, neg_vals, neg_cols)

    def key(r, v, c):
        # (row, distance, gallery index) packed into one uint64, ordered the same.
        return ((r.astype(np.uint64) << np.uint64(32 + col_bits))
                | (_sortable_bits(v) << np.uint64(col_bits)) | c.astype(np.uint64))

    pos_key = key(pos_rows, pos_vals, pos_cols)
    order = np.argsort(pos_key)
    pos_key, pos_rows = pos_key[order], pos_rows[order]
    # Positive p and the negatives just below it: counting replaces a sort of
    # all candidates, which is what makes hard queries cheap.
    slot = np.searchsorted(pos_key, key(neg_rows, neg_vals, neg_cols))
    num_pos = np.bincount(pos_rows, minlength=num_rows)
    row_end = np.cumsum(num_pos)
    row_start = row_end - num_pos
    # A negative tied with its row's farthest positive but of higher index is
    # after every positive of its row; its slot would name the next row.
    slot = slot[slot < row_end[neg_rows]]
    before = np.cumsum(np.bincount(slot, minlength=len(pos_key)))
    first = row_start[pos_rows]
    negatives_before = before - np.where(first > 0, before[first - 1], 0)
    return pos_rows, negatives_before + np.arange(len(pos_key)) - first


def _positive_ranks_lexsort(pos_rows, pos_vals, pos_cols, neg_rows, neg_vals, neg_cols):
    """`_positive_ranks` by one lexsort of all candidates (float64 or huge inputs)."""
    r = np.concatenate([pos_rows, neg_rows])
    v = np.concatenate([pos_vals, neg_vals]) + 0.0  # -0.0 == +0.0, as for np.argsort
    c = np.concatenate([pos_cols, neg_cols])
    is_pos = np.arange(len(r)) < len(pos_rows)
    order = np.lexsort((c, v, r))
    r, is_pos = r[order], is_pos[order]
    row_start = np.searchsorted(r, r, side="left")
    at = np.flatnonzero(is_pos)
    return r[at], at - row_start[at]


class _Accumulator:
    """Sums per-query first-hit ranks, AP and INP over chunks."""

    def __init__(self, max_rank: int):
        self.max_rank = max_rank
        self.first_hits = np.zeros(max_rank + 1, dtype=np.int64)  # last bin: later
        self.ap: list[np.ndarray] = []
        self.inp: list[np.ndarray] = []
        self.num_queries = 0

    def add(self, num_rows: int, rows: np.ndarray, ranks: np.ndarray) -> None:
        self.num_queries += num_rows
        if len(rows) == 0:
            return
        num_pos = np.bincount(rows, minlength=num_rows)
        valid = np.flatnonzero(num_pos)
        first = np.searchsorted(rows, valid, side="left")
        last = first + num_pos[valid] - 1
        # k-th positive (1-based) at 0-based rank r contributes precision k/(r+1).
        k = np.arange(1, len(rows) + 1) - np.repeat(first, num_pos[valid])
        precision = k / (ranks + 1.0)
        ap = np.add.reduceat(precision, first) / num_pos[valid]
        inp = num_pos[valid] / (ranks[last] + 1.0)
        self.ap.append(ap)
        self.inp.append(inp)
        self.first_hits += np.bincount(
            np.minimum(ranks[first], self.max_rank), minlength=self.max_rank + 1
        )

    def result(self) -> RankingResult:
        ap = np.concatenate(self.ap) if self.ap else np.zeros(0)
        num_valid = len(ap)
        if num_valid == 0:
            raise ValueError(
                f"none of the {self.num_queries} queries has a valid gallery match "
                "(same pid, different camera): nothing to evaluate"
            )
        cmc = np.cumsum(self.first_hits[: self.max_rank]) / num_valid
        return RankingResult(
            cmc=cmc,
            mAP=float(np.mean(ap)),
            mINP=float(np.mean(np.concatenate(self.inp))),
            num_valid_queries=num_valid,
            num_skipped_queries=self.num_queries - num_valid,
        )


def _prepare_ids(num_query: int, num_gallery: int, q_pids: Any, g_pids: Any,
                 q_camids: Any, g_camids: Any, query_name: str, gallery_name: str):
    q_pids = _check_ids(q_pids, "q_pids", num_query, query_name)
    q_camids = _check_ids(q_camids, "q_camids", num_query, query_name)
    g_pids = _check_ids(g_pids, "g_pids", num_gallery, gallery_name)
    g_camids = _check_ids(g_camids, "g_camids", num_gallery, gallery_name)
    keep = g_pids != JUNK_PID
    if not keep.any():
        raise ValueError(
            f"the gallery is empty once its {num_gallery} junk (pid -1) entries are removed"
        )
    return q_pids, q_camids, g_pids, g_camids, keep


def evaluate_rank(distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any,
                  max_rank: int = 50, chunk_size: int = _DEFAULT_CHUNK) -> RankingResult:
    """Market-1501 / DukeMTMC-reID / CUHK03 (767/700) evaluation of a distance matrix.

    Args:
        distmat: (num_query, num_gallery) distances, smaller is more similar.
        q_pids, q_camids: (num_query,) integer person and camera ids.
        g_pids, g_camids: (num_gallery,) integer ids; pid -1 marks junk.
        max_rank: length of the CMC curve (capped at the gallery size, as torchreid).
        chunk_size: queries processed at once (memory vs speed).

    Returns:
        A `RankingResult`. A query whose valid gallery is shorter than max_rank
        keeps its CMC at 1 beyond it (it has a match by definition).

    Raises:
        ValueError: on mismatched lengths, NaN / inf distances, an empty query or
            gallery, or when no query has a valid match.
    """
    _check_max_rank(max_rank, chunk_size)
    d = _check_distmat(distmat)
    q_pids, q_camids, g_pids, g_camids, keep = _prepare_ids(
        d.shape[0], d.shape[1], q_pids, g_pids, q_camids, g_camids,
        f"distmat axis 0 (shape {d.shape})", f"distmat axis 1 (shape {d.shape})")
    if not keep.all():
        d, g_pids, g_camids = d[:, keep], g_pids[keep], g_camids[keep]
    index = _GalleryIndex(g_pids, g_camids)
    acc = _Accumulator(min(int(max_rank), d.shape[1]))
    _add_rows(acc, index, d, q_pids, q_camids, chunk_size)
    return acc.result()


def _add_rows(acc: _Accumulator, index: _GalleryIndex, d: np.ndarray, q_pids: np.ndarray,
              q_camids: np.ndarray, chunk_size: int, keep: np.ndarray | None = None) -> None:
    """Ranks the positives of the query rows of `d` (ids aligned with its rows), chunk_size
    rows at a time, into `acc`; `keep` selects the gallery columns of each chunk."""
    for start in range(0, len(d), chunk_size):
        stop = min(start + chunk_size, len(d))
        part = d[start:stop] if keep is None else d[start:stop, keep]
        rows, ranks = _positive_ranks(part, q_pids[start:stop], q_camids[start:stop], index)
        acc.add(stop - start, rows, ranks)


def evaluate_rank_blocks(blocks: Iterable[tuple[int, int, Any]], q_pids: Any, g_pids: Any,
                         q_camids: Any, g_camids: Any, max_rank: int = 50,
                         chunk_size: int = _DEFAULT_CHUNK) -> RankingResult:
    """`evaluate_rank` of a distance matrix given as blocks of query rows.

    Equal to `evaluate_rank(distmat, ...)` where distmat[start:stop] = block for
    every (start, stop, block) of `blocks`: each query's ranks depend on its row
    only, and the per-query results are gathered in query order. Only one
    block (and its chunk_size-row temporaries) is held at a time.

    Args:
        blocks: iterable of (start, stop, distances (stop - start, num_gallery)),
            consecutive from query 0 to the last query (e.g.
            `rerank.re_ranking_blocks`).
        q_pids, q_camids: (num_query,) integer ids; num_query is their length.
        g_pids, g_camids: (num_gallery,) integer ids; pid -1 marks junk.
        max_rank: length of the CMC curve (capped at the valid gallery size).
        chunk_size: rows of a block ranked at once (bounds the temporaries).

    Raises:
        ValueError: as `evaluate_rank`, and when the blocks are not consecutive,
            do not cover the queries, or have the wrong shape.
    """
    _check_max_rank(max_rank, chunk_size)
    num_query, num_gallery = len(np.asarray(q_pids)), len(np.asarray(g_pids))
    if num_query == 0 or num_gallery == 0:
        raise ValueError(f"empty query ({num_query}) or gallery ({num_gallery}) ids")
    q_pids, q_camids, g_pids, g_camids, keep = _prepare_ids(
        num_query, num_gallery, q_pids, g_pids, q_camids, g_camids, "q_pids", "g_pids")
    if not keep.all():
        g_pids, g_camids = g_pids[keep], g_camids[keep]
    index = _GalleryIndex(g_pids, g_camids)
    acc = _Accumulator(min(int(max_rank), len(g_pids)))
    expected = 0
    for start, stop, block in blocks:
        if start != expected or not expected < stop <= num_query:
            raise ValueError(f"blocks must cover the {num_query} query rows in order: got rows "
                             f"{start}:{stop} where {expected}: was expected")
        d = _check_distmat(block)
        if d.shape != (stop - start, num_gallery):
            raise ValueError(f"block {start}:{stop} has shape {d.shape}, expected "
                             f"{(stop - start, num_gallery)}")
        _add_rows(acc, index, d, q_pids[start:stop], q_camids[start:stop], chunk_size,
                  None if keep.all() else keep)
        expected = stop
        del d, block  # before the next block is made: one block at a time
    if expected != num_query:
        raise ValueError(f"blocks covered query rows 0:{expected} of {num_query}")
    return acc.result()


def evaluate_features(query_features: Any, gallery_features: Any, q_pids: Any, g_pids: Any,
                      q_camids: Any, g_camids: Any, metric: str = "euclidean",
                      max_rank: int = 50, chunk_size: int = _DEFAULT_CHUNK) -> RankingResult:
    """Like `evaluate_rank`, from features; the distance matrix is never stored whole.

    Equal to `evaluate_rank(pairwise_distance(query, gallery, metric), ...)`.

    Args:
        query_features: (num_query, dim) features.
        gallery_features: (num_gallery, dim) features.
        q_pids, g_pids, q_camids, g_camids: integer ids, see `evaluate_rank`.
        metric: one of METRICS.
        max_rank: length of the CMC curve.
        chunk_size: queries per distance block.

    Returns:
        A `RankingResult`.
    """
    _check_metric(metric)
    _check_max_rank(max_rank, chunk_size)
    q = _check_features(query_features, "query_features")
    g = _check_features(gallery_features, "gallery_features")
    _check_pair(q, g)
    q_pids, q_camids, g_pids, g_camids, keep = _prepare_ids(
        len(q), len(g), q_pids, g_pids, q_camids, g_camids,
        f"query_features (shape {q.shape})", f"gallery_features (shape {g.shape})")
    if not keep.all():
        g, g_pids, g_camids = g[keep], g_pids[keep], g_camids[keep]
    blocks = _DistanceBlocks(g, metric)
    index = _GalleryIndex(g_pids, g_camids)
    acc = _Accumulator(min(int(max_rank), len(g)))
    # One buffer for every chunk: fresh 64 MiB arrays cost page faults.
    buffer = np.empty(min(chunk_size, len(q)) * len(g), dtype=np.float32)
    for start in range(0, len(q), chunk_size):
        stop = min(start + chunk_size, len(q))
        d = blocks(q[start:stop], out=buffer[:(stop - start) * len(g)].reshape(-1, len(g)))
        rows, ranks = _positive_ranks(d, q_pids[start:stop], q_camids[start:stop], index)
        acc.add(stop - start, rows, ranks)
    return acc.result()


# ------------------------------------------------------------------- CUHK03 classic


def evaluate_cuhk03_classic(distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any,
                            g_camids: Any, max_rank: int = 50, num_repeats: int = 10,
                            seed: int | np.random.Generator = 0) -> RankingResult:
    """CUHK03 classic (single-shot) evaluation of one split.

    As torchreid's `eval_cuhk03`: for each query and each repeat, one gallery
    entry is drawn at random per gallery identity among the entries the Market
    rule keeps (same pid AND camera excluded, junk removed); the CMC is that of
    the query's identity in this one-per-identity list, averaged over repeats
    and then over valid queries. mAP and mINP use the whole kept gallery.

    The draws are defined so that a plain loop can reproduce them: per repeat,
    `u = rng.random((num_query, num_ids))` with gallery identities in sorted pid
    order; query i gets member `floor(u[i, k] * n)` of identity k's n kept
    entries, in gallery order.

    Args:
        distmat: (num_query, num_gallery) distances.
        q_pids, g_pids, q_camids, g_camids: integer ids as in `evaluate_rank`.
        max_rank: length of the CMC curve (capped at the gallery size).
        num_repeats: random draws per query (torchreid uses 10).
        seed: int seed or a numpy Generator.

    Returns:
        A `RankingResult` whose cmc is the single-shot CMC.
    """
    _check_max_rank(max_rank)
    if int(num_repeats) != num_repeats or num_repeats < 1:
        raise ValueError(f"num_repeats must be a positive integer, got {num_repeats!r}")
    d = _check_distmat(distmat)
    q_pids, q_camids, g_pids, g_camids, keep = _prepare_ids(
        d.shape[0], d.shape[1], q_pids, g_pids, q_camids, g_camids,
        f"distmat axis 0 (shape {d.shape})", f"distmat axis 1 (shape {d.shape})")
    if not keep.all():
        d, g_pids, g_camids = d[:, keep], g_pids[keep], g_camids[keep]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    full = evaluate_rank(d, q_pids, g_pids, q_camids, g_camids, max_rank)
    num_q, num_g = d.shape
    max_rank = min(int(max_rank), num_g)

    ids, g_label = np.unique(g_pids, return_inverse=True)
    id_size = np.bincount(g_label)
    index = _GalleryIndex(g_label, g_camids)  # grouped by label = sorted pid order
    id_start = np.searchsorted(index.sorted_pids, np.arange(len(ids)))
    pos = np.searchsorted(ids, q_pids)
    q_label = np.where((pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == q_pids),
                       pos, -1)
    # The query's own identity keeps only its other-camera entries.
    rows, cols = index.same_pid_pairs(q_label)
    other_cam = g_camids[cols] != q_camids[rows]
    rows, cols = rows[other_cam], cols[other_cam]
    own_size = np.bincount(rows, minlength=num_q)
    own_start = np.cumsum(own_size) - own_size
    valid = np.flatnonzero(own_size > 0)
    if len(valid) == 0:
        raise ValueError(f"none of the {num_q} queries has a valid gallery match")
    vrows = np.arange(len(valid))[:, None]
    hits = np.zeros(max_rank + 1, dtype=np.int64)
    for _ in range(int(num_repeats)):
        u = rng.random((num_q, len(ids)))[valid]
        pick = np.minimum((u * id_size).astype(np.int64), id_size - 1)
        chosen = index.order[id_start + pick]
        own_pick = np.minimum((u[vrows[:, 0], q_label[valid]] * own_size[valid])
                              .astype(np.int64), own_size[valid] - 1)
        own = cols[own_start[valid] + own_pick]
        dq = d[valid]
        d_chosen = dq[vrows, chosen]
        d_own = dq[vrows[:, 0], own][:, None]
        before = (d_chosen < d_own) | ((d_chosen == d_own) & (chosen < own[:, None]))
        before[vrows[:, 0], q_label[valid]] = False
        hits += np.bincount(np.minimum(before.sum(axis=1), max_rank),
                            minlength=max_rank + 1)
    cmc = np.cumsum(hits[:max_rank]) / (len(valid) * int(num_repeats))
    return dataclasses.replace(full, cmc=cmc)


def evaluate_cuhk03_classic_splits(
        splits: Sequence[Mapping[str, Any] | Sequence[Any]], max_rank: int = 50,
        num_repeats: int = 10, seed: int = 0) -> RankingResult:
    """CUHK03 classic protocol over several (usually 20) splits, averaged.

    Args:
        splits: per split, a mapping with keys distmat, q_pids, g_pids, q_camids,
            g_camids, or a 5-tuple in that order.
        max_rank: length of the CMC curves.
        num_repeats: random draws per query within a split.
        seed: split i draws from `np.random.default_rng(SeedSequence(seed).spawn(n)[i])`.

    Returns:
        A `RankingResult`: cmc, mAP and mINP are means over splits (each split
        weighs the same, as in the classic protocol); query counts are sums.
    """
    if len(splits) == 0:
        raise ValueError("splits is empty")
    keys = ("distmat", "q_pids", "g_pids", "q_camids", "g_camids")
    results = []
    seeds = np.random.SeedSequence(seed).spawn(len(splits))
    for i, (split, child) in enumerate(zip(splits, seeds)):
        if isinstance(split, Mapping):
            missing = [k for k in keys if k not in split]
            if missing:
                raise ValueError(f"splits[{i}] lacks {missing}; expected keys {keys}")
            args = [split[k] for k in keys]
        else:
            if len(split) != 5:
                raise ValueError(f"splits[{i}] must have 5 entries {keys}, got {len(split)}")
            args = list(split)
        results.append(evaluate_cuhk03_classic(*args, max_rank=max_rank,
                                               num_repeats=num_repeats,
                                               seed=np.random.default_rng(child)))
    length = max(len(r.cmc) for r in results)
    # A CMC capped at a small gallery has reached 1; extend it with 1s.
    cmc = np.mean([np.pad(r.cmc, (0, length - len(r.cmc)), constant_values=1.0)
                   for r in results], axis=0)
    return RankingResult(
        cmc=cmc,
        mAP=float(np.mean([r.mAP for r in results])),
        mINP=float(np.mean([r.mINP for r in results])),
        num_valid_queries=sum(r.num_valid_queries for r in results),
        num_skipped_queries=sum(r.num_skipped_queries for r in results),
    )
