# Fresh-machine entry points: `make train` and `make test` create .venv and install everything.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
RUN ?= runs/yinyang

.PHONY: setup train test test-all lint docs bench clean

# Norse (the second simulator of tests/test_nir_norse.py) goes in without its torchvision
# requirement, which would replace torch; its runtime needs (numpy, torch, nir, nirtorch)
# come with the dev extra.
$(BIN)/delayprop: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps "norse==1.1.0"
	touch $@

setup: $(BIN)/delayprop

train: setup
	$(BIN)/delayprop train yinyang --out $(RUN) --force

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q --runslow

lint: setup
	$(BIN)/ruff check src tests benchmarks

# The documentation site (docs/ and the API reference from the docstrings) in site/; any warning
# fails the build (not with --quiet, which hides them from the check).  NO_MKDOCS_2_WARNING
# silences the Material theme's notice about MkDocs 2.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: setup
	$(BIN)/delayprop bench

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache
