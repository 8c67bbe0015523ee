//! `aws.key_pair`: an SSH public key imported into EC2 (ImportKeyPair).
//!
//! Phoenix never generates private keys: the user keeps theirs and hands over
//! the public half, so nothing secret reaches state. Everything but tags
//! forces a new key pair (EC2 cannot change one in place).

use phoenix_core::schema::Invalid;
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::ResourceType;
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::{Kind, delete_retrying, id_attr, id_chunks, id_of, in_item_order, priors, req_str, tags_attr, update_tags};
use super::{Made, create_once};
use crate::client::{Aws, create_call_config};
use crate::error::sdk;
use crate::tags;

pub struct KeyPair;

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

fn outputs(id: &str, fingerprint: &str) -> Attrs {
    [("id".to_string(), json!(id)), ("fingerprint".to_string(), json!(fingerprint))].into_iter().collect()
}

fn observed(k: &aws_sdk_ec2::types::KeyPairInfo, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    if let Some(n) = k.key_name() {
        inputs.insert("key_name".into(), json!(n));
    }
    // The public key is not read back: EC2 reformats it, so a byte comparison
    // would report drift that is not there (the fingerprint identifies it).
    tags::observe_tags(&mut inputs, prior, k.tags());
    Observed { inputs, outputs: outputs(k.key_pair_id().unwrap_or_default(), k.key_fingerprint().unwrap_or_default()) }
}

#[async_trait]
impl Kind for KeyPair {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.key_pair",
            description: "An SSH public key imported into EC2",
            attrs: vec![
                AttrSchema::required("key_name", AttrType::String, "the name instances refer to, unique in the region").force_new(),
                AttrSchema::required("public_key", AttrType::String, "the OpenSSH public key (contents of a .pub file)")
                    .force_new()
                    .validate_with(check_public_key),
                tags_attr(),
                id_attr("the key pair id (key-…)"),
                AttrSchema::computed("fingerprint", AttrType::String, "the key's fingerprint as EC2 computes it").stable(),
            ],
            // Tags only.
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        let mut found = HashMap::new();
        // DescribeKeyPairs is not paginated: one call returns every match.
        // A filter (not KeyPairIds) so that ids that are gone are simply absent.
        for ids in id_chunks(items) {
            let out = {
                aws.ec2
                    .describe_key_pairs()
                    .filters(tags::id_filter("key-pair-id", &ids))
                    .send()
                    .await
                    .map_err(|e| sdk("DescribeKeyPairs", e))?
            };
            for k in out.key_pairs() {
                let id = k.key_pair_id().unwrap_or_default().to_string();
                let p = prior.get(id.as_str()).copied().cloned().unwrap_or_default();
                found.insert(id, observed(k, &p));
            }
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        let out = aws.ec2.describe_key_pairs().filters(super::owned_filter()).send().await.map_err(|e| sdk("DescribeKeyPairs", e))?;
        Ok(Some(out.key_pairs().iter().filter_map(|o| super::owned(self, o.tags(), observed(o, &Attrs::new()))).collect()))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let out = aws
            .ec2
            .describe_key_pairs()
            .set_filters(Some(tags::owner_filters(&req.ownership)))
            .send()
            .await
            .map_err(|e| sdk("DescribeKeyPairs", e))?;
        Ok(out.key_pairs().first().map(|k| observed(k, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let name = req_str(&req.inputs, "key_name")?;
        let key = req_str(&req.inputs, "public_key")?;
        let tags = tags::all_tags(&req.ownership, req.inputs.get("tags"));
        // No ClientToken; a second import of the same name fails (InvalidKeyPair.Duplicate)
        // rather than duplicating, and an interrupted import is adopted by its tags.
        let made = create_once(aws, self, req, "ImportKeyPair", || {
            aws.ec2
                .import_key_pair()
                .key_name(name)
                .public_key_material(Blob::new(key.trim().as_bytes()))
                .tag_specifications(tags::spec(ResourceType::KeyPair, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        })
        .await?;
        let id = made.id(|o| o.key_pair_id(), "ImportKeyPair")?;
        let fingerprint = match &made {
            Made::Answered(o) => o.key_fingerprint().map(str::to_string),
            Made::Found(obs) => obs.outputs.get("fingerprint").and_then(Value::as_str).map(str::to_string),
        };
        Ok(outputs(&id, &fingerprint.unwrap_or_default()))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        update_tags(aws, id_of(&req.prior_outputs)?, req).await?;
        Ok(req.prior_outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let id = id_of(&req.outputs)?.to_string();
        // Look the key up by id first: a key of the same name made since by
        // someone else is not ours to delete, and a gone key is done. Then
        // delete by name, which every EC2 implementation honours (moto ignores KeyPairId).
        let out = {
            aws.ec2
                .describe_key_pairs()
                .filters(tags::id_filter("key-pair-id", &[id]))
                .send()
                .await
                .map_err(|e| sdk("DescribeKeyPairs", e))?
        };
        let Some(name) = out.key_pairs().first().and_then(|k| k.key_name()).map(str::to_string) else { return Ok(()) };
        delete_retrying(aws, "DeleteKeyPair", || {
            let call = aws.ec2.delete_key_pair().key_name(&name);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
