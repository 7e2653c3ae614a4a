# qt_helpers — install, build the book, test, train, benchmark.
# `make setup` builds .venv exactly as CI does (.ci/run): pinned by constraints.txt.

SHELL := /bin/bash
VENV ?= .venv
PY   := $(VENV)/bin/python
PIP  := $(VENV)/bin/pip

BOOK_SRC        := build/book-src
MATHJAX_VERSION := 3.2.2
MATHJAX         := build/node/node_modules/mathjax/es5/tex-mml-chtml.js

.PHONY: setup test train book notebooks bench science lock clean

setup:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -r requirements.txt -c constraints.txt
	# torchquantum/torchpack declare deps they never import (tensorflow, pyscf, tensorboard, ...):
	# their real import-time deps are in requirements.txt, so install them without deps.
	$(PIP) install --no-deps -c constraints.txt torchquantum==0.1.8 torchpack==0.3.1
	$(PIP) install --no-deps -e .

test:
	$(PY) -m pytest

# Execute every notebooks/*.ipynb once with papermill (small CPU profile) into build/executed/<name>.ipynb
# and <name>.json; notebooks whose outputs are newer than the source are skipped.
notebooks:
	$(PY) -m qt_helpers.run_notebooks --out build/executed

# MathJax 3 served from the book itself (no CDN): the npm package, pinned.
$(MATHJAX):
	npm install --no-save --no-audit --no-fund --prefix build/node mathjax@$(MATHJAX_VERSION)

# The main job: the book, built from the executed notebooks (results/notebooks/<name>.ipynb where a paper-scale
# copy exists, else build/executed/). Jupyter Book executes nothing; any Sphinx warning fails the build.
book: notebooks $(MATHJAX)
	$(PY) tools/stage_book.py --out $(BOOK_SRC)
	set -o pipefail; $(VENV)/bin/jupyter-book build $(BOOK_SRC) -W -n --keep-going 2>&1 | tee build/book.log \
	  || { echo "=== book build FAILED; warnings and errors (full log: build/book.log) ==="; \
	       grep -E "WARNING|ERROR|CRITICAL|Traceback|Exception" build/book.log; \
	       for r in $(BOOK_SRC)/_build/html/reports/*.log; do [ -f "$$r" ] && { echo "--- $$r"; cat "$$r"; }; done; \
	       exit 1; }
	@echo "book: $(BOOK_SRC)/_build/html/index.html"

train:
	$(PY) -m qt_helpers train --dataset mnist --model qt --backend torchquantum --blocks 16 --epochs 1 --n-train 2000 --n-test 1000 --json results.json

bench:
	$(PY) benchmarks/bench_step.py

# The science chapter's grids (results/runs/): hours on a CPU; finished runs are skipped. JOBS=2 for two cores.
JOBS ?= 1
science:
	$(PY) -m qt_helpers experiment seeds shots ablation blocks --dataset mnist --jobs $(JOBS)
	$(PY) -m qt_helpers experiment seeds blocks ablation long shots --dataset fashion_mnist --jobs $(JOBS)
	# CIFAR-10's classical runs; its QT runs (drop --runs) need a GPU: minutes each there, hours each on a CPU
	$(PY) -m qt_helpers experiment seeds blocks long --dataset cifar10 --runs 'cnn*' --jobs $(JOBS)

# Rewrite constraints.txt from the current .venv (after changing requirements.txt).
lock:
	{ echo "# Lock file for CI: the exact environment built by 'make setup' (Python 3.11, Linux x86_64)."; \
	  echo "# Regenerate: make lock   (pip freeze --all of .venv, minus pip and the project itself)"; \
	  $(PIP) freeze --all --exclude pip --exclude qt-helpers | grep -v -e '^-e ' -e '^#'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache results.json
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
