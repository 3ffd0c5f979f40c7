"""PNG bar charts for reports (evaluation, trends), drawn with matplotlib's Agg backend (no display needed).

matplotlib is in the ``eval`` extra; it is imported only when a chart is drawn, so nothing else depends on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from fashionrec.errors import FashionrecError


def bar_chart(path: Path, title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]],
              ylabel: str = "") -> Path:
    """Horizontal bars, one group per label and one colour per series (e.g. image-only vs hybrid)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise FashionrecError("charts need matplotlib: pip install 'fashionrec[eval]'") from None
    height = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.28 * len(labels) * max(len(series), 1) + 1)))
    for n, (name, values) in enumerate(series.items()):
        ax.barh([i + n * height for i in range(len(labels))], values, height=height, label=name)
    ax.set_yticks([i + height * (len(series) - 1) / 2 for i in range(len(labels))], labels=list(labels), fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
