//! A request body into durable, uncommitted shards (PutObject, UploadPart):
//! the write pipeline, with the checks the client declared — Content-MD5,
//! a flexible checksum in a header or the verified aws-chunked trailer.
//! (s3s itself checks chunk signatures and a signed payload hash as the
//! body streams; those failures arrive as body errors, classified here
//! once by [`body_error`].) A failed check removes the shards; nothing is
//! committed here (`pipeline/commit.rs` does that).

use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use s3s::checksum::ChecksumHasher;
use s3s::dto::*;
use s3s::{S3Result, s3_error};

use super::Gateway;
use crate::pipeline::write::{BodyError, Stored, write};

/// What the client said the body is.
pub struct Declared {
    pub content_md5: Option<String>,
    pub checksum: Checksum,
    pub algorithm: Option<ChecksumAlgorithm>,
    /// The body's length, when known before it is read: a tiny object is
    /// mirrored (`pipeline::profile::for_object`).
    pub size: Option<u64>,
}

impl Declared {
    /// Nothing declared: a body the gateway itself reads (copies).
    pub fn none() -> Self {
        Self {
            content_md5: None,
            checksum: Checksum::default(),
            algorithm: None,
            size: None,
        }
    }
}

/// What a PutObject or UploadPart input declares (the same field names
/// in both s3s input types). s3s sets Content-Length to
/// x-amz-decoded-content-length for an aws-chunked body, so it is the
/// body's own length either way.
macro_rules! declared {
    ($input:expr) => {
        $crate::s3::ingest::Declared {
            content_md5: $input.content_md5.clone(),
            checksum: s3s::dto::Checksum {
                checksum_type: None,
                checksum_crc32: $input.checksum_crc32.clone(),
                checksum_crc32c: $input.checksum_crc32c.clone(),
                checksum_sha1: $input.checksum_sha1.clone(),
                checksum_sha256: $input.checksum_sha256.clone(),
                checksum_crc64nvme: $input.checksum_crc64nvme.clone(),
            },
            algorithm: $input.checksum_algorithm.clone(),
            size: $input.content_length.and_then(|n| u64::try_from(n).ok()),
        }
    };
}
pub(crate) use declared;

/// The checksums a client declared, filled in from trailers at the end.
/// One value header at most (AWS: 400 InvalidRequest).
fn expected_checksums(d: &Declared) -> S3Result<(ChecksumHasher, Checksum)> {
    super::checksums::single(&d.checksum)?;
    let mut h = ChecksumHasher::default();
    let want = d.checksum.clone();
    if want.checksum_crc32.is_some() {
        h.crc32 = Some(Default::default());
    }
    if want.checksum_crc32c.is_some() {
        h.crc32c = Some(Default::default());
    }
    if want.checksum_sha1.is_some() {
        h.sha1 = Some(Default::default());
    }
    if want.checksum_sha256.is_some() {
        h.sha256 = Some(Default::default());
    }
    if want.checksum_crc64nvme.is_some() {
        h.crc64nvme = Some(Default::default());
    }
    if let Some(alg) = &d.algorithm {
        match alg.as_str() {
            ChecksumAlgorithm::CRC32 => h.crc32 = Some(Default::default()),
            ChecksumAlgorithm::CRC32C => h.crc32c = Some(Default::default()),
            ChecksumAlgorithm::SHA1 => h.sha1 = Some(Default::default()),
            ChecksumAlgorithm::SHA256 => h.sha256 = Some(Default::default()),
            ChecksumAlgorithm::CRC64NVME => h.crc64nvme = Some(Default::default()),
            _ => return Err(s3_error!(InvalidArgument, "unknown checksum algorithm")),
        }
    }
    Ok((h, want))
}

/// Fills the declared checksums from the verified trailer, if any.
fn from_trailers(want: &mut Checksum, trailers: Option<http::HeaderMap>) -> S3Result<()> {
    let Some(t) = trailers else { return Ok(()) };
    let get = |name: &str| -> S3Result<Option<String>> {
        t.get(name)
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| s3_error!(InvalidArgument, "bad {name} trailer"))
            })
            .transpose()
    };
    let fill = |slot: &mut Option<String>, v: Option<String>| {
        if v.is_some() {
            *slot = v;
        }
    };
    fill(&mut want.checksum_crc32, get("x-amz-checksum-crc32")?);
    fill(&mut want.checksum_crc32c, get("x-amz-checksum-crc32c")?);
    fill(&mut want.checksum_sha1, get("x-amz-checksum-sha1")?);
    fill(&mut want.checksum_sha256, get("x-amz-checksum-sha256")?);
    fill(
        &mut want.checksum_crc64nvme,
        get("x-amz-checksum-crc64nvme")?,
    );
    Ok(())
}

