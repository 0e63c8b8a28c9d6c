# Quick start: `make sweep` runs every experiment, `make test` runs the tests.
# Both create (or reuse) .venv from the pinned requirements.txt first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= full
JOBS ?= 1
# CIFAR in the official python layout. On machines without internet the data
# ships beside the checkout in ../shared/data and is unpacked into ./data.
SHARED_DATA ?= ../shared/data
export RESNET_KERAS_DATA ?= $(if $(wildcard $(SHARED_DATA)/unpack),$(CURDIR)/data,)
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.PHONY: help venv data test demo sweep notebooks lab app bench clean

help:
	@echo "make sweep [PROFILE=full|quick|smoke] [JOBS=N] [FORCE=1] [ONLY='q1_scratch study_paper']"
	@echo "                                                         run the experiments into outputs/"
	@echo "make test                                                run the test suite"
	@echo "make bench [BENCH_ARGS=--tiny]                           throughput against eager PyTorch"
	@echo "make lab                                                 open the notebooks in JupyterLab"
	@echo "make app [PORT=8000]                                     classify uploaded images with a trained model"
	@echo "make demo                                                train a ResNet-20 for one epoch"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

data:
	@if [ -n "$(RESNET_KERAS_DATA)" ] && [ -x "$(SHARED_DATA)/unpack" ]; then \
	  "$(SHARED_DATA)/unpack" "$(RESNET_KERAS_DATA)"; fi

# Everything on TensorFlow (the default backend), then what exercises models,
# training or inference (tests marked `backend`) again on JAX.
test: venv data
	$(PY) -m pytest
	KERAS_BACKEND=jax $(PY) -m pytest -m backend

sweep: venv data notebooks
	@if [ "$(PROFILE)" = smoke ]; then $(PY) -m resnet_keras.data tiny outputs/.tiny-cifar >/dev/null; fi
	$(PY) -m resnet_keras.sweep --profile $(PROFILE) --jobs $(JOBS) $(if $(FORCE),--force) $(if $(ONLY),--only $(ONLY))

# Paired .ipynb copies of the Jupytext notebooks (git-ignored), for JupyterLab
# and `papermill --help-notebook notebooks/q1_scratch.ipynb`.
notebooks: venv
	@for f in notebooks/*.py; do [ "$${f%.py}.ipynb" -nt "$$f" ] || $(VENV)/bin/jupytext -q --to ipynb "$$f"; done

lab: venv data notebooks
	$(VENV)/bin/jupyter lab notebooks/

# A web page that classifies an uploaded image with any model.h5 under outputs/.
PORT ?= 8000
app: venv
	$(PY) -m resnet_keras.app --outputs outputs --port $(PORT)

# Throughput against eager PyTorch (optional, benchmark-only: pip install torch==2.13.0).
bench: venv
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

demo: venv data
	$(PY) -m resnet_keras.demo

clean:
	rm -rf outputs
