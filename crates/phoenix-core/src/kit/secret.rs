//! `Secret<T>`: the type of a sensitive input.
//!
//! Inputs reach a kind in clear when it creates or updates; the values state
//! recorded (what refresh, update's prior and delete see) are sealed digests.
//! A spec field of type `Secret<T>` accepts both, is `sensitive` in the
//! schema without anyone writing it down, and makes the kind say which one
//! it needs ([`Secret::clear`]).

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::provider::ProviderError;
use crate::value::{Value, is_sealed};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Secret<T> {
    /// As state holds it: a digest, never the value.
    Sealed(Value),
    Clear(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if is_sealed(&v) {
            return Ok(Secret::Sealed(v));
        }
        T::deserialize(v).map(Secret::Clear).map_err(serde::de::Error::custom)
    }
}

impl<T> Secret<T> {
    /// The value, which only creates and updates have.
    pub fn clear(&self) -> Result<&T, ProviderError> {
        match self {
            Secret::Clear(v) => Ok(v),
            Secret::Sealed(_) => {
                Err(ProviderError::unexpected("a sensitive input was needed in clear but only its sealed digest is known"))
            }
        }
    }

    pub fn is_sealed(&self) -> bool {
        matches!(self, Secret::Sealed(v) if is_sealed(v))
    }
}

impl<T: JsonSchema> JsonSchema for Secret<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = T::json_schema(generator);
        schema.insert("sensitive".into(), Value::Bool(true));
        schema
    }
}
