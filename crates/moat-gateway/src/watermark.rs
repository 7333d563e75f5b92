//! The text watermark applied to every answer (`[watermark]`, crate `moat-mark`).
//!
//! * [`RawWatermark`] / [`WatermarkConfig`]: the configuration section, validated like the rest
//!   of the file. Secrets never live in the file: each key's secret comes from an environment
//!   variable or a file; with no key configured, a key file next to the database is used (and
//!   created, mode 0600, on first start) so that `moat demo` and a fresh `moat serve` mark out
//!   of the box with a key that survives restarts.
//! * [`Watermarker`]: the runtime policy — which requests are marked, and with which key.
//! * [`crate::watermark_json`]: rewriting answers (whole and streamed) without a `Value` tree.
//!
//! The text watermark is never applied on top of the embedded backend's sampler watermark
//! (one scheme per answer): with `upstream.base_url = "embedded"` and
//! `[upstream.embedded.watermark]` configured, the gateway leaves the text alone and records
//! the sampler's key id instead.

use std::{
    collections::HashSet,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::Context;
use moat_mark::{Keyring, MarkConfig, MarkKey, Marker};
use moat_store::Account;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{raw::S, Config, Env, Secret, UpstreamTarget};

/// `[watermark]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatermark {
    /// Mark answers (default true).
    pub enabled: Option<bool>,
    /// Key file (`<id> <hex secret>` per line); default: next to the database.
    pub key_file: Option<S>,
    /// Id of the marking key (default: the last key listed).
    pub active_key: Option<S>,
    /// Keys with their secret's source.
    pub keys: Option<Vec<RawMarkKey>>,
    /// Account tiers whose answers are not marked.
    pub tiers_off: Option<Vec<String>>,
    /// Account ids whose answers are not marked.
    pub accounts_off: Option<Vec<String>>,
    /// `MarkConfig::context_words` (0 to 4; 0 is the unigram mark).
    pub context_words: Option<usize>,
    /// `MarkConfig::context_stop_words` (default false).
    pub context_stop_words: Option<bool>,
    /// `MarkConfig::context_buckets` (0 to 65,536; default 0: contexts not folded).
    pub context_buckets: Option<u32>,
    /// `MarkConfig::contractions` (default true).
    pub contractions: Option<bool>,
}

/// `[[watermark.keys]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMarkKey {
    /// Public key id (reported by detection).
    pub id: S,
    /// Environment variable holding the hex secret.
    pub secret_env: Option<S>,
    /// File holding the hex secret.
    pub secret_file: Option<S>,
}

/// Where a key's secret comes from.
#[derive(Debug, Clone)]
pub enum KeySecret {
    /// Read from the environment at validation (hex).
    Env(Secret),
    /// Read from this file at start (hex).
    File(PathBuf),
}

/// Where the keyring comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `[[watermark.keys]]` entries.
    Listed(Vec<(String, KeySecret)>),
    /// A key file (`<id> <hex secret>` per line, `#` comments); created when absent.
    File(PathBuf),
}

/// `[watermark]`, validated.
#[derive(Debug, Clone)]
pub struct WatermarkConfig {
    /// Mark answers.
    pub enabled: bool,
    /// The keys.
    pub keys: KeySource,
    /// Marking key id (`None`: the last key).
    pub active_key: Option<String>,
    /// Tiers not marked.
    pub tiers_off: HashSet<String>,
    /// Accounts not marked.
    pub accounts_off: HashSet<String>,
    /// Marking configuration (detection must use the same).
    pub mark: MarkConfig,
}

/// A validation error: message and, when known, the span of the offending value.
#[derive(Debug)]
pub struct WatermarkConfigError {
    /// Span in the source, if known.
    pub span: Option<std::ops::Range<usize>>,
    /// What is wrong.
    pub message: String,
}

fn err(span: Option<&S>, message: impl Into<String>) -> WatermarkConfigError {
    WatermarkConfigError {
        span: span.map(|s| s.span()),
        message: message.into(),
    }
}

/// The default key file for a database: `<db>.watermark-keys` in the same folder.
pub fn default_key_file(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".watermark-keys");
    db.with_file_name(name)
}

