#!/usr/bin/env bash
# Install ministack (the emulator of tests/e2e) into its own venv. Idempotent: a no-op when the
# venv is up to date with tests/e2e/ministack-requirements.txt (the hashed lock of
# ministack-requirements.in, written by `make lock`). Usage: tests/e2e/ministack.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${MINISTACK_VENV:-.ministack-venv}"
requirements=tests/e2e/ministack-requirements.txt
stamp="$venv/.installed"
if [[ -f "$stamp" && "$stamp" -nt "$requirements" ]]; then
    exit 0
fi
echo "==> ministack into $venv (its own venv: it pins its own botocore)"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-input --require-hashes -r "$requirements"
touch "$stamp"
