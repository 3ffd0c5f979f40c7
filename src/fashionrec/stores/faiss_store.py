"""The embedded default store: a FAISS index in one self-checking file, plus metadata columns for filters.

File layout (``vectors.faiss``)::

    MAGIC (16 bytes) | header length (8 bytes, little endian) | header JSON | FAISS payload

The header holds the format version, the model spec the vectors came from, the item ids (row order of the
FAISS index) and the SHA-256 of the payload. A file is written to a temporary name and renamed into place, so a
reader sees the old index or the new one, never half of one; a corrupt or foreign file fails with a clear error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from fashionrec.atomic import write_atomically
from fashionrec.errors import IndexFormatError
from fashionrec.filters import Filters, MetadataColumns
from fashionrec.manifest import Manifest
from fashionrec.stores.base import Hit

logger = logging.getLogger(__name__)

MAGIC = b"FASHIONREC-FAISS"
FORMAT_VERSION = 1
DELETED_FORMAT_VERSION = 2  # a file recording rows removed since its index was built ("deleted" in the header)
INDEX_FILE = "vectors.faiss"
IndexKind = Literal["auto", "flat", "hnsw", "ivf", "ivfsq", "pcaivfsq", "ivfpqfs"]
KINDS: tuple[str, ...] = ("flat", "hnsw", "ivf", "ivfsq", "pcaivfsq", "ivfpqfs")
# "auto" by catalogue size. Exact search reads every vector per query, so it is kept for small catalogues; HNSW
# then answers at high recall and builds quickly; past HNSW_MAX_ITEMS its float32 vectors and build time grow too
# large, and IVF over 8-bit scalar-quantised vectors takes over (1/4 of the memory). Measured in
# docs/performance.md (benchmarks/ann_scale.py). 4-bit fast-scan PQ with several
# dimensions per code and a re-ranking copy was tried and lost: on real-shaped data its coarse codes miss much of
# the true top-10 however many candidates are re-ranked; one 4-bit code per dimension ("ivfpqfs", below) does not
# lose them, and is what a budget (fashionrec.stores.budget) picks for large catalogues of small vectors. At the
# backbone's 1280 dimensions an IVF-SQ8 scan reads 1,280 bytes per candidate; "pcaivfsq" scans 256-d PCA codes
# instead and re-ranks a few candidates per result on the full-dimension SQ8 copy. See benchmarks/ann_scale.py.
AUTO_FLAT_MAX_ITEMS = 5_000
HNSW_MAX_ITEMS = 300_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
# Shoppers' photos lie far from every studio shot, where a graph search stops early, so efSearch is set well
# above what catalogue queries need (the recall measured per setting is in docs/performance.md).
# Set on every load, so indexes built with an older value get it too.
HNSW_EF_SEARCH = 256
IVFSQ_MIN_ITEMS = 64  # fewer items cannot train IVF lists worth having; "ivfsq" falls back to exact search
IVFSQ_NPROBE = 32
PCA_DIM = 256  # coarse stage of "pcaivfsq": the embeddings' top principal directions
REFINE_K_FACTOR = 4  # "pcaivfsq" re-ranks k * this many coarse candidates on the full vectors
PCA_IVF_NPROBE = 16  # "pcaivfsq": chosen with k_factor 4 on 1M x 1280 (benchmarks/results/ann_scale_1280_pcaivfsq.json)
# "ivfpqfs", the compact kind for embeddings of at most 256 dimensions: IVF lists scanned with 4-bit fast-scan PQ
# codes (one 4-bit code per dimension of the residual, dim / 2 bytes, compared by SIMD table look-ups), the best
# k_factor x k candidates re-ranked on an 8-bit copy (dim bytes). Half-dimension PQ codes proved too coarse on
# real-shaped data: re-ranking could not recover what they missed. Recall then follows nprobe; the values below are
# the defaults, which `fashionrec index --target-recall` tunes (see fashionrec.stores.budget).
PQFS_NPROBE = 12
PQFS_K_FACTOR = 8
TRAIN_PER_LIST = 64  # k-means training points per IVF list: enough for stable centroids, bounded training time
EXACT_CHUNK = 16_384  # vectors scored per step by exact search over a subset (bounded memory)
# Writes of the items API (FaissStore.upsert / remove) go to an exact delta and removal marks; a background merge
# folds the delta into the main index when it reaches MERGE_ROWS rows, and builds the index again without the removed
# rows when they pass COMPACT_FRACTION of it. Chosen with benchmarks/live_merge.py (docs/live-catalogue.md).
MERGE_ROWS = 1_000
COMPACT_FRACTION = 0.2
DELTA_ROOM = 256  # delta rows allocated at once


def resolve_kind(kind: IndexKind, n: int, dim: int) -> str:
    """The concrete index kind for ``n`` items of ``dim`` dimensions: "auto" by size (and, past HNSW, by whether a
    PCA coarse stage pays off), and exact search on too few items to train the IVF kinds."""
    if kind == "auto":
        if n < AUTO_FLAT_MAX_ITEMS:
            return "flat"
        if n < HNSW_MAX_ITEMS:
            return "hnsw"
        return "pcaivfsq" if dim >= 2 * PCA_DIM else "ivfsq"
    if kind in ("ivfsq", "pcaivfsq", "ivfpqfs") and n < IVFSQ_MIN_ITEMS:
        return "flat"
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}")
    return kind


def ivfsq_factory(n: int, dim: int) -> str:
    """FAISS factory string of the large-catalogue index: ~2 sqrt(n) IVF lists over 8-bit scalar-quantised vectors."""
    nlist = max(1, min(int(2 * np.sqrt(n)), n // TRAIN_PER_LIST))
    return f"IVF{nlist},SQ8"


def ivfpqfs_factory(n: int, dim: int) -> str:
    """FAISS factory string of "ivfpqfs": the IVF lists of ``ivfsq``, 4-bit fast-scan PQ codes (one per dimension),
    re-ranked on an 8-bit scalar-quantised copy."""
    return f"{ivfsq_factory(n, dim).split(',')[0]},PQ{dim}x4fs,Refine(SQ8)"


def describe(kind: str, n: int, dim: int) -> str:
    """An index kind in FAISS factory terms, for reports."""
    if kind == "ivfsq":
        return ivfsq_factory(n, dim)
    if kind == "pcaivfsq":
        return f"PCA{pca_dim(dim)},{ivfsq_factory(n, pca_dim(dim))} + SQ8 refine x{REFINE_K_FACTOR}"
    if kind == "ivfpqfs":
        return ivfpqfs_factory(n, dim)
    if kind == "hnsw":
        return f"HNSW{HNSW_M},Flat"
    if kind == "ivf":
        return f"IVF{ivf_nlist(n)},Flat"
    return "Flat"


def ivf_nlist(n: int) -> int:
    """IVF lists of the "ivf" kind."""
    return max(1, min(int(4 * np.sqrt(max(n, 1))), max(n // 39, 1)))


def pca_dim(dim: int) -> int:
    """Dimensions kept by the PCA stage: ``PCA_DIM``, or a quarter of a small ``dim``."""
    return min(PCA_DIM, max(1, dim // 4))


def pca_ivfsq(n: int, dim: int) -> faiss.IndexRefine:
    """IVF-SQ8 over the top ``PCA_DIM`` principal directions, re-ranked on a full-dimension SQ8 copy.

    L2 throughout: PCA centres the data, which would bias inner products by each vector's dot product with the
    mean, while it preserves L2 distances, and for unit vectors L2 ranks exactly as cosine (d^2 = 2 - 2 cos);
    :meth:`FaissStore.search` turns the distances back into cosines."""
    reduced = pca_dim(dim)
    base = faiss.index_factory(dim, f"PCA{reduced},{ivfsq_factory(n, reduced)}", faiss.METRIC_L2)
    faiss.extract_index_ivf(base).nprobe = min(PCA_IVF_NPROBE, faiss.extract_index_ivf(base).nlist)
    index = faiss.IndexRefine(base, faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2))
    index.k_factor = REFINE_K_FACTOR
    return index


def new_index(kind: IndexKind, n: int, dim: int) -> tuple[faiss.Index, str]:
    """An empty cosine (unit-vector) index of the kind suited to ``n`` items (untrained for IVF kinds)."""
    resolved = resolve_kind(kind, n, dim)
    if resolved == "flat":
        return faiss.IndexFlatIP(dim), resolved
    if resolved == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        return index, resolved
    if resolved == "ivf":
        nlist = ivf_nlist(n)
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.nprobe = max(1, nlist // 16)
        return ivf, resolved
    if resolved == "pcaivfsq":
        return pca_ivfsq(n, dim), resolved
    if resolved == "ivfpqfs":
        # L2, as "pcaivfsq": PQ codes the residuals to the list centroids, which L2 handles exactly; for unit
        # vectors L2 ranks as cosine and FaissStore.search turns the distances back into cosines.
        index = faiss.index_factory(dim, ivfpqfs_factory(n, dim), faiss.METRIC_L2)
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = min(PQFS_NPROBE, ivf.nlist)
        index.k_factor = PQFS_K_FACTOR  # index_factory returns the IndexRefine itself (already downcast)
        return index, resolved
    ivfsq = faiss.index_factory(dim, ivfsq_factory(n, dim), faiss.METRIC_INNER_PRODUCT)
    ivfsq.nprobe = min(IVFSQ_NPROBE, faiss.extract_index_ivf(ivfsq).nlist)
    return ivfsq, resolved


def training_sample(vectors: np.ndarray, index: faiss.Index, seed: int = 0) -> np.ndarray:
    """A seeded subset big enough for the index's k-means (TRAIN_PER_LIST points per list), so training time
    does not grow with the catalogue."""
    ivf = faiss.try_extract_index_ivf(index)
    wanted = max(TRAIN_PER_LIST * (ivf.nlist if ivf is not None else 1), 10_000)
    if len(vectors) <= wanted:
        return vectors
    rows = np.sort(np.random.default_rng(seed).choice(len(vectors), wanted, replace=False))
    return np.ascontiguousarray(vectors[rows])


def build_index(vectors: np.ndarray, kind: IndexKind = "auto") -> tuple[faiss.Index, str]:
    """Build a FAISS inner-product index over L2-normalised ``vectors``; returns the index and its kind."""
    n, dim = vectors.shape
    index, resolved = new_index(kind, n, dim)
    if not index.is_trained:
        index.train(training_sample(vectors, index))
    if n:
        index.add(vectors)
    return index, resolved


def search_settings(index: faiss.Index) -> dict[str, int | float]:
    """The index's search-time parameters (nprobe, k_factor, efSearch: those it has)."""
    settings: dict[str, int | float] = {}
    if isinstance(index, faiss.IndexHNSW):
        settings["efSearch"] = int(index.hnsw.efSearch)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        settings["nprobe"] = int(ivf.nprobe)
    if isinstance(index, faiss.IndexRefine):
        settings["k_factor"] = float(index.k_factor)
    return settings


