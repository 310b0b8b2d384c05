# Shared by scripts/demo.sh and scripts/test.sh: create .venv (once) and install qsplit into it.
# Usage: source scripts/_venv.sh EXTRAS   (EXTRAS like "" or "[dev]")
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "qsplit needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 2
fi
venv="${QSPLIT_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
stamp="$venv/.qsplit-installed${1:-}"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    echo "installing qsplit${1:-} into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root${1:-}"
    touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$root"
