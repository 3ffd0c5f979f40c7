"""Every ``FASHIONREC_*`` variable is checked where it is read: a bad value is one line naming it, exit 2.

Guarantees tested here: for every variable in ``fashionrec.config.VARIABLES`` and every sub-command,
any value (random text, numbers, edge cases) either leaves the command's outcome exactly as without it (exit 0 for
the commands run for real here) or stops it with exit 2 and exactly one stderr line that names the variable and
says what it accepts; never a traceback. Hand-picked bad values of each variable must be refused, and the
documented good ones accepted. Most runs are in-process (``fashionrec.cli.main``); a few are real processes.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fashionrec.cli import build_parser, main
from fashionrec.config import VARIABLES, ConfigError, check_variable, read_runtime
from fashionrec.errors import FashionrecError
from tests.conftest import DEMO_QUERIES

PHOTO = str(DEMO_QUERIES / "dress.jpg")
MISSING = "/nonexistent/fashionrec-index"

BAD = {  # each must be refused, by the variable's name
    "FASHIONREC_INDEX_DIR": ["", " index", "a\nb", "\t"],
    "FASHIONREC_MODEL": ["", "nosuchmodel", "EfficientNet-Lite2", "efficientnet-lite2 "],
    "FASHIONREC_BACKEND": ["", "gpu", "ONNX", " auto"],
    "FASHIONREC_PRECISION": ["", "fp16", "int4", "FP32"],
    "FASHIONREC_BATCH_SIZE": ["", "0", "-1", "abc", "1.5", "4097", "１", "99999999999999999999"],
    "FASHIONREC_THREADS": ["0", "-2", "two", "1.0", "١", "100000"],
    "FASHIONREC_STORE": ["", "redis", "Faiss"],
    "FASHIONREC_MILVUS_URI": [" http://x", "a\nb"],
    "FASHIONREC_MILVUS_COLLECTION": ["", "1abc", "a-b", "x" * 300, "a b"],
    "FASHIONREC_ENGINE": ["", "dask", "Ray"],
    "FASHIONREC_HOST": ["", "abc def", "-x", "host_name", "256.1.1.1.1", "a..b", "x" * 300],
    "FASHIONREC_PORT": ["", "abc", "-1", "65536", "80.0", "0x50", "1e3", "٨٠"],
    "FASHIONREC_MAX_UPLOAD_MB": ["", "0", "-5", "nan", "inf", "1e309", "ten", "2000"],
    "FASHIONREC_MAX_PIXELS": ["", "0", "-1", "4e7", "abc", "100000000000"],
    "FASHIONREC_CORS_ORIGINS": ["shop.example", "ftp://x", "https://a.example/path", "https://a b"],
    "FASHIONREC_BODY_TIMEOUT": ["", "0", "-1", "nan", "inf", "soon", "100000"],
    "FASHIONREC_HEADER_TIMEOUT": ["", "0", "-1", "nan", "inf", "soon", "100000"],
    "FASHIONREC_HYBRID_WEIGHT": ["", "-0.1", "11", "nan", "inf", "heavy"],
    "FASHIONREC_CONSENSUS_WEIGHT": ["", "-1", "10.5", "nan", "off"],
    "FASHIONREC_CONSENSUS_COLUMN": [" articleType", "a\tb"],
    "FASHIONREC_LOCALISE": ["", "yes", "2", "true", "on"],
    "FASHIONREC_STEER_KIND": ["", "yes", "2", "true", "on"],
    "FASHIONREC_API_KEY": ["short-key", " leading-space-key-0123", "tab\tinside-the-key-0123", "x" * 15],
}
GOOD = {  # documented values, each accepted
    "FASHIONREC_INDEX_DIR": ["index", "/srv/fashion index", "ü/x"],
    "FASHIONREC_MODEL": ["fashion", "efficientnet-lite2", "efficientnet-lite0", "mobilenetv2"],
    "FASHIONREC_BACKEND": ["auto", "onnx", "torch"],
    "FASHIONREC_PRECISION": ["fp32", "int8"],
    "FASHIONREC_BATCH_SIZE": ["1", "32", "4096"],
    "FASHIONREC_THREADS": ["", "1", "16"],
    "FASHIONREC_STORE": ["faiss", "milvus"],
    "FASHIONREC_MILVUS_URI": ["", "http://milvus:19530", "./milvus.db"],
    "FASHIONREC_MILVUS_COLLECTION": ["fashionrec", "_x1"],
    "FASHIONREC_ENGINE": ["local", "ray"],
    "FASHIONREC_HOST": ["127.0.0.1", "0.0.0.0", "::1", "localhost", "api.shop.example"],
    "FASHIONREC_PORT": ["0", "8000", "65535"],
    "FASHIONREC_MAX_UPLOAD_MB": ["10", "0.5", "1024"],
    "FASHIONREC_MAX_PIXELS": ["40000000", "1"],
    "FASHIONREC_CORS_ORIGINS": ["", "https://shop.example", "https://a.example, http://localhost:3000", "*"],
    "FASHIONREC_BODY_TIMEOUT": ["60", "0.5"],
    "FASHIONREC_HEADER_TIMEOUT": ["10", "2.5"],
    "FASHIONREC_HYBRID_WEIGHT": ["0", "0.1", "10"],
    "FASHIONREC_CONSENSUS_WEIGHT": ["0", "0.5"],
    "FASHIONREC_CONSENSUS_COLUMN": ["articleType", "baseColour", ""],
    "FASHIONREC_LOCALISE": ["0", "1"],
    "FASHIONREC_STEER_KIND": ["0", "1"],
    "FASHIONREC_API_KEY": ["", "x" * 16, "s3cret-key/with+symbols=0123"],
}


def test_the_tables_cover_every_variable() -> None:
    assert set(BAD) == set(GOOD) == set(VARIABLES)


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, values in BAD.items() for v in values])
def test_bad_values_are_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_variable(name, value)
    message = str(refused.value)
    assert message.startswith(f"{name} must be ") and "\n" not in message


def test_a_bad_api_key_is_not_quoted_back() -> None:
    with pytest.raises(ConfigError) as refused:
        check_variable("FASHIONREC_API_KEY", "tooshort-secret")
    assert "tooshort-secret" not in str(refused.value) and "15 characters" in str(refused.value)


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, values in GOOD.items() for v in values])
def test_good_values_are_accepted(name: str, value: str) -> None:
    assert check_variable(name, value) == value


@pytest.mark.parametrize("variable", ["FASHIONREC_THREADS", "OMP_NUM_THREADS"])
@pytest.mark.parametrize("value", ["\u00b2", "\u0661", "\u0663\u0662", "\uff13", "0", "-1", "1.5", "two"])
def test_thread_counts_are_ascii_digits_only(variable: str, value: str) -> None:
    """'²'.isdigit() is True yet int('²') fails: such values are refused with the variable's name, never a crash."""
    with pytest.raises(FashionrecError) as refused:
        read_runtime({variable: value})
    assert str(refused.value).startswith(f"{variable} must be an integer from 1 to 1024")


