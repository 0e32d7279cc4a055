#!/usr/bin/env bash
# One command that measures everything on a GPU; see the README's "Measuring on a GPU".
#   bash bench/campaign.sh [--quick | --dry-run] [--out DIR] [--restart]
# Runs the project from this tree. Python: $PYTHON, else .venv/bin/python, else python3.
# Wheels carried in .whl/ (../shared/device/prepare-wheels.sh) are installed beside it first,
# without touching the machine's torch.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
    if [ -x "$root/.venv/bin/python" ]; then py="$root/.venv/bin/python"; else py=python3; fi
fi
site=""
if [ -d "$root/.whl" ] && ls "$root"/.whl/*.whl >/dev/null 2>&1; then
    site=/tmp/passt-campaign-site
    "$py" -m pip install -q --no-index --no-deps --target "$site" "$root"/.whl/*.whl
fi
export PYTHONPATH="$root${site:+:$site}${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" "$root/bench/campaign.py" "$@"
