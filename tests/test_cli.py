"""The command line: JSON output shape, and one clear error line (no traceback) for user mistakes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fashionrec.cli import main
from fashionrec.head import Head
from fashionrec.recommend import Recommender
from tests.conftest import (
    DEMO_CATALOG,
    DEMO_IMAGES,
    DEMO_QUERIES,
    FAST_MODEL,
    assert_one_clear_error,
    run_cli,
    write_catalog,
)


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


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line in this process (no interpreter start-up per call): exit status, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def holdout_p5_by_hand(index_dir: Path) -> float:
    """Mean P@5 of the held-out products, each searched by brute force among the others in the head's space (a
    result is relevant when its articleType is the query's): what ``evaluate``'s image-only run must report."""
    head = Head.load(index_dir)
    with Recommender.open(index_dir) as rec:
        ids, features = rec.db.vectors(rec.embedder.dim)
        items = rec.db.get_many(ids)
    kinds = [items[i].metadata["articleType"] for i in ids]
    vectors = head.apply(features)
    held = set(head.holdout_ids)
    searched = np.array([n for n, i in enumerate(ids) if i not in held])
    precisions = []
    for n, item_id in enumerate(ids):
        if item_id in held:
            top = searched[np.argsort(-(vectors[searched] @ vectors[n]), kind="stable")[:5]]
            precisions.append(sum(kinds[m] == kinds[n] for m in top) / 5)
    assert len(precisions) == len(held)
    return float(np.mean(precisions))


def test_cli_evaluate_holdout_hybrid_and_report(
    trained_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "evaluate", "--index-dir", str(trained_index), "--hybrid", "gender,baseColour",
                         "--json", "--report", str(tmp_path / "report"))
    assert code == 0, err
    result = json.loads(out)
    assert result["protocol"] == "holdout" and len(result["runs"]) == 2
    image_only = result["runs"]["image-only"]
    held = len(Head.load(trained_index).holdout_ids)
    assert image_only["queries"] == held and image_only["searched"] == 120 - held  # queries never in the searched index
    assert "agree_gender@5" in image_only["metrics"]
    assert image_only["metrics"]["P@5"] == pytest.approx(holdout_p5_by_hand(trained_index), abs=1e-4)
    assert (tmp_path / "report" / "p5_by_group.png").stat().st_size > 1000
    assert f"| image-only | {held} |" in (tmp_path / "report" / "report.md").read_text()


def test_cli_evaluate_photos_and_errors(
    trained_index: Path, base_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    for n, photo in enumerate(sorted(DEMO_QUERIES.glob("*.jpg"))[:2]):
        (photos / f"class{n}").mkdir(parents=True)
        shutil.copy(photo, photos / f"class{n}")
    (tmp_path / "mapping.json").write_text(json.dumps({"class0": ["Tshirts"], "class1": ["Shirts", "Tops"]}))
    code, out, err = cli(capsys, "evaluate", "--index-dir", str(trained_index), "--photos", str(photos),
                         "--mapping", str(tmp_path / "mapping.json"), "--json")
    assert code == 0, err
    run = json.loads(out)["runs"]["image-only"]
    assert run["queries"] == 2 and run["searched"] == 120 and set(run["groups"]) == {"class0", "class1"}
    code, _, err = cli(capsys, "evaluate", "--index-dir", str(base_index))
    assert code == 2 and err.startswith("fashionrec: error: no held-out products recorded") and err.count("\n") == 1
    code, _, err = cli(capsys, "evaluate", "--index-dir", str(trained_index), "--photos", str(photos))
    assert code == 2 and err.count("\n") == 1 and "--mapping" in err


def test_cli_trends_writes_json_and_charts(
    base_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "trends", "--index-dir", str(base_index), "--out", str(tmp_path), "--json")
    assert code == 0, err
    trends = json.loads(out)
    assert trends == json.loads((tmp_path / "trends.json").read_text()) and trends["items"] == 120
    colours = next(c for c in trends["charts"] if c["column"] == "baseColour")
    assert len(colours["counts"]) <= 10 and sum(c["count"] for c in colours["counts"]) + colours["other"] == 120
    assert {"gender.png", "baseColour.png", "season.png", "year.png"} <= {p.name for p in tmp_path.glob("*.png")}


def test_cli_recommend_prefer(trained_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = str(min(DEMO_QUERIES.glob("*.jpg")))
    args = ["recommend", photo, "--index-dir", str(trained_index), "-k", "10", "--json"]
    code, out, err = cli(capsys, *args, "--prefer", "gender=Women", "--hybrid-weight", "5")
    assert code == 0, err
    genders = [r["gender"] for r in json.loads(out)["results"]]
    assert len(genders) == 10 and genders == sorted(genders, key=lambda g: g != "Women")  # preferred ones first
    code, _, err = cli(capsys, *args, "--prefer", "gender")
    assert code == 2 and "bad preference" in err
    code, _, err = cli(capsys, *args, "--hybrid-weight", "-1")
    assert code == 2 and "hybrid weight must be between 0 and 10" in err


def test_cli_consensus_options(trained_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = str(min(DEMO_QUERIES.glob("*.jpg")))
    args = ["recommend", photo, "--index-dir", str(trained_index), "-k", "10", "--json"]
    code, out, err = cli(capsys, *args, "--consensus", "10")
    assert code == 0, err
    results = json.loads(out)["results"]
    kinds = [r["articleType"] for r in results]
    assert kinds == sorted(kinds, key=lambda t: t != kinds[0])  # the voted kind first
    with Recommender.open(trained_index) as rec:
        rec.consensus_weight = 10
        assert [r["id"] for r in results] == [r.id for r in rec.recommend(photo, k=10)]
    code, _, err = cli(capsys, *args, "--consensus", "0.5", "--consensus-column", "nope")
    assert code == 2 and err.count("\n") == 1 and "consensus column 'nope' is not in the index" in err
    with pytest.raises(SystemExit) as exited:
        cli(capsys, *args, "--consensus", "x")
    assert exited.value.code == 2 and "invalid float value" in capsys.readouterr().err
    code, _, err = cli(capsys, *args, "--consensus", "11")
    assert code == 2 and "consensus weight must be between 0 and 10" in err
    code, out, err = cli(capsys, "evaluate", "--index-dir", str(trained_index), "--consensus", "0.5", "--json")
    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert set(runs) == {"consensus (articleType, w=0.5)", "image-only"}
    held = len(Head.load(trained_index).holdout_ids)
    assert all(run["queries"] == held and run["searched"] == 120 - held for run in runs.values())


@pytest.mark.slow
def test_cli_index_of_a_hostile_catalogue_reports_without_traceback(tmp_path: Path) -> None:
    outside = tmp_path / "outside.jpg"
    shutil.copy(DEMO_IMAGES[0], outside)
    files: dict[str, bytes | None] = {"1.jpg": None, "2.jpg": None, "3.jpg": None, "4.jpg": b"<html></html>",
                                      "5.jpg": b"", "商品.jpg": None}
    catalog = write_catalog(tmp_path / "cat", [], files)
    csv_text = ('id,name\n1,ok\n../../etc/passwd,evil\n2,dup1\n2,dup2\n3,stray "quote\n4,html\n5,empty\n'
                '6,linked out\n商品,unicode\n7\n')
    (catalog / "styles.csv").write_text(csv_text, encoding="utf-8")
    os.symlink(outside, catalog / "images" / "6.jpg")
    proc = run_cli("index", str(catalog), "--index-dir", str(tmp_path / "index"), "--model", FAST_MODEL.name,
                   "--image-size", str(FAST_MODEL.image_size), "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    report = out["report"]
    assert report["unsafe_paths"] == ["../../etc/passwd", "6"]
    assert report["duplicate_ids"] == ["2"]
    assert [r["id"] for r in report["malformed_rows"]] == ["7"]
    assert sorted(u["id"] for u in report["unreadable_images"]) == ["4", "5"]
    assert out["total"] == 4  # 1, 2, 3 (a stray quote mid-field is kept as text) and 商品


@pytest.mark.parametrize(
    ("csv_text", "extra", "message"),
    [
        ("name\nx\n", [], "no 'id' column"),
        ("id,name\n1,a\n", ["--image-pattern", "images/{id.__init__}.jpg"], "bad image_pattern"),
        ("id,name\n1,a\n", ["--columns", "name,price"], "unknown columns"),
        ('id,name\n1,"' + "x" * 200_000 + "\n", [], "unreadable CSV"),
    ],
)
def test_cli_index_bad_catalogue_is_one_error_line(tmp_path: Path, csv_text: str, extra: list[str], message: str) -> None:
    catalog = write_catalog(tmp_path / "cat", [], {"1.jpg": None})
    (catalog / "styles.csv").write_text(csv_text, encoding="utf-8")
    assert_one_clear_error(run_cli("index", str(catalog), "--index-dir", str(tmp_path / "index"), *extra), message)


def _one_error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("fashionrec: error:")
    return err


def test_bad_photo_input_is_one_line_and_exit_2(
    labelled_photos: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos, mapping = labelled_photos
    base = ["train", "--index-dir", str(tmp_path / "no-index-needed"), "--photos", str(photos)]

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert "mapping_path" in _one_error_line([*base, "--mapping", str(broken)], capsys)
    assert "mapping_path" in _one_error_line([*base, "--mapping", str(tmp_path / "missing.json")], capsys)
    not_an_object = tmp_path / "list.json"
    not_an_object.write_text('["Tshirts"]')
    assert "mapping_path" in _one_error_line([*base, "--mapping", str(not_an_object)], capsys)

    (photos / "scarf").mkdir()
    (photos / "scarf" / "0.jpg").write_bytes((photos / "hat" / "0.jpg").read_bytes())
    assert "'scarf'" in _one_error_line([*base, "--mapping", str(mapping)], capsys)
    shutil.rmtree(photos / "scarf")

    (photos / "skirt").mkdir()  # in the mapping, but empty
    assert "skirt" in _one_error_line([*base, "--mapping", str(mapping)], capsys)
    (photos / "skirt").rmdir()

    assert "mapping_path" in _one_error_line(base, capsys)  # --photos without --mapping
    assert "photos_dir" in _one_error_line(
        [*base[:-1], str(tmp_path / "nowhere"), "--mapping", str(mapping)], capsys)
    assert "photo_views" in _one_error_line([*base, "--mapping", str(mapping), "--photo-views", "0"], capsys)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port must be between 0 and 65535"),
        (["--max-upload-mb", "0"], "max upload size must be positive"),
    ],
)
def test_serve_rejects_bad_options_in_one_line(
    demo_index: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--index-dir", str(demo_index), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_serve_needs_an_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--index-dir", str(tmp_path / "none")]) == 2
    assert "no index in" in capsys.readouterr().err


def test_cli_add_and_remove(live_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = DEMO_QUERIES / "pants.jpg"
    assert main(["add", "cli-1", str(photo), "--meta", "articleType=Trousers", "--index-dir", str(live_index),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 21
    with Recommender.open(live_index) as rec:
        assert rec.recommend(str(photo), k=1)[0].id == "cli-1"
        assert rec.item("cli-1").metadata["articleType"] == "Trousers"  # type: ignore[union-attr]
    assert main(["add", "cli-2", str(photo), "--meta", "colour=Red", "--index-dir", str(live_index)]) == 2
    assert "unknown column 'colour'" in capsys.readouterr().err
    shoes = DEMO_QUERIES / "shoes.jpg"
    assert main(["add", "cli-3", str(photo), str(shoes), "--index-dir", str(live_index), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["photos"] == 2
    with Recommender.open(live_index) as rec:
        assert (rec.recommend(str(shoes), k=1)[0].id, rec.recommend(str(shoes), k=1)[0].photo) == ("cli-3", 1)
    assert main(["remove", "cli-3", "--index-dir", str(live_index)]) == 0
    assert main(["remove", "cli-1", "--index-dir", str(live_index)]) == 0
    assert main(["remove", "cli-1", "--index-dir", str(live_index)]) == 2
    assert "unknown item id 'cli-1'" in capsys.readouterr().err
    with Recommender.open(live_index) as rec:
        assert rec.item("cli-1") is None and len(rec) == 20


def test_cli_search_json_and_table(demo_text_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "watch", "--index-dir", str(demo_text_index), "-k", "3", "--json",
                 "--filter", "gender=Men"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["query"] == "watch" and len(answer["results"]) == 3
    assert {r["gender"] for r in answer["results"]} == {"Men"} and {r["articleType"] for r in answer["results"]} == {"Watches"}
    assert main(["search", "watch", "--index-dir", str(demo_text_index), "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "watch:" and len(lines) == 3 and lines[1].lstrip().startswith("1.")


@pytest.mark.parametrize(("args", "message"), [
    (["  "], "search text is empty"),
    (["watch", "--filter", "colour=Red"], "unknown filter column"),
    (["watch", "-k", "0"], "k must be between"),
])
def test_cli_mistakes_are_one_line_and_exit_2(demo_text_index: Path, capsys: pytest.CaptureFixture[str],
                                              args: list[str], message: str) -> None:
    assert main(["search", *args, "--index-dir", str(demo_text_index)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_search_without_alignment(demo_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "watch", "--index-dir", str(demo_index)]) == 2
    assert "fashionrec train-text" in capsys.readouterr().err


def test_a_library_warning_is_one_line_on_stderr_and_not_an_error(live_index: Path) -> None:
    (cached,) = (live_index / "onnx").glob("*.onnx")
    cached.write_bytes(b"not a model")  # the library logs a warning and exports again
    done = run_cli("recommend", str(DEMO_IMAGES[0]), "--index-dir", str(live_index), "-k", "2", "--json")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("fashionrec: warning: ")]
    assert len(warnings) == 1 and "re-exporting damaged ONNX cache" in warnings[0]
    assert len(json.loads(done.stdout)["results"]) == 2
