//! Asset sync: a device inventory mirrored one way into PSA configuration
//! items (DESIGN.md "Asset sync"; contract in ../shared/specs/autotask-assets.md).

pub mod ports;
