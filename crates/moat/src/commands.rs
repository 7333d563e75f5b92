//! What each subcommand does: load config, call the library, print the result.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use moat_bus::ControlMessage;
use moat_gateway::{
    config::{Config, LogConfig, LogFormat},
    ops::{self, CreateAccount, CreateKey, KeyView, NewKey, RotateKey},
    ServeOptions,
};
use moat_store::{Account, Store};
use serde_json::json;

use crate::cli::{AccountsCmd, AuditCmd, Cli, Command, ExportArgs, KeysCmd};

const DEFAULT_CONFIG: &str = "moat.toml";

pub(crate) fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

/// The configuration for a command that only reads it (accounts, keys, audit, mark, verify…):
/// what only a serving gateway needs, such as the admin token, is not required.
pub(crate) fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    load(cli, Config::load_offline)
}

/// The configuration for `serve`, `check-config` and `detect`: every requirement checked.
pub(crate) fn load_serving_config(cli: &Cli) -> anyhow::Result<Config> {
    load(cli, Config::load)
}

fn load(
    cli: &Cli,
    how: fn(&std::path::Path) -> Result<Config, moat_gateway::config::ConfigError>,
) -> anyhow::Result<Config> {
    let path = config_path(cli);
    let mut cfg = how(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(db) = &cli.db {
        cfg.store.path = db.clone();
    }
    Ok(cfg)
}

/// The database for the admin commands: `--db` (a SQLite file or a `postgres://` URL), else
/// the config's `[store]`.
pub(crate) async fn open_store(cli: &Cli) -> anyhow::Result<Store> {
    let (location, shown) = match &cli.db {
        Some(db) => {
            let s = db.to_string_lossy().into_owned();
            let shown = moat_store::redact_url(&s);
            (s, shown)
        }
        None => {
            let c = load_config(cli)?;
            (c.store.location(), c.store.display())
        }
    };
    Store::open(&location)
        .await
        .with_context(|| format!("opening database {shown}"))
}

/// Tells running replicas about a change the CLI made in the store, when the configuration
/// has a `[bus]`; without one (or when the bus cannot be reached) they apply it within their
/// `[auth] cache_ttl`.
pub(crate) async fn announce(cli: &Cli, msg: moat_bus::ControlMessage) {
    let Ok(cfg) = load_config(cli) else {
        eprintln!("(running gateways apply this within their [auth] cache_ttl)");
        return;
    };
    let Some(b) = &cfg.bus else {
        eprintln!("(running gateways apply this within their [auth] cache_ttl)");
        return;
    };
    let send = async {
        let bus = moat_bus::Bus::connect(b.bus.clone(), true).await?;
        moat_bus::Control::new(bus).send("cli", &msg).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), send).await {
        Ok(Ok(())) => eprintln!("(announced to the running replicas)"),
        Ok(Err(e)) => eprintln!(
            "warning: {e}; running replicas apply this within their [auth] cache_ttl"
        ),
        Err(_) => eprintln!(
            "warning: the bus did not answer; running replicas apply this within their [auth] cache_ttl"
        ),
    }
}

fn quiet_logs() {
    moat_gateway::logging::init(&LogConfig {
        format: LogFormat::Pretty,
        level: "warn".into(),
    });
}

