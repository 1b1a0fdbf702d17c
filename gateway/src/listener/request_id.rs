//! Request ids (issue 21 point 8): every S3 answer carries
//! `x-amz-request-id` and `x-amz-id-2`, and an error body names the same
//! ids in `<RequestId>` and `<HostId>`, as AWS answers — whoever made the
//! error: a handler, s3s itself (bad signature, routing), or the
//! [`guard`](super::guard). Done here, around everything, because s3s
//! serializes its own errors and never sets a request id. The request's
//! log lines carry the id too, so a client's report can be found.

use std::future::Future;
use std::pin::Pin;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, header};
use s3s::{Body, HttpError, HttpResponse};
use tracing::Instrument;

/// The ids of one request: `request` as AWS spells it (16 upper-case hex
/// digits), `host` (x-amz-id-2, HostId) as base64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    pub request: String,
    pub host: String,
}

impl Ids {
    /// Fresh random ids: unguessable, so they say nothing about load.
    pub fn new() -> Self {
        let request = format!("{:016X}", rand::random::<u64>());
        let host = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>());
        Self { request, host }
    }
}

impl Default for Ids {
    fn default() -> Self {
        Self::new()
    }
}

/// `resp` with the ids in its headers and, for an S3 error body, in the
/// body too.
pub fn stamp(mut resp: HttpResponse, ids: &Ids) -> HttpResponse {
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-amz-request-id", &ids.request),
        ("x-amz-id-2", &ids.host),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error() || status.is_redirection()) {
        return resp;
    }
    let Some(body) = resp.body().bytes() else {
        return resp;
    };
    if let Some(with_ids) = error_with_ids(&body, ids) {
        let len = with_ids.len();
        *resp.body_mut() = Body::from(with_ids);
        if resp.headers().contains_key(header::CONTENT_LENGTH) {
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
    }
    resp
}

/// An S3 `<Error>` document with `<RequestId>` and `<HostId>` added
/// before its end; None for any other body, or one that has them.
fn error_with_ids(body: &[u8], ids: &Ids) -> Option<Bytes> {
    const END: &[u8] = b"</Error>";
    let text = body.trim_ascii_end();
    if !text.ends_with(END) || contains(text, b"<RequestId>") || !contains(text, b"<Error>") {
        return None;
    }
    let at = text.len() - END.len();
    let mut out = BytesMut::with_capacity(body.len() + 128);
    out.extend_from_slice(&text[..at]);
    // Both ids are hex and base64: nothing to escape.
    out.extend_from_slice(b"<RequestId>");
    out.extend_from_slice(ids.request.as_bytes());
    out.extend_from_slice(b"</RequestId><HostId>");
    out.extend_from_slice(ids.host.as_bytes());
    out.extend_from_slice(b"</HostId>");
    out.extend_from_slice(END);
    Some(out.freeze())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The S3 service with request ids (wraps the [`guard`](super::guard)).
#[derive(Clone)]
pub struct RequestIds<S> {
    pub inner: S,
}

type Answer = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>>;

impl<S, B> hyper::service::Service<Request<B>> for RequestIds<S>
where
    S: hyper::service::Service<Request<B>, Response = HttpResponse, Error = HttpError>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = Answer;

    fn call(&self, req: Request<B>) -> Self::Future {
        let ids = Ids::new();
        let span = tracing::info_span!("s3", request_id = %ids.request);
        let answer = span.in_scope(|| self.inner.call(req));
        Box::pin(
            async move {
                let resp = answer.await?;
                Ok(stamp(resp, &ids))
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Ids {
        Ids {
            request: "0123456789ABCDEF".into(),
            host: "aG9zdA==".into(),
        }
    }

    fn text(b: &HttpResponse) -> String {
        String::from_utf8(b.body().bytes().expect("full").to_vec()).expect("utf8")
    }

    fn error(status: u16, xml: &'static str) -> HttpResponse {
        let mut r = HttpResponse::new(Body::from(Bytes::from_static(xml.as_bytes())));
        *r.status_mut() = http::StatusCode::from_u16(status).expect("status");
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(xml.len()));
        r
    }

    #[test]
    fn an_error_body_names_the_header_ids() {
        let xml =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code></Error>";
        let r = stamp(error(404, xml), &ids());
        assert_eq!(r.headers()["x-amz-request-id"], "0123456789ABCDEF");
        assert_eq!(r.headers()["x-amz-id-2"], "aG9zdA==");
        let body = text(&r);
        assert!(
            body.ends_with("<Code>NoSuchKey</Code><RequestId>0123456789ABCDEF</RequestId><HostId>aG9zdA==</HostId></Error>"),
            "{body}"
        );
        assert_eq!(
            r.headers()[header::CONTENT_LENGTH],
            body.len().to_string().as_str()
        );
    }

    #[test]
    fn other_bodies_are_left_alone() {
        // A success, even one whose body looks like an error (an object).
        let ok = stamp(error(200, "<Error></Error>"), &ids());
        assert_eq!(text(&ok), "<Error></Error>");
        assert_eq!(ok.headers()["x-amz-request-id"], "0123456789ABCDEF");
        // Not an error document, or one that already has an id.
        for xml in [
            "not xml",
            "<Error><RequestId>x</RequestId></Error>",
            "<Other></Other>",
        ] {
            assert_eq!(text(&stamp(error(400, xml), &ids())), xml);
        }
    }

    #[test]
    fn ids_are_aws_shaped_and_fresh() {
        let (a, b) = (Ids::new(), Ids::new());
        assert_eq!(a.request.len(), 16);
        assert!(
            a.request
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
        assert_ne!(a.request, b.request);
        assert!(HeaderValue::from_str(&a.host).is_ok());
    }
}
