"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017), built to scale.

`re_ranking(query_features, gallery_features)` returns the same final distances as
the published `re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)`
(zhunzhong07/person-re-ranking; torchreid's copy) given the distance matrices
of `metric` between the same features, without building its dense
(q+g) x (q+g) matrices:

1. Neighbours. One pass over the (q+g) x (q+g) distances in blocks gives, per
   row, the k nearest neighbours, the row maximum (the published code divides
   each column by its maximum and transposes; the distances are symmetric, so
   that is the row maximum) and the query x gallery block. The numpy backend
   computes each block pair once (the matrix is symmetric) and keeps a top-k by
   thresholding against each row's current k-th distance; the tf backend
   computes full row blocks with `tf.math.top_k` (best on a GPU).
2. k-reciprocal sets and their expansion, as index lists over all q+g rows;
   the sparse rows of V (weights exp(-distance), normalised) in CSR form.
3. Query expansion: V_qe = mean of V over each row's k2 nearest neighbours, a
   sparse product.
4. Jaccard distance, sparsely, only for query rows against gallery columns:
   sum_c min(V_qe[i, c], V_qe[j, c]) over the columns both rows use.

Float32 throughout, with the published code's float32 operations in the
published order (np.sum's pairwise order for the weights, rank order for the
query expansion, column order for the Jaccard sums): given the same distances
the result is bit-identical (tests/test_rerank.py checks this on features whose
distances are exact). Distances computed with other rounding (the published
code receives whatever its caller computed) move entries by ~1e-7, except
where a rounding difference flips a near-tie at a neighbour-set boundary.

Ties: the published code orders neighbours with `np.argsort` (quicksort),
which leaves the order of equal distances unspecified; here they are ordered
by (distance, index), the distance taken before the published normalisation
(dividing a row by its maximum is monotone but can round two distances to one
value). Ties only matter where they straddle the k1+1, round(k1/2)+1 or k2
boundary of a row. Random real-valued test features have none; the synthetic
Market-sized benchmark (19281 rows) has 1 exact tie and 8 pairs within 2 ulp at
those boundaries, where a one-ulp difference in how the input distances were
rounded flips a neighbour set and moves ~1e-6 of the final entries by up to
~1e-2 (mAP and rank-1 unchanged).

The published code squares its input distances (torchreid passes squared
euclidean distances in, so it works on their squares). `metric` names the
distance that would be passed in: "euclidean" reproduces the original paper
(squared euclidean inside), "sqeuclidean" reproduces torchreid's engine.

Large galleries: `re_ranking` returns the float32 query x gallery matrix (3.6 GiB
at MSMT17's 11,659 x 82,161). `re_ranking_blocks` yields the same rows block by
block without holding it (the neighbour search then keeps no query x gallery
distances; each block's are recomputed from the features, bit-identically),
and `evaluate_reranked` scores those blocks as they come (Market-1501 rule,
equal to `metrics.evaluate_rank(re_ranking(...), ...)`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
from typing import Any, Callable, Iterator

import numpy as np
import scipy.sparse

from spreid_tf import metrics

BACKENDS = ("numpy", "tf")
# Merge block t in a worker thread while block t+1 is multiplied.
_OVERLAP = True


def re_ranking(query_features: Any, gallery_features: Any, k1: int = 20, k2: int = 6,
               lambda_value: float = 0.3, metric: str = "euclidean",
               backend: str = "numpy", block_size: int = 2048) -> np.ndarray:
    """k-reciprocal re-ranked query x gallery distances.

    Args:
        query_features: (num_query, dim) features.
        gallery_features: (num_gallery, dim) features.
        k1: neighbourhood size of the k-reciprocal sets (paper: 20).
        k2: neighbourhood size of the query expansion (paper: 6; 1 disables it).
        lambda_value: weight of the original distance (paper: 0.3); the Jaccard
            distance gets 1 - lambda_value.
        metric: distance the published code would receive (it squares it):
            "euclidean", "sqeuclidean" or "cosine".
        backend: "numpy" (fastest on CPU) or "tf" (neighbour search and Jaccard
            accumulation as TensorFlow ops; runs on a GPU when there is one).
        block_size: rows per distance block (memory vs speed).

    Returns:
        float32 array (num_query, num_gallery).

    Raises:
        ValueError: on bad features (shape, NaN / inf, empty), k1 < 1, k2 < 1,
            lambda_value outside [0, 1], or an unknown metric / backend.
    """
    state = _prepare(*_check_args(query_features, gallery_features, k1, k2, lambda_value, metric,
                                  backend, block_size), keep_qg=True)
    raw_qg = state.raw_qg
    state.raw_qg = None
    # raw_qg becomes the final distance in place, by chunks of query rows.
    state.jaccard.combine(raw_qg, 0)
    return raw_qg


def re_ranking_blocks(query_features: Any, gallery_features: Any, k1: int = 20, k2: int = 6,
                      lambda_value: float = 0.3, metric: str = "euclidean",
                      backend: str = "numpy", block_size: int = 2048
                      ) -> Iterator[tuple[int, int, np.ndarray]]:
    """`re_ranking`'s rows, block by block, without ever holding query x gallery.

    The neighbour search keeps no query x gallery distances; each block's raw
    distances are recomputed from the features by the same calls on the same
    block shapes (rows of one query block of `block_size` times each gallery
    block), so every entry is bit-identical to `re_ranking`'s (the numpy
    backend; the tf backend recomputes its row blocks with the same function).
    Memory: `re_ranking`'s minus its (num_query, num_gallery) output, plus one
    (block_size, num_gallery) float32 block.

    Arguments, validation and errors are `re_ranking`'s (checked when called,
    not at the first block). The neighbour search runs when the first block is
    requested.

    Yields:
        (start, stop, distances): query rows start:stop, in order, covering all
        queries; distances is a fresh float32 array (stop - start, num_gallery)
        equal to re_ranking(...)[start:stop].
    """
    return _reranked_blocks(_check_args(query_features, gallery_features, k1, k2, lambda_value,
                                        metric, backend, block_size))


def _reranked_blocks(args: tuple) -> Iterator[tuple[int, int, np.ndarray]]:
    """`re_ranking_blocks` of arguments `_check_args` returned (a generator: the work starts
    at the first block)."""
    state = _prepare(*args, keep_qg=False)
    blocks, nq = state.blocks, state.blocks.num_query
    num_gallery = blocks.num - nq
    for a0, a1 in _block_bounds(nq, nq, state.block_size):
        out = np.empty((a1 - a0, num_gallery), dtype=np.float32)
        if state.tf_rows is not None:
            out[...] = state.tf_rows(a0, a1)[0][:, nq:].numpy()
        else:
            # The neighbour search's products: same shapes, same layout (rows of
            # num_gallery floats), same in-place conversion.
            for b0, b1 in _block_bounds(nq, blocks.num, state.block_size):
                if b0 < nq:
                    continue
                raw = out[:, b0 - nq:b1 - nq]
                blocks.product(a0, a1, b0, b1, out=raw)
                blocks.to_raw(raw, a0, b0)
        state.jaccard.combine(out, a0)
        yield a0, a1, out
        out = raw = None  # the caller's copy may be the only one left


def evaluate_reranked(query_features: Any, gallery_features: Any, q_pids: Any, g_pids: Any,
                      q_camids: Any, g_camids: Any, max_rank: int = 50, k1: int = 20,
                      k2: int = 6, lambda_value: float = 0.3, metric: str = "euclidean",
                      backend: str = "numpy", block_size: int = 2048) -> metrics.RankingResult:
    """Market-1501 rule CMC / mAP / mINP of the re-ranked distances, streamed.

    Equal to `metrics.evaluate_rank(re_ranking(query_features, gallery_features,
    ...), q_pids, g_pids, q_camids, g_camids, max_rank)` (the same float32
    distances, ranked the same way), without the query x gallery matrix: see
    `re_ranking_blocks` and `metrics.evaluate_rank_blocks`.
    """
    args = _check_args(query_features, gallery_features, k1, k2, lambda_value, metric,
                       backend, block_size)
    q, g = args[:2]
    ids = metrics._prepare_ids(len(q), len(g), q_pids, g_pids, q_camids, g_camids,
                               f"query_features (shape {q.shape})",
                               f"gallery_features (shape {g.shape})")
    metrics._check_max_rank(max_rank)
    q_pids, q_camids, g_pids, g_camids, _ = ids
    del q, g
    return metrics.evaluate_rank_blocks(_reranked_blocks(args), q_pids, g_pids, q_camids, g_camids,
                                        max_rank=max_rank)


def _check_args(query_features, gallery_features, k1, k2, lambda_value, metric, backend,
                block_size) -> tuple:
    metrics._check_metric(metric)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    for name, k in (("k1", k1), ("k2", k2)):
        if int(k) != k or k < 1:
            raise ValueError(f"{name} must be a positive integer, got {k!r}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value!r}")
    if int(block_size) != block_size or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    q = metrics._check_features(query_features, "query_features")
    g = metrics._check_features(gallery_features, "gallery_features")
    metrics._check_pair(q, g)
    return q, g, int(k1), int(k2), lambda_value, metric, backend, int(block_size)


@dataclasses.dataclass
class _State:
    blocks: _Blocks | None
    block_size: int
    jaccard: "_Jaccard"
    raw_qg: np.ndarray | None
    tf_rows: Callable[..., Any] | None


def _prepare(q, g, k1, k2, lambda_value, metric, backend, block_size, keep_qg: bool) -> _State:
    """Steps 1-3 (neighbours, V, query expansion) and the Jaccard set-up, from the arguments
    `_check_args` returned.

    keep_qg: keep the raw query x gallery distances of the neighbour search
    (`re_ranking`) or not (`re_ranking_blocks`, which recomputes them).
    """
    num_query = len(q)
    blocks = _Blocks(q, g, metric)
    del q, g
    num_neighbours = min(max(k1 + 1, k2), blocks.num)

    tf_rows = None
    if backend == "tf":
        tf_rows = _tf_row_block(blocks, num_neighbours)
        top_idx, top_base, raw_max, raw_qg = _neighbours_tf(
            blocks, num_query, num_neighbours, block_size, tf_rows, keep_qg)
    else:
        top_idx, top_base, raw_max, raw_qg = _neighbours_numpy(
            blocks, num_query, num_neighbours, block_size, keep_qg)
    row_max = blocks.finish(raw_max)
    v = _k_reciprocal_weights(blocks, top_idx, blocks.finish(top_base), row_max, k1)
    if k2 != 1:
        v = _query_expansion(v, top_idx[:, :k2])
    del top_idx, top_base
    finish = functools.partial(_finish, metric=metric)
    jaccard = _Jaccard(v, num_query, finish, row_max[:num_query], lambda_value, backend)
    # The features stay referenced by `blocks` only when they must be recomputed.
    return _State(blocks=blocks if not keep_qg else None, block_size=block_size,
                  jaccard=jaccard, raw_qg=raw_qg, tf_rows=None if keep_qg else tf_rows)


# ----------------------------------------------------------------------- distances


class _Blocks:
    """Distances between the rows of concat(query, gallery), in blocks.

    A block never mixes query and gallery rows, so the caller's arrays are
    used as they are (no concatenated copy). "raw" is the distance of `metric`
    before clipping at 0: |x|^2 + |y|^2 - 2 x.y (euclidean; its square is what
    the published code uses) or 1 - x.y of unit rows (cosine), computed as
    `product` (the matmul) then `to_raw` (in place). `finish` turns raw values
    into the published code's distance: max(raw, 0), squared for sqeuclidean
    and cosine.
    """

    def __init__(self, query: np.ndarray, gallery: np.ndarray, metric: str):
        self.metric = metric
        self.num_query = len(query)
        self.num = len(query) + len(gallery)
        if metric == "cosine":
            self.parts = (metrics._normalize_rows(query), metrics._normalize_rows(gallery))
            self.sq = None
        else:
            self.parts = (query, gallery)
            self.sq = np.concatenate([np.einsum("ij,ij->i", p, p) for p in self.parts])

    def rows(self, a0: int, a1: int) -> np.ndarray:
        if a1 <= self.num_query:
            return self.parts[0][a0:a1]
        assert a0 >= self.num_query, "a block mixes query and gallery rows"
        return self.parts[1][a0 - self.num_query:a1 - self.num_query]

    def product(self, a0: int, a1: int, b0: int, b1: int,
                out: np.ndarray | None = None) -> np.ndarray:
        return np.matmul(self.rows(a0, a1), self.rows(b0, b1).T, out=out)

    def to_raw(self, prod: np.ndarray, a0: int, b0: int) -> np.ndarray:
        """Products of block (a0.., b0..) -> raw distances, in place."""
        if self.metric == "cosine":
            return np.subtract(np.float32(1.0), prod, out=prod)
        prod *= np.float32(-2.0)
        prod += self.sq[a0:a0 + prod.shape[0], None]
        prod += self.sq[None, b0:b0 + prod.shape[1]]
        return prod

    def raw_pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Raw distances for a list of (row, col) pairs, same formula as blocks."""
        out = np.empty(len(rows), dtype=np.float32)
        nq = self.num_query
        # Gather straight from the query or gallery array: 4 groups of pairs.
        for rp in (0, 1):
            for cp in (0, 1):
                sel = np.flatnonzero(((rows >= nq) == rp) & ((cols >= nq) == cp))
                step = 1 << 14  # bounds the gathered (step, dim) temporaries
                for s in range(0, len(sel), step):
                    at = sel[s:s + step]
                    out[at] = np.einsum("ij,ij->i", self.parts[rp][rows[at] - rp * nq],
                                        self.parts[cp][cols[at] - cp * nq])
        if self.metric == "cosine":
            return np.subtract(np.float32(1.0), out, out=out)
        return (out * np.float32(-2.0) + self.sq[rows]) + self.sq[cols]

    def finish(self, raw: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return _finish(raw, self.metric, out)


def _finish(raw: np.ndarray, metric: str, out: np.ndarray | None = None) -> np.ndarray:
    """The published code's distance from a raw one: max(raw, 0), squared unless euclidean."""
    out = np.maximum(raw, np.float32(0.0), out=out)
    if metric != "euclidean":  # euclidean: raw is the square already
        np.square(out, out=out)
    return out


# ------------------------------------------------------------------ neighbours (numpy)


def _block_bounds(num_query: int, num_all: int, size: int) -> list[tuple[int, int]]:
    # Query and gallery rows never share a block, so the query x gallery part of
    # the matrix is a union of whole blocks.
    bounds = [(s, min(s + size, num_query)) for s in range(0, num_query, size)]
    bounds += [(s, min(s + size, num_all)) for s in range(num_query, num_all, size)]
    return bounds


class _TopK:
    """Per-row k smallest (distance, index) pairs, merged block by block.

    A block entry can only enter a row's top-k if it is <= the row's current
    k-th distance, so a block costs one comparison pass; the few entries that
    pass are merged by a partition of packed keys. A key is the float32 bit
    pattern of the (non-negative) distance above the column index: uint64
    order is (distance, index) order, so ties go to the lower index.
    """

    def __init__(self, num_rows: int, k: int):
        self.k = k
        self.col_bits = np.uint64(max(int(num_rows).bit_length(), 1))
        self.keys = np.full((num_rows, k), np.iinfo(np.uint64).max, dtype=np.uint64)

    def _pack(self, vals: np.ndarray, cols: np.ndarray) -> np.ndarray:
        # + 0.0 turns -0.0, whose bit pattern would sort last, into +0.0.
        bits = (vals + np.float32(0.0)).view(np.uint32).astype(np.uint64)
        return (bits << self.col_bits) | cols.astype(np.uint64)

    def merge(self, row0: int, raw: np.ndarray, col0: int, axis: int) -> None:
        """Merges raw block distances into rows row0.. (axis=1: the block's rows;
        axis=0: its columns, i.e. the transposed block)."""
        k = self.k
        num_rows = raw.shape[0] if axis == 1 else raw.shape[1]
        num_cols = raw.shape[1] if axis == 1 else raw.shape[0]
        state = self.keys[row0:row0 + num_rows]
        tau = (state[:, k - 1] >> self.col_bits).astype(np.uint32).view(np.float32)
        unfilled = state[:, k - 1] == np.iinfo(np.uint64).max
        if unfilled.any():
            tau = tau.copy()
            tau[unfilled] = np.inf
            if num_cols >= k:
                # The k-th smallest of any k or more entries bounds the final k-th.
                m = min(num_cols, 16 * k)
                sub = raw[unfilled, :m] if axis == 1 else raw[:m, unfilled].T
                tau[unfilled] = np.maximum(np.partition(sub, k - 1, axis=1)[:, k - 1], 0.0)
        # tau >= 0, so raw <= tau exactly when max(raw, 0) <= tau. The mask is
        # taken in the block's own layout: a transposed pass is 10x slower.
        mask = raw <= (tau[:, None] if axis == 1 else tau[None, :])
        flat = np.flatnonzero(mask)
        if len(flat) == 0:
            return
        rows, cols = np.divmod(flat, raw.shape[1])
        vals = np.maximum(raw[rows, cols], np.float32(0.0))
        if axis == 0:
            # Few entries pass: regroup them by their (new) row; a stable sort
            # of 16-bit integers is a radix sort.
            small = cols.astype(np.int16) if raw.shape[1] < (1 << 15) else cols
            order = np.argsort(small, kind="stable")
            rows, cols, vals = cols[order], rows[order], vals[order]
        counts = np.bincount(rows, minlength=num_rows)
        touched = np.flatnonzero(counts)
        width = k + int(counts.max())
        slot = np.empty(num_rows, dtype=np.int64)
        slot[touched] = np.arange(len(touched))
        pool = np.full((len(touched), width), np.iinfo(np.uint64).max, dtype=np.uint64)
        pool[:, :k] = state[touched]
        within = np.arange(len(rows)) - np.repeat(np.cumsum(counts[touched]) - counts[touched],
                                                  counts[touched])
        pool[slot[rows], k + within] = self._pack(vals, cols + col0)
        if width > k:
            pool = np.partition(pool, k - 1, axis=1)[:, :k]
        pool.sort(axis=1)
        state[touched] = pool

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(indices int64, distances float32), each (num_rows, k)."""
        idx = (self.keys & ((np.uint64(1) << self.col_bits) - np.uint64(1))).astype(np.int64)
        dist = (self.keys >> self.col_bits).astype(np.uint32).view(np.float32)
        return idx, dist


def _neighbours_numpy(blocks: _Blocks, num_query: int, k: int, block_size: int,
                      keep_qg: bool = True):
    """Top-k neighbours, row maxima and the query x gallery block, on CPU.

    The matrix is symmetric, so each block pair is computed once and serves
    the rows of both blocks.

    Returns:
        top_idx (N, k) int64 and top_base (N, k) float32 (max(raw, 0)),
        ascending by (distance, index); raw_max (N,) float32; raw_qg (q, g)
        float32, or None when not keep_qg (its blocks then pass through the
        reused buffers like every other block).
    """
    num_all = blocks.num
    bounds = _block_bounds(num_query, num_all, block_size)
    top = _TopK(num_all, k)
    raw_max = np.full(num_all, -np.inf, dtype=np.float32)
    raw_qg = np.empty((num_query, num_all - num_query), dtype=np.float32) if keep_qg else None
    # Two output buffers, reused: a fresh 16 MiB array per block costs page
    # faults, and two let one block be merged while the next is multiplied.
    size = max(a1 - a0 for a0, a1 in bounds)
    buffers = [np.empty(size * size, dtype=np.float32) for _ in range(2 if _OVERLAP else 1)]

    def reduce_block(raw, a0, a1, b0, b1):
        blocks.to_raw(raw, a0, b0)
        np.maximum(raw_max[a0:a1], raw.max(axis=1), out=raw_max[a0:a1])
        top.merge(a0, raw, b0, axis=1)
        if a0 != b0:
            np.maximum(raw_max[b0:b1], raw.max(axis=0), out=raw_max[b0:b1])
            top.merge(b0, raw, a0, axis=0)

    pairs = [(a, b) for i, a in enumerate(bounds) for b in bounds[i:]]
    # The matmul (multi-threaded BLAS, GIL released) of block t+1 runs while a
    # worker thread finishes and merges block t (single-threaded numpy).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        pending = None
        for t, ((a0, a1), (b0, b1)) in enumerate(pairs):
            if keep_qg and a0 < num_query <= b0:  # query x gallery: keep it, in place
                raw = raw_qg[a0:a1, b0 - num_query:b1 - num_query]
            else:
                raw = buffers[t % len(buffers)][:(a1 - a0) * (b1 - b0)].reshape(a1 - a0, b1 - b0)
                if len(buffers) == 1 and pending is not None:
                    pending.result()
            blocks.product(a0, a1, b0, b1, out=raw)
            if pending is not None:
                pending.result()
            if _OVERLAP:
                pending = worker.submit(reduce_block, raw, a0, a1, b0, b1)
            else:
                reduce_block(raw, a0, a1, b0, b1)
        if pending is not None:
            pending.result()
    top_idx, top_base = top.result()
    return top_idx, top_base, raw_max, raw_qg


# --------------------------------------------------------------------- neighbours (tf)


def _tf_row_block(blocks: _Blocks, k: int) -> Callable[..., Any]:
    """row_block(a0, a1) -> (raw (rows, N), top-k distances, top-k indices, row maxima)."""
    import tensorflow as tf  # deferred: the numpy path must not pay for the import

    x = tf.concat([tf.constant(p) for p in blocks.parts], axis=0)
    sq = None if blocks.sq is None else tf.constant(blocks.sq)

    @tf.function(reduce_retracing=True)
    def row_block(a0, a1):
        prod = tf.matmul(x[a0:a1], x, transpose_b=True)
        if sq is None:
            raw = 1.0 - prod
        else:  # the numpy path's formula and order
            raw = (prod * -2.0 + sq[a0:a1, None]) + sq[None, :]
        # top_k puts the lower index first among equal values: (distance, index).
        neg, idx = tf.math.top_k(-tf.maximum(raw, 0.0), k=k, sorted=True)
        return raw, -neg, idx, tf.reduce_max(raw, axis=1)

    def call(a0: int, a1: int):
        return row_block(tf.constant(a0), tf.constant(a1))

    return call


def _neighbours_tf(blocks: _Blocks, num_query: int, k: int, block_size: int,
                   row_block: Callable[..., Any] | None = None, keep_qg: bool = True):
    """As `_neighbours_numpy`, with full row blocks and tf.math.top_k.

    Every distance is computed twice (d[i, j] and d[j, i]), which a GPU does
    not notice; row maxima stand for the published column maxima (equal up to
    rounding).
    """
    if row_block is None:
        row_block = _tf_row_block(blocks, k)
    num_all = blocks.num
    top_idx = np.empty((num_all, k), dtype=np.int64)
    top_base = np.empty((num_all, k), dtype=np.float32)
    raw_max = np.empty(num_all, dtype=np.float32)
    raw_qg = np.empty((num_query, num_all - num_query), dtype=np.float32) if keep_qg else None
    for a0, a1 in _block_bounds(num_query, num_all, block_size):
        raw, vals, idx, mx = row_block(a0, a1)
        top_idx[a0:a1] = idx.numpy()
        top_base[a0:a1] = vals.numpy()
        raw_max[a0:a1] = mx.numpy()
        if keep_qg and a0 < num_query:
            raw_qg[a0:a1] = raw[:, num_query:].numpy()
    return top_idx, top_base, raw_max, raw_qg


# ------------------------------------------------------------------------ sparse sets


def _sum_like_numpy(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per-segment float32 sums, rounded exactly as np.sum rounds each segment.

    np.sum sums pairwise in an order that depends on the length, so segments
    of equal length are summed together as rows of one 2-D array.
    """
    out = np.empty(len(starts), dtype=values.dtype)
    for length in np.unique(lengths):
        which = np.flatnonzero(lengths == length)
        out[which] = values[starts[which, None] + np.arange(length)].sum(axis=1)
    return out


def _k_reciprocal_weights(blocks: _Blocks, top_idx: np.ndarray, top_dist: np.ndarray,
                          row_max: np.ndarray, k1: int) -> scipy.sparse.csr_matrix:
    """Sparse V: each row's expanded k-reciprocal set, weights exp(-d), normalised.

    Args:
        blocks: the features, for distances outside the top-k lists.
        top_idx, top_dist: (N, k) neighbours by (distance, index), k >= k1 + 1
            unless N is smaller; distances as the published code squares them.
        row_max: (N,) the normaliser of each row.
        k1: as in `re_ranking`.
    """
    num_all = len(top_idx)
    n1 = min(k1 + 1, num_all)
    nh = min(int(np.around(k1 / 2.0)) + 1, num_all)
    ar = np.arange(num_all)
    # The round(k1/2)-reciprocal set of every row (candidates' sets).
    rh = top_idx[:, :nh]
    recip_h = (top_idx[rh, :nh] == ar[:, None, None]).any(axis=2)
    size_h = recip_h.sum(axis=1)
    # Rows per step: `member` and `known` are (step, num_all), so at most 2^25 entries
    # (160 MiB) and never more than 1024 rows: memory grows with the rows, not their square.
    step = max(1, min(1024, num_all, (1 << 25) // num_all))
    member = np.zeros((step, num_all), dtype=bool)
    known = np.full((step, num_all), np.nan, dtype=np.float32)
    local = np.arange(step)[:, None]
    indptr, indices, data = [np.zeros(1, dtype=np.int64)], [], []
    nnz = 0
    for s in range(0, num_all, step):
        e = min(s + step, num_all)
        n = e - s
        fwd = top_idx[s:e, :n1]
        recip = (top_idx[fwd, :n1] == ar[s:e, None, None]).any(axis=2)
        rr, aa = np.nonzero(recip)
        cand = fwd[rr, aa]
        # Candidate j joins if |R(j, k1/2) & R(i, k1)| > 2/3 |R(j, k1/2)|.
        member[rr, cand] = True
        cand_sets, cand_ok = rh[cand], recip_h[cand]
        inter = (member[rr[:, None], cand_sets] & cand_ok).sum(axis=1)
        member[rr, cand] = False
        accept = inter > 2.0 / 3 * size_h[cand]
        pa, pb = np.nonzero(cand_ok[accept])
        key = np.unique(np.concatenate([rr * num_all + cand,
                                        rr[accept][pa] * num_all + cand_sets[accept][pa, pb]]))
        er, ec = np.divmod(key, num_all)  # by row, then column: np.unique's order
        # Distances from the top-k lists where possible, computed for the rest.
        known[local[:n], top_idx[s:e]] = top_dist[s:e]
        dist = known[er, ec]
        known[local[:n], top_idx[s:e]] = np.nan
        missing = np.flatnonzero(np.isnan(dist))
        if len(missing):
            dist[missing] = blocks.finish(blocks.raw_pairs(er[missing] + s, ec[missing]))
        weight = np.exp(-(dist / row_max[er + s]))
        counts = np.bincount(er, minlength=n)
        sums = _sum_like_numpy(weight, np.cumsum(counts) - counts, counts)
        data.append(weight / np.repeat(sums, counts))
        indices.append(ec)
        indptr.append(nnz + np.cumsum(counts))
        nnz += len(ec)
    return scipy.sparse.csr_matrix(
        (np.concatenate(data), np.concatenate(indices), np.concatenate(indptr)),
        shape=(num_all, num_all))


def _query_expansion(v: scipy.sparse.csr_matrix,
                     neighbours: np.ndarray) -> scipy.sparse.csr_matrix:
    """V_qe[i] = mean of V over the rows neighbours[i] (published: np.mean, float32)."""
    num_all, k2 = neighbours.shape
    # Column order = rank order: scipy then adds the rows in the order np.mean does.
    a = scipy.sparse.csr_matrix(
        (np.ones(num_all * k2, dtype=np.float32), neighbours.ravel(),
         np.arange(0, num_all * k2 + 1, k2)), shape=(num_all, num_all))
    out = a @ v
    out.sort_indices()
    out.data /= np.float32(k2)
    return out


# --------------------------------------------------------------------------- jaccard


class _Jaccard:
    """raw <- (1 - lambda) * jaccard + lambda * original, in place, for query rows.

    The Jaccard part needs, for query i and gallery j, sum_c min(V[i, c], V[j, c])
    over the columns c both rows use: for each of query i's columns, the
    gallery rows using that column come from a CSC copy of V. Pairs with
    nothing in common have jaccard 1. float32 sums are accumulated in
    increasing c, the published order. Every row's result depends only on
    that row (its sums are added in the same order whatever the chunk), so
    `combine` gives the same values on the whole matrix or on any row block.
    """

    def __init__(self, v: scipy.sparse.csr_matrix, num_query: int,
                 finish: Callable[..., np.ndarray], row_max: np.ndarray,
                 lambda_value: float, backend: str):
        self.num_gallery = num_gallery = v.shape[0] - num_query
        gal = v[num_query:].tocsc()
        gal.sort_indices()
        self.col_ptr, self.col_rows, self.col_vals = gal.indptr, gal.indices, gal.data
        self.qv = qv = v[:num_query]
        cum = np.concatenate([[0], np.cumsum(np.diff(self.col_ptr)[qv.indices])])
        self.per_query = cum[qv.indptr[1:]] - cum[qv.indptr[:-1]]
        self.max_rows = max(1, min(num_query, (1 << 23) // max(num_gallery, 1)))
        self.budget = 1 << 22  # (query, column, gallery row) triples per chunk
        self.shared = np.zeros(0, dtype=np.float32)  # sized by the first combine
        self.finish, self.row_max = finish, row_max
        self.lambda_value, self.backend = lambda_value, backend

    def combine(self, raw: np.ndarray, row0: int) -> None:
        """raw: the raw distances of query rows row0.., (rows, num_gallery), C order."""
        num_gallery, lambda_value = self.num_gallery, self.lambda_value
        col_ptr, col_rows, col_vals, qv = self.col_ptr, self.col_rows, self.col_vals, self.qv
        # Rows per chunk: at most max_rows, and no more than this call's rows (a
        # block of re_ranking_blocks); a row's result does not depend on its chunk.
        max_rows = min(self.max_rows, raw.shape[0])
        if len(self.shared) < max_rows * num_gallery:
            self.shared = np.zeros(max_rows * num_gallery, dtype=np.float32)
        shared = self.shared
        untouched = np.float32(1.0 - lambda_value)  # jaccard 1 times (1 - lambda)
        start, end = row0, row0 + raw.shape[0]
        while start < end:
            reach = np.searchsorted(np.cumsum(self.per_query[start:start + max_rows]),
                                    self.budget, side="right")
            stop = min(start + min(max(int(reach), 1), max_rows), end)
            out = raw[start - row0:stop - row0]
            self.finish(out, out=out)
            out /= self.row_max[start:stop, None]
            out *= lambda_value
            lo, hi = qv.indptr[start], qv.indptr[stop]
            q_rows = np.repeat(np.arange(stop - start), np.diff(qv.indptr[start:stop + 1]))
            q_cols, q_vals = qv.indices[lo:hi], qv.data[lo:hi]
            lens = col_ptr[q_cols + 1] - col_ptr[q_cols]
            entry = np.repeat(np.arange(len(q_cols)), lens)
            at = np.arange(len(entry)) + np.repeat(col_ptr[q_cols] - (np.cumsum(lens) - lens), lens)
            mins = np.minimum(q_vals[entry], col_vals[at])
            target = q_rows[entry] * num_gallery + col_rows[at]
            size = (stop - start) * num_gallery
            _accumulate(shared[:size], target, mins, self.backend)
            hit = np.flatnonzero(shared[:size])
            common = shared[hit]
            shared[hit] = 0.0
            jaccard = np.float32(1.0) - common / (np.float32(2.0) - common)
            flat = out.reshape(-1)
            original = flat[hit]
            flat += untouched
            flat[hit] = jaccard * (1 - lambda_value) + original
            start = stop


def _accumulate(out: np.ndarray, target: np.ndarray, values: np.ndarray, backend: str) -> None:
    """out[target] += values in float32, in the given order (as published)."""
    if backend == "tf":
        import tensorflow as tf

        out += tf.math.unsorted_segment_sum(values, target, len(out)).numpy()
    else:
        np.add.at(out, target, values)
