//! psa-bridge as one local process: every HTTP function on one port, the
//! worker over an in-process queue, the embedded store. The demo and the
//! end-to-end tests build on the same pieces.

pub mod app;
pub mod demo;
pub mod settings;
pub mod world;

pub use app::LocalBridge;
