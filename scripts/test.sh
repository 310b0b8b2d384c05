#!/usr/bin/env bash
# The whole test suite, with the lint gate first. Extra arguments go to pytest.
source "$(dirname "$0")/_venv.sh"
ruff check src tests bench
python -m pytest "$@"
