//! Phoenix's plan model, free of file and network IO.
//!
//! ```text
//!  Definition ──validate──► diagnostics (with Origins the config crate maps to file:line)
//!      │
//!      ├─ refresh (providers, batched per type) ─► refreshed StateDoc
//!      ▼
//!  planner::plan(definition, state) ─► Plan (a value: saved, shown, compared)
//!      │
//!      ▼
//!  executor::apply(plan) ─► provider calls, each outcome journaled before dependents start
//! ```
//!
//! Providers implement [`provider::Provider`]; state backends implement
//! [`state::Journal`]. The executor knows neither files nor clouds.
// Only the CLI prints; libraries report through return values, events and tracing.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod addr;
pub mod builtin;
pub mod definition;
pub mod executor;
pub mod graph;
pub mod kit;
pub mod plan;
pub mod planner;
pub mod provider;
pub mod recovery;
pub mod schema;
pub mod state;
pub mod validate;
pub mod value;

#[cfg(test)]
pub(crate) mod testing;

pub use addr::{Reference, ResourceAddr};
pub use value::{Attrs, Value};
