"""Everything tests share: fixtures (demo catalogue and index, small live indexes, API apps and clients, real
``fashionrec serve`` processes) and plain helpers and constants. Test modules import helpers from here only, never
from one another."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec
from fashionrec.recommend import Recommender
from fashionrec.text import TextSearcher
from fashionrec.train import TrainConfig, train_index

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from fashionrec.embedders import Embedder

REPO = Path(__file__).resolve().parent.parent
DEMO_CATALOG = REPO / "demo" / "catalog"
DEMO_QUERIES = REPO / "demo" / "queries"
STREET_PHOTO = REPO / "demo" / "street" / "0013.jpg"  # a whole outfit (shop the look), never trained on
DEMO_IMAGES = sorted((DEMO_CATALOG / "images").glob("*.jpg"))
SHARED = Path(os.environ.get("FASHIONREC_SHARED_DATA", REPO.parent / "shared" / "data"))
CLI_ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}  # the environment of ``fashionrec`` subprocesses
FAST_MODEL = ModelSpec("efficientnet-lite0", 128)  # a small, fast model for indexes built by the tests
KEY = "test-key-0123456789abcdef"  # the API key of apps and servers that accept writes
AUTH = {"X-API-Key": KEY}
PHOTOS = [(DEMO_QUERIES / f"{name}.jpg").read_bytes() for name in ("dress", "shoes", "pants")]  # three photos of one product
DRESS = (DEMO_QUERIES / "dress.jpg").read_bytes()
SMALL = TrainConfig(epochs=3, hidden=32, dim=16, batch_size=32, holdout=0.2, seed=3)


def demo_rows() -> dict[str, dict[str, str]]:
    """The demo catalogue's rows by id, read straight from its CSV."""
    with (DEMO_CATALOG / "styles.csv").open(newline="", encoding="utf-8") as fp:
        return {row["id"]: row for row in csv.DictReader(fp)}


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


