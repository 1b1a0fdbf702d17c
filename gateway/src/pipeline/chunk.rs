//! The first stage: the request body, as it streams in, cut into
//! fixed-size segments, with the MD5 of the whole (the S3 ETag) computed on
//! the way. Memory is bounded: at most one segment plus one incoming piece.
//! A segment is known to be the last only when the body ends, so the
//! chunker looks one piece ahead before handing a full segment on.
//!
//! Each segment is filled into a buffer allocated once at its final size,
//! with room for the AES-GCM tag, so sealing in place never reallocates
//! (a regrown buffer is a copy of the whole segment; ADR 0042).

use futures::{Stream, StreamExt};
use md5::{Digest, Md5};

use super::encrypt::{SEGMENT_SIZE, TAG_LEN};

/// One plaintext segment of the body.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment {
    pub index: u64,
    /// The plaintext, with capacity for the tag `seal_in_place` appends.
    pub data: Vec<u8>,
    pub last: bool,
}

pub struct Chunker<S, B> {
    body: S,
    /// A piece read ahead and how much of it is already in a segment.
    ahead: Option<(B, usize)>,
    md5: Md5,
    size: u64,
    index: u64,
    ended: bool,
    finished: bool,
}

impl<S, B, E> Chunker<S, B>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    pub fn new(body: S) -> Self {
        Self {
            body,
            ahead: None,
            md5: Md5::new(),
            size: 0,
            index: 0,
            ended: false,
            finished: false,
        }
    }

    /// Reads the next non-empty piece into `ahead` (hashing it), or marks
    /// the body ended.
    async fn read_ahead(&mut self) -> Result<(), E> {
        while self.ahead.is_none() && !self.ended {
            match self.body.next().await {
                Some(piece) => {
                    let piece = piece?;
                    let bytes = piece.as_ref();
                    if bytes.is_empty() {
                        continue;
                    }
                    self.md5.update(bytes);
                    self.size += bytes.len() as u64;
                    self.ahead = Some((piece, 0));
                }
                None => self.ended = true,
            }
        }
        Ok(())
    }

    /// The next segment: full unless it is the last (an empty body is one
    /// empty last segment); None after the last.
    pub async fn next(&mut self) -> Result<Option<Segment>, E> {
        if self.finished {
            return Ok(None);
        }
        let mut data = Vec::with_capacity(SEGMENT_SIZE + TAG_LEN);
        loop {
            self.read_ahead().await?;
            let Some((piece, used)) = &mut self.ahead else {
                break;
            };
            if data.len() == SEGMENT_SIZE {
                break;
            }
            let rest = &piece.as_ref()[*used..];
            let take = rest.len().min(SEGMENT_SIZE - data.len());
            data.extend_from_slice(&rest[..take]);
            *used += take;
            if *used == piece.as_ref().len() {
                self.ahead = None;
            }
        }
        // Full with nothing after it, or short because the body ended.
        let last = self.ended && self.ahead.is_none();
        let seg = Segment {
            index: self.index,
            data,
            last,
        };
        self.index += 1;
        self.finished = last;
        Ok(Some(seg))
    }

    /// Size and MD5 (hex) of the whole body, once the last segment is out.
    pub fn finish(self) -> Option<(u64, String)> {
        self.finished
            .then(|| (self.size, hex::encode(self.md5.finalize())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(len: usize, piece: usize) -> Vec<Result<Vec<u8>, std::io::Error>> {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        data.chunks(piece.max(1)).map(|c| Ok(c.to_vec())).collect()
    }

    async fn run(len: usize, piece: usize) -> (Vec<Segment>, u64, String) {
        let mut c = Chunker::new(futures::stream::iter(body(len, piece)));
        let mut segs = Vec::new();
        while let Some(s) = c.next().await.expect("segment") {
            segs.push(s);
        }
        let (size, md5) = c.finish().expect("finished");
        (segs, size, md5)
    }

    #[tokio::test]
    async fn bodies_cut_into_segments_with_the_last_marked() {
        let seg = SEGMENT_SIZE;
        for (len, expect) in [
            (0, 1),
            (1, 1),
            (seg - 1, 1),
            (seg, 1),
            (seg + 1, 2),
            (3 * seg + 5, 4),
        ] {
            for piece in [7usize, 65_536, seg - 1, seg, seg + 1, 3 * seg] {
                let (segs, size, md5) = run(len, piece).await;
                assert_eq!(segs.len(), expect, "len {len} piece {piece}");
                assert_eq!(size, len as u64);
                for (i, s) in segs.iter().enumerate() {
                    assert_eq!(s.index, i as u64);
                    assert_eq!(s.last, i + 1 == segs.len());
                    // Sealing in place appends the tag without regrowth.
                    assert!(s.data.capacity() >= s.data.len() + TAG_LEN);
                    if !s.last {
                        assert_eq!(s.data.len(), seg);
                    }
                }
                let all: Vec<u8> = segs.into_iter().flat_map(|s| s.data).collect();
                let want: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                assert_eq!(all, want);
                assert_eq!(md5, hex::encode(Md5::digest(&want)));
            }
        }
    }

    #[tokio::test]
    async fn a_body_error_stops_the_stream() {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> = vec![
            Ok(vec![1; 10]),
            Err(std::io::Error::other("client went away")),
        ];
        let mut c = Chunker::new(futures::stream::iter(pieces));
        assert!(c.next().await.is_err());
    }
}
