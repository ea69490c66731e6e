//! psa-bridge's test kit: what tests share, kept out of the crates that ship.
//! Only ever a dev-dependency.
//!
//! - [`assets`]: an in-memory PSA of configuration items for asset sync;
//! - [`fakes`]: in-memory Zendesk, Autotask and clock for engine tests, and the
//!   secrets document tests seed a secrets store with;
//! - [`hooks`] and [`gates`]: stores that crash or park chosen writes, and API
//!   clients that pause a run where a test says, to interleave two runs;
//! - [`conformance`] and [`budget_contract`]: the contracts every `Store` and
//!   `Queue` adapter, and every store under the shared Autotask budget, must
//!   pass (run on the embedded adapters and on the AWS ones in the emulator);
//! - [`parser_checks`]: the input framing and invariants of the fuzz targets,
//!   also run on stable by `shared/bridge/tests/parser_robustness.rs`;
//! - `world` (feature `world`, on by default): the end-to-end world, the
//!   local bridge beside sandbox Zendesks and Autotasks, on the embedded
//!   adapters or any other backend (the AWS adapters on the emulator).

pub mod assets;
pub mod budget_contract;
pub mod conformance;
pub mod fakes;
pub mod gates;
pub mod hooks;
pub mod parser_checks;
#[cfg(feature = "world")]
pub mod world;
