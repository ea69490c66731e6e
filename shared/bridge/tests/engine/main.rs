//! The engine (sync of one ticket pair, the reconciliation sweep) over the
//! in-memory fakes of testkit and the embedded store: one test binary.

mod fields;
mod reconcile;
mod sync;
