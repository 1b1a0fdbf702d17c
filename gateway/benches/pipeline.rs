//! Single-process throughput of the PUT pipeline's CPU stages on the same
//! bytes: MD5 (the ETag), AES-256-GCM segment sealing, Reed–Solomon 4+2
//! encoding — each alone, then all three in sequence on one core.
//!
//! cargo bench -p hamster-gateway --bench pipeline

use std::time::Instant;

use hamster_gateway::pipeline::encrypt::{SEGMENT_SIZE, SegmentCipher};
use hamster_gateway::pipeline::erasure::Coder;
use hamster_proto::envelope::DataKey;
use md5::{Digest, Md5};

const TOTAL: usize = 256 << 20;

fn report(name: &str, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<28} {:>8.2} GB/s  ({:.0} MB in {secs:.3} s)",
        TOTAL as f64 / secs / 1e9,
        TOTAL as f64 / 1e6
    );
}

fn main() {
    let segment: Vec<u8> = (0..SEGMENT_SIZE).map(|i| (i * 31 % 251) as u8).collect();
    let n = TOTAL / SEGMENT_SIZE;
    let cipher = SegmentCipher::new(&DataKey::generate());
    let coder = Coder::new(4, 2).expect("4+2");
    println!(
        "pipeline stages, {n} segments of {} KiB, one core",
        SEGMENT_SIZE >> 10
    );

    let t = Instant::now();
    let mut md5 = Md5::new();
    for _ in 0..n {
        md5.update(&segment);
    }
    std::hint::black_box(md5.finalize());
    report("MD5", t);

    let t = Instant::now();
    for i in 0..n {
        std::hint::black_box(cipher.seal(i as u64, false, &segment));
    }
    report("AES-256-GCM seal", t);

    let sealed = cipher.seal(0, false, &segment);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(coder.encode(sealed.clone()));
    }
    // Includes a copy of the stripe: encode takes its buffer.
    report("Reed-Solomon 4+2 encode", t);

    let t = Instant::now();
    let mut md5 = Md5::new();
    for i in 0..n {
        md5.update(&segment);
        let s = cipher.seal(i as u64, false, &segment);
        std::hint::black_box(coder.encode(s));
    }
    std::hint::black_box(md5.finalize());
    report("MD5 + seal + encode", t);
}