def write_shop(root: Path, count: int = 150) -> Path:
    """A shop that is not Myntra, from the first ``count`` demo products: ``products.csv`` with the columns
    ``sku,category,colour,title`` (its own names and values: ``SK-1548``, ``sports-shoes``, ``white``) and the
    images at ``photos/{sku}.jpg``."""
    (root / "photos").mkdir(parents=True, exist_ok=True)
    rows = list(demo_rows().values())[:count]
    with (root / "products.csv").open("w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(["sku", "category", "colour", "title"])
        for row in rows:
            sku = f"SK-{row['id']}"
            shutil.copyfile(DEMO_CATALOG / "images" / f"{row['id']}.jpg", root / "photos" / f"{sku}.jpg")
            writer.writerow([sku, row["articleType"].lower().replace(" ", "-"), row["baseColour"].lower(),
                             row["productDisplayName"]])
    return root


SHOP_INDEX_ARGS = ("--metadata", "products.csv", "--id-column", "sku", "--image-pattern", "photos/{sku}.jpg")


@pytest.fixture(scope="module")
def shop_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(shop folder, its index with ``--label category --colour-column colour``, not trained). Read-only."""
    from fashionrec.cli import main

    root = write_shop(tmp_path_factory.mktemp("shop") / "shop")
    index_dir = root.parent / "index"
    args = [a if a != "products.csv" else str(root / a) for a in SHOP_INDEX_ARGS]
    code = main(["index", str(root), *args, "--index-dir", str(index_dir), "--label", "category", "--colour-column",
                 "colour", "--json"])
    assert code == 0
    return root, index_dir


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
    """A copy of the demo index with a small text alignment trained on it (text search). Read-only."""
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
def searcher(demo_text_index: Path) -> TextSearcher:
    """The text searcher over ``demo_text_index``, open for the module."""
    with TextSearcher.open(demo_text_index) as opened:
        yield opened


@pytest.fixture(scope="module")
def demo_recommender(demo_index: Path) -> Iterator[Recommender]:
    """The demo index opened once per test module (shared between its tests: reset what a test changes on it)."""
    with Recommender.open(demo_index) as rec:
        yield rec


@pytest.fixture(scope="module")
def demo_app(demo_recommender: Recommender) -> FastAPI:
    """The API app with default settings over ``demo_recommender``."""
    from fashionrec.api import ApiSettings, create_app

    return create_app(demo_recommender, settings=ApiSettings())


@pytest.fixture(scope="module")
def demo_client(demo_app: FastAPI) -> TestClient:
    """A client of ``demo_app``, in process."""
    from fastapi.testclient import TestClient

    return TestClient(demo_app)


def upload(client: TestClient, data: bytes, *, params: dict | list | None = None, name: str = "photo.jpg",
           content_type: str = "image/jpeg") -> httpx.Response:
    """``POST /api/recommend`` with ``data`` as the uploaded file."""
    return client.post("/api/recommend", params=params, files={"file": (name, data, content_type)})


def assert_error(response: httpx.Response, status: int, *fragments: str) -> None:
    """A JSON error body with the given status whose message mentions every fragment."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    for fragment in fragments:
        assert fragment.lower() in body["error"].lower(), body


def form(fields: dict[str, str], photo: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    """A multipart body of ``fields`` (and ``photo`` as ``file``) and its Content-Type header, for urllib."""
    boundary = "items-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    if photo is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
                     "Content-Type: image/jpeg\r\n\r\n".encode() + photo + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def write_catalog(root: Path, rows: Iterable[Iterable[str]], images: dict[str, bytes | None] | None = None) -> Path:
    """A catalogue at ``root``: ``styles.csv`` from ``rows`` (first row = header), and ``images/<name>`` files
    (``None`` content = copy of a real demo photo)."""
    import csv

    (root / "images").mkdir(parents=True, exist_ok=True)
    with (root / "styles.csv").open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    for n, (name, content) in enumerate((images or {}).items()):
        data = DEMO_IMAGES[n % len(DEMO_IMAGES)].read_bytes() if content is None else content
        (root / "images" / name).write_bytes(data)
    return root


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m fashionrec ARGS`` in a subprocess (with ``CLI_ENV``); its exit status and text output."""
    return subprocess.run([sys.executable, "-m", "fashionrec", *args], capture_output=True, text=True, env=CLI_ENV,
                          timeout=300, check=False)


def foreign_sqlite(path: Path) -> None:
    """Replace ``path`` with someone else's SQLite database (a ``users`` table, no fashionrec schema)."""
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")


def assert_one_clear_error(proc: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 2 and exactly one stderr line, ``fashionrec: error: ...`` containing ``message``; no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fashionrec: error:") and message in lines[0], proc.stderr


@pytest.fixture(scope="module")
def fast_embedder() -> Embedder:
    """``FAST_MODEL``, built once per test module."""
    return FAST_MODEL.build()


def subset_catalog(root: Path, count: int, start: int = 0) -> Path:
    """A catalogue folder at ``root`` with ``count`` products of the demo catalogue (from row ``start``)."""
    import csv

    (root / "images").mkdir(parents=True)
    with (DEMO_CATALOG / "styles.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    chosen = [rows[0], *rows[1 + start : 1 + start + count]]
    with (root / "styles.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(chosen)
    for row in chosen[1:]:
        shutil.copy(DEMO_CATALOG / "images" / f"{row[0]}.jpg", root / "images" / f"{row[0]}.jpg")
    return root


@pytest.fixture(scope="session")
def small_live_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 demo products indexed with a small, fast model (read-only: copy it to change it; the catalogue folder
    is ``catalog`` beside it)."""
    from fashionrec.modelspec import ModelSpec

    root = tmp_path_factory.mktemp("small-live")
    catalog = subset_catalog(root / "catalog", 20)
    index_catalog(catalog, root / "index", model=ModelSpec("efficientnet-lite0", 64), progress=False)
    return root / "index"


@pytest.fixture
def live_index(small_live_index: Path, tmp_path: Path) -> Path:
    """A private, writable copy of ``small_live_index`` and of its catalogue folder (``../catalog``); the
    index's image paths still point at the session's catalogue folder."""
    shutil.copytree(small_live_index.parent / "catalog", tmp_path / "catalog")
    shutil.copytree(small_live_index, tmp_path / "index")
    return tmp_path / "index"


@pytest.fixture
def live_rec(live_index: Path) -> Iterator[Recommender]:
    """``live_index`` opened (closed after the test)."""
    with Recommender.open(live_index) as opened:
        yield opened


@pytest.fixture
def live_client(live_rec: Recommender) -> TestClient:
    """The API over ``live_rec`` with the API key ``KEY`` configured (writes allowed with ``AUTH``), in process."""
    from fastapi.testclient import TestClient

    from fashionrec.api import ApiSettings, create_app

    return TestClient(create_app(live_rec, settings=ApiSettings(api_key=KEY)))


@pytest.fixture(scope="module")
def catalog_120(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 120 products of the demo catalogue (read-only: copy it to change it)."""
    return subset_catalog(tmp_path_factory.mktemp("catalog-120"), 120)


@pytest.fixture(scope="module")
def base_index(catalog_120: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from the model spec (not a passed embedder), so its ONNX export is cached inside it and every copy
    opens without exporting again."""
    index_dir = tmp_path_factory.mktemp("quality-index")
    index_catalog(catalog_120, index_dir, model=FAST_MODEL, progress=False)
    return index_dir


@pytest.fixture(scope="module")
def trained_index(base_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("trained") / "index"
    shutil.copytree(base_index, index_dir)
    train_index(index_dir, SMALL, progress=False)
    return index_dir


class ServeProcess:
    """A real ``fashionrec serve`` subprocess on a free port (``start`` / ``kill``; started again at will)."""

    def __init__(self, index_dir: Path, env: Mapping[str, str] | None = None, args: Sequence[str] = (),
                 python: str | None = None) -> None:
        self.index_dir, self.env, self.args = index_dir, dict(env or {}), list(args)
        self.python = python  # another environment's interpreter (default: this one)
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self, timeout_s: float = 180) -> str:
        import socket
        import sys
        import urllib.request

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        cmd = [self.python or sys.executable, "-m", "fashionrec", "serve", "--index-dir", str(self.index_dir),
               "--port", str(port),
               *self.args]
        env = {**os.environ, "FASHIONREC_THREADS": "1", "HF_HUB_OFFLINE": "1", **self.env}
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc.poll() is None, self.proc.stderr.read().decode() if self.proc.stderr else "exited"
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=5) as response:
                    if response.status == 200:
                        return self.base
            except OSError:
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.3)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def serve_process() -> Iterator[Callable[..., ServeProcess]]:
    """A factory of :class:`ServeProcess`; every process it made is stopped after the test."""
    made: list[ServeProcess] = []

    def make(index_dir: Path, env: Mapping[str, str] | None = None, args: Sequence[str] = (),
             python: str | None = None) -> ServeProcess:
        made.append(ServeProcess(index_dir, env, args, python))
        return made[-1]

    yield make
    for process in made:
        process.stop()


STREET_LABELS = ["null", "skin", "hair", "bag", "dress", "shoes"]


def street_folder(root: Path, names: list[str]) -> Path:
    """A folder in the shared ``street-photos`` layout: the demo street photo under each of ``names``, each with
    the same label map (shoes at the bottom centre; a speck of bag, too small to be a garment)."""
    import numpy as np
    from PIL import Image

    (root / "photos").mkdir(parents=True)
    (root / "masks").mkdir()
    photo = Image.open(STREET_PHOTO).convert("RGB")
    labels = np.zeros((photo.height, photo.width), np.uint8)
    labels[int(photo.height * 0.8):, int(photo.width * 0.35):int(photo.width * 0.55)] = 5  # shoes, bottom centre
    labels[:3, :3] = 3  # a speck of bag: too small to be a garment, still a label of the photo
    for name in names:
        photo.save(root / "photos" / f"{name}.jpg")
        Image.fromarray(labels).save(root / "masks" / f"{name}.png")
    (root / "labels.json").write_text(json.dumps({"labels": STREET_LABELS}))
    return root
