# Everything a fresh machine needs: `make demo` runs the main job, `make test` the test suite.
# torch is pinned through PIP_CONSTRAINT (constraints.txt): any other version pulls GBs of CUDA packages.
VENV ?= .venv
PY := $(VENV)/bin/python
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

.PHONY: install demo test test-slow bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/gliotype demo --out demo-out

test: install
	$(PY) -m pytest -q -m "not slow"

# the acceptance runs that train for many minutes (e.g. colearn's three planted-signal cohorts)
test-slow: install
	$(PY) -m pytest -q -s -m slow

bench: install
	$(PY) benchmarks/run.py --work bench-out/work

clean:
	rm -rf demo-out bench-out .pytest_cache
