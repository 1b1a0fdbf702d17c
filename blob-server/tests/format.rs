//! The shard format is pinned: the golden file must keep decoding, and new
//! shards must be byte-identical to it. Changing the format means a new
//! version number and a new golden file, never editing this one.
//! (Regenerate only for a new version: HAMSTER_BLESS=1 cargo test -p hamster-blob --test format)

use hamster_blob::store::format::{self, FormatError, HEADER_LEN, Header};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/shard-v1.bin");

/// 1000 bytes, 256-byte blocks (4 blocks, the last partial), shard index 3.
fn sample() -> Vec<u8> {
    (0..1000u32).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn new_shards_match_the_golden_file_byte_for_byte() {
    let encoded = format::encode_shard(&sample(), 3, 256);
    if std::env::var_os("HAMSTER_BLESS").is_some() {
        std::fs::write(GOLDEN, &encoded).expect("bless");
    }
    let golden = std::fs::read(GOLDEN).expect("golden file");
    assert_eq!(
        encoded, golden,
        "the shard format changed: bump format::VERSION"
    );
}

/// However the payload arrives (a store write gets whatever pieces the
/// network delivers), the framed bytes are the golden file's.
#[test]
fn payload_in_any_pieces_frames_the_same_bytes() {
    let golden = std::fs::read(GOLDEN).expect("golden file");
    let data = sample();
    for piece in [1usize, 7, 255, 256, 257, 600, 1000] {
        let mut w = format::BlockWriter::new(256);
        let mut body = Vec::new();
        let mut emit = |b: &[u8]| -> Result<(), std::convert::Infallible> {
            body.extend_from_slice(b);
            Ok(())
        };
        for c in data.chunks(piece) {
            let Ok(()) = w.push(c, &mut emit);
        }
        let Ok(header) = w.finish(3, &mut emit);
        let mut file = header.encode().to_vec();
        file.extend_from_slice(&body);
        assert!(file == golden, "pieces of {piece} framed other bytes");
    }
}

#[test]
fn the_golden_file_has_the_documented_layout() {
    let g = std::fs::read(GOLDEN).expect("golden file");
    let le32 = |at: usize| u32::from_le_bytes(g[at..at + 4].try_into().expect("4 bytes"));
    assert_eq!(&g[0..8], b"HMSTSHRD");
    assert_eq!(u16::from_le_bytes([g[8], g[9]]), 1, "version");
    assert_eq!(u16::from_le_bytes([g[10], g[11]]), 0, "flags");
    assert_eq!(le32(12), 256, "block size");
    assert_eq!(le32(16), 3, "shard index");
    assert_eq!(
        u64::from_le_bytes(g[20..28].try_into().expect("8")),
        1000,
        "payload length"
    );
    assert!(g[32..60].iter().all(|b| *b == 0));
    assert_eq!(le32(60), crc32c::crc32c(&g[0..60]), "header CRC");
    // Blocks: 256, 256, 256, 232 bytes, each followed by its CRC32C.
    let data = sample();
    let mut at = HEADER_LEN;
    let mut crcs = Vec::new();
    for (i, len) in [256usize, 256, 256, 232].into_iter().enumerate() {
        assert_eq!(&g[at..at + len], &data[i * 256..i * 256 + len]);
        assert_eq!(
            le32(at + len),
            crc32c::crc32c(&data[i * 256..i * 256 + len])
        );
        crcs.extend_from_slice(&g[at + len..at + len + 4]);
        at += len + 4;
    }
    assert_eq!(at, g.len());
    assert_eq!(
        le32(28),
        crc32c::crc32c(&crcs),
        "shard checksum = CRC32C of the block CRCs"
    );
    let (h, back) = format::decode_shard(&g).expect("decodes");
    assert_eq!(back, data);
    assert_eq!(
        h,
        Header {
            block_size: 256,
            shard_index: 3,
            data_len: 1000,
            shard_crc: le32(28)
        }
    );
}

#[test]
fn every_flipped_byte_is_detected() {
    let good = format::encode_shard(&sample(), 3, 256);
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        let err = format::decode_shard(&bad).expect_err("corruption must be detected");
        if i < HEADER_LEN {
            assert!(
                matches!(err, FormatError::HeaderChecksum | FormatError::BadMagic),
                "byte {i}: {err:?}"
            );
        } else {
            assert!(
                matches!(err, FormatError::CorruptBlock(_)),
                "byte {i}: {err:?}"
            );
        }
    }
}

#[test]
fn empty_and_exact_block_payloads_round_trip() {
    for len in [0usize, 1, 255, 256, 257, 512, 4096] {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let file = format::encode_shard(&data, 0, 256);
        let (h, back) = format::decode_shard(&file).expect("decode");
        assert_eq!(back, data);
        assert_eq!(h.file_len(), file.len() as u64);
    }
    // A truncated file, an unknown version.
    let file = format::encode_shard(&sample(), 0, 256);
    assert_eq!(
        format::decode_shard(&file[..file.len() - 1]),
        Err(FormatError::Truncated)
    );
    let mut v2 = file.clone();
    v2[8] = 2;
    let crc = crc32c::crc32c(&v2[0..60]);
    v2[60..64].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        format::decode_shard(&v2),
        Err(FormatError::UnsupportedVersion(2))
    );
}
