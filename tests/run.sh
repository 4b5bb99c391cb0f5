#!/bin/sh
# Sets up .venv, installs cliqbot with its dev tools, and runs every check: ruff (lint and
# format), mypy --strict, and the whole pytest suite (which starts its own embedded store).
# With CI=true it also installs Debian's chromium, so the browser test runs instead of skipping.
set -eu
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
if [ "${CI:-}" = "true" ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
