"""Measure recommendation quality: ranking metrics by the index's label (fashionrec.columns: Myntra's articleType,
a shop's category), agreement on its other recorded columns, latency.

Protocols (a query product is never in the index it is judged against, unless leave-one-out says so):

* ``holdout`` (default for catalogue queries): the queries are the products the head was NOT trained on (ids
  stored in ``head.npz``); they are removed from the searched set, so they are judged against the other 90%.
* ``leave-one-out``: every product (or a seeded sample) queries the whole index with itself excluded from its
  own results. Said explicitly in the report, because the rest of the index was seen in training.
* ``photos``: a folder per class plus a mapping class -> relevant values of the label; the photos query the
  whole index.

A result is relevant when its label is in the query's relevant set. Precision@k, mAP@10 (average precision over
the top 10, normalised by min(10, relevant items in the index)) and binary nDCG@10 are averaged over queries;
catalogue queries also get the share of results agreeing on the recorded auxiliary labels and colour (for Myntra:
subCategory, gender, baseColour). An index without a usable label is an error, never a table of zeros.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fashionrec.errors import FashionrecError
from fashionrec.filters import MetadataColumns
from fashionrec.head import Head, project
from fashionrec.index import Index
from fashionrec.publish import published_manifest
from fashionrec.query import QueryEncoder
from fashionrec.recommend import Recommender, Result
from fashionrec.stores.faiss_store import FaissStore

K_VALUES = (1, 5, 10)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}


@dataclass
class Query:
    """One query: what it is called, its vector, which label values are relevant, what it is grouped under."""

    name: str
    vector: np.ndarray
    relevant: frozenset[str]
    group: str
    metadata: dict[str, str] = field(default_factory=dict)
    exclude: str | None = None  # its own id, never among its results
    embed_ms: float = 0.0  # time to decode and embed the query image, counted in its latency


def ranking_metrics(relevant: Sequence[bool], n_relevant: int) -> dict[str, float]:
    """P@1/5/10, hit@5, AP@10 and nDCG@10 of one ranked list of relevance flags."""
    rel = np.asarray(relevant[:10], dtype=float)
    out = {f"P@{k}": float(rel[:k].sum() / k) for k in K_VALUES}
    out["hit@5"] = float(rel[:5].any())
    ideal = min(10, n_relevant)
    precisions = np.cumsum(rel) / np.arange(1, len(rel) + 1)
    out["mAP@10"] = float((precisions * rel).sum() / ideal) if ideal else 0.0
    gains = rel / np.log2(np.arange(2, len(rel) + 2))
    ideal_dcg = (1 / np.log2(np.arange(2, ideal + 2))).sum()
    out["nDCG@10"] = float(gains.sum() / ideal_dcg) if ideal else 0.0
    return out


def searchable_subset(rec: Recommender, keep: set[str] | None, head: Head | None) -> Recommender:
    """A Recommender over an exact in-memory index of the kept products (all when ``keep`` is None), in the
    space of ``head`` (raw backbone features when None), sharing the open database and model."""
    ids, features = rec.db.vectors(rec.manifest.dim)
    rows = [n for n, i in enumerate(ids) if keep is None or i in keep]
    vectors = project(features[rows], head)
    kept = [ids[n] for n in rows]
    items = rec.db.get_many(kept)
    store = FaissStore.of(kept, vectors, published_manifest(rec.manifest, head), "flat",
                          MetadataColumns(rec.columns, [items[i].metadata for i in kept]))
    return Recommender(Index(rec.path, rec.db, rec.manifest, head, store), rec.embedder, rec.ranking)


def searched_ids(rec: Recommender) -> list[str]:
    """The ids ``rec`` searches, in store order: evaluation runs over the index's FAISS file (or a subset of it)."""
    if not isinstance(rec.store, FaissStore):
        raise FashionrecError("evaluation searches the index's FAISS file; open the index without another store")
    return list(rec.store.ids)


def label_of(rec: Recommender, label: str | None = None) -> str:
    """The column evaluation judges by: ``label``, else the index's recorded label; one clear error when the index
    has none, or ``label`` is not one of its columns."""
    label = label or rec.roles.require_label(f"index in {rec.path}")
    if label not in rec.columns:
        raise FashionrecError(f"label {label!r} is not a column of the index in {rec.path}; columns: "
                              f"{', '.join(rec.columns) or '(none)'}")
    return label


def catalogue_queries(rec: Recommender, ids: Sequence[str], head: Head | None, label: str | None = None) -> list[Query]:
    """Queries from products already in the index: their stored backbone features, their own value of ``label``
    (default: the index's label column)."""
    label = label_of(rec, label)
    items = rec.db.get_many(ids)
    vectors = project(rec.db.stacked_vectors(ids), head)
    return [
        Query(i, v, frozenset([items[i].metadata.get(label, "")]), items[i].metadata.get(label, ""),
              items[i].metadata, exclude=i)
        for i, v in zip(ids, vectors)
    ]


