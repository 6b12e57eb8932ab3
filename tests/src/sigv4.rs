//! Authentication for the OTLP receiver standing in for X-Ray's OTLP endpoint
//! (`https://xray.<region>.amazonaws.com/v1/traces`): real SigV4 verification against a
//! [`CredentialStore`] of credentials the test issued, a bearer-key alternative, and a
//! [`CredentialsServer`] that hands the store's credentials to the AWS SDK's container-credentials
//! provider, the way Lambda SnapStart and ECS deliver them.
//!
//! The verifier recomputes the signature with `aws-sigv4` itself, with the default
//! [`SigningSettings`] the SDK and tracekit's exporter use: signature in headers, no
//! `x-amz-content-sha256`, the session token signed. So a request passes only when it is signed
//! exactly as X-Ray would check it: over the method, the path and query, the headers it names in
//! `SignedHeaders`, and the body bytes as sent (compressed, if they are).
//!
//! Reference: <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv4-signed-request.html>

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};

use crate::http::{Body, Server, respond};
use crate::util::{lock, random_hex, random_u64};
use crate::{Error, Result};

/// The only algorithm X-Ray's SigV4 accepts (SigV4a is not used for it).
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
/// How far `x-amz-date` may be from the receiver's clock, as AWS allows.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// How the receiver authenticates export requests.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Auth {
    /// Anything goes (the default: the ADOT collector layer on localhost).
    #[default]
    None,
    /// SigV4, as X-Ray's OTLP endpoint requires: signed for `region` and `service` with credentials
    /// from `credentials`.
    SigV4 {
        /// The region the signature's scope must name, e.g. `us-east-1`.
        region: String,
        /// The signing name the scope must name: `xray` for X-Ray's OTLP endpoint.
        service: String,
        /// The credentials the receiver trusts.
        credentials: CredentialStore,
    },
    /// `Authorization` must be exactly this value (e.g. `Bearer abc`), and the request unsigned.
    Bearer(String),
}

impl Auth {
    /// SigV4 for X-Ray (`service` `xray`) in `region`.
    pub fn sigv4(region: impl Into<String>, credentials: &CredentialStore) -> Auth {
        Auth::SigV4 {
            region: region.into(),
            service: "xray".to_owned(),
            credentials: credentials.clone(),
        }
    }

    /// Checks one request against this policy: `Err` carries the rejection reason, which names the
    /// access key id at most, never a secret, a session token or a bearer key.
    pub(crate) fn check(&self, parts: &Parts, body: &[u8]) -> Result<(), String> {
        match self {
            Auth::None => Ok(()),
            Auth::Bearer(expected) => check_bearer(expected, &parts.headers),
            Auth::SigV4 {
                region,
                service,
                credentials,
            } => verify_sigv4(
                parts,
                body,
                &Scope { region, service },
                credentials,
                SystemTime::now(),
            ),
        }
    }
}

/// The scheme of an `Authorization` header value (`AWS4-HMAC-SHA256`, `Bearer`): what a request record
/// may show of it.
pub(crate) fn authorization_scheme(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?;
    let value = String::from_utf8_lossy(value.as_bytes());
    value.split_whitespace().next().map(str::to_owned)
}

/// Credentials as the test issued them.
#[derive(Clone, PartialEq, Eq)]
pub struct TestCredentials {
    /// `ASIA` and 16 more characters, like STS's temporary keys.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: String,
    /// The session token, which SigV4 requests must carry in `x-amz-security-token`.
    pub session_token: String,
    /// When they stop being accepted (whole seconds, as the container-credentials JSON carries it).
    pub expiration: SystemTime,
}

impl std::fmt::Debug for TestCredentials {
    /// The access key id and the expiry only: secrets do not belong in test output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

impl TestCredentials {
    /// The same credentials as the AWS SDK holds them.
    pub fn to_aws(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            Some(self.session_token.clone()),
            Some(self.expiration),
            "tracekit-test",
        )
    }
}

/// The credentials a receiver trusts, by access key id. Clones share one store, so a test can issue
/// and revoke while a receiver and a [`CredentialsServer`] hold it.
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    inner: Arc<Mutex<StoreInner>>,
}

#[derive(Debug, Default)]
struct StoreInner {
    by_key: HashMap<String, Stored>,
    /// Access key ids in the order they were issued.
    issued: Vec<String>,
}