def apply_search_settings(index: faiss.Index, settings: dict[str, Any]) -> None:
    """Set the search-time parameters named in ``settings`` that the index has (others are ignored)."""
    if "efSearch" in settings and isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = int(settings["efSearch"])
    ivf = faiss.try_extract_index_ivf(index)
    if "nprobe" in settings and ivf is not None:
        ivf.nprobe = max(1, min(int(settings["nprobe"]), ivf.nlist))
    if "k_factor" in settings and isinstance(index, faiss.IndexRefine):
        index.k_factor = float(settings["k_factor"])


def search_params(index: faiss.Index, selector: faiss.IDSelector | None) -> faiss.SearchParameters | None:
    """Per-call parameters carrying the filter's selector into the search."""
    if selector is None:
        return None
    if isinstance(index, faiss.IndexRefine):  # the filter acts in the coarse IVF stage (below any PCA transform)
        base = faiss.downcast_index(index.base_index)
        ivf = faiss.SearchParametersIVF(sel=selector, nprobe=faiss.extract_index_ivf(base).nprobe)
        pre = faiss.SearchParametersPreTransform(index_params=ivf) if isinstance(base, faiss.IndexPreTransform) else ivf
        params = faiss.IndexRefineSearchParameters(k_factor=index.k_factor, base_index_params=pre)
        params.keep_alive = (pre, ivf)  # the structs hold raw pointers to each other; SWIG would free them early
        return params
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=index.hnsw.efSearch)
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=index.nprobe)
    return faiss.SearchParameters(sel=selector)


