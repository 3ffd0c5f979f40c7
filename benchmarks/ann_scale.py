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

``--compare`` puts other libraries beside the store's kinds, on the same vectors and queries (held in memory,
as the other libraries need them; ``pip install fashionrec[bench]``)::

    nice -n 10 .venv/bin/python benchmarks/ann_scale.py --compare --base-index INDEX_DIR --n 1000000 --dim 256 \
        [--libraries sklearn,annoy,hnswlib,faiss-hnsw,faiss-ivfsq,faiss-ivfpqfs] [--slow-queries 200]

scikit-learn ``NearestNeighbors(algorithm="brute", metric="cosine")`` (the reference projects' choice), Annoy
(angular; ``--annoy-trees`` forests, search_k swept), hnswlib (inner product on unit vectors, M 16,
ef_construction 100, ef swept) and the store's kinds (search parameter swept). Builds may use every core; every
search runs on one thread (FAISS OpenMP, hnswlib, and the BLAS under scikit-learn limited to 1). Per library:
build time, index bytes per product (serialised FAISS index, saved Annoy / hnswlib file, the float32 matrix
scikit-learn keeps) and, for recall@10 0.90 / 0.95 / 0.99, the fastest measured setting that reaches it (nothing
interpolated; "not reached" otherwise). scikit-learn and Annoy, slow per query, search the first
``--slow-queries`` queries only. Writes benchmarks/results/ann_compare_<n>.json.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from _common import RESULTS_DIR, machine, peak_rss_mib, print_table, rss_mib, run_main, write_results
from fashionrec.config import env_default
from fashionrec.errors import FashionrecError
from fashionrec.stores.faiss_store import FaissStore, apply_search_settings, describe, new_index, training_sample

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
    size = faiss.serialize_index(index).nbytes
    figures = {"train_s": round(train_seconds, 1), "add_s": round(add_seconds, 1),
               "build_s": round(train_seconds + add_seconds, 1),
               "index_mib": round(size / 2**20, 1), "bytes_per_product": round(size / args.n, 1),
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


TARGETS = (0.90, 0.95, 0.99)
REPEATS = 3
LIBRARIES = ("sklearn", "annoy", "hnswlib", "faiss-hnsw", "faiss-ivfsq", "faiss-ivfpqfs")
HNSWLIB_M, HNSWLIB_EF_CONSTRUCTION = 16, 100
SWEEPS = {"faiss-hnsw": [{"efSearch": e} for e in (16, 32, 64, 128, 256)],
          "faiss-ivfsq": [{"nprobe": p} for p in (4, 8, 16, 32, 64, 128)],
          "faiss-ivfpqfs": [{"nprobe": p, "k_factor": f} for p in (4, 6, 8, 12, 16, 24, 32, 48, 64) for f in (4, 8)],
          "hnswlib": [{"ef": e} for e in (10, 20, 40, 80, 160, 320)],
          "annoy": [{"search_k": s} for s in (2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000)]}


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))


def timed_search(search: Any, queries: np.ndarray, truth: np.ndarray, settings: dict[str, Any]) -> dict[str, Any]:
    """One setting: single-threaded queries/s and recall@10 of ``search(queries) -> ids``. The best of up to
    ``REPEATS`` timed runs (fewer when a run takes long): on a machine shared with other jobs the fastest run is
    the one least disturbed by them."""
    search(queries[: min(20, len(queries))])  # warm caches
    times, cpu_times = [], []
    while len(times) < REPEATS and sum(times) < 3.0:
        start, cpu_start = time.perf_counter(), time.thread_time()
        found = search(queries)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.thread_time() - cpu_start)
    seconds = min(times)
    return {**settings, "queries": len(queries), "queries_per_s": round(len(queries) / seconds, 1), "runs": len(times),
            "queries_per_cpu_s": round(len(queries) / max(min(cpu_times), 1e-9), 1),
            "recall_at_10": round(recall_at_10(np.asarray(found), truth[: len(queries)]), 4)}