#[derive(Debug)]
struct Stored {
    credentials: TestCredentials,
    revoked: bool,
}

/// What the store knows of an access key id.
enum Lookup {
    Unknown,
    Revoked,
    Known(TestCredentials),
}

impl CredentialStore {
    /// An empty store: every signature is refused until credentials are issued.
    pub fn new() -> CredentialStore {
        CredentialStore::default()
    }

    /// Issues fresh credentials valid for `lifetime` from now (rounded down to the second; a zero
    /// lifetime gives credentials that are already expired). Each call gives a distinct key.
    pub fn issue(&self, lifetime: Duration) -> TestCredentials {
        let expires = (SystemTime::now() + lifetime)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let credentials = TestCredentials {
            access_key_id: access_key_id(),
            secret_access_key: random_hex(40),
            session_token: format!("IQoJtracekit/{}", random_hex(96)),
            expiration: UNIX_EPOCH + Duration::from_secs(expires),
        };
        let mut inner = lock(&self.inner);
        inner.issued.push(credentials.access_key_id.clone());
        inner.by_key.insert(
            credentials.access_key_id.clone(),
            Stored {
                credentials: credentials.clone(),
                revoked: false,
            },
        );
        credentials
    }

    /// Stops trusting `access_key_id`; requests signed with it are refused as revoked.
    pub fn revoke(&self, access_key_id: &str) {
        if let Some(stored) = lock(&self.inner).by_key.get_mut(access_key_id) {
            stored.revoked = true;
        }
    }

    /// The most recently issued credentials that are not revoked: what the [`CredentialsServer`]
    /// serves.
    pub fn current(&self) -> Option<TestCredentials> {
        let inner = lock(&self.inner);
        inner
            .issued
            .iter()
            .rev()
            .filter_map(|key| inner.by_key.get(key))
            .find(|stored| !stored.revoked)
            .map(|stored| stored.credentials.clone())
    }

    fn lookup(&self, access_key_id: &str) -> Lookup {
        match lock(&self.inner).by_key.get(access_key_id) {
            None => Lookup::Unknown,
            Some(stored) if stored.revoked => Lookup::Revoked,
            Some(stored) => Lookup::Known(stored.credentials.clone()),
        }
    }
}

/// `ASIA` and 16 characters of STS's alphabet (upper-case letters and digits 2-7).
fn access_key_id() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bits = u128::from(random_u64()) << 64 | u128::from(random_u64());
    let suffix: String = (0..16)
        .map(|i| char::from(ALPHABET[((bits >> (5 * i)) & 31) as usize]))
        .collect();
    format!("ASIA{suffix}")
}

/// Signs `request` in place as the AWS SDK would, with the default [`SigningSettings`]: adds
/// `authorization`, `x-amz-date` (from `time`) and `x-amz-security-token`. The URI must be absolute
/// (`https://127.0.0.1:PORT/v1/traces`); a `Host` header is added from it when missing, the value
/// the signature covers (the port left out when it is the scheme's default), so that what is sent is
/// what was signed.
pub fn sign_request(
    request: &mut Request<Bytes>,
    credentials: &TestCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<()> {
    let what = format!("signing {} {}", request.method(), request.uri());
    let invalid = |error: &dyn std::fmt::Display| Error::Invalid(format!("{what}: {error}"));
    if !request.headers().contains_key(header::HOST) {
        let authority = request
            .uri()
            .authority()
            .ok_or_else(|| invalid(&"the URI has no host"))?;
        let default_port = match request.uri().scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        };
        let host = if authority.port_u16() == default_port {
            authority.host()
        } else {
            authority.as_str()
        };
        let host = HeaderValue::from_str(host).map_err(|error| invalid(&error))?;
        request.headers_mut().insert(header::HOST, host);
    }
    let headers = header_strs(request.headers().iter()).map_err(|error| invalid(&error))?;
    let signable = SignableRequest::new(
        request.method().as_str(),
        request.uri().to_string(),
        headers.into_iter(),
        SignableBody::Bytes(request.body()),
    )
    .map_err(|error| invalid(&error))?;
    let identity = credentials.to_aws().into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|error| invalid(&error))?
        .into();
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|error| invalid(&error))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

