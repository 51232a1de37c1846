# Two entry points, both working on a fresh Linux machine with Python 3.11:
#   make demo   build the release, grade the sample submissions (lite), print the table
#   make test   run the test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all build check clean lock

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or run: make PYTHON=python3 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and exact: pip then reuses it instead of resolving a CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m autograder build
	$(PY) -m autograder samples 1.1 --out build/samples/1.1
	$(PY) -m autograder grade 1.1 build/samples/1.1 --out results/demo --profile lite

test: $(STAMP)
	$(PY) -m autograder build --check
	$(PY) -m pytest -q --junitxml=build/test-results.xml  # per-test times, e.g. for section budgets

# Also every mutant and alternative beyond each exercise's required ones (about 4 more minutes).
test-all: $(STAMP)
	$(PY) -m autograder build --check
	$(PY) -m pytest -q --all-variants --junitxml=build/test-results.xml

clean:
	rm -rf build results gradebook.sqlite*

# Re-pin constraints.txt from the current .venv (after changing pyproject.toml and reinstalling).
lock: $(STAMP)
	{ head -4 constraints.txt; $(PY) -m pip freeze --exclude-editable | sed -E 's/^torch==([0-9.]+)\+[a-z0-9]+$$/torch==\1/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
