"""Process-wide runtime options: which inference engine runs the model, and how many CPU threads it uses.

These are properties of the process, not of a query or an index (PyTorch and ONNX Runtime thread pools are
process-wide), so they are set once: the command line (and so the server it starts) reads ``FASHIONREC_BACKEND``,
``FASHIONREC_THREADS`` and ``OMP_NUM_THREADS`` at its edge (:func:`fashionrec.config.read_runtime`), validates them
there, and calls :func:`configure`.
Library code reads :func:`current`, never the environment; a program using the library directly gets the
defaults (``auto``, every usable CPU) unless it calls :func:`configure` itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from fashionrec.errors import FashionrecError

BACKENDS = ("auto", "onnx", "torch")


@dataclass(frozen=True)
class Runtime:
    """``backend``: ``auto`` (ONNX Runtime when installed, else PyTorch), ``onnx`` or ``torch``; ``threads``: CPU
    threads one forward pass uses (None: the CPUs this process may run on)."""

    backend: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise FashionrecError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise FashionrecError(f"threads must be between 1 and 1024, got {self.threads}")

    def thread_count(self) -> int:
        """CPU threads one forward pass should use. Runtimes count the whole machine, and oversubscribing a
        container's CPUs makes inference several times slower, so the default is the CPUs this process may use."""
        if self.threads is not None:
            return self.threads
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, usable or 1)


_current = Runtime()


def configure(runtime: Runtime) -> Runtime:
    """Set the process's runtime options (the edge calls this once, before any model is built); the old ones."""
    global _current
    previous, _current = _current, runtime
    return previous


def current() -> Runtime:
    """The process's runtime options."""
    return _current
