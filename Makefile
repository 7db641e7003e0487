# hybrid: the two README commands (quickstart, test), the docs site and a few helpers.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: quickstart test test-slow docs bench bench-serve bench-survey scale lint format clean-outputs wheels gpu-check serve-venv

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# setup.cfg pins torch/torchvision to the default PyPI builds (the local +cpu wheel has no torchvision).
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# := : the folder is fixed once per make run, so the train and infer lines name the same one
QUICKSTART_DIR := outputs/quickstart/$(shell date +%Y-%m-%d_%H-%M-%S)

quickstart: $(STAMP)
	$(PY) train.py experiment=quickstart hydra.run.dir=$(QUICKSTART_DIR)/train
	$(PY) infer.py ckpt_path=$(QUICKSTART_DIR)/train/checkpoints/best.pt hydra.run.dir=$(QUICKSTART_DIR)/infer_test
	$(PY) infer.py ckpt_path=$(QUICKSTART_DIR)/train/checkpoints/best.pt input=data/synthetic/test \
		hydra.run.dir=$(QUICKSTART_DIR)/infer_folder
	@echo
	@echo "quickstart results in $(QUICKSTART_DIR):"
	@echo "  train/        checkpoints/best.pt, metrics.json, history.csv, predictions.csv, confusion_matrix.png"
	@echo "  infer_test/   the test split re-scored from the checkpoint (metrics.json, predictions.csv)"
	@echo "  infer_folder/ predictions.csv for every image in data/synthetic/test"

test: $(STAMP)
	$(PY) -m pytest

# The end-to-end runs left out of make test (CI runs them after it).
test-slow: $(STAMP)
	$(PY) -m pytest -m slow

# The documentation site (mkdocs-material) into site/; --strict: a broken link, a missing page or a
# missing included result file fails the build. The configuration page's key tables come from the
# schemas (docs/hooks/config_keys.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The serving install (docs/robot.md): numpy, Pillow, onnxruntime, PyAV and the survey's OCR (RapidOCR,
# OpenCV headless), then hybrid itself without its training dependencies; .venv-serve/bin/hybrid serve
# MODEL.onnx INPUT. It carries no installer (no pip, no setuptools: this Python's pip installs into it,
# pip >= 22.3) and no bytecode for modules never imported (--no-compile): about 430 MB, not 460.
# Editable (-e): the checkout's code, as it changes (a robot installs a copy: pip install --no-deps .).
SERVE_VENV := .venv-serve
SERVE_STAMP := $(SERVE_VENV)/.installed
SERVE_PIP := $(PYTHON) -m pip --python $(SERVE_VENV)/bin/python install --quiet --no-compile

$(SERVE_STAMP): requirements-serve.txt setup.cfg pyproject.toml
	test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv --without-pip $(SERVE_VENV)
	$(SERVE_PIP) -r requirements-serve.txt
	$(SERVE_PIP) --no-deps -e .
	touch $(SERVE_STAMP)

serve-venv: $(SERVE_STAMP)
	@du -sh $(SERVE_VENV)

# Throughput: hybrid's data path + engine vs a seed-style path vs the model alone (a few minutes on
# 2 CPU cores); knobs: make bench BENCH_ARGS="--rounds 5 --train-batches 8" (see --help).
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) bench/throughput.py $(BENCH_ARGS)

# All of Sewer-ML without the data (bench/scale.py): a tree of 1.17 M Sewer-ML-style names (hard links)
# and prepare's images/s on 1 core and on every core; knobs: make scale SCALE_ARGS="--rows 20000".
SCALE_ARGS ?=
scale: $(STAMP)
	$(PY) bench/scale.py $(SCALE_ARGS)

# The serving install against infer.py on one model, side by side (docs/robot.md):
# make bench-serve BENCH_SERVE_ARGS="--ckpt <run>/checkpoints/best.pt"
bench-serve: $(STAMP) $(SERVE_STAMP)
	$(PY) bench/serving.py $(BENCH_SERVE_ARGS)

# The draft survey's acceptance figures (docs/survey.md): counter reading, distance error, observations
# against the synthetic truth, survey time against serve time, the serving install's size:
# make bench-survey BENCH_SURVEY_ARGS="--model <export>/model.onnx"
BENCH_SURVEY_ARGS ?=
bench-survey: $(STAMP) $(SERVE_STAMP)
	$(PY) bench/survey.py --results bench/results/survey_x86.md --screenshot docs/images/survey_report.png $(BENCH_SURVEY_ARGS)

# A GPU machine without a package registry: its Python has torch and torchvision; the project's other
# (pure-Python) dependencies travel as wheels, at the versions this venv pinned (setup.cfg).
WHEELS := .wheels
WHEEL_PACKAGES := hydra-core|omegaconf|antlr4-python3-runtime
wheels: $(STAMP)
	mkdir -p $(WHEELS)
	$(PY) -m pip freeze | grep -iE '^($(WHEEL_PACKAGES))==' > $(WHEELS)/requirements.txt
	$(PY) -m pip wheel --quiet --no-deps -w $(WHEELS) -r $(WHEELS)/requirements.txt
	@ls $(WHEELS)

# The CUDA check (bench/gpu_check.py): cuda tests, throughput, one JSON + one markdown table. Runs with
# the machine's own Python (torch preinstalled); refuses in one line where there is no CUDA device.
GPU_PYTHON ?= $(shell test -x $(PY) && echo $(PY) || echo python3)
GPU_CHECK_ARGS ?=
gpu-check:
	$(GPU_PYTHON) bench/gpu_check.py --wheels $(WHEELS) $(GPU_CHECK_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
