//! Checking a pack on its own, without the database.

use moat_store::{body_digest, decode_hash, link, ChainBodies, SpanLink};

use crate::build::totals;
use crate::EvidencePack;

/// What [`verify`] established.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyOutcome {
    /// Links recomputed (`first_seq..=checkpoint seq`).
    pub links: u64,
    /// Records present in full.
    pub records: u64,
    /// Disclosed bodies matched against their digests.
    pub bodies: u64,
    /// Which key checked the checkpoint signature: `"given"` or `"embedded"`.
    pub key_source: &'static str,
    /// The signer's public key (hex).
    pub public_key: String,
    /// Checkpoint seq reached.
    pub checkpoint_seq: i64,
}

/// Verify `pack`: every full record hashes to its chained value, the links run without a gap
/// from `proof.first_seq` to the checkpoint and end at its signed head, the signature holds
/// (with `public_key_hex` when given, else with the key in the pack), disclosed bodies match
/// their digests, and the totals recompute from the records. The error names the failing
/// record (seq) where there is one.
pub fn verify(pack: &EvidencePack, public_key_hex: Option<&str>) -> Result<VerifyOutcome, String> {
    if pack.format != crate::FORMAT {
        return Err(format!("unknown pack format {:?}", pack.format));
    }
    let proof = &pack.proof;
    let cp = &proof.checkpoint;
    let mut prev = decode_hash(&proof.span.prev_hash)
        .ok_or_else(|| "proof: prev_hash is not a 32-byte hex hash".to_string())?;
    let mut expected = proof.first_seq;
    let mut out = VerifyOutcome {
        links: 0,
        records: 0,
        bodies: 0,
        key_source: if public_key_hex.is_some() {
            "given"
        } else {
            "embedded"
        },
        public_key: cp.public_key.clone(),
        checkpoint_seq: cp.seq,
    };
    for l in &proof.span.links {
        let seq = match l {
            SpanLink::Row(e) => e.row.seq,
            SpanLink::Leaf { seq, .. } => *seq,
        };
        if seq != expected {
            return Err(format!(
                "record seq {expected}: missing from the chain (next link present is seq {seq})"
            ));
        }
        match l {
            SpanLink::Row(e) => {
                let h = e.row.hash(&prev);
                if decode_hash(&e.hash) != Some(h) {
                    return Err(format!(
                        "record seq {seq}: content altered (recomputed hash {} != chained {})",
                        hex_str(&h),
                        e.hash
                    ));
                }
                check_bodies(e, &mut out)?;
                out.records += 1;
                prev = h;
            }
            SpanLink::Leaf { leaf, .. } => {
                let leaf = decode_hash(leaf)
                    .ok_or_else(|| format!("record seq {seq}: leaf is not a 32-byte hex hash"))?;
                prev = link(&prev, &leaf);
            }
        }
        out.links += 1;
        expected = seq + 1;
    }
    if expected - 1 != cp.seq {
        return Err(format!(
            "record seq {expected}: missing; the chain stops at seq {} but the checkpoint covers seq {}",
            expected - 1,
            cp.seq
        ));
    }
    if decode_hash(&cp.head_hash) != Some(prev) {
        return Err(format!(
            "record seq {}: chain does not reach the signed checkpoint head {} (got {})",
            cp.seq,
            cp.head_hash,
            hex_str(&prev)
        ));
    }
    cp.verify_signature(public_key_hex)?;
    check_totals(pack)?;
    Ok(out)
}

fn hex_str(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_bodies(e: &moat_store::AuditEntry, out: &mut VerifyOutcome) -> Result<(), String> {
    let seq = e.row.seq;
    match (&e.row.bodies, &e.salt, &e.request_body) {
        (
            ChainBodies::Digests {
                request_digest,
                response_digest,
            },
            Some(salt),
            Some(req),
        ) => {
            let salt = salt_bytes(salt).ok_or_else(|| format!("record seq {seq}: bad salt"))?;
            let resp = e.response_text.as_deref().map(|t| body_digest(&salt, t));
            if body_digest(&salt, req) != *request_digest || resp != *response_digest {
                return Err(format!(
                    "record seq {seq}: disclosed body does not match its chained digest"
                ));
            }
            out.bodies += 1;
        }
        (
            ChainBodies::Plain {
                request_body,
                response_text,
            },
            _,
            Some(req),
        ) => {
            if req != request_body || e.response_text != *response_text {
                return Err(format!(
                    "record seq {seq}: disclosed body differs from the chained one"
                ));
            }
            out.bodies += 1;
        }
        (_, _, None) if e.response_text.is_some() => {
            return Err(format!(
                "record seq {seq}: response disclosed without its request"
            ));
        }
        _ => {}
    }
    Ok(())
}

fn salt_bytes(hex_salt: &str) -> Option<Vec<u8>> {
    if hex_salt.len() % 2 != 0 {
        return None;
    }
    (0..hex_salt.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex_salt.get(i..i + 2)?, 16).ok())
        .collect()
}

fn check_totals(pack: &EvidencePack) -> Result<(), String> {
    let (per, all, value) = totals(&pack.proof.span, &pack.selection, &pack.prices);
    let listed: Vec<&str> = pack.accounts.iter().map(|a| a.account.as_str()).collect();
    let found: Vec<&str> = per.keys().map(String::as_str).collect();
    if listed != found {
        return Err(format!(
            "accounts listed {listed:?} differ from the accounts in the records {found:?}"
        ));
    }
    for a in &pack.accounts {
        let (t, v) = &per[&a.account];
        if *t != a.totals || (v - a.value).abs() > 1e-6 * v.abs().max(1.0) {
            return Err(format!(
                "account {}: stated totals {:?} (value {:.4}) differ from the records {:?} (value {:.4})",
                a.account, a.totals, a.value, t, v
            ));
        }
    }
    if all != pack.totals || (value - pack.value).abs() > 1e-6 * value.abs().max(1.0) {
        return Err(format!(
            "stated totals {:?} differ from the records {:?}",
            pack.totals, all
        ));
    }
    Ok(())
}