@pytest.mark.parametrize("variable", ["FASHIONREC_THREADS", "OMP_NUM_THREADS"])
def test_thread_counts_in_ascii_digits_are_used(variable: str) -> None:
    assert read_runtime({variable: " 3 "}).thread_count() == 3


# every variable x every sub-command, in-process -----------------------------------------------------------

def commands(index_dir: Path, catalog: Path) -> dict[str, list[str]]:
    """A cheap invocation of each sub-command: run for real where that is quick, else one that fails on its own."""
    return {
        "info": ["info", "--index-dir", str(index_dir), "--json"],
        "recommend": ["recommend", "--index-dir", str(index_dir), "--store", "faiss", "--json", "-k", "2", PHOTO],
        "look": ["look", "--index-dir", str(index_dir), "--store", "faiss", "--json", "-k", "2", PHOTO],
        "trends": ["trends", "--index-dir", str(index_dir), "--json"],
        "serve": ["serve", "--index-dir", str(index_dir), "--store", "faiss"],
        "index": ["index", str(catalog), "--index-dir", str(index_dir), "--model", "efficientnet-lite0",
                  "--image-size", "64", "--precision", "fp32", "--engine", "local", "--store", "faiss"],
        "search": ["search", "--index-dir", MISSING, "red dress"],
        "evaluate": ["evaluate", "--index-dir", MISSING],
        "train": ["train", "--index-dir", MISSING],
        "train-text": ["train-text", "--index-dir", MISSING],
        "train-backbone": ["train-backbone", MISSING, "--output", MISSING + "/weights.pt"],
        "add": ["add", "x1", PHOTO, "--index-dir", MISSING],
        "remove": ["remove", "x1", "--index-dir", MISSING],
        "duplicates": ["duplicates", "--index-dir", str(index_dir), "--json"],
    }


