"""How `fashionrec duplicates --threshold` was chosen: cosines of planted copies against a clean catalogue's own
nearest neighbours.

For N products of a catalogue (default: the first 1,500 of the shared one) it embeds every photo, then plants for
the first P of them an exact copy (same bytes) and four kinds of near copy (re-encoded as JPEG quality 60; the
same photo uploaded at twice the size; a 6 % border cropped off; brightness +12 %; the shared catalogue's photos
are 60x80 thumbnails, so a smaller copy would lose most of the photo), and prints the distribution of
- each clean product's highest cosine to any *other* clean product (what a threshold must stay above), and
- each near copy's cosine to its original (what it must stay below).

    python benchmarks/duplicates_threshold.py [--catalog DIR] [--products 1500] [--planted 100] [--model NAME]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from fashionrec.duplicates import similar_pairs
from fashionrec.imageio import load_image
from fashionrec.modelspec import ModelSpec

REPO = Path(__file__).resolve().parent.parent


def near_copies(data: bytes) -> dict[str, bytes]:
    image = load_image(data)
    w, h = image.size
    out = {}
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=60)
    out["jpeg60"] = buffer.getvalue()
    buffer = io.BytesIO()
    image.resize((w * 2, h * 2), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
    out["upscaled2x"] = buffer.getvalue()
    dx, dy = int(w * 0.06), int(h * 0.06)
    buffer = io.BytesIO()
    image.crop((dx, dy, w - dx, h - dy)).save(buffer, "JPEG", quality=90)
    out["crop6%"] = buffer.getvalue()
    buffer = io.BytesIO()
    ImageEnhance.Brightness(image).enhance(1.12).save(buffer, "JPEG", quality=90)
    out["bright+12%"] = buffer.getvalue()
    return out


def embed(embedder, images: list[bytes], batch: int = 32) -> np.ndarray:
    rows = []
    for start in range(0, len(images), batch):
        arrays = [embedder.preprocess(load_image(d)) for d in images[start : start + batch]]
        rows.append(embedder.embed_arrays(np.stack(arrays)))
    vectors = np.vstack(rows)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--catalog", default=str(REPO.parent / "shared" / "data" / "catalogue"))
    parser.add_argument("--products", type=int, default=1500)
    parser.add_argument("--planted", type=int, default=100)
    parser.add_argument("--model", default="efficientnet-lite2")
    parser.add_argument("--image-size", type=int, default=None)
    args = parser.parse_args()
    catalog = Path(args.catalog)
    with (catalog / "styles.csv").open(newline="", encoding="utf-8") as f:
        ids = [row["id"] for row in csv.DictReader(f) if (catalog / "images" / f"{row['id']}.jpg").is_file()]
    ids = ids[: args.products]
    photos = [(catalog / "images" / f"{i}.jpg").read_bytes() for i in ids]
    embedder = ModelSpec(args.model, args.image_size).build()
    clean = embed(embedder, photos)
    sims = clean @ clean.T
    np.fill_diagonal(sims, -1)
    nearest = sims.max(axis=1)
    exact = embed(embedder, photos[: args.planted])
    kinds: dict[str, list[float]] = {"exact": [float(c) for c in np.sum(exact * clean[: args.planted], axis=1)]}
    variants = [near_copies(d) for d in photos[: args.planted]]
    for kind in variants[0]:
        vectors = embed(embedder, [v[kind] for v in variants])
        kinds[kind] = [float(c) for c in np.sum(vectors * clean[: args.planted], axis=1)]
    pct = [50, 90, 99, 99.9, 100]
    report = {
        "model": args.model, "dim": int(clean.shape[1]), "products": len(ids), "planted": args.planted,
        "clean_nearest_neighbour_cosine": {f"p{p}": round(float(np.percentile(nearest, p)), 4) for p in pct},
        "clean_pairs_at_or_above": {str(t): len(similar_pairs(clean, t)) for t in (0.9, 0.93, 0.95, 0.97, 0.98, 0.99)},
        "planted_copy_cosine_min": {k: round(min(v), 4) for k, v in kinds.items()},
        "planted_copy_cosine_p5": {k: round(float(np.percentile(v, 5)), 4) for k, v in kinds.items()},
        "planted_found_at": {str(t): {k: round(float(np.mean(np.array(v) >= t)), 3) for k, v in kinds.items()}
                             for t in (0.8, 0.85, 0.9, 0.93, 0.95, 0.97)},
        "clean_pairs_at_or_above_0.93": [
            [ids[i], ids[j], round(c, 4), "same bytes" if photos[i] == photos[j] else "different bytes"]
            for i, j, c in sorted(similar_pairs(clean, 0.93), key=lambda p: -p[2])],
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
