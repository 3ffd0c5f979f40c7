"""`pip install fashionrec` without PyTorch serves and queries an existing index (ONNX Runtime embeds the queries),
and says in one line what to install when asked to index a catalogue with a model it cannot build.

Runs against the environment ``make torch-free`` builds (``.venv-serve``: ``pip install .`` and nothing else; CI
builds it before the tests); skipped when it is absent."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.request import Request, urlopen

import pytest

from fashionrec.recommend import Recommender
from tests.conftest import DEMO_CATALOG, DEMO_QUERIES, REPO, STREET_PHOTO, ServeProcess, subset_catalog

SERVE_VENV = REPO / ".venv-serve"
PYTHON = SERVE_VENV / "bin" / "python"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not PYTHON.exists(), reason="no torch-free environment: run `make torch-free` first")]


def test_the_environment_has_no_pytorch() -> None:
    probe = subprocess.run([str(PYTHON), "-c", "import importlib.util as u; print(u.find_spec('torch') is None)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "True"


def test_it_serves_the_demo_index_and_answers_a_photo(demo_index: Path,
                                                      serve_process: Callable[..., ServeProcess]) -> None:
    base = serve_process(demo_index, python=str(PYTHON)).start()
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"dress.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + (DEMO_QUERIES / "dress.jpg").read_bytes() + \
        f"\r\n--{boundary}--\r\n".encode()
    request = Request(f"{base}/api/recommend?k=5", data=body, method="POST",
                      headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urlopen(request, timeout=60) as response:
        assert response.status == 200
        answer = json.loads(response.read())
    assert len(answer["results"]) == 5
    assert all(r["metadata"]["articleType"] for r in answer["results"])
    assert answer["results"][0]["score"] >= answer["results"][-1]["score"]


def test_it_indexes_with_the_default_model_from_its_shipped_onnx_export(tmp_path: Path) -> None:
    catalogue = subset_catalog(tmp_path / "catalogue", 12)
    done = subprocess.run([str(SERVE_VENV / "bin" / "fashionrec"), "index", str(catalogue), "--index-dir",
                           str(tmp_path / "index")], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    with Recommender.open(tmp_path / "index") as rec:
        assert len(rec) == 12 and rec.manifest.name == "fashion"
        assert [r.id for r in rec.recommend(catalogue / "images" / f"{rec.store.ids[0]}.jpg", k=1)] == \
            [rec.store.ids[0]]


def test_it_shops_the_look_and_draws_its_sheet_without_pytorch(demo_index: Path, tmp_path: Path) -> None:
    """``make demo``'s last step: the garment localiser runs in ONNX Runtime alone."""
    done = subprocess.run([str(SERVE_VENV / "bin" / "fashionrec"), "look", str(STREET_PHOTO), "--index-dir",
                           str(demo_index), "-k", "2", "--json", "--sheet", str(tmp_path / "look.png")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["query"] == str(STREET_PHOTO) and len(answer["garments"]) >= 2
    assert all(1 <= len(g["results"]) <= 2 for g in answer["garments"])
    assert (tmp_path / "look.png").stat().st_size > 0


def test_indexing_with_a_model_it_cannot_build_says_what_to_install(tmp_path: Path) -> None:
    done = subprocess.run([str(SERVE_VENV / "bin" / "fashionrec"), "index", str(DEMO_CATALOG), "--index-dir",
                           str(tmp_path / "index"), "--model", "efficientnet-lite2"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2
    err = done.stderr.strip()
    assert err.count("\n") == 0 and "fashionrec[train]" in err, err
