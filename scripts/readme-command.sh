#!/usr/bin/env bash
# Run the Nth command of the README's "Quick start" block verbatim, so CI and the README
# cannot drift apart. Usage: scripts/readme-command.sh N
set -euo pipefail
cd "$(dirname "$0")/.."
n="$1"
cmd=$(awk '/^<!-- quickstart -->/{on=1; next} on && /^```bash/{inblock=1; next}
           inblock && /^```/{exit} inblock && /^[^#]/{print}' README.md | sed -n "${n}p")
[ -n "$cmd" ] || { echo "README quick-start command $n not found" >&2; exit 1; }
echo "+ $cmd"
bash -euo pipefail -c "$cmd"
