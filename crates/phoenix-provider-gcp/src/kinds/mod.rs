//! One module per resource type, each a [`phoenix_core::kit::Kind`] on the
//! Compute Engine sub-template ([`crate::gce_kind`]): its typed inputs and
//! outputs, its insert body, what a read observes, and what it changes in
//! place. Registered with one line each in the provider (`lib.rs`).

pub mod address;
pub mod disk;
pub mod firewall;
pub mod image;
pub mod instance;
pub mod network;
pub mod snapshot;
pub mod subnetwork;