def best_at_targets(rows: list[dict[str, Any]], key: str = "queries_per_cpu_s") -> dict[str, dict[str, Any] | None]:
    """Per recall target, the fastest measured setting that reaches it (None: not reached). Fastest by CPU time of
    the searching thread by default: on a machine shared with other jobs, wall time also counts the time the
    thread waited for a core; the searches are single-threaded, so their thread's CPU time is their cost."""
    out = {}
    for target in TARGETS:
        good = [r for r in rows if r["recall_at_10"] >= target]
        out[f"{target:.2f}"] = max(good, key=lambda r: r[key]) if good else None
    return out


def compare_library(name: str, data: np.ndarray, queries: np.ndarray, truth: np.ndarray, slow_queries: int,
                    workdir: Path, trees: int = 0) -> dict[str, Any]:
    """Build one library's index over ``data`` (Annoy: a forest of ``trees``), sweep its search setting; figures
    and rows."""
    import hnswlib
    from annoy import AnnoyIndex
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    n, dim = data.shape
    start = time.perf_counter()  # after the imports
    note = ""
    if name == "sklearn":
        model = NearestNeighbors(n_neighbors=K, algorithm="brute", metric="cosine", n_jobs=1).fit(data)
        build_s, size = time.perf_counter() - start, data.nbytes
        note = f"exact; searched the first {slow_queries} queries"

        def runs() -> Iterator[dict[str, Any]]:
            with threadpool_limits(limits=1):
                yield timed_search(lambda q: model.kneighbors(q, return_distance=False), queries[:slow_queries],
                                   truth, {})
    elif name == "annoy":
        index = AnnoyIndex(dim, "angular")
        for i, row in enumerate(data):
            index.add_item(i, row)
        index.build(trees, n_jobs=-1)
        build_s = time.perf_counter() - start
        path = workdir / "annoy.ann"
        index.save(str(path))
        size = path.stat().st_size
        note = f"n_trees {trees}; searched the first {slow_queries} queries"

        def runs() -> Iterator[dict[str, Any]]:
            for settings in SWEEPS["annoy"]:
                yield timed_search(lambda q, s=settings["search_k"]: [index.get_nns_by_vector(v, K, search_k=s)
                                                                     for v in q], queries[:slow_queries], truth,
                                   {"n_trees": trees, **settings})
    elif name == "hnswlib":
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=n, ef_construction=HNSWLIB_EF_CONSTRUCTION, M=HNSWLIB_M, random_seed=0)
        index.add_items(data, np.arange(n), num_threads=-1)
        build_s = time.perf_counter() - start
        path = workdir / "hnswlib.bin"
        index.save_index(str(path))
        size = path.stat().st_size
        index.set_num_threads(1)
        note = f"M {HNSWLIB_M}, ef_construction {HNSWLIB_EF_CONSTRUCTION}"

        def runs() -> Iterator[dict[str, Any]]:
            for settings in SWEEPS["hnswlib"]:
                index.set_ef(max(settings["ef"], K))
                yield timed_search(lambda q: index.knn_query(q, k=K, num_threads=1)[0], queries, truth, settings)
    else:
        kind = name.removeprefix("faiss-")
        index, kind = new_index(kind, n, dim)  # type: ignore[arg-type]
        if not index.is_trained:
            index.train(training_sample(data, index))
        for chunk_start in range(0, n, CHUNK):
            index.add(data[chunk_start : chunk_start + CHUNK])
        build_s = time.perf_counter() - start
        size = faiss.serialize_index(index).nbytes
        note = describe(kind, n, dim)

        def runs() -> Iterator[dict[str, Any]]:
            faiss.omp_set_num_threads(1)
            for settings in SWEEPS[name]:
                apply_search_settings(index, settings)
                yield timed_search(lambda q: index.search(q, K)[1], queries, truth, settings)
    figures = {"library": name, "params": note, "build_s": round(build_s, 1), "index_mib": round(size / 2**20, 1),
               "bytes_per_product": round(size / n, 1)}
    rows = []
    for row in runs():
        rows.append(row)
        print(f"  {name} {row}", flush=True)
    return {**figures, "search": rows, "best": best_at_targets(rows)}


