"""The write policy of the FAISS store, measured per index kind (issue 27): what a write costs, what the delta and
the removal marks cost a search, what a background merge and a compaction take, and what the alternatives would
cost (rebuilding the index at each write, the policy before; adding into a live HNSW graph in place, which would
make queries wait while it runs).

    nice -n 5 .venv/bin/python benchmarks/live_merge.py --index-dir INDEX [--label 41k] [--kinds flat,hnsw,ivf,ivfsq]

``INDEX`` is an index directory (its vectors file is read, never written); each kind is built in memory from its
vectors. Per kind: one-query search latency (p50, p99) and recall@10 against exact search over the same live rows,
on the catalogue as published, with a delta of ``MERGE_ROWS`` written rows, and with 5% of the rows removed; the
latency of a write into the store (``upsert``); the time of a merge of that delta and of a compaction (20% removed);
the time to rebuild the index from its vectors; for HNSW, the time of one in-place graph insertion.

Prints the numbers and writes benchmarks/results/live_merge_<label>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from _common import RESULTS_DIR, machine
from fashionrec.stores import faiss_store as fs
from fashionrec.stores.faiss_store import FaissStore, build_index


def timed(fn: Callable[..., object], *args: object) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def pct(values: list[float]) -> dict[str, float]:
    ms = np.array(values) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def probe(store: FaissStore, queries: np.ndarray, live: np.ndarray, ids: np.ndarray) -> dict[str, float]:
    """One query at a time: latency, and recall@10 against exact search over the live vectors ``live``."""
    latencies, recall = [], []
    exact = np.argsort(-(queries @ live.T), axis=1)[:, :10]
    for q, truth in zip(queries, exact):
        t0 = time.perf_counter()
        hits = store.search(q[None, :], 10)[0]
        latencies.append(time.perf_counter() - t0)
        recall.append(len({h.id for h in hits} & set(ids[truth])) / 10)
    return {**pct(latencies), "recall_at_10": round(float(np.mean(recall)), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--label", default="41k")
    parser.add_argument("--kinds", default="flat,hnsw,ivf,ivfsq")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    source = FaissStore.load(args.index_dir)
    n = source.index.ntotal
    vectors = np.ascontiguousarray(source.index.reconstruct_n(0, n))
    ids = np.array(source.ids)
    rng = np.random.default_rng(0)
    noise = rng.normal(scale=0.05, size=vectors.shape).astype(np.float32)
    queries = vectors[rng.choice(n, args.queries, replace=False)] + noise[: args.queries]
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    written = vectors[rng.choice(n, fs.MERGE_ROWS, replace=False)] + noise[-fs.MERGE_ROWS:]
    written /= np.linalg.norm(written, axis=1, keepdims=True)
    results: dict[str, object] = {"machine": machine(), "products": n, "dim": int(vectors.shape[1]),
                                  "merge_rows": fs.MERGE_ROWS, "compact_fraction": fs.COMPACT_FRACTION, "kinds": {}}
    for kind in args.kinds.split(","):
        t0 = time.perf_counter()
        index, resolved = build_index(vectors, kind)  # type: ignore[arg-type]
        rebuild_s = time.perf_counter() - t0
        store = FaissStore(index, list(ids), resolved, None)
        store.merge_rows = 10**9  # merges are timed below, not left to the background
        row: dict[str, object] = {"rebuild_s": round(rebuild_s, 2),
                                  "index_mib": round(len(faiss.serialize_index(index)) / 2**20, 1)}
        row["published"] = probe(store, queries, vectors, ids)
        writes = []
        for m, vector in enumerate(written):
            writes.append(timed(store.upsert, f"new{m}", vector, {}))
        row["upsert"] = pct(writes)
        all_vectors, all_ids = np.vstack([vectors, written]), np.concatenate([ids, [f"new{m}" for m in range(len(written))]])
        row["with_delta"] = probe(store, queries, all_vectors, all_ids)
        row["merge_s"] = round(timed(store.merge), 2)
        row["after_merge"] = probe(store, queries, all_vectors, all_ids)
        gone = rng.choice(n, n // 20, replace=False)
        removes = [timed(store.remove, str(ids[i])) for i in gone]
        row["remove"] = pct(removes)
        keep = np.setdiff1d(np.arange(len(all_ids)), gone)
        row["with_5pct_removed"] = probe(store, queries, all_vectors[keep], all_ids[keep])
        more = np.setdiff1d(np.arange(n), gone)[: n // 5]
        for i in more:
            store.remove(str(ids[i]))
        row["compaction_s"] = round(timed(store.merge), 2)
        keep = np.setdiff1d(keep, more)
        row["after_compaction"] = probe(store, queries, all_vectors[keep], all_ids[keep])
        if resolved == "hnsw":  # the alternative: insert into the live graph (queries would wait meanwhile)
            inserts = []
            for vector in written[:200]:
                inserts.append(timed(index.add, vector[None, :]))
            row["in_place_hnsw_add"] = pct(inserts)
        results["kinds"][resolved] = row  # type: ignore[index]
        print(resolved, json.dumps(row), flush=True)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"live_merge_{args.label}.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
