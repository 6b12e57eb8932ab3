//! SigV4 for X-Ray's OTLP endpoint: each request is signed for service `xray` in the endpoint's
//! region with `aws-sigv4`, the AWS SDK's own signer, right before it is sent (a retry is signed
//! anew).
//!
//! Credentials: Lambda's own, from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`, read exactly as the AWS SDK's default chain reads them first (its
//! `EnvironmentVariableCredentialsProvider`: a blank key id or secret is no credentials,
//! `SECRET_ACCESS_KEY` stands in for a blank secret, a blank token is none). Anywhere else the rest
//! of the SDK's default chain (`aws-config`: profiles, web identity, container and instance
//! credentials) is asked, built at the first export that needs it, never during init; it is
//! feature `sigv4-chain`, because its STS, SSO and IMDS clients and the platform's roots they load
//! are most of what `sigv4` would otherwise add to every binary, its memory and its first flush.
//! Without it, a build that finds no credentials in the environment fails the init.
//!
//! Credentials are kept until five minutes before they expire (ones without an expiry, such as
//! Lambda's environment's, are read again every 15 minutes, as the SDK's own cache does), so the
//! credentials a long-lived Managed Instances environment is given next are picked up by the next
//! flush. They are never logged: errors name the provider, not the key.

use crate::config::env;
use aws_credential_types::Credentials;
#[cfg(feature = "sigv4-chain")]
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use bytes::Bytes;
use http::Request;
use std::{
    env::VarError,
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};
#[cfg(feature = "sigv4-chain")]
use tokio::sync::OnceCell;

/// X-Ray's signing name.
const SERVICE: &str = "xray";
/// Credentials this close to their expiry are fetched again.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Credentials with no expiry are read again this often (the SDK's identity cache's default).
const NO_EXPIRY_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The provider name the SDK's environment provider gives its credentials.
const ENVIRONMENT_PROVIDER: &str = "EnvironmentVariable";

/// Signs OTLP requests for one region.
#[derive(Debug)]
pub(super) struct Signer {
    region: String,
    /// The SDK's default chain, built when the environment holds no credentials.
    #[cfg(feature = "sigv4-chain")]
    chain: OnceCell<SharedCredentialsProvider>,
    cached: Mutex<Option<Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    credentials: Credentials,
    /// When to fetch again.
    refresh_at: Instant,
}

/// The credentials in the process's environment, read as the SDK's
/// `EnvironmentVariableCredentialsProvider` reads them: `None` wherever that provider would not
/// answer with credentials (unset, blank, not Unicode), so that the chain's next providers decide.
/// <https://github.com/smithy-lang/smithy-rs/blob/main/aws/rust-runtime/aws-config/src/environment/credentials.rs>
pub(super) fn environment_credentials(
    var: impl Fn(&str) -> Result<String, VarError>,
) -> Option<Credentials> {
    let not_blank = |value: String| (!value.trim().is_empty()).then_some(value);
    let access_key_id = var(env::AWS_ACCESS_KEY_ID).ok().and_then(not_blank)?;
    // A blank or unreadable `AWS_SECRET_ACCESS_KEY` falls back to `SECRET_ACCESS_KEY`.
    let secret_access_key = var(env::AWS_SECRET_ACCESS_KEY)
        .ok()
        .and_then(not_blank)
        .or_else(|| var(env::SECRET_ACCESS_KEY).ok().and_then(not_blank))?;
    // The token alone is trimmed, as the SDK does.
    let session_token = var(env::AWS_SESSION_TOKEN)
        .ok()
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty());
    Some(Credentials::new(
        access_key_id,
        secret_access_key,
        session_token,
        None,
        ENVIRONMENT_PROVIDER,
    ))
}

impl Signer {
    pub(super) fn new(region: String) -> Self {
        Signer {
            region,
            #[cfg(feature = "sigv4-chain")]
            chain: OnceCell::new(),
            cached: Mutex::new(None),
        }
    }

    /// Credentials from the rest of the SDK's default chain.
    #[cfg(feature = "sigv4-chain")]
    async fn chain_credentials(&self) -> Result<Credentials, String> {
        let chain = self
            .chain
            .get_or_init(|| async {
                let chain =
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .region(aws_types::region::Region::new(self.region.clone()))
                        .build()
                        .await;
                SharedCredentialsProvider::new(chain)
            })
            .await;
        chain.provide_credentials().await.map_err(|error| {
            // The provider's own message says which provider failed and why; it holds no key.
            format!(
                "no AWS credentials to sign with: {}",
                super::answer::describe(&error)
            )
        })
    }

