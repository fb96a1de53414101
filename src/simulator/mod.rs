//! Connect simulator (placeholder).