fn header_strs<'a>(
    headers: impl Iterator<Item = (&'a http::HeaderName, &'a HeaderValue)>,
) -> Result<Vec<(&'a str, &'a str)>, String> {
    headers
        .map(|(name, value)| {
            value
                .to_str()
                .map(|value| (name.as_str(), value))
                .map_err(|_| format!("header {name} is not visible ASCII"))
        })
        .collect()
}

fn check_bearer(expected: &str, headers: &HeaderMap) -> Result<(), String> {
    let authorization = headers.get(header::AUTHORIZATION);
    let signed = headers.contains_key(X_AMZ_DATE)
        || authorization.is_some_and(|value| value.as_bytes().starts_with(b"AWS4-"));
    if signed {
        return Err("bearer: the request is SigV4-signed; a bearer key was expected".to_owned());
    }
    match authorization {
        None => Err("bearer: no Authorization header".to_owned()),
        Some(value) if value.as_bytes() == expected.as_bytes() => Ok(()),
        Some(_) => Err("bearer: Authorization is not the configured key".to_owned()),
    }
}

/// What a signature's credential scope must name.
struct Scope<'a> {
    region: &'a str,
    service: &'a str,
}

/// An `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` header.
#[derive(Debug, PartialEq, Eq)]
struct Presented {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    signed_headers: String,
    signature: String,
}

fn parse_authorization(value: &str) -> Result<Presented, String> {
    let malformed = |why: &str| format!("sigv4: malformed Authorization header: {why}");
    let fields = value
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with(' '))
        .ok_or_else(|| malformed(&format!("the scheme is not {ALGORITHM}")))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for field in fields.split(',') {
        let (key, value) = field
            .trim()
            .split_once('=')
            .ok_or_else(|| malformed("a field is not key=value"))?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(malformed(&format!("unknown field {key}"))),
        };
        if slot.replace(value.to_owned()).is_some() {
            return Err(malformed(&format!("{key} appears twice")));
        }
    }
    let credential = credential.ok_or_else(|| malformed("no Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| malformed("no SignedHeaders"))?;
    let signature = signature.ok_or_else(|| malformed("no Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(malformed(
            "Credential is not AKID/YYYYMMDD/region/service/aws4_request",
        ));
    };
    Ok(Presented {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature,
    })
}

/// `YYYYMMDDTHHMMSSZ`, SigV4's basic ISO 8601 form.
fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let bytes = value.as_bytes();
    let shape = bytes.len() == 16
        && bytes[8] == b'T'
        && bytes[15] == b'Z'
        && bytes[..8]
            .iter()
            .chain(&bytes[9..15])
            .all(u8::is_ascii_digit);
    if !shape {
        return None;
    }
    let extended = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &value[0..4],
        &value[4..6],
        &value[6..8],
        &value[9..11],
        &value[11..13],
        &value[13..15]
    );
    let parsed = DateTime::from_str(&extended, Format::DateTime).ok()?;
    SystemTime::try_from(parsed).ok()
}

