//! psa-bridge core: model, mapping, sync engine, connectors, ports and adapters.

pub mod adapters;
pub mod assets;
pub mod config;
pub mod connectors;
pub mod error;
pub mod ingest;
pub mod mapping;
pub mod model;
pub mod ports;
pub mod reconcile;
pub mod repo;
pub mod setup;
pub mod step;
pub mod sync;
pub mod timing;
pub mod wiring;
pub mod worker;
