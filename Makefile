# amdd-kit: two commands for a newcomer (see README.md)
#   make demo   set up .venv and run the whole notebook series on the embedded synthetic data
#   make test   set up .venv and run the test suite (unit tests + papermill-executed notebooks)
# Both create or refresh .venv themselves; the install is skipped while it is current.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.amdd-kit-installed
RUN    ?= runs/demo
DATA   ?= data/synthetic
CONFIG ?= tiny
# free disk the first install needs: the venv is ~8.6 GB (torch's CUDA wheels)
NEED_GB ?= 10

export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export MPLCONFIGDIR ?= $(CURDIR)/.cache/matplotlib
# OpenMP threads sleep while they wait (amdd_kit/__init__.py says why); the kernel spec sets it too
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo test test-fast clean-runs chromium

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "amdd-kit: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)" || { \
	  free=$$(df -Pk $(VENV) | awk 'NR==2 {print int($$4 / 1048576)}'); \
	  if [ "$$free" -lt $(NEED_GB) ]; then \
	    echo "amdd-kit: installing needs about $(NEED_GB) GB free for $(VENV) (torch's CUDA wheels); this disk has $$free GB. Free some space (old runs/, test outputs) or put the environment on a bigger disk: make VENV=/big/disk/amdd-venv ..." >&2; exit 2; fi; }
	@echo ">> installing amdd-kit and its dependencies into $(VENV) (first time: several minutes, about 8 GB)"
	@start=$$(date +%s); \
	$(PY) -m pip install --quiet --upgrade pip && \
	$(PY) -m pip install --quiet -e ".[test,faces]" && \
	$(PY) -m ipykernel install --sys-prefix --name amdd-kit --display-name "amdd-kit (.venv)" --env OMP_WAIT_POLICY PASSIVE >/dev/null && \
	echo ">> set-up took $$(( $$(date +%s) - start )) s; Jupyter kernel 'amdd-kit' registered"
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/amdd-kit series --out $(RUN) --config $(CONFIG) --data $(DATA)
	@echo ">> outputs: $(RUN)/ (executed notebooks in $(RUN)/notebooks/, report: $(RUN)/report.html)"

# Debian's chromium for the browser tests (tests/browser.py: apt-get as root, else a warning;
# Playwright drives it through executable_path, its own browser download is not needed)
chromium: setup
	@$(PY) -c "import sys; sys.path.insert(0, 'tests'); import browser; sys.exit(browser.ensure_chromium() is None)" \
		|| echo ">> no chromium: the browser tests will be skipped" >&2

test: setup chromium
	$(PY) -m pytest -q
	@echo ">> test outputs (executed notebooks, runs) were written under $${AMDD_TEST_DIR:-the pytest temp dir}"

test-fast: setup
	$(PY) -m pytest -q -m "not notebooks and not browser"

clean-runs:
	rm -rf runs/demo

# the course lab (README "For instructors"); no set-up step: run `make setup` (or `make demo`) first
#   make lab                              student / instructor / autograder versions in $(LAB)
#   make lab-grade SUBMISSIONS=DIR        grade DIR/**/*.ipynb on $(RUN) and $(DATA) -> DIR/grades.csv
LAB ?= build/lab
SUBMISSIONS ?= submissions
.PHONY: lab lab-grade

lab:
	@test -x $(VENV)/bin/amdd-kit || { echo "amdd-kit: $(VENV) is not set up: run 'make setup' first" >&2; exit 2; }
	$(VENV)/bin/amdd-kit lab build --out $(LAB)

lab-grade:
	@test -x $(VENV)/bin/amdd-kit || { echo "amdd-kit: $(VENV) is not set up: run 'make setup' first" >&2; exit 2; }
	$(VENV)/bin/amdd-kit lab grade $(SUBMISSIONS) --build $(LAB) -p run_dir $(RUN) -p data_dir $(DATA)
