# Two entry points (see README): `make demo` and `make test`. Both install what they need first (the demo: the
# torch-free `pip install .` alone, in $(SERVE_VENV); the tests: everything, in $(VENV)).
VENV ?= .venv
SERVE_VENV ?= .venv-serve
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo test test-fast chromium torch-free

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,test]'
	touch $@

install: $(VENV)/.installed

# `pip install .` alone (no PyTorch): the environment tests/test_torch_free_install.py serves from
torch-free:
	test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install -q .

chromium:
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# the demo needs only the torch-free install: the default model indexes from its shipped ONNX export
demo: torch-free
	$(SERVE_VENV)/bin/fashionrec index demo/catalog --index-dir demo-index
	$(SERVE_VENV)/bin/fashionrec recommend demo/queries/*.jpg --index-dir demo-index --sheet demo-index/sheet.png
	$(SERVE_VENV)/bin/fashionrec look demo/street/*.jpg --index-dir demo-index --sheet demo-index/look.png

test: install chromium torch-free
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q

# the fast tier: every test not marked slow (see pyproject's markers)
test-fast: install
	$(PY) -m pytest -q -m "not slow"
