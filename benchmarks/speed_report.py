"""The indexing and query speed table of docs/performance.md (and its summary in the README), generated from
benchmarks/results/*.json, never copied by hand.

    .venv/bin/python benchmarks/speed_report.py [--index index_throughput_fashion] [--query query_latency_fashion]
        [--quality quality_fashion_compact] [--quality-before quality_fashion] [--check]

Reads a whole-process run of ``benchmarks/index_throughput.py --whole-process`` (naive loop vs ``fashionrec index``),
a run of ``benchmarks/query_latency.py`` (in-process, HTTP, search alone) and two runs of ``benchmarks/quality.py``
(the head before and after it was made compact), and rewrites the blocks between the ``speed-table`` markers.
With ``--check`` nothing is written: exit status 1 (and one line per file) when a block is out of date.
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import REPO, RESULTS_DIR, load_results, quality_row, write_or_check

DOC = REPO / "docs" / "performance.md"
README = REPO / "README.md"
START, END = "<!-- speed-table", "<!-- /speed-table -->"
INDEX_GOAL = 5.0  # whole process, times the naive loop (issue 18)
HTTP_GOAL_MS = 20.0
SEARCH_GOAL_MS = 1.0


def _goal(met: bool, text: str) -> str:
    return f"goal {text}: **{'met' if met else 'missed'}**"


def _metrics(run: dict[str, Any], method: str) -> tuple[dict[str, float], ...]:
    """The metrics of ``method`` (no localisation) on the held-out products, the test and the validation photos."""
    return tuple(dict((quality_row(run, query_set, method) or {}).get("metrics", {}))
                 for query_set in ("catalogue held-out", "photos test", "photos validation"))


def _head_row(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Searched dimension and quality of the default head, before and after, on data never trained on."""
    def cells(run: dict[str, Any]) -> str:
        held, test, validation = _metrics(run, "head (")
        return (f"held-out P@5 {held.get('P@5', 0):.3f}; photos test P@5 {test.get('P@5', 0):.3f}, hit@5 "
                f"{test.get('hit@5', 0):.3f}; validation P@5 {validation.get('P@5', 0):.3f}, hit@5 "
                f"{validation.get('hit@5', 0):.3f}")

    def dim(run: dict[str, Any]) -> str:
        method = next(r["method"] for r in run["rows"] if r["method"].startswith("head ("))
        return "512-d (256-d features + 256-d MLP)" if "weight 0.0)" not in method else "256-d (MLP output)"

    return (f"| `fashionrec train` head of the fashion model: searched vector and quality, before -> after | 41,099 "
            f"products; 10 % held out by the hash split, photos test / validation | before, {dim(before)}: "
            f"{cells(before)}. After, {dim(after)}: {cells(after)} (goal at most 256-d without losing quality) |")


def _input_size_row(native: dict[str, Any], smaller: dict[str, Any]) -> str:
    """Quality of the backbone features as they are at the native input size and a smaller one."""
    def cells(run: dict[str, Any]) -> str:
        held, test, validation = _metrics(run, "backbone as-is")
        return (f"held-out P@5 {held.get('P@5', 0):.3f}, photos test P@5 {test.get('P@5', 0):.3f}, validation P@5 "
                f"{validation.get('P@5', 0):.3f}")

    return (f"| a smaller input for a cheaper network: the fashion model's features as they are at "
            f"{native['model']['image_size']} px (native) vs {smaller['model']['image_size']} px | 41,099 products, "
            f"1,000 held-out queries, photos test / validation | {native['model']['image_size']} px: {cells(native)}; "
            f"{smaller['model']['image_size']} px: {cells(smaller)}: not taken |")


