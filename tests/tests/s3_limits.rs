//! Limits S3 enforces, against real processes, in named steps over one
//! cluster (issue 20 items 1 and 4): an unsigned multipart/form-data
//! POST (PostObject, not offered) refused before its body is read, user
//! metadata over 2 KB, presigned URLs longer than a week, and SigV2 off
//! unless a gateway is started with `--allow-sigv2`.

use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::Steps;
use hamster_tests::limits::{get, peak_rss_kib, presign_get, send_head_only, stream_form_post};
use hamster_tests::s3::{S3Cluster, assert_s3_error};
use hamster_tests::sigv4::{Signer, error_code};
use hamster_tests::{Kind, Node};

type Client = aws_sdk_s3::Client;

const GIB: u64 = 1 << 30;
const MIB_KIB: u64 = 1 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_s3_enforces() {
    let mut s = S3Cluster::start(1, 3).await;
    let c = s.client();
    let c = &c;
    let mut steps = Steps::new("limits_s3_enforces");
    steps
        .require("a bucket and an object", async {
            c.create_bucket()
                .bucket("limits")
                .send()
                .await
                .expect("bucket");
            c.put_object()
                .bucket("limits")
                .key("obj")
                .body(ByteStream::from_static(b"hello"))
                .send()
                .await
                .expect("put");
        })
        .await;
    steps
        .run(
            "an unsigned 1 GiB form POST is refused unread",
            form_post(&s),
        )
        .await;
    steps
        .run("user metadata over 2 KB is MetadataTooLarge", metadata(c))
        .await;
    steps
        .run(
            "metadata is refused before the body is sent",
            metadata_before_body(&s),
        )
        .await;
    steps
        .run("a presigned URL lasts a week at most", presigned(&s))
        .await;
    steps.run("SigV2 is off by default", sigv2_off(&s)).await;
    steps
        .run("--allow-sigv2 lets SigV2 through", sigv2_allowed(&mut s))
        .await;
    steps.finish();
}

async fn form_post(s: &S3Cluster) {
    let pid = s.c.node(s.gw).pid().expect("gateway pid");
    let before = peak_rss_kib(pid);
    let (answer, sent) = stream_form_post(s.s3_addr(), "/limits", GIB).await;
    let after = peak_rss_kib(pid);
    let grew = after.saturating_sub(before);
    eprintln!("form POST: {sent} body bytes sent, peak RSS {before} -> {after} KiB");
    assert!(grew < 100 * MIB_KIB, "peak RSS grew by {grew} KiB");
    let (status, text) = answer.expect("an answer within two minutes");
    assert_eq!(status, 501, "{text}");
    assert_eq!(error_code(&text), "NotImplemented", "{text}");
    assert!(text.contains("PostObject is not supported"), "{text}");
}

/// `n` bytes of user metadata as AWS counts it: name "m" (1 byte) and a
/// value of `n - 1` bytes.
fn value(n: usize) -> String {
    "v".repeat(n - 1)
}

async fn metadata(c: &Client) {
    // Exactly 2048 bytes: accepted, and read back.
    c.put_object()
        .bucket("limits")
        .key("meta-ok")
        .metadata("m", value(2048))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("2048 bytes of metadata");
    let got = c
        .head_object()
        .bucket("limits")
        .key("meta-ok")
        .send()
        .await
        .expect("head");
    assert_eq!(
        got.metadata().and_then(|m| m.get("m")).map(String::len),
        Some(2047)
    );
    // Several names add up.
    let r = c
        .put_object()
        .bucket("limits")
        .key("meta-big")
        .metadata("a", value(1025))
        .metadata("b", value(1025))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_s3_error(r, "MetadataTooLarge", 400);
    let r = c
        .put_object()
        .bucket("limits")
        .key("meta-big")
        .metadata("m", value(2049))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_s3_error(r, "MetadataTooLarge", 400);
    let r = c
        .create_multipart_upload()
        .bucket("limits")
        .key("meta-big")
        .metadata("m", value(2049))
        .send()
        .await;
    assert_s3_error(r, "MetadataTooLarge", 400);
    let r = c
        .copy_object()
        .bucket("limits")
        .key("meta-big")
        .copy_source("limits/obj")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .metadata("m", value(2049))
        .send()
        .await;
    assert_s3_error(r, "MetadataTooLarge", 400);
    // COPY ignores the request's metadata: nothing to refuse.
    c.copy_object()
        .bucket("limits")
        .key("meta-copied")
        .copy_source("limits/meta-ok")
        .send()
        .await
        .expect("copy keeping 2048 bytes of metadata");
    let r = c
        .head_object()
        .bucket("limits")
        .key("meta-big")
        .send()
        .await;
    assert!(r.is_err(), "no version was written");
}

