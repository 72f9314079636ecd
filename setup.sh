#!/usr/bin/env bash
# Set up (or refresh) .venv with umt and everything it needs. Safe to run again.
#   UMT_TORCH  pip arguments for the torch build to install first (default torch==2.13.0:
#              on these machines pip takes the local CPU wheel). Elsewhere give the build
#              you want, e.g. a requirement plus your index option for a CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# shellcheck disable=SC2086  # UMT_TORCH may hold several pip arguments
pip install ${UMT_TORCH:-torch==2.13.0}
pip install --no-deps tinysoundfont
pip install -e '.[dev]'
# after umt, so that pip's resolver never acts on its declared tensorflow (see pyproject.toml)
pip install --no-deps basic-pitch==0.4.0
