"""The Markdown report of ``fashionrec evaluate --report DIR``: tables plus per-group P@5 bar charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fashionrec.charts import bar_chart

METRICS = ("P@1", "P@5", "P@10", "mAP@10", "nDCG@10", "hit@5")


def write_report(result: dict[str, Any], out: Path) -> Path:
    """``report.md`` (overall and per-group tables), ``result.json`` and ``p5_by_group.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    runs = result["runs"]
    first = next(iter(runs.values()))
    groups = sorted(first["groups"], key=lambda g: -first["groups"][g]["queries"])
    bar_chart(out / "p5_by_group.png", f"P@5 by query group ({result['protocol']})", groups,
              {name: [run["groups"][g].get("P@5", 0) for g in groups] for name, run in runs.items()}, "P@5")
    lines = [f"# Evaluation ({result['protocol']})", "", f"Head: `{result['head']}`", "",
             "| run | queries | " + " | ".join(METRICS) + " | latency p50 / p99 ms |",
             "|---|---|" + "---|" * len(METRICS) + "---|"]
    for name, run in runs.items():
        m = run["metrics"]
        lines.append(f"| {name} | {run['queries']} | " + " | ".join(f"{m.get(k, 0):.3f}" for k in METRICS)
                     + f" | {run['latency_ms']['p50']} / {run['latency_ms']['p99']} |")
    lines += ["", "![P@5 by group](p5_by_group.png)", "", "## Per group (first run)", "",
              "| group | queries | P@5 | hit@5 | nDCG@10 |", "|---|---|---|---|---|"]
    lines += [f"| {g} | {first['groups'][g]['queries']} | {first['groups'][g]['P@5']:.3f} | "
              f"{first['groups'][g]['hit@5']:.3f} | {first['groups'][g]['nDCG@10']:.3f} |" for g in groups]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
