# openamt: `make quickstart` runs a real tuning job; `make test` runs the test suite.
# Both set up what they need first: .venv (orchestrator) and .venv-mxnet (the MXNet trainer);
# `make test` also the Debian packages the system tests need (.ci/system-packages).

PYTHON ?= python3
VENV := .venv
MXVENV := .venv-mxnet
STAMPS := .stamps
# CPU build by default; on CUDA machines pip picks the matching CUDA build of the same version.
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?=

.PHONY: setup system-packages quickstart test test-fast bench lint clean

setup: $(STAMPS)/venv $(STAMPS)/venv-mxnet

$(STAMPS)/venv: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==$(TORCH_VERSION)
	# compat: a plain path in a .pth file. The default editable finder is imported by every
	# Python start in the venv (16 ms), and every trial and Ray worker is one.
	$(VENV)/bin/pip install -q -e ".[dev,bench,sklearn]" --config-settings editable_mode=compat
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/venv-mxnet: models/requirements-mxnet.txt
	$(PYTHON) -m venv $(MXVENV)
	$(MXVENV)/bin/pip install -q --upgrade pip
	$(MXVENV)/bin/pip install -q -r models/requirements-mxnet.txt
	@mkdir -p $(STAMPS) && touch $@

# The MXNet trainer (small CNN, CPU) on scikit-learn's digits written as a CIFAR-format data set.
quickstart: setup data/digits-cifar
	$(VENV)/bin/openamt tune deploy/jobs/mxnet-digits.yaml

data/digits-cifar: $(STAMPS)/venv-mxnet
	$(MXVENV)/bin/python -m models.digits_cifar --dest $@

# Installs prometheus, chromium, openssh-server and rsync where it can (root, or sudo without a
# password); otherwise stops with the command to run. Instant when they are there.
system-packages:
	@.ci/system-packages

test: system-packages setup
	$(VENV)/bin/ruff check search orchestrator models tests benchmarks
	$(VENV)/bin/pytest -q -ra $(PYTEST_ARGS)

# Unit tests only (no Ray, no services): seconds.
test-fast: setup
	$(VENV)/bin/pytest -q tests/unit

bench: setup
	$(VENV)/bin/python benchmarks/suggest_latency.py
	$(VENV)/bin/python benchmarks/hpo_quality.py

lint: setup
	$(VENV)/bin/ruff check search orchestrator models tests benchmarks
	$(VENV)/bin/ruff format --check search orchestrator models tests benchmarks

clean:
	rm -rf $(VENV) $(MXVENV) $(STAMPS)
