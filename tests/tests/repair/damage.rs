//! Steps 1 and 2: the objects every later step reads back (plain ones of
//! several sizes, a completed multipart upload, an open upload), then a
//! wiped disk and a rotted one repaired by `hamster repair`. The two
//! tiniest objects are mirrored by the gateway (1+2, three copies): they
//! are damaged and repaired alongside the 4+2 ones.

use crate::*;

/// Objects the gateway mirrors (at most `--mirror-max-bytes`).
const MIRRORED: [&str; 2] = ["empty", "tiny"];

/// (k, m) a unit of `what` is written with under the 4+2 profile.
fn profile_of(what: &str) -> (u32, u32) {
    if MIRRORED.contains(&what) {
        (1, 2)
    } else {
        (4, 2)
    }
}

pub async fn load(w: &mut World) {
    w.c.create_bucket()
        .bucket("data")
        .send()
        .await
        .expect("mb data");
    set_profile(w, 4, 2).await;
    for (key, len, seed) in [
        ("empty", 0, 1),
        ("tiny", 1, 2),
        ("small", 100_000, 3),
        ("two-segments", MIB + 1, 4),
        ("four-segments", 3 * MIB + 17, 5),
    ] {
        let data = pattern(len, seed);
        put(&w.c, "data", key, &data).await;
        w.objects.push((key.to_string(), data));
    }
    let parts = [pattern(5 * MIB, 6), pattern(MIB + 3, 7)];
    let id = create_upload(&w.c, "multipart").await;
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        done.push(upload_part(&w.c, "multipart", &id, i as i32 + 1, p).await);
    }
    complete(&w.c, "multipart", &id, done).await;
    w.objects.push(("multipart".into(), parts.concat()));
    let id = create_upload(&w.c, "open").await;
    let mut parts = Vec::new();
    for (n, data) in [(1, pattern(5 * MIB, 8)), (2, pattern(300_000, 9))] {
        let done = upload_part(&w.c, "open", &id, n, &data).await;
        parts.push((data, done));
    }
    w.open = Some(Open {
        key: "open".into(),
        id,
        parts,
    });

    for (what, map) in all_units(w).await {
        let mut blobs: Vec<&str> = map.shards.iter().map(|l| l.blob_id.as_str()).collect();
        blobs.sort_unstable();
        blobs.dedup();
        let (k, m) = profile_of(&what);
        let width = (k + m) as usize;
        assert_eq!(
            (
                map.data_shards,
                map.parity_shards,
                map.shards.len(),
                blobs.len()
            ),
            (k, m, width, width),
            "{what}: not {k}+{m} on {width} servers"
        );
    }
    assert_eq!(
        w.s.c
            .status(w.s.metas[0])
            .await
            .expect("status")
            .under_replicated,
        0
    );
    read_all(w, "after the load").await;
}

pub async fn create_upload(c: &Client, key: &str) -> String {
    let out = c
        .create_multipart_upload()
        .bucket("data")
        .key(key)
        .send()
        .await;
    out.expect("create upload")
        .upload_id()
        .expect("upload id")
        .to_string()
}

pub async fn upload_part(c: &Client, key: &str, id: &str, n: i32, data: &[u8]) -> CompletedPart {
    let out = c
        .upload_part()
        .bucket("data")
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload part {n} of {key}: {e:?}"));
    CompletedPart::builder()
        .part_number(n)
        .e_tag(out.e_tag().expect("etag"))
        .build()
}

pub async fn complete(c: &Client, key: &str, id: &str, parts: Vec<CompletedPart>) {
    let list = CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build();
    c.complete_multipart_upload()
        .bucket("data")
        .key(key)
        .upload_id(id)
        .multipart_upload(list)
        .send()
        .await
        .unwrap_or_else(|e| panic!("complete {key}: {e:?}"));
}

