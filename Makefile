# The course's two commands: `make lab` (open it) and `make test` (check it).
# Both set up a local .venv first: the packages pinned in requirements.txt and requirements.lock,
# and the course itself (`pip install -e .`), redone when any of those files changes.
#
# On a machine whose Python already has the course's packages (for instance a GPU box with its
# own CUDA build of torch), run any target in that environment instead: `make test CURRENT_ENV=1`.

VENV        ?= .venv
LOCK        := requirements.lock
NOTEBOOKS   := $(sort $(wildcard notebooks/*.ipynb))
# The sanitizers and the kernel come from conftest.py, so `pytest --nbval notebooks/` agrees.
NBVAL_FLAGS := --nbval --nbval-cell-timeout=600
PYTEST       = $(PYTHON) -m pytest -q
# One worker per core where pytest-xdist is installed; a notebook stays whole on its worker.
XDIST        = $$($(PYTHON) -c "import xdist" 2>/dev/null && echo "-n auto --dist loadfile")

ifeq ($(CURRENT_ENV),1)
PYTHON := python3
SETUP  :=
# That environment may not have the course installed: kernels import it from this checkout.
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
else
PYTHON := $(VENV)/bin/python
SETUP  := $(VENV)/.installed
endif

export MPLBACKEND := module://matplotlib_inline.backend_inline

# uv installs the stack in seconds where pip takes minutes; pip is the fallback. uv does not read
# pip's settings, so a local wheel folder or mirror given to pip is passed on to it.
SYSTEM_UV := $(shell command -v uv 2>/dev/null)
UV_ENV = $(if $(PIP_FIND_LINKS),UV_FIND_LINKS="$(PIP_FIND_LINKS)") \
         $(if $(PIP_INDEX_URL),UV_DEFAULT_INDEX="$(PIP_INDEX_URL)")

.PHONY: help setup lab test test-slow test-browser lint unit nbval execute student slides site \
        gpu bench readme-gpu lock clean

help:
	@echo "make lab      set up .venv and open the course in JupyterLab"
	@echo "make test     set up .venv, then lint, unit tests and nbval over every notebook"
	@echo "make test-slow  what make test leaves out: each student copy run top to bottom"
	@echo "make test-browser  the notebooks, slides and site in headless Chromium"
	@echo "make execute  re-run every notebook in place to refresh its stored outputs"
	@echo "make student  write student copies (solutions removed) into notebooks/student/"
	@echo "make slides   two offline reveal.js decks a notebook (all of it, and its lecture path) into build/slides/, and the README's lecture plan"
	@echo "make gpu      on a CUDA GPU, in the current Python: tests, notebooks, benchmark report"
	@echo "make bench    the benchmark report alone (build/bench/report.md), on any device"
	@echo "make readme-gpu  copy build/bench/report.json's figures into README.md"
	@echo "make site     build the course as an offline website into build/site/"
	@echo "make lock     re-resolve requirements.lock (every pinned package) with uv"
	@echo "make clean    remove .venv and generated files (never the student copies)"
	@echo "Add CURRENT_ENV=1 to use the current Python environment instead of .venv."

setup: $(SETUP)

# Rebuilt whenever the pins or the package's metadata change. The lock is a constraints file:
# it pins every package the course pulls in, except torch, whose build (CPU or CUDA) the
# machine decides; requirements.txt pins torch's version.
$(VENV)/.installed: requirements.txt $(LOCK) pyproject.toml
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	@uv="$(SYSTEM_UV)"; \
	if [ -z "$$uv" ] && $(VENV)/bin/python -m pip install --quiet uv >/dev/null 2>&1; then \
	  uv=$(VENV)/bin/uv; fi; \
	if [ -n "$$uv" ]; then \
	  echo "installing requirements.txt, pinned by $(LOCK), and the course, with uv"; \
	  $(UV_ENV) $$uv pip install --quiet --compile-bytecode --python $(VENV)/bin/python \
	    -r requirements.txt -c $(LOCK) -e . ; \
	else \
	  echo "uv is not available: installing with pip (a few minutes)"; \
	  $(VENV)/bin/python -m pip install --quiet -r requirements.txt -c $(LOCK) -e . ; \
	fi
	touch $@

# Re-resolve every pin from requirements.txt (for every platform and Python >= 3.11), with uv.
lock: $(SETUP)
	$(eval UV := $(or $(SYSTEM_UV),$(wildcard $(VENV)/bin/uv)))
	$(if $(UV),,$(error make lock needs uv: `python3 -m pip install uv`, then run it again))
	$(UV) pip compile requirements.txt --universal --python-version 3.11 --no-emit-package torch \
		--custom-compile-command "make lock" --quiet -o $(LOCK)
	@echo "$(LOCK) refreshed: run make test, then commit it with the outputs it changes."

# JupyterLab with the course's settings (course_tools/lab.py): no news pop-up, no update check.
# Jupyter refuses to run as root (containers, some cloud machines) unless told it is meant.
lab: $(SETUP)
	$(PYTHON) -m course_tools.lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# F722: jaxtyping's shape strings ("batch dim") look like syntax errors to pyflakes.
RUFF := $(PYTHON) -m ruff check --line-length 100 --select E4,E7,E9,F,W,I,B,UP --ignore B905,F722

lint: $(SETUP)
ifeq ($(CURRENT_ENV),1)
	@if $(PYTHON) -m ruff --version >/dev/null 2>&1; then $(RUFF) lecture_utils course_tools tests; \
	else echo "ruff is not installed in this environment: lint skipped"; fi
else
	$(RUFF) lecture_utils course_tools tests
endif

unit: $(SETUP)
	$(PYTEST) $(XDIST) -m "not slow" --ignore=tests/browser tests

nbval: $(SETUP)
	$(PYTEST) $(XDIST) $(NBVAL_FLAGS) $(NOTEBOOKS)

# The notebooks first: they are the longest files, and a worker that takes one last idles the other.
test: lint
	$(PYTEST) $(XDIST) -m "not slow" $(NBVAL_FLAGS) $(NOTEBOOKS) --ignore=tests/browser tests

# What make test leaves out for speed: each notebook run again as a student's copy.
test-slow: $(SETUP)
	$(PYTEST) $(XDIST) -m slow --ignore=tests/browser tests

# JupyterLab and the slides in headless Chromium (Debian's chromium package; see .ci/run).
test-browser: $(SETUP) slides site
	$(PYTEST) tests/browser

# Top to bottom, in place, without per-cell timestamps (they would change every run); then the
# README's lecture plan, which covers every notebook, whichever were executed.
execute: $(SETUP)
	$(PYTHON) -m course_tools.colab sync $(if $(NB),$(NB),$(NOTEBOOKS))
	$(PYTHON) -m course_tools.course normalize $(if $(NB),$(NB),$(NOTEBOOKS))
	$(PYTHON) -m jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=600 --ExecutePreprocessor.record_timing=False \
		$(if $(NB),$(NB),$(NOTEBOOKS))
	$(PYTHON) -m course_tools.course normalize $(if $(NB),$(NB),$(NOTEBOOKS))
	$(PYTHON) -m course_tools.lecture readme $(NOTEBOOKS)

# Student copies: every worked solution replaced by its stub, outputs cleared.
# A copy a student has edited or run is kept, never overwritten: only untouched ones refresh.
STUDENT_DIR ?= notebooks/student
student: $(SETUP)
	$(PYTHON) -m course_tools.course student $(NOTEBOOKS) --out $(STUDENT_DIR)
	@echo "Student copies are in $(STUDENT_DIR)/ (make lab shows notebooks/student/ as student/)."

# Slides: each notebook as reveal.js decks that work offline. The JavaScript they need comes
# from the npm registry once (needs Node.js/npm) and sits beside the decks in build/slides/vendor.
SLIDES_VENDOR := build/slides/vendor
$(SLIDES_VENDOR)/.installed:
	mkdir -p $(SLIDES_VENDOR)
	npm install --no-audit --no-fund --silent --prefix $(SLIDES_VENDOR) \
		reveal.js@4.6.1 jquery@3.7.1 requirejs@2.3.7 mathjax@2.7.9
	touch $@

# Two decks a notebook: <nb>.slides.html, all of it, and <nb>.lecture.slides.html, its lecture
# path (no optional sections, no solutions). The README's lecture plan is refreshed with them.
slides: $(SETUP) $(SLIDES_VENDOR)/.installed
	$(PYTHON) -m course_tools.course slides $(NOTEBOOKS) --out build/slides
	$(PYTHON) -m course_tools.lecture readme $(NOTEBOOKS)
	@echo "Slides are in build/slides/: open one in a browser (no network needed)."

# The course as a website: every executed notebook a page, in course order, solutions folded;
# MathJax comes from the slides' vendor folder, so the pages need no network either.
site: $(SETUP) $(SLIDES_VENDOR)/.installed
	$(PYTHON) -m course_tools.site $(NOTEBOOKS) --out build/site --vendor $(SLIDES_VENDOR)
	@echo "The site is in build/site/: open build/site/index.html (no network needed)."

# The GPU check runs in the current Python environment, never .venv: a GPU machine's own CUDA
# build of torch must be the one measured. Without a CUDA GPU it says so and exits with status 2.
GPU_TIME_LIMIT ?= 480
gpu:
	python3 -m course_tools.gpu_run --time-limit $(GPU_TIME_LIMIT)

bench: $(SETUP)
	$(PYTHON) -m course_tools.bench $(BENCH_FLAGS)

# Any Python with torch will do (.venv if there is one): on a GPU machine, the one make gpu used.
readme-gpu:
	$(if $(wildcard $(PYTHON)),$(PYTHON),python3) -m course_tools.bench readme

clean:
	rm -rf $(VENV) build
	find . -name __pycache__ -prune -exec rm -rf {} +
	find . -path ./notebooks/student -prune -o -name .ipynb_checkpoints -prune -exec rm -rf {} +
	@echo "notebooks/student/ is kept: it may hold a student's work."
