"""The vector-search tables of docs/performance.md, generated from benchmarks/results/*.json (never copied by hand).

    .venv/bin/python benchmarks/ann_report.py [--compare ann_compare_1m,ann_compare_1m_sklearn,ann_compare_1m_annoy]
        [--scale ann_scale_10m] [--check]

Reads one ``ann_scale.py --compare`` run (libraries side by side on the same vectors and queries) and one
``ann_scale.py`` run of the compact kind at the largest scale measured, and rewrites the block between
``<!-- ann-table`` and ``<!-- /ann-table -->`` in docs/performance.md: the machine and its load, the comparison
table (per recall@10 target, the fastest measured setting reaching it), the large-scale figures, and the goals
of issue 18 (1M products: >= 5,000 queries/s at recall@10 >= 0.95, one thread, <= 512 bytes per product) met or
missed, computed from the same files. With ``--check`` nothing is written: exit status 1 when the block is out of
date.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from _common import REPO, RESULTS_DIR, write_or_check

DOC = REPO / "docs" / "performance.md"
START, END = "<!-- ann-table", "<!-- /ann-table -->"
GOAL_QPS, GOAL_RECALL, GOAL_BYTES = 5000, 0.95, 512


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _setting(row: dict[str, Any]) -> str:
    keys = [k for k in row if k not in ("queries", "queries_per_s", "queries_per_cpu_s", "ms_per_query", "recall_at_10", "runs")]
    return ", ".join(f"{k} {row[k]}" for k in keys if row[k] is not None)


def _cell(best: dict[str, Any] | None) -> str:
    if best is None:
        return "not reached"
    setting = _setting(best)
    return (f"{_qps(best):,.0f} ({best['recall_at_10']:.3f}{'; ' + setting if setting else ''}; wall "
            f"{best['queries_per_s']:,.0f})")


def _qps(row: dict[str, Any]) -> float:
    """Queries per CPU-second of the searching thread where measured, else per wall-clock second."""
    return float(row.get("queries_per_cpu_s", row["queries_per_s"]))


def _merged(names: list[str]) -> dict[str, Any] | None:
    """Several --compare runs over the same vectors and queries (same n, dim, seed) as one: their libraries in
    order (a library measured twice: the first file's), their notes each with its file."""
    runs = [(name, data) for name in names if (data := _load(name)) is not None]
    if not runs:
        return None
    first = dict(runs[0][1])
    for name, data in runs[1:]:
        if (data["n"], data["dim"], data.get("noise")) != (first["n"], first["dim"], first.get("noise")):
            raise SystemExit(f"{name}.json compares other vectors than {runs[0][0]}.json")
    seen: set[str] = set()
    first["results"] = [r for _, data in runs for r in data["results"]
                        if not (r["library"] + r["params"] in seen or seen.add(r["library"] + r["params"]))]
    if len(runs) > 1:
        first["note"] = " ".join(f"`{name}.json`: {data.get('note') or 'no note'}." for name, data in runs)
    return first


def _machine(data: dict[str, Any]) -> str:
    m = data.get("machine", {})
    return f"{m.get('cores')} cores, {m.get('cpu')}, Python {m.get('python')}"


def compare_table(data: dict[str, Any]) -> list[str]:
    targets = [f"{t:.2f}" for t in data["targets"]]
    lines = [f"| library | parameters | build s | bytes / product | {' | '.join(f'q/s at recall@10 >= {t}' for t in targets)} |",
             "|---|---|---|---|" + "---|" * len(targets)]
    for r in data["results"]:
        cells = " | ".join(_cell(r["best"][t]) for t in targets)
        lines.append(f"| {r['library']} | {r['params']} | {r['build_s']:,.1f} | {r['bytes_per_product']:,.0f} | {cells} |")
    return lines


def ranking(data: dict[str, Any]) -> list[str]:
    """Per target: which library was fastest, and where ours stands."""
    lines = []
    for t in (f"{t:.2f}" for t in data["targets"]):
        reached = [(_qps(r["best"][t]), r["library"], r["bytes_per_product"]) for r in data["results"]
                   if r["best"][t] is not None]
        if not reached:
            continue
        reached.sort(reverse=True)
        ours = [x for x in reached if x[1].startswith("faiss-ivfpqfs")]
        rank = f"ivfpqfs {reached.index(ours[0]) + 1} of {len(reached)}" if ours else "ivfpqfs did not reach it"
        lines.append(f"- recall@10 >= {t}: fastest {reached[0][1]} ({reached[0][0]:,.0f} q/s, "
                     f"{reached[0][2]:,.0f} bytes/product); {rank}"
                     + (f" ({ours[0][0]:,.0f} q/s, {ours[0][2]:,.0f} bytes/product)" if ours else ""))
    return lines


def goals(data: dict[str, Any]) -> list[str]:
    ours = next((r for r in data["results"] if r["library"] == "faiss-ivfpqfs"), None)
    if ours is None:
        return []
    good = [r for r in ours["search"] if r["recall_at_10"] >= GOAL_RECALL]
    best = max(good, key=_qps) if good else None
    qps_ok = best is not None and _qps(best) >= GOAL_QPS
    bytes_ok = ours["bytes_per_product"] <= GOAL_BYTES
    return [f"Goal at {data['n']:,} products: >= {GOAL_QPS:,} queries/s at recall@10 >= {GOAL_RECALL}, one thread, "
            f"<= {GOAL_BYTES} bytes per product. `ivfpqfs`: "
            + (f"{_qps(best):,.0f} q/s at {best['recall_at_10']:.3f} ({_setting(best)}; wall clock on the busy "
               f"machine {best['queries_per_s']:,.0f})" if best
               else "recall 0.95 not reached")
            + f", {ours['bytes_per_product']:,.0f} bytes per product: speed **{'met' if qps_ok else 'missed'}**, "
            f"memory **{'met' if bytes_ok else 'missed'}**."]


def scale_section(data: dict[str, Any]) -> list[str]:
    lines = [(f"`{data['kind']}` (`{data['factory']}`) at {data['n']:,} x {data['dim']}: build "
             f"{data['build_s']:,.0f} s (train {data['train_s']:,.0f} s, add {data['add_s']:,.0f} s), index "
             f"{data['index_mib']:,.0f} MiB ({data.get('bytes_per_product', data['index_mib'] * 2**20 / data['n']):,.0f} "
             f"bytes per product; float32 vectors alone: {data['float32_mib']:,.0f} MiB), peak RSS of the whole run "
             f"{data['peak_rss_mib']:,.0f} MiB (the index, its serialised copy for measuring, one chunk), "
             f"{data['queries']} queries with exact ground truth."), "",
             "| nprobe | k_factor | q/s (1 thread) | recall@10 |", "|---|---|---|---|"]
    lines += [f"| {r['nprobe']} | {r['k_factor']} | {r['queries_per_s']:,} | {r['recall_at_10']:.3f} |"
              for r in data["search"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", default="ann_compare_1m,ann_compare_1m_sklearn,ann_compare_1m_annoy",
                        help="results file(s) of ann_scale.py --compare on the same data, comma-separated")
    parser.add_argument("--scale", default="ann_scale_10m", help="results file of the large ann_scale.py run")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the block is out of date")
    args = parser.parse_args(argv)
    compared, scaled = _merged(args.compare.split(",")), _load(args.scale)
    sources = ", ".join(f"{name}.json" for name in [*args.compare.split(","), args.scale])
    block = [f"{START}: generated by benchmarks/ann_report.py from benchmarks/results/ {sources}; do not edit -->", ""]
    if compared:
        block += [f"### {compared['n']:,} x {compared['dim']}: libraries side by side", "",
                  f"Machine: {_machine(compared)}. Load: {compared.get('note') or 'not noted'}", "",
                  (f"Same {compared['n']:,} vectors (real fashion-model embeddings projected to {compared['dim']} "
                  f"dimensions plus real-covariance noise, `ann_scale.py`), same {compared['queries']:,} queries, exact "
                  "ground truth. Builds may use both cores; every search runs on one thread, in one batch (Annoy: one "
                  "call per query). Each cell: the fastest measured setting whose recall@10 reaches the target, in "
                  "queries per CPU-second of the searching thread (the machine was shared: wall-clock time also "
                  "counts the waits for a core; the wall-clock figure of the same run follows the recall and the "
                  "setting in brackets); best of up to 3 runs, nothing interpolated. Bytes per product: the "
                  "serialised FAISS index, the saved Annoy / hnswlib file, the float32 matrix scikit-learn keeps."),
                  "",
                  *compare_table(compared), "", *ranking(compared), "", *goals(compared), ""]
    if scaled:
        block += [f"### {scaled['n']:,} products, one machine (`{args.scale}.json`)", "",
                  f"Machine: {_machine(scaled)}. Load: {scaled.get('note') or 'not noted'}", "",
                  ("Queries per second here are wall-clock, one thread, one batch: on the shared machine a lower "
                  "bound."), "",
                  *scale_section(scaled), ""]
    text = DOC.read_text()
    start, end = text.find(START), text.find(END)
    body = "\n".join(block) + "\n" + END
    if start >= 0 and end > start:
        text = text[:start] + body + text[end + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n## Vector search at scale (issue 18)\n\n" + body + "\n"
    return 0 if write_or_check(DOC, text, check=args.check, script="ann_report.py") else 1


if __name__ == "__main__":
    raise SystemExit(main())
