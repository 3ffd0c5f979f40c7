"""Shared fixtures: the demo catalogue, a demo index built once per session, and the shared real data."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fashionrec.indexing import index_catalog
from fashionrec.recommend import Recommender

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

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


@pytest.fixture
def labelled_photos(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny ``clothing-photos``-style folder (a sub-folder per class) from demo images, and its mapping JSON.

    Four classes whose articleTypes are in the demo catalogue (two photos each: the demo query and a catalogue
    image of that kind) and ``hat`` (one photo), whose articleTypes the demo catalogue lacks; the mapping also
    names a class with no folder."""
    photos = {
        "t-shirt": [DEMO_QUERIES / "t-shirt.jpg", DEMO_CATALOG / "images" / "2745.jpg"],
        "dress": [DEMO_QUERIES / "dress.jpg", DEMO_CATALOG / "images" / "8485.jpg"],
        "shoes": [DEMO_QUERIES / "shoes.jpg", DEMO_CATALOG / "images" / "1548.jpg"],
        "pants": [DEMO_QUERIES / "pants.jpg", DEMO_CATALOG / "images" / "9171.jpg"],
        "hat": [DEMO_CATALOG / "images" / "17426.jpg"],
    }
    folder = tmp_path / "photos"
    for name, files in photos.items():
        (folder / name).mkdir(parents=True)
        for n, source in enumerate(files):
            shutil.copyfile(source, folder / name / f"{n}.jpg")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({
        "t-shirt": ["Tshirts", "Lounge Tshirts"], "dress": ["Dresses"], "shoes": ["Sports Shoes", "Casual Shoes"],
        "pants": ["Trousers", "Jeans"], "hat": ["Caps", "Hat"], "skirt": ["Skirts"],
    }))
    return folder, mapping


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


def embedded_count(index_dir: Path) -> int:
    """Products with a stored vector, read straight from SQLite (0 while the database does not exist yet)."""
    try:
        with sqlite3.connect(index_dir / "catalog.sqlite", timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM items WHERE vector IS NOT NULL").fetchone()[0])
    except sqlite3.Error:
        return 0


def kill_index_run(command: Sequence[str], index_dir: Path, env: Mapping[str, str], after: int,
                   timeout_s: float = 180) -> int:
    """Start an ``index`` command, SIGKILL it once ``after`` vectors are committed; return how many there are."""
    proc = subprocess.Popen(list(command), env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while embedded_count(index_dir) < after and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return embedded_count(index_dir)


@pytest.fixture(scope="module")
def demo_recommender(demo_index: Path) -> Iterator[Recommender]:
    """The demo index opened once per test module (shared between its tests: reset what a test changes on it)."""
    with Recommender.open(demo_index) as rec:
        yield rec


@pytest.fixture(scope="module")
def demo_client(demo_recommender: Recommender) -> TestClient:
    """The API with default settings over ``demo_recommender``, in process."""
    from fastapi.testclient import TestClient

    from fashionrec.api import ApiSettings, create_app

    return TestClient(create_app(demo_recommender, settings=ApiSettings()))
