//! What every tier parses alike (hamster-proto): wrapped data keys and
//! sealed S3 secrets (ADR 0007/0011, from the Raft log and the DB), join
//! tokens (from the operator and the join port), CSRs as the meta tier
//! signs them (meta-server `ca` calls `CertAuthority::sign_csr`), the
//! node's certificate, key and trust bundle PEM (from disk and the
//! `Certs` service), and the names and ids read from peers (and the
//! revoked file).

use base64::Engine;
use hamster_proto::envelope::{self, DataKey};
use hamster_proto::identity::PeerIdentity;
use hamster_proto::join::JoinToken;
use hamster_proto::pki::{self, CertAuthority, ExtraNames, Validity};
use hamster_proto::secrets::MasterKey;
use hamster_proto::tls::NodeTls;
use hamster_proto::{Role, ids, revoke, shard_id};

use super::{Harness, Target, class, control, fields, outcome};

pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "dek-envelope",
            make: dek,
        },
        Target {
            name: "sealed-secret",
            make: sealed,
        },
        Target {
            name: "join-token",
            make: join,
        },
        Target {
            name: "csr-sign",
            make: csr,
        },
        Target {
            name: "tls-pem",
            make: tls_pem,
        },
        Target {
            name: "names-ids",
            make: names,
        },
    ]
}

/// A fixed master key, so a finding's input replays.
fn master_key() -> MasterKey {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    let bytes: Vec<u8> = (1..=32).collect();
    std::fs::write(&path, bytes).expect("writing a test key");
    MasterKey::load(&path).expect("a 32-byte key loads")
}

fn dek() -> Harness {
    let kek = master_key();
    let seeds = (0..4)
        .map(|_| envelope::wrap_dek(&kek, &DataKey::generate()))
        .chain([vec![1], vec![2; envelope::WRAPPED_LEN]])
        .collect();
    Harness {
        seeds,
        tokens: vec![&[1]],
        run: Box::new(move |data| {
            let r = envelope::unwrap_dek(&kek, data);
            if let Ok(k) = &r {
                let again = envelope::unwrap_dek(&kek, &envelope::wrap_dek(&kek, k));
                assert_eq!(again.ok().map(|a| *a.expose()), Some(*k.expose()));
            }
            outcome(&r)
        }),
    }
}

const KEY_ID: &str = "HKEXAMPLE01";

fn sealed() -> Harness {
    let kek = master_key();
    let seeds = ["", "s", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]
        .iter()
        .map(|s| envelope::seal_secret(&kek, KEY_ID, s))
        .collect();
    Harness {
        seeds,
        tokens: vec![&[1]],
        run: Box::new(move |data| outcome(&envelope::open_secret(&kek, KEY_ID, data))),
    }
}

fn join() -> Harness {
    let fp = "a".repeat(64);
    let seeds = Role::ALL
        .iter()
        .map(|r| {
            JoinToken::new(*r, "0a1b2c".into(), "ff00".repeat(8), fp.clone())
                .encode()
                .as_bytes()
                .to_vec()
        })
        .chain([b" HJ1.blob.1.2.3\n".to_vec()])
        .collect();
    Harness {
        seeds,
        tokens: vec![b".", b"HJ1", b"meta", b"blob", b"gateway", b"admin", b" "],
        run: Box::new(|data| {
            let r = JoinToken::parse(&String::from_utf8_lossy(data));
            if let Ok(t) = &r {
                // What the meta tier stores must be what the joiner sends.
                let again = JoinToken::parse(&t.encode()).expect("an encoded token parses");
                assert_eq!(
                    (
                        again.role,
                        &again.id,
                        &again.ca_fingerprint,
                        again.secret_hash()
                    ),
                    (t.role, &t.id, &t.ca_fingerprint, t.secret_hash())
                );
            }
            outcome(&r)
        }),
    }
}

fn test_ca() -> (pki::Pair, CertAuthority) {
    let pair = pki::generate_ca("fuzz", Validity::starting_now(pki::CA_VALIDITY)).expect("a CA");
    let ca = CertAuthority::from_pem(&pair.cert_pem, &pair.key_pem).expect("the CA loads");
    (pair, ca)
}

