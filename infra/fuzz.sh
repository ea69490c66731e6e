#!/usr/bin/env bash
# Fuzzes every webhook/callout parser with cargo-fuzz (libFuzzer + ASan).
#
#   infra/fuzz.sh                          every target, 30 s each
#   FUZZ_SECONDS=300 infra/fuzz.sh         longer runs
#   infra/fuzz.sh autotask_callout         only the named targets
#
# Installs cargo-fuzz if it is missing. Works on the stable toolchain: cargo-fuzz
# needs nightly-only flags (-Zsanitizer), which RUSTC_BOOTSTRAP=1 unlocks; set
# FUZZ_TOOLCHAIN=nightly to use a nightly toolchain instead.
#
# Each target starts from its committed seeds (fuzz/seeds/<target>/) plus what
# earlier runs kept in fuzz/corpus/<target>/ (ignored by git). A crash, a failed
# invariant (assert) or a hang (FUZZ_TIMEOUT s per input, default 10) stops that
# target and leaves the input in fuzz/artifacts/<target>/; the script goes on
# with the other targets and exits non-zero at the end if any target failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_DIR="$ROOT/fuzz"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-30}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [[ -n "${FUZZ_TOOLCHAIN:-}" ]]; then
    cargo_fuzz=(cargo "+$FUZZ_TOOLCHAIN" fuzz)
else
    export RUSTC_BOOTSTRAP=1
    cargo_fuzz=(cargo fuzz)
fi

cd "$FUZZ_DIR"
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <("${cargo_fuzz[@]}" list)
fi

echo "fuzz.sh: building ${targets[*]}" >&2
"${cargo_fuzz[@]}" build

failed=()
for target in "${targets[@]}"; do
    echo "fuzz.sh: $target for ${SECONDS_PER_TARGET}s" >&2
    mkdir -p "corpus/$target"
    # The first directory collects new inputs; the seeds are only read.
    if "${cargo_fuzz[@]}" run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -print_final_stats=1; then
        echo "fuzz.sh: $target: no crash" >&2
    else
        echo "fuzz.sh: $target FAILED (input in fuzz/artifacts/$target/)" >&2
        failed+=("$target")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz.sh: failing targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets ran ${SECONDS_PER_TARGET}s without a crash" >&2
