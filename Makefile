# The two commands of the README's quick start, and the tools around them.
# Each target sets up what it needs: the first use creates .venv and installs railguard into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)  ## run the demo of the main job on the bundled example
	@$(BIN)/python examples/demo.py

test: $(STAMP)  ## run the test suite
	@$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)  ## the import contracts (pyproject.toml [tool.importlinter]), ruff and mypy --strict on src
	@$(BIN)/lint-imports
	@$(BIN)/ruff check src tests examples bench
	@$(BIN)/mypy

BENCH ?= backup
bench: $(STAMP)  ## run one benchmark by hand: make bench BENCH=probe (see bench/README.md)
	@$(BIN)/python bench/$(BENCH).py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build dist
