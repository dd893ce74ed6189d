#!/usr/bin/env bash
# Builds .venv-hpo, the environment of the HPO-quality benchmark's peers (Optuna, HEBO,
# Syne Tune, plain BoTorch), next to the repository's own `search` package.
# Run from the repository root: bash benchmarks/setup_hpo_env.sh
set -euo pipefail
python3 -m venv .venv-hpo
.venv-hpo/bin/pip install -q torch==2.13.0 -r benchmarks/requirements-hpo.txt
# HEBO 0.3.6 pins numpy < 1.25 yet runs on numpy 2: install it without its pins.
.venv-hpo/bin/pip install -q --no-deps HEBO==0.3.6
.venv-hpo/bin/python -c "import hebo, optuna, syne_tune, botorch, sklearn; print('ok')"
