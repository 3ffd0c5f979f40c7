"""Vector search at catalogue scale: 1M synthetic vectors shaped like real embeddings, ANN vs exact search.

    nice -n 5 .venv/bin/python benchmarks/ann_scale.py --base-index INDEX_DIR [--n 1000000] [--dim 1280|256]
        [--kind ivfsq|pcaivfsq] [--nprobe 16,32,64] [--k-factor 2,4,8] [--queries 1000]

Synthetic but not i.i.d.: every vector is a real product embedding from ``--base-index`` (picked at random) plus
noise drawn from the real embeddings' own covariance (their top principal directions, scaled by ``--noise``),
then L2-normalised. The data thus keeps the real neighbour structure (clusters around products, anisotropic
spread) that i.i.d. Gaussian vectors lack. ``--dim 256`` first projects the real vectors on their top 256
principal directions (a stand-in for a trained projection head's smaller output). Queries are fresh draws.

The index is the store's own (:func:`fashionrec.stores.faiss_store.new_index`), trained on a sample and filled
chunk by chunk, so the float32 matrix of all vectors is never held in memory; the exact top-10 of every query is
computed over the same chunks. Reported: train and add time, index size (serialised bytes), process RSS, and per
search setting the single-threaded batch queries/s and recall@10 against exact search. Prints a table, writes
benchmarks/results/ann_scale_<dim>.json.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from _common import machine, peak_rss_mib, print_table, rss_mib, run_main, write_results
from fashionrec.config import env_default
from fashionrec.stores.faiss_store import FaissStore, describe, new_index, training_sample

K = 10
CHUNK = 50_000
NOISE_DIRECTIONS = 128


@dataclass(frozen=True)
class Generator:
    """Draws vectors around real product embeddings with real-shaped noise; chunk ``i`` is a pure function of
    (seed, i), so the same data can be streamed twice without being stored."""

    centres: np.ndarray  # (C, dim) unit rows: real embeddings (projected when dim < theirs)
    noise_basis: np.ndarray  # (r, dim): principal directions scaled by their standard deviation
    noise: float

    @classmethod
    def from_vectors(cls, real: np.ndarray, dim: int, noise: float) -> Generator:
        directions, spread = _principal(real)
        if dim < real.shape[1]:
            real = _unit(real @ directions[:dim].T)
            directions, spread = _principal(real)
        r = min(NOISE_DIRECTIONS, len(spread))
        basis = spread[:r, None] * directions[:r]
        return cls(np.ascontiguousarray(real, dtype=np.float32), basis.astype(np.float32), noise)

    @property
    def dim(self) -> int:
        return int(self.centres.shape[1])

    def draw(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(self.centres), n)
        z = rng.standard_normal((n, len(self.noise_basis)), dtype=np.float32)
        return _unit(self.centres[picks] + self.noise * (z @ self.noise_basis))

    def chunks(self, n: int, seed: int) -> Iterator[np.ndarray]:
        for number, start in enumerate(range(0, n, CHUNK)):
            yield self.draw(min(CHUNK, n - start), seed * 100_003 + number)


def _principal(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal directions (rows, largest first) and standard deviations, from the covariance matrix (an SVD of
    41k x 1280 takes minutes on 2 cores, this takes seconds)."""
    centred = x - x.mean(axis=0)
    variance, vectors = np.linalg.eigh((centred.T @ centred) / len(x))
    order = np.argsort(variance)[::-1]
    return vectors[:, order].T, np.sqrt(np.maximum(variance[order], 0))


def _unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12), dtype=np.float32)


def real_vectors(index_dir: Path) -> np.ndarray:
    """The embeddings of a built index, read from its FAISS file only (the index folder is never written to)."""
    store = FaissStore.load(index_dir)
    return store.index.reconstruct_n(0, len(store))


