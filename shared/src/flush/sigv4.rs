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
use http::{HeaderValue, Request};
use sha2::{Digest as _, Sha256};
use std::{
    env::VarError,
    fmt,
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};
use time::OffsetDateTime;
#[cfg(feature = "sigv4-chain")]
use tokio::sync::OnceCell;

/// X-Ray's signing name.
const SERVICE: &str = "xray";
/// Credentials this close to their expiry are fetched again.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Credentials with no expiry are read again this often (the SDK's identity cache's default).
const NO_EXPIRY_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// SigV4's algorithm, as `Authorization` and the string to sign name it.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The headers SigV4 adds to a request signed in its headers.
const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
/// Headers aws-sigv4 sets, replaces or leaves out of the signature (its default
/// `excluded_headers`): a request that carries one is signed by aws-sigv4 itself.
const SET_BY_SIGNER: [&str; 7] = [
    "host",
    X_AMZ_DATE,
    X_AMZ_SECURITY_TOKEN,
    "authorization",
    "user-agent",
    "x-amzn-trace-id",
    "transfer-encoding",
];
/// The provider name the SDK's environment provider gives its credentials.
const ENVIRONMENT_PROVIDER: &str = "EnvironmentVariable";

/// Signs OTLP requests for one region.
#[derive(Debug)]
pub(crate) struct Signer {
    region: String,
    /// The SDK's default chain, built when the environment holds no credentials.
    #[cfg(feature = "sigv4-chain")]
    chain: OnceCell<SharedCredentialsProvider>,
    cached: Mutex<Option<Cached>>,
    /// The signing key last derived, and what it was derived for.
    key: Mutex<Option<DerivedKey>>,
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
    pub(crate) fn new(region: String) -> Self {
        Signer {
            region,
            #[cfg(feature = "sigv4-chain")]
            chain: OnceCell::new(),
            cached: Mutex::new(None),
            key: Mutex::new(None),
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
        let credentials = self.credentials().await?;
        self.sign_at(request, &credentials, SystemTime::now())
    }

    /// Signs `request` as at `time`: tracekit's own path where the request has the shape it covers
    /// (the shape tracekit sends), aws-sigv4's `sign` for any other.
    pub(crate) fn sign_at(
        &self,
        request: &mut Request<Bytes>,
        credentials: &Credentials,
        time: SystemTime,
    ) -> Result<(), String> {
        match self.sign_cached(request, credentials, time) {
            Some(signed) => signed,
            None => sign_with_aws_sigv4(request, credentials, &self.region, time),
        }
    }

    /// aws-sigv4's `sign`, built from its public pieces, with the derived signing key kept per
    /// (UTC date, region, service, access key id) instead of derived for every request (four
    /// HMACs). Held byte-equal to [`sign_with_aws_sigv4`] by a property test. `None` when the
    /// request is not of the shape this covers: a query string, a path that SigV4 would normalise
    /// or percent-encode, a header that repeats, is not visible ASCII, needs its spaces folded, or
    /// that aws-sigv4 sets, replaces or leaves unsigned itself.
    pub(super) fn sign_cached(
        &self,
        request: &mut Request<Bytes>,
        credentials: &Credentials,
        time: SystemTime,
    ) -> Option<Result<(), String>> {
        let uri = request.uri();
        if uri.query().is_some() || !plain_path(uri.path()) {
            return None;
        }
        // aws-sigv4's `host`: the host alone on the scheme's default port, else the authority.
        let host = match (
            uri.scheme_str(),
            uri.port().as_ref().map(|port| port.as_str()),
        ) {
            (Some("https"), Some("443")) | (Some("http"), Some("80")) => uri.host()?,
            _ => uri.authority()?.as_str(),
        };
        let token = credentials.session_token();
        let token_value = match token {
            Some(token) => Some(HeaderValue::from_str(token).ok()?),
            None => None,
        };
        let time = OffsetDateTime::from(time);
        let date = format!(
            "{:04}{:02}{:02}",
            time.year(),
            u8::from(time.month()),
            time.day()
        );
        let date_time = format!(
            "{date}T{:02}{:02}{:02}Z",
            time.hour(),
            time.minute(),
            time.second()
        );
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(request.headers().len() + 3);
        for (name, value) in request.headers() {
            let value = value.to_str().ok()?;
            let name = name.as_str();
            if SET_BY_SIGNER.contains(&name)
                || value.starts_with(' ')
                || value.ends_with(' ')
                || value.contains("  ")
                || request.headers().get_all(name).iter().nth(1).is_some()
            {
                return None;
            }
            headers.push((name, value));
        }
        headers.push(("host", host));
        headers.push((X_AMZ_DATE, &date_time));
        if let Some(token) = token {
            headers.push((X_AMZ_SECURITY_TOKEN, token));
        }
        headers.sort_unstable_by_key(|(name, _)| *name);
        let mut signed_headers = String::with_capacity(16 * headers.len());
        let mut canonical = String::with_capacity(512);
        canonical.push_str(request.method().as_str());
        canonical.push('\n');
        canonical.push_str(request.uri().path());
        canonical.push_str("\n\n");
        for (name, value) in &headers {
            canonical.push_str(name);
            canonical.push(':');
            canonical.push_str(value);
            canonical.push('\n');
            if !signed_headers.is_empty() {
                signed_headers.push(';');
            }
            signed_headers.push_str(name);
        }
        canonical.push('\n');
        canonical.push_str(&signed_headers);
        canonical.push('\n');
        canonical.push_str(sha256_hex(request.body()).as_str()?);
        let scope = format!("{date}/{}/{SERVICE}/aws4_request", self.region);
        let string_to_sign = format!(
            "{ALGORITHM}\n{date_time}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes()).as_str()?
        );
        let key = self.signing_key(credentials, &date, time);
        let signature = v4::calculate_signature(key, string_to_sign.as_bytes());
        let authorization = format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id()
        );
        let (Ok(date_time), Ok(authorization)) = (
            HeaderValue::from_str(&date_time),
            HeaderValue::from_str(&authorization),
        ) else {
            return Some(Err(
                "cannot sign the OTLP request: the access key id is not a header value".to_owned(),
            ));
        };
        // As aws-sigv4 applies its own: the token alone is marked sensitive.
        let headers = request.headers_mut();
        headers.insert(X_AMZ_DATE, date_time);
        headers.insert(http::header::AUTHORIZATION, authorization);
        if let Some(mut token) = token_value {
            token.set_sensitive(true);
            headers.insert(X_AMZ_SECURITY_TOKEN, token);
        }
        Some(Ok(()))
    }