impl WatermarkConfig {
    /// Validates `[watermark]`. `path` resolves a relative path against the config's folder.
    pub fn validate(
        raw: RawWatermark,
        db: &Path,
        path: &dyn Fn(&S) -> PathBuf,
        env: &dyn Env,
    ) -> Result<Self, WatermarkConfigError> {
        let keys = match &raw.keys {
            Some(list) if !list.is_empty() => {
                if raw.key_file.is_some() {
                    return Err(err(
                        raw.key_file.as_ref(),
                        "watermark: use either key_file or [[watermark.keys]], not both",
                    ));
                }
                let mut out: Vec<(String, KeySecret)> = Vec::new();
                for k in list {
                    let id = k.id.get_ref();
                    if id.is_empty() || id.chars().any(char::is_whitespace) {
                        return Err(err(
                            Some(&k.id),
                            "watermark.keys: id must be non-empty, without spaces",
                        ));
                    }
                    if out.iter().any(|(o, _)| o == id) {
                        return Err(err(
                            Some(&k.id),
                            format!("watermark.keys: duplicate id {id:?}"),
                        ));
                    }
                    let secret = match (&k.secret_env, &k.secret_file) {
                        (Some(var), None) => {
                            let v = env.var(var.get_ref()).ok_or_else(|| {
                                err(
                                    Some(var),
                                    format!("watermark.keys: {} is not set", var.get_ref()),
                                )
                            })?;
                            MarkKey::from_hex(id.clone(), &v).map_err(|e| {
                                err(
                                    Some(var),
                                    format!(
                                        "watermark.keys: {}: {e} (need >= 32 hex digits)",
                                        var.get_ref()
                                    ),
                                )
                            })?;
                            KeySecret::Env(Secret::new(v))
                        }
                        (None, Some(f)) => KeySecret::File(path(f)),
                        _ => {
                            return Err(err(
                                Some(&k.id),
                                "watermark.keys: give exactly one of secret_env or secret_file",
                            ))
                        }
                    };
                    out.push((id.clone(), secret));
                }
                KeySource::Listed(out)
            }
            _ => KeySource::File(
                raw.key_file
                    .as_ref()
                    .map(path)
                    .unwrap_or_else(|| default_key_file(db)),
            ),
        };
        if let (KeySource::Listed(l), Some(a)) = (&keys, &raw.active_key) {
            if !l.iter().any(|(id, _)| id == a.get_ref()) {
                return Err(err(
                    Some(a),
                    "watermark.active_key is not among [[watermark.keys]]",
                ));
            }
        }
        let defaults = MarkConfig::default();
        let context_words = raw.context_words.unwrap_or(defaults.context_words);
        if context_words > 4 {
            return Err(err(None, "watermark.context_words must be between 0 and 4"));
        }
        let context_buckets = raw.context_buckets.unwrap_or(defaults.context_buckets);
        if context_buckets > 65_536 {
            return Err(err(
                None,
                "watermark.context_buckets must be between 0 and 65536",
            ));
        }
        Ok(Self {
            enabled: raw.enabled.unwrap_or(true),
            keys,
            active_key: raw.active_key.map(|s| s.into_inner()),
            tiers_off: raw.tiers_off.unwrap_or_default().into_iter().collect(),
            accounts_off: raw.accounts_off.unwrap_or_default().into_iter().collect(),
            mark: MarkConfig {
                context_words,
                context_stop_words: raw
                    .context_stop_words
                    .unwrap_or(defaults.context_stop_words),
                context_buckets,
                contractions: raw.contractions.unwrap_or(defaults.contractions),
            },
        })
    }

    /// Loads the keyring. With a key file that does not exist: creates it (mode 0600) with a
    /// fresh random key when `create`, an error otherwise.
    pub fn keyring(&self, create: bool) -> anyhow::Result<Keyring> {
        let keys: Vec<MarkKey> = match &self.keys {
            KeySource::Listed(list) => list
                .iter()
                .map(|(id, s)| {
                    let hex = match s {
                        KeySecret::Env(v) => v.expose().to_string(),
                        KeySecret::File(p) => std::fs::read_to_string(p).with_context(|| {
                            format!("watermark key {id}: reading {}", p.display())
                        })?,
                    };
                    MarkKey::from_hex(id.clone(), hex.trim())
                        .with_context(|| format!("watermark key {id}"))
                })
                .collect::<anyhow::Result<_>>()?,
            KeySource::File(p) => {
                if !p.exists() {
                    if !create {
                        anyhow::bail!(
                            "no watermark key file at {} (it is created by `moat serve` / `moat demo`)",
                            p.display()
                        );
                    }
                    create_key_file(p)?;
                }
                read_key_file(p)?
            }
        };
        let active = match &self.active_key {
            Some(a) => a.clone(),
            None => keys
                .last()
                .map(|k| k.id().to_string())
                .context("the watermark key file has no key")?,
        };
        Ok(Keyring::from_keys(keys, &active)?)
    }
}

