//! Requests no SDK sends, signed by an independent SigV4 signer
//! (`hamster_tests::sigv4`), in named steps over one cluster: tampered
//! aws-chunked signatures, a wrong checksum trailer, a body that does not
//! match its signed hash, a skewed clock, malformed XML, and
//! virtual-hosted bucket names. Each gets the status and code a client
//! expects, and nothing is stored.

use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::Steps;
use hamster_tests::s3::S3Cluster;
use hamster_tests::sigv4::{
    EMPTY_SHA256, Signed, Signer, chunked_body, now, sha256_hex, sign, unsigned_trailer_body,
};

type Client = aws_sdk_s3::Client;

/// The data of every trailer-checked PUT.
fn trailer_data() -> Vec<u8> {
    b"trailer checked data".repeat(1000)
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn crc32(d: &[u8]) -> String {
    b64(&crc32fast::hash(d).to_be_bytes())
}

/// The chunks of the aws-chunked PUTs.
const CHUNKS: [&[u8]; 3] = [&[b'a'; 70_000], &[b'b'; 70_000], b"tail"];

/// An aws-chunked PUT with chunk signatures; `tamper` changes a chunk
/// after it was signed.
fn streaming(signer: &Signer, key: &str, tamper: Option<usize>) -> Signed {
    let len: usize = CHUNKS.iter().map(|c| c.len()).sum();
    let mut r = signer.sign(
        "PUT",
        &format!("/raw/{key}"),
        "",
        &[
            ("content-encoding", "aws-chunked".into()),
            ("x-amz-decoded-content-length", len.to_string()),
        ],
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        vec![],
    );
    r.body = chunked_body(&r, &CHUNKS, tamper);
    r
}

/// An unsigned streaming PUT of [`trailer_data`] with the checksum
/// trailer `x-amz-checksum-NAME: VALUE`.
fn trailer_put(signer: &Signer, key: &str, name: &str, value: &str) -> Signed {
    let data = trailer_data();
    let mut r = signer.sign(
        "PUT",
        &format!("/raw/{key}"),
        "",
        &[
            ("content-encoding", "aws-chunked".into()),
            ("x-amz-decoded-content-length", data.len().to_string()),
            ("x-amz-trailer", format!("x-amz-checksum-{name}")),
        ],
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        vec![],
    );
    r.body = unsigned_trailer_body(&data, &format!("x-amz-checksum-{name}:{value}"));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hand_signed_requests_get_the_errors_clients_expect() {
    let s = S3Cluster::start_with(1, 3, &["--domain=s3.test"]).await;
    let c = s.client();
    let signer = Signer::new(s.s3_addr(), &s.access_key_id, &s.secret);
    let (c, signer) = (&c, &signer);
    let mut steps = Steps::new("hand_signed_requests_get_the_errors_clients_expect");
    steps
        .require("the signer is right: a plain signed GET works", async {
            c.create_bucket().bucket("raw").send().await.expect("mb");
            signer
                .expect(
                    &signer.sign("GET", "/", "", &[], EMPTY_SHA256, vec![]),
                    200,
                    "",
                )
                .await;
        })
        .await;
    steps
        .run(
            "a clock 20 minutes off is RequestTimeTooSkewed",
            skewed(signer),
        )
        .await;
    steps
        .require(
            "aws-chunked with chunk signatures is stored",
            chunked(c, signer),
        )
        .await;
    let before = s.shard_file_count();
    steps
        .run("a chunk changed after signing is refused", async {
            for tamper in [0, 1] {
                eprintln!("tampered chunk {tamper}");
                let r = streaming(signer, "chunked-bad", Some(tamper));
                signer.expect(&r, 403, "SignatureDoesNotMatch").await;
            }
        })
        .await;
    steps
        .run(
            "a wrong checksum trailer is BadDigest, a right one stored",
            trailers(signer),
        )
        .await;
    steps
        .run(
            "a body that does not match its hashes is refused",
            body_hashes(signer),
        )
        .await;
    steps
        .run("refused writes store nothing and leak no shard", async {
            nothing_stored(&s, c, before).await
        })
        .await;
    steps
        .run("the right crc32 trailer is accepted", async {
            let r = trailer_put(signer, "trailer-ok", "crc32", &crc32(&trailer_data()));
            signer.expect(&r, 200, "").await;
        })
        .await;
    steps
        .run(
            "malformed XML is MalformedXML and changes nothing",
            malformed_xml(c, signer),
        )
        .await;
    steps
        .run(
            "a virtual-hosted GET names the bucket in Host",
            virtual_hosted(signer),
        )
        .await;
    steps
        .run("a key longer than 1024 bytes is refused", async {
            let e = c
                .put_object()
                .bucket("raw")
                .key("k".repeat(1025))
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .expect_err("too long");
            assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
        })
        .await;
    steps.finish();
}

async fn skewed(signer: &Signer) {
    let r = sign(
        &signer.id,
        &signer.secret,
        now() - 20 * 60,
        "GET",
        "/",
        "",
        signer.headers(&[]),
        EMPTY_SHA256,
        vec![],
    );
    signer.expect(&r, 403, "RequestTimeTooSkewed").await;
}

async fn chunked(c: &Client, signer: &Signer) {
    signer
        .expect(&streaming(signer, "chunked-ok", None), 200, "")
        .await;
    let got = c
        .get_object()
        .bucket("raw")
        .key("chunked-ok")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec(),
        CHUNKS.concat()
    );
}

/// An unsigned streaming body whose checksum trailer is wrong: BadDigest.
/// The other trailer checksums are checked too (wrong → BadDigest, right
/// → stored).
async fn trailers(signer: &Signer) {
    let data = trailer_data();
    let r = trailer_put(signer, "trailer-bad", "crc32", &crc32(b"something else"));
    signer.expect(&r, 400, "BadDigest").await;
    let crc32c_of = |d: &[u8]| b64(&crc32c::crc32c(d).to_be_bytes());
    let sha256_of = |d: &[u8]| {
        use sha2::Digest;
        b64(&sha2::Sha256::digest(d))
    };
    for (name, right, wrong) in [
        ("crc32c", crc32c_of(&data), crc32c_of(b"x")),
        ("sha256", sha256_of(&data), sha256_of(b"x")),
    ] {
        for (value, want) in [(wrong, 400), (right, 200)] {
            let key = format!("trailer-{name}-{want}");
            let r = trailer_put(signer, &key, name, &value);
            let code = if want == 400 { "BadDigest" } else { "" };
            signer.expect(&r, want, code).await;
        }
    }
}

/// A Content-MD5 or a signed payload hash that the body does not match is
/// refused; UNSIGNED-PAYLOAD is accepted (what SDKs send over HTTPS).
async fn body_hashes(signer: &Signer) {
    let r = signer.sign(
        "PUT",
        "/raw/md5-bad",
        "",
        &[("content-md5", b64(&[0u8; 16]))],
        &sha256_hex(b"md5 body"),
        b"md5 body".to_vec(),
    );
    signer.expect(&r, 400, "BadDigest").await;
    let r = signer.sign(
        "PUT",
        "/raw/unsigned",
        "",
        &[],
        "UNSIGNED-PAYLOAD",
        b"unsigned body".to_vec(),
    );
    signer.expect(&r, 200, "").await;
    let r = signer.sign(
        "PUT",
        "/raw/sha-bad",
        "",
        &[],
        &sha256_hex(b"other"),
        b"this body".to_vec(),
    );
    signer.expect(&r, 400, "XAmzContentSHA256Mismatch").await;
}

/// Nothing of the refused writes is stored, and no shard leaked.
async fn nothing_stored(s: &S3Cluster, c: &Client, before: usize) {
    for key in [
        "chunked-bad",
        "trailer-bad",
        "sha-bad",
        "md5-bad",
        "trailer-crc32c-400",
        "trailer-sha256-400",
    ] {
        let e = c
            .head_object()
            .bucket("raw")
            .key(key)
            .send()
            .await
            .expect_err("absent");
        assert_eq!(
            e.raw_response().map(|r| r.status().as_u16()),
            Some(404),
            "{key}"
        );
    }
    // Three writes were accepted: two trailer-checked ones of 20 kB, 3
    // shards each (2+1), and the 13-byte UNSIGNED-PAYLOAD one, mirrored
    // (1+1: 2 shards); the refused ones left none.
    assert_eq!(
        s.shard_file_count(),
        before + 2 * 3 + 2,
        "refused writes left shards"
    );
}

/// Malformed XML: DeleteObjects and CompleteMultipartUpload.
async fn malformed_xml(c: &Client, signer: &Signer) {
    let bad_xml = b"<Delete><Object><Key>x</Key></Object".to_vec();
    let md5 = {
        use md5::Digest;
        b64(&md5::Md5::digest(&bad_xml))
    };
    let r = signer.sign(
        "POST",
        "/raw",
        "delete=",
        &[("content-md5", md5)],
        &sha256_hex(&bad_xml),
        bad_xml,
    );
    signer.expect(&r, 400, "MalformedXML").await;
    let up = c
        .create_multipart_upload()
        .bucket("raw")
        .key("mpu")
        .send()
        .await
        .expect("create");
    let upload_id = up.upload_id().expect("id");
    c.upload_part()
        .bucket("raw")
        .key("mpu")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .expect("part");
    let bad_xml = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>".to_vec();
    let r = signer.sign(
        "POST",
        "/raw/mpu",
        &format!("uploadId={upload_id}"),
        &[],
        &sha256_hex(&bad_xml),
        bad_xml,
    );
    signer.expect(&r, 400, "MalformedXML").await;
    let uploads = c
        .list_multipart_uploads()
        .bucket("raw")
        .send()
        .await
        .expect("uploads");
    assert_eq!(
        uploads.uploads().len(),
        1,
        "a malformed complete changed the upload"
    );
    let e = c
        .head_object()
        .bucket("raw")
        .key("mpu")
        .send()
        .await
        .expect_err("absent");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
}

/// Virtual-hosted style: the bucket in the Host name (--domain s3.test).
async fn virtual_hosted(signer: &Signer) {
    let vhost = format!("raw.s3.test:{}", signer.addr.port());
    let r = sign(
        &signer.id,
        &signer.secret,
        now(),
        "GET",
        "/chunked-ok",
        "",
        vec![("host".into(), vhost)],
        EMPTY_SHA256,
        vec![],
    );
    let body = signer.expect(&r, 200, "").await;
    assert!(
        body.ends_with("tail"),
        "virtual-hosted GET returned another body"
    );
}
