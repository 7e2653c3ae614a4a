# qt_helpers — install, build the book, test, train, benchmark.
# `make setup` builds .venv exactly as CI does (.ci/run): pinned by constraints.txt.

SHELL := /bin/bash
VENV ?= .venv
PY   := $(VENV)/bin/python
PIP  := $(VENV)/bin/pip

BOOK_SRC        := build/book-src
MATHJAX_VERSION := 3.2.2
MATHJAX         := build/node/node_modules/mathjax/es5/tex-mml-chtml.js

.PHONY: help setup test lint train book notebooks bench science lock clean gpu-pack gpu
.DEFAULT_GOAL := help

help:
	@echo "make setup   .venv with the pinned packages of CI (Python 3.11 or 3.12); then: source .venv/bin/activate"
	@echo "make train   a first result: QT on full MNIST, 5 epochs (>= 95 % test accuracy, about a minute on a quiet"
	@echo "             2-core CPU); writes build/train.json and build/train.pt, replacing the last run's"
	@echo "make book    run every chapter at CI size (papermill) and build the book: build/book-src/_build/html"
	@echo "make test    the test suite, as CI runs it;   make lint: ruff"
	@echo "make bench   one QT training step timed per backend;   make science: the chapter 7 grids (hours)"
	@echo "make lock    rewrite constraints.txt from .venv;   make clean: remove .venv and build/"

# constraints.txt is CI's lock (Python 3.11); it installs on 3.11 and 3.12 only (3.10: numpy 2.4 and scipy 1.17 need
# 3.11; 3.13: qiskit-aer 0.14 has no wheel).
PYTHON ?= python3
setup:
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v in ((3, 11), (3, 12)) else \
	  f"make setup: the pinned packages install on Python 3.11 and 3.12, not {v[0]}.{v[1]}: make setup PYTHON=python3.12")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt -c constraints.txt
	# torchquantum/torchpack declare deps they never import (tensorflow, pyscf, tensorboard, ...):
	# their real import-time deps are in requirements.txt, so install them without deps.
	$(PIP) install --no-deps -c constraints.txt torchquantum==0.1.8 torchpack==0.3.1
	$(PIP) install --no-deps -e . -e tools  # the library, and the book's tooling beside it (tools/pyproject.toml)

test:
	$(PY) -m pytest

lint:
	$(VENV)/bin/ruff check .

# Execute every notebooks/*.ipynb once with papermill (small CPU profile) into build/executed/<name>.ipynb
# and <name>.json; notebooks whose outputs are newer than the source are skipped.
notebooks:
	$(PY) -m qtbook.run_notebooks --out build/executed

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

# A first result: QT (1,497 trained parameters generating the CNN's 6,690) on all of MNIST, 5 epochs of the `tuned`
# recipe, seed 42. Each run replaces the last one's build/train.json and build/train.pt (--overwrite, on purpose);
# after a Ctrl-C the line it prints continues the run (--resume). One thread: an MNIST QT step is too small to share
# between two (chapter 6's engine table: about twice as fast on one).
train:
	mkdir -p build
	OMP_NUM_THREADS=1 $(PY) -m qt_helpers train --recipe tuned --epochs 5 --checkpoint build/train.pt --json build/train.json --overwrite

bench:
	$(PY) benchmarks/bench_step.py

# The GPU run (tools/gpu_run.py). `make gpu-pack` here prepares what the GPU machine lacks: the TorchQuantum
# stack as wheels for its Python 3.12: every distribution `python -X importtime -c 'import torchquantum'` loads
# that its image lacks (symengine, 49 MB, is optional for qiskit and left out), and the MNIST and
# CIFAR-10 packs; `make gpu` there installs the wheels (once) into build/gpu/site and runs the stages into $OUT.
# A call carries at most 64 MiB: the wheels and MNIST go with stages 1-3, CIFAR-10 with stage 4.
GPU_DIR    := build/gpu
QT_COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
GPU_WHEELS := torchquantum==0.1.8 torchpack==0.3.1 qiskit==0.46.3 qiskit-terra==0.46.3 qiskit-aer==0.14.2 \
              qiskit-ibm-runtime==0.20.0 rustworkx==0.18.1 stevedore==5.10.0 pbr==7.1.3 dill==0.4.1 ply==3.11 \
              pathos==0.3.5 multiprocess==0.70.19 ppft==1.7.8 pox==0.3.7 multimethod==2.1 toml==0.10.2 \
              loguru==0.7.3 ibm-platform-services==0.77.1 ibm-cloud-sdk-core==3.28.0 websocket-client==1.9.2 \
              PyJWT==2.15.1 requests_ntlm==1.3.0 pyspnego==0.12.4 cryptography==50.0.2 cffi==2.1.1 \
              platformdirs==4.14.8 PySocks==1.7.1 wcwidth==0.9.4
gpu-pack:
	rm -rf $(GPU_DIR)/wheels $(GPU_DIR)/data $(GPU_DIR)/site && mkdir -p $(GPU_DIR)/wheels $(GPU_DIR)/data
	$(PIP) download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d $(GPU_DIR)/wheels $(GPU_WHEELS)
	cp "$${QT_DATA_DIR:-../shared/data}/mnist.npz" "$${QT_DATA_DIR:-../shared/data}/cifar10.npz" $(GPU_DIR)/data/
	du -sh $(GPU_DIR)/wheels $(GPU_DIR)/data/*

gpu:
	if [ ! -d $(GPU_DIR)/site ] && ls $(GPU_DIR)/wheels/*.whl >/dev/null 2>&1; then \
	  python3 -m pip install -q --no-index --no-deps --target $(GPU_DIR)/site $(GPU_DIR)/wheels/*.whl; fi
	PYTHONPATH=$(GPU_DIR)/site:. QT_DATA_DIR=$(GPU_DIR)/data PYTHONUNBUFFERED=1 QT_COMMIT=$(QT_COMMIT) \
	  python3 tools/gpu_run.py --out $${OUT:-results/bench/gpu} $(GPU_ARGS)

# The science chapter's grids (results/runs/): hours on a CPU; finished runs are skipped. JOBS=2 for two cores.
JOBS ?= 1
science:
	$(PY) -m qtbook.experiments seeds shots ablation blocks --dataset mnist --jobs $(JOBS)
	$(PY) -m qtbook.experiments seeds blocks ablation long shots --dataset fashion_mnist --jobs $(JOBS)
	# CIFAR-10's classical runs; its QT runs (drop --runs) need a GPU: minutes each there, hours each on a CPU
	$(PY) -m qtbook.experiments seeds blocks long --dataset cifar10 --runs 'cnn*' --jobs $(JOBS)

# Rewrite constraints.txt from the current .venv (after changing requirements.txt).
lock:
	{ echo "# Lock file for CI: the exact environment built by 'make setup' (Python 3.11, Linux x86_64)."; \
	  echo "# Regenerate: make lock   (pip freeze --all of .venv, minus pip and the project itself)"; \
	  $(PIP) freeze --all --exclude pip --exclude qt-helpers | grep -v -e '^-e ' -e '^#'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache results.json
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