def photo_queries(rec: Recommender, folder: Path, mapping: Mapping[str, Sequence[str]], head: Head | None,
                  progress: bool = True, localise: bool | None = None) -> list[Query]:
    """Queries from a folder per class (``folder/<class>/*.jpg``), embedded one by one like a shopper's photo;
    cropped to the garment first when ``localise`` (None: as ``rec.localise`` says)."""
    photos = sorted(p for cls in mapping for p in (folder / cls).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise FashionrecError(f"no photos under {folder}/<class>/ for the classes of the mapping")
    encoder = QueryEncoder(rec.embedder, head, localise=rec.localise if localise is None else localise)
    queries = []
    for photo in tqdm(photos, desc="embedding photos", unit="img", disable=not progress):
        started = time.perf_counter()
        vector = encoder.encode([photo])[0]
        queries.append(Query(f"{photo.parent.name}/{photo.name}", vector, frozenset(mapping[photo.parent.name]),
                             photo.parent.name, embed_ms=(time.perf_counter() - started) * 1000))
    return queries


def evaluate(
    rec: Recommender, queries: Sequence[Query], *, prefer_columns: Sequence[str] = (), progress: bool = True,
    label: str | None = None,
) -> dict[str, Any]:
    """Run every query through ``rec`` (one call each, so latency is a real per-query latency) and aggregate; a
    result is relevant when its ``label`` (default: the index's label column) is in the query's relevant set.

    With ``prefer_columns`` the query's own values of those columns are soft preferences (hybrid ranking). An
    answer that could only be zeros is an error instead: no searched product has a value of the label, or, for
    catalogue queries, no two products share one."""
    label = label_of(rec, label)
    searched = searched_ids(rec)
    totals = Counter(item.metadata.get(label, "") for item in rec.db.get_many(searched).values())
    totals.pop("", None)
    if not totals:
        raise FashionrecError(f"no searched product of the index in {rec.path} has a value of its label {label!r}: "
                              "nothing to measure; name the label with `fashionrec index --label COLUMN`")
    if any(q.exclude for q in queries) and max(totals.values()) < 2:
        raise FashionrecError(f"no two products of the index in {rec.path} share a value of its label {label!r}, so "
                              "no catalogue query has a relevant answer; name another label with --label COLUMN")
    roles = rec.roles
    searched_set = set(searched)
    per_query: list[dict[str, float]] = []
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    latencies = []
    for q in tqdm(queries, desc="querying", unit="q", disable=not progress):
        prefer = {c: q.metadata[c] for c in prefer_columns if q.metadata.get(c)}
        started = time.perf_counter()
        results = rec.recommend_vectors(q.vector[None, :], 10, exclude={q.exclude} if q.exclude else None,
                                        prefer=prefer)[0]
        latencies.append((time.perf_counter() - started) * 1000 + q.embed_ms)
        searched_itself = q.exclude is not None and q.exclude in searched_set  # leave-one-out
        n_relevant = sum(totals[a] for a in q.relevant) - (searched_itself and q.group in q.relevant)
        row = ranking_metrics([r.metadata.get(label) in q.relevant for r in results], n_relevant)
        row.update(_agreement(q, results, label, roles.agreement_columns, roles.colour))
        per_query.append(row)
        groups[q.group].append(row)
    return {
        "label": label,
        "queries": len(queries),
        "searched": len(rec.store),
        "metrics": _mean(per_query),
        "latency_ms": {f"p{p}": round(float(np.percentile(latencies, p)), 3) for p in (50, 90, 99)} if latencies else {},
        "groups": {g: {"queries": len(rows), **_mean(rows)} for g, rows in sorted(groups.items())},
    }


def _agreement(q: Query, results: Sequence[Result], label: str, columns: Sequence[str],
               colour: str | None) -> dict[str, float]:
    """Share of the top 5 agreeing with the query on each of ``columns``; ``P@5_type_colour``: a result counts when
    both its ``label`` is relevant and its ``colour`` is the query's (catalogue queries, which have a colour)."""
    top = results[:5]
    out = {
        f"agree_{c}@5": sum(r.metadata.get(c) == q.metadata[c] for r in top) / max(len(top), 1)
        for c in columns if q.metadata.get(c)
    }
    if colour and q.metadata.get(colour):
        out["P@5_type_colour"] = sum(r.metadata.get(label) in q.relevant
                                     and r.metadata.get(colour) == q.metadata[colour] for r in top) / 5
    return out


def _mean(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    keys = sorted({k for r in rows for k in r})
    return {k: round(float(np.mean([r[k] for r in rows if k in r])), 4) for k in keys}
