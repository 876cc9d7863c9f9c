# The README's commands: `make run` and `make test` (both set up .venv on first use).
SHELL := /bin/bash
VENV := .venv
PY_VERSION := $(shell cat .python-version)
PYTHON ?= $(shell PYENV_VERSION=$(PY_VERSION) pyenv which python3.13 2>/dev/null || command -v python3.13 || echo python3.13)
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-luigi lint clean

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 13), sys.version' || \
	  { echo "pipes needs Python 3.13+: install it (pyenv install $(PY_VERSION)) or set PYTHON=..."; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/pipes --module examples.wordcount WordCount --local-scheduler --log-level WARNING

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/local_dag.py --shape wide --n 5000

# What CI checks before the tests: lint everywhere, strict types on pipes/ and contrib/
# (mypy reads its settings and file list from pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check pipes contrib tests benchmarks examples
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) data build *.egg-info

bench-luigi: $(STAMP)
	test -x benchmarks/.luigi-venv/bin/python || $(PYTHON) -m venv benchmarks/.luigi-venv
	benchmarks/.luigi-venv/bin/pip install --quiet luigi==3.8.1
	$(VENV)/bin/python benchmarks/local_dag.py --shape wide --n 1000 --luigi
