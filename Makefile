# qt_helpers — install, test, train, benchmark.
# `make setup` builds .venv exactly as CI does (.ci/run): pinned by constraints.txt.

VENV ?= .venv
PY   := $(VENV)/bin/python
PIP  := $(VENV)/bin/pip

.PHONY: setup test train bench lock clean

setup:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -r requirements.txt -c constraints.txt
	# torchquantum/torchpack declare deps they never import (tensorflow, pyscf, tensorboard, ...):
	# their real import-time deps are in requirements.txt, so install them without deps.
	$(PIP) install --no-deps -c constraints.txt torchquantum==0.1.8 torchpack==0.3.1
	$(PIP) install --no-deps -e .

test:
	$(PY) -m pytest

train:
	$(PY) -m qt_helpers train --dataset mnist --model qt --backend torchquantum --blocks 16 --epochs 1 --n-train 2000 --n-test 1000 --json results.json

bench:
	$(PY) benchmarks/bench_step.py

# Rewrite constraints.txt from the current .venv (after changing requirements.txt).
lock:
	{ echo "# Lock file for CI: the exact environment built by 'make setup' (Python 3.11, Linux x86_64)."; \
	  echo "# Regenerate: make lock   (pip freeze --all of .venv, minus pip and the project itself)"; \
	  $(PIP) freeze --all --exclude pip --exclude qt-helpers | grep -v -e '^-e ' -e '^#'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache results.json
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
