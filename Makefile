# Two commands do everything on a fresh machine with Python 3.11 or 3.12 as python3:
#   make train   set up .venv, then train ResNet-20 1w1a + LCR on digits and print results
#   make test    set up .venv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: setup train test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# lcr_larq/cli: a command added or removed changes the console scripts.
$(VENV)/.installed: setup.cfg setup.py pyproject.toml lcr_larq/cli | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

train: setup
	$(BIN)/python train.py $(ARGS)

test: setup
	$(BIN)/python -m pytest -q $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

bench: setup
	$(BIN)/python benchmarks/lcr_overhead.py

clean:
	rm -rf $(VENV) .venv-3.* runs
