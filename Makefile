# Every target works from a fresh clone: the first one run creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev
# ONNX Runtime's wheel: cpu, or gpu on an NVIDIA GPU box (make setup EXTRA=gpu, into a fresh .venv)
EXTRA  ?= cpu

.PHONY: setup system-deps label-studio inference-sdk onnxruntime-gpu test demo bench lint clean

# what framesift needs to run (make demo); the tests', linters' and docs' tools come on top, for make setup/test/lint
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRA)]'
	touch $(STAMP)

$(DEV): $(STAMP)
	$(PY) -m pip install -q -e '.[$(EXTRA),test,docs]'
	touch $(DEV)

setup: $(DEV)

system-deps:
	./scripts/system-deps.sh

# Label Studio for its target's tests, in its own environment (~/.cache/framesift; about 1 GB, once)
label-studio:
	./scripts/label-studio.sh >/dev/null

# Roboflow's inference_sdk client for the tests of `framesift serve`, in its own environment (~/.cache/framesift; once)
inference-sdk:
	./scripts/inference-sdk.sh >/dev/null

# ONNX Runtime's GPU wheel beside the environment, not in it (~/.cache/framesift; about 250 MB, once): the tests run
# framesift with it on this GPU-less machine, where its providers are listed but cannot load
onnxruntime-gpu: setup
	PYTHON=$(PY) ./scripts/onnxruntime-gpu.sh >/dev/null

test: setup system-deps label-studio inference-sdk onnxruntime-gpu
	$(PY) -m pytest

demo: $(STAMP)
	$(VENV)/bin/framesift demo

bench: setup system-deps
	$(PY) benchmarks/run.py

lint: setup
	$(VENV)/bin/ruff check framesift tests benchmarks configs scripts
	$(VENV)/bin/mypy
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) framesift-demo framesift-data .pytest_cache benchmarks/.work site