def merge_top(best: tuple[np.ndarray, np.ndarray], scores: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact running top-K: the best so far merged with one chunk's scores."""
    chunk_top = np.argpartition(-scores, K, axis=1)[:, :K]
    all_scores = np.hstack([best[0], np.take_along_axis(scores, chunk_top, 1)])
    all_ids = np.hstack([best[1], chunk_top + offset])
    order = np.argsort(-all_scores, axis=1)[:, :K]
    return np.take_along_axis(all_scores, order, 1), np.take_along_axis(all_ids, order, 1)


def build(gen: Generator, args: argparse.Namespace, queries: np.ndarray) -> tuple[faiss.Index, str, dict[str, Any],
                                                                                 np.ndarray]:
    """Train on the first chunks, add every chunk; exact ground truth over the same chunks, outside the clock."""
    index, kind = new_index(args.kind, args.n, gen.dim)
    rss_start = rss_mib()
    train_seconds = add_seconds = 0.0
    if not index.is_trained:
        sample = np.vstack([c for _, c in zip(range(4), gen.chunks(args.n, args.seed))])
        sample = training_sample(sample, index)
        start = time.perf_counter()
        index.train(sample)
        train_seconds = time.perf_counter() - start
        del sample
    best = (np.full((len(queries), K), -np.inf, np.float32), np.zeros((len(queries), K), np.int64))
    offset = 0
    for chunk in gen.chunks(args.n, args.seed):
        start = time.perf_counter()
        index.add(chunk)
        add_seconds += time.perf_counter() - start
        best = merge_top(best, queries @ chunk.T, offset)
        offset += len(chunk)
        print(f"\radded {offset:,} / {args.n:,}", end="", flush=True)
    print()
    figures = {"train_s": round(train_seconds, 1), "add_s": round(add_seconds, 1),
               "build_s": round(train_seconds + add_seconds, 1),
               "index_mib": round(faiss.serialize_index(index).nbytes / 2**20, 1),
               "rss_growth_mib": round(rss_mib() - rss_start, 1),
               "float32_mib": round(args.n * gen.dim * 4 / 2**20, 1)}
    return index, kind, figures, best[1]


def sweep(index: faiss.Index, queries: np.ndarray, truth: np.ndarray, nprobes: list[int],
          k_factors: list[int]) -> list[dict[str, Any]]:
    """Single-threaded batch search per setting: queries/s and recall@10 (share of the exact top-10 found).
    ``k_factors`` (candidates re-ranked per result) apply to the kinds with a re-ranking stage."""
    faiss.omp_set_num_threads(1)
    ivf = faiss.try_extract_index_ivf(index)
    refine = isinstance(index, faiss.IndexRefine)
    rows = []
    settings = [(p, f) for p in (nprobes if ivf is not None else [0]) for f in (k_factors if refine else [0])]
    for nprobe, k_factor in settings:
        if ivf is not None:
            ivf.nprobe = nprobe
        if refine:
            index.k_factor = k_factor
        index.search(queries[:50], K)  # warm caches
        start = time.perf_counter()
        _, found = index.search(queries, K)
        seconds = time.perf_counter() - start
        recall = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)])
        rows.append({"nprobe": nprobe or None, "k_factor": k_factor or None, "queries_per_s": round(len(queries) / seconds),
                     "ms_per_query": round(1000 * seconds / len(queries), 3), "recall_at_10": round(float(recall), 4)})
    return rows


def main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-index", type=Path, default=Path(env_default("FASHIONREC_INDEX_DIR")),
                        help="built index whose embeddings shape the synthetic data (env FASHIONREC_INDEX_DIR)")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=0, help="vector dimension (default: the real one)")
    parser.add_argument("--kind", default="ivfsq", help="store index kind: auto, flat, hnsw, ivf, ivfsq, pcaivfsq")
    parser.add_argument("--nprobe", default="8,16,32,64", help="IVF lists probed per query, comma-separated")
    parser.add_argument("--k-factor", default="4", help="re-ranked candidates per result (pcaivfsq), comma-separated")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=0.5, help="noise scale, in standard deviations of the data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="free text stored in the JSON (e.g. machine load)")
    parser.add_argument("--json", action="store_true", help="also print the JSON result to stdout")
    args = parser.parse_args(argv)

    real = real_vectors(args.base_index)
    gen = Generator.from_vectors(real, args.dim or real.shape[1], args.noise)
    queries = gen.draw(args.queries, seed=10**9 + args.seed)
    index, kind, figures, truth = build(gen, args, queries)
    rows = sweep(index, queries, truth, [int(p) for p in args.nprobe.split(",")],
                 [int(f) for f in args.k_factor.split(",")])
    good = [r for r in rows if r["recall_at_10"] >= 0.95]
    data = {"benchmark": "ann_scale", "n": args.n, "dim": gen.dim, "kind": kind,
            "factory": describe(kind, args.n, gen.dim), "real_vectors": len(real), "noise": args.noise,
            "queries": args.queries, **figures, "peak_rss_mib": peak_rss_mib(), "search": rows,
            "best_at_recall_0_95": max(good, key=lambda r: r["queries_per_s"]) if good else None,
            "machine": machine(), "note": args.note}
    print_table(["nprobe", "k_factor", "queries/s (1 thread)", "ms/query", "recall@10"],
                [[r["nprobe"], r["k_factor"], r["queries_per_s"], r["ms_per_query"], r["recall_at_10"]] for r in rows],
                json_mode=args.json)
    print(f"{args.n:,} x {gen.dim} ({kind}): build {figures['build_s']} s (train {figures['train_s']} s), index "
          f"{figures['index_mib']} MiB (float32 would be {figures['float32_mib']} MiB), peak RSS {data['peak_rss_mib']} MiB")
    write_results(f"ann_scale_{gen.dim}" + ("" if kind == "ivfsq" else f"_{kind}"), data, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
