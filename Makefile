# make test   create .venv, install the package with its test extra, run the suite
# make demo   create .venv, install everything (notebooks too), run the demo
# make lint   create .venv, install the lint extra, run ruff (survey/, tests/) and mypy (survey/)
# make bench create .venv, install the benchmarks' peers and servers (as root: apt), run
#            every benchmarks/*.py; each prints one JSON object (targets as value/target/pass)
#            on stdout, kept in $(BENCH_RESULTS) too; a table of the targets goes to stderr
# All work on a fresh machine with python3 (>= 3.11) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: test demo lint bench clean bytecode
BENCHMARKS ?= dns_stage handshake scale profile slow peers certs dnssec dnssec_ad
BENCH_RESULTS ?= bench-results.json

# Recipes that only install say so on stderr: stdout stays the benchmarks' JSON.
$(BIN)/python:
	@echo "creating $(VENV)" >&2
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip >&2

$(VENV)/.test: pyproject.toml | $(BIN)/python
	@echo "installing survey[test,dask] into $(VENV)" >&2
	@$(BIN)/python -m pip install -q -e '.[test,dask]' >&2
	@touch $@

$(VENV)/.all: pyproject.toml | $(BIN)/python
	@echo "installing survey[test,notebooks,dask] into $(VENV)" >&2
	@$(BIN)/python -m pip install -q -e '.[test,notebooks,dask]' >&2
	@touch $@ $(VENV)/.test

$(VENV)/.lint: pyproject.toml | $(BIN)/python
	@echo "installing survey[lint] into $(VENV)" >&2
	@$(BIN)/python -m pip install -q -e '.[lint]' >&2
	@touch $@

# The package's bytecode, as a wheel install would compile it: where PYTHONDONTWRITEBYTECODE
# is set (it is on these machines) every `survey` run would otherwise compile ~80 modules.
bytecode: | $(BIN)/python
	@$(BIN)/python -m compileall -q survey >/dev/null

test: $(VENV)/.test bytecode
	$(BIN)/python -m pytest

lint: $(VENV)/.lint
	$(BIN)/ruff check survey tests
	$(BIN)/python -m mypy

demo: $(VENV)/.all bytecode
	$(BIN)/survey demo

bench: $(VENV)/.test bytecode
	@PYTHON=$(PYTHON) bash benchmarks/setup.sh >&2
	@: > $(BENCH_RESULTS); status=0; for b in $(BENCHMARKS); do \
		echo "== benchmarks/$$b.py" >&2; \
		$(BIN)/python benchmarks/$$b.py > $(BENCH_RESULTS).part || status=1; \
		cat $(BENCH_RESULTS).part; cat $(BENCH_RESULTS).part >> $(BENCH_RESULTS); \
	done; rm -f $(BENCH_RESULTS).part; \
	$(BIN)/python benchmarks/summary.py $(BENCH_RESULTS) >&2; exit $$status

clean:
	rm -rf $(VENV) .venv-peers build *.egg-info .pytest_cache .hypothesis .ruff_cache .mypy_cache $(BENCH_RESULTS)
