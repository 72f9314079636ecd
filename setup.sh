#!/usr/bin/env bash
# Set up (or refresh) .venv with umt and everything it needs. Safe to run again.
#   UMT_TORCH  the torch requirement to install first (default torch==2.13.0: on these
#              machines pip takes the local CPU wheel; on a GPU machine set it to the
#              CUDA build you want, e.g. UMT_TORCH="torch==2.13.0" with your index URL).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install "${UMT_TORCH:-torch==2.13.0}"
pip install --no-deps tinysoundfont
pip install -e '.[dev]'
