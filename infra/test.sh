#!/usr/bin/env bash
# The project's one test command: runs `cargo test` with the local AWS emulator
# up, so the AWS adapter tests run instead of failing for want of an endpoint.
#
#   infra/test.sh                      every test of the workspace
#   infra/test.sh -p bridge-aws        extra arguments go to cargo test
#
# Starts the emulator (and stops it on exit if this script started it), exports
# AWS_ENDPOINT_URL with dummy credentials, exits with cargo's status.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EMULATOR="$ROOT/infra/emulator.sh"

# The admin console's browser test drives Debian's Chromium through its
# WebDriver. Installed here when missing and this user may install packages;
# otherwise that one test fails saying how to install them.
if ! command -v chromedriver >/dev/null 2>&1 && [[ -z "${CHROMEDRIVER:-}" ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing chromium and chromium-driver for the browser test" >&2
        apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "test.sh: chromedriver not found; the browser test needs: apt-get install chromium chromium-driver" >&2
    fi
fi

if "$EMULATOR" status >/dev/null 2>&1; then
    echo "test.sh: reusing the running emulator" >&2
else
    "$EMULATOR" start
    trap '"$EMULATOR" stop' EXIT
fi

export AWS_ENDPOINT_URL="http://127.0.0.1:${AWS_EMULATOR_PORT:-4566}"
# Dummy values: the emulator accepts anything, and real credentials must never
# be picked up by a test run.
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1
unset AWS_PROFILE

# --workspace would override a package selection, so add it only without one.
scope=(--workspace)
for arg in "$@"; do
    case "$arg" in
    -p | --package | --package=* | -p?* | --manifest-path | --manifest-path=*) scope=() ;;
    --) break ;;
    esac
done

cd "$ROOT"
status=0
cargo test "${scope[@]}" "$@" || status=$?
exit "$status"
