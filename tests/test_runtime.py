"""fashionrec.runtime: the backend and thread options are read from the environment once, at the edge (the command
line), validated there; library code reads the configured values and never the environment."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from fashionrec import runtime
from fashionrec.config import read_runtime
from fashionrec.errors import FashionrecError
from fashionrec.runtime import Runtime
from tests.conftest import CLI_ENV, FAST_MODEL


@pytest.fixture
def restored() -> Iterator[None]:
    previous = runtime.current()
    yield
    runtime.configure(previous)


def test_from_env_reads_and_checks_the_variables() -> None:
    assert read_runtime({}) == Runtime("auto", None)
    assert read_runtime({"FASHIONREC_BACKEND": "onnx", "FASHIONREC_THREADS": "3"}) == Runtime("onnx", 3)
    assert read_runtime({"OMP_NUM_THREADS": "2"}).thread_count() == 2
    assert read_runtime({"OMP_NUM_THREADS": "2", "FASHIONREC_THREADS": "5"}).threads == 5  # ours wins
    for environ, name in [({"FASHIONREC_BACKEND": "tensorrt"}, "FASHIONREC_BACKEND"),
                          ({"FASHIONREC_THREADS": "\u00b2"}, "FASHIONREC_THREADS"),
                          ({"FASHIONREC_THREADS": "0"}, "FASHIONREC_THREADS"),
                          ({"OMP_NUM_THREADS": "many"}, "OMP_NUM_THREADS")]:
        with pytest.raises(FashionrecError, match=name):
            read_runtime(environ)
    with pytest.raises(FashionrecError, match="backend must be one of"):
        Runtime(backend="gpu")


def test_the_library_reads_the_configured_runtime_not_the_environment(
    restored: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FASHIONREC_BACKEND", "torch")
    monkeypatch.setenv("FASHIONREC_THREADS", "1")
    runtime.configure(Runtime())
    assert type(FAST_MODEL.build()).__name__ == "OnnxEmbedder"  # the default, whatever the environment says
    from fashionrec.embedders.preprocess import thread_count

    assert thread_count() == Runtime().thread_count()
    runtime.configure(Runtime(backend="torch", threads=1))
    assert type(FAST_MODEL.build()).__name__ == "TorchEmbedder" and thread_count() == 1


def test_the_command_line_reads_them_once_with_one_clear_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "fashionrec", "info", "--index-dir", "nowhere"],
                          env={**CLI_ENV, "OMP_NUM_THREADS": "lots"}, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "fashionrec: error: OMP_NUM_THREADS must be an integer from 1 to 1024, got 'lots'"]
