"""Text -> product search quality on held-out products, beside the published KAGL numbers (Marqo's benchmark).

    nice .venv/bin/python benchmarks/text_search.py --index-dir COPY_OF_INDEX [--epochs 20] [--holdout 0.1]
        [--seed 0] [--variants names,captions]

Trains the text alignment once per variant (``names``: productDisplayName only; ``captions``: plus templated
metadata captions) on the index's products minus a seeded 10 % holdout, then measures:

- strict (the headline, KAGL protocol): query = a held-out product's productDisplayName, gallery = the WHOLE
  catalogue, the one relevant item is that product. Recall@1/10 and MRR.
- identical name (labelled as such): any product whose productDisplayName is exactly the query also counts;
  names repeat a lot in this catalogue, and the strict protocol cannot tell such products apart.
- articleType P@10: query = the articleType's name, share of the top 10 of the whole catalogue with that type.

Scores are exact (dense matrix), so the numbers measure the alignment, not an ANN index. The index directory is
written to (the artifacts of the last variant stay there): run it on a copy. Writes results/text_search.json.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from _common import machine, peak_rss_mib, print_table, run_main, write_results
from fashionrec import manifest as manifests
from fashionrec.catalog_db import CatalogDB
from fashionrec.text.captions import product_name
from fashionrec.text.encoder import MiniLMEncoder
from fashionrec.text.evaluate import precision_at, ranks, recall_mrr
from fashionrec.text.train import AlignmentConfig, train_alignment

PUBLISHED = {  # Marqo's GCL benchmark, KAGL dataset (text-to-image), published on the models' cards
    "FashionCLIP2.0 (published)": {"recall@10": 0.404, "articleType P@10": 0.577},
    "Marqo-FashionSigLIP (published)": {"recall@10": 0.489, "articleType P@10": 0.629},
}


class CachedEncoder:
    """MiniLM with a text -> vector cache, so variants and evaluation encode each distinct text once."""

    def __init__(self) -> None:
        self._encoder = MiniLMEncoder()
        self.name, self.dim = self._encoder.name, self._encoder.dim
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        self._cache.update(zip(new, self._encoder.encode(new, progress=progress)))
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


def evaluate(alignment: Any, encoder: CachedEncoder, ids: list[str], features: np.ndarray,
             meta: dict[str, dict[str, str]]) -> dict[str, float]:
    gallery = alignment.project("image", features)
    position = {item_id: n for n, item_id in enumerate(ids)}
    by_name: dict[str, set[int]] = defaultdict(set)
    for n, item_id in enumerate(ids):
        by_name[product_name(meta[item_id])].add(n)
    held = [i for i in alignment.held_out if i in position]
    names = [product_name(meta[i]) for i in held]
    queries = alignment.project("text", encoder.encode(names, progress=True))
    strict = recall_mrr(ranks(queries, gallery, [{position[i]} for i in held]))
    same_name = recall_mrr(ranks(queries, gallery, [by_name[name] for name in names]))
    types = sorted({m["articleType"] for m in meta.values() if m.get("articleType")})
    type_queries = alignment.project("text", encoder.encode(types))
    labels = [meta[i].get("articleType", "") for i in ids]
    return {
        **strict, **{f"same-name {k}": v for k, v in same_name.items()},
        "articleType P@10": precision_at(type_queries, gallery, labels, types),
        "queries": len(held), "gallery": len(ids), "articleTypes": len(types),
        "held-out names shared with a training product": float(np.mean([len(by_name[n]) > 1 for n in names])),
    }


def main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, required=True, help="a COPY of an index (artifacts are written)")
    parser.add_argument("--epochs", type=int, default=AlignmentConfig.epochs)
    parser.add_argument("--hidden", type=int, default=AlignmentConfig.hidden)
    parser.add_argument("--holdout", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default="names,captions")
    parser.add_argument("--note", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    encoder = CachedEncoder()
    db = CatalogDB(args.index_dir)
    try:
        model = manifests.read(db)
        ids, features = db.vectors(model.dim)
        meta = {i: item.metadata for i, item in db.get_many(ids).items()}
    finally:
        db.close()
    rows, results = [], {}
    for variant in args.variants.split(","):
        config = AlignmentConfig(epochs=args.epochs, hidden=args.hidden, holdout=args.holdout, seed=args.seed,
                             captions=variant == "captions")
        started = time.perf_counter()
        trained = train_alignment(args.index_dir, config, encoder=encoder)
        seconds = time.perf_counter() - started
        metrics = evaluate(trained.alignment, encoder, ids, features, meta)
        results[variant] = {**metrics, "train_seconds": round(seconds, 1), "final_loss": trained.final_loss}
        rows.append([f"MiniLM + lite2 alignment ({variant})", *(f"{metrics[k]:.3f}" for k in
                     ("recall@1", "recall@10", "mrr", "same-name recall@10", "articleType P@10"))])
    for name, published in PUBLISHED.items():
        rows.append([name, "-", f"{published['recall@10']:.3f}", "-", "-", f"{published['articleType P@10']:.3f}"])
    print_table(["model", "R@1", "R@10", "MRR", "R@10 same-name", "articleType P@10"], rows, json_mode=args.json)
    write_results("text_search", {
        "machine": machine(), "peak_rss_mib": peak_rss_mib(), "note": args.note, "image_model": model.to_dict(),
        "settings": {"epochs": args.epochs, "hidden": args.hidden, "holdout": args.holdout, "seed": args.seed},
        "results": results, "published": PUBLISHED,
    }, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
