//! Where AWS objects are made: in the provider's `region`, so a restore into
//! another region records that region in state and nothing in the
//! definition changes (zones are chosen by `az_index` within the region).

use phoenix_core::ResourceAddr;
use phoenix_core::provider::{Placement, ProviderError};

pub struct RegionPlacement;

impl Placement for RegionPlacement {
    fn check_move(&self, _objects: &[ResourceAddr], _region: &str, _zone: Option<&str>) -> Result<(), ProviderError> {
        Ok(())
    }

    fn settings(&self, region: &str, _zone: Option<&str>) -> Vec<(&'static str, String)> {
        vec![("region", region.to_string())]
    }
}
