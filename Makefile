# Two commands do everything on a fresh machine with Python 3.11 or 3.12 as python3:
#   make train   set up .venv, then train ResNet-20 1w1a + LCR on digits and print results
#   make test    set up .venv, then run the test suite
# and: make lint (ruff, import contracts), make docs (the site, into site/),
# make docs-figures (the docs' figures, from runs trained on digits), make bench.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: setup train test lint docs docs-figures bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# lcr_larq/cli: a command added or removed changes the console scripts.
$(VENV)/.installed: setup.cfg setup.py pyproject.toml lcr_larq/cli | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

$(VENV)/.docs-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev,docs]"
	touch $@

setup: $(VENV)/.installed

train: setup
	$(BIN)/python train.py $(ARGS)

test: setup
	$(BIN)/python -m pytest -q $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

# The site, from docs/ and the docstrings (mkdocs.yml); --strict: a broken link or an
# unresolved API reference fails the build.
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-figures: setup
	$(BIN)/python docs/figures.py $(ARGS)

bench: setup
	$(BIN)/python benchmarks/lcr_overhead.py

clean:
	rm -rf $(VENV) .venv-3.* runs site
