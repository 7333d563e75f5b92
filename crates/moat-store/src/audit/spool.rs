//! The audit spool: batches the store could not take, kept on local disk until it can.
//!
//! One file per spool directory, `audit-spool.jsonl`, mode 0600 in a 0700 directory, guarded by
//! an exclusive `flock` on `audit-spool.lock` (one writer per directory; a second process finds
//! the lock held and runs without the spool until the first one is gone). JSON Lines, one line
//! per batch, appended and `fsync`ed as a unit:
//!
//! ```text
//! {"v":1,"batch":"b_…","n":3,"records":[{…AuditRecord…, "decision_json":"{…}"}, …]}
//! {"v":1,"batch":"b_…","n":3,"key_id":"k1","nonce":"<hex>","ct":"<hex>"}
//! ```
//!
//! The first form is plaintext (records can hold prompts and answers); the second is written
//! whenever the store has an active audit encryption key: the JSON array of records sealed with
//! XChaCha20-Poly1305 under that key, the batch id bound as associated data.
//!
//! `batch` is the batch's idempotency key: the store records every batch id it commits
//! (`audit_batches`) in the same transaction as the rows, and skips a batch whose id it already
//! has. So a batch whose commit succeeded but whose acknowledgement was lost (timeout, crash
//! before the spool was truncated) is never written twice.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::crypto::AuditKeyring;
use super::Pending;

/// Name of the spool file inside the spool directory.
pub(crate) const SPOOL_FILE: &str = "audit-spool.jsonl";
/// Name of the lock file inside the spool directory.
pub(crate) const LOCK_FILE: &str = "audit-spool.lock";
/// Lines that could not be decoded or decrypted are moved here (never deleted).
pub(crate) const REJECTED_FILE: &str = "audit-spool.rejected.jsonl";

const AD_DOMAIN: &[u8] = b"moat-audit-spool-v1\0";
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Line {
    v: u32,
    batch: String,
    n: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    records: Option<Vec<Pending>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ct: Option<String>,
}

/// Just the record count of a line (for counting a leftover spool without decrypting it).
#[derive(Deserialize)]
struct Header {
    n: u64,
}

fn associated_data(batch: &str) -> Vec<u8> {
    let mut ad = AD_DOMAIN.to_vec();
    ad.extend_from_slice(batch.as_bytes());
    ad
}

/// One spool line for `records`, newline included; sealed when `keys` has an active key.
pub(crate) fn encode_line(
    batch: &str,
    records: &[Pending],
    keys: Option<&AuditKeyring>,
) -> Result<Vec<u8>, serde_json::Error> {
    let n = records.len() as u64;
    let sealed = match keys.filter(|k| k.active().is_some()) {
        Some(k) => {
            let pt = serde_json::to_vec(records)?;
            k.seal_blob(&associated_data(batch), &pt)
        }
        None => None,
    };
    let line = match sealed {
        Some((key_id, nonce, ct)) => Line {
            v: FORMAT,
            batch: batch.to_string(),
            n,
            records: None,
            key_id: Some(key_id),
            nonce: Some(hex::encode(nonce)),
            ct: Some(hex::encode(ct)),
        },
        None => Line {
            v: FORMAT,
            batch: batch.to_string(),
            n,
            records: Some(records.to_vec()),
            key_id: None,
            nonce: None,
            ct: None,
        },
    };
    let mut out = serde_json::to_vec(&line)?;
    out.push(b'\n');
    Ok(out)
}

/// Decode (and decrypt) one spool line: its batch id and records. The error says why, without
/// any record content.
pub(crate) fn decode_line(
    raw: &[u8],
    keys: Option<&AuditKeyring>,
) -> Result<(String, Vec<Pending>), String> {
    let line: Line = serde_json::from_slice(raw).map_err(|e| format!("not a spool line: {e}"))?;
    if line.v != FORMAT {
        return Err(format!("unknown spool format {}", line.v));
    }
    let records = match (line.records, line.key_id, line.nonce, line.ct) {
        (Some(records), None, None, None) => records,
        (None, Some(key_id), Some(nonce), Some(ct)) => {
            let keys = keys.ok_or_else(|| {
                format!(
                    "batch {} is encrypted under key {key_id:?} and no audit key is configured",
                    line.batch
                )
            })?;
            let nonce = hex::decode(nonce).map_err(|_| "nonce is not hex".to_string())?;
            let ct = hex::decode(ct).map_err(|_| "ciphertext is not hex".to_string())?;
            let pt = keys.open_blob(&key_id, &associated_data(&line.batch), &nonce, &ct)?;
            serde_json::from_slice(&pt).map_err(|e| format!("decrypted batch is not JSON: {e}"))?
        }
        _ => return Err("neither plaintext records nor a sealed batch".into()),
    };
    if records.len() as u64 != line.n {
        return Err(format!(
            "batch {} says {} records, holds {}",
            line.batch,
            line.n,
            records.len()
        ));
    }
    Ok((line.batch, records))
}

