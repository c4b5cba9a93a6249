# make test   create .venv, install the package with its test extra, run the suite
# make demo   create .venv, install everything (notebooks too), run the demo
# Both work on a fresh machine with python3 (>= 3.11) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: test demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.all: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,notebooks]'
	touch $@ $(VENV)/.test

test: $(VENV)/.test
	$(BIN)/python -m pytest

demo: $(VENV)/.all
	$(BIN)/survey demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
