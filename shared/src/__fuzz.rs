//! Entry points for tracekit's cargo-fuzz targets (`fuzz/`, feature `fuzzing`) into readers the
//! public API reaches only over the network: an OTLP endpoint's `Retry-After`, and the rewrite of
//! a span's annotations and metadata that the agent and OTLP paths make at export; and, with
//! `sigv4`, the SigV4 signer beside aws-sigv4's `sign` (the `sigv4` benchmark). Thin wrappers, not
//! part of tracekit's API: no semver promise.

use opentelemetry_sdk::trace::SpanData;
use std::time::Duration;

/// The delay an OTLP endpoint's answer asks for in `Retry-After`, as the OTLP exporter reads it
/// before a retry; `None` when it asks for none tracekit can read.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    crate::flush::retry_after(headers)
}

/// `span` as the agent and OTLP paths export it: annotations and metadata rewritten into the
/// attributes X-Ray's OTLP translators read (`aws.xray.annotations`, `aws.xray.metadata.<namespace>`).
pub fn for_otlp(span: &mut SpanData) {
    crate::annotations::for_otlp(&mut span.attributes);
    crate::metadata::for_otlp(&mut span.attributes);
}

/// The OTLP exporter's SigV4 signer (service `xray`), and aws-sigv4's `sign` as the signer falls
/// back to it: both sign the same request, so that they can be measured side by side.
#[cfg(feature = "sigv4")]
pub mod sigv4 {
    use aws_credential_types::Credentials;
    use bytes::Bytes;
    use std::time::SystemTime;

    /// Credentials to sign with. `Debug` never shows the secret.
    #[derive(Debug, Clone)]
    pub struct SigningCredentials(Credentials);

    impl SigningCredentials {
        /// An access key, its secret and a session token, if any.
        pub fn new(
            access_key_id: &str,
            secret_access_key: &str,
            session_token: Option<&str>,
        ) -> Self {
            SigningCredentials(Credentials::new(
                access_key_id,
                secret_access_key,
                session_token.map(str::to_owned),
                None,
                "tracekit::__fuzz",
            ))
        }
    }

    /// The signer one OTLP exporter holds for its region (its signing key kept per UTC day).
    #[derive(Debug)]
    pub struct Signer(crate::flush::Signer);

    impl Signer {
        /// A signer for X-Ray in `region`.
        pub fn new(region: &str) -> Self {
            Signer(crate::flush::Signer::new(region.to_owned()))
        }

        /// Signs `request` as at `time`, as the exporter signs each request.
        pub fn sign(
            &self,
            request: &mut http::Request<Bytes>,
            credentials: &SigningCredentials,
            time: SystemTime,
        ) -> Result<(), String> {
            self.0.sign_at(request, &credentials.0, time)
        }
    }

    /// aws-sigv4's `sign` with the settings tracekit uses: the signing key derived anew.
    pub fn sign_with_aws_sigv4(
        request: &mut http::Request<Bytes>,
        credentials: &SigningCredentials,
        region: &str,
        time: SystemTime,
    ) -> Result<(), String> {
        crate::flush::sign_with_aws_sigv4(request, &credentials.0, region, time)
    }
}
