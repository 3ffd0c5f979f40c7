"""Scale-out benchmark: local vs Ray indexing throughput, and Milvus Lite vs FAISS query latency, side by side.

    nice .venv/bin/python benchmarks/scale_out.py [--products 1000] [--model efficientnet-lite2] [--synthetic 20000]

Indexing: the first N products of the shared catalogue (images read once beforehand, so neither engine pays a
cold disk cache), indexed from scratch by the local engine and by Ray actors on a local Ray instance with every
CPU of this machine. On one machine Ray can only match the local engine (same cores, plus actor and transfer
overhead); the point is that the Ray path runs unchanged on a cluster. Ray's start-up is reported apart, since a
cluster is already running.

Latency: single-query searches (k=10, the query product excluded, as ``similar`` does) against the same SQLite
index published to FAISS (flat, exact) and to Milvus Lite (FLAT, exact), without and with metadata filters;
then the same on a synthetic index of random unit vectors to see how both grow with size. Milvus Lite is an
in-process Python engine meant for tests and trials: its numbers say nothing about a Milvus server's.

Writes benchmarks/results/scale_out.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fashionrec import manifest as manifests
from fashionrec.catalog_db import CatalogDB, open_db
from fashionrec.engines.ray_engine import RayEngine
from fashionrec.filters import MetadataColumns, normalise_filters
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec
from fashionrec.publish import publish_faiss, publish_to_milvus
from fashionrec.stores.base import VectorStore
from fashionrec.stores.milvus_store import MilvusStore

SHARED = Path(os.environ.get("FASHIONREC_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
RESULTS = Path(__file__).resolve().parent / "results" / "scale_out.json"
FILTERS: dict[str, dict[str, list[str]]] = {
    "none": {},
    "gender=Women": {"gender": ["Women"]},
    "gender=Men & articleType=Tshirts,Shirts": {"gender": ["Men"], "articleType": ["Tshirts", "Shirts"]},
}
K = 10


def subset_csv(n: int, target: Path) -> Path:
    """The first ``n`` catalogue rows whose image exists, as a CSV next to nothing (images stay in SHARED)."""
    catalogue = SHARED / "catalogue"
    with (catalogue / "styles.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if (catalogue / "images" / f"{r['id']}.jpg").is_file()][:n]
        fields = reader.fieldnames or []
    with target.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    for r in rows:  # warm the page cache so neither engine pays for cold reads
        (catalogue / "images" / f"{r['id']}.jpg").read_bytes()
    return target


def timed_index(metadata: Path, index_dir: Path, spec: ModelSpec, engine: RayEngine | None) -> dict[str, float]:
    start = time.perf_counter()
    result = index_catalog(SHARED / "catalogue", index_dir, metadata=metadata, model=spec, progress=True, engine=engine)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "embedded": result.embedded,
            "images_per_s": round(result.embedded / seconds, 1)}


def latency_ms(store: VectorStore, queries: np.ndarray, ids: list[str], filters: dict[str, list[str]],
               columns: list[str]) -> dict[str, float]:
    """p50/p95 of one search per query (k=10, the query's own id excluded)."""
    normalised = normalise_filters(filters, columns)
    store.search(queries[:1], K, normalised, {ids[0]})  # warm-up
    times = []
    for vector, item_id in zip(queries, ids):
        start = time.perf_counter()
        store.search(vector[None, :], K, normalised, {item_id})
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 3), "p95_ms": round(float(np.percentile(times, 95)), 3)}


def compare_stores(index_dir: Path, uri: str, n_queries: int) -> dict[str, Any]:
    """Publish one SQLite index to FAISS and to Milvus Lite, then time the same queries on both."""
    with open_db(index_dir) as db:
        model = manifests.read(db)
        ids, vectors = db.vectors(model.dim)
        faiss_store = publish_faiss(db, index_dir, model, "flat")
        items = db.get_many(faiss_store.ids)
        faiss_store.meta = MetadataColumns(db.columns, [items[i].metadata for i in faiss_store.ids])
        start = time.perf_counter()
        publish_to_milvus(db, uri, model, progress=True)
        publish_s = time.perf_counter() - start
        columns = db.columns
    milvus_store = MilvusStore.open(uri)
    picks = np.random.default_rng(0).choice(len(ids), size=min(n_queries, len(ids)), replace=False)
    queries, query_ids = vectors[picks], [ids[i] for i in picks]
    rows = {
        name: {"faiss": latency_ms(faiss_store, queries, query_ids, f, columns),
               "milvus_lite": latency_ms(milvus_store, queries, query_ids, f, columns)}
        for name, f in FILTERS.items()
    }
    pairs = list(zip(faiss_store.search(queries, 5), milvus_store.search(queries, 5)))
    same_ids = np.mean([[h.id for h in a] == [h.id for h in b] for a, b in pairs])
    # Duplicate product images give exactly equal scores, and neither engine orders ties the same way.
    same_scores = np.mean([np.allclose([h.score for h in a], [h.score for h in b], atol=1e-5) for a, b in pairs])
    return {"items": len(ids), "milvus_publish_s": round(publish_s, 2),
            "milvus_publish_rows_per_s": round(len(ids) / publish_s, 1), "top5_agreement": float(same_ids),
            "top5_agreement_up_to_ties": float(same_scores), "latency": rows}