    /// The derived signing key for `date` (UTC, `YYYYMMDD`): the cached one if it was derived for
    /// the same date, region, service and access key id, else derived and kept.
    fn signing_key(&self, credentials: &Credentials, date: &str, time: OffsetDateTime) -> [u8; 32] {
        let access_key_id = credentials.access_key_id();
        let mut cached = self
            .key
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(key) = cached.as_ref().filter(|key| {
            key.date == date
                && key.region == self.region
                && key.service == SERVICE
                && key.access_key_id == access_key_id
        }) {
            return key.key;
        }
        let derived = v4::generate_signing_key(
            credentials.secret_access_key(),
            time.into(),
            &self.region,
            SERVICE,
        );
        let mut key = [0; 32];
        // An HMAC-SHA256 tag is 32 bytes; anything else would leave the key zeroed, and the
        // signature refused rather than a panic.
        if let Some(derived) = derived.as_ref().get(..32) {
            key.copy_from_slice(derived);
        }
        *cached = Some(DerivedKey {
            date: date.to_owned(),
            region: self.region.clone(),
            service: SERVICE,
            access_key_id: access_key_id.to_owned(),
            key,
        });
        key
    }
}

/// aws-sigv4's `sign` as tracekit configures it: default settings (headers, no
/// `x-amz-content-sha256`, the session token signed), the key derived for this request.
pub(crate) fn sign_with_aws_sigv4(
    request: &mut Request<Bytes>,
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<(), String> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
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

/// A signing key derived for one scope and access key. Secret: its `Debug` says which scope, never
/// the key.
struct DerivedKey {
    /// UTC, `YYYYMMDD`.
    date: String,
    region: String,
    service: &'static str,
    access_key_id: String,
    key: [u8; 32],
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedKey")
            .field("date", &self.date)
            .field("region", &self.region)
            .field("service", &self.service)
            .field("access_key_id", &self.access_key_id)
            .field("key", &"** redacted **")
            .finish()
    }
}

