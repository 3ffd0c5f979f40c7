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
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from fashionrec.atomic import write_atomically
from fashionrec.errors import IndexFormatError
from fashionrec.filters import Filters, MetadataColumns
from fashionrec.manifest import Manifest
from fashionrec.stores.base import Hit

MAGIC = b"FASHIONREC-FAISS"
FORMAT_VERSION = 1
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


@dataclass
class FaissStore:
    """A loaded FAISS index, its ids, and the metadata columns used for filtering."""

    index: faiss.Index
    ids: list[str]
    kind: str
    model: Manifest | None
    """What made the vectors (None: unknown, e.g. vectors built in memory for an evaluation)."""
    meta: MetadataColumns | None = None
    generation: int = 0
    """The database generation (CatalogDB.generation) these vectors were published from."""
    photos: list[int] | None = None
    """Which photo of its product each row is, when some product has several (rows of one product are then
    found once, by their best photo); None: one row per product."""
    build: dict[str, Any] | None = None
    """What was built and measured (fashionrec.stores.budget): factory string, search parameters, recall@10 on a
    sample, bytes, the budget; search parameters tuned to a target recall are set again on every load."""

    @classmethod
    def of(cls, ids: list[str], vectors: np.ndarray, model: Manifest | None, kind: IndexKind = "auto",
           meta: MetadataColumns | None = None) -> FaissStore:
        """A store of ``vectors`` (unit rows, in ``ids`` order) built in memory with ``kind``."""
        index, resolved = build_index(vectors, kind)
        return cls(index=index, ids=ids, kind=resolved, model=model, meta=meta)

    def __post_init__(self) -> None:
        self.dim = int(self.index.d)
        self._index_rows()
        self._set_search_parameters()

    def _set_search_parameters(self) -> None:
        if isinstance(self.index, faiss.IndexHNSW):
            self.index.hnsw.efSearch = HNSW_EF_SEARCH
        if isinstance(self.index, faiss.IndexIVF):
            self.index.make_direct_map()  # _exact_subset reconstructs vectors by position; IVF needs this map for it
        if self.build and (self.build.get("budget") or {}).get("target_recall"):
            apply_search_settings(self.index, self.build.get("search") or {})

    def __len__(self) -> int:
        return len(self._rows) if self._rows is not None else len(self.ids)

    def _index_rows(self) -> None:
        """Row lookups: the first row of each product, and every row of it when products have several."""
        if self.photos is not None and not any(self.photos):
            self.photos = None
        self._position: dict[str, int] = {}
        for n, item_id in enumerate(self.ids):
            self._position.setdefault(item_id, n)
        self._rows: dict[str, list[int]] | None = None
        self._most_photos = 1
        if self.photos is not None:
            self._rows = {}
            for n, item_id in enumerate(self.ids):
                self._rows.setdefault(item_id, []).append(n)
            self._most_photos = max(len(rows) for rows in self._rows.values())

    def rows_of(self, item_id: str) -> list[int]:
        """Every row of a product (one per photo)."""
        if self._rows is not None:
            return self._rows.get(item_id, [])
        pos = self._position.get(item_id)
        return [] if pos is None else [pos]

    # persistence ----------------------------------------------------------------------------------------
    def save(self, index_dir: Path) -> Path:
        """Write atomically: temp file in the same folder, fsync, rename."""
        payload = faiss.serialize_index(self.index).tobytes()
        header = json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "kind": self.kind,
                "dim": self.dim,
                "count": len(self.ids),
                "model": None if self.model is None else self.model.to_dict(),
                "ids": self.ids,
                "generation": self.generation,
                **({} if self.photos is None else {"photos": self.photos}),
                **({} if self.build is None else {"build": self.build}),
                "payload_sha256": hashlib.sha256(payload).hexdigest(),
            }
        ).encode()
        return write_atomically(Path(index_dir) / INDEX_FILE, MAGIC + struct.pack("<Q", len(header)) + header, payload)

    @classmethod
    def load(cls, index_dir: Path) -> FaissStore:
        """Read and verify an index file; any damage is an IndexFormatError, never a crash."""
        path = Path(index_dir) / INDEX_FILE
        if not path.is_file():
            raise IndexFormatError(f"no vector index in {index_dir} (missing {INDEX_FILE}); run `fashionrec index`")
        data = path.read_bytes()
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
            raise IndexFormatError(f"{path} is not a fashionrec FAISS index")
        (header_len,) = struct.unpack_from("<Q", data, len(MAGIC))
        start = len(MAGIC) + 8
        try:
            header = json.loads(data[start : start + header_len])
        except (ValueError, UnicodeDecodeError):
            raise IndexFormatError(f"{path}: damaged header") from None
        if not isinstance(header, dict) or header.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"{path}: format version {header.get('format_version') if isinstance(header, dict) else '?'}, "
                f"this fashionrec reads {FORMAT_VERSION}; re-run `fashionrec index`"
            )
        payload = data[start + header_len :]
        if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
            raise IndexFormatError(f"{path}: checksum mismatch (file corrupt or truncated); re-run `fashionrec index`")
        try:  # a checksum only proves the file is intact, not that a foreign writer produced valid content
            index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
            ids, kind = [str(i) for i in header["ids"]], str(header["kind"])
            model = Manifest.from_dict(header["model"], str(path)) if header["model"] else None
            generation = int(header.get("generation", 0))
            photos = None if header.get("photos") is None else [int(n) for n in header["photos"]]
            build = header.get("build")
            if build is not None and not isinstance(build, dict):
                raise TypeError("build record is not an object")
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{path}: unreadable index content ({exc}); re-run `fashionrec index`") from None
        if index.ntotal != len(ids) or (photos is not None and len(photos) != len(ids)):
            raise IndexFormatError(f"{path}: {index.ntotal} vectors but {len(ids)} ids")
        return cls(index=index, ids=ids, kind=kind, model=model, generation=generation, photos=photos, build=build)

    # changes one product at a time (the items API) ------------------------------------------------------
    def upsert(self, item_id: str, vectors: np.ndarray, metadata: dict[str, str]) -> None:
        """Add a product's vectors (one unit row per photo, in the searched space), replacing any it had.

        Exact ("flat") indexes add and remove in place; the other kinds cannot remove a vector (HNSW) or would
        put it in lists trained without it, so they are rebuilt from the vectors they hold (seconds at 100k)."""
        self.remove(item_id)
        rows = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if isinstance(self.index, faiss.IndexFlat):
            self.index.add(rows)
        else:
            held = self.index.reconstruct_n(0, self.index.ntotal) if self.index.ntotal else rows[:0]
            self.index, self.kind = build_index(np.vstack([held, rows]), self.kind)  # type: ignore[arg-type]
            self._set_search_parameters()
        if self.photos is None and len(rows) > 1:
            self.photos = [0] * len(self.ids)
        if self.photos is not None:
            self.photos.extend(range(len(rows)))
        self.ids.extend([item_id] * len(rows))
        if self.meta is not None:
            for _ in range(len(rows)):
                self.meta.append(metadata)
        self._index_rows()

    def remove(self, item_id: str) -> bool:
        """Drop a product's vectors; False when the store has none for it."""
        rows = self.rows_of(item_id)
        if not rows:
            return False
        if isinstance(self.index, faiss.IndexFlat):  # later rows move up, in order
            self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(rows, dtype=np.int64)))
        else:
            keep = np.delete(np.arange(self.index.ntotal), rows)
            held = self.index.reconstruct_batch(keep) if len(keep) else np.zeros((0, self.dim), np.float32)
            self.index, self.kind = build_index(held, self.kind)  # type: ignore[arg-type]
            self._set_search_parameters()
        for pos in sorted(rows, reverse=True):
            del self.ids[pos]
            if self.photos is not None:
                del self.photos[pos]
            if self.meta is not None:
                self.meta.delete(pos)
        self._index_rows()
        return True

    def set_metadata(self, item_id: str, metadata: dict[str, str]) -> None:
        """New filter values for a product already in the store."""
        if self.meta is not None:
            for pos in self.rows_of(item_id):
                self.meta.set(pos, metadata)

    # search ---------------------------------------------------------------------------------------------
    def stored_metadata(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The metadata copy this generation was published with, for the ids it has."""
        if self.meta is None:
            return {}
        positions = ((item_id, self._position.get(item_id)) for item_id in ids)
        return {item_id: self.meta.row(p) for item_id, p in positions if p is not None}

    def stored_values(self, column: str) -> set[str] | None:
        return None if self.meta is None else self.meta.values(column)

    def stored_vectors(self, ids: Sequence[str]) -> np.ndarray | None:
        """The vectors of ``ids`` (their first photos) from the index itself; None when one is missing or the index
        kind cannot give its vectors back."""
        positions = [self._position.get(i) for i in ids]
        if any(p is None for p in positions):
            return None
        try:
            return self.index.reconstruct_batch(np.asarray(positions, dtype=np.int64))
        except RuntimeError:  # an index kind that cannot give its vectors back
            return None

    def position(self, item_id: str) -> int | None:
        return self._position.get(item_id)

    def search(
        self, queries: np.ndarray, k: int, filters: Filters | None = None, exclude: set[str] | None = None
    ) -> list[list[Hit]]:
        """Top-k by cosine; filters become a FAISS IDSelector so they act inside the search."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        exclude = exclude or set()
        mask = self.meta.mask(filters) if (filters and self.meta is not None) else None
        if mask is not None and exclude:
            mask = mask.copy()
            for item_id in exclude:
                mask[self.rows_of(item_id)] = False
            exclude = set()
        if mask is not None and not mask.any():
            return [[] for _ in range(len(queries))]
        fetch = min((k + len(exclude)) * self._most_photos, len(self.ids))
        if fetch <= 0:
            return [[] for _ in range(len(queries))]
        if mask is not None and not isinstance(self.index, faiss.IndexFlat) and mask.sum() <= 4 * fetch + 1000:
            return self._exact_subset(queries, np.flatnonzero(mask), min(k, len(self)))
        selector, bits = None, None
        if mask is not None:
            bits = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
        scores, positions = self.index.search(queries, fetch, params=search_params(self.index, selector))
        if self.index.metric_type == faiss.METRIC_L2:  # unit vectors: squared L2 distance -> cosine
            scores = 1.0 - scores / 2.0
        del bits  # the selector points into this buffer; it was alive for the whole search
        hits = [self._hits(s, p, k, exclude) for s, p in zip(scores, positions)]
        short = [n for n, row in enumerate(hits) if len(row) < k]
        if short and not isinstance(self.index, faiss.IndexFlat):
            # An approximate index can come back short (IVF probes only a few lists, HNSW stops early): answer
            # those rows exactly, so a query always gets min(k, allowed) results.
            allowed = np.flatnonzero(mask) if mask is not None else np.arange(len(self.ids))
            if exclude:
                allowed = allowed[[self.ids[p] not in exclude for p in allowed]]
            for n, row in zip(short, self._exact_subset(queries[short], allowed, min(k, len(allowed)))):
                hits[n] = row
        return hits

    def _exact_subset(self, queries: np.ndarray, positions: np.ndarray, fetch: int) -> list[list[Hit]]:
        """Score the allowed vectors exactly: for very selective filters on an ANN index, and to complete a short
        approximate answer. Chunked, so memory stays bounded however many vectors are allowed. ``fetch`` counts
        products (their best photo each)."""
        products = fetch
        fetch = min(fetch * self._most_photos, len(positions))
        best_scores = np.empty((len(queries), 0), dtype=np.float32)
        best_positions = np.empty((len(queries), 0), dtype=np.int64)
        for start in range(0, len(positions), EXACT_CHUNK):
            chunk = np.asarray(positions[start : start + EXACT_CHUNK], dtype=np.int64)
            sims = queries @ self.index.reconstruct_batch(chunk).T
            scores = np.hstack([best_scores, sims])
            candidates = np.hstack([best_positions, np.broadcast_to(chunk, sims.shape)])
            order = np.argsort(-scores, axis=1, kind="stable")[:, :fetch]
            best_scores = np.take_along_axis(scores, order, 1)
            best_positions = np.take_along_axis(candidates, order, 1)
        return [self._hits(s, p, products, set()) for s, p in zip(best_scores, best_positions)]

    def _hits(self, scores: np.ndarray, positions: np.ndarray, k: int, exclude: set[str]) -> list[Hit]:
        hits: list[Hit] = []
        seen: set[str] = set()
        for score, pos in zip(scores, positions):
            if pos < 0:
                continue
            item_id = self.ids[int(pos)]
            if item_id in exclude or item_id in seen:
                continue
            seen.add(item_id)
            hits.append(Hit(item_id, float(score), 0 if self.photos is None else self.photos[int(pos)]))
            if len(hits) == k:
                break
        return hits