@dataclass(frozen=True)
class _View:
    """One state of a store, never changed once published: a search reads one view from start to end, so a write
    or a merge landing meanwhile never shows it half a change. Rows are numbered once and never reused: rows
    ``0 .. base-1`` are in the main index, rows ``base .. size-1`` in the exact delta (``delta[row - base]``)."""

    index: faiss.Index
    table: _Rows
    base: int
    size: int
    delta: np.ndarray
    """Vectors of the delta rows (it may be longer than ``size - base``: room for rows written after this view)."""
    alive: np.ndarray
    """One flag per row: False for the rows of removed or replaced products (never searched again)."""
    dead: int
    meta: MetadataColumns | None
    generation: int
    products: int

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of ``rows`` (main rows reconstructed from the index, delta rows copied)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.delta.shape[1]), dtype=np.float32)
        main = rows < self.base
        if main.any():
            out[main] = self.index.reconstruct_batch(rows[main])
        if (~main).any():
            out[~main] = self.delta[rows[~main] - self.base]
        return out


class _Rows:
    """Every row's product and photo number, and each product's rows (those removed included: a view filters them by
    its flags). Writes append to it; a compaction numbers the rows again in a new one. A view reads the rows below
    its size, which never change."""

    def __init__(self, row_ids: list[str], photos: list[int] | None, alive: np.ndarray) -> None:
        self.ids = row_ids
        self.photos = photos if photos is not None else [0] * len(row_ids)
        self.of: dict[str, list[int]] = {}
        for n in np.flatnonzero(alive):
            self.of.setdefault(row_ids[n], []).append(int(n))
        self.most_photos = max((len(r) for r in self.of.values()), default=1)

    def add(self, item_id: str, first: int, count: int) -> None:
        self.ids.extend([item_id] * count)
        self.photos.extend(range(count))
        self.of[item_id] = [*self.of.get(item_id, ()), *range(first, first + count)]  # a new list: views read the old
        self.most_photos = max(self.most_photos, count)


