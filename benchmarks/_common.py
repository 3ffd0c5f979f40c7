"""Helpers shared by the benchmark scripts: where the data is, what machine ran, peak memory, table and JSON output.

Kept in one place so every benchmark describes its machine and writes its results the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fashionrec import runtime
from fashionrec.config import read_runtime
from fashionrec.errors import FashionrecError
from fashionrec.kinds import MAX_KINDS, MIN_SHARE, NEIGHBOUR_WEIGHT, NEIGHBOURS, KindClassifier

if TYPE_CHECKING:
    from fashionrec.recommend import Recommender

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SHARED = Path(os.environ.get("FASHIONREC_SHARED_DATA", REPO.parent / "shared" / "data"))
SHARED_CATALOGUE = SHARED / "catalogue"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """Cores and CPU model: timings mean nothing without them."""
    return {"cores": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version()}


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mib(pid: int | None = None) -> float:
    """Current resident memory of a process (this one by default), from /proc (Linux)."""
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for pid {pid}")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, json_mode: bool) -> None:
    """A plain aligned text table; on stderr in ``json_mode`` so stdout carries only the JSON."""
    out = sys.stderr if json_mode else sys.stdout
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every benchmark on the shared catalogue takes."""
    parser.add_argument("--catalog", type=Path, default=SHARED_CATALOGUE, help="catalogue folder (styles.csv + images/)")
    parser.add_argument("--limit", type=int, default=0, help="only this many products (0 = all)")
    parser.add_argument("--note", default="", help="free text stored in the JSON (e.g. machine load)")
    parser.add_argument("--json", action="store_true", help="also print the JSON result to stdout")


def add_kind_rule_options(parser: argparse.ArgumentParser) -> None:
    """``--min-share`` / ``--max-kinds`` / ``--neighbour-weight`` / ``--neighbours``: measure another kind-steering
    rule than the one the index gets (fashionrec.kinds)."""
    parser.add_argument("--min-share", type=float, help="kind steering's min_share (default: the shipped rule's)")
    parser.add_argument("--max-kinds", type=int, default=MAX_KINDS, help="kind steering's max_kinds")
    parser.add_argument("--neighbour-weight", type=float,
                        help="the nearest products' vote's share (0: the classifier alone; default: the index's, "
                             f"{NEIGHBOUR_WEIGHT:g} where its head learnt worn garments, else 0)")
    parser.add_argument("--neighbours", type=int, default=NEIGHBOURS, help="how many nearest products vote")


def apply_kind_rule(rec: Recommender, args: argparse.Namespace) -> dict[str, Any]:
    """Give ``rec`` the kind-steering rule of :func:`add_kind_rule_options`' options (when they change it); the
    rule the queries get, for the results JSON."""
    if args.min_share is not None or args.max_kinds != MAX_KINDS or args.neighbour_weight is not None or \
            args.neighbours != NEIGHBOURS:
        own = rec.kind_classifier
        weight = args.neighbour_weight if args.neighbour_weight is not None else (
            own.neighbour_weight if own is not None else NEIGHBOUR_WEIGHT)
        rec.kind_classifier = KindClassifier.open(min_share=args.min_share, max_kinds=args.max_kinds,
                                                  neighbour_weight=weight, neighbours=args.neighbours)
    classifier = rec.kind_classifier
    if classifier is None:
        return {"min_share": MIN_SHARE if args.min_share is None else args.min_share, "max_kinds": args.max_kinds}
    return {"min_share": classifier.min_share, "max_kinds": classifier.max_kinds,
            "neighbour_weight": classifier.neighbour_weight, "neighbours": classifier.neighbours}


def check_limit(limit: int) -> None:
    """A negative --limit is a user error, not 'all'."""
    if limit < 0:
        raise FashionrecError(f"--limit must be 0 (all) or positive, got {limit}")


def write_results(name: str, data: dict[str, Any], *, echo: bool) -> Path:
    """Write benchmarks/results/<name>.json; with ``echo`` (the --json flag) print the same JSON to stdout."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    text = json.dumps(data, indent=2)
    path.write_text(text + "\n")
    if echo:
        sys.stdout.write(text + "\n")
    return path


def run_main(main: Callable[[list[str] | None], int]) -> None:
    """Run a benchmark's main: the runtime options (FASHIONREC_BACKEND / _THREADS) read from the environment as
    the command line reads them; a user error is one line on stderr and exit status 2, never a traceback."""
    try:
        runtime.configure(read_runtime())
        code = main(None)
    except FashionrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    raise SystemExit(code)


def load_results(name: str) -> dict[str, Any]:
    """``benchmarks/results/NAME.json``."""
    data: dict[str, Any] = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    return data


def quality_row(run: dict[str, Any], query_set: str, method: str, *, localise: bool = False) -> dict[str, Any] | None:
    """The first row of a ``quality.py`` run for ``query_set`` whose method starts with ``method``, with or without
    query-side localisation; None when the run has none."""
    for row in run["rows"]:
        if (row["set"] == query_set and row["method"].startswith(method)
                and row["method"].endswith(" + localise") == localise):
            return row
    return None


def splice(text: str, name: str, lines: list[str]) -> str | None:
    """``text`` with the block between ``<!-- NAME`` and ``<!-- /NAME -->`` replaced by ``lines`` (whose first line
    is the opening marker); None when the markers are missing."""
    start, end_marker = text.find(f"<!-- {name}:"), f"<!-- /{name} -->"
    end = text.find(end_marker, start)
    if start < 0 or end < 0:
        return None
    return text[:start] + "\n".join([*lines, end_marker]) + text[end + len(end_marker):]


def marker(name: str, script: str, sources: Sequence[str]) -> str:
    """The opening comment of a generated block: which script writes it, from which results files."""
    files = ", ".join(f"{s}.json" for s in sources)
    return f"<!-- {name}: generated by benchmarks/{script} from benchmarks/results/ {files}; do not edit -->"


def write_or_check(path: Path, text: str, *, check: bool, script: str) -> bool:
    """Write ``text`` to ``path`` when it differs; with ``check``, write nothing and print one line per file that is
    out of date. True when the file was (or now is) up to date."""
    old = path.read_text() if path.is_file() else ""
    if old == text:
        return True
    if check:
        old_lines, new_lines = old.splitlines(), text.splitlines()
        differ = sum(a != b for a, b in zip(old_lines, new_lines)) + abs(len(old_lines) - len(new_lines))
        print(f"{path.relative_to(REPO)}: out of date ({differ} lines differ); run .venv/bin/python "
              f"benchmarks/{script}")
        return False
    path.write_text(text)
    print(f"wrote {path.relative_to(REPO)}")
    return True
