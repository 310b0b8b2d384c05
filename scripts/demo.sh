#!/usr/bin/env bash
# The main job on the embedded default: analyse the bundled YOLO11n and print its block table.
source "$(dirname "$0")/_venv.sh" ""
qsplit analyze "$(python -c 'from qsplit.assets import bundled_model_path; print(bundled_model_path())')" "$@"
