//! Autotask REST API simulator.
