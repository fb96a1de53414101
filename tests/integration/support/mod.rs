//! Test support: local control plane, simulator and operator processes.
