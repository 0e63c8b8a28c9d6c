# Quick start: `make sweep` runs every experiment, `make test` runs the tests.
# Both create (or reuse) .venv from the pinned requirements-cpu.txt first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= full
# GPU=1 (once: `make venv GPU=1`) installs requirements-gpu.txt, Keras on JAX
# with CUDA 12; later make commands keep using it and run several runs per GPU.
GPU ?= $(if $(wildcard $(VENV)/.installed-gpu),1,)
# The Keras backend of every target but `test` (which runs them all): tensorflow
# (the default), jax (the default after `make venv GPU=1`) or torch.
BACKEND ?= $(or $(KERAS_BACKEND),$(if $(GPU),jax,tensorflow))
ifeq ($(filter tensorflow jax torch,$(BACKEND)),)
$(error BACKEND=$(BACKEND) is not accepted; use tensorflow, jax or torch)
endif
export KERAS_BACKEND := $(BACKEND)
JOBS ?= $(if $(GPU),auto,1)
# CIFAR in the official python layout. On machines without internet the data
# ships beside the checkout in ../shared/data and is unpacked into ./data.
SHARED_DATA ?= ../shared/data
export RESNET_KERAS_DATA ?= $(if $(wildcard $(SHARED_DATA)/unpack),$(CURDIR)/data,)
export TF_CPP_MIN_LOG_LEVEL ?= 2
# JAX's persistent compilation cache: runs (and tests) of the same network compile their steps once.
export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/outputs/.jax-cache
export PYTHONUNBUFFERED := 1

.PHONY: help venv data test demo sweep studies run reference results reports notebooks lab app publish tensorboard bench precision-check clean

help:
	@echo "make sweep [PROFILE=full|quick|smoke] [JOBS=N|auto] [FORCE=1] [ONLY='q1_scratch study_paper'|all] [DRY_RUN=1]"
	@echo "           [SCHEDULER=tcp://HOST:8786|local]         ... on a Dask cluster whose workers share outputs/"
	@echo "                                                        run the assignment's notebooks (Q1-Q3) into outputs/"
	@echo "                                                        (ONLY: these params files; all: every one)"
	@echo "           [RUNS='paper/resnet-20-* paper/resnet-56-seed0'] ... only these runs (keys or shell patterns)"
	@echo "make studies [PROFILE=..] [JOBS=..] [DRY_RUN=1]         run the studies: $(STUDIES)"
	@echo "           [BACKEND=tensorflow|jax|torch]             ... with that Keras backend (any target)"
	@echo "make run RUN=question/run [PROFILE=..] [P='epochs=2 seed=1']  one run of the plan as a plain script"
	@echo "                                                        (no Jupyter kernel: batch jobs, bare GPU machines)"
	@echo "make reference                                          copy finished full-length runs into results/"
	@echo "                                                        (with their models' test predictions)"
	@echo "make results                                            draw the README's results from results/"
	@echo "make reports [RUNS='q1/...']                            redraw the committed reports (no training)"
	@echo "make test [TEST_JOBS=2]                                 run the test suite (TEST_JOBS pytest processes)"
	@echo "make venv GPU=1                                         set up Keras on JAX with CUDA 12 (NVIDIA GPUs)"
	@echo "make bench [BENCH_ARGS=--tiny]                          throughput against eager PyTorch"
	@echo "make precision-check                                    does mixed bfloat16 train as float32 does? (Q1 quick)"
	@echo "make lab                                                open the notebooks in JupyterLab"
	@echo "make app [PORT=8000] [APP_ARGS=--share]                 the Gradio demo: classify images with a trained model"
	@echo "make publish RUN=question/run [REPO=user/name]          a run's Hugging Face Hub folder: model, card, Space"
	@echo "                                                        (uploaded to REPO with HF_TOKEN or hf auth login)"
	@echo "make tensorboard [TB_PORT=6006]                         every run's curves in TensorBoard, live"
	@echo "make demo                                               train a ResNet-20 for one epoch"

STAMP := $(VENV)/.installed$(if $(GPU),-gpu)
venv: $(STAMP)

$(STAMP): requirements.txt requirements-$(if $(GPU),gpu,cpu).txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-$(if $(GPU),gpu,cpu).txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

data:
	@if [ -n "$(RESNET_KERAS_DATA)" ] && [ -x "$(SHARED_DATA)/unpack" ]; then \
	  "$(SHARED_DATA)/unpack" "$(RESNET_KERAS_DATA)"; fi

# Lint (ruff: pyflakes, pycodestyle, import order, bugbear, pyupgrade; pyproject.toml), then everything on
# TensorFlow (the default backend), then what exercises models,
# training or inference (tests marked `backend`) again on JAX and on PyTorch
# (measured on 2 cores: about 4 and 2 minutes). Each pass runs
# TEST_JOBS pytest processes (pytest-xdist; 0: one process), a test file in
# one of them: tracing or compiling a step and starting a notebook's kernel
# are single-threaded, so one process leaves a second core mostly idle.
TEST_JOBS ?= 2
test: venv data
	$(VENV)/bin/ruff check .
	KERAS_BACKEND=tensorflow $(PY) -m pytest -n $(TEST_JOBS) --dist loadfile
	KERAS_BACKEND=jax $(PY) -m pytest -m backend -n $(TEST_JOBS) --dist loadfile
	@if $(PY) -c "import torch" 2>/dev/null; then set -x; \
	  KERAS_BACKEND=torch $(PY) -m pytest -m backend -n $(TEST_JOBS) --dist loadfile; \
	else echo "test: PyTorch is not installed (requirements-cpu.txt has it): the torch backend pass is skipped"; fi

