#!/usr/bin/env bash
# Refresh requirements/lock.txt to the newest releases that pyproject.toml allows, then run the
# whole suite (ruff + pytest) in a fresh virtualenv built from the new lock, and print the
# versions it ran on. Run it before landing; record the versions in docs/BENCHMARKS.md
# ("Dependency releases"). If the suite fails, the new lock is left in place for you to see
# (`git diff requirements/lock.txt`); `git checkout requirements/lock.txt` takes it back.
#
#   bash scripts/refresh-lock.sh            # newest allowed releases -> requirements/lock.txt
#   bash scripts/refresh-lock.sh --oldest   # lowest allowed version of every direct dependency,
#                                           # in a temporary lock; requirements/lock.txt untouched
# Extra arguments after the mode go to pytest.
source "$(dirname "$0")/_venv.sh"   # the current environment brings uv (the dev extra)
mode="newest"
if [ "${1:-}" = "--oldest" ]; then
    mode="oldest"
    shift
    # Old releases beside the newest of their own dependencies warn about each other's
    # deprecations (matplotlib 3.8 and pyparsing 3.3, typer 0.12 and click 8.5); behaviour is
    # what this run checks. The newest run keeps every warning an error.
    set -- -W ignore::DeprecationWarning "$@"
fi
work="$(mktemp -d)"
if [ "$mode" = "newest" ]; then
    out="$root/requirements/lock.txt"
    # From the root with a relative output, so that the lock's header names the command as
    # anyone can re-run it (uv writes the -o path there).
    (cd "$root" && uv pip compile pyproject.toml --extra dev --universal --generate-hashes \
        --upgrade --quiet -o requirements/lock.txt)
else
    out="$work/oldest.txt"
    (cd "$root" && uv pip compile pyproject.toml --extra dev --universal --generate-hashes \
        --resolution lowest-direct --quiet -o "$out")
fi
echo "resolved the $mode allowed releases into $out; running the suite in a fresh virtualenv"
status=0
QSPLIT_VENV="$work/venv" QSPLIT_LOCK="$out" bash "$root/scripts/test.sh" "$@" || status=$?
echo "versions the suite ran on ($mode):"
"$work/venv/bin/python" -m pip list --format=freeze 2>/dev/null \
    | grep -iE '^(highspy|pulp|onnx|onnxruntime|numpy|networkx|scikit-learn|scipy|pyzmq|msgpack|pydantic|typer|rich|matplotlib|pillow|pyyaml)==' \
    | tr '\n' ' '
echo
rm -rf "$work/venv"
exit "$status"
