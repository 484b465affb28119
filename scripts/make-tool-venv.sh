#!/usr/bin/env bash
# A venv of its own for a third-party tool the tests drive (Meltano, Airbyte models, SDK plugins),
# so their pins never meet ours. Usage: make-tool-venv.sh DIR PYTHON REQUIREMENT...
set -euo pipefail
dir="$1"; python="$2"; shift 2
marker="$dir/.installed"
want="$*"
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
    exit 0
fi
rm -rf "$dir"
PYTHON="$python" "$(dirname "$0")/make-venv.sh" "$dir"
"$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
echo "$want" > "$marker"
