//! Adapters for the ports. `embedded` backs the local all-in-one process and
//! the tests (SQLite, a secrets file). The contract every adapter of a port
//! must pass, so the embedded and the AWS adapters behave alike, is
//! `testkit::conformance` (dev-only).

pub mod embedded;
