//! The provider kit: one way to write a resource kind.
//!
//! ```text
//!   typed Kind (one file per type)          what the engine sees
//!   ─────────────────────────────           ───────────────────────────────
//!   Spec    (serde + JsonSchema) ──schema──► ResourceSchema (validation, docs)
//!   Outputs (serde + JsonSchema)
//!   capabilities() (data)        ──────────► update in place, replacement order,
//!                                            adoption, restore input, unique names
//!   read / find / create /       ◄─adapter── Provider::{refresh, adopt, create,
//!   update / delete / list_owned             update, delete, list_owned}
//! ```
//!
//! A kind declares its inputs ([`Kind::Spec`]) and computed attributes
//! ([`Kind::Outputs`]) as Rust structs; their doc comments, serde defaults
//! and a few schema keywords (`force_new`, `sensitive`, `stable`,
//! `highlight`, and `format` for validators; [`Secret`] for sensitive
//! inputs) are the only place its schema
//! is written ([`schema`]). It implements only what is specific to it. The
//! generic adapter ([`KindSet`]) owns the rest: dispatch by type, one
//! batched read per type with every type in parallel, the `Attrs`
//! conversion at the state boundary, `list_owned` aggregation for `gc`,
//! and the per-type tables the engine asks for (restore inputs, unique names).
//!
//! Requests leave through a [`CallPolicy`] (concurrency, rate, counting),
//! applied once per client where requests are sent, never at call sites.

mod adapter;
mod kind;
mod policy;
pub mod schema;
mod secret;

pub use adapter::{KindSet, output_attrs};
pub use kind::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Snapshot, Stateful, Update, WhichObjects};
pub use policy::{CallLimits, CallPermit, CallPolicy, jitter};
pub use secret::Secret;