def run_main(argv: list[str], environ: dict[str, str]) -> tuple[int, str]:
    """``main(argv)`` with ``environ`` as the only FASHIONREC_* variables; (exit code, stderr)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FASHIONREC_")}
    err, out = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, {**clean, "FASHIONREC_THREADS": "1", **environ}, clear=True), \
            mock.patch("fashionrec.api.server.serve") as serve, redirect_stderr(err), redirect_stdout(out):
        code = main(argv)
    if argv[0] == "serve" and code == 0:
        assert serve.call_count == 1
    return code, err.getvalue()


@pytest.fixture(scope="module")
def runnable(small_live_index: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The invocations, on a private copy of the small index (``index`` rewrites it, with nothing to change)."""
    index_dir = tmp_path_factory.mktemp("env-index") / "index"
    shutil.copytree(small_live_index, index_dir)
    return commands(index_dir, small_live_index.parent / "catalog")


def test_every_sub_command_is_covered(runnable: dict[str, list[str]]) -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(runnable) == set(sub.choices)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def baseline(runnable: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    """Each invocation's outcome with no FASHIONREC_* variable set (THREADS=1 aside)."""
    outcomes = {name: run_main(argv, {}) for name, argv in runnable.items()}
    for name in ("info", "recommend", "trends", "serve", "index"):
        assert outcomes[name][0] == 0, outcomes[name]
    return outcomes


def values(name: str) -> st.SearchStrategy[str]:
    text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=24)
    return st.one_of(
        st.sampled_from(BAD[name] + GOOD[name]),
        text,
        st.integers(-10**6, 10**13).map(str),
        st.floats().map(str),
        st.sampled_from(["", " ", "0", "1", "-1", "nan", "1e400", "8000 ", " 8000", "TRUE", "None", "null"]),
    )


@pytest.mark.parametrize("command", ["info", "recommend", "trends", "serve", "index", "search", "evaluate", "train",
                                     "train-text", "train-backbone", "add", "remove",
                                     "duplicates"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_value_of_any_variable_is_the_normal_outcome_or_one_line(
    command: str, runnable: dict[str, list[str]], baseline: dict[str, tuple[int, str]], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(VARIABLES)), label="variable")
    value = data.draw(values(name), label="value")
    code, err = run_main(runnable[command], {name: value})
    assert "Traceback" not in err
    assert code in (0, 2)
    try:
        check_variable(name, value)
    except ConfigError:
        lines = err.splitlines()
        assert code == 2 and len(lines) == 1, err
        assert lines[0].startswith(f"fashionrec: error: {name} must be "), err
        return
    assert code == baseline[command][0], err
    if code == 0:
        assert "error" not in err.lower(), err


# a few real processes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("environ", "argv", "name"),
    [
        ({"FASHIONREC_PORT": "abc"}, ["info", "--index-dir", MISSING], "FASHIONREC_PORT"),
        ({"FASHIONREC_MAX_UPLOAD_MB": "nan"}, ["serve", "--index-dir", MISSING], "FASHIONREC_MAX_UPLOAD_MB"),
        ({"FASHIONREC_THREADS": "0"}, ["recommend", "--index-dir", MISSING, PHOTO], "FASHIONREC_THREADS"),
        ({"FASHIONREC_BATCH_SIZE": "x"}, ["index", MISSING], "FASHIONREC_BATCH_SIZE"),
    ],
)
def test_a_bad_variable_is_one_line_from_a_real_process(environ: dict[str, str], argv: list[str], name: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASHIONREC_")} | environ
    proc = subprocess.run([sys.executable, "-m", "fashionrec", *argv], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fashionrec: error: {name} must be "), proc.stderr
