# Two commands for a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install the project into it.
VENV   ?= .venv
PYTHON ?= python3
PIP    := $(VENV)/bin/python -m pip
STAMP  := $(VENV)/.lofi-installed

.PHONY: install demo test bench bench-real clean-data

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# CPU torch first (a local wheel on our machines); never an unpinned, CUDA torch.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lofi demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(PIP) install --quiet -e '.[dev,bench]'
	$(VENV)/bin/python benchmarks/analysis.py
	$(VENV)/bin/python benchmarks/query.py
	$(VENV)/bin/python benchmarks/render.py
	$(VENV)/bin/python benchmarks/cli.py

# The real-music corpus needs system packages (FluidSynth, a soundfont, sox, packaged game music).
bench-real: $(STAMP)
	$(PIP) install --quiet -e '.[dev,bench]'
	bash benchmarks/realmusic/setup.sh $(VENV)/bin/python
	$(VENV)/bin/python benchmarks/analysis_real.py
	$(VENV)/bin/python benchmarks/analysis_real.py --corpus benchmarks/realmusic/corpus/holdout --split all

clean-data:
	rm -rf data/lofi.duckdb data/export data/dagster_home Tracks/*/
