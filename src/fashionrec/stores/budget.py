"""The index kind chosen by a memory and recall budget, its search parameter tuned on a sample, both recorded.

``fashionrec index --max-index-memory 512MB --target-recall 0.95`` (or :func:`build_within_budget`):

1. :func:`candidates` lists the kinds whose estimated size (:func:`estimate_bytes`) fits the memory budget, fastest
   first for the catalogue's size and dimension (exact search for small catalogues, HNSW up to
   ``HNSW_MAX_ITEMS``, then the compact "ivfpqfs" for embeddings of at most 256 dimensions, "pcaivfsq" above that,
   then "ivfsq", HNSW and exact search as the larger fallbacks).
2. The first candidate is built; its recall@10 is measured on a seeded sample of the indexed vectors used as
   queries (each one's 10 nearest *other* products, as "more like this" asks, against exact search on the same
   float32 vectors), and the search parameter (nprobe, then k_factor for the re-ranked kinds; efSearch for HNSW)
   is raised from small to large until the target is met (:func:`tune`).
3. If the largest setting misses the target, or the serialised index exceeds the budget, the next candidate is
   built. Exact search meets every target.

What was chosen is recorded in the index file's header (:attr:`FaissStore.build`, shown by ``fashionrec info``):
kind, FAISS factory string, search parameters, target and measured recall, sample size, bytes and bytes per
product, the budget, and every kind tried, as autofaiss records ``index_infos``.

The sample queries are catalogue vectors, so the measured recall is that of catalogue-like queries: shoppers'
photos can lie farther from every product, where graph and IVF searches miss more (see docs/performance.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from fashionrec.errors import FashionrecError
from fashionrec.stores import faiss_store as fs

K = 10
SAMPLE = 1000
NPROBES = (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256)
EF_SEARCHES = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
K_FACTORS = {"ivfpqfs": (fs.PQFS_K_FACTOR, 2 * fs.PQFS_K_FACTOR, 4 * fs.PQFS_K_FACTOR),
             "pcaivfsq": (fs.REFINE_K_FACTOR, 2 * fs.REFINE_K_FACTOR, 4 * fs.REFINE_K_FACTOR)}
UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


@dataclass(frozen=True)
class Budget:
    """What the index may cost (bytes of the serialised index; 0: no limit) and must find (recall@10; 0: keep
    the kind's default search parameters, only measure)."""

    max_index_memory: int = 0
    target_recall: float = 0.0

    def __post_init__(self) -> None:
        if self.max_index_memory < 0:
            raise FashionrecError(f"max_index_memory must be positive, got {self.max_index_memory}")
        if not 0.0 <= self.target_recall <= 1.0:
            raise FashionrecError(f"target_recall must be between 0 and 1, got {self.target_recall}")

    @property
    def active(self) -> bool:
        return bool(self.max_index_memory or self.target_recall)

    def to_dict(self) -> dict[str, Any]:
        return {"max_index_memory": self.max_index_memory, "target_recall": self.target_recall}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Budget:
        return cls(int(data.get("max_index_memory", 0)), float(data.get("target_recall", 0.0)))


def parse_size(text: str) -> int:
    """Bytes from "512MB", "1.5GiB", "300000000" (decimal units kB/MB/GB, binary KiB/MiB/GiB)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in UNITS:
        raise FashionrecError(f"max_index_memory must be a size such as 512MB, 2GiB or 300000000, got {text!r}")
    size = int(float(match.group(1)) * UNITS[match.group(2).lower()])
    if size <= 0:
        raise FashionrecError(f"max_index_memory must be positive, got {text!r}")
    return size


def parse_recall(text: str) -> float:
    """A recall@10 target: a number above 0 and at most 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise FashionrecError(f"target_recall must be a number above 0 and at most 1, got {text!r}")
    return value


def estimate_bytes(kind: str, n: int, dim: int) -> int:
    """Estimated serialised size of an index of ``kind`` over ``n`` vectors of ``dim`` dimensions: codes, ids and
    links per vector plus the trained tables (IVF centroids, PCA matrix)."""
    ids = 8  # IVF lists store one 64-bit id per vector
    if kind == "flat":
        return 4 * dim * n
    if kind == "hnsw":  # float32 vectors, 2M level-0 links, about 1/M of the vectors on the upper levels
        return n * (4 * dim + 2 * fs.HNSW_M * 4 + fs.HNSW_M * 4 // 4 + 16)
    if kind == "ivf":
        return n * (4 * dim + ids) + fs.ivf_nlist(n) * dim * 4
    nlist = int(fs.ivfsq_factory(n, dim).split(",")[0][3:])
    if kind == "ivfsq":
        return n * (dim + ids) + nlist * dim * 4 + 2 * dim * 4
    if kind == "ivfpqfs":  # 4-bit codes padded to blocks of 32 per list, plus the SQ8 copy
        return n * (dim // 2 + dim + ids) + nlist * (16 * dim + dim * 4) + dim * 16 * 4
    if kind == "pcaivfsq":
        reduced = fs.pca_dim(dim)
        nlist = int(fs.ivfsq_factory(n, reduced).split(",")[0][3:])
        return n * (reduced + ids + dim) + nlist * reduced * 4 + dim * reduced * 4
    raise ValueError(f"unknown index kind {kind!r}")


def candidates(n: int, dim: int, max_memory: int = 0) -> list[str]:
    """Kinds to try, fastest first, that fit ``max_memory`` bytes (0: any size); empty when none fits."""
    if n < fs.AUTO_FLAT_MAX_ITEMS:
        order = ["flat", "hnsw", "ivfpqfs", "ivfsq"]
    elif n < fs.HNSW_MAX_ITEMS:
        order = ["hnsw", "ivfpqfs", "ivfsq", "flat"]
    elif dim <= fs.PCA_DIM:
        order = ["ivfpqfs", "ivfsq", "hnsw", "flat"]
    else:
        order = ["pcaivfsq", "ivfsq", "ivfpqfs", "hnsw", "flat"]
    if n < fs.IVFSQ_MIN_ITEMS:
        order = ["flat"]
    return [kind for kind in order if not max_memory or estimate_bytes(kind, n, dim) <= max_memory]


def choose_kind(n: int, dim: int, max_memory: int = 0, target_recall: float = 0.0) -> str:
    """The first kind to build for this budget (the fallbacks are in :func:`candidates`); ``target_recall``
    1.0 asks for exact search."""
    fitting = candidates(n, dim, max_memory)
    if target_recall >= 1.0:
        fitting = [kind for kind in fitting if kind == "flat"]
    if not fitting:
        smallest = min(("ivfpqfs", "ivfsq", "flat") if target_recall < 1.0 else ("flat",),
                       key=lambda kind: estimate_bytes(kind, n, dim))
        raise FashionrecError(
            f"no index kind fits {max_memory:,} bytes for {n:,} vectors of {dim} dimensions"
            + (" at recall 1.0 (exact search)" if target_recall >= 1.0 else "")
            + f"; the smallest, {smallest}, needs about {estimate_bytes(smallest, n, dim):,}"
        )
    return fitting[0]


def sample_truth(vectors: np.ndarray, sample: int = SAMPLE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of row numbers and, for each, its ``K`` nearest other rows by exact inner product."""
    n = len(vectors)
    rows = np.sort(np.random.default_rng(seed).choice(n, min(sample, n), replace=False))
    k = min(K, n - 1)
    _, found = faiss.knn(np.ascontiguousarray(vectors[rows]), vectors, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    return rows, _without_self(found, rows, k)


def _without_self(found: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for n, (row, hits) in enumerate(zip(rows, found)):
        others = hits[(hits != row) & (hits >= 0)][:k]
        out[n, : len(others)] = others
    return out


def recall(index: faiss.Index, queries: np.ndarray, rows: np.ndarray, truth: np.ndarray) -> float:
    """Share of each sample row's exact nearest others that the index finds in its top ``K`` others."""
    k = truth.shape[1]
    if k == 0:
        return 1.0
    _, found = index.search(queries, k + 1)
    found = _without_self(found, rows, k)
    return float(np.mean([len(set(f[f >= 0]) & set(t[t >= 0])) / max(1, int((t >= 0).sum()))
                          for f, t in zip(found, truth)]))


def settings_ladder(index: faiss.Index, kind: str) -> list[dict[str, Any]]:
    """Search settings of an index from cheapest to most thorough."""
    if isinstance(index, faiss.IndexHNSW):
        return [{"efSearch": ef} for ef in EF_SEARCHES]
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return [{}]
    probes = [p for p in NPROBES if p < ivf.nlist] + [ivf.nlist]
    factors = K_FACTORS.get(kind, (0,))
    ladder = [{"nprobe": p, **({"k_factor": factors[0]} if factors[0] else {})} for p in probes]
    ladder += [{"nprobe": probes[-1], "k_factor": f} for f in factors[1:]]
    return ladder


def tune(index: faiss.Index, kind: str, vectors: np.ndarray, target: float, sample: int = SAMPLE,
         seed: int = 0) -> dict[str, Any]:
    """Measure recall@10 on a seeded sample; with a ``target``, set the cheapest search setting that meets it
    (the most thorough one when none does). Returns the settings, the recall, and whether the target was met."""
    rows, truth = sample_truth(vectors, sample, seed)
    queries = np.ascontiguousarray(vectors[rows])
    if not target:
        return {"search": fs.search_settings(index), "recall_at_10": round(recall(index, queries, rows, truth), 4),
                "sample": len(rows), "met": None}
    measured = 0.0
    for settings in settings_ladder(index, kind):
        fs.apply_search_settings(index, settings)
        measured = recall(index, queries, rows, truth)
        if measured >= target:
            break
    return {"search": fs.search_settings(index), "recall_at_10": round(measured, 4), "sample": len(rows),
            "met": measured >= target}


def build_within_budget(vectors: np.ndarray, kind: fs.IndexKind = "auto", budget: Budget | None = None,
                        sample: int = SAMPLE, strict: bool = True) -> tuple[faiss.Index, str, dict[str, Any]]:
    """Build an index over unit ``vectors`` within ``budget``: the kind (``auto``: chosen by the budget, with
    fallbacks; otherwise that kind, checked against the memory budget), its search parameter tuned to the target
    recall, and the record of what was built (for :attr:`FaissStore.build`). Not ``strict`` (a rebuild of a
    given kind under a budget stored earlier): a kind over the memory budget is built anyway, and recorded so."""
    budget = budget or Budget()
    n, dim = vectors.shape
    if kind == "auto" and budget.active:
        choose_kind(n, dim, budget.max_index_memory, budget.target_recall)  # a clear error when nothing fits
        order = candidates(n, dim, budget.max_index_memory)
        if budget.target_recall >= 1.0:
            order = ["flat"]
    else:
        order = [fs.resolve_kind(kind, n, dim)]
        if strict and budget.max_index_memory and estimate_bytes(order[0], n, dim) > budget.max_index_memory:
            raise FashionrecError(
                f"index kind {order[0]} needs about {estimate_bytes(order[0], n, dim):,} bytes for {n:,} vectors, "
                f"over max_index_memory {budget.max_index_memory:,}; use index kind 'auto' to choose by budget"
            )
    tried: list[dict[str, Any]] = []
    for number, candidate in enumerate(order):
        index, resolved = fs.build_index(vectors, candidate)  # type: ignore[arg-type]
        size = int(faiss.serialize_index(index).nbytes)
        result = tune(index, resolved, vectors, budget.target_recall, sample) if n > 1 else \
            {"search": fs.search_settings(index), "recall_at_10": 1.0, "sample": n, "met": True}
        fits = not budget.max_index_memory or size <= budget.max_index_memory or not strict
        record = {"kind": resolved, "factory": fs.describe(resolved, n, dim), **result, "bytes": size,
                  "bytes_per_product": round(size / max(n, 1), 1), "fits": fits}
        tried.append({k: record[k] for k in ("kind", "recall_at_10", "bytes", "met", "fits")})
        if (result["met"] is not False and fits) or number == len(order) - 1:
            if not fits:
                raise FashionrecError(f"no index kind fits max_index_memory {budget.max_index_memory:,} bytes "
                                      f"for {n:,} vectors (the last tried, {resolved}, took {size:,})")
            record.pop("fits")
            return index, resolved, {**record, "vectors": n, "dim": dim, "budget": budget.to_dict(), "tried": tried}
        del index
    raise AssertionError("unreachable")