/// A path SigV4's canonical form leaves as it is: absolute, no empty, `.` or `..` segment (which it
/// would normalise away; a trailing `/` stays), only characters its percent-encoding keeps
/// (RFC 3986's unreserved ones).
fn plain_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
    })
}

/// Lowercase hex of `bytes`' SHA-256, as SigV4 writes a hash.
fn sha256_hex(bytes: &[u8]) -> Hex {
    let mut hex = [0; 64];
    // 32 bytes into 64 characters: cannot fail.
    let _ = hex::encode_to_slice(Sha256::digest(bytes), &mut hex);
    Hex(hex)
}

struct Hex([u8; 64]);

impl Hex {
    fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::UNIX_EPOCH;

    /// Every header of `request`: name, value and whether it is marked sensitive.
    fn headers_of(request: &Request<Bytes>) -> Vec<(String, Vec<u8>, bool)> {
        let mut headers: Vec<_> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.as_bytes().to_vec(),
                    value.is_sensitive(),
                )
            })
            .collect();
        headers.sort();
        headers
    }

    /// A POST as tracekit's OTLP exporter builds one, plus `extra` headers.
    fn request(
        uri: &str,
        body: &[u8],
        content_type: &'static str,
        gzip: bool,
        extra: &[(String, String)],
    ) -> Option<Request<Bytes>> {
        let mut request = Request::post(uri).body(Bytes::copy_from_slice(body)).ok()?;
        let headers = request.headers_mut();
        for (name, value) in extra {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_str(value).ok()?,
            );
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        if gzip {
            headers.insert(
                http::header::CONTENT_ENCODING,
                HeaderValue::from_static("gzip"),
            );
        }
        Some(request)
    }

    fn credentials(access_key_id: &str, secret: &str, token: Option<&str>) -> Credentials {
        Credentials::new(
            access_key_id,
            secret,
            token.map(str::to_owned),
            None,
            "test",
        )
    }

    /// Any second from 1970 to 2100, or the last or first second of a UTC day.
    fn time() -> impl Strategy<Value = SystemTime> {
        prop_oneof![
            (0u64..4_102_444_800, 0u32..1_000_000_000)
                .prop_map(|(secs, nanos)| UNIX_EPOCH + Duration::new(secs, nanos)),
            (1u64..47_482, prop_oneof![Just(-1i64), Just(0)]).prop_map(|(day, offset)| {
                let secs = (day * 86_400).saturating_add_signed(offset);
                UNIX_EPOCH + Duration::new(secs, if offset < 0 { 999_999_999 } else { 0 })
            }),
        ]
    }

    fn region() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("us-east-1".to_owned()),
            Just("eu-central-2".to_owned()),
            "[a-z]{2}-[a-z]{4,9}-[0-9]",
        ]
    }

    /// X-Ray's endpoint in `region`, or any host, on the default port or another.
    fn endpoint(region: String) -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just(format!("xray.{region}.amazonaws.com")),
                Just("127.0.0.1".to_owned()),
                "[a-z0-9-]{1,12}(\\.[a-z0-9-]{1,12}){0,3}",
            ],
            prop_oneof![Just("https"), Just("http")],
            prop_oneof![
                Just(None),
                Just(Some(443u16)),
                Just(Some(80)),
                any::<u16>().prop_map(Some)
            ],
        )
            .prop_map(|(host, scheme, port)| match port {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            })
    }

    /// Paths tracekit's own path signs: `/v1/traces`, or plain segments.
    fn plain() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("/v1/traces".to_owned()),
            Just("/".to_owned()),
            "(/[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,7}){1,4}/?",
        ]
    }

    /// Credentials, with a session token or without.
    fn any_credentials() -> impl Strategy<Value = Credentials> {
        (
            "(AKIA|ASIA)[A-Z0-9]{16}",
            "[A-Za-z0-9/+]{40}",
            proptest::option::of("[A-Za-z0-9/+=]{20,300}"),
        )
            .prop_map(|(id, secret, token)| credentials(&id, &secret, token.as_deref()))
    }

    fn content_type() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("application/x-protobuf"), Just("application/json")]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// On the requests tracekit sends, its own path adds exactly the headers aws-sigv4 adds,
        /// byte for byte (and marked sensitive alike), whether the key is derived or cached.
        #[test]
        fn tracekits_signature_is_byte_equal_to_aws_sigv4s(
            (region, base) in region().prop_flat_map(|region| (Just(region.clone()), endpoint(region))),
            path in plain(),
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            content_type in content_type(),
            gzip in any::<bool>(),
            credentials in any_credentials(),
            first in time(),
            second in time(),
        ) {
            let uri = format!("{base}{path}");
            let signer = Signer::new(region.clone());
            // The first request derives the key, the second may reuse it (same day) or not.
            for time in [first, second, first] {
                let mut ours = request(&uri, &body, content_type, gzip, &[]).expect("request");
                let mut theirs = ours.clone();
                let signed = signer.sign_cached(&mut ours, &credentials, time);
                prop_assert!(matches!(signed, Some(Ok(()))), "{uri}: {signed:?}");
                sign_with_aws_sigv4(&mut theirs, &credentials, &region, time).expect("aws-sigv4 signs");
                prop_assert_eq!(headers_of(&ours), headers_of(&theirs), "{}", uri);
            }
        }

        /// Any request, of tracekit's shape or not (user headers, paths SigV4 normalises, a
        /// query), is signed as aws-sigv4 signs it: by tracekit's path or by aws-sigv4 itself.
        #[test]
        fn any_request_is_signed_as_aws_sigv4_signs_it(
            region in region(),
            base in endpoint("us-east-1".to_owned()),
            path in prop_oneof![
                "(/[A-Za-z0-9._~!$&'()*+,;=:@-]{0,6}){0,4}(\\?[a-z=&]{0,8})?",
                // Segments SigV4 normalises away.
                "(/(\\.|\\.\\.|[a-z.]{0,3})){0,4}/?",
            ],
            body in proptest::collection::vec(any::<u8>(), 0..256),
            content_type in content_type(),
            gzip in any::<bool>(),
            extra in proptest::collection::vec(
                (
                    prop_oneof![
                        Just("host".to_owned()),
                        Just("user-agent".to_owned()),
                        Just("x-amzn-trace-id".to_owned()),
                        Just("x-amz-date".to_owned()),
                        Just("content-type".to_owned()),
                        "[a-z][a-z0-9-]{0,10}",
                    ],
                    "[ -~]{0,12}",
                ),
                0..4,
            ),
            credentials in any_credentials(),
            time in time(),
        ) {
            let uri = format!("{base}{path}");
            let Some(mut ours) = request(&uri, &body, content_type, gzip, &extra) else {
                return Err(TestCaseError::reject("not an HTTP request"));
            };
            let mut theirs = ours.clone();
            let signer = Signer::new(region.clone());
            let signed = signer.sign_at(&mut ours, &credentials, time);
            let expected = sign_with_aws_sigv4(&mut theirs, &credentials, &region, time);
            prop_assert_eq!(signed.is_ok(), expected.is_ok());
            prop_assert_eq!(headers_of(&ours), headers_of(&theirs), "{}", uri);
        }
    }

    /// 2026-03-01T23:59:59Z.
    fn last_second_of_march_first() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_772_409_599)
    }

    fn authorization(request: &Request<Bytes>) -> String {
        request.headers()[http::header::AUTHORIZATION]
            .to_str()
            .expect("ASCII")
            .to_owned()
    }

    #[test]
    fn a_cached_key_serves_its_day_and_access_key_and_no_other() {
        let signer = Signer::new("us-east-1".to_owned());
        let first = credentials("ASIAFIRST0000000000", "first/secret", Some("token"));
        let uri = "https://xray.us-east-1.amazonaws.com/v1/traces";
        let sign = |credentials: &Credentials, time: SystemTime| {
            let mut ours =
                request(uri, b"spans", "application/x-protobuf", false, &[]).expect("request");
            let mut theirs = ours.clone();
            signer
                .sign_at(&mut ours, credentials, time)
                .expect("signed");
            sign_with_aws_sigv4(&mut theirs, credentials, "us-east-1", time).expect("signed");
            (authorization(&ours), authorization(&theirs))
        };
        let day_one = last_second_of_march_first();
        let (ours, theirs) = sign(&first, day_one);
        assert_eq!(ours, theirs, "the key derived and kept");
        let kept = |signer: &Signer| {
            let key = signer.key.lock().expect("key lock");
            key.as_ref()
                .map(|key| (key.date.clone(), key.access_key_id.clone()))
        };
        assert_eq!(
            kept(&signer),
            Some(("20260301".to_owned(), "ASIAFIRST0000000000".to_owned()))
        );

        // The kept key is what signs the same day's requests: a wrong one shows.
        signer
            .key
            .lock()
            .expect("key lock")
            .as_mut()
            .expect("a kept key")
            .key = [0; 32];
        let (ours, theirs) = sign(&first, day_one - Duration::from_secs(3_600));
        assert_ne!(ours, theirs, "the same day signs with the kept key");

        // One second later it is another UTC day: a key of its own.
        let day_two = day_one + Duration::from_secs(1);
        let (ours, theirs) = sign(&first, day_two);
        assert_eq!(ours, theirs, "a new UTC day derives a new key");
        assert_eq!(
            kept(&signer),
            Some(("20260302".to_owned(), "ASIAFIRST0000000000".to_owned()))
        );

        // New credentials the same day: a key of their own.
        signer
            .key
            .lock()
            .expect("key lock")
            .as_mut()
            .expect("a kept key")
            .key = [0; 32];
        let second = credentials("ASIASECOND000000000", "second/secret", None);
        let (ours, theirs) = sign(&second, day_two);
        assert_eq!(ours, theirs, "another access key derives its own key");
        assert_eq!(
            kept(&signer),
            Some(("20260302".to_owned(), "ASIASECOND000000000".to_owned()))
        );
    }

    #[test]
    fn the_signer_debug_output_holds_no_secret() {
        let signer = Signer::new("us-east-1".to_owned());
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let token = "IQoJb3JpZ2luX2VjEXAMPLETOKEN";
        let credentials = credentials("ASIAEXAMPLE00000000", secret, Some(token));
        *signer.lock() = Some(Cached {
            credentials: credentials.clone(),
            refresh_at: Instant::now() + NO_EXPIRY_LIFETIME,
        });
        let mut request = request(
            "https://xray.us-east-1.amazonaws.com/v1/traces",
            b"spans",
            "application/x-protobuf",
            false,
            &[],
        )
        .expect("request");
        signer
            .sign_at(&mut request, &credentials, SystemTime::now())
            .expect("signed");
        let key = signer
            .key
            .lock()
            .expect("key lock")
            .as_ref()
            .expect("a kept key")
            .key;
        let debug = format!("{signer:?} {request:?}");
        assert!(debug.contains("ASIAEXAMPLE00000000"), "{debug}");
        for secret in [secret, token, &hex::encode(key)] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

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

    /// (environment, expected (key id, secret, token), reason)
    type EnvironmentCase<'a> = (
        &'a [(&'a str, &'a str)],
        Option<(&'a str, &'a str, Option<&'a str>)>,
        &'a str,
    );

    #[test]
    fn environment_credentials_are_read_as_the_sdk_environment_provider_reads_them() {
        let cases: [EnvironmentCase<'_>; 9] = [
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