pub(crate) fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("moat: cannot encode output: {e}"),
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Serve => {
            let cfg = load_serving_config(&cli)?;
            moat_gateway::logging::init(&cfg.log);
            moat_gateway::serve(cfg, ServeOptions::default()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => {
            let cfg = load_serving_config(&cli)?;
            eprintln!("{}: OK", config_path(&cli).display());
            print!(
                "# resolved configuration (defaults filled in, environment applied)\n{}",
                moat_gateway::config::describe::describe(&cfg)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Accounts(cmd) if crate::enforce::handles(cmd) => {
            quiet_logs();
            crate::enforce::accounts(&cli, cmd).await
        }
        Command::Clusters(cmd) => {
            quiet_logs();
            crate::enforce::clusters(&cli, cmd).await
        }
        Command::Accounts(cmd) => {
            quiet_logs();
            let store = open_store(&cli).await?;
            let r = accounts(&cli, &store, cmd).await;
            store.close().await;
            r
        }
        Command::Keys(cmd) => {
            quiet_logs();
            let store = open_store(&cli).await?;
            let r = keys(&cli, &store, cmd).await;
            store.close().await;
            r
        }
        Command::Audit(AuditCmd::Keygen(a)) => crate::audit::keygen(a),
        Command::Audit(cmd) => {
            quiet_logs();
            let store = crate::audit::open_keyed_store(&cli).await?;
            let r = audit(&store, cmd).await;
            store.close().await;
            r
        }
        Command::Replay(a) => {
            moat_gateway::logging::init(&LogConfig {
                format: LogFormat::Pretty,
                level: "info".into(),
            });
            let opts = moat_replay::ReplayOptions {
                traffic: a.traffic.clone(),
                accounts: a.accounts.clone(),
                out: a.out.clone(),
                config: cli.config.clone(),
                snapshots: a.snapshots.clone(),
            };
            let summary = tokio::task::spawn_blocking(move || moat_replay::run(&opts)).await??;
            print_json(&summary);
            Ok(ExitCode::SUCCESS)
        }
        Command::Detect(a) => {
            let cfg = load_serving_config(&cli)?;
            moat_gateway::logging::init(&cfg.log);
            let Some(b) = cfg.bus.clone() else {
                bail!(
                    "moat detect needs a [bus] section in {}",
                    config_path(&cli).display()
                );
            };
            let hold = moat_gateway::config::parse_duration(&a.hold)
                .map_err(|e| anyhow::anyhow!("--hold: {e}"))?;
            if let Some(addr) = a.listen {
                let bound = moat_gateway::metrics::serve_metrics(addr).await?;
                tracing::info!(%bound, "worker metrics on /metrics");
            }
            let opts = moat_worker::WorkerOptions {
                bus: b.bus,
                index: a.index,
                workers: a.workers,
                detect: cfg.detect.clone(),
                hold,
                decisions_out: a.decisions_out.clone(),
                ..moat_worker::WorkerOptions::default()
            };
            let stats = moat_worker::run(opts, moat_gateway::server::shutdown_signal()).await?;
            print_json(&stats);
            Ok(ExitCode::SUCCESS)
        }
        Command::Evidence(a) => {
            quiet_logs();
            crate::evidence::run(&cli, a).await
        }
        Command::Demo(a) => crate::demo::demo(a).await,
        Command::DemoUpstream(a) => crate::demo::demo_upstream(a).await,
        Command::Mark(cmd) => {
            quiet_logs();
            crate::mark::run(&cli, cmd).await
        }
        Command::Verify(a) => {
            quiet_logs();
            crate::verify::run(&cli, a).await
        }
    }
}

fn print_account(a: &Account) {
    let l = &a.limits;
    let lim = |v: Option<u64>| v.map_or("default".to_string(), |v| v.to_string());
    println!(
        "{}  name={:?} tier={} verified={} disabled={} rpm={} tpm={} tpd={} created={}",
        a.id,
        a.name,
        a.tier,
        a.verified,
        a.disabled,
        lim(l.requests_per_minute.map(u64::from)),
        lim(l.tokens_per_minute),
        lim(l.tokens_per_day),
        a.created_at.to_rfc3339()
    );
}

fn print_key(k: &KeyView) {
    println!(
        "{}  account={} status={} expires={} models={} logprobs={} ip_allow={}{}",
        k.id,
        k.account,
        k.status,
        k.expires_at.as_deref().unwrap_or("never"),
        k.models.as_ref().map_or("*".to_string(), |m| m.join(",")),
        k.allow_logprobs,
        if k.ip_allow.is_empty() {
            "*".to_string()
        } else {
            k.ip_allow.join(",")
        },
        k.replaced_by
            .as_ref()
            .map_or(String::new(), |r| format!(" replaced_by={r}")),
    );
}

fn print_new_key(new: &NewKey, json: bool) {
    if json {
        print_json(new);
        return;
    }
    print_key(&new.key);
    println!();
    println!("API key (shown once; store it now, it cannot be recovered):");
    println!("{}", new.secret);
}

async fn accounts(cli: &Cli, store: &Store, cmd: &AccountsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AccountsCmd::Risk(_)
        | AccountsCmd::Allow(_)
        | AccountsCmd::Block(_)
        | AccountsCmd::Challenge(_)
        | AccountsCmd::Unblock(_) => unreachable!("handled in crate::enforce"),
        AccountsCmd::Create(a) => {
            let acct = ops::create_account(
                store,
                CreateAccount {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    tier: a.tier.clone(),
                    email_domain: a.email_domain.clone(),
                    country: a.country.clone(),
                    verified: a.verified,
                    requests_per_minute: a.rpm,
                    tokens_per_minute: a.tpm,
                    tokens_per_day: a.tpd,
                },
            )
            .await?;
            if a.json.json {
                print_json(&acct);
            } else {
                print_account(&acct);
            }
        }
        AccountsCmd::List(j) => {
            let list = store.list_accounts().await?;
            if j.json {
                print_json(&list);
            } else {
                list.iter().for_each(print_account);
            }
        }
        AccountsCmd::Disable { id } | AccountsCmd::Enable { id } => {
            let disable = matches!(cmd, AccountsCmd::Disable { .. });
            let acct = store.set_account_disabled(id, disable).await?;
            print_account(&acct);
            announce(
                cli,
                ControlMessage::AccountChanged {
                    account: id.clone(),
                },
            )
            .await;
        }
        AccountsCmd::SetLimits { id, rpm, tpm, tpd } => {
            let limits = moat_store::AccountLimits {
                requests_per_minute: *rpm,
                tokens_per_minute: *tpm,
                tokens_per_day: *tpd,
            };
            let acct = store.set_account_limits(id, limits).await?;
            print_account(&acct);
            announce(
                cli,
                ControlMessage::AccountChanged {
                    account: id.clone(),
                },
            )
            .await;
        }
        AccountsCmd::Show { id, json } => {
            let Some(acct) = store.get_account(id).await? else {
                bail!("account {id:?} not found");
            };
            let now = Utc::now();
            let keys: Vec<KeyView> = store
                .list_keys(Some(id))
                .await?
                .iter()
                .map(|k| KeyView::new(k, now))
                .collect();
            if json.json {
                print_json(&json!({"account": acct, "keys": keys}));
            } else {
                print_account(&acct);
                for k in &keys {
                    print!("  ");
                    print_key(k);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn keys(cli: &Cli, store: &Store, cmd: &KeysCmd) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    match cmd {
        KeysCmd::Create(a) => {
            let new = ops::create_key(
                store,
                CreateKey {
                    account: a.account.clone(),
                    expires: a.expires.clone(),
                    models: a.models.clone(),
                    allow_logprobs: a.allow_logprobs,
                    ip_allow: a.ip_allow.clone(),
                    name: a.name.clone(),
                },
                now,
            )
            .await?;
            print_new_key(&new, a.json.json);
        }
        KeysCmd::List { account, json } => {
            let list: Vec<KeyView> = store
                .list_keys(account.as_deref())
                .await?
                .iter()
                .map(|k| KeyView::new(k, now))
                .collect();
            if json.json {
                print_json(&list);
            } else {
                list.iter().for_each(print_key);
            }
        }
        KeysCmd::Revoke { id, json } => {
            let k = KeyView::new(&store.revoke_key(id).await?, now);
            if json.json {
                print_json(&k);
            } else {
                print_key(&k);
                println!("revoked");
            }
            announce(cli, ControlMessage::KeyChanged { key_id: id.clone() }).await;
        }
        KeysCmd::Rotate { id, grace, json } => {
            let new = ops::rotate_key(
                store,
                id,
                RotateKey {
                    grace: Some(grace.clone()),
                },
                now,
            )
            .await?;
            if !json.json {
                println!("{id} keeps working for {grace}; its replacement:");
            }
            print_new_key(&new, json.json);
            announce(cli, ControlMessage::KeyChanged { key_id: id.clone() }).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit(store: &Store, cmd: &AuditCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCmd::Verify(j) => {
            let r = store.verify_audit().await?;
            if j.json {
                print_json(&json!({
                    "ok": r.is_ok(), "records": r.records, "last_seq": r.last_seq, "head_hash": r.head_hash,
                    "broken": r.broken.as_ref().map(|b| json!({"seq": b.seq, "reason": b.reason.to_string()})),
                    "bodies_checked": r.bodies_checked, "bodies_unchecked": r.bodies_unchecked,
                    "checkpoints_verified": r.checkpoints_verified,
                }));
            }
            match &r.broken {
                None => {
                    if !j.json {
                        println!(
                            "OK: {} records verified; head {}",
                            r.records,
                            r.head_hash.as_deref().unwrap_or("(empty log)")
                        );
                        println!(
                            "{} bodies matched their digests; {} signed checkpoints verified",
                            r.bodies_checked, r.checkpoints_verified
                        );
                        if r.bodies_unchecked > 0 {
                            println!(
                                "{} encrypted bodies not checked: their key is not configured \
                                 (set [audit.encryption] or MOAT_AUDIT_KEYS)",
                                r.bodies_unchecked
                            );
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(b) => {
                    eprintln!("BROKEN: audit record seq {}: {}", b.seq, b.reason);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCmd::Export(a) => export(store, a).await,
        AuditCmd::Checkpoint(a) => crate::audit::checkpoint(store, a).await,
        AuditCmd::Checkpoints(crate::cli::CheckpointsCmd::Export(a)) => {
            crate::audit::export_checkpoints(store, a).await
        }
        AuditCmd::Import(a) => crate::audit::import(store, a).await,
        AuditCmd::Keygen(a) => crate::audit::keygen(a),
    }
}

/// `--since` / `--until` (RFC 3339 or a duration back from now, e.g. `7d`) as instants.
pub(crate) type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Parses a `--since` / `--until` pair against the current time.
pub(crate) fn time_window(since: Option<&str>, until: Option<&str>) -> anyhow::Result<Window> {
    let now = Utc::now();
    let at = |s: Option<&str>| s.map(|s| ops::parse_since(s, now)).transpose();
    Ok((at(since)?, at(until)?))
}

async fn export(store: &Store, a: &ExportArgs) -> anyhow::Result<ExitCode> {
    let (since, until) = time_window(a.since.as_deref(), a.until.as_deref())?;
    let report = store.export_traffic_report(since, until, &a.out).await?;
    eprintln!(
        "exported {} exchanges to {} (skipped: {} unauthenticated, {} other APIs, {} non-JSON bodies)",
        report.written,
        a.out.display(),
        report.skipped_unauthenticated,
        report.skipped_other_api,
        report.skipped_non_json
    );
    if let Some(p) = &a.accounts_out {
        let n = store.export_accounts(p).await?;
        eprintln!("exported {n} accounts to {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}
