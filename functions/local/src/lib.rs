//! psa-bridge as one local process: every HTTP function on one port, the
//! worker over an in-process queue, the embedded store; and the sandboxes the
//! demo and the benchmark run beside it (`world`). The end-to-end tests build
//! on the same pieces (`testkit::world`, which also runs the worker itself so
//! that a test can kill it).

pub mod app;
pub mod console;
pub mod demo;
pub mod psa_view;
pub mod settings;
pub mod world;

pub use app::LocalBridge;