def _clone(index: faiss.Index) -> faiss.Index:
    """A deep copy of any index kind (the serialisation FAISS keeps for every kind, IndexRefine included)."""
    return faiss.deserialize_index(faiss.serialize_index(index))


class FaissStore:
    """A FAISS index, its ids, and the metadata columns used for filtering; changed one product at a time while
    searched (the items API) without a rebuild.

    Writes never touch the main index: a new or replaced product's rows go to a small **delta** searched exactly
    beside it, and a removed or replaced product's rows are **marked** (a FAISS ID selector keeps them out of the
    main index's search; the delta drops them from its scores). When the delta passes ``merge_rows`` rows, a
    background thread (one at a time) merges it into a copy of the main index with that index's own ``add`` (flat:
    appended; IVF kinds: each vector to its list; HNSW: inserted in the graph), and when removed rows pass
    ``COMPACT_FRACTION`` of the main index it builds the index again from the rows still alive; the new index is
    swapped in atomically. Searches read one immutable view and take no lock, so they never wait for a write or a
    merge. A merge also saves the file (``checkpoint_dir``), recording the rows removed since it was built."""

    def __init__(
        self, index: faiss.Index, ids: Sequence[str], kind: str, model: Manifest | None,
        meta: MetadataColumns | None = None, generation: int = 0, photos: Sequence[int] | None = None,
        build: dict[str, Any] | None = None, deleted: Sequence[int] = (),
    ) -> None:
        self.kind = kind
        self.model = model
        """What made the vectors (None: unknown, e.g. vectors built in memory for an evaluation)."""
        self.build = build
        """What was built and measured (fashionrec.stores.budget): factory string, search parameters, recall@10 on
        a sample, bytes, the budget; search parameters tuned to a target recall are set again on every load."""
        self.dim = int(index.d)
        self.merge_rows = MERGE_ROWS
        self.checkpoint_dir: Path | None = None
        """Where a background merge saves the file (None: nowhere, e.g. a store built in memory)."""
        self._set_search_parameters(index)
        self._lock = threading.Lock()  # writes and merge swaps, one at a time; searches never take it
        self._merging: threading.Thread | None = None
        self._merging_lock = threading.Lock()
        self._merge_error: BaseException | None = None
        alive = np.ones(len(ids), dtype=bool)
        alive[np.asarray(list(deleted), dtype=np.int64)] = False
        table = _Rows(list(ids), None if photos is None else list(photos), alive)
        self._view = _View(index, table, len(ids), len(ids), np.zeros((0, self.dim), np.float32), alive,
                           int((~alive).sum()), None, generation, len(table.of))
        if meta is not None:
            self.meta = meta

    @classmethod
    def of(cls, ids: list[str], vectors: np.ndarray, model: Manifest | None, kind: IndexKind = "auto",
           meta: MetadataColumns | None = None) -> FaissStore:
        """A store of ``vectors`` (unit rows, in ``ids`` order) built in memory with ``kind``."""
        index, resolved = build_index(vectors, kind)
        return cls(index=index, ids=ids, kind=resolved, model=model, meta=meta)

    def _set_search_parameters(self, index: faiss.Index) -> None:
        if isinstance(index, faiss.IndexHNSW):
            index.hnsw.efSearch = HNSW_EF_SEARCH
        if isinstance(index, faiss.IndexIVF) and index.direct_map.type == faiss.DirectMap.NoMap:
            index.make_direct_map()  # _exact_subset reconstructs vectors by position; IVF needs this map for it
        if self.build and (self.build.get("budget") or {}).get("target_recall"):
            apply_search_settings(index, self.build.get("search") or {})

    # what the store holds ----------------------------------------------------------------------------------
    @property
    def index(self) -> faiss.Index:
        """The main FAISS index (rows written since the last merge are beside it, in the delta)."""
        return self._view.index

    @property
    def generation(self) -> int:
        """The database generation (CatalogDB.generation) these vectors hold."""
        return self._view.generation

    @generation.setter
    def generation(self, value: int) -> None:
        with self._lock:
            self._view = replace(self._view, generation=int(value))

    @property
    def meta(self) -> MetadataColumns | None:
        """The metadata columns filters read, one row per store row (removed rows included)."""
        return self._view.meta

    @meta.setter
    def meta(self, value: MetadataColumns | None) -> None:
        """Metadata for the store's rows: one row per row, or one per row of :attr:`ids` (the live rows)."""
        with self._lock:
            view = self._view
            if value is not None and value.size != view.size:
                live_rows = np.flatnonzero(view.alive)
                if value.size != len(live_rows):
                    raise ValueError(f"metadata for {value.size} rows, the store has {len(live_rows)}")
                value = value.spread(live_rows, view.size)
            self._view = replace(view, meta=value)

    @property
    def ids(self) -> list[str]:
        """The product of every live row, in row order (a product with several photos has several rows)."""
        view = self._view
        return [view.table.ids[n] for n in np.flatnonzero(view.alive)]

    @property
    def photos(self) -> list[int] | None:
        """Which photo of its product each live row is (None: every product has one)."""
        view = self._view
        photos = [view.table.photos[n] for n in np.flatnonzero(view.alive)]
        return photos if any(photos) else None

    @property
    def external(self) -> bool:
        """False: the store is the index directory's own file, opened again with it."""
        return False

    def __len__(self) -> int:
        return self._view.products

    def rows_of(self, item_id: str) -> list[int]:
        """Every live row of a product (one per photo)."""
        view = self._view
        return [n for n in view.table.of.get(item_id, ()) if n < view.size and view.alive[n]]

    def position(self, item_id: str) -> int | None:
        rows = self.rows_of(item_id)
        return rows[0] if rows else None

    def snapshot(self) -> FaissStore:
        """A read-only copy pinned to the store's current state: later writes and merges do not change what it
        answers (an API request searches one generation from start to end)."""
        pinned = object.__new__(_Pinned)
        pinned.__dict__.update(self.__dict__)  # the view is immutable (its row table only grows past its size)
        return pinned

    # persistence ----------------------------------------------------------------------------------------
    def save(self, index_dir: Path) -> Path:
        """Write atomically (temp file in the same folder, fsync, rename), after merging any delta: the main index,
        every row's id and the rows removed from it."""
        self.merge()
        view = self._view
        return self._write(Path(index_dir), view.index, view.table.ids[: view.size],
                           view.table.photos[: view.size], np.flatnonzero(~view.alive[: view.size]), view.generation)

    def _write(self, index_dir: Path, index: faiss.Index, ids: list[str], photos: list[int], deleted: np.ndarray,
               generation: int) -> Path:
        payload = faiss.serialize_index(index).tobytes()
        header = json.dumps(
            {
                # a file with removed rows is version 2: an older fashionrec, which would search them, refuses it
                "format_version": FORMAT_VERSION if not len(deleted) else DELETED_FORMAT_VERSION,
                "kind": self.kind,
                "dim": self.dim,
                "count": len(ids),
                "model": None if self.model is None else self.model.to_dict(),
                "ids": ids,
                "generation": generation,
                **({} if not any(photos) else {"photos": photos}),
                **({} if not len(deleted) else {"deleted": [int(n) for n in deleted]}),
                **({} if self.build is None else {"build": self.build}),
                "payload_sha256": hashlib.sha256(payload).hexdigest(),
            }
        ).encode()
        return write_atomically(index_dir / INDEX_FILE, MAGIC + struct.pack("<Q", len(header)) + header, payload)

    @classmethod
    def load(cls, index_dir: Path) -> FaissStore:
        """Read and verify an index file; any damage is an IndexFormatError, never a crash."""
        path = Path(index_dir) / INDEX_FILE
        header, payload = read_file(path)
        try:  # a checksum only proves the file is intact, not that a foreign writer produced valid content
            index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
            ids, kind = [str(i) for i in header["ids"]], str(header["kind"])
            model = Manifest.from_dict(header["model"], str(path)) if header["model"] else None
            generation = int(header.get("generation", 0))
            photos = None if header.get("photos") is None else [int(n) for n in header["photos"]]
            deleted = [int(n) for n in header.get("deleted", [])]
            build = header.get("build")
            if build is not None and not isinstance(build, dict):
                raise TypeError("build record is not an object")
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{path}: unreadable index content ({exc}); re-run `fashionrec index`") from None
        if index.ntotal != len(ids) or (photos is not None and len(photos) != len(ids)) or \
                any(not 0 <= n < len(ids) for n in deleted):
            raise IndexFormatError(f"{path}: {index.ntotal} vectors but {len(ids)} ids")
        return cls(index=index, ids=ids, kind=kind, model=model, generation=generation, photos=photos, build=build,
                   deleted=deleted)

    # changes one product at a time (the items API) ------------------------------------------------------
    def upsert(self, item_id: str, vectors: np.ndarray, metadata: Mapping[str, str], *,
               generation: int | None = None) -> None:
        """Add a product's vectors (one unit row per photo, in the searched space), replacing any it had; the store
        is then at ``generation`` (when given). Its rows go to the delta: no index is rebuilt."""
        rows = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            view = self._view
            old = [n for n in view.table.of.get(item_id, ()) if view.alive[n]]
            used = view.size - view.base
            delta = view.delta
            if len(delta) < used + len(rows):  # no room: a bigger copy (rows beyond a view are never read by it)
                delta = np.zeros((max(2 * (used + len(rows)), DELTA_ROOM), self.dim), np.float32)
                delta[:used] = view.delta[:used]
            delta[used : used + len(rows)] = rows
            alive = np.concatenate([view.alive, np.ones(len(rows), dtype=bool)])
            alive[old] = False
            view.table.add(item_id, view.size, len(rows))  # its earlier rows stay listed, marked
            meta = None if view.meta is None else view.meta.appended([metadata] * len(rows))
            self._view = _View(view.index, view.table, view.base, view.size + len(rows), delta, alive, view.dead + len(old), meta,
                               view.generation if generation is None else generation,
                               view.products + (0 if old else 1))
        self._merge_when_due()

    def remove(self, item_id: str, *, generation: int | None = None) -> bool:
        """Drop a product's vectors (its rows are marked, never searched again); False when the store has none."""
        with self._lock:
            view = self._view
            old = [n for n in view.table.of.get(item_id, ()) if view.alive[n]]
            alive = view.alive
            if old:
                alive = alive.copy()
                alive[old] = False
            self._view = replace(view, alive=alive, dead=view.dead + len(old), products=view.products - bool(old),
                                 generation=view.generation if generation is None else generation)
        self._merge_when_due()
        return bool(old)

    def set_metadata(self, item_id: str, metadata: Mapping[str, str], *, generation: int | None = None) -> None:
        """New filter values for a product already in the store."""
        with self._lock:
            view = self._view
            rows = [n for n in view.table.of.get(item_id, ()) if view.alive[n]]
            meta = view.meta.changed(rows, metadata) if (view.meta is not None and rows) else view.meta
            self._view = replace(view, meta=meta, generation=view.generation if generation is None else generation)

    def adopt(self, fresh: FaissStore) -> None:
        """Take ``fresh``'s contents (the same products built again from the database) in one step."""
        self.merge()
        with self._lock:
            self.kind, self.model, self.build = fresh.kind, fresh.model, fresh.build
            self._view = fresh._view

    # merging the delta in the background ------------------------------------------------------------------
    def _merge_due(self, view: _View) -> bool:
        return view.size - view.base >= self.merge_rows or view.dead > max(1, COMPACT_FRACTION * view.size)

    def _merge_when_due(self) -> None:
        """Start a background merge when the delta or the removed rows grew past their limits (one at a time)."""
        with self._lock:
            if not self._merge_due(self._view) or (self._merging is not None and self._merging.is_alive()):
                return
            self._merging = threading.Thread(target=self._merge_safely, name="fashionrec-merge", daemon=True)
            self._merging.start()

    def _merge_safely(self) -> None:
        try:  # a merge can wait, queries cannot: lower this thread's CPU priority (Linux schedules threads one by one)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        try:
            self._merge()
        except Exception as exc:  # noqa: BLE001 - the store keeps serving its delta; the next write tries again
            self._merge_error = exc
            logger.warning("merging written products into the vector index failed (still searched exactly): %s", exc)

    def merge(self) -> None:
        """Merge the delta (and drop removed rows, when there are many) now, waiting for one already running."""
        merging = self._merging
        if merging is not None:
            merging.join()
        view = self._view
        if view.size > view.base or view.dead > COMPACT_FRACTION * view.size:
            self._merge()

    def _merge(self) -> None:
        with self._merging_lock:  # one merge at a time, however it was started
            self._merge_now()

    def _merge_now(self) -> None:
        with self._lock:
            start = self._view
            row_ids, photos = start.table.ids[: start.size], start.table.photos[: start.size]
        compact = start.dead > COMPACT_FRACTION * start.size
        if not compact and start.size == start.base:
            return  # nothing left to merge (another merge did it)
        if compact:  # the rows still alive, in a new index of the same kind (trained lists kept)
            keep = np.flatnonzero(start.alive)
            vectors = np.vstack([start.vectors(keep[i : i + EXACT_CHUNK]) for i in range(0, len(keep), EXACT_CHUNK)]
                                or [np.zeros((0, self.dim), np.float32)])
            index = _clone(start.index)
            index.reset()
            if not index.is_trained:
                index.train(training_sample(vectors, index))
        else:  # the delta added to a copy of the main index, by the index's own add
            keep, vectors = np.arange(start.size), start.delta[: start.size - start.base]
            index = _clone(start.index)
        if len(vectors):
            index.add(np.ascontiguousarray(vectors))
        self._set_search_parameters(index)
        with self._lock:
            now = self._view  # writes since the merge began: their rows stay in the delta, their marks stay
            later = np.arange(start.size, now.size)
            delta = np.zeros((max(2 * len(later), DELTA_ROOM), self.dim), np.float32)
            delta[: len(later)] = now.delta[start.size - now.base : now.size - now.base]
            if compact:
                order = np.concatenate([keep, later])
                alive = now.alive[order]
                table = _Rows([now.table.ids[n] for n in order], [now.table.photos[n] for n in order], alive)
                meta = None if now.meta is None else now.meta.taken(order)
                self._view = _View(index, table, len(keep), len(order), delta, alive, int((~alive).sum()), meta,
                                   now.generation, now.products)
            else:
                self._view = replace(now, index=index, base=start.size, delta=delta)
        if self.checkpoint_dir is not None:
            self._checkpoint(index, [row_ids[n] for n in keep], [photos[n] for n in keep],
                             np.flatnonzero(~start.alive[keep]), start.generation)

    def _checkpoint(self, index: faiss.Index, ids: list[str], photos: list[int], deleted: np.ndarray,
                    generation: int) -> None:
        """Save a merged state as the index file, unless the file there is newer (another publication)."""
        assert self.checkpoint_dir is not None
        try:
            header, _ = read_file(self.checkpoint_dir / INDEX_FILE, payload=False)
            if int(header.get("generation", 0)) > generation:
                return
        except IndexFormatError:
            pass
        self._write(self.checkpoint_dir, index, ids, photos, deleted, generation)

    # search ---------------------------------------------------------------------------------------------
    def stored_metadata(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The metadata copy this generation was published with, for the ids it has."""
        view = self._view
        if view.meta is None:
            return {}
        positions = ((item_id, self._first_row(view, item_id)) for item_id in ids)
        return {item_id: view.meta.row(p) for item_id, p in positions if p is not None}

    def _first_row(self, view: _View, item_id: str) -> int | None:
        for n in view.table.of.get(item_id, ()):
            if n < view.size and view.alive[n]:
                return n
        return None

    def stored_values(self, column: str) -> set[str] | None:
        return None if self._view.meta is None else self._view.meta.values(column)

    def stored_vectors(self, ids: Sequence[str]) -> np.ndarray | None:
        """The vectors of ``ids`` (their first photos) from the index itself; None when one is missing or the index
        kind cannot give its vectors back."""
        view = self._view
        positions = [self._first_row(view, i) for i in ids]
        if any(p is None for p in positions):
            return None
        try:
            return view.vectors(np.asarray(positions, dtype=np.int64))
        except RuntimeError:  # an index kind that cannot give its vectors back
            return None

    def search(
        self, queries: np.ndarray, k: int, filters: Filters | None = None, exclude: set[str] | None = None
    ) -> list[list[Hit]]:
        """Top-k by cosine over the main index and the delta; filters (and removed rows) become a FAISS IDSelector
        so they act inside the search."""
        view = self._view
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        exclude = exclude or set()
        mask = view.meta.mask(filters) if (filters and view.meta is not None) else None
        if view.dead:
            mask = view.alive.copy() if mask is None else mask & view.alive
        if mask is not None and exclude:
            mask = mask.copy()
            for item_id in exclude:
                mask[[n for n in view.table.of.get(item_id, ()) if n < view.size]] = False
            exclude = set()
        products = view.products
        if mask is not None and not mask.any():
            return [[] for _ in range(len(queries))]
        fetch = min((k + len(exclude)) * view.table.most_photos, view.size)
        if fetch <= 0 or not products:
            return [[] for _ in range(len(queries))]
        flat = isinstance(view.index, faiss.IndexFlat)
        if mask is not None and not flat and mask.sum() <= 4 * fetch + 1000:
            return self._exact_subset(view, queries, np.flatnonzero(mask), min(k, products))
        main_mask = None if mask is None else mask[: view.base]
        hits = [[] for _ in range(len(queries))] if not view.base else \
            self._search_main(view, queries, min(fetch, view.base), main_mask, k, exclude)
        if view.size > view.base:  # the delta, exactly, merged with the main index's hits
            rows = np.arange(view.base, view.size)
            if mask is not None:
                rows = rows[mask[view.base :]]
            if len(rows):
                found = self._exact_subset(view, queries, rows, min(k + len(exclude), len(rows)))
                hits = [self._merged(a, b, k, exclude) for a, b in zip(hits, found)]
        short = [n for n, row in enumerate(hits) if len(row) < min(k, products)]
        if short and not flat:
            # An approximate index can come back short (IVF probes only a few lists, HNSW stops early): answer
            # those rows exactly, so a query always gets min(k, allowed) results.
            allowed = np.flatnonzero(mask) if mask is not None else np.arange(view.size)
            if exclude:
                allowed = allowed[[view.table.ids[p] not in exclude for p in allowed]]
            for n, row in zip(short, self._exact_subset(view, queries[short], allowed, min(k, len(allowed)))):
                hits[n] = row
        return hits

    def _search_main(self, view: _View, queries: np.ndarray, fetch: int, mask: np.ndarray | None, k: int,
                     exclude: set[str]) -> list[list[Hit]]:
        selector, bits = None, None
        if mask is not None:
            bits = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
        scores, positions = view.index.search(queries, fetch, params=search_params(view.index, selector))
        if view.index.metric_type == faiss.METRIC_L2:  # unit vectors: squared L2 distance -> cosine
            scores = 1.0 - scores / 2.0
        del bits  # the selector points into this buffer; it was alive for the whole search
        return [self._hits(view, s, p, k, exclude) for s, p in zip(scores, positions)]

    @staticmethod
    def _merged(a: list[Hit], b: list[Hit], k: int, exclude: set[str]) -> list[Hit]:
        """Two hit lists as one, best first, each product once (a product's rows are all in one part)."""
        out: list[Hit] = []
        seen: set[str] = set()
        for hit in sorted(a + b, key=lambda h: -h.score):
            if hit.id not in seen and hit.id not in exclude:
                seen.add(hit.id)
                out.append(hit)
        return out[:k]

    def _exact_subset(self, view: _View, queries: np.ndarray, positions: np.ndarray, fetch: int) -> list[list[Hit]]:
        """Score the allowed vectors exactly: for very selective filters on an ANN index, the delta, and to complete
        a short approximate answer. Chunked, so memory stays bounded however many vectors are allowed. ``fetch``
        counts products (their best photo each)."""
        products = fetch
        fetch = min(fetch * view.table.most_photos, len(positions))
        best_scores = np.empty((len(queries), 0), dtype=np.float32)
        best_positions = np.empty((len(queries), 0), dtype=np.int64)
        for start in range(0, len(positions), EXACT_CHUNK):
            chunk = np.asarray(positions[start : start + EXACT_CHUNK], dtype=np.int64)
            sims = queries @ view.vectors(chunk).T
            scores = np.hstack([best_scores, sims])
            candidates = np.hstack([best_positions, np.broadcast_to(chunk, sims.shape)])
            order = np.argsort(-scores, axis=1, kind="stable")[:, :fetch]
            best_scores = np.take_along_axis(scores, order, 1)
            best_positions = np.take_along_axis(candidates, order, 1)
        return [self._hits(view, s, p, products, set()) for s, p in zip(best_scores, best_positions)]

    @staticmethod
    def _hits(view: _View, scores: np.ndarray, positions: np.ndarray, k: int, exclude: set[str]) -> list[Hit]:
        hits: list[Hit] = []
        seen: set[str] = set()
        for score, pos in zip(scores, positions):
            if pos < 0:
                continue
            item_id = view.table.ids[int(pos)]
            if item_id in exclude or item_id in seen:
                continue
            seen.add(item_id)
            hits.append(Hit(item_id, float(score), view.table.photos[int(pos)]))
            if len(hits) == k:
                break
        return hits


class _Pinned(FaissStore):
    """A store's state at one moment (:meth:`FaissStore.snapshot`): searched, never written."""

    def upsert(self, item_id: str, vectors: np.ndarray, metadata: Mapping[str, str], *,
               generation: int | None = None) -> None:
        raise TypeError("a pinned snapshot of a store is read-only")

    def remove(self, item_id: str, *, generation: int | None = None) -> bool:
        raise TypeError("a pinned snapshot of a store is read-only")

    def snapshot(self) -> FaissStore:
        return self


def read_file(path: Path, *, payload: bool = True) -> tuple[dict[str, Any], bytes]:
    """The header of an index file and its payload (checked against the header's checksum)."""
    if not path.is_file():
        raise IndexFormatError(f"no vector index in {path.parent} (missing {INDEX_FILE}); run `fashionrec index`")
    with path.open("rb") as f:
        head = f.read(len(MAGIC) + 8)
        if not head.startswith(MAGIC) or len(head) < len(MAGIC) + 8:
            raise IndexFormatError(f"{path} is not a fashionrec FAISS index")
        (header_len,) = struct.unpack_from("<Q", head, len(MAGIC))
        raw = f.read(header_len)
        data = f.read() if payload else b""
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise IndexFormatError(f"{path}: damaged header") from None
    if not isinstance(header, dict) or header.get("format_version") not in (FORMAT_VERSION, DELETED_FORMAT_VERSION):
        raise IndexFormatError(
            f"{path}: format version {header.get('format_version') if isinstance(header, dict) else '?'}, "
            f"this fashionrec reads {FORMAT_VERSION} and {DELETED_FORMAT_VERSION}; re-run `fashionrec index`"
        )
    if payload and hashlib.sha256(data).hexdigest() != header.get("payload_sha256"):
        raise IndexFormatError(f"{path}: checksum mismatch (file corrupt or truncated); re-run `fashionrec index`")
    return header, data
