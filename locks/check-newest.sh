#!/usr/bin/env bash
# The scheduled check: do the ranges in requirements*.txt still resolve, and does the suite pass
# with the newest versions they admit? Run it monthly (cron, or by hand before a release):
#   bash locks/check-newest.sh
# It builds a throw-away virtual environment, installs the ranged files (not the locks), prints
# what pip chose, and runs the suite there. Green: `bash locks/refresh.sh` may move the locks
# forward. Red: the newest releases break something; the locks keep everyone on the tested set
# until a range is narrowed or the code is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$venv")"' EXIT
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet --upgrade -r requirements-dev.txt
"$venv/bin/pip" list --format=freeze | grep -iE '^(torch|diffusers|transformers|tokenizers|accelerate|discord\.py|numpy|pillow|redis)=='
"$venv/bin/python" -m pytest "$@"