# The smoke profile trains on tiny generated data, written once.
TINY := outputs/.tiny-cifar
# `make sweep` runs the assignment's question notebooks; `make studies` the studies (params/study_*.yaml);
# ONLY names params files, ONLY=all runs every one.
QUESTIONS := q1_scratch q2_grid q3_transfer q3_own_base
STUDIES := $(sort $(basename $(notdir $(wildcard params/study_*.yaml))))
ONLY ?= $(if $(RUNS),all,$(QUESTIONS))
sweep: venv data notebooks $(if $(filter smoke,$(PROFILE)),$(TINY)/.complete)
	$(PY) -m resnet_keras.sweep --profile $(PROFILE) --jobs $(JOBS) $(if $(FORCE),--force) \
	  $(if $(filter-out all,$(ONLY)),--only $(ONLY)) $(if $(RUNS),--runs $(foreach r,$(RUNS),'$(r)')) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(DRY_RUN),--dry-run)

studies:
	$(MAKE) sweep ONLY='$(STUDIES)'

$(TINY)/.complete: | venv
	$(PY) -m resnet_keras.data tiny $(TINY) >/dev/null
	$(PY) -c 'import resnet_keras as rk; rk.save_h5(rk.build_resnet(8, 100), "$(TINY)/resnet8-cifar100.h5")'
	touch $@

# One run of the plan (question/run, as `make sweep` lists it) executed as a plain Python script, into its
# outputs folder: the notebook's products without a kernel or papermill (resnet_keras/sweep/script.py).
run: venv data $(if $(filter smoke,$(PROFILE)),$(TINY)/.complete)
	@test -n "$(RUN)" || { echo "make run: RUN=question/run is needed, e.g. RUN=paper/resnet-20-seed0" >&2; exit 2; }
	$(PY) -m resnet_keras.sweep.script $(RUN) --profile $(PROFILE) $(foreach p,$(P),-p $(p))

# Reference results (resnet_keras/summary/reference.py): copy the finished full-length runs of outputs/ into results/
# (committed), then draw results/README.md, its figures and the README's results block from results/ alone.
reference: venv data
	$(PY) -m resnet_keras.summary.reference collect

results: venv
	$(PY) -m resnet_keras.summary.reference draw

# The committed runs' reports redrawn by today's notebooks from their models and histories, without training
# (RUNS='q1/cifar10-resnet20-adam-seed0 ...': only these).
reports: venv data
	$(PY) -m resnet_keras.summary.reference redraw $(if $(RUNS),--only $(RUNS))

# Paired .ipynb copies of the Jupytext notebooks (git-ignored), for JupyterLab
# and `papermill --help-notebook notebooks/q1_scratch.ipynb`.
# (jupytext gives a pair the same time, so make sees an .ipynb as up to date until its .py changes.)
notebooks: $(patsubst %.py,%.ipynb,$(wildcard notebooks/*.py))

notebooks/%.ipynb: notebooks/%.py | venv
	$(VENV)/bin/jupytext -q --to ipynb $<

# GPU machines are often containers running as root, where Jupyter refuses to start without --allow-root.
# LAB_ARGS: more options of `jupyter lab` (e.g. --no-browser --port=8890; tests/test_lab.py's headless start).
lab: venv data notebooks
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# The Gradio demo: classify an image with any model.h5 under outputs/, then the committed ones of results/
# (APP_ARGS=--share: a public link).
PORT ?= 8000
app: venv
	$(PY) -m resnet_keras.share.app --outputs outputs --results results --port $(PORT) $(APP_ARGS)

# One finished run for the Hugging Face Hub (resnet_keras/share/publish.py): outputs/<question>/<run>/hub/ holds the
# model in Keras' format, its card and a Gradio Space; with REPO=user/name it is uploaded there.
publish: venv
	@test -n "$(RUN)" || { echo "make publish: RUN=question/run is needed, e.g. RUN=paper/resnet-20-seed0" >&2; exit 2; }
	$(PY) -m resnet_keras.share.publish $(RUN) $(if $(REPO),--repo $(REPO))

# TensorBoard over every run's logs (outputs/<question>/<run>/tensorboard/), all runs side by side, live.
TB_PORT ?= 6006
tensorboard: venv
	$(VENV)/bin/tensorboard --logdir outputs --port $(TB_PORT)

# Throughput against eager PyTorch (optional, benchmark-only: pip install torch==2.13.0):
# the CPU benchmark, then the GPU one, which says so and stops where the backend sees no GPU.
bench: venv
	$(PY) benchmarks/bench.py $(BENCH_ARGS)
	$(PY) benchmarks/gpu_bench.py $(or $(GPU_BENCH_ARGS),--compile)

# Q1's quick profile in float32 and mixed bfloat16, three seeds each (about 15 minutes on a 2-core CPU).
precision-check: venv data
	$(PY) benchmarks/precision_check.py $(PRECISION_ARGS)

demo: venv data
	$(PY) -m resnet_keras.demo

clean:
	rm -rf outputs
