"""A shop that is not Myntra, end to end through the command line (issue 26): its own columns, its own label.

The shop: every photo of ``clothing-photos/train`` (real photos of garments, 2,011 of 16 classes; none of them in
``test/`` or ``validation/``) becomes a product of a CSV ``sku,category,title`` (category = the photo's class,
images at ``photos/{sku}.jpg``). Queries: the photos of ``clothing-photos/test`` and ``validation`` (713 photos of
other garments, taken by other people), relevant = a product of the query's class (``shop-mapping.json``: each
query class -> the same category). Nothing here is trained or tuned on a query photo: ``train`` runs with its
defaults, on the shop's own products.

Steps, each a ``fashionrec`` command (exit status recorded): ``index --label category``; ``evaluate --photos``
as-is (no head); ``train --label category``; ``evaluate --photos`` again (with and without ``--consensus 0.5``);
``evaluate --leave-one-out --json`` against a leave-one-out computed from ``recommend --json -k 6`` on every
product's own image (its own id dropped, the first 5 kept); ``recommend --consensus 0.5`` and ``recommend --like
SKU --differ category`` on a query photo.

    .venv/bin/python benchmarks/shop_labels.py [--model fashion] [--work DIR] [--out NAME] [--note TEXT]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import RESULTS_DIR, SHARED, machine

PHOTOS = SHARED / "clothing-photos"
QUERY_SPLITS = ("test", "validation")


def build_shop(root: Path) -> tuple[Path, dict[str, str]]:
    """The shop folder (products.csv + photos/) made from clothing-photos/train; sku -> category."""
    (root / "photos").mkdir(parents=True, exist_ok=True)
    rows, categories = [], {}
    for n, photo in enumerate(sorted((PHOTOS / "train").glob("*/*.jpg"))):
        sku = f"SKU{n:05d}"
        category = photo.parent.name
        shutil.copyfile(photo, root / "photos" / f"{sku}.jpg")
        rows.append({"sku": sku, "category": category, "title": f"{category} no. {n}"})
        categories[sku] = category
    with open(root / "products.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["sku", "category", "title"])
        writer.writeheader()
        writer.writerows(rows)
    query_classes = sorted({p.name for split in QUERY_SPLITS for p in (PHOTOS / split).iterdir() if p.is_dir()})
    (root / "shop-mapping.json").write_text(json.dumps({c: [c] for c in query_classes}, indent=1))
    return root, categories


def fashionrec(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str, float]:
    """Run one command: exit status, stdout, stderr, seconds."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fashionrec", *args], capture_output=True, text=True, check=False,
                          env=env)
    return done.returncode, done.stdout, done.stderr, round(time.perf_counter() - started, 1)


def checked(step: str, log: dict[str, Any], *args: str) -> str:
    code, out, err, seconds = fashionrec(*args)
    log[step] = {"command": "fashionrec " + " ".join(args), "exit": code, "seconds": seconds}
    if code != 0:
        raise SystemExit(f"{step} failed ({code}): {err.strip()[-2000:]}")
    return out


def photo_metrics(index_dir: Path, shop: Path, log: dict[str, Any], name: str, consensus: bool = False) -> dict:
    """P@5 etc. of the query photos, per split and together (weighted by the number of queries)."""
    out: dict[str, Any] = {}
    for split in QUERY_SPLITS:
        extra = ["--consensus", "0.5"] if consensus else ["--consensus", "0"]
        result = json.loads(checked(f"{name} {split}", log, "evaluate", "--index-dir", str(index_dir), "--photos",
                                    str(PHOTOS / split), "--mapping", str(shop / "shop-mapping.json"), "--json",
                                    *extra))
        run = next(iter(result["runs"].values()))  # the consensus run when there is one, else image-only
        out[split] = {"label": result["label"], "queries": run["queries"], **run["metrics"]}
    total = sum(out[s]["queries"] for s in QUERY_SPLITS)
    out["all"] = {"queries": total, **{k: round(sum(out[s][k] * out[s]["queries"] for s in QUERY_SPLITS) / total, 4)
                                       for k in ("P@1", "P@5", "P@10", "hit@5", "mAP@10")}}
    return out


