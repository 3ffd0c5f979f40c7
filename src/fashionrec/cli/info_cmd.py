"""``fashionrec info``: what is in an index."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fashionrec import manifest as manifests
from fashionrec.catalog_db import CatalogDB
from fashionrec.cli.common import add_index_dir, add_json
from fashionrec.columns import read_roles
from fashionrec.modelspec import ModelSpec
from fashionrec.stores.faiss_store import INDEX_FILE, FaissStore


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show index statistics")
    add_index_dir(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    index_dir = Path(args.index_dir)
    db = CatalogDB(index_dir)
    try:
        model = manifests.read_optional(db, f"index in {index_dir}")
        info: dict[str, object] = {
            "index_dir": str(index_dir.resolve()),
            "items": db.count(),
            "embedded": db.count(embedded=True),
            "columns": db.columns,
            "column_roles": read_roles(db).to_dict(),
            "model": None if model is None else model.to_dict(),
            "numerics": None if model is None else ModelSpec.from_manifest(model).cached_numerics(index_dir),
        }
    finally:
        db.close()
    if (index_dir / INDEX_FILE).is_file():
        store = FaissStore.load(index_dir)
        vector_index: dict[str, object] = {"kind": store.kind, "vectors": len(store), "dim": store.dim,
                                           "bytes": (index_dir / INDEX_FILE).stat().st_size}
        if store.build:  # what was built and measured: factory, search parameters, recall@10 on a sample, budget
            vector_index["build"] = {k: v for k, v in store.build.items() if k not in ("vectors", "dim")}
        info["vector_index"] = vector_index
    if args.json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            print(f"{key:>13}: {value}")
    return 0
