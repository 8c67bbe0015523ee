//! A Compute Engine test server per test, and a `GcpProvider` configured against it.
#![allow(dead_code, unused_imports)]

use std::sync::Arc;

use phoenix_core::ResourceAddr;
use phoenix_core::provider::*;
use phoenix_core::state::Ownership;
use phoenix_core::value::Attrs;
pub use phoenix_gce_server::{Fault, GceServer, PROJECT};
use phoenix_provider_gcp::GcpProvider;

pub fn provider(gce: &GceServer) -> Arc<GcpProvider> {
    let p = Arc::new(GcpProvider::new());
    let dir = std::env::temp_dir();
    p.configure(&ProviderContext {
        environment: "test".into(),
        instance: None,
        project_dir: dir.clone(),
        data_dir: dir,
        config: attrs(serde_json::json!({
            "project": PROJECT, "region": "us-central1", "zone": "us-central1-a", "endpoint": gce.endpoint(),
        })),
    })
    .unwrap();
    p
}

pub use phoenix_testkit::requests::{adopt_req, attrs, create_req, delete_req, ownership, refresh_item, update_req};

/// The path of a selfLink, for the server's own API.
pub fn path(link: &serde_json::Value) -> String {
    link.as_str().unwrap().split_once("/compute/v1/").unwrap().1.to_string()
}
