//! The answer to an unsigned request (nothing here is public): 404
//! NoSuchBucket if the bucket it names does not exist, else 403
//! AccessDenied, as AWS answers (issue 21 point 16).
//!
//! Telling the two apart costs a HeadBucket on the meta tier, which an
//! unauthenticated client must not be able to drive at will (a loop of
//! unsigned GETs on random names). So an answer is remembered for
//! `EXISTS_TTL` (a bucket created or deleted meanwhile is answered as it
//! was for at most that long), at most `REMEMBERED_MAX` of them; and at
//! most `LOOKUPS_PER_SECOND` lookups are made a second by this gateway,
//! for all unsigned requests together. Past that the answer is 403
//! AccessDenied without a lookup — what AWS answers for an existing
//! bucket anyway, and it tells a scanner nothing.
//!
//! An unsigned CreateBucket names a bucket that (usually) does not exist
//! yet: AWS answers 403, so it is answered 403 without a lookup.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hamster_proto::{ErrorCode, pb};
use s3s::{S3Error, s3_error};

use crate::meta::MetaTier;
use crate::meta_call;

/// How long whether a bucket exists is remembered for unsigned requests.
pub const EXISTS_TTL: Duration = Duration::from_secs(2);

/// At most this many bucket names are remembered (the lookup cap keeps
/// far fewer alive; this bounds memory whatever the cap).
const REMEMBERED_MAX: usize = 1024;

/// At most this many HeadBucket lookups a second for unsigned requests.
pub const LOOKUPS_PER_SECOND: u32 = 20;

/// What to answer an unsigned request for a bucket, as [`Memo`] decides.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    /// Remembered: whether the bucket exists.
    Known(bool),
    /// Not remembered, and a lookup fits in this second's allowance.
    Lookup,
    /// Not remembered and the allowance is spent: 403 without a lookup.
    OverCap,
}

/// Buckets found existing or not, with when; and the lookups made in
/// the current one-second window.
#[derive(Default)]
struct Memo {
    exists: HashMap<String, (bool, Instant)>,
    window: Option<Instant>,
    spent: u32,
}

fn within(since: Instant, now: Instant, span: Duration) -> bool {
    now.saturating_duration_since(since) < span
}

impl Memo {
    /// A remembered answer, else whether a lookup may be made now (and
    /// if so it is counted).
    fn ask(&mut self, bucket: &str, now: Instant) -> Ask {
        if let Some((exists, at)) = self.exists.get(bucket)
            && within(*at, now, EXISTS_TTL)
        {
            return Ask::Known(*exists);
        }
        if !self
            .window
            .is_some_and(|w| within(w, now, Duration::from_secs(1)))
        {
            self.window = Some(now);
            self.spent = 0;
        }
        if self.spent >= LOOKUPS_PER_SECOND {
            return Ask::OverCap;
        }
        self.spent += 1;
        Ask::Lookup
    }

    /// Remembers a lookup's answer; when full, expired names make room,
    /// and if none has expired the answer is not kept.
    fn remember(&mut self, bucket: &str, exists: bool, now: Instant) {
        if self.exists.len() >= REMEMBERED_MAX && !self.exists.contains_key(bucket) {
            self.exists
                .retain(|_, (_, at)| within(*at, now, EXISTS_TTL));
        }
        if self.exists.len() < REMEMBERED_MAX || self.exists.contains_key(bucket) {
            self.exists.insert(bucket.to_string(), (exists, now));
        }
    }
}

/// The unsigned requests' answers, shared by every request.
#[derive(Default)]
pub struct Anonymous {
    memo: Mutex<Memo>,
}

impl Anonymous {
    /// The error for an unsigned request naming `bucket` (None: the root,
    /// or a CreateBucket — 403 without a lookup).
    pub async fn answer(&self, meta: &MetaTier, bucket: Option<&str>) -> S3Error {
        let denied = || s3_error!(AccessDenied, "Access Denied");
        let Some(bucket) = bucket else {
            return denied();
        };
        let ask = match self.memo.lock() {
            Ok(mut m) => m.ask(bucket, Instant::now()),
            // A poisoned lock: answer without asking anyone.
            Err(_) => Ask::OverCap,
        };
        let exists = match ask {
            Ask::Known(e) => e,
            Ask::OverCap => return denied(),
            Ask::Lookup => {
                let found = meta_call!(
                    meta,
                    head_bucket,
                    pb::HeadBucketRequest {
                        name: bucket.to_string(),
                    }
                )
                .await;
                let exists = match found {
                    Err(e) if e.code() == Some(ErrorCode::NoSuchBucket) => false,
                    // Not remembered: the next request asks again (within the cap).
                    Err(e) => return e.into(),
                    Ok(r) => r.bucket.is_some(),
                };
                if let Ok(mut m) = self.memo.lock() {
                    m.remember(bucket, exists, Instant::now());
                }
                exists
            }
        };
        if exists {
            denied()
        } else {
            s3_error!(NoSuchBucket)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_remembered_for_the_ttl() {
        let mut m = Memo::default();
        let t0 = Instant::now();
        assert_eq!(m.ask("b", t0), Ask::Lookup);
        m.remember("b", false, t0);
        m.remember("e", true, t0);
        let soon = t0 + EXISTS_TTL - Duration::from_millis(1);
        assert_eq!(m.ask("b", soon), Ask::Known(false));
        assert_eq!(m.ask("e", soon), Ask::Known(true));
        // Expired: asked again.
        assert_eq!(m.ask("b", t0 + EXISTS_TTL), Ask::Lookup);
    }

    #[test]
    fn lookups_are_capped_per_second_for_all_names() {
        let mut m = Memo::default();
        let t0 = Instant::now();
        for i in 0..LOOKUPS_PER_SECOND {
            assert_eq!(m.ask(&format!("n{i}"), t0), Ask::Lookup, "{i}");
        }
        // Spent: any other name is refused without a lookup...
        let late = t0 + Duration::from_millis(999);
        assert_eq!(m.ask("other", late), Ask::OverCap);
        assert_eq!(m.ask("n0", late), Ask::OverCap);
        // ...but a remembered answer is still given.
        m.remember("n1", false, t0);
        assert_eq!(m.ask("n1", late), Ask::Known(false));
        // The next second has a new allowance.
        assert_eq!(m.ask("other", t0 + Duration::from_secs(1)), Ask::Lookup);
    }

    #[test]
    fn remembered_names_are_bounded() {
        let mut m = Memo::default();
        let t0 = Instant::now();
        for i in 0..REMEMBERED_MAX + 10 {
            m.remember(&format!("n{i}"), false, t0);
        }
        assert_eq!(m.exists.len(), REMEMBERED_MAX);
        // Full of live names: a new one is not kept, a known one updated.
        m.remember("new", true, t0);
        assert!(!m.exists.contains_key("new"));
        m.remember("n0", true, t0);
        assert_eq!(m.ask("n0", t0), Ask::Known(true));
        // Once they expire they make room.
        let later = t0 + EXISTS_TTL;
        m.remember("late", true, later);
        assert_eq!(m.exists.len(), 1);
        assert_eq!(m.ask("late", later), Ask::Known(true));
    }
}