/// Step 2: every shard file of one server deleted, a byte flipped in every
/// shard of another; `hamster repair` restores k+m; then two more servers
/// die and everything still reads.
pub async fn wiped_and_rotted(w: &mut World) {
    let (wiped, rotted, more) = (w.s.blobs[0], w.s.blobs[1], [w.s.blobs[2], w.s.blobs[3]]);
    let before = int(&w.s.c.status_json(), "shards_repaired").unwrap_or(0);
    let named: std::collections::HashSet<String> = all_units(w)
        .await
        .into_iter()
        .flat_map(|(_, m)| m.shards.into_iter().map(|l| l.shard_id))
        .collect();
    let gone: Vec<String> =
        w.s.shard_files(wiped)
            .iter()
            .map(|p| file_name(p))
            .collect();
    for p in w.s.shard_files(wiped) {
        std::fs::remove_file(&p).expect("delete shard file");
    }
    let flipped: Vec<String> =
        w.s.shard_files(rotted)
            .iter()
            .map(|p| file_name(p))
            .collect();
    for p in w.s.shard_files(rotted) {
        flip_payload_byte(&p);
    }
    assert!(
        !gone.is_empty() && !flipped.is_empty(),
        "the two servers held no shards"
    );

    let started = now_ms();
    let run =
        w.s.c
            .admin_cli(&["repair", "--json", "--timeout-secs", "240"]);
    assert!(run.ok(), "hamster repair: {run}");
    let out = run.json().expect("repair JSON");
    assert_eq!(int(&out, "under_replicated"), Some(0), "{out}");
    assert_eq!(int(&out, "unrecoverable"), Some(0), "{out}");
    assert!(out["scrub"].is_object(), "no scrub totals: {out}");

    for (what, map) in all_units(w).await {
        for l in &map.shards {
            assert!(
                !gone.contains(&l.shard_id),
                "{what} still names deleted shard {} (on {})",
                l.shard_id,
                l.blob_id
            );
            assert!(
                !flipped.contains(&l.shard_id),
                "{what} still names rotted shard {}",
                l.shard_id
            );
        }
        let (k, m) = profile_of(&what);
        assert_eq!(
            map.shards.len(),
            (k + m) as usize,
            "{what}: not back to k+m"
        );
        w.s.assert_on_disk(&what, &map);
    }

    let st = w.s.c.status_json();
    let sum = durability_summary(&st);
    assert_eq!(int(&st, "under_replicated"), Some(0), "{sum}");
    assert_eq!(int(&st, "unrecoverable"), Some(0), "{sum}");
    let repaired = int(&st, "shards_repaired").unwrap_or(0) - before;
    let lost = gone.iter().chain(&flipped).filter(|id| named.contains(*id));
    let lost = lost.count() as i64;
    assert!(lost > 0, "none of the damaged shards was named by a unit");
    assert!(
        repaired >= lost,
        "{repaired} shards repaired, {lost} lost: {sum}"
    );
    assert!(
        int(&st, "last_scrub_ms").unwrap_or(0) > 0,
        "no scrub recorded: {sum}"
    );
    let servers = st["blob_servers"].as_array().cloned().unwrap_or_default();
    assert_eq!(servers.len(), 7, "{sum}");
    for b in &servers {
        assert_eq!(b["state"], "active", "{b}");
        assert!(
            int(b, "last_scrub_ms").unwrap_or(0) >= started,
            "no full pass since the repair started at {started}: {b}"
        );
    }
    // A rotted shard is never served again: out of shards/ (moved aside,
    // then freed once repair replaced it), and no unit names it.
    let left: Vec<String> =
        w.s.shard_files(rotted)
            .iter()
            .map(|p| file_name(p))
            .collect();
    let served: Vec<&String> = flipped.iter().filter(|id| left.contains(id)).collect();
    assert!(
        served.is_empty(),
        "rotted shards still in shards/: {served:?}"
    );
    let not_aside: Vec<&String> = flipped
        .iter()
        .filter(|id| !w.s.moved_aside(rotted, id))
        .collect();
    assert!(not_aside.is_empty(), "never moved aside: {not_aside:?}");
    kill_all(w, &more);
    read_all(w, "with two more servers killed").await;
    let open = w.open.take().expect("the open upload");
    let done = open.parts.iter().map(|(_, p)| p.clone()).collect();
    complete(&w.c, &open.key, &open.id, done).await;
    let data: Vec<u8> = open.parts.iter().flat_map(|(p, _)| p.clone()).collect();
    let got = get(&w.c, "data", &open.key)
        .await
        .expect("read the completed upload");
    assert!(got == data, "the completed upload read back wrong");
    w.objects.push((open.key, data));
    restart_all(w, &more).await;
}
