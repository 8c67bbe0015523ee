//! `aws.key_pair`: an SSH public key imported into EC2 (ImportKeyPair).
//!
//! Phoenix never generates private keys: the user keeps theirs and hands over
//! the public half, so nothing secret reaches state. Everything but tags
//! forces a new key pair (EC2 cannot change one in place).

use async_trait::async_trait;
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Invalid;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Aws, create_call_config};
use crate::create::{Made, create_once};
use crate::ec2::{self, Ec2Kind, UserTags};
use crate::error::sdk;
use crate::tags;

pub struct KeyPair;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = phoenix_core::kit::schema::required(&["public_key"]))]
pub struct KeyPairSpec {
    /// the name instances refer to, unique in the region
    #[schemars(extend("force_new" = true))]
    pub key_name: String,
    /// the OpenSSH public key (contents of a .pub file)
    // Not read back (EC2 reformats it; the fingerprint identifies it): an
    // imported key has none, left out (the default lets that state parse).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("force_new" = true, "format" = "openssh-public-key"))]
    pub public_key: String,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct KeyPairOutputs {
    /// the key pair id (key-…)
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the key's fingerprint as EC2 computes it
    #[schemars(extend("stable" = true))]
    pub fingerprint: String,
}

/// A public key in OpenSSH format (`ssh-ed25519 AAAA… comment`), not a private key by mistake.
fn check_public_key(value: &Value) -> Result<(), Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if s.contains("${") {
        return Ok(());
    }
    if s.contains("PRIVATE KEY") {
        return Err("this is a private key; give the public key (the .pub file)".into());
    }
    let known = ["ssh-rsa ", "ssh-ed25519 ", "ecdsa-sha2-nistp256 ", "ecdsa-sha2-nistp384 ", "ecdsa-sha2-nistp521 "];
    if known.iter().any(|k| s.trim_start().starts_with(k)) {
        Ok(())
    } else {
        Err("expected an OpenSSH public key such as `ssh-ed25519 AAAA… user@host`".into())
    }
}

#[async_trait]
impl Ec2Kind for KeyPair {
    type Object = aws_sdk_ec2::types::KeyPairInfo;
    // A filter (not KeyPairIds) so that ids that are gone are simply absent.
    const ID_FILTER: &'static str = "key-pair-id";

    /// DescribeKeyPairs is not paginated: one call returns every match.
    async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Self::Object>, ProviderError> {
        let out = aws.ec2.describe_key_pairs().set_filters(Some(filters)).send().await.map_err(|e| sdk("DescribeKeyPairs", e))?;
        Ok(out.key_pairs.unwrap_or_default())
    }
    fn id(k: &Self::Object) -> &str {
        k.key_pair_id().unwrap_or_default()
    }
    fn tags(k: &Self::Object) -> &[Tag] {
        k.tags()
    }
    fn id_of(outputs: &KeyPairOutputs) -> &str {
        &outputs.id
    }
    fn observe(k: &Self::Object, prior: Option<&KeyPairSpec>) -> Observed<Self> {
        let spec = KeyPairSpec {
            key_name: k.key_name().unwrap_or_default().to_string(),
            // A byte comparison with what EC2 keeps would report drift that is not there.
            public_key: prior.map(|p| p.public_key.clone()).unwrap_or_default(),
            tags: ec2::user_tags(k.tags()),
        };
        let outputs = KeyPairOutputs { id: Self::id(k).to_string(), fingerprint: k.key_fingerprint().unwrap_or_default().to_string() };
        Observed { spec, outputs }
    }
}

#[async_trait]
impl Kind for KeyPair {
    const TYPE: &'static str = "aws.key_pair";
    const DESCRIPTION: &'static str = "An SSH public key imported into EC2";
    const FORMATS: &'static [(&'static str, Validator)] = &[("openssh-public-key", check_public_key)];
    type Client = Aws;
    type Spec = KeyPairSpec;
    type Outputs = KeyPairOutputs;

    /// Tags only change in place. Key names are unique in a region.
    fn capabilities(&self) -> Capabilities {
        Capabilities::managed().unique_names(&["key_name"])
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

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<KeyPairOutputs, ProviderError> {
        let spec = req.spec;
        let tags = tags::all_tags_typed(req.ownership, spec.tags.as_ref());
        // No ClientToken; a second import of the same name fails (InvalidKeyPair.Duplicate)
        // rather than duplicating, and an interrupted import is adopted by its tags.
        let call = || {
            aws.ec2
                .import_key_pair()
                .key_name(&spec.key_name)
                .public_key_material(Blob::new(spec.public_key.trim().as_bytes()))
                .tag_specifications(tags::spec(ResourceType::KeyPair, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        };
        let find = || ec2::find::<KeyPair>(aws, spec, req.ownership);
        let made = match create_once("ImportKeyPair", call, find).await? {
            Made::Answered(o) => KeyPairOutputs {
                id: o.key_pair_id().unwrap_or_default().to_string(),
                fingerprint: o.key_fingerprint().unwrap_or_default().to_string(),
            },
            Made::Found(found) => found.outputs,
        };
        if made.id.is_empty() {
            return Err(ProviderError::permanent("ImportKeyPair returned no id"));
        }
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<KeyPairOutputs, ProviderError> {
        ec2::update_tags(aws, &req.outputs.id, req.prior.tags.as_ref(), req.spec.tags.as_ref(), req.ownership).await?;
        Ok(req.outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        // Look the key up by id first: a key of the same name made since by
        // someone else is not ours to delete, and a gone key is done. Then
        // delete by name, which every EC2 implementation honours (moto ignores KeyPairId).
        let found = ec2::describe_one::<Self>(aws, &req.outputs.id).await?;
        let Some(name) = found.as_ref().and_then(|k| k.key_name()).map(str::to_string) else { return Ok(()) };
        super::delete_retrying(aws, "DeleteKeyPair", || {
            let call = aws.ec2.delete_key_pair().key_name(&name);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
