//! `aws.internet_gateway`. PLACEHOLDER: being written; every call fails until then.

use async_trait::async_trait;
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::ResourceSchema;
use phoenix_core::value::Attrs;

use super::{Kind, id_attr};
use crate::client::Aws;

pub struct InternetGateway;

fn todo() -> ProviderError {
    ProviderError::permanent("aws.internet_gateway is not implemented yet")
}

#[async_trait]
impl Kind for InternetGateway {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema { type_name: "aws.internet_gateway", description: "placeholder", attrs: vec![id_attr("id")], update_in_place: false, create_before_destroy: false, adoptable: true }
    }
    async fn read(&self, _aws: &Aws, _items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        Err(todo())
    }
    async fn find(&self, _aws: &Aws, _req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        Err(todo())
    }
    async fn create(&self, _aws: &Aws, _req: &CreateRequest) -> Result<Attrs, ProviderError> {
        Err(todo())
    }
    async fn update(&self, _aws: &Aws, _req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        Err(todo())
    }
    async fn delete(&self, _aws: &Aws, _req: &DeleteRequest) -> Result<(), ProviderError> {
        Err(todo())
    }
}