/// A signed PUT announcing 1 GiB with 3 KB of metadata, its body never
/// sent: the answer comes anyway.
async fn metadata_before_body(s: &S3Cluster) {
    let signer = Signer::new(s.s3_addr(), &s.access_key_id, &s.secret);
    let r = signer.sign(
        "PUT",
        "/limits/meta-raw",
        "",
        &[("x-amz-meta-m", "v".repeat(3000))],
        "UNSIGNED-PAYLOAD",
        Vec::new(),
    );
    let mut head = format!("PUT {} HTTP/1.1\r\n", r.path);
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {GIB}\r\n\r\n"));
    let (status, text) = send_head_only(s.s3_addr(), &head).await;
    assert_eq!(
        (status, error_code(&text).as_str()),
        (400, "MetadataTooLarge"),
        "{text}"
    );
}

async fn presigned(s: &S3Cluster) {
    let addr = s.s3_addr();
    let host = addr.to_string();
    let url = |expires| {
        let q = presign_get(&s.access_key_id, &s.secret, &host, "/limits/obj", expires);
        format!("/limits/obj?{q}")
    };
    // A week is allowed (and the signer is right).
    let (status, text) = get(addr, &url(604_800), &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("hello"), "{text}");
    for expires in [604_801, 4_294_967_295] {
        let (status, text) = get(addr, &url(expires), &[]).await;
        assert_eq!(
            (status, error_code(&text).as_str()),
            (400, "AuthorizationQueryParametersError"),
            "{text}"
        );
    }
}

/// A SigV2 header and a SigV2 presigned URL (their signatures are not
/// even checked when v2 is off).
async fn sigv2_answers(addr: std::net::SocketAddr, id: &str) -> [(u16, String); 2] {
    let auth = format!("AWS {id}:c2lnbmF0dXJlMTIzNDU2Nzg5MDEy");
    let date = "Sat, 05 Dec 2026 00:00:00 GMT";
    let header = get(
        addr,
        "/limits/obj",
        &[("authorization", &auth), ("date", date)],
    )
    .await;
    let q = format!("/limits/obj?AWSAccessKeyId={id}&Expires=4102444800&Signature=c2ln");
    let query = get(addr, &q, &[]).await;
    [header, query]
}

async fn sigv2_off(s: &S3Cluster) {
    for (status, text) in sigv2_answers(s.s3_addr(), &s.access_key_id).await {
        assert_eq!(
            (status, error_code(&text).as_str()),
            (403, "AccessDenied"),
            "{text}"
        );
        assert!(text.contains("SigV2 is disabled"), "{text}");
    }
}

/// A second gateway with the flag: v2 reaches s3s, which checks the
/// (wrong) signature.
async fn sigv2_allowed(s: &mut S3Cluster) {
    let gw: Node = s.c.prepare(Kind::Gateway, "gw-v2");
    s.c.add_args(gw, &["--allow-sigv2"]);
    s.c.spawn_prepared(gw);
    s.c.wait_healthy(gw).await;
    let addr = s.c.node(gw).s3_addr.expect("gateway");
    for (status, text) in sigv2_answers(addr, &s.access_key_id).await {
        assert_eq!(status, 403, "{text}");
        assert_eq!(error_code(&text), "SignatureDoesNotMatch", "{text}");
    }
}
