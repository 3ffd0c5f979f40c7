"""The reference projects' way of indexing, as one process: the baseline that index_throughput.py times whole.

    .venv/bin/python benchmarks/naive_index.py CATALOG_DIR --limit N --out embeddings.pkl [--model NAME]

Imports PyTorch, builds the model (eager PyTorch, its packaged weights), then for each product one at a time:
decode the image, preprocess it, run a forward pass of batch 1, append the vector; finally pickles the ids and the
vectors, as the reference projects' ``embeddings.pkl``. No decode overlap, no batching, no ONNX Runtime. The first
``N`` products of the catalogue that have an image, as ``index_throughput.py --limit N`` indexes them.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

from fashionrec.catalog import read_catalog
from fashionrec.embedders import DEFAULT_MODEL, create_embedder
from fashionrec.imageio import load_image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("catalog", type=Path)
    parser.add_argument("--limit", type=int, default=0, help="only the first N products (0 = all)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--out", type=Path, required=True, help="pickle of (ids, vectors)")
    args = parser.parse_args(argv)
    items = read_catalog(args.catalog).items[: args.limit or None]
    embedder = create_embedder(args.model, image_size=args.image_size)
    ids, vectors = [], []
    for item in items:
        ids.append(item.id)
        vectors.append(embedder.embed_arrays(embedder.preprocess(load_image(item.image_path))[None])[0])
    with args.out.open("wb") as handle:
        pickle.dump((ids, np.stack(vectors)), handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
