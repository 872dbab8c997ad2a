"""Nearest-neighbour search over embeddings with faiss (optional extra: pip install -e ".[search]").

A deployment searches each new crop against a gallery of millions; brute force (what
`spreid_tf.inference.search_gallery` does) costs a pass over the whole gallery per query.
`SearchIndex` wraps a faiss index with the gallery's filenames, person ids and camera ids
beside it, saves and loads them together, and returns the top-k as euclidean distances (the
package's evaluation distance between l2-normalised embeddings).

Kinds:

* "exact": `IndexFlatL2`, every gallery vector stored as is; the same ranking as brute force.
* "ivf": an inverted file (k-means cells; a query scans its `nprobe` nearest cells).
* "hnsw": a graph (`IndexHNSWFlat`, `hnsw_m` links a node; `ef_search` candidates explored).
* "pq": every vector as `pq_m` 4-bit product-quantisation codes, all scanned for every query
  with SIMD table lookups (faiss' fast scan, `IndexPQFastScan`): an exhaustive scan at a few
  bytes a vector, with no graph or cells to miss an identity's images. After a PCA the
  reduced vectors are also rotated at random (faiss' "PCAR"), which spreads their variance
  evenly over the sub-quantisers (as OPQ would, at a fraction of its training time).

The approximate kinds can work after a PCA to `pca_dim` dimensions (for 2048-D or 6144-D
embeddings); a shortlist of `k_factor` x top_k is then re-ranked by `refine`: "sq8" (the
full-dimensional vectors at one byte a coordinate; the default after a PCA, and for "pq"),
"flat" (full float32 vectors: exact distances, 4 bytes a coordinate) or "none". For a million
2048-D embeddings BENCHMARKS.md ("Large-gallery search") measures "pq" (pca_dim=256, pq_m=128,
k_factor=100) and "hnsw" (pca_dim=256); an inverted file recalled far less there.

    index = search.build_index(gallery.embeddings, "pq", pca_dim=256, filenames=gallery.filenames)
    index.save("gallery_index")
    index = search.SearchIndex.load("gallery_index")
    distances, rows = index.search(query_embeddings, top_k=10)   # rows index index.filenames

A folder holds index.faiss (faiss.write_index), entries.npz (filenames, person_ids,
camera_ids) and index.json (kind and parameters, count, dimension, distance), each written
atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Sequence

import numpy as np
from absl import logging

from spreid_tf import atomic

KINDS = ("exact", "ivf", "hnsw", "pq")
REFINES = ("auto", "sq8", "flat", "none")
DISTANCE = "euclidean"
INDEX_FILE = "index.faiss"
ENTRIES_FILE = "entries.npz"
CONFIG_FILE = "index.json"
_ADD_CHUNK = 1 << 16  # vectors added per faiss call (bounds the float32 copy; progress lines)
_PQ_CENTROIDS = 16  # a 4-bit code's


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ImportError('spreid_tf.search needs faiss: pip install -e ".[search]" (faiss-cpu)') from None
    return faiss


def require_faiss() -> None:
    """Raises ImportError naming the extra when faiss is not installed."""
    _faiss()


def _check_vectors(x: Any, name: str, dim: int | None = None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (num, dim), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} are {x.shape[1]}-D but the index holds {dim}-D embeddings: use the same model")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"{name} must be real numbers, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} (shape {x.shape}) has NaN or inf entries")
    return x


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    """What kind of index to build (saved as index.json beside it).

    Attributes:
        kind: one of KINDS.
        dim: embedding dimension.
        pca_dim: reduce to this many dimensions first ("ivf", "hnsw", "pq"); None keeps them all.
        nlist: inverted-file cells ("ivf"); None: about 4 sqrt(N) at the first `train`.
        nprobe: cells scanned per query ("ivf"), the recall/speed knob.
        refine: shortlist re-ranking ("ivf", "hnsw", "pq"): "sq8", "flat", "none", or "auto"
            (the default): "sq8" after a PCA or for "pq", else "none" (the index's own
            distances are exact).
        k_factor: shortlist length as a multiple of top_k when refining; None (the default):
            100 for "pq" (its 4-bit distances are coarse), 20 otherwise.
        hnsw_m: links per node ("hnsw").
        ef_search: candidate list length at search ("hnsw"), the recall/speed knob.
        ef_construction: candidate list length while building ("hnsw").
        pq_m: 4-bit sub-quantisers a vector ("pq"; it must divide pca_dim, or dim without a
            PCA): more codes, better distances, a slower scan.
    """

    kind: str = "exact"
    dim: int = 0
    pca_dim: int | None = None
    nlist: int | None = None
    nprobe: int = 16
    refine: str = "auto"
    # Defaults: the settings benchmarks/search.py measures (BENCHMARKS.md, "Large-gallery search").
    k_factor: int | None = None
    hnsw_m: int = 48
    ef_search: int = 128
    ef_construction: int = 120
    pq_m: int = 128

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"index kind must be one of {KINDS}, got {self.kind!r}")
        if self.refine not in REFINES:
            raise ValueError(f"refine must be one of {REFINES}, got {self.refine!r}")
        if self.refine == "auto":  # frozen: resolved once, saved resolved
            object.__setattr__(self, "refine", "sq8" if self.pca_dim or self.kind == "pq" else "none")
        if self.k_factor is None:
            object.__setattr__(self, "k_factor", 100 if self.kind == "pq" else 20)
        if self.kind == "exact" and self.refine != "none":
            raise ValueError(f"refine={self.refine!r} applies to the approximate kinds (ivf, hnsw, pq), not to "
                             "an exact index")
        if self.dim < 1:
            raise ValueError(f"dim must be positive, got {self.dim}")
        if self.pca_dim is not None and not 1 <= self.pca_dim <= self.dim:
            raise ValueError(f"pca_dim must be in [1, {self.dim}] (the embedding dimension), got {self.pca_dim}")
        if self.pca_dim is not None and self.kind == "exact":
            raise ValueError("pca_dim applies to the approximate kinds (ivf, hnsw, pq), not to an exact index")
        for name in ("nprobe", "k_factor", "hnsw_m", "ef_search", "ef_construction", "pq_m"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.nlist is not None and self.nlist < 1:
            raise ValueError(f"nlist must be positive, got {self.nlist}")
        coded = self.pca_dim or self.dim
        if self.kind == "pq" and coded % self.pq_m:
            raise ValueError(f"pq_m={self.pq_m} must divide the {coded} dimensions it codes "
                             f"({'pca_dim' if self.pca_dim else 'the embedding dimension'})")

    def factory(self) -> str:
        """The faiss index_factory string."""
        pca = f"PCA{self.pca_dim}," if self.pca_dim else ""
        if self.kind == "exact":
            return "Flat"
        refine = {"sq8": ",Refine(SQ8)", "flat": ",RFlat", "none": ""}[self.refine]
        if self.kind == "pq":
            return f"{pca.replace('PCA', 'PCAR')}PQ{self.pq_m}x4fs{refine}"
        base = f"HNSW{self.hnsw_m}" if self.kind == "hnsw" else f"IVF{self.nlist}"
        return f"{pca}{base},Flat{refine}"


def default_nlist(num_vectors: int) -> int:
    """faiss' rule of thumb, 4 sqrt(N) cells, kept to >= 39 training points a cell."""
    return int(max(1, min(4 * np.sqrt(num_vectors), num_vectors // 39)))


class SearchIndex:
    """A faiss index over gallery embeddings, with their filenames and ids.

    Build with `build_index` (or `SearchIndex(config)`, `train`, then `add` chunk by chunk
    for galleries that do not fit in memory at once), `search`, `save`, `load`.
    """

    def __init__(self, config: IndexConfig, index: Any = None):
        faiss = _faiss()
        self.config = config
        self.index = index if index is not None else (
            faiss.index_factory(config.dim, config.factory()) if config.nlist or config.kind != "ivf" else None)
        self._filenames: list[np.ndarray] = []
        self._person_ids: list[np.ndarray] = []
        self._camera_ids: list[np.ndarray] = []
        self._apply_search_parameters()

    # ------------------------------------------------------------------ building

    @property
    def is_trained(self) -> bool:
        return self.index is not None and self.index.is_trained

    def train(self, sample: Any, seed: int = 0) -> None:
        """Learns the PCA, the cells and the quantiser from `sample` (a few hundred thousand
        vectors at most are used: rows drawn at random with `seed`)."""
        sample = _check_vectors(sample, "training sample", self.config.dim)
        if self.index is None:  # nlist from the sample's size
            self.config = dataclasses.replace(self.config, nlist=default_nlist(len(sample)))
            self.index = _faiss().index_factory(self.config.dim, self.config.factory())
            self._apply_search_parameters()
        if self.index.is_trained:
            return
        needed = 39 * (self.config.nlist or 1)
        if self.config.kind == "ivf" and len(sample) < needed:
            raise ValueError(f"an ivf index with nlist={self.config.nlist} needs >= {needed} training vectors "
                             f"(39 a cell), got {len(sample)}: lower nlist or train on more")
        if self.config.kind == "pq" and len(sample) < _PQ_CENTROIDS:
            raise ValueError(f"a pq index needs >= {_PQ_CENTROIDS} training vectors (each 4-bit code has "
                             f"{_PQ_CENTROIDS} centroids), got {len(sample)}: use kind='exact' for so small a gallery")
        limit = max(256 * (self.config.nlist or 1), 65536)
        if len(sample) > limit:
            sample = sample[np.sort(np.random.default_rng(seed).choice(len(sample), limit, replace=False))]
        start = time.perf_counter()
        self.index.train(sample)
        logging.info("search index (%s) trained on %d vectors in %.1f s", self.config.factory(), len(sample),
                     time.perf_counter() - start)

    def add(self, embeddings: Any, filenames: Sequence[str] | None = None, person_ids: Any = None,
            camera_ids: Any = None, log_every_s: float = 10.0) -> None:
        """Appends gallery vectors (and their filenames / ids: give each for every add or never)."""
        x = _check_vectors(embeddings, "embeddings", self.config.dim)
        if not self.is_trained:
            raise ValueError(f"the {self.config.kind} index must be trained before vectors are added (call train)")
        for name, values, kept in (("filenames", filenames, self._filenames),
                                   ("person_ids", person_ids, self._person_ids),
                                   ("camera_ids", camera_ids, self._camera_ids)):
            if (values is None) != (not kept) and len(self):
                raise ValueError(f"{name} given for some adds and not others")
            if values is not None:
                values = np.asarray(values)
                if values.shape != (len(x),):
                    raise ValueError(f"{name} has shape {values.shape}, expected ({len(x)},) like the embeddings")
                kept.append(values.astype(str) if name == "filenames" else values.astype(np.int64))
        start = last = time.perf_counter()
        for s in range(0, len(x), _ADD_CHUNK):
            self.index.add(x[s:s + _ADD_CHUNK])
            now = time.perf_counter()
            done = min(s + _ADD_CHUNK, len(x))
            if log_every_s and now - last >= log_every_s and done < len(x):
                last = now
                rate = done / (now - start)
                logging.info("search index: added %d/%d vectors, %.0f/s, ETA %.0f s", done, len(x), rate,
                             (len(x) - done) / rate)

    def __len__(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def _apply_search_parameters(self) -> None:
        if self.index is None:
            return
        faiss = _faiss()
        index = faiss.downcast_index(self.index)
        if self.config.refine != "none":
            index.k_factor = float(self.config.k_factor)
        while not isinstance(index, (faiss.IndexIVF, faiss.IndexHNSW, faiss.IndexFlat, faiss.IndexPQFastScan)):
            index = faiss.downcast_index(index.base_index if hasattr(index, "base_index") else index.index)
        if self.config.kind == "ivf":
            index.nprobe = self.config.nprobe
        elif self.config.kind == "hnsw":
            # A refined search asks the graph for k_factor * k candidates: explore at least as many.
            index.hnsw.efSearch = self.config.ef_search
            if not len(self):
                index.hnsw.efConstruction = self.config.ef_construction

    def set_search_parameters(self, *, nprobe: int | None = None, k_factor: int | None = None,
                              ef_search: int | None = None) -> None:
        """Changes the recall/speed knobs of a built index (saved with it)."""
        changes = {k: v for k, v in (("nprobe", nprobe), ("k_factor", k_factor), ("ef_search", ef_search))
                   if v is not None}
        self.config = dataclasses.replace(self.config, **changes)
        self._apply_search_parameters()

    # ------------------------------------------------------------------ searching

    def search(self, queries: Any, top_k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The top_k gallery entries nearest each query.

        Returns:
            (distances float32 (Q, k), rows int64 (Q, k)), nearest first; rows index the
            gallery in the order it was added (and `filenames`). Euclidean distances: exact
            for "exact" and refine="flat", from the 8-bit codes for refine="sq8", in the PCA
            space for refine="none" and "hnsw" with pca_dim. An approximate index can return
            fewer than k: the rest are row -1, distance inf. k is capped at the gallery size.
        """
        if not len(self):
            raise ValueError("the search index is empty: add gallery embeddings first")
        if int(top_k) != top_k or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        q = _check_vectors(queries, "queries", self.config.dim)
        k = min(int(top_k), len(self))
        squared, rows = self.index.search(q, k)
        rows = rows.astype(np.int64)
        missing = rows < 0
        distances = np.sqrt(np.maximum(squared, np.float32(0.0)))
        distances[missing] = np.inf
        return distances.astype(np.float32), rows

    @property
    def filenames(self) -> np.ndarray | None:
        return np.concatenate(self._filenames) if self._filenames else None

    @property
    def person_ids(self) -> np.ndarray | None:
        return np.concatenate(self._person_ids) if self._person_ids else None

    @property
    def camera_ids(self) -> np.ndarray | None:
        return np.concatenate(self._camera_ids) if self._camera_ids else None

    # ------------------------------------------------------------------ files

    def save(self, folder: str | os.PathLike) -> None:
        """Writes index.faiss, entries.npz and index.json into `folder`, each atomically."""
        if self.index is None:
            raise ValueError("nothing to save: the index was never trained")
        faiss = _faiss()
        folder = os.fspath(folder)
        with atomic.atomic_file(os.path.join(folder, INDEX_FILE)) as f:
            writer = faiss.PyCallbackIOWriter(f.write)
            faiss.write_index(self.index, writer)
            del writer
        entries = {k: v for k, v in (("filenames", self.filenames), ("person_ids", self.person_ids),
                                     ("camera_ids", self.camera_ids)) if v is not None}
        with atomic.atomic_file(os.path.join(folder, ENTRIES_FILE)) as f:
            np.savez(f, **entries)
        atomic.write_text(os.path.join(folder, CONFIG_FILE), json.dumps(
            {"config": dataclasses.asdict(self.config), "factory": self.config.factory(), "count": len(self),
             "distance": DISTANCE}, indent=1))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> SearchIndex:
        """Reads a folder written by `save`."""
        folder = os.fspath(folder)
        paths = [os.path.join(folder, name) for name in (INDEX_FILE, ENTRIES_FILE, CONFIG_FILE)]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"{folder!r} is not a search index folder: no {', '.join(missing)} "
                                    f"(expected {INDEX_FILE}, {ENTRIES_FILE}, {CONFIG_FILE} that "
                                    "spreid_tf.search.SearchIndex.save writes)")
        with open(paths[2]) as f:
            saved = json.load(f)
        try:
            config = IndexConfig(**saved["config"])
        except (KeyError, TypeError) as error:
            raise ValueError(f"{paths[2]}: not a spreid_tf search index config ({error})") from None
        index = _faiss().read_index(paths[0])
        if index.d != config.dim or index.ntotal != saved.get("count"):
            raise ValueError(f"{paths[0]} holds {index.ntotal} {index.d}-D vectors but {paths[2]} says "
                             f"{saved.get('count')} {config.dim}-D: the files are from different indexes")
        out = cls(config, index)
        with np.load(paths[1], allow_pickle=False) as entries:
            for name in ("filenames", "person_ids", "camera_ids"):
                if name in entries.files:
                    values = entries[name]
                    if len(values) != len(out):
                        raise ValueError(f"{paths[1]}: {name} has {len(values)} entries for {len(out)} vectors")
                    getattr(out, f"_{name}").append(values)
        return out


def build_index(embeddings: Any, kind: str = "exact", *, filenames: Sequence[str] | None = None,
                person_ids: Any = None, camera_ids: Any = None, pca_dim: int | None = None,
                nlist: int | None = None, nprobe: int = 16, refine: str = "auto", k_factor: int | None = None,
                hnsw_m: int = 48, ef_search: int = 128, pq_m: int = 128, seed: int = 0) -> SearchIndex:
    """Builds a `SearchIndex` over `embeddings` (trained on them, then filled with them).

    Args:
        embeddings: (N, dim) gallery embeddings (l2-normalised, as spreid_tf serves them).
        kind: "exact", "ivf", "hnsw" or "pq"; see the module docstring.
        filenames, person_ids, camera_ids: (N,) kept beside the index and saved with it.
        pca_dim, nlist, nprobe, refine, k_factor, hnsw_m, ef_search, pq_m: see `IndexConfig`.
        seed: draws the training sample when N is large.
    """
    x = _check_vectors(embeddings, "embeddings")
    config = IndexConfig(kind=kind, dim=x.shape[1], pca_dim=pca_dim, nlist=nlist, nprobe=nprobe, refine=refine,
                         k_factor=k_factor, hnsw_m=hnsw_m, ef_search=ef_search, pq_m=pq_m)
    index = SearchIndex(config)
    index.train(x, seed=seed)
    index.add(x, filenames=filenames, person_ids=person_ids, camera_ids=camera_ids)
    return index
