//! The S3 headers the gateway reads itself (hamster-gateway `fuzz`):
//! Range, the conditionals, the object-lock headers, x-amz-copy-source
//! and its range, user metadata and keys, and the listener guard (form
//! POSTs, SigV2, X-Amz-Expires). Several fields of one input are
//! separated by newlines (the guard's headers are the input's last lines).
//! And the read path's bytes from blob-servers: chunks rebuilt into a
//! stripe (Reed–Solomon) and the stripe opened as a sealed segment.

use hamster_gateway::fuzz as gw;
use hamster_gateway::pipeline::encrypt::SegmentCipher;
use hamster_gateway::pipeline::erasure::Coder;
use hamster_proto::envelope::DataKey;

use super::{Harness, Target, control, fields};

pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "s3-range",
            make: range,
        },
        Target {
            name: "s3-conditions",
            make: conditions,
        },
        Target {
            name: "s3-lock",
            make: lock,
        },
        Target {
            name: "s3-copy-source",
            make: copy_source,
        },
        Target {
            name: "s3-guard",
            make: guard,
        },
        Target {
            name: "s3-metadata",
            make: metadata,
        },
        Target {
            name: "stripe-read",
            make: stripe,
        },
    ]
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn seeds(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Object sizes the control byte picks from: empty, one byte, a block's
/// worth, and the largest.
const SIZES: [u64; 5] = [0, 1, 100, 65_536, u64::MAX];

/// Control byte: the object's size; then the Range header.
fn range() -> Harness {
    let mut s = Vec::new();
    for (i, h) in [
        "bytes=0-99",
        "bytes=-1",
        "bytes=5-",
        "bytes=0-0",
        "bytes=-0",
        "bytes=99-1",
    ]
    .iter()
    .enumerate()
    {
        for size in 0..SIZES.len() as u8 {
            if (i + usize::from(size)) % 2 == 0 {
                s.push([&[size][..], h.as_bytes()].concat());
            }
        }
    }
    Harness {
        seeds: s,
        tokens: vec![b"bytes=", b"-", b",", b"18446744073709551615"],
        run: Box::new(|data| {
            let (c, rest) = control(data);
            let size = SIZES[usize::from(c) % SIZES.len()];
            match gw::range(&text(rest), size) {
                Some((r, content_range)) => {
                    assert!(r.start <= r.end && r.end <= size, "{r:?} of {size}");
                    assert_eq!(content_range.is_none(), r.is_empty());
                    0
                }
                None => 1,
            }
        }),
    }
}

/// If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, one
/// a line; control bit 0: a copy source's conditions.
fn conditions() -> Harness {
    let date = "Wed, 21 Oct 2015 07:28:00 GMT";
    let etag = "\"9b2cf535f27731c974343645a3985328\"";
    let s = [
        format!("\x00{etag}\n\n\n"),
        format!("\x00\n*\n{date}\n"),
        format!("\x01\n\n\n{date}"),
        format!("\x00W/{etag}\n{etag}\n{date}\n{date}"),
    ];
    Harness {
        seeds: s.iter().map(|s| s.as_bytes().to_vec()).collect(),
        tokens: vec![b"\"", b"W/", b"*", b"GMT", b", ", b"Feb 29", b":60"],
        run: Box::new(|data| {
            let (c, rest) = control(data);
            let f = fields(rest, b'\n', 4);
            let headers = [f[0], f[1], f[2], f[3]];
            let etag = "9b2cf535f27731c974343645a3985328";
            match gw::conditions(headers, etag, 1_445_412_480_000, c & 1 != 0) {
                Ok(true) => 0,
                Ok(false) => 2,
                Err(i) => 3 + i as u64,
            }
        }),
    }
}

/// Mode, retain-until (ISO 8601), legal hold, the bucket's maximum days.
fn lock() -> Harness {
    Harness {
        seeds: seeds(&[
            "GOVERNANCE\n2030-01-01T00:00:00Z\nON\n0",
            "COMPLIANCE\n2030-01-01T00:00:00.123Z\nOFF\n3650",
            "\n\nON\n1",
            "COMPLIANCE\n9999-12-31T23:59:59Z\n\n36500",
        ]),
        tokens: vec![
            b"GOVERNANCE",
            b"COMPLIANCE",
            b"ON",
            b"OFF",
            b"T",
            b"Z",
            b"+14:00",
        ],
        run: Box::new(|data| {
            let f = fields(data, b'\n', 4);
            let days = text(f[3]).trim().parse().unwrap_or(0);
            let now_ms = 1_714_000_000_123;
            match gw::lock_headers(&text(f[0]), &text(f[1]), &text(f[2]), days, now_ms) {
                Some((mode, until, _)) => {
                    assert!(
                        mode.is_empty() || mode == "GOVERNANCE" || mode == "COMPLIANCE",
                        "{mode}"
                    );
                    assert!(!mode.is_empty() || until == 0);
                    0
                }
                None => 1,
            }
        }),
    }
}

/// x-amz-copy-source, then x-amz-copy-source-range.
fn copy_source() -> Harness {
    Harness {
        seeds: seeds(&[
            "photos/2024/cat.jpg\nbytes=0-99",
            "/photos/a%20b?versionId=0000000000000042-a1b2c3\nbytes=5-5",
            "arn:aws:s3:us-east-1:123456789012:accesspoint/ap/object/k\n",
            "b/%E2%82%AC\nbytes=18446744073709551615-18446744073709551615",
        ]),
        tokens: vec![b"%", b"?versionId=", b"/", b"bytes=", b"-"],
        run: Box::new(|data| {
            let f = fields(data, b'\n', 2);
            let (src, range) = gw::copy_source(&text(f[0]), &text(f[1]));
            if let Some((a, b)) = range {
                assert!(a <= b);
            }
            u64::from(src.is_some()) | u64::from(range.is_some()) << 1
        }),
    }
}

/// Method, query, then header lines; control bit 0: SigV2 allowed.
fn guard() -> Harness {
    Harness {
        seeds: seeds(&[
            "\x00POST\n\ncontent-type: multipart/form-data; boundary=x",
            "\x00GET\nX-Amz-Expires=604801&X-Amz-Signature=ab\nhost: a",
            "\x00GET\nAWSAccessKeyId=a&Signature=b&Expires=1\n",
            "\x01GET\n\nauthorization: AWS a:b",
            "\x00PUT\nX%2DAmz%2DExpires=1%2B\nauthorization: AWS4-HMAC-SHA256 Credential=a",
        ]),
        tokens: vec![
            b"%",
            b"+",
            b"&",
            b"=",
            b"Signature",
            b"X-Amz-Expires",
            b"\n",
        ],
        run: Box::new(|data| {
            let (c, rest) = control(data);
            let f = fields(rest, b'\n', 3);
            match gw::guard(f[0], &text(f[1]), f[2], c & 1 != 0) {
                Some(code) => super::class(code),
                None => 0,
            }
        }),
    }
}

/// A key, then `name: value` lines of user metadata.
fn metadata() -> Harness {
    Harness {
        seeds: [
            "k\ncolor: blue\nowner: ops".to_string(),
            "a/b/c\nx: ".into(),
            "\n".into(),
            // At and just over the limits: 2 KB of metadata, 1024-byte keys.
            format!("k\nn: {}", "v".repeat(2045)),
            format!("k\nn: {}", "v".repeat(2046)),
            format!("{}\n", "k".repeat(1024)),
            format!("{}\n", "k".repeat(1025)),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect(),
        tokens: vec![b": ", b"\n", b"x-amz-meta-"],
        run: Box::new(|data| {
            let f = fields(data, b'\n', 2);
            u64::from(!gw::metadata(&text(f[0]), &text(f[1])))
        }),
    }
}

/// Input: k-1 and m (byte 0: bits 0-1 and 2-3), the chunks missing
/// (byte 1, a bit each), the stripe's length (bytes 2-3, LE), which
/// chunk is one byte short or long (byte 4: bit 7 set, index in bits
/// 0-2, bit 6 long), then the chunks' bytes, one after another.
fn stripe() -> Harness {
    let cipher = SegmentCipher::new(&DataKey::generate());
    let mut seeds = Vec::new();
    for (k, m, missing) in [(1u8, 0u8, 0u8), (2, 1, 0), (2, 1, 1), (4, 2, 0b10_0001)] {
        let Ok(coder) = Coder::new(usize::from(k), usize::from(m)) else {
            continue;
        };
        let sealed = cipher.seal(0, true, &[7u8; 100]);
        let len = u16::try_from(sealed.len()).unwrap_or(0).to_le_bytes();
        let mut s = vec![(k - 1) | m << 2, missing, len[0], len[1], 0];
        for c in coder.encode(sealed.clone()) {
            s.extend(c);
        }
        seeds.push(s);
    }
    Harness {
        seeds,
        tokens: Vec::new(),
        run: Box::new(move |data| {
            let mut head = [0u8; 5];
            let n = data.len().min(5);
            head[..n].copy_from_slice(&data[..n]);
            let rest = &data[n..];
            let (k, m) = (usize::from(head[0] & 3) + 1, usize::from(head[0] >> 2 & 3));
            let Ok(coder) = Coder::new(k, m) else {
                return 1;
            };
            let stripe_len = usize::from(u16::from_le_bytes([head[2], head[3]]));
            let len = coder.chunk_len(stripe_len);
            let mut at = 0;
            let chunks: Vec<Option<Vec<u8>>> = (0..k + m)
                .map(|i| {
                    let mut l = len;
                    if head[4] & 0x80 != 0 && usize::from(head[4] & 7) == i {
                        l = if head[4] & 0x40 != 0 {
                            l + 1
                        } else {
                            l.saturating_sub(1)
                        };
                    }
                    let c = rest.get(at..(at + l).min(rest.len())).unwrap_or_default();
                    at += l;
                    (head[1] >> (i % 8) & 1 == 0).then(|| c.to_vec())
                })
                .collect();
            match coder.decode(chunks, stripe_len) {
                Ok(stripe) => {
                    assert_eq!(stripe.len(), stripe_len);
                    match cipher.open(0, true, &stripe) {
                        Ok(plain) => {
                            assert_eq!(plain.len() + 16, stripe_len);
                            0
                        }
                        Err(_) => 2,
                    }
                }
                Err(e) => super::outcome(&Err::<(), _>(e)),
            }
        }),
    }
}
