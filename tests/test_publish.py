"""fashionrec.publish: one publisher per store behind one contract. Each makes its store hold every embedded
product, through the index's head, and records the published manifest, so that ``Index.open`` accepts it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from fashionrec.head import Head
from fashionrec.index import Index
from fashionrec.publish import FaissPublisher, MilvusPublisher, Publisher
from fashionrec.stores.base import VectorStore
from fashionrec.stores.faiss_store import FaissStore


def _faiss(tmp_path: Path) -> tuple[Publisher, Callable[[Path], VectorStore]]:
    return FaissPublisher("flat"), FaissStore.load


def _milvus(tmp_path: Path) -> tuple[Publisher, Callable[[Path], VectorStore]]:
    pytest.importorskip("pymilvus")
    from fashionrec.stores.milvus_store import MilvusStore

    uri = str(tmp_path / "milvus.db")
    return MilvusPublisher(uri), lambda _: MilvusStore.open(uri)


@pytest.mark.parametrize("make", [_faiss, _milvus], ids=["faiss", "milvus"])
def test_every_publisher_publishes_through_the_head_and_records_it(
    make: Callable[[Path], tuple[Publisher, Callable[[Path], VectorStore]]], trained_index: Path, tmp_path: Path,
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(trained_index, index_dir)
    publish, open_store = make(tmp_path)
    head = Head.load(index_dir)
    db, manifest = Index.open_database(index_dir)
    try:
        before = db.generation
        kind = publish(db, index_dir, manifest)
        assert kind in ("flat", "external")
        if kind == "flat":
            assert db.generation == before + 1  # a new FAISS file is a new generation
    finally:
        db.close()
    store = open_store(index_dir)
    assert store.model == manifest.through_head(head.fingerprint, head.dim)
    assert store.dim == head.dim
    with Index.open(index_dir, None if kind == "flat" else store) as index:
        assert len(index) == index.db.count(embedded=True)
        query = head.apply(index.db.stacked_vectors([index.db.iter_items().__next__().id]))
        assert len(index.store.search(query, 5)[0]) == 5
