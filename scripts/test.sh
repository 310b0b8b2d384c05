#!/usr/bin/env bash
# The whole test suite, with the lint gate first. Extra arguments go to pytest. The slowest
# tests are listed at the end, so a CI log shows where the suite's time goes.
source "$(dirname "$0")/_venv.sh"
ruff check src tests bench
python -m pytest --durations=25 "$@"
