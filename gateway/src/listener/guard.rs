//! What the S3 endpoint refuses before s3s sees a request: from headers
//! and query alone, so before any body byte is read and before any key
//! is looked up (issue 20 items 1 and 4).
//!
//! - A multipart/form-data POST (PostObject, not offered): s3s would
//!   parse the form, then buffer its file, before any access check.
//! - SigV2 (header or presigned query) unless `--allow-sigv2`: a v2
//!   signature is weaker and a v2 presigned URL may never expire.
//! - A presigned URL valid for more than a week (AWS's limit; s3s
//!   accepts any u32).
//! - A SigV4 credential scope whose region is no region name, such as
//!   s3cmd's default "US" (issue 21 point 11): 400
//!   AuthorizationHeaderMalformed naming the region to use, as AWS
//!   answers; s3cmd then signs again with it. (s3s would check the
//!   signature, then refuse the region with a bare InvalidRequest.)

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use s3s::service::S3Service;
use s3s::{Body, HttpError, HttpResponse};

/// AWS's longest presigned URL, in seconds (seven days).
pub const MAX_PRESIGNED_EXPIRES: u64 = 604_800;

/// The region a client is told to sign with: the gateway's buckets have
/// no location, which S3 reads as us-east-1.
pub const REGION: &str = "us-east-1";

/// An S3 error answered without s3s.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: Cow<'static, str>,
    /// The region to sign with, for a wrong one (AWS's `<Region>`).
    pub region: Option<&'static str>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code,
            message: Cow::Borrowed(message),
            region: None,
        }
    }
}

/// The refusal for a request with these method, query and headers, if any.
pub fn refusal(
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    allow_sigv2: bool,
) -> Option<Refusal> {
    if *method == Method::POST && is_form(headers) {
        // 501, not 405: AWS answers NotImplemented for functionality it
        // does not offer, SDKs do not retry it, and s3s answers the same
        // for every operation the gateway does not implement.
        return Some(Refusal::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "PostObject is not supported",
        ));
    }
    let params = query_names(query.unwrap_or_default());
    if !allow_sigv2 && is_sigv2(&params, headers) {
        return Some(Refusal::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "SigV2 is disabled",
        ));
    }
    for (name, value) in &params {
        if name == "X-Amz-Expires"
            && value
                .parse::<u64>()
                .map_or(true, |s| s > MAX_PRESIGNED_EXPIRES)
        {
            return Some(Refusal::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "X-Amz-Expires must be a number of seconds, at most 604800 (seven days)",
            ));
        }
    }
    wrong_region(&params, headers)
}

/// A SigV4 credential scope (`AKID/DATE/REGION/SERVICE/aws4_request`)
/// naming a region that is no region name (s3s takes `[a-z0-9-]+`).
fn wrong_region(params: &[(String, String)], headers: &HeaderMap) -> Option<Refusal> {
    let region = |credential: &str| -> Option<String> {
        let region = credential.split('/').nth(2)?;
        let valid = region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        (!region.is_empty() && !valid).then(|| region.chars().take(64).collect())
    };
    let refuse = |code, region: String| Refusal {
        status: StatusCode::BAD_REQUEST,
        code,
        message: Cow::Owned(format!(
            "The authorization header is malformed; the region '{region}' is wrong; expecting '{REGION}'"
        )),
        region: Some(REGION),
    };
    for v in headers.get_all(header::AUTHORIZATION) {
        let v = String::from_utf8_lossy(v.as_bytes());
        let Some(rest) = v.strip_prefix("AWS4-") else {
            continue;
        };
        let credential = rest
            .split([',', ' '])
            .find_map(|p| p.trim().strip_prefix("Credential="));
        if let Some(r) = credential.and_then(region) {
            return Some(refuse("AuthorizationHeaderMalformed", r));
        }
    }
    params
        .iter()
        .filter(|(n, _)| n == "X-Amz-Credential")
        .find_map(|(_, v)| region(v))
        .map(|r| refuse("AuthorizationQueryParametersError", r))
}

/// Any Content-Type of multipart/form-data, as s3s would read it.
fn is_form(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONTENT_TYPE).iter().any(|v| {
        let v = String::from_utf8_lossy(v.as_bytes());
        let essence = v.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("multipart/form-data")
    })
}

/// What s3s takes for SigV2: a `Signature` query parameter, or an
/// Authorization header `AWS id:sig` (v4 is `AWS4-HMAC-SHA256 ...`).
fn is_sigv2(params: &[(String, String)], headers: &HeaderMap) -> bool {
    params.iter().any(|(n, _)| n == "Signature")
        || headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .any(|v| v.as_bytes().starts_with(b"AWS "))
}