/// PEM text from DER (the CSR and certificate targets mutate either).
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER inside the first PEM block of `text`, if any.
fn der_of(text: &str) -> Option<Vec<u8>> {
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Control bit 0: the rest is DER, made PEM here; else PEM text.
fn pem_input(c: u8, rest: &[u8], label: &str) -> String {
    if c & 1 != 0 {
        pem(label, rest)
    } else {
        String::from_utf8_lossy(rest).into_owned()
    }
}

fn csr() -> Harness {
    let (_, ca) = test_ca();
    let me = PeerIdentity::new(Role::Blob, "blob-1").expect("an identity");
    let other = PeerIdentity::new(Role::Meta, "blob-1").expect("an identity");
    let extra = ExtraNames {
        dns: vec!["blob-1.example".into()],
        ips: vec![
            "10.0.0.1".parse().expect("an ip"),
            "::1".parse().expect("an ip"),
        ],
    };
    let mut seeds = Vec::new();
    for (id, ex) in [
        (&me, &extra),
        (&me, &ExtraNames::default()),
        (&other, &extra),
    ] {
        let (csr, _) = pki::generate_csr(id, ex).expect("a CSR");
        if let Some(der) = der_of(&csr) {
            let mut s = vec![1u8];
            s.extend(der);
            seeds.push(s);
        }
        let mut s = vec![0u8];
        s.extend(csr.into_bytes());
        seeds.push(s);
    }
    Harness {
        seeds,
        tokens: vec![b"-----BEGIN CERTIFICATE REQUEST-----\n", b"\n", b"="],
        run: Box::new(move |data| {
            let (c, rest) = control(data);
            let text = pem_input(c, rest, "CERTIFICATE REQUEST");
            let r = ca.sign_csr(&text, &me, Validity::starting_now(pki::LEAF_VALIDITY));
            if let Ok(cert) = &r {
                // A signed certificate names the identity it was signed for.
                let der = pki::certs_from_pem(cert).expect("our own PEM parses");
                let id = der.first().map(|d| PeerIdentity::from_cert_der(d));
                assert_eq!(id.and_then(Result::ok).as_ref(), Some(&me));
            }
            outcome(&r)
        }),
    }
}

/// Which PEM input the control byte (bits 1..) replaces.
const PEM_SLOTS: u8 = 6;

fn tls_pem() -> Harness {
    let (ca_pair, ca) = test_ca();
    let me = PeerIdentity::new(Role::Gateway, "gw-1").expect("an identity");
    let leaf = ca
        .issue_with_new_key(
            &me,
            &ExtraNames {
                dns: vec!["gw-1.example".into()],
                ips: vec!["127.0.0.1".parse().expect("an ip")],
            },
            Validity::starting_now(pki::LEAF_VALIDITY),
        )
        .expect("a leaf");
    let node = NodeTls::from_pem(&leaf.cert_pem, &leaf.key_pem, &ca_pair.cert_pem)
        .expect("the node loads");
    let bundle = format!("{}{}", ca_pair.cert_pem, leaf.cert_pem);
    let originals = [
        leaf.cert_pem.clone(),
        leaf.key_pem.clone(),
        ca_pair.cert_pem.clone(),
        bundle.clone(),
        ca_pair.cert_pem.clone(),
        ca_pair.key_pem.clone(),
    ];
    let mut seeds = Vec::new();
    for (slot, text) in (0u8..).zip(&originals) {
        seeds.push([&[slot << 1][..], text.as_bytes()].concat());
        if let Some(der) = der_of(text) {
            seeds.push([&[slot << 1 | 1][..], &der[..]].concat());
        }
    }
    Harness {
        seeds,
        tokens: vec![
            b"-----BEGIN CERTIFICATE-----\n",
            b"-----END CERTIFICATE-----\n",
            b"-----BEGIN PRIVATE KEY-----\n",
            b"\n",
        ],
        run: Box::new(move |data| {
            let (c, rest) = control(data);
            let slot = (c >> 1) % PEM_SLOTS;
            let label = if slot == 1 || slot == 5 {
                "PRIVATE KEY"
            } else {
                "CERTIFICATE"
            };
            let text = pem_input(c, rest, label);
            let mut inputs = originals.clone();
            inputs[usize::from(slot)] = text.clone();
            let [cert, key, trust, bundle, ca_cert, ca_key] = &inputs;
            let r: Result<(), String> = match slot {
                0..=2 => NodeTls::from_pem(cert, key, trust)
                    .map(drop)
                    .map_err(|e| e.to_string()),
                3 => {
                    // A bundle from the meta tier: split, fingerprinted,
                    // then trusted; each cert's names read.
                    for block in pki::split_pem(bundle) {
                        let _ = pki::pem_fingerprint(&block);
                    }
                    for der in pki::certs_from_pem(bundle).unwrap_or_default() {
                        let _ = PeerIdentity::from_cert_der(&der);
                        let _ = pki::extra_names_of(&der);
                    }
                    node.set_trust(bundle).map_err(|e| e.to_string())
                }
                _ => CertAuthority::from_pem(ca_cert, ca_key)
                    .map(drop)
                    .map_err(|e| e.to_string()),
            };
            outcome(&r) ^ u64::from(slot)
        }),
    }
}

/// Shard ids, version and request ids, identity URIs: names peers send.
fn names() -> Harness {
    let shard = shard_id::shard(&shard_id::new_object(1_714_000_000_123), 3);
    let seeds = [
        shard,
        ids::new_version_id(1_714_000_000_123),
        ids::new_request_id(),
        "hamster://blob/blob-1".into(),
        "hamster://meta/m.1_x-2".into(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    Harness {
        seeds,
        tokens: vec![b"hamster://", b"/", b"-"],
        run: Box::new(|data| {
            let text = String::from_utf8_lossy(data);
            let [a, _] = fields(data, b'\n', 2)[..] else {
                return 1;
            };
            let first = String::from_utf8_lossy(a);
            let mut c = 0u64;
            c |= u64::from(shard_id::created_ms(&text).is_some());
            c |= u64::from(ids::is_version_id(&text)) << 1;
            c |= u64::from(ids::is_request_id(&text)) << 2;
            c |= u64::from(hamster_blob::store::valid_id(&first)) << 3;
            // The revoked file: a URI a line; render∘parse keeps the set.
            let (ids, _) = revoke::parse(text.lines());
            let (again, bad) = revoke::parse(revoke::render(&ids).lines());
            assert!(bad.is_empty() && again.iter().all(|i| ids.contains(i)));
            c |= u64::from(ids.is_empty()) << 5;
            match PeerIdentity::parse_uri(&text) {
                Ok(id) => {
                    assert_eq!(PeerIdentity::parse_uri(&id.uri()).ok(), Some(id));
                    c |= 16;
                }
                Err(e) => c ^= class(&e.to_string()),
            }
            c
        }),
    }
}
