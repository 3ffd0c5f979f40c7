"""Shared fixtures: the demo catalogue, a demo index built once per session, and the shared real data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fashionrec.indexing import index_catalog

REPO = Path(__file__).resolve().parent.parent
DEMO_CATALOG = REPO / "demo" / "catalog"
DEMO_QUERIES = REPO / "demo" / "queries"
SHARED = Path(os.environ.get("FASHIONREC_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the 300-product demo catalogue with the default model. Read-only: copy it to change it."""
    index_dir = tmp_path_factory.mktemp("demo-index")
    index_catalog(DEMO_CATALOG, index_dir, progress=False)
    return index_dir


@pytest.fixture
def demo_catalog_copy(tmp_path: Path) -> Path:
    """A private, writable copy of the demo catalogue."""
    target = tmp_path / "catalog"
    shutil.copytree(DEMO_CATALOG, target)
    return target


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data beside the project root; tests that need it skip when it is absent."""
    if not (SHARED / "catalogue" / "styles.csv").is_file():
        pytest.skip(f"shared real data not found at {SHARED} (set FASHIONREC_SHARED_DATA)")
    return SHARED


@pytest.fixture(scope="session")
def demo_text_index(demo_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo index with a small text alignment trained on it (text search, issue 8). Read-only."""
    from fashionrec.cli import main

    index_dir = tmp_path_factory.mktemp("demo-text-index") / "index"
    shutil.copytree(demo_index, index_dir)
    code = main(["train-text", "--index-dir", str(index_dir), "--epochs", "20", "--batch-size", "64",
                 "--hidden", "256", "--no-captions", "--seed", "0", "--json"])
    assert code == 0
    return index_dir
