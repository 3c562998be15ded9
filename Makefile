# Two entry points: `make demo` and `make test`. Every pip call goes through the
# constraints file so the CPU torch wheel is kept (an unconstrained resolve pulls CUDA).
VENV ?= .venv
PY := $(VENV)/bin/python
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export SCORENET_DATA ?= $(abspath $(CURDIR)/../shared/data)

.PHONY: venv demo test lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -c constraints.txt torch==2.13.0
	$(PY) -m pip install -c constraints.txt -e ".[napari,test]"  # napari: the demo and the widget tests
	touch $@

demo: venv
	@if [ -n "$$DISPLAY" ]; then \
		$(PY) -m napari_scorenet.demo --screenshot demo-output/demo.png; \
	else \
		echo "no display: running the demo under Xvfb"; \
		xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) -m napari_scorenet.demo --screenshot demo-output/demo.png --quit; \
	fi

test: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: venv
	$(VENV)/bin/scorenet bench --out benchmarks/results

clean:
	rm -rf $(VENV) build dist *.egg-info demo-output
