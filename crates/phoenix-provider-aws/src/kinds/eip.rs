//! `aws.eip`: an elastic IP address, optionally associated with an instance.
//!
//! The association changes in place (AssociateAddress with reassociation,
//! or DisassociateAddress); the address itself, and so `public_ip`, stays.
//! Delete disassociates from whatever EC2 says it is associated with now,
//! then releases.

use async_trait::async_trait;
use aws_sdk_ec2::types::{Address, DomainType, Filter, ResourceType, Tag};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::client::{Aws, create_call_config};
use crate::create::{Made, create_once};
use crate::ec2::{self, Ec2Kind, UserTags};
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct Eip;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EipSpec {
    /// the instance to associate with (i-…); changes in place
    // Disassociated behind Phoenix's back reads as `null`, so the plan re-associates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct EipOutputs {
    /// the allocation id (eipalloc-…)
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the public IPv4 address
    #[schemars(extend("stable" = true))]
    pub public_ip: String,
    /// the current association (eipassoc-…), empty when unassociated
    // Not stable: a new association gets a new id.
    pub association_id: String,
}

/// EC2 (and moto) report an unassociated address with empty strings.
fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// Associates the address with an instance (moving it if it is elsewhere).
/// An instance launched a moment ago may not be visible yet, or not yet running.
async fn associate(aws: &Aws, id: &str, instance: &str) -> Result<Option<String>, ProviderError> {
    crate::wait::consistent(|| async {
        match aws.ec2.associate_address().allocation_id(id).instance_id(instance).allow_reassociation(true).send().await {
            Ok(out) => Ok(out.association_id().map(str::to_string)),
            Err(e) => Err((is_not_found(&e) || code(&e) == Some("IncorrectInstanceState"), sdk("AssociateAddress", e))),
        }
    })
    .await
}

async fn disassociate(aws: &Aws, association: &str) -> Result<(), ProviderError> {
    match aws.ec2.disassociate_address().association_id(association).send().await {
        Err(e) if !is_not_found(&e) => Err(sdk("DisassociateAddress", e)),
        _ => Ok(()),
    }
}

#[async_trait]
impl Ec2Kind for Eip {
    type Object = Address;
    const ID_FILTER: &'static str = "allocation-id";

    /// DescribeAddresses is not paginated: one call per 200 ids.
    async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Address>, ProviderError> {
        let out = aws.ec2.describe_addresses().set_filters(Some(filters)).send().await.map_err(|e| sdk("DescribeAddresses", e))?;
        Ok(out.addresses.unwrap_or_default())
    }
    fn id(a: &Address) -> &str {
        a.allocation_id().unwrap_or_default()
    }
    fn tags(a: &Address) -> &[Tag] {
        a.tags()
    }
    fn id_of(outputs: &EipOutputs) -> &str {
        &outputs.id
    }
    fn observe(a: &Address, _prior: Option<&EipSpec>) -> Observed<Self> {
        let spec = EipSpec { instance_id: non_empty(a.instance_id()).map(str::to_string), tags: ec2::user_tags(a.tags()) };
        let outputs = EipOutputs {
            id: Self::id(a).to_string(),
            public_ip: a.public_ip().unwrap_or_default().to_string(),
            association_id: non_empty(a.association_id()).unwrap_or_default().to_string(),
        };
        Observed { spec, outputs }
    }
}

#[async_trait]
impl Kind for Eip {
    const TYPE: &'static str = "aws.eip";
    const DESCRIPTION: &'static str = "An elastic IP address, optionally associated with an instance";
    type Client = Aws;
    type Spec = EipSpec;
    type Outputs = EipOutputs;

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed()
    }

    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        ec2::read(aws, items).await
    }

    async fn import(&self, aws: &Aws, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        ec2::import(aws, id).await
    }

    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        ec2::find(aws, req.spec, req.ownership).await
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        ec2::list_owned(aws).await
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<EipOutputs, ProviderError> {
        let tags = tags::all_tags_typed(req.ownership, req.spec.tags.as_ref());
        // AllocateAddress has no ClientToken; an interrupted allocation is adopted by its tags.
        let call = || {
            aws.ec2
                .allocate_address()
                .domain(DomainType::Vpc)
                .tag_specifications(tags::spec(ResourceType::ElasticIp, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        };
        let find = || ec2::find::<Eip>(aws, req.spec, req.ownership);
        let mut made = match create_once("AllocateAddress", call, find).await? {
            Made::Answered(o) => EipOutputs {
                id: o.allocation_id().unwrap_or_default().to_string(),
                public_ip: o.public_ip().unwrap_or_default().to_string(),
                association_id: String::new(),
            },
            // Whatever association it has now is reconciled by the next plan.
            Made::Found(found) => EipOutputs { association_id: String::new(), ..found.outputs },
        };
        if made.id.is_empty() {
            return Err(ProviderError::permanent("AllocateAddress returned no id"));
        }
        let Some(instance) = &req.spec.instance_id else { return Ok(made) };
        // The address exists now: a failed association must not leak it.
        let association = associate(aws, &made.id, instance).await.map_err(|e| e.with_created(phoenix_core::kit::output_attrs(&made)))?;
        made.association_id = association.unwrap_or_default();
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<EipOutputs, ProviderError> {
        let id = &req.outputs.id;
        let mut out = req.outputs.clone();
        if req.changed("instance_id") {
            let association = match &req.spec.instance_id {
                Some(instance) => associate(aws, id, instance).await?,
                None => {
                    // The association in state may be stale: ask EC2 which one to undo.
                    let a = ec2::describe_one::<Eip>(aws, id)
                        .await?
                        .ok_or_else(|| ProviderError::permanent(format!("address {id} no longer exists")))?;
                    if let Some(assoc) = non_empty(a.association_id()) {
                        disassociate(aws, assoc).await?;
                    }
                    None
                }
            };
            out.association_id = association.unwrap_or_default();
        }
        ec2::update_tags(aws, id, req.prior.tags.as_ref(), req.spec.tags.as_ref(), req.ownership).await?;
        Ok(out)
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let id = req.outputs.id.clone();
        let Some(a) = ec2::describe_one::<Eip>(aws, &id).await? else { return Ok(()) };
        if let Some(assoc) = non_empty(a.association_id()) {
            disassociate(aws, assoc).await?;
        }
        super::delete_retrying(aws, "ReleaseAddress", || {
            let call = aws.ec2.release_address().allocation_id(&id);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
