//! No library: the end-to-end tests are one test binary, `e2e/main.rs`
//! (`cargo test -p psa-bridge-e2e --test e2e`).