/// The query's parameters, names and values percent-decoded (`+` is a
/// space) as s3s decodes them, so an encoded name cannot slip past.
pub(crate) fn query_names(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(n), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let hex = |c: Option<&u8>| c.and_then(|c| char::from(*c).to_digit(16));
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        i += 1;
        match c {
            b'%' => match (hex(b.get(i)), hex(b.get(i + 1))) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The refusal as S3 XML. HTTP/1 connections are closed after it, so
/// an unread body is never drained.
fn respond(r: &Refusal, version: Version) -> HttpResponse {
    let region = r
        .region
        .map(|r| format!("<Region>{r}</Region>"))
        .unwrap_or_default();
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{}</Message>{region}</Error>",
        r.code,
        escape(&r.message)
    );
    let mut resp = Response::new(Body::from(Bytes::from(xml)));
    *resp.status_mut() = r.status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    if version <= Version::HTTP_11 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// XML text: a region a client sent is quoted in a message.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The S3 service behind [`refusal`].
#[derive(Clone)]
pub struct Guard {
    pub inner: S3Service,
    pub allow_sigv2: bool,
}

type Answer = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>>;

/// Takes the body as s3s does, so an outer layer can count its bytes.
impl hyper::service::Service<Request<Body>> for Guard {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = Answer;

    fn call(&self, req: Request<Body>) -> Self::Future {
        let refused = refusal(
            req.method(),
            req.uri().query(),
            req.headers(),
            self.allow_sigv2,
        );
        if let Some(r) = refused {
            tracing::debug!(
                code = r.code,
                message = %r.message,
                "S3 request refused before s3s"
            );
            let resp = respond(&r, req.version());
            // The body is dropped unread with the request.
            return Box::pin(async move { Ok(resp) });
        }
        let inner = self.inner.clone();
        Box::pin(async move { inner.call(req).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    fn code(
        m: Method,
        q: Option<&str>,
        h: &[(&'static str, &'static str)],
        v2: bool,
    ) -> &'static str {
        refusal(&m, q, &headers(h), v2).map_or("", |r| r.code)
    }

    #[test]
    fn a_form_post_is_refused_whatever_its_spelling() {
        for ct in [
            "multipart/form-data; boundary=x",
            "Multipart/Form-Data;boundary=x",
            " multipart/form-data ",
        ] {
            assert_eq!(
                code(Method::POST, None, &[("content-type", ct)], true),
                "NotImplemented"
            );
        }
        // A second Content-Type cannot hide it.
        let two = [
            ("content-type", "text/plain"),
            ("content-type", "multipart/form-data; boundary=x"),
        ];
        assert_eq!(code(Method::POST, None, &two, true), "NotImplemented");
        // Other POSTs (DeleteObjects, CompleteMultipartUpload) pass.
        assert_eq!(
            code(
                Method::POST,
                Some("delete"),
                &[("content-type", "application/xml")],
                false
            ),
            ""
        );
        assert_eq!(
            code(
                Method::PUT,
                None,
                &[("content-type", "multipart/form-data")],
                false
            ),
            ""
        );
    }

    #[test]
    fn sigv2_is_refused_unless_allowed() {
        let v2 = [("authorization", "AWS AKID:c2lnbmF0dXJl")];
        let v4 = [(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab",
        )];
        assert_eq!(code(Method::GET, None, &v2, false), "AccessDenied");
        assert_eq!(code(Method::GET, None, &v2, true), "");
        assert_eq!(code(Method::GET, None, &v4, false), "");
        let q = "AWSAccessKeyId=AKID&Expires=99999999999&Signature=abc";
        assert_eq!(code(Method::GET, Some(q), &[], false), "AccessDenied");
        assert_eq!(
            code(Method::GET, Some("Sig%6Eature=abc"), &[], false),
            "AccessDenied"
        );
        assert_eq!(code(Method::GET, Some(q), &[], true), "");
        assert_eq!(
            code(Method::GET, Some("X-Amz-Signature=ab"), &[], false),
            ""
        );
    }

    #[test]
    fn a_presigned_url_lasts_a_week_at_most() {
        let c = |q: &str| code(Method::GET, Some(q), &[], false);
        assert_eq!(c("X-Amz-Expires=604800&X-Amz-Signature=ab"), "");
        assert_eq!(c("X-Amz-Expires=1"), "");
        for q in [
            "X-Amz-Expires=604801",
            "X-Amz-Expires=4294967295",
            "X-Amz-Expires=-1",
            "X-Amz-Expires=",
            "X-Amz-Expires=1&X-Amz-Expires=999999",
            "X%2DAmz-Expires=604801",
        ] {
            assert_eq!(c(q), "AuthorizationQueryParametersError", "{q}");
        }
    }

    #[test]
    fn a_region_that_is_no_region_name_is_named_wrong() {
        let auth = |region: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20260101/{region}/s3/aws4_request, SignedHeaders=host, Signature=ab"
            )
        };
        let with = |v: String| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&v).expect("ascii"),
            );
            refusal(&Method::PUT, None, &h, false)
        };
        let r = with(auth("US")).expect("refused");
        assert_eq!(r.code, "AuthorizationHeaderMalformed");
        assert_eq!(r.region, Some("us-east-1"));
        assert!(r.message.contains("'US'"), "{}", r.message);
        let xml = respond(&r, Version::HTTP_11).body().bytes().expect("full");
        let xml = String::from_utf8_lossy(&xml);
        assert!(xml.contains("<Region>us-east-1</Region>"), "{xml}");
        assert!(with(auth("EU")).is_some());
        for ok in ["us-east-1", "eu-west-1", "garage", ""] {
            assert_eq!(with(auth(ok)), None, "{ok}");
        }
        let q = "X-Amz-Credential=AKID%2F20260101%2FUS%2Fs3%2Faws4_request&X-Amz-Expires=60";
        assert_eq!(
            code(Method::GET, Some(q), &[], false),
            "AuthorizationQueryParametersError"
        );
        assert_eq!(
            code(
                Method::GET,
                Some("X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"),
                &[],
                false
            ),
            ""
        );
    }

    #[test]
    fn decoding_is_total() {
        assert_eq!(decode("a%2Fb+c"), "a/b c");
        assert_eq!(decode("%"), "%");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%41"), "A");
    }
}