def recommend_loo(index_dir: Path, shop: Path, categories: dict[str, str], log: dict[str, Any]) -> float:
    """Leave-one-out P@5 by category from ``recommend --json -k 6`` on every product's own image."""
    skus = sorted(categories)
    hits = 0
    started = time.perf_counter()
    for start in range(0, len(skus), 400):
        chunk = skus[start : start + 400]
        out = checked("recommend loo", log, "recommend", *(str(shop / "photos" / f"{s}.jpg") for s in chunk),
                      "--index-dir", str(index_dir), "-k", "6", "--json", "--consensus", "0")
        for sku, line in zip(chunk, out.splitlines(), strict=True):
            answer = json.loads(line)
            assert Path(answer["query"]).stem == sku
            top = [r for r in answer["results"] if r["id"] != sku][:5]
            hits += sum(r["category"] == categories[sku] for r in top)
    log["recommend loo"]["seconds"] = round(time.perf_counter() - started, 1)
    return round(hits / (5 * len(skus)), 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fashion", help="backbone of the shop's index (default: %(default)s)")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one, removed after)")
    parser.add_argument("--out", default="", help="results file name (default: shop_labels_MODEL)")
    parser.add_argument("--note", default="", help="free text stored in the JSON (e.g. machine load)")
    args = parser.parse_args(argv)
    if not (PHOTOS / "train").is_dir():
        raise SystemExit(f"no {PHOTOS}/train: set FASHIONREC_SHARED_DATA")
    work = args.work or Path(tempfile.mkdtemp(prefix="shop-labels-"))
    try:
        shop, categories = build_shop(work / "shop")
        index_dir = work / "index"
        log: dict[str, Any] = {}
        checked("index", log, "index", str(shop), "--metadata", str(shop / "products.csv"), "--id-column", "sku",
                "--image-pattern", "photos/{sku}.jpg", "--columns", "category,title", "--label", "category",
                "--model", args.model, "--index-dir", str(index_dir), "--json")
        as_is = photo_metrics(index_dir, shop, log, "evaluate as-is")
        as_is_consensus = photo_metrics(index_dir, shop, log, "evaluate as-is consensus", consensus=True)
        trained = json.loads(checked("train", log, "train", "--index-dir", str(index_dir), "--label", "category",
                                     "--json"))
        after = photo_metrics(index_dir, shop, log, "evaluate trained")
        after_consensus = photo_metrics(index_dir, shop, log, "evaluate trained consensus", consensus=True)
        loo = json.loads(checked("evaluate loo", log, "evaluate", "--index-dir", str(index_dir), "--leave-one-out",
                                 "--json", "--consensus", "0"))
        loo_recommend = recommend_loo(index_dir, shop, categories, log)
        query = min((PHOTOS / "test" / "dress").glob("*.jpg"))
        consensus_answer = json.loads(checked("recommend consensus", log, "recommend", str(query), "--index-dir",
                                              str(index_dir), "--consensus", "0.5", "--json"))
        liked = consensus_answer["results"][0]["id"]
        differ_answer = json.loads(checked("recommend differ", log, "recommend", str(query), "--index-dir",
                                           str(index_dir), "--like", liked, "--differ", "category", "--json"))
        differ_ok = all(r["category"] != categories[liked] for r in differ_answer["results"])
        result = {
            "benchmark": "shop_labels",
            "machine": machine(),
            "note": args.note,
            "model": args.model,
            "shop": {"products": len(categories), "categories": len(set(categories.values())),
                     "source": "clothing-photos/train", "columns": ["sku", "category", "title"]},
            "queries": {"source": [f"clothing-photos/{s}" for s in QUERY_SPLITS],
                        "relevance": "a product whose category is the query photo's class"},
            "train": {k: trained[k] for k in ("label", "aux_labels", "trained_on", "held_out", "classes", "views",
                                              "final_loss")} | {"seconds": log["train"]["seconds"]},
            "photos": {"as-is": as_is, "as-is + consensus 0.5": as_is_consensus, "trained": after,
                       "trained + consensus 0.5": after_consensus},
            "gain_P@5": round(after["all"]["P@5"] - as_is["all"]["P@5"], 4),
            "leave_one_out": {"label": loo["label"], "evaluate_P@5": loo["P@5"], "recommend_P@5": loo_recommend,
                              "difference": round(abs(loo["P@5"] - loo_recommend), 4)},
            "recommend": {"consensus_0.5": [r["category"] for r in consensus_answer["results"]],
                          "differ_category": {"liked": liked, "liked_category": categories[liked],
                                              "results": [r["category"] for r in differ_answer["results"]],
                                              "all_differ": differ_ok}},
            "steps": log,
        }
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    name = args.out or f"shop_labels_{args.model.replace('-', '_')}"
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    summary = {k: result["photos"][k]["all"]["P@5"] for k in result["photos"]}
    print(json.dumps({"model": args.model, "P@5": summary, "gain": result["gain_P@5"],
                      "loo": result["leave_one_out"], "differ_ok": differ_ok}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