/// Record count of a raw line (0 when the line is unreadable).
pub(crate) fn line_count(raw: &[u8]) -> u64 {
    serde_json::from_slice::<Header>(raw).map_or(0, |h| h.n)
}

/// A line read back from the spool.
pub(crate) struct RawLine {
    /// Offset just past the line.
    pub end: u64,
    /// The line without its newline.
    pub bytes: Vec<u8>,
    /// The line has no newline: a write torn by a crash.
    pub torn: bool,
}

/// The spool file of one directory. All methods do blocking I/O: call them off the async
/// executor (`spawn_blocking`).
pub(crate) struct Spool {
    dir: PathBuf,
    lock: Option<File>,
    file: Option<File>,
    /// Bytes in the spool file.
    len: u64,
    /// Bytes of the spool file whose batches are in the store.
    read_offset: u64,
    /// Records in `read_offset..len` (as the lines say).
    pending: u64,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("locked", &self.lock.is_some())
            .field("len", &self.len)
            .field("read_offset", &self.read_offset)
            .field("pending", &self.pending)
            .finish()
    }
}

#[cfg(unix)]
fn private_file(opts: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    opts.mode(0o600)
}

#[cfg(not(unix))]
fn private_file(opts: &mut OpenOptions) -> &mut OpenOptions {
    opts
}

/// Take an exclusive advisory lock on `file` without waiting; `false` when another process
/// holds it.
#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock only reads the descriptor, which `file` keeps open for the duration of the
    // call; it touches no memory of ours.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(err)
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> io::Result<bool> {
    Ok(true)
}

fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

