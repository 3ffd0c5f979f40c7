"""Batch embedding on Ray Data: the same pipeline as the local engine, spread over a cluster's CPUs.

Who runs where: the driver (``fashionrec index --engine ray``) scans the catalogue, keeps SQLite and publishes
the store, exactly as in a local run. Only embedding moves out: the pending (id, image path) pairs become a Ray
Dataset, a pool of actors each builds the embedder ONCE from the pickled :class:`ModelSpec` (never a pickled
model) and maps batches to vectors, and the driver writes every batch it gets back into SQLite at once, so an
interrupted run resumes from what was committed, as locally.

Image paths must be readable from every node (a shared filesystem mounted at the same path), and fashionrec
must be installed in every node's Python; see docs/scaling-out.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from fashionrec.embedders import Embedder
from fashionrec.errors import FashionrecError
from fashionrec.indexing import EmbeddedBatch, embed_batches
from fashionrec.modelspec import ModelSpec


class _EmbedActor:
    """One Ray actor: loads the model once, then turns batches of (id, path) rows into vectors or errors."""

    def __init__(self, spec: ModelSpec, decode_threads: int) -> None:
        self.embedder = spec.build()
        self.decode_threads = decode_threads

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = list(zip(batch["id"].tolist(), batch["path"].tolist()))
        vectors = np.zeros((len(items), self.embedder.dim), dtype=np.float32)
        errors = [""] * len(items)
        row = {item_id: n for n, (item_id, _) in enumerate(items)}
        for ids, embedded, failures in embed_batches(self.embedder, items, max(len(items), 1), self.decode_threads):
            vectors[[row[i] for i in ids]] = embedded
            for item_id, message in failures:
                errors[row[item_id]] = message
        return {"id": batch["id"], "vector": vectors, "error": np.array(errors, dtype=object)}


@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[None]:
    """Use the Ray instance already running in this process, else connect to ``address`` (None: start a local one
    with ``num_cpus``; the command line passes Ray's own ``RAY_ADDRESS`` here when it is set) and shut it down
    afterwards."""
    import ray

    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise FashionrecError(f"cannot start or reach Ray at {address or 'a local instance'}: {exc}") from None
    try:
        yield
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class RayEngine:
    """The ``engine`` hook of :func:`fashionrec.indexing.index_catalog` that embeds in Ray actors.

    ``cpus_per_actor`` is what each actor reserves (and so its torch thread count: Ray sets OMP_NUM_THREADS);
    ``actors`` defaults to every CPU of the cluster divided by that, i.e. one model replica per reserved slice.
    """

    spec: ModelSpec
    address: str | None = None
    cpus_per_actor: float = 1.0
    actors: int | None = None

    def __call__(
        self, embedder: Embedder, items: Sequence[tuple[str, str]], batch_size: int
    ) -> Iterator[EmbeddedBatch]:
        """Yield (ids, vectors, failures) batches as actors finish them (in no particular order)."""
        if embedder.name != self.spec.name:
            raise ValueError(f"the driver's embedder is {embedder.name}, the Ray actors would build {self.spec.name}")
        if not items:
            return
        import ray
        import ray.data

        with ray_session(self.address, os.cpu_count()):
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False  # index_catalog shows one bar for the whole run
            context.print_on_execution_start = False
            actors = self.actors or max(1, int(ray.cluster_resources().get("CPU", 1) // self.cpus_per_actor))
            dataset = ray.data.from_items([{"id": i, "path": p} for i, p in items]).map_batches(
                _EmbedActor,
                fn_constructor_args=(self.spec, max(1, int(self.cpus_per_actor))),
                batch_size=batch_size,
                batch_format="numpy",
                num_cpus=self.cpus_per_actor,
                compute=ray.data.ActorPoolStrategy(size=min(actors, len(items) // batch_size + 1)),
                udf_modifying_row_count=False,
            )
            for batch in dataset.iter_batches(batch_size=batch_size, batch_format="numpy"):
                ok = batch["error"] == ""
                vectors = np.asarray(batch["vector"][ok], dtype=np.float32).reshape(-1, embedder.dim)
                failures = [(str(i), str(e)) for i, e in zip(batch["id"][~ok], batch["error"][~ok])]
                yield [str(i) for i in batch["id"][ok]], vectors, failures
