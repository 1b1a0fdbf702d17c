//! Shard files (blob-server `store::format`, ADR 0010): the header, a
//! whole file in memory, and a file on disk read and scrubbed through the
//! `Store`. The first input byte says which checksums to make right after
//! mutating (bit 0: the header's, bit 1: every block's and the shard's),
//! so mutations of lengths and sizes get past the CRCs to the code that
//! trusts them.

use hamster_blob::store::Store;
use hamster_blob::store::format::{self, CRC_LEN, HEADER_LEN, Header};

use hamster_blob::store::StoreError;

use super::{Harness, Target, class, control, outcome};

pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "shard-header",
            make: header,
        },
        Target {
            name: "shard-file",
            make: file,
        },
        Target {
            name: "shard-store",
            make: store,
        },
    ]
}

/// The file length a header describes, if it is a number at all.
pub fn checked_file_len(h: &Header) -> Option<u64> {
    let blocks = h.data_len.div_ceil(u64::from(h.block_size));
    blocks
        .checked_mul(CRC_LEN as u64)?
        .checked_add(h.data_len)?
        .checked_add(HEADER_LEN as u64)
}

/// Makes the checksums right, as `control` asks (see the module doc).
pub fn fix_checksums(control: u8, file: &mut [u8]) {
    if file.len() < HEADER_LEN {
        return;
    }
    if control & 2 != 0 {
        let bs = u32::from_le_bytes([file[12], file[13], file[14], file[15]]) as usize;
        if bs > 0 {
            let mut shard_crc = 0u32;
            let mut at = HEADER_LEN;
            while at + CRC_LEN < file.len() {
                let end = (at + bs).min(file.len() - CRC_LEN);
                let crc = crc32c::crc32c(&file[at..end]).to_le_bytes();
                file[end..end + CRC_LEN].copy_from_slice(&crc);
                shard_crc = crc32c::crc32c_append(shard_crc, &crc);
                at = end + CRC_LEN;
            }
            file[28..32].copy_from_slice(&shard_crc.to_le_bytes());
        }
    }
    if control & 3 != 0 {
        let crc = crc32c::crc32c(&file[0..60]);
        file[60..64].copy_from_slice(&crc.to_le_bytes());
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut out = Vec::new();
    for (len, bs) in [
        (0, 256),
        (1, 256),
        (256, 256),
        (1000, 256),
        (1000, 64 * 1024),
    ] {
        let mut f = vec![3u8];
        f.extend(format::encode_shard(&data[..len], 2, bs));
        out.push(f);
    }
    out
}

fn header() -> Harness {
    Harness {
        seeds: seeds()
            .into_iter()
            .map(|mut s| {
                s.truncate(1 + HEADER_LEN);
                s
            })
            .collect(),
        tokens: Vec::new(),
        run: Box::new(|data| {
            let (c, rest) = control(data);
            let mut h = rest.to_vec();
            fix_checksums(c & 1, &mut h);
            let r = Header::decode(&h);
            if let Ok(header) = &r {
                // Every reader computes the file's length and the block
                // offsets from the header: they must be numbers.
                let len = checked_file_len(header);
                assert!(
                    len.is_some(),
                    "a header was accepted whose file length overflows: {header:?}"
                );
                assert_eq!(Header::decode(&header.encode()).ok(), Some(*header));
            }
            outcome(&r)
        }),
    }
}

fn file() -> Harness {
    Harness {
        seeds: seeds(),
        tokens: Vec::new(),
        run: Box::new(|data| {
            let (c, rest) = control(data);
            let mut f = rest.to_vec();
            fix_checksums(c, &mut f);
            let r = format::decode_shard(&f);
            if let Ok((h, payload)) = &r {
                assert_eq!(payload.len() as u64, h.data_len);
                assert_eq!(Some(f.len() as u64), checked_file_len(h));
                // Re-encoding holds a block in memory: only for block
                // sizes a writer would use (a reader holds at most the
                // data, whatever the header's block size).
                if h.block_size <= 1 << 20 {
                    let again = format::encode_shard(payload, h.shard_index, h.block_size);
                    assert_eq!(
                        format::decode_shard(&again).ok(),
                        Some((*h, payload.clone()))
                    );
                }
            }
            outcome(&r)
        }),
    }
}

/// A store in a temp dir holding one shard, whose file each input
/// replaces; then stat, a whole read and a scrub's verify, as the
/// blob-server does them.
fn store() -> Harness {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the store target");
    let dir = tempfile::tempdir().expect("a temp dir for the store target");
    let id = "0000000000000000000000000000000000-0";
    let (store, path) = rt.block_on(async {
        let store = Store::open(dir.path()).await.expect("store opens");
        let mut w = store.create(id, 0).await.expect("create");
        w.write(b"seed").await.expect("write");
        w.commit().await.expect("commit");
        (store, find_file(&dir.path().join("shards"), id))
    });
    Harness {
        seeds: seeds(),
        tokens: Vec::new(),
        run: Box::new(move |data| {
            let _keep = &dir;
            let (c, rest) = control(data);
            let mut f = rest.to_vec();
            fix_checksums(c, &mut f);
            std::fs::write(&path, &f).expect("rewriting the shard file");
            rt.block_on(async {
                let info = match store.stat(id).await {
                    Ok(i) => i,
                    Err(e) => return refused(&e),
                };
                let mut read = match store.read(id, 0, 0).await {
                    Ok(r) => r,
                    Err(e) => return refused(&e),
                };
                let mut got = 0u64;
                loop {
                    match read.next().await {
                        Ok(Some(blocks)) => {
                            got += blocks.iter().map(|b| b.len() as u64).sum::<u64>()
                        }
                        Ok(None) => break,
                        Err(e) => return refused(&e),
                    }
                }
                assert_eq!(got, info.len, "a whole read is the shard's length");
                let mut v = match store.verify(id).await {
                    Ok(v) => v,
                    Err(e) => return refused(&e),
                };
                loop {
                    match v.step().await {
                        Ok(Some(_)) => {}
                        Ok(None) => return 0,
                        Err(e) => return refused(&e),
                    }
                }
            })
        }),
    }
}

/// The one file named `id` under `dir`.
fn find_file(dir: &std::path::Path, id: &str) -> std::path::PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("reading the store").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == id) {
                return p;
            }
        }
    }
    panic!("the seed shard {id} is not under {}", dir.display());
}

/// A store refusal's class: a corrupt shard by what is wrong with it.
fn refused(e: &StoreError) -> u64 {
    match e {
        StoreError::Corrupt { source, .. } => class(&source.to_string()),
        other => class(&other.to_string()) ^ 2,
    }
}