/// Parses a key file: `<id> <hex secret>` per line; blank lines and `#` comments ignored.
pub fn read_key_file(p: &Path) -> anyhow::Result<Vec<MarkKey>> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(id), Some(hex), None) = (parts.next(), parts.next(), parts.next()) else {
            anyhow::bail!("{}:{}: expected `<id> <hex secret>`", p.display(), n + 1);
        };
        keys.push(
            MarkKey::from_hex(id, hex)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", p.display(), n + 1))?,
        );
    }
    if keys.is_empty() {
        anyhow::bail!("{}: no watermark key", p.display());
    }
    Ok(keys)
}

/// A new key id and 32-byte secret (hex).
pub fn generate_key() -> (String, String) {
    use rand::RngCore;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let mut tag = [0u8; 3];
    rand::rngs::OsRng.fill_bytes(&mut tag);
    let id = format!(
        "wm-{}-{}",
        chrono::Utc::now().format("%Y%m%d"),
        hex::encode(tag)
    );
    (id, hex::encode(secret))
}

fn create_key_file(p: &Path) -> anyhow::Result<()> {
    let (id, secret) = generate_key();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = match opts.open(p) {
        Ok(f) => f,
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
    };
    writeln!(
        f,
        "# moat text watermark keys: `<id> <hex secret>` per line; the last line marks.\n\
         # Keep this file secret and backed up: without it, marked text cannot be verified.\n\
         {id} {secret}"
    )
    .with_context(|| format!("writing {}", p.display()))?;
    tracing::info!(path = %p.display(), key_id = %id, "created a watermark key");
    Ok(())
}

/// Why an answer is not marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// `[watermark] enabled = false`.
    Disabled,
    /// The embedded backend's sampler watermark marks this answer.
    Sampler,
    /// The account's tier is in `tiers_off`.
    Tier,
    /// The account is in `accounts_off`.
    Account,
    /// Log-probabilities were requested (rewritten words would not match them).
    Logprobs,
    /// `response_format` asks for JSON.
    Json,
}

impl Skip {
    fn as_str(self) -> &'static str {
        match self {
            Skip::Disabled => "disabled",
            Skip::Sampler => "sampler",
            Skip::Tier => "tier_off",
            Skip::Account => "account_off",
            Skip::Logprobs => "logprobs",
            Skip::Json => "json_format",
        }
    }
}

/// The runtime policy: which answers are marked, and the marker.
#[derive(Debug)]
pub struct Watermarker {
    marker: Option<Arc<Marker>>,
    /// Keys for detection (also when marking is off, if they exist).
    detect: Option<(Keyring, MarkConfig)>,
    sampler_key: Option<String>,
    tiers_off: HashSet<String>,
    accounts_off: HashSet<String>,
}