def synthetic_index(index_dir: Path, n: int, dim: int) -> None:
    """Random unit vectors with catalogue-like metadata, for the size trend (no images involved)."""
    genders, types = ["Men", "Women", "Boys", "Girls", "Unisex"], ["Tshirts", "Shirts", "Heels", "Watches", "Jeans"]
    db = CatalogDB(index_dir, create=True)
    try:
        db.set_setting("model", json.dumps({"name": "synthetic", "image_size": None, "weights": None,
                                            "weights_fingerprint": None, "dim": dim}))
        ids = [f"s{i:07d}" for i in range(n)]
        db.sync([(item_id, "-", "-", {"gender": genders[i % 5], "articleType": types[(i // 5) % 5]})
                 for i, item_id in enumerate(ids)], ["gender", "articleType"])
        rng = np.random.default_rng(1)
        for start in tqdm(range(0, n, 5000), desc="synthetic", leave=False):
            v = rng.normal(size=(min(5000, n - start), dim)).astype(np.float32)
            db.put_vectors(ids[start : start + len(v)], v / np.linalg.norm(v, axis=1, keepdims=True))
    finally:
        db.close()


def table(results: dict[str, Any]) -> str:
    lines = [f"{'indexing':<36}{'seconds':>10}{'img/s':>10}"]
    for name in ("local", "ray"):
        r = results["indexing"][name]
        lines.append(f"{name:<36}{r['seconds']:>10.1f}{r['images_per_s']:>10.1f}")
    lines.append(f"{'ray start-up (not included above)':<36}{results['indexing']['ray_startup_s']:>10.1f}")
    for label, part in (("real", results["latency_real"]), ("synthetic", results["latency_synthetic"])):
        lines.append("")
        lines.append(f"query latency, {label} index of {part['items']} items, k={K} "
                     f"(top-5 agreement {part['top5_agreement']:.0%}, "
                     f"{part['top5_agreement_up_to_ties']:.0%} up to tied scores; "
                     f"Milvus publish {part['milvus_publish_rows_per_s']:.0f} rows/s)")
        lines.append(f"{'filter':<42}{'FAISS p50':>10}{'p95':>8}{'Milvus p50':>12}{'p95':>8}")
        for name, row in part["latency"].items():
            f, m = row["faiss"], row["milvus_lite"]
            lines.append(f"{name:<42}{f['p50_ms']:>10.2f}{f['p95_ms']:>8.2f}{m['p50_ms']:>12.2f}{m['p95_ms']:>8.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1000, help="catalogue products to index (default: %(default)s)")
    parser.add_argument("--model", default="efficientnet-lite2", help="backbone (default: %(default)s)")
    parser.add_argument("--queries", type=int, default=200, help="queries per latency row (default: %(default)s)")
    parser.add_argument("--synthetic", type=int, default=20_000,
                        help="items in the synthetic index (default: %(default)s)")
    args = parser.parse_args()
    import ray

    spec = ModelSpec(args.model)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
        root = Path(tmp)
        metadata = subset_csv(args.products, root / "subset.csv")
        local = timed_index(metadata, root / "local", spec, None)
        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        ray_startup = time.perf_counter() - start
        try:
            on_ray = timed_index(metadata, root / "ray", spec, RayEngine(spec))
        finally:
            ray.shutdown()
        real = compare_stores(root / "local", str(root / "real.db"), args.queries)
        synthetic_index(root / "synthetic", args.synthetic, 1280)
        synthetic = compare_stores(root / "synthetic", str(root / "synthetic.db"), args.queries)
    results = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg(), "note": "CPU shared with other jobs; numbers are indicative"},
        "model": spec.name, "products": args.products, "k": K,
        "indexing": {"local": local, "ray": on_ray, "ray_startup_s": round(ray_startup, 2)},
        "latency_real": real, "latency_synthetic": synthetic,
    }
    print(table(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {RESULTS}")


if __name__ == "__main__":
    main()
