"""Leave-one-out Precision@5 by articleType on the shared catalogue, per backbone.

    nice .venv/bin/python benchmarks/loo_precision.py [--catalog DIR] [--limit 2000] [--seed 0]
        [--image-size PX] [--resnet50-weights FILE] [--reuse-index INDEX_DIR]

A seeded random sample of products is embedded with each backbone; every product then searches all the others
(itself excluded: exact inner product over the same vectors, k=6 with the product's own hit dropped). P@5 is the
share of its 5 neighbours with the same articleType, averaged over the sample. ``resnet50`` ships without weights,
so it runs only with ``--resnet50-weights``. Backbones run in ONNX Runtime when it is installed (the default
backend of ``fashionrec index``). ``--reuse-index`` takes the vectors of an index already built from this
catalogue for the backbone and input size it records, instead of embedding the images again.
Prints a table, writes benchmarks/results/loo_precision.json.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm import tqdm

from _common import (
    add_common_options,
    check_limit,
    machine,
    peak_rss_mib,
    print_table,
    run_main,
    write_results,
)
from fashionrec import manifest as manifests
from fashionrec.catalog import CatalogItem, read_catalog
from fashionrec.catalog_db import open_db
from fashionrec.embedders import resolve_image_size
from fashionrec.errors import FashionrecError
from fashionrec.indexing import embed_batches
from fashionrec.modelspec import ModelSpec

BACKBONES = ("efficientnet-lite2", "efficientnet-lite0", "mobilenetv2", "resnet50")
LABEL = "articleType"
K = 5


def sample(items: list[CatalogItem], limit: int, seed: int) -> list[CatalogItem]:
    """A seeded random sample of ``limit`` items (all when 0), so every backbone sees the same products."""
    return items if not limit or limit >= len(items) else random.Random(seed).sample(items, limit)


def precision_at_k(vectors: np.ndarray, labels: list[str], k: int = K) -> float:
    """Mean share of each vector's k nearest others (itself dropped) that carry its label."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, neighbours = index.search(vectors, k + 1)
    hits = 0
    for row, found in enumerate(neighbours):
        others = [int(j) for j in found if j != row and j >= 0][:k]
        hits += sum(labels[j] == labels[row] for j in others)
    return hits / (k * len(labels))


def embed_items(spec: ModelSpec, items: list[CatalogItem], batch_size: int) -> tuple[list[str], np.ndarray, float]:
    """Embed ``items`` with the spec's backbone: (ids embedded, vectors, seconds spent)."""
    embedder = spec.build()
    pairs = [(item.id, str(item.image_path)) for item in items]
    ids: list[str] = []
    chunks: list[np.ndarray] = []
    start = time.perf_counter()
    with tqdm(total=len(pairs), desc=spec.name, unit="img") as bar:
        for batch_ids, vectors, failures in embed_batches(embedder, pairs, batch_size):
            ids += batch_ids
            chunks.append(vectors)
            bar.update(len(batch_ids) + len(failures))
    return ids, np.concatenate(chunks), time.perf_counter() - start


def stored_vectors(index_dir: Path, spec: ModelSpec, items: list[CatalogItem]) -> tuple[list[str], np.ndarray] | None:
    """The vectors of ``items`` from an existing index, when it was built with exactly this backbone and size."""
    with open_db(index_dir) as db:
        model = manifests.read_optional(db)
        if not model or model.name != spec.name or model.image_size != spec.image_size or model.weights:
            return None
        ids, vectors = db.vectors(model.dim)
    row = {item_id: n for n, item_id in enumerate(ids)}
    kept = [item.id for item in items if item.id in row]
    return kept, vectors[[row[i] for i in kept]]


def evaluate(spec: ModelSpec, items: list[CatalogItem], batch_size: int, reuse: Path | None) -> dict[str, Any]:
    """Leave-one-out P@5 of one backbone, over vectors from ``reuse`` when it holds them, else freshly embedded."""
    label_of = {item.id: item.metadata[LABEL] for item in items}
    found = stored_vectors(reuse, spec, items) if reuse else None
    source = f"index {reuse}" if found else "embedded"
    seconds = None
    if found:
        ids, vectors = found
    else:
        ids, vectors, seconds = embed_items(spec, items, batch_size)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return {
        "backbone": spec.name,
        "image_size": spec.image_size,
        "products": len(ids),
        "vectors": source,
        "p_at_5": round(precision_at_k(vectors, [label_of[i] for i in ids]), 4),
        "embed_seconds": round(seconds, 1) if seconds else None,
        "embed_images_per_s": round(len(ids) / seconds, 1) if seconds else None,
    }


def main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser)
    parser.set_defaults(limit=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=None, help="input side in px for every backbone "
                        "(default: each model's own)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--resnet50-weights", default=None, help="state_dict file; without it resnet50 is skipped")
    parser.add_argument("--reuse-index", type=Path, default=None,
                        help="an index of this catalogue whose stored vectors are used for the backbone it records")
    args = parser.parse_args(argv)
    check_limit(args.limit)
    if args.batch_size < 1:
        raise FashionrecError("--batch-size must be at least 1")
    catalog = read_catalog(args.catalog, columns=[LABEL])
    items = sample(catalog.items, args.limit, args.seed)
    rows: list[dict[str, Any]] = []
    for name in BACKBONES:
        weights = args.resnet50_weights if name == "resnet50" else None
        if name == "resnet50" and weights is None:
            rows.append({"backbone": name, "skipped": "needs user weights (--resnet50-weights FILE)"})
            continue
        spec = ModelSpec(name, resolve_image_size(name, args.image_size), weights)
        rows.append(evaluate(spec, items, args.batch_size, args.reuse_index))
    data = {"benchmark": "loo_precision", "catalog": str(args.catalog), "limit": args.limit, "seed": args.seed,
            "label": LABEL, "k": K, "machine": machine(), "peak_rss_mib": peak_rss_mib(), "note": args.note,
            "results": rows}
    print_table(
        ["backbone", "image size", "products", "P@5", "vectors", "embed img/s"],
        [[r["backbone"], r.get("image_size", "-"), r.get("products", "-"), r.get("p_at_5", r.get("skipped")),
          r.get("vectors", "-"), r.get("embed_images_per_s") or "-"] for r in rows],
        json_mode=args.json,
    )
    write_results("loo_precision", data, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
