# Two entry points (see README): `make app` and `make test`. Both create .venv when absent and
# install requirements.txt, then the data/weight-only packages of requirements-nodeps.txt with
# --no-deps (their own dependencies are large and unused), then this project itself (pyproject.toml),
# editable, which puts the `lego` command in .venv/bin.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: install app test bench clean-cache

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .   # the `lego` command (= python -m lego_core)
	touch $(STAMP)

install: $(STAMP)

app: install
	$(PY) -m streamlit run app.py --server.port $(PORT)

test: install
	$(PY) -m pytest

bench: install
	$(PY) bench/eval_cache.py
	$(PY) bench/train_speed.py
	$(PY) bench/quality.py

clean-cache:
	find cache -mindepth 1 ! -name .gitkeep -delete