fn verify_sigv4(
    parts: &Parts,
    body: &[u8],
    scope: &Scope<'_>,
    store: &CredentialStore,
    now: SystemTime,
) -> Result<(), String> {
    let header = |name: &str| -> Result<Option<&str>, String> {
        parts
            .headers
            .get(name)
            .map(|value| {
                value
                    .to_str()
                    .map_err(|_| format!("sigv4: header {name} is not visible ASCII"))
            })
            .transpose()
    };
    let authorization = header(header::AUTHORIZATION.as_str())?
        .ok_or_else(|| "sigv4: no Authorization header".to_owned())?;
    let presented = parse_authorization(authorization)?;
    let key = presented.access_key_id.as_str();
    let amz_date = header(X_AMZ_DATE)?.ok_or_else(|| "sigv4: no x-amz-date header".to_owned())?;
    let time = parse_amz_date(amz_date)
        .ok_or_else(|| format!("sigv4: malformed x-amz-date {amz_date:?}"))?;
    if presented.region != scope.region {
        return Err(format!(
            "sigv4: the credential scope's region is {:?}, not {:?}",
            presented.region, scope.region
        ));
    }
    if presented.service != scope.service {
        return Err(format!(
            "sigv4: the credential scope's service is {:?}, not {:?}",
            presented.service, scope.service
        ));
    }
    if presented.date != amz_date[..8] {
        return Err(format!(
            "sigv4: the credential scope's date {} is not x-amz-date's {amz_date}",
            presented.date
        ));
    }
    let credentials = match store.lookup(key) {
        Lookup::Unknown => return Err(format!("sigv4: unknown access key {key}")),
        Lookup::Revoked => return Err(format!("sigv4: revoked access key {key}")),
        Lookup::Known(credentials) => credentials,
    };
    if credentials.expiration < now {
        let ago = now
            .duration_since(credentials.expiration)
            .unwrap_or_default();
        return Err(format!(
            "sigv4: expired credentials {key} (expired {}s ago)",
            ago.as_secs()
        ));
    }
    // Either way: a date ahead of the clock is as suspect as one behind it.
    let skew = now
        .duration_since(time)
        .unwrap_or_else(|ahead| ahead.duration());
    if skew > MAX_CLOCK_SKEW {
        return Err(format!(
            "sigv4: x-amz-date {amz_date} is {}s away from the receiver's clock (at most {}s)",
            skew.as_secs(),
            MAX_CLOCK_SKEW.as_secs()
        ));
    }
    match header(X_AMZ_SECURITY_TOKEN) {
        Ok(Some(token)) if token == credentials.session_token => {}
        Ok(Some(_)) | Err(_) => {
            return Err(format!(
                "sigv4: x-amz-security-token is not the session token of {key}"
            ));
        }
        Ok(None) => return Err(format!("sigv4: no x-amz-security-token header ({key})")),
    }

    // The request as the signer saw it: the headers it named, minus the two aws-sigv4 adds itself
    // from the time and the credentials.
    let names: Vec<&str> = presented.signed_headers.split(';').collect();
    if !names.contains(&"host") {
        // aws-sigv4 would take the host from the URI, which on the wire has none.
        return Err("sigv4: SignedHeaders does not name host".to_owned());
    }
    let mut headers = Vec::new();
    for name in &names {
        if [X_AMZ_DATE, X_AMZ_SECURITY_TOKEN].contains(name) {
            continue;
        }
        let values = parts.headers.get_all(*name);
        if values.iter().next().is_none() {
            return Err(format!("sigv4: signed header {name} is not in the request"));
        }
        for value in values {
            let value = value
                .to_str()
                .map_err(|_| format!("sigv4: header {name} is not visible ASCII"))?;
            headers.push((*name, value));
        }
    }
    let uri = parts
        .uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    let recomputed = recompute(
        parts.method.as_str(),
        uri,
        headers,
        body,
        &credentials,
        scope,
        time,
    )
    .map_err(|error| format!("sigv4: cannot recompute the signature: {error}"))?;
    if recomputed.signed_headers != presented.signed_headers {
        return Err(format!(
            "sigv4: SignedHeaders {:?} is not what aws-sigv4 signs for this request ({:?})",
            presented.signed_headers, recomputed.signed_headers
        ));
    }
    if recomputed.signature != presented.signature {
        return Err(format!("sigv4: signature mismatch ({key})"));
    }
    Ok(())
}

/// The `Authorization` aws-sigv4 computes for the request as described.
fn recompute(
    method: &str,
    uri: &str,
    headers: Vec<(&str, &str)>,
    body: &[u8],
    credentials: &TestCredentials,
    scope: &Scope<'_>,
    time: SystemTime,
) -> Result<Presented, String> {
    let signable =
        SignableRequest::new(method, uri, headers.into_iter(), SignableBody::Bytes(body))
            .map_err(|error| error.to_string())?;
    let identity = credentials.to_aws().into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|error| error.to_string())?
        .into();
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|error| error.to_string())?
        .into_parts();
    let authorization = instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case(header::AUTHORIZATION.as_str()))
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| "aws-sigv4 produced no authorization header".to_owned())?;
    parse_authorization(&authorization)
}

/// A container-credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`) serving a
/// [`CredentialStore`]'s current credentials in the JSON the SDK's `EcsCredentialsProvider` reads.
/// Stops when dropped.
#[derive(Debug)]
pub struct CredentialsServer {
    state: Arc<CredentialsState>,
    server: Server,
}

#[derive(Debug)]
struct CredentialsState {
    store: CredentialStore,
    fetches: AtomicUsize,
    token: Mutex<Option<String>>,
}

