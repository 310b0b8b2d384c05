# Shared by scripts/demo.sh, scripts/test.sh and scripts/refresh-lock.sh: create the virtualenv
# (once) and install exactly the locked, hash-checked versions in requirements/lock.txt, then
# qsplit itself (editable, no further dependencies). pyproject.toml keeps version *ranges* for
# people who depend on qsplit as a library; the scripts install what the suite was run against.
# Usage: source scripts/_venv.sh
# Environment: PYTHON (interpreter, ≥ 3.11), QSPLIT_VENV (virtualenv folder, default .venv),
# QSPLIT_LOCK (requirements file, default requirements/lock.txt).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "qsplit needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 2
fi
venv="${QSPLIT_VENV:-$root/.venv}"
lock="${QSPLIT_LOCK:-$root/requirements/lock.txt}"
if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
stamp="$venv/.qsplit-installed"
if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ] \
    || [ "$(cat "$stamp")" != "$lock" ]; then
    echo "installing the locked dependencies ($lock) and qsplit into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --require-hashes --no-deps -r "$lock"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$root"
    echo "$lock" >"$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$root"
