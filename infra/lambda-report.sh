#!/usr/bin/env bash
# Builds every Lambda function as a release binary with cargo-lambda and
# reports its size and locally measured cold-start init time (process start
# to the first Runtime API /next request; see infra/cold_start.py).
#
#   infra/lambda-report.sh              x86_64 (the only target this machine builds)
#   infra/lambda-report.sh --arm64      what template.yaml deploys by default (needs the target)
#
# Installs cargo-lambda (and the zig linker it uses) into .venv if missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
FUNCTIONS=(zendesk-webhook autotask-callout connectwise-callback inventory-push worker reconcile admin)
ARCH="${1:---x86-64}"

if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
if [[ ! -x "$VENV/bin/cargo-lambda" ]]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check cargo-lambda
fi
export PATH="$VENV/bin:$PATH"

cd "$ROOT"
bins=()
for f in "${FUNCTIONS[@]}"; do bins+=(--bin "$f"); done
cargo lambda build --release "$ARCH" "${bins[@]}"

echo
echo "release binary sizes (stripped):"
for f in "${FUNCTIONS[@]}"; do
    bytes=$(stat -c %s "target/lambda/$f/bootstrap")
    awk -v f="$f" -v b="$bytes" 'BEGIN { printf "%-18s %6.2f MiB  (%d bytes)\n", f, b / 1048576, b }'
done

if [[ "$ARCH" == "--x86-64" && "$(uname -m)" == "x86_64" ]]; then
    echo
    echo "cold-start init (process start to ready):"
    paths=()
    for f in "${FUNCTIONS[@]}"; do paths+=("target/lambda/$f/bootstrap"); done
    "$VENV/bin/python" "$ROOT/infra/cold_start.py" --runs "${RUNS:-10}" "${paths[@]}"
fi