/// Every declared checksum must match what was computed.
fn verify_checksums(want: &Checksum, got: &Checksum) -> S3Result<()> {
    let pairs = [
        ("crc32", &want.checksum_crc32, &got.checksum_crc32),
        ("crc32c", &want.checksum_crc32c, &got.checksum_crc32c),
        ("sha1", &want.checksum_sha1, &got.checksum_sha1),
        ("sha256", &want.checksum_sha256, &got.checksum_sha256),
        (
            "crc64nvme",
            &want.checksum_crc64nvme,
            &got.checksum_crc64nvme,
        ),
    ];
    for (name, w, g) in pairs {
        if let Some(w) = w
            && Some(w) != g.as_ref()
        {
            return Err(s3_error!(
                BadDigest,
                "x-amz-checksum-{name} does not match the body"
            ));
        }
    }
    Ok(())
}

/// s3s' body errors, by their text: the types are private to s3s 0.14
/// (`http/aws_chunked_stream.rs`, `sig_v4/upload_stream.rs`), so their
/// Display is all there is. `tests/body_errors.rs` drives real s3s
/// requests through this, so an s3s that words them otherwise fails there.
const CHUNK_SIGNATURE: &str = "AwsChunkedStreamError: SignatureMismatch";
const PAYLOAD_HASH: &str = "UploadStreamError: Sha256Mismatch";
/// How one s3s body stream shows the error of the one it wraps.
const WRAPPED: [&str; 2] = [
    "AwsChunkedStreamError: Underlying: ",
    "UploadStreamError: Underlying: ",
];

/// What a body stream's error means, decided once, where the body is read.
/// `body`, ended by an error (IncompleteBody) as soon as it passes
/// `declared` bytes, or if it ends short of them. aws-chunked decoding
/// does not hold the decoded bytes to x-amz-decoded-content-length.
fn exactly<S>(
    body: S,
    declared: u64,
) -> impl futures::Stream<Item = Result<bytes::Bytes, BodyError>>
where
    S: futures::Stream<Item = Result<bytes::Bytes, BodyError>> + Unpin,
{
    futures::stream::unfold(
        (body, 0u64, false),
        move |(mut body, seen, done)| async move {
            if done {
                return None;
            }
            match body.next().await {
                Some(Ok(b)) => {
                    let seen = seen.saturating_add(b.len() as u64);
                    if seen > declared {
                        let e = format!("the body is longer than its declared {declared} bytes");
                        return Some((Err(BodyError::Other(e)), (body, seen, true)));
                    }
                    Some((Ok(b), (body, seen, false)))
                }
                Some(Err(e)) => Some((Err(e), (body, seen, true))),
                None if seen < declared => {
                    let e = format!("the body ended at {seen} of its declared {declared} bytes");
                    Some((Err(BodyError::Other(e)), (body, seen, true)))
                }
                None => None,
            }
        },
    )
}

pub fn body_error(e: &(dyn std::error::Error + 'static)) -> BodyError {
    let named = |mut text: &str| loop {
        if text == CHUNK_SIGNATURE {
            return Some(BodyError::ChunkSignature);
        }
        if text == PAYLOAD_HASH {
            return Some(BodyError::PayloadHash);
        }
        text = WRAPPED.iter().find_map(|w| text.strip_prefix(w))?;
    };
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(b) = named(&c.to_string()) {
            return b;
        }
        cause = c.source();
    }
    BodyError::Other(e.to_string())
}

