"""What a head trained with street crops (``fashionrec train --street``) does to the README's quality protocol.

    nice .venv/bin/python benchmarks/street_head.py --index INDEX_DIR [--name street_head]

The index is the 8,000-product sample of benchmarks/street_look.py after ``fashionrec train --photos
clothing-photos/train --mapping mapping.json --street street-photos``. Runs ``fashionrec evaluate --json`` on it with
the head and with ``--no-head`` (the raw fashion features: what a plain ``fashionrec index`` serves), on the same
split: the catalogue products the head held out (never trained on) queried against the others, and the photos of
``clothing-photos/test`` and ``validation`` (never trained on) against the whole index. No kind steering (evaluate
never steers). Writes benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import SHARED, machine, print_table, run_main, write_results

KEYS = ("hit@5", "P@5", "P@5_type_colour")


def _evaluate(index: Path, *extra: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "fashionrec", "evaluate", "--index-dir", str(index), "--json",
                          *extra], capture_output=True, text=True, check=True).stdout
    run = json.loads(out)["runs"]["image-only"]
    return {"queries": run["queries"], **{k: run["metrics"][k] for k in KEYS if k in run["metrics"]}}


def main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--name", default="street_head")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sets: dict[str, list[str]] = {"held-out products": []}
    for folder in ("test", "validation"):
        sets[f"photos {folder}"] = ["--photos", str(SHARED / "clothing-photos" / folder), "--mapping",
                                    str(SHARED / "mapping.json")]
    runs = {name: {"no head": _evaluate(args.index, *extra, "--no-head"), "street head": _evaluate(args.index, *extra)}
            for name, extra in sets.items()}
    data = {"machine": machine(), "index": str(args.index), "runs": runs}
    print_table(["queries", "n", *(f"{k} no head -> head" for k in KEYS)],
                [[n, r["no head"]["queries"], *(f"{r['no head'].get(k, '-')} -> {r['street head'].get(k, '-')}"
                                              for k in KEYS)] for n, r in runs.items()], json_mode=args.json)
    write_results(args.name, data, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
