//! Adapters for the ports. `embedded` backs the local all-in-one process and
//! the tests (SQLite, a secrets file); `conformance` is the contract every
//! adapter of a port must pass, so the embedded and the AWS adapters behave
//! alike.

pub mod conformance;
pub mod embedded;