impl Spool {
    /// Prepare `dir` (created with mode 0700 when missing). Does not lock yet.
    pub(crate) fn new(dir: &Path) -> io::Result<Spool> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    mode = format_args!("{:o}", mode & 0o777),
                    "audit spool directory is readable by other users; spooled records can hold prompts"
                );
            }
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            lock: None,
            file: None,
            len: 0,
            read_offset: 0,
            pending: 0,
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(SPOOL_FILE)
    }

    /// Whether this process holds the directory's lock.
    pub(crate) fn locked(&self) -> bool {
        self.lock.is_some()
    }

    /// Records waiting in the spool.
    pub(crate) fn pending(&self) -> u64 {
        self.pending
    }

    /// Whether batches wait in the spool (possibly unreadable ones, counted 0 records).
    pub(crate) fn has_pending(&self) -> bool {
        self.read_offset < self.len
    }

    /// Try to take the directory's lock. On success, a spool file left by an earlier process is
    /// adopted (its batches go first). Returns whether the lock is held.
    pub(crate) fn try_lock(&mut self) -> io::Result<bool> {
        if self.lock.is_some() {
            return Ok(true);
        }
        let lock = private_file(OpenOptions::new().create(true).truncate(false).write(true))
            .open(self.dir.join(LOCK_FILE))?;
        if !try_lock(&lock)? {
            return Ok(false);
        }
        self.lock = Some(lock);
        match File::open(self.path()) {
            Ok(f) => {
                let mut pending = 0;
                let mut reader = BufReader::new(f);
                let mut line = Vec::new();
                let mut len = 0u64;
                loop {
                    line.clear();
                    let n = reader.read_until(b'\n', &mut line)?;
                    if n == 0 {
                        break;
                    }
                    len += n as u64;
                    pending += line_count(&line);
                }
                self.len = len;
                self.read_offset = 0;
                self.pending = pending;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(true)
    }

    /// Append one encoded line holding `n` records and make it durable (`fsync`). On failure
    /// the file is cut back to its previous length, so a half-written line never stays.
    pub(crate) fn append(&mut self, line: &[u8], n: u64) -> io::Result<()> {
        if self.lock.is_none() {
            return Err(io::Error::other("spool directory lock not held"));
        }
        if self.file.is_none() {
            let f = private_file(OpenOptions::new().create(true).append(true)).open(self.path())?;
            let len = f.metadata()?.len();
            if len != self.len {
                // Only this process writes the file (it holds the lock); trust the disk.
                self.len = len;
            }
            self.file = Some(f);
            sync_dir(&self.dir);
        }
        let Some(f) = self.file.as_mut() else {
            return Err(io::Error::other("spool file not open"));
        };
        let result = f.write_all(line).and_then(|()| f.sync_data());
        match result {
            Ok(()) => {
                self.len += line.len() as u64;
                self.pending += n;
                Ok(())
            }
            Err(e) => {
                let _ = f.set_len(self.len);
                let _ = f.sync_data();
                Err(e)
            }
        }
    }

    /// Read up to `max_lines` lines (and about `max_bytes`) from the first batch not yet in the
    /// store.
    pub(crate) fn read(&mut self, max_lines: usize, max_bytes: usize) -> io::Result<Vec<RawLine>> {
        let mut out = Vec::new();
        if !self.has_pending() {
            return Ok(out);
        }
        let mut f = match File::open(self.path()) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Removed behind our back: nothing left to read.
                self.file = None;
                self.len = 0;
                self.read_offset = 0;
                self.pending = 0;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        f.seek(SeekFrom::Start(self.read_offset))?;
        let mut reader = BufReader::new(f.take(self.len - self.read_offset));
        let mut at = self.read_offset;
        let mut bytes = 0usize;
        while out.len() < max_lines && bytes < max_bytes {
            let mut line = Vec::new();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            at += n as u64;
            bytes += n;
            let torn = line.last() != Some(&b'\n');
            if !torn {
                line.pop();
            }
            out.push(RawLine {
                end: at,
                bytes: line,
                torn,
            });
        }
        Ok(out)
    }

    /// The batches up to offset `end`, holding `records` records, are in the store. When the
    /// whole spool is, the file is deleted.
    pub(crate) fn consumed(&mut self, end: u64, records: u64) -> io::Result<()> {
        self.read_offset = end.min(self.len);
        self.pending = self.pending.saturating_sub(records);
        if self.read_offset >= self.len {
            self.file = None;
            match std::fs::remove_file(self.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            sync_dir(&self.dir);
            self.len = 0;
            self.read_offset = 0;
            self.pending = 0;
        }
        Ok(())
    }

    /// Keep an unreadable line in the rejected file (mode 0600) for a human to look at.
    pub(crate) fn reject(&mut self, raw: &[u8]) -> io::Result<()> {
        let mut f = private_file(OpenOptions::new().create(true).append(true))
            .open(self.dir.join(REJECTED_FILE))?;
        f.write_all(raw)?;
        f.write_all(b"\n")?;
        f.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditRecord;

    fn pending(i: u64) -> Pending {
        Pending::from(AuditRecord {
            api: "openai.chat".into(),
            request_body: format!("{{\"secret prompt\":{i}}}"),
            decision: Some(serde_json::json!({"risk": 0.30000000000000004})),
            ..Default::default()
        })
    }

    #[test]
    fn lines_round_trip_plain_and_sealed() {
        let recs = vec![pending(1), pending(2)];
        let line = encode_line("b_1", &recs, None).unwrap();
        assert!(String::from_utf8_lossy(&line).contains("secret prompt"));
        let (id, back) = decode_line(&line[..line.len() - 1], None).unwrap();
        assert_eq!((id.as_str(), back), ("b_1", recs.clone()));

        let keys = AuditKeyring::from_spec(&format!("k1={}", "07".repeat(32))).unwrap();
        let line = encode_line("b_2", &recs, Some(&keys)).unwrap();
        assert!(!String::from_utf8_lossy(&line).contains("secret prompt"));
        let (id, back) = decode_line(&line, Some(&keys)).unwrap();
        assert_eq!((id.as_str(), back), ("b_2", recs.clone()));
        assert!(decode_line(&line, None).is_err());
        // The batch id is bound: a sealed body moved to another batch id is refused.
        let moved = String::from_utf8(line).unwrap().replace("b_2", "b_3");
        assert!(decode_line(moved.as_bytes(), Some(&keys)).is_err());
        // The decision text is kept exactly.
        assert_eq!(
            recs[0].decision_json.as_deref(),
            Some(r#"{"risk":0.30000000000000004}"#)
        );
    }

    #[test]
    fn append_read_consume_and_adopt() {
        let dir = tempfile::tempdir().unwrap();
        let sdir = dir.path().join("spool");
        let mut s = Spool::new(&sdir).unwrap();
        assert!(s.try_lock().unwrap());
        for b in 0..3 {
            let line =
                encode_line(&format!("b_{b}"), &[pending(b), pending(b + 10)], None).unwrap();
            s.append(&line, 2).unwrap();
        }
        assert_eq!(s.pending(), 6);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&sdir.join(SPOOL_FILE)), 0o600);
            assert_eq!(mode(&sdir), 0o700);
        }
        // A second handle (another process) cannot take the lock.
        let mut other = Spool::new(&sdir).unwrap();
        assert!(!other.try_lock().unwrap());
        let lines = s.read(2, usize::MAX).unwrap();
        assert_eq!(lines.len(), 2);
        s.consumed(lines[1].end, 4).unwrap();
        assert_eq!(s.pending(), 2);
        drop(s);
        // The next holder adopts what is left (from the start: batch ids make it idempotent).
        assert!(other.try_lock().unwrap());
        assert_eq!(other.pending(), 6);
        let lines = other.read(10, usize::MAX).unwrap();
        assert_eq!(lines.len(), 3);
        other.consumed(lines[2].end, 6).unwrap();
        assert!(!sdir.join(SPOOL_FILE).exists());
        assert!(!other.has_pending());
    }
}
