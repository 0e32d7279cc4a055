#!/usr/bin/env bash
# The GPU campaign in one command; see docs/gpu.md.
#   bash bench/campaign.sh [--dry-run] [--plan [--json]] [--select STEP,...] [--out DIR]
# Runs the project from this tree. Python: $PYTHON, else .venv/bin/python, else python3.
# Wheels carried in .whl/ (../shared/device/prepare-wheels.sh) are installed beside it first,
# without touching the machine's torch; results are handed back to $OUT after every step.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
    if [ -x "$root/.venv/bin/python" ]; then py="$root/.venv/bin/python"; else py=python3; fi
fi
site=""
if [ -d "$root/.whl" ] && ls "$root"/.whl/*.whl >/dev/null 2>&1; then
    # one version of each package: pip would stop the whole install at the second
    twice=$(for w in "$root"/.whl/*.whl; do basename "$w" | cut -d- -f1 \
            | tr '[:upper:]-.' '[:lower:]__'; done | sort | uniq -d)
    if [ -n "$twice" ]; then
        echo "bench/campaign.sh: .whl/ holds two versions of: $(echo $twice); keep one of each" >&2
        exit 2
    fi
    site=/tmp/passt-campaign-site
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$root"/.whl/*.whl
fi
export PYTHONPATH="$root${site:+:$site}${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" "$root/bench/campaign.py" "$@"
