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
# the page's browser test drives Debian's chromium (Playwright's own browser download is not
# used): installed here where this runs as root with apt, else that one test is skipped
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 &&
    apt-get install -y -q chromium >/dev/null 2>&1; }) || echo "setup.sh: chromium not installed; the browser test will be skipped"
fi
