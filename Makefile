# Every target works from a fresh clone: the first one run creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps label-studio test demo bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

system-deps:
	./scripts/system-deps.sh

# Label Studio for its target's tests, in its own environment (~/.cache/framesift; about 1 GB, once)
label-studio:
	./scripts/label-studio.sh >/dev/null

test: setup system-deps label-studio
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/framesift demo

bench: setup system-deps
	$(PY) benchmarks/run.py

lint: setup
	$(VENV)/bin/ruff check framesift tests benchmarks configs scripts
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) framesift-demo framesift-data .pytest_cache benchmarks/.work
