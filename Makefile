# docomplete — the two commands a user needs are `make test` and `make demo`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Nothing may download at run time: no model hub, ever.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup sysdeps test lint typecheck pytest demo bench interop vsix clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[model,eval,dev]'
	@touch $@

# bubblewrap is the sandbox's main isolation layer; install it when we can (root + apt).
sysdeps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; \
	  else echo "note: bubblewrap not installed; the sandbox will use its weaker fallback" >&2; fi; }

setup: $(VENV)/.installed sysdeps

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest -q -p no:cacheprovider

test: lint typecheck pytest

demo: setup
	$(BIN)/docomplete demo

bench: setup
	$(BIN)/docomplete bench sampling --json runs/bench/sampling.json
	$(BIN)/docomplete bench decode --json runs/bench/decode.json
	$(BIN)/docomplete bench sandbox --json runs/bench/sandbox.json
	$(BIN)/docomplete bench lsp --json runs/bench/lsp.json

# Real llama.cpp interop (not part of `make test`): builds llama.cpp's llama-server and
# llama-cpp-python[server] from the PyPI sdist once into $DOCOMPLETE_INTEROP_CACHE (default
# ~/.cache/docomplete/interop; 10-20 min on 2 cores the first time, seconds afterwards), runs
# tests/interop against both servers, then `bench peer`. DOCOMPLETE_INTEROP_MODEL picks the model
# (default: the bundled one; its tokenizer must map to a llama.cpp preset).
interop: setup
	bash tests/interop/build.sh
	DOCOMPLETE_INTEROP=1 $(BIN)/pytest -q -p no:cacheprovider tests/interop
	$(BIN)/docomplete bench peer $(if $(DOCOMPLETE_INTEROP_MODEL),--model $(DOCOMPLETE_INTEROP_MODEL)) --json runs/bench/peer.json

# The VS Code extension package: editors/vscode/docomplete-<version>.vsix (needs node + npm).
vsix:
	cd editors/vscode && npm ci --no-audit --no-fund && npm run package

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
