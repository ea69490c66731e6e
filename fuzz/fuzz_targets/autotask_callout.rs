//! Fuzz target; the input framing and the invariants are in
//! `testkit::parser_checks` (shared/testkit/src/parser_checks.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    testkit::parser_checks::autotask_callout(data);
});