def compare(args: argparse.Namespace, gen: Generator, queries: np.ndarray) -> dict[str, Any]:
    """Every library of ``--libraries`` on the same vectors and queries."""
    data = np.empty((args.n, gen.dim), np.float32)
    best = (np.full((len(queries), K), -np.inf, np.float32), np.zeros((len(queries), K), np.int64))
    offset = 0
    for chunk in gen.chunks(args.n, args.seed):
        data[offset : offset + len(chunk)] = chunk
        best = merge_top(best, queries @ chunk.T, offset)
        offset += len(chunk)
    truth = best[1]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.libraries.split(","):
        if name not in LIBRARIES:
            raise FashionrecError(f"--libraries: unknown {name!r}; choose from {', '.join(LIBRARIES)}")
    for name in args.libraries.split(","):
        for trees in [int(t) for t in args.annoy_trees.split(",")] if name == "annoy" else [0]:
            rss_before = rss_mib()
            print(f"{name}: building", flush=True)
            result = compare_library(name, data, queries, truth, args.slow_queries, workdir, trees)
            result["rss_growth_mib"] = round(rss_mib() - rss_before, 1)
            results.append(result)
            for leftover in workdir.iterdir():
                leftover.unlink()
            gc.collect()
            # written after every library, so a run cut short keeps what it measured
            write_results(f"{compare_name(args)}.partial", summary(args, gen, results), echo=False)
    return summary(args, gen, results)


def compare_name(args: argparse.Namespace) -> str:
    return str(args.name or f"ann_compare_{args.n // 1000}k")


def summary(args: argparse.Namespace, gen: Generator, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"benchmark": "ann_compare", "n": args.n, "dim": gen.dim, "queries": args.queries,
            "slow_queries": args.slow_queries, "noise": args.noise, "targets": list(TARGETS), "results": results,
            "peak_rss_mib": peak_rss_mib(), "machine": machine(), "note": args.note}


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
    parser.add_argument("--name", default="", help="results file name (default: ann_scale_<dim>[_<kind>])")
    parser.add_argument("--note", default="", help="free text stored in the JSON (e.g. machine load)")
    parser.add_argument("--json", action="store_true", help="also print the JSON result to stdout")
    parser.add_argument("--compare", action="store_true", help="other libraries beside the store's kinds")
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help="with --compare: which, comma-separated")
    parser.add_argument("--annoy-trees", default="50,100", help="with --compare: Annoy forests to build")
    parser.add_argument("--slow-queries", type=int, default=200,
                        help="with --compare: queries searched by scikit-learn and Annoy (the first of --queries)")
    parser.add_argument("--workdir", default="/tmp/ann_compare", help="with --compare: where saved indexes go")
    args = parser.parse_args(argv)

    real = real_vectors(args.base_index)
    gen = Generator.from_vectors(real, args.dim or real.shape[1], args.noise)
    queries = gen.draw(args.queries, seed=10**9 + args.seed)
    if args.compare:
        data = compare(args, gen, queries)
        data["real_vectors"] = len(real)
        table = []
        for r in data["results"]:
            cells = [f"{b['queries_per_cpu_s']:,.0f}" if b else "not reached" for b in r["best"].values()]
            table.append([r["library"], r["params"], r["build_s"], r["bytes_per_product"], *cells])
        print_table(["library", "parameters", "build s", "bytes/product", *(f"q/CPU-s @ {t:.2f}" for t in TARGETS)],
                    table, json_mode=args.json)
        write_results(compare_name(args), data, echo=args.json)
        (RESULTS_DIR / f"{compare_name(args)}.partial.json").unlink(missing_ok=True)
        return 0
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
    write_results(args.name or f"ann_scale_{gen.dim}" + ("" if kind == "ivfsq" else f"_{kind}"), data, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
