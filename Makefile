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

.PHONY: setup sysdeps test lint typecheck pytest demo bench vsix clean

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
	$(BIN)/docomplete bench sandbox --json runs/bench/sandbox.json
	$(BIN)/docomplete bench lsp --json runs/bench/lsp.json

# The VS Code extension package: editors/vscode/docomplete-<version>.vsix (needs node + npm).
vsix:
	cd editors/vscode && npm ci --no-audit --no-fund && npm run package

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