/// Writes `body` and checks it; returns the stored shards and the
/// checksums computed (to echo to the client).
pub async fn ingest(
    gw: &Gateway,
    body: Option<StreamingBlob>,
    declared: Declared,
    trailing: Option<s3s::TrailingHeaders>,
) -> S3Result<(Stored, Checksum)> {
    let content_md5 = match &declared.content_md5 {
        Some(b64) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(|| s3_error!(InvalidDigest))?,
        ),
        None => None,
    };
    let (mut hasher, mut want) = expected_checksums(&declared)?;

    // A length the body stream itself knows will do when none was declared.
    let size = declared.size.or_else(|| {
        body.as_ref()
            .and_then(|b| s3s::stream::ByteStream::remaining_length(b).exact())
            .and_then(|n| u64::try_from(n).ok())
    });
    let (profile, candidates) = gw
        .cluster
        .placement(size)
        .await
        .ok_or_else(|| s3_error!(SlowDown, "no blob-server is registered yet"))?;
    let body = body
        .map(|b| b.map_err(|e| body_error(&*e)).boxed())
        .unwrap_or_else(|| futures::stream::empty().boxed());
    // The declared length chose the profile (a tiny one is mirrored): a
    // body that is not that long is refused, never stored m+1 times over.
    let body = match declared.size {
        Some(n) => exactly(body, n).boxed(),
        None => body,
    };
    let kek = crate::pipeline::commit::write_key(&gw.cluster, &gw.keys)?;
    let stored = write(
        body,
        profile,
        &candidates,
        &kek,
        &gw.pool,
        &gw.meta,
        |bytes| hasher.update(bytes),
    )
    .await?;

    let got = hasher.finalize();
    let checked = (|| -> S3Result<()> {
        if let Some(want_md5) = &content_md5
            && hex::encode(want_md5) != stored.md5
        {
            return Err(s3_error!(BadDigest, "Content-MD5 does not match the body"));
        }
        from_trailers(&mut want, trailing.and_then(|t| t.take()))?;
        verify_checksums(&want, &got)
    })();
    match checked {
        Ok(()) => Ok((stored, got)),
        Err(e) => {
            stored.discard(&gw.meta).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(pieces: &[&'static [u8]], declared: u64) -> Result<usize, String> {
        let items: Vec<Result<bytes::Bytes, BodyError>> = pieces
            .iter()
            .map(|p| Ok(bytes::Bytes::from_static(p)))
            .collect();
        let mut s = Box::pin(exactly(futures::stream::iter(items), declared));
        let mut n = 0;
        while let Some(piece) = s.next().await {
            n += piece.map_err(|e| e.to_string())?.len();
        }
        Ok(n)
    }

    #[tokio::test]
    async fn a_body_must_be_exactly_its_declared_length() {
        assert_eq!(run(&[b"abc", b"de"], 5).await, Ok(5));
        assert_eq!(run(&[], 0).await, Ok(0));
        let long = run(&[b"abc", b"def"], 4).await.expect_err("longer");
        assert!(long.contains("longer than its declared 4"), "{long}");
        let short = run(&[b"abc"], 4).await.expect_err("shorter");
        assert!(short.contains("ended at 3 of its declared 4"), "{short}");
    }

    /// An error with s3s' text, optionally caused by another.
    #[derive(Debug)]
    struct Text(&'static str, Option<Box<Text>>);

    impl std::fmt::Display for Text {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Text {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|t| t as _)
        }
    }

    fn classify(e: Text) -> BodyError {
        body_error(&e)
    }

    #[test]
    fn s3s_body_errors_are_named() {
        assert!(matches!(
            classify(Text("AwsChunkedStreamError: SignatureMismatch", None)),
            BodyError::ChunkSignature
        ));
        assert!(matches!(
            classify(Text("UploadStreamError: Sha256Mismatch", None)),
            BodyError::PayloadHash
        ));
        // One s3s stream wrapping another, and as a cause.
        assert!(matches!(
            classify(Text(
                "UploadStreamError: Underlying: AwsChunkedStreamError: SignatureMismatch",
                None
            )),
            BodyError::ChunkSignature
        ));
        assert!(matches!(
            classify(Text(
                "reading the body",
                Some(Box::new(Text("UploadStreamError: Sha256Mismatch", None)))
            )),
            BodyError::PayloadHash
        ));
    }

    #[test]
    fn anything_else_keeps_its_text() {
        for text in [
            "AwsChunkedStreamError: Incomplete",
            "UploadStreamError: LengthMismatch",
            "connection reset: SignatureMismatch",
        ] {
            assert!(
                matches!(classify(Text(text, None)), BodyError::Other(m) if m == text),
                "{text}"
            );
        }
    }
}
