# The course's two commands: `make lab` (open it) and `make test` (check it).
# Both set up a local .venv from requirements.txt first, and redo it when that file changes.
#
# On a machine whose Python already has the course's packages (for instance a GPU box with its
# own CUDA build of torch), run any target in that environment instead: `make test CURRENT_ENV=1`.

VENV        ?= .venv
NOTEBOOKS   := $(sort $(wildcard notebooks/*.ipynb))
NBVAL_FLAGS := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
               --nbval-cell-timeout=600

ifeq ($(CURRENT_ENV),1)
PYTHON := python3
SETUP  :=
else
PYTHON := $(VENV)/bin/python
SETUP  := $(VENV)/.installed
endif

# Notebooks import lecture_utils from the repository root; kernels inherit this.
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export MPLBACKEND := module://matplotlib_inline.backend_inline

.PHONY: help setup lab test test-browser lint unit nbval execute student slides gpu bench \
        readme-gpu clean

help:
	@echo "make lab      set up .venv and open the course in JupyterLab"
	@echo "make test     set up .venv, then lint, unit tests and nbval over every notebook"
	@echo "make test-browser  run the notebooks and slides in headless Chromium"
	@echo "make execute  re-run every notebook in place to refresh its stored outputs"
	@echo "make student  write student copies (solutions removed) into notebooks/student/"
	@echo "make slides   export every notebook as an offline reveal.js deck into build/slides/"
	@echo "make gpu      on a CUDA GPU, in the current Python: tests, notebooks, benchmark report"
	@echo "make bench    the benchmark report alone (build/bench/report.md), on any device"
	@echo "make readme-gpu  copy build/bench/report.json's figures into README.md"
	@echo "make clean    remove .venv and generated files"
	@echo "Add CURRENT_ENV=1 to use the current Python environment instead of .venv."

setup: $(SETUP)

# Rebuilt whenever requirements.txt is newer than the last install.
$(VENV)/.installed: requirements.txt
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	touch $@

# Jupyter refuses to run as root (containers, some cloud machines) unless told it is meant.
lab: $(SETUP)
	$(PYTHON) -m jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# F722: jaxtyping's shape strings ("batch dim") look like syntax errors to pyflakes.
RUFF := $(PYTHON) -m ruff check --line-length 100 --select E4,E7,E9,F,W,I,B,UP --ignore B905,F722

lint: $(SETUP)
ifeq ($(CURRENT_ENV),1)
	@if $(PYTHON) -m ruff --version >/dev/null 2>&1; then $(RUFF) lecture_utils tests; \
	else echo "ruff is not installed in this environment: lint skipped"; fi
else
	$(RUFF) lecture_utils tests
endif

unit: $(SETUP)
	$(PYTHON) -m pytest -q -p no:cacheprovider --ignore=tests/browser tests

nbval: $(SETUP)
	$(PYTHON) -m pytest -q -p no:cacheprovider $(NBVAL_FLAGS) $(NOTEBOOKS)

test: lint
	$(PYTHON) -m pytest -q -p no:cacheprovider --ignore=tests/browser tests $(NBVAL_FLAGS) $(NOTEBOOKS)

# JupyterLab and the slides in headless Chromium (Debian's chromium package; see .ci/run).
test-browser: $(SETUP) slides
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/browser

# Top to bottom, in place, without per-cell timestamps (they would change every run).
execute: $(SETUP)
	$(PYTHON) -m lecture_utils.course normalize $(if $(NB),$(NB),$(NOTEBOOKS))
	$(PYTHON) -m jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=600 --ExecutePreprocessor.record_timing=False \
		$(if $(NB),$(NB),$(NOTEBOOKS))
	$(PYTHON) -m lecture_utils.course normalize $(if $(NB),$(NB),$(NOTEBOOKS))

# Student copies: every worked solution replaced by its stub, outputs cleared.
student: $(SETUP)
	$(PYTHON) -m lecture_utils.course student $(NOTEBOOKS) --out notebooks/student
	@echo "Student copies are in notebooks/student/ (make lab shows them under student/)."

# Slides: each notebook as a reveal.js deck that works offline. The JavaScript it needs comes
# from the npm registry once (needs Node.js/npm) and sits beside the decks in build/slides/vendor.
SLIDES_VENDOR := build/slides/vendor
$(SLIDES_VENDOR)/.installed:
	mkdir -p $(SLIDES_VENDOR)
	npm install --no-audit --no-fund --silent --prefix $(SLIDES_VENDOR) \
		reveal.js@4.6.1 jquery@3.7.1 requirejs@2.3.7 mathjax@2.7.9
	printf 'export default { initialize() {} };\n' > $(SLIDES_VENDOR)/mermaid-stub.mjs
	touch $@

slides: $(SETUP) $(SLIDES_VENDOR)/.installed
	$(PYTHON) -m lecture_utils.course slides $(NOTEBOOKS) --out build/slides
	@echo "Slides are in build/slides/: open one in a browser (no network needed)."

# The GPU check runs in the current Python environment, never .venv: a GPU machine's own CUDA
# build of torch must be the one measured. Without a CUDA GPU it says so and exits with status 2.
GPU_TIME_LIMIT ?= 480
gpu:
	python3 -m lecture_utils.gpu_run --time-limit $(GPU_TIME_LIMIT)

bench: $(SETUP)
	$(PYTHON) -m lecture_utils.bench $(BENCH_FLAGS)

# Any Python with torch will do (.venv if there is one): on a GPU machine, the one make gpu used.
readme-gpu:
	$(if $(wildcard $(PYTHON)),$(PYTHON),python3) -m lecture_utils.bench readme

clean:
	rm -rf $(VENV) notebooks/student build
	find . -name __pycache__ -prune -exec rm -rf {} +
	find . -name .ipynb_checkpoints -prune -exec rm -rf {} +
