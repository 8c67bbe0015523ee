//! Where GCE objects are made, and how a restore moves them.
//!
//! GCE objects are placed by their `zone`/`region` attributes and the
//! provider's defaults, so moving them to another region takes a zone of that
//! region too (zone names differ between regions: `europe-west1` has `b`,
//! `c`, `d`). Names are unique in a project whatever the region, so a restore
//! beside the original (a drill: another `--instance`) takes the names the
//! environment renders for that instance now (templates put it in names).

use phoenix_core::ResourceAddr;
use phoenix_core::definition::ResourceConfig;
use phoenix_core::provider::{Placement, ProviderError};
use phoenix_core::value::Value;

pub struct GcePlacement;

impl Placement for GcePlacement {
    fn check_move(&self, objects: &[ResourceAddr], region: &str, zone: Option<&str>) -> Result<(), ProviderError> {
        if objects.is_empty() {
            return Ok(());
        }
        match zone {
            None => Err(ProviderError::invalid_input(format!(
                "it holds GCP objects ({}): with `--region {region}` name the zone to make them in too (`--zone {region}-b`)",
                objects.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ))),
            Some(z) if !z.starts_with(&format!("{region}-")) => {
                Err(ProviderError::invalid_input(format!("--zone {z} is not a zone of --region {region}")))
            }
            Some(_) => Ok(()),
        }
    }

    fn settings(&self, region: &str, zone: Option<&str>) -> Vec<(&'static str, String)> {
        // Without a zone no GCP object moves (check_move refuses a point that has some).
        zone.map(|z| vec![("region", region.to_string()), ("zone", z.to_string())]).unwrap_or_default()
    }

    /// The other placements follow from `region` and `zone`: machine and disk
    /// types are resolved in the zone, references resolve to the new objects.
    fn relocate(&self, config: &mut ResourceConfig, region: &str, zone: &str) {
        for (attr, to) in [("region", region), ("zone", zone)] {
            if let Some(v) = config.attrs.get_mut(attr) {
                *v = Value::String(to.to_string());
            }
        }
    }

    fn renamed_beside_original(&self) -> &'static [&'static str] {
        &["name"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_needs_a_zone_of_the_region() {
        let objects = [ResourceAddr::parse("vm").unwrap()];
        assert!(GcePlacement.check_move(&[], "europe-west1", None).is_ok(), "nothing of GCP's to move");
        let e = GcePlacement.check_move(&objects, "europe-west1", None).unwrap_err();
        assert!(e.message.contains("--zone europe-west1-b") && e.message.contains("vm"), "{}", e.message);
        assert!(GcePlacement.check_move(&objects, "europe-west1", Some("us-central1-a")).is_err());
        assert!(GcePlacement.check_move(&objects, "europe-west1", Some("europe-west1-c")).is_ok());
        assert!(GcePlacement.settings("europe-west1", None).is_empty());
    }
}
