"""The command line: JSON output shape, and one clear error line (no traceback) for user mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fashionrec.cli import main
from tests.conftest import DEMO_CATALOG, DEMO_QUERIES


def test_recommend_json_one_object_per_image(demo_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queries = [str(DEMO_QUERIES / "t-shirt.jpg"), str(DEMO_QUERIES / "shoes.jpg")]
    assert main(["recommend", *queries, "--index-dir", str(demo_index), "-k", "3", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["query"] == queries[0] and len(first["results"]) == 3
    assert {"id", "score", "gender", "articleType", "baseColour", "productDisplayName"} <= set(first["results"][0])
    shoes = json.loads(lines[1])["results"]
    assert any("Shoes" in r["articleType"] or r["masterCategory"] == "Footwear" for r in shoes)


def test_recommend_with_filter_and_contact_sheet(demo_index: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    sheet = tmp_path / "sheet.png"
    code = main(["recommend", str(DEMO_QUERIES / "dress.jpg"), "--index-dir", str(demo_index), "--json",
                 "--filter", "gender=Women", "--filter", "masterCategory=Apparel", "--sheet", str(sheet)])
    assert code == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert len(results) == 5 and all(r["gender"] == "Women" and r["masterCategory"] == "Apparel" for r in results)
    from PIL import Image

    assert Image.open(sheet).size[0] > 5 * 160


def test_info_reports_counts(demo_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--index-dir", str(demo_index), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["items"] == info["embedded"] == info["vector_index"]["vectors"] == 300


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recommend", "nope.jpg", "--index-dir", "{missing}"], "no index"),
        (["recommend", "nope.jpg", "--index-dir", "{index}"], "nope.jpg"),
        (["recommend", str(DEMO_QUERIES / "dress.jpg"), "--index-dir", "{index}", "--filter", "colour"], "bad filter"),
        (["recommend", str(DEMO_QUERIES / "dress.jpg"), "--index-dir", "{index}", "--filter", "size=XL"], "unknown filter column"),
        (["recommend", str(DEMO_QUERIES / "dress.jpg"), "--index-dir", "{index}", "-k", "0"], "k must be"),
        (["recommend", str(DEMO_CATALOG / "styles.csv"), "--index-dir", "{index}"], "styles.csv"),
        (["index", "/no/such/folder", "--index-dir", "{missing}"], "catalogue folder not found"),
        (["index", str(DEMO_CATALOG), "--index-dir", "{missing}", "--model", "resnet50"], "resnet50"),
    ],
)
@pytest.mark.slow
def test_user_mistakes_give_one_line(demo_index: Path, tmp_path: Path, args: list[str], message: str) -> None:
    argv = [a.format(index=demo_index, missing=tmp_path / "missing") for a in args]
    proc = subprocess.run([sys.executable, "-m", "fashionrec", *argv], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("fashionrec: error:")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
