//! Where every AWS request leaves: the SDK's own HTTPS client wrapped in the
//! provider's [`CallPolicy`]. Each attempt the SDK sends — retries, pages,
//! waits — takes a slot and a token here and is counted, so the limits hold
//! for every service client without a single call site taking a permit.

use std::sync::Arc;

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{Builder, ConnectorBuilder, tls};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use phoenix_core::kit::CallPolicy;

/// An HTTP client whose connectors admit each request through `policy`.
pub fn policed_client(policy: Arc<CallPolicy>) -> SharedHttpClient {
    SharedHttpClient::new(Policed { inner: https_client(), policy })
}

/// The client the SDK would build itself (hyper 1, rustls on aws-lc, proxies from the environment).
fn https_client() -> SharedHttpClient {
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut conn = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
        conn.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            conn.set_sleep_impl(c.sleep_impl());
        }
        conn.set_proxy_config(Some(ProxyConfig::from_env()));
        conn.build()
    })
}

#[derive(Debug)]
struct Policed {
    inner: SharedHttpClient,
    policy: Arc<CallPolicy>,
}

impl HttpClient for Policed {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        let inner = self.inner.http_connector(settings, components);
        SharedHttpConnector::new(PolicedConnector { inner, policy: self.policy.clone() })
    }
}

#[derive(Debug)]
struct PolicedConnector {
    inner: SharedHttpConnector,
    policy: Arc<CallPolicy>,
}

impl HttpConnector for PolicedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, policy) = (self.inner.clone(), self.policy.clone());
        HttpConnectorFuture::new(async move {
            let _admitted = policy.admit().await;
            inner.call(request).await
        })
    }
}
