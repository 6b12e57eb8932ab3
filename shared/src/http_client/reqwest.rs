//! reqwest through reqwest-middleware: [`TraceMiddleware`], the same CLIENT span and propagation
//! as the tower layer, per attempt.

use crate::OpenTelemetrySpanExt;
use ::reqwest::{Request, Response, Url};
use http::Extensions;
use opentelemetry_semantic_conventions::attribute as semconv;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Next};
use tracing::Instrument;

use super::{KeepUserHeaders, Target, client_span, error_type_name, record_status, redacted};

/// `client` with tracekit's middleware: every request a CLIENT span with the context in its
/// headers. The one call for a traced reqwest client, as `tracekit::aws::…` builds SDK clients.
///
/// ```no_run
/// # async fn example() -> Result<(), reqwest_middleware::Error> {
/// let payments = tracekit::http_client::reqwest_client(reqwest::Client::new());
/// let response = payments.post("https://payments.example.com/charges").send().await?;
/// # let _ = response;
/// # Ok(())
/// # }
/// ```
pub fn reqwest_client(client: ::reqwest::Client) -> ClientWithMiddleware {
    ClientBuilder::new(client)
        .with(TraceMiddleware::default())
        .build()
}

/// tracekit's reqwest middleware, for a client that has other middleware too. Attach it last (after
/// a retry middleware): each attempt is then its own span, and a retried one carries
/// `http.request.resend_count`, as the HTTP client conventions ask.
///
/// ```no_run
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     // .with(a retry middleware)
///     .with(tracekit::http_client::TraceMiddleware::default())
///     .build();
/// # let _ = client;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceMiddleware {
    _private: (),
}

/// How many times this middleware has seen the request (kept in its extensions, which a retry
/// middleware hands to every attempt).
#[derive(Debug, Clone, Copy)]
struct Attempts(u32);

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for TraceMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if crate::telemetry::disabled() {
            return next.run(request, extensions).await;
        }
        let resends = extensions
            .get::<Attempts>()
            .map_or(0, |attempts| attempts.0);
        extensions.insert(Attempts(resends.saturating_add(1)));

        let span = client_span(request.method(), target_of(request.url()));
        if resends > 0 {
            span.set_attribute(semconv::HTTP_REQUEST_RESEND_COUNT, i64::from(resends));
        }
        crate::propagation::inject(&span.context(), &mut KeepUserHeaders(request.headers_mut()));
        let outcome = next.run(request, extensions).instrument(span.clone()).await;
        match &outcome {
            Ok(response) => record_status(&span, response.status().as_u16()),
            Err(error) => record_failure(&span, error),
        }
        outcome
    }
}

/// The span's view of `url`: its explicit port, or the scheme's.
fn target_of(url: &Url) -> Target<'_> {
    Target {
        scheme: Some(url.scheme()),
        host: url.host_str(),
        port: url.port_or_known_default(),
        url_full: redacted_url(url),
    }
}

/// `url.full` of a reqwest URL: no user info, no fragment, query values `REDACTED`.
fn redacted_url(url: &Url) -> String {
    let host_port = url.host_str().map(|host| match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    });
    redacted(
        Some(url.scheme()),
        host_port.as_deref(),
        url.path(),
        url.query(),
    )
}

/// A request that got no answer: `error.type` names the error, and the message says what reqwest
/// said with the URL redacted (reqwest's messages quote the URL, query and user info included).
fn record_failure(span: &tracing::Span, error: &reqwest_middleware::Error) {
    let (error_type, url) = match error {
        reqwest_middleware::Error::Reqwest(error) => {
            (error_type_name::<::reqwest::Error>(), error.url())
        }
        reqwest_middleware::Error::Middleware(_) => {
            (error_type_name::<reqwest_middleware::Error>(), None)
        }
    };
    let mut message = error.to_string();
    if let Some(url) = url {
        message = message.replace(url.as_str(), &redacted_url(url));
    }
    crate::error::record(span, error_type, &message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reqwest_url_is_redacted_as_a_uri_is() {
        // Both parsers see the same URL; the span must not depend on which client sent it.
        let cases = [
            "https://user:secret@pay.example.com:8443/charges?card=4242&amount=9&flag",
            "https://pay.example.com/charges",
            "http://127.0.0.1:8080/a/b?x=1",
            "http://[::1]:9000/?token=abc",
        ];
        for raw in cases {
            let url = Url::parse(raw).expect("a URL");
            let uri: http::Uri = raw.parse().expect("a URI");
            assert_eq!(
                redacted_url(&url),
                super::super::redacted_url(&uri),
                "{raw}"
            );
        }
        let with_fragment = Url::parse("https://h/p?q=1#frag").expect("a URL");
        assert_eq!(redacted_url(&with_fragment), "https://h/p?q=REDACTED");
    }

    #[test]
    fn a_reqwest_target_has_the_schemes_port_when_none_is_given() {
        let url = Url::parse("https://pay.example.com/charges").expect("a URL");
        let target = target_of(&url);
        assert_eq!(target.host, Some("pay.example.com"));
        assert_eq!(target.port, Some(443));
        assert_eq!(target.scheme, Some("https"));
    }
}
