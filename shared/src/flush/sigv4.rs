//! SigV4 for X-Ray's OTLP endpoint: each request is signed for service `xray` in the endpoint's
//! region with `aws-sigv4`, the AWS SDK's own signer, right before it is sent (a retry is signed
//! anew).
//!
//! Credentials come from the AWS SDK's default chain (`aws-config`): Lambda's environment, then
//! profiles, web identity, container and instance credentials. The chain is built at the first
//! export, never during init. Credentials are kept until five minutes before they expire (ones
//! without an expiry, such as Lambda's environment's, are read again every 15 minutes, as the SDK's
//! own cache does), so the credentials a long-lived Managed Instances environment is given next
//! are picked up by the next flush. They are never logged: errors name the provider, not the key.

use aws_credential_types::{
    Credentials,
    provider::{ProvideCredentials, SharedCredentialsProvider},
};
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use bytes::Bytes;
use http::Request;
use std::{
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};
use tokio::sync::OnceCell;

/// X-Ray's signing name.
const SERVICE: &str = "xray";
/// Credentials this close to their expiry are fetched again.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Credentials with no expiry are read again this often (the SDK's identity cache's default).
const NO_EXPIRY_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Signs OTLP requests for one region.
#[derive(Debug)]
pub(super) struct Signer {
    region: String,
    provider: OnceCell<SharedCredentialsProvider>,
    cached: Mutex<Option<Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    credentials: Credentials,
    /// When to fetch again.
    refresh_at: Instant,
}

impl Signer {
    pub(super) fn new(region: String) -> Self {
        Signer {
            region,
            provider: OnceCell::new(),
            cached: Mutex::new(None),
        }
    }

    async fn provider(&self) -> &SharedCredentialsProvider {
        self.provider
            .get_or_init(|| async {
                let chain =
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .region(aws_types::region::Region::new(self.region.clone()))
                        .build()
                        .await;
                SharedCredentialsProvider::new(chain)
            })
            .await
    }

    async fn credentials(&self) -> Result<Credentials, String> {
        if let Some(cached) = self
            .lock()
            .as_ref()
            .filter(|cached| Instant::now() < cached.refresh_at)
        {
            return Ok(cached.credentials.clone());
        }
        let credentials = self
            .provider()
            .await
            .provide_credentials()
            .await
            .map_err(|error| {
                // The provider's own message says which provider failed and why; it holds no key.
                format!(
                    "no AWS credentials to sign with: {}",
                    super::answer::describe(&error)
                )
            })?;
        // Expired, or about to be: fetched again at the next flush.
        let lifetime = match credentials.expiry() {
            Some(expiry) => expiry
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(REFRESH_BEFORE_EXPIRY),
            None => NO_EXPIRY_LIFETIME,
        };
        let refresh_at = Instant::now() + lifetime;
        *self.lock() = Some(Cached {
            credentials: credentials.clone(),
            refresh_at,
        });
        Ok(credentials)
    }

    /// A poisoned lock only means another flush panicked mid-update; the value is still whole.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `Authorization`, `X-Amz-Date` and (with temporary credentials) `X-Amz-Security-Token`
    /// to `request`, signing its method, URI, headers and body.
    pub(super) async fn sign(&self, request: &mut Request<Bytes>) -> Result<(), String> {
        let identity = self.credentials().await?.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|error| format!("cannot sign the OTLP request: {error}"))?
            .into();
        let uri = request.uri().to_string();
        let headers = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri.as_str(),
            headers,
            SignableBody::Bytes(request.body()),
        )
        .map_err(|error| format!("cannot sign the OTLP request: {error}"))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|error| format!("cannot sign the OTLP request: {error}"))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}