impl CredentialsServer {
    /// Starts the server on 127.0.0.1 and a free port. Must be called inside a Tokio runtime.
    pub fn start(store: CredentialStore) -> Result<CredentialsServer> {
        let state = Arc::new(CredentialsState {
            store,
            fetches: AtomicUsize::new(0),
            token: Mutex::new(None),
        });
        let server = Server::start("container credentials server", {
            let state = Arc::clone(&state);
            move |request: Request<_>| {
                let response = state.answer(request.method(), request.headers());
                async move { response }
            }
        })?;
        Ok(CredentialsServer { state, server })
    }

    /// `http://127.0.0.1:PORT/creds`, the value for `AWS_CONTAINER_CREDENTIALS_FULL_URI` (the SDK
    /// takes plain HTTP from loopback addresses only, which this is).
    pub fn url(&self) -> String {
        format!("http://{}/creds", self.server.addr())
    }

    /// Requires `Authorization: token` on every fetch, as Lambda SnapStart and EKS do; the SDK sends
    /// it from `AWS_CONTAINER_AUTHORIZATION_TOKEN`. Other fetches get 401.
    pub fn require_token(&self, token: impl Into<String>) {
        *lock(&self.state.token) = Some(token.into());
    }

    /// How many times credentials were fetched (every GET, whatever its answer).
    pub fn requests(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

impl CredentialsState {
    fn answer(&self, method: &Method, headers: &HeaderMap) -> Response {
        if method != Method::GET {
            return respond(StatusCode::METHOD_NOT_ALLOWED, "");
        }
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if let Some(token) = lock(&self.token).as_deref() {
            let presented = headers.get(header::AUTHORIZATION);
            if presented.is_none_or(|value| value.as_bytes() != token.as_bytes()) {
                return error_json(StatusCode::UNAUTHORIZED, "Authorization is not the token");
            }
        }
        let Some(credentials) = self.store.current() else {
            return error_json(StatusCode::NOT_FOUND, "no credentials issued");
        };
        let Ok(expiration) = DateTime::from(credentials.expiration).fmt(Format::DateTime) else {
            return error_json(StatusCode::INTERNAL_SERVER_ERROR, "unformattable expiry");
        };
        let body = serde_json::json!({
            "AccessKeyId": credentials.access_key_id,
            "SecretAccessKey": credentials.secret_access_key,
            "Token": credentials.session_token,
            "Expiration": expiration,
            "RoleArn": "arn:aws:iam::123456789012:role/tracekit-test",
        });
        json_response(StatusCode::OK, &body)
    }
}

type Response = http::Response<Body>;

fn error_json(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &serde_json::json!({"Code": status.canonical_reason(), "Message": message}),
    )
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = respond(status, body.to_string());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers_parse_and_malformed_ones_are_named() {
        let presented = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=ASIAX/20260102/us-east-1/xray/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature=abc123",
        )
        .expect("a well-formed header");
        assert_eq!(
            presented,
            Presented {
                access_key_id: "ASIAX".to_owned(),
                date: "20260102".to_owned(),
                region: "us-east-1".to_owned(),
                service: "xray".to_owned(),
                signed_headers: "content-type;host;x-amz-date".to_owned(),
                signature: "abc123".to_owned(),
            }
        );
        for bad in [
            "Bearer abc",
            "AWS4-HMAC-SHA256Credential=a",
            "AWS4-HMAC-SHA256 Credential=ASIAX/20260102/us-east-1/xray, SignedHeaders=host, Signature=a",
            "AWS4-HMAC-SHA256 Credential=ASIAX/20260102/us-east-1/xray/aws4_request, Signature=a",
        ] {
            let error = parse_authorization(bad).expect_err(bad);
            assert!(error.starts_with("sigv4: malformed"), "{error}");
        }
    }

    #[test]
    fn amz_dates_parse_in_basic_form_only() {
        assert_eq!(
            parse_amz_date("20150830T123600Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_440_938_160))
        );
        assert_eq!(parse_amz_date("2015-08-30T12:36:00Z"), None);
        assert_eq!(parse_amz_date("20150830T123600"), None);
        assert_eq!(parse_amz_date("2015083xT123600Z"), None);
    }

    #[test]
    fn access_key_ids_look_like_sts_ones_and_differ() {
        let (a, b) = (access_key_id(), access_key_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
        assert!(a.starts_with("ASIA"), "{a}");
        assert!(
            a.bytes()
                .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit())
        );
    }
}
