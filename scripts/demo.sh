#!/usr/bin/env bash
# The main job on the embedded default: `qsplit demo` on the bundled YOLO11n — local testbed
# (device/edge/cloud agents, emulated links), profiles, noise model, plans, runs, report.
# Extra arguments go to `qsplit demo` (e.g. --out runs/demo).
source "$(dirname "$0")/_venv.sh"
qsplit demo "$@"
