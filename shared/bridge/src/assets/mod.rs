//! Asset sync: a device inventory mirrored one way into PSA configuration
//! items (DESIGN.md "Asset sync"; contract in ../shared/specs/autotask-assets.md).
//!
//! - [`device`]: the device model, its validation, JSON and CSV batches;
//! - [`store`]: `DEVICE#<id>` and `ASSETRUN` items (keys listed there);
//! - [`ingest`]: `POST /t/{tenant}/inventory`, signed pushes that only store;
//! - [`run`]: a run that writes what changed to the PSA;
//! - [`schedule`]: runs of a tenant through its connectors, and the schedule;
//! - [`ports`]: what asset sync needs from the PSA.

pub mod device;
pub mod ingest;
pub mod ports;
pub mod run;
pub mod schedule;
pub mod store;

pub use device::{
    parse_csv_batch, parse_json_batch, Device, DeviceBatch, DeviceState, RejectedDevice,
};
pub use ingest::{import_batch, inventory_router, ImportOutcome};
pub use run::{run_assets, AssetRunError, AssetRunOptions, AssetRunSummary};
pub use schedule::{
    check_tenant_assets, run_due_assets, run_tenant_assets, AssetDeps, AssetScheduleSummary,
};