def table(index: dict[str, Any], query: dict[str, Any], quality: tuple[dict[str, Any], dict[str, Any]] | None,
          input_size: tuple[dict[str, Any], dict[str, Any]] | None = None) -> list[str]:
    naive, ours = index["naive"], index["ours"]
    model = index.get("model", {})
    rows = query["results"]
    http, local = rows["HTTP POST /api/recommend"], rows["in-process recommend(bytes)"]
    search, women = rows["search only"], rows["search only, gender=Women"]
    qm = query.get("model", {})
    lines = [
        "| what | data | result |",
        "|---|---|---|",
        (f"| indexing, whole process from a cold start: the naive loop (eager PyTorch, one image at a time, "
        f"`benchmarks/naive_index.py`) vs `fashionrec index` (imports, model load, decoding, embedding, SQLite, "
        f"{index['runs']['ours'][0]['index_kind']} build), "
        f"median of {index['repeats']} alternating runs | first {index['products']:,} shared products, "
        f"{model.get('name')} @ {model.get('image_size')} px, {index.get('precision', 'fp32')}, "
        f"{index.get('threads', '?')} thread(s) each | naive "
        f"{naive['seconds']} s ({naive['images_per_s']} img/s, peak {naive['peak_rss_mib']:.0f} MiB) vs ours "
        f"{ours['seconds']} s ({ours['images_per_s']} img/s, peak {ours['peak_rss_mib']:.0f} MiB): "
        f"**{index['speedup']}x** ({_goal(index['speedup'] >= INDEX_GOAL, f'{INDEX_GOAL:g}x')}); vectors agree "
        f"with the naive loop's to cosine >= {index['vectors_min_cosine']} |"),
        (f"| query latency, photo bytes -> {query['k']} results, in-process / over HTTP (a `fashionrec serve` "
        f"process, one client on a real socket) | {query['items']:,} products, {qm.get('name')} @ "
        f"{qm.get('image_size')} px + head, {qm.get('searched_dim')}-d, {query['index_kind']} | p50 "
        f"{local['p50_ms']:.1f} / **{http['p50_ms']:.1f}** ms, p99 {local['p99_ms']:.1f} / {http['p99_ms']:.1f} ms "
        f"({_goal(http['p50_ms'] <= HTTP_GOAL_MS, f'HTTP p50 <= {HTTP_GOAL_MS:g} ms')}) |"),
        (f"| vector search alone, no filter / `gender=Women` | same | p50 **{search['p50_ms']:.2f}** / "
        f"{women['p50_ms']:.2f} ms, p99 {search['p99_ms']:.2f} / {women['p99_ms']:.2f} ms "
        f"({_goal(max(search['p50_ms'], women['p50_ms']) < SEARCH_GOAL_MS, f'< {SEARCH_GOAL_MS:g} ms')}) |"),
    ]
    if quality is not None:
        lines.append(_head_row(*quality))
    if input_size is not None:
        lines.append(_input_size_row(*input_size))
    return lines


def summary(index: dict[str, Any], query: dict[str, Any]) -> list[str]:
    """The README's short form of :func:`table`: the goals of issue 18 with the measured figures."""
    naive, ours, rows = index["naive"], index["ours"], query["results"]
    http, search = rows["HTTP POST /api/recommend"], rows["search only"]
    return [
        (f"- Indexing {index['products']:,} shared images as a whole process from a cold start: "
         f"{ours['images_per_s']} img/s vs {naive['images_per_s']} for the naive one-image loop, "
         f"**{index['speedup']}x** ({_goal(index['speedup'] >= INDEX_GOAL, f'{INDEX_GOAL:g}x')})."),
        (f"- A photo query at {query['items']:,} products over HTTP: p50 **{http['p50_ms']:.1f} ms** "
         f"({_goal(http['p50_ms'] <= HTTP_GOAL_MS, f'<= {HTTP_GOAL_MS:g} ms')}); the vector search alone "
         f"p50 {search['p50_ms']:.2f} ms ({_goal(search['p50_ms'] < SEARCH_GOAL_MS, f'< {SEARCH_GOAL_MS:g} ms')})."),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="index_throughput_fashion")
    parser.add_argument("--query", default="query_latency_fashion")
    parser.add_argument("--quality", default="quality_fashion_compact")
    parser.add_argument("--quality-before", default="quality_fashion")
    parser.add_argument("--input-size", default="quality_asis_fashion128,quality_asis_fashion96",
                        help="two quality_asis.py runs: the native input size, then a smaller one")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a generated doc is out of date")
    args = parser.parse_args(argv)
    index, query = load_results(args.index), load_results(args.query)
    quality = None
    if (RESULTS_DIR / f"{args.quality}.json").is_file():
        quality = (load_results(args.quality_before), load_results(args.quality))
    sizes = args.input_size.split(",")
    input_size = None
    if all((RESULTS_DIR / f"{name}.json").is_file() for name in sizes):
        input_size = (load_results(sizes[0]), load_results(sizes[1]))
    names = {args.index: index, args.query: query, **({args.quality: quality[1]} if quality else {}),
             **(dict(zip(sizes, input_size, strict=True)) if input_size else {})}
    m = index["machine"]
    block = [
        f"{START}: generated by benchmarks/speed_report.py from benchmarks/results/*.json; do not edit -->", "",
        "### The default model end to end (issue 18)", "",
        (f"Machine: {m.get('cores')} cores, {m.get('cpu')}, no GPU. The runs, with the load at the time in their "
        "notes:"), "",
        *(f"- `{name}.json`: {run.get('note') or 'no note'}" for name, run in names.items()), "",
        *table(index, query, quality, input_size), "", END]
    readme_intro = (f"Measured on a {m.get('cores')}-core {m.get('cpu')} VM without GPU, shared with other jobs "
                    "(tables, each run's load and threads, 1M and 10M vectors against scikit-learn, Annoy and "
                    "hnswlib: [docs/performance.md](docs/performance.md)):")
    ok = True
    for path, intro in ((DOC, None), (README, readme_intro)):
        text = path.read_text()
        start, end = text.find(START), text.find(END)
        if start < 0 or end < start:
            print(f"{path.relative_to(REPO)}: no {START} ... {END} markers, left as it is")
            ok = False
            continue
        lines = block if intro is None else [block[0], "", intro, "", *summary(index, query), "", END]
        text = text[:start] + "\n".join(lines) + text[end + len(END):]
        ok = write_or_check(path, text, check=args.check, script="speed_report.py") and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