impl Watermarker {
    /// Builds the policy from the configuration, loading (or creating) the keys when marking
    /// is on.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let w = &config.watermark;
        let sampler_key = match (&config.upstream.target, &config.upstream.embedded) {
            (UpstreamTarget::Embedded, Some(e)) => e.watermark.as_ref().map(|m| m.key_id.clone()),
            _ => None,
        };
        let marker = if w.enabled && sampler_key.is_none() {
            let ring = w.keyring(true)?;
            tracing::info!(
                active = ring.active_id(),
                keys = ring.len(),
                "text watermark on"
            );
            Some(Arc::new(Marker::new(ring, w.mark)))
        } else {
            None
        };
        let detect = match &marker {
            Some(m) => Some((m.keyring().clone(), w.mark)),
            None => w.keyring(false).ok().map(|r| (r, w.mark)),
        };
        Ok(Self {
            marker,
            detect,
            sampler_key,
            tiers_off: w.tiers_off.clone(),
            accounts_off: w.accounts_off.clone(),
        })
    }

    /// A policy that never marks (tests, embedding).
    pub fn off() -> Self {
        Self {
            marker: None,
            detect: None,
            sampler_key: None,
            tiers_off: HashSet::new(),
            accounts_off: HashSet::new(),
        }
    }

    /// The marker, when the text watermark is on.
    pub fn marker(&self) -> Option<&Arc<Marker>> {
        self.marker.as_ref()
    }

    /// The keys and configuration detection uses, if any key exists.
    pub fn detection_keys(&self) -> Option<(&Keyring, MarkConfig)> {
        self.detect.as_ref().map(|(r, c)| (r, *c))
    }

    /// Decides for one request: the marker to use, or why not.
    pub fn plan(
        &self,
        account: &Account,
        wants_logprobs: bool,
        json_format: bool,
    ) -> Result<&Arc<Marker>, Skip> {
        if self.sampler_key.is_some() {
            return Err(Skip::Sampler);
        }
        let m = self.marker.as_ref().ok_or(Skip::Disabled)?;
        if self.tiers_off.contains(&account.tier) {
            return Err(Skip::Tier);
        }
        if self.accounts_off.contains(&account.id) {
            return Err(Skip::Account);
        }
        if wants_logprobs {
            return Err(Skip::Logprobs);
        }
        if json_format {
            return Err(Skip::Json);
        }
        Ok(m)
    }

    /// What the audit record says about the plan (`decision.watermark`).
    pub fn audit_value(&self, plan: &Result<&Arc<Marker>, Skip>) -> Value {
        match (plan, &self.sampler_key) {
            (Ok(m), _) => {
                json!({"applied": true, "scheme": "text", "key_id": m.keyring().active_id()})
            }
            (Err(Skip::Sampler), Some(k)) => {
                json!({"applied": true, "scheme": "sampler", "key_id": k})
            }
            (Err(s), _) => json!({"applied": false, "reason": s.as_str()}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NoEnv;

    fn validate(src: &str, env: &dyn Env) -> Result<WatermarkConfig, WatermarkConfigError> {
        let raw: RawWatermark = toml::from_str(src).unwrap();
        WatermarkConfig::validate(
            raw,
            Path::new("/data/moat.db"),
            &|s: &S| PathBuf::from("/etc/moat").join(s.get_ref()),
            env,
        )
    }

    struct OneVar(&'static str, &'static str);
    impl Env for OneVar {
        fn var(&self, name: &str) -> Option<String> {
            (name == self.0).then(|| self.1.to_string())
        }
    }

    #[test]
    fn defaults_mark_with_a_key_file_next_to_the_db() {
        let c = validate("", &NoEnv).unwrap();
        assert!(c.enabled);
        assert_eq!(c.mark, MarkConfig::default());
        match c.keys {
            KeySource::File(p) => assert_eq!(p, PathBuf::from("/data/moat.db.watermark-keys")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn listed_keys_need_their_secret() {
        let src = "keys = [{ id = \"k1\", secret_env = \"WM1\" }]";
        assert!(validate(src, &NoEnv)
            .unwrap_err()
            .message
            .contains("WM1 is not set"));
        let short = OneVar("WM1", "abcd");
        assert!(validate(src, &short).unwrap_err().message.contains("hex"));
        let ok = OneVar("WM1", "00112233445566778899aabbccddeeff");
        let c = validate(src, &ok).unwrap();
        assert_eq!(c.keyring(false).unwrap().active_id(), "k1");
        let both = "keys = [{ id = \"k1\", secret_env = \"WM1\", secret_file = \"f\" }]";
        assert!(validate(both, &ok).is_err());
        let bad_active = "active_key = \"zz\"\nkeys = [{ id = \"k1\", secret_env = \"WM1\" }]";
        assert!(validate(bad_active, &ok).is_err());
        assert!(validate("context_words = 9", &NoEnv).is_err());
        assert!(validate("context_buckets = 70000", &NoEnv).is_err());
        let folded = validate(
            "context_words = 1\ncontext_stop_words = true\ncontext_buckets = 4",
            &NoEnv,
        )
        .unwrap()
        .mark;
        assert_eq!(
            (
                folded.context_words,
                folded.context_stop_words,
                folded.context_buckets
            ),
            (1, true, 4)
        );
        assert_eq!(
            validate("context_words = 0", &NoEnv)
                .unwrap()
                .mark
                .context_words,
            0
        );
    }

    fn account(id: &str, tier: &str) -> Account {
        Account {
            id: id.into(),
            name: id.into(),
            tier: tier.into(),
            email_domain: None,
            country: None,
            verified: false,
            disabled: false,
            limits: Default::default(),
            created_at: chrono::Utc::now(),
        }
    }

    fn config(src: &str, env: &dyn Env) -> Config {
        Config::parse(src, "t.toml", Path::new(""), env).unwrap()
    }

    #[test]
    fn policy_per_tier_account_and_request() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let src = format!(
            "[upstream]\nbase_url = \"demo\"\n[store]\npath = {:?}\n[watermark]\n\
             tiers_off = [\"enterprise\"]\naccounts_off = [\"vip\"]\n",
            db.display().to_string()
        );
        let w = Watermarker::load(&config(&src, &NoEnv)).unwrap();
        let free = account("a", "free");
        let m = w.plan(&free, false, false).unwrap();
        let id = m.keyring().active_id().to_string();
        assert_eq!(
            w.audit_value(&w.plan(&free, false, false)),
            json!({"applied": true, "scheme": "text", "key_id": id})
        );
        assert_eq!(
            w.plan(&account("b", "enterprise"), false, false)
                .unwrap_err(),
            Skip::Tier
        );
        assert_eq!(
            w.plan(&account("vip", "free"), false, false).unwrap_err(),
            Skip::Account
        );
        assert_eq!(w.plan(&free, true, false).unwrap_err(), Skip::Logprobs);
        assert_eq!(w.plan(&free, false, true).unwrap_err(), Skip::Json);
        assert_eq!(w.detection_keys().unwrap().0.active_id(), id);
        let off = format!("{src}enabled = false\n");
        let w = Watermarker::load(&config(&off, &NoEnv)).unwrap();
        assert_eq!(w.plan(&free, false, false).unwrap_err(), Skip::Disabled);
        assert!(w.detection_keys().is_some(), "existing keys still detect");
    }

    #[test]
    fn never_on_top_of_the_sampler_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let src = format!(
            "[upstream]\nbase_url = \"embedded\"\n[upstream.embedded]\nmodel = \"m.gguf\"\n\
             [upstream.embedded.watermark]\nkey_id = \"sampler-1\"\n[store]\npath = {:?}\n",
            db.display().to_string()
        );
        let env = OneVar(
            crate::config::ENV_SAMPLER_WATERMARK_SECRET,
            "0123456789abcdef0123",
        );
        let w = Watermarker::load(&config(&src, &env)).unwrap();
        let plan = w.plan(&account("a", "free"), false, false);
        assert_eq!(plan.as_ref().unwrap_err(), &Skip::Sampler);
        assert_eq!(
            w.audit_value(&plan),
            json!({"applied": true, "scheme": "sampler", "key_id": "sampler-1"})
        );
        assert!(w.marker().is_none());
        assert!(
            !default_key_file(&db).exists(),
            "no text key is created for it"
        );
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("moat.db");
        let raw: RawWatermark = toml::from_str("tiers_off = [\"enterprise\"]").unwrap();
        let c = WatermarkConfig::validate(raw, &db, &|s: &S| PathBuf::from(s.get_ref()), &NoEnv)
            .unwrap();
        assert!(c.keyring(false).is_err(), "not created unless asked");
        let a = c.keyring(true).unwrap();
        let b = c.keyring(true).unwrap();
        assert_eq!(a.active_id(), b.active_id(), "the key persists");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(default_key_file(&db))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Rotation: append a key; it becomes active and the old one still verifies.
        let (id, secret) = generate_key();
        let p = default_key_file(&db);
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str(&format!("{id} {secret}\n"));
        std::fs::write(&p, text).unwrap();
        let r = c.keyring(false).unwrap();
        assert_eq!(r.active_id(), id);
        assert_eq!(r.len(), 2);
    }
}
