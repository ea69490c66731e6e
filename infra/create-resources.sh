#!/usr/bin/env bash
# Creates on the local emulator the table, queues and sample secret that
# template.yaml declares in AWS (starting the emulator first if needed).
# Prints the environment the functions need to use them (dummy credentials).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/infra/emulator.sh" start

export AWS_ENDPOINT_URL="http://127.0.0.1:${AWS_EMULATOR_PORT:-4566}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_REGION="${AWS_REGION:-us-east-1}"

"$ROOT/.venv/bin/python" "$ROOT/infra/create_resources.py"

echo "export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_REGION=$AWS_REGION AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
