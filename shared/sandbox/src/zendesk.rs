//! Zendesk API simulator.