    /// Without the chain, the environment is the only source (init checked it held credentials).
    #[cfg(not(feature = "sigv4-chain"))]
    async fn chain_credentials(&self) -> Result<Credentials, String> {
        Err(format!(
            "no AWS credentials to sign with: {} and {} hold none (unset, blank or not Unicode), \
             and tracekit's `sigv4-chain` feature, which asks the AWS SDK's default chain \
             (profiles, web identity, container and instance credentials), is not built",
            env::AWS_ACCESS_KEY_ID,
            env::AWS_SECRET_ACCESS_KEY
        ))
    }

    async fn credentials(&self) -> Result<Credentials, String> {
        if let Some(cached) = self
            .lock()
            .as_ref()
            .filter(|cached| Instant::now() < cached.refresh_at)
        {
            return Ok(cached.credentials.clone());
        }
        // The default chain's first provider, without building the chain.
        let credentials = match environment_credentials(|name| std::env::var(name)) {
            Some(credentials) => credentials,
            None => self.chain_credentials().await?,
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The environment as a lookup, as `std::env::var` answers it.
    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Result<String, VarError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        move |name| {
            vars.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .ok_or(VarError::NotPresent)
        }
    }

    #[test]
    fn environment_credentials_are_read_as_the_sdk_environment_provider_reads_them() {
        // (environment, expected (key id, secret, token), reason)
        let cases: [(&[(&str, &str)], Option<(&str, &str, Option<&str>)>, &str); 9] = [
            (
                &[
                    ("AWS_ACCESS_KEY_ID", "ASIAKEY"),
                    ("AWS_SECRET_ACCESS_KEY", "secret"),
                    ("AWS_SESSION_TOKEN", "token"),
                ],
                Some(("ASIAKEY", "secret", Some("token"))),
                "Lambda's three variables",
            ),
            (
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIAKEY"),
                    ("AWS_SECRET_ACCESS_KEY", "secret"),
                ],
                Some(("AKIAKEY", "secret", None)),
                "long-term keys carry no token",
            ),
            (
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIAKEY"),
                    ("AWS_SECRET_ACCESS_KEY", "secret"),
                    ("AWS_SESSION_TOKEN", "  "),
                ],
                Some(("AKIAKEY", "secret", None)),
                "a blank token is none",
            ),
            (
                &[
                    ("AWS_ACCESS_KEY_ID", "ASIAKEY"),
                    ("AWS_SECRET_ACCESS_KEY", "secret"),
                    ("AWS_SESSION_TOKEN", " token\n"),
                ],
                Some(("ASIAKEY", "secret", Some("token"))),
                "the token alone is trimmed",
            ),
            (
                &[
                    ("AWS_ACCESS_KEY_ID", " AKIAKEY"),
                    ("AWS_SECRET_ACCESS_KEY", "secret "),
                ],
                Some((" AKIAKEY", "secret ", None)),
                "the key id and secret are taken as they are",
            ),
            (
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIAKEY"),
                    ("AWS_SECRET_ACCESS_KEY", ""),
                    ("SECRET_ACCESS_KEY", "fallback"),
                ],
                Some(("AKIAKEY", "fallback", None)),
                "SECRET_ACCESS_KEY stands in for a blank secret",
            ),
            (
                &[
                    ("AWS_ACCESS_KEY_ID", ""),
                    ("AWS_SECRET_ACCESS_KEY", "secret"),
                ],
                None,
                "a blank key id is no credentials (the chain goes on)",
            ),
            (
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIAKEY"),
                    ("AWS_SECRET_ACCESS_KEY", " "),
                ],
                None,
                "a blank secret without a fallback is no credentials",
            ),
            (&[], None, "nothing set"),
        ];
        for (vars, expected, reason) in cases {
            let found = environment_credentials(lookup(vars));
            let found = found.as_ref().map(|credentials| {
                (
                    credentials.access_key_id(),
                    credentials.secret_access_key(),
                    credentials.session_token(),
                )
            });
            assert_eq!(found, expected, "{reason}");
        }
    }

    #[test]
    fn environment_credentials_that_are_not_unicode_are_left_to_the_chain() {
        let found = environment_credentials(|name| match name {
            "AWS_ACCESS_KEY_ID" => Err(VarError::NotUnicode("\u{fffd}".into())),
            _ => Ok("secret".to_owned()),
        });
        assert!(found.is_none());
    }
}
