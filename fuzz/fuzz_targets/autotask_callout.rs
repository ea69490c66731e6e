//! Fuzz target; the input framing and the invariants are in `src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    psa_bridge_fuzz::autotask_callout(data);
});
