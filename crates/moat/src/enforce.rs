//! Enforcement commands: `moat accounts risk|allow|block|challenge|unblock` and
//! `moat clusters list|show`.
//!
//! Overrides are written to the database; a running gateway picks them up within
//! `[auth] cache_ttl` (the admin API applies them at once). The risk and cluster views come
//! from the live engine through the admin API when `[server] admin_listen` and an admin token
//! are configured and the gateway answers; otherwise from the persisted state: the decisions
//! recorded in the audit log (highest risk per account, its reasons, the last cluster).

use std::collections::HashMap;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use moat_detect::AccountReport;
use moat_gateway::enforce::report::{clusters as group, rank, AccountRisk, ClusterView};
use moat_store::Store;
use serde_json::Value;

use crate::cli::{AccountsCmd, Cli};
use crate::commands::{load_config, open_store, print_json};

/// `moat accounts risk`
#[derive(Debug, Args)]
pub struct RiskArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Show at most N accounts.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Read the persisted state (audit log) even when the gateway's admin API answers.
    #[arg(long)]
    pub offline: bool,
}

/// `moat accounts allow|block|challenge|unblock`
#[derive(Debug, Args)]
pub struct OverrideArgs {
    /// Account id.
    pub id: String,
    /// Note kept with the override (and in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
}

/// `moat clusters …`
#[derive(Debug, Subcommand)]
pub enum ClustersCmd {
    /// Clusters of linked accounts, riskiest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Read the persisted state even when the admin API answers.
        #[arg(long)]
        offline: bool,
    },
    /// One cluster and its accounts.
    Show {
        /// Cluster id (`cl_N`).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Read the persisted state even when the admin API answers.
        #[arg(long)]
        offline: bool,
    },
}

/// Whether `cmd` is one of the enforcement subcommands of `moat accounts`.
pub fn handles(cmd: &AccountsCmd) -> bool {
    matches!(
        cmd,
        AccountsCmd::Risk(_)
            | AccountsCmd::Allow(_)
            | AccountsCmd::Block(_)
            | AccountsCmd::Challenge(_)
            | AccountsCmd::Unblock(_)
    )
}

/// Runs an enforcement subcommand of `moat accounts`.
pub async fn accounts(cli: &Cli, cmd: &AccountsCmd) -> anyhow::Result<ExitCode> {
    let store = open_store(cli).await?;
    let r = match cmd {
        AccountsCmd::Risk(a) => risk(cli, &store, a).await,
        AccountsCmd::Allow(a) => pin(cli, &store, a, Some("allow")).await,
        AccountsCmd::Block(a) => pin(cli, &store, a, Some("block")).await,
        AccountsCmd::Challenge(a) => pin(cli, &store, a, Some("challenge")).await,
        AccountsCmd::Unblock(a) => pin(cli, &store, a, None).await,
        _ => Ok(ExitCode::FAILURE),
    };
    store.close().await;
    r
}

async fn pin(
    cli: &Cli,
    store: &Store,
    a: &OverrideArgs,
    action: Option<&str>,
) -> anyhow::Result<ExitCode> {
    match action {
        Some(action) => {
            let o = store
                .set_enforcement(&a.id, action, "operator", a.reason.as_deref())
                .await?;
            print_json(&o);
        }
        None => {
            if store.get_account(&a.id).await?.is_none() {
                anyhow::bail!("account {:?} not found", a.id);
            }
            let had = store.clear_enforcement(&a.id).await?;
            println!(
                "{}: {}",
                a.id,
                if had {
                    "override lifted"
                } else {
                    "no override"
                }
            );
        }
    }
    crate::commands::announce(
        cli,
        moat_bus::ControlMessage::OverrideChanged {
            account: a.id.clone(),
        },
    )
    .await;
    Ok(ExitCode::SUCCESS)
}

/// `GET path` on the configured admin API; `None` when it is not configured or not reachable.
async fn admin_get(cli: &Cli, path: &str) -> Option<Value> {
    let cfg = load_config(cli).ok()?;
    let addr = cfg.server.admin_listen?;
    let token = cfg.server.admin_token?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let url = format!("http://{}:{}{path}", host, addr.port());
    let resp = reqwest::Client::new()
        .get(url)
        .bearer_auth(token.expose())
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// Risk per account from the decisions recorded in the audit log.
async fn persisted(store: &Store) -> anyhow::Result<Vec<AccountRisk>> {
    let mut best: HashMap<String, AccountReport> = HashMap::new();
    let mut order = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_audit(after, 5000).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, rec) in page {
            let (Some(account), Some(d)) = (rec.account, rec.decision) else {
                continue;
            };
            let risk = d.get("risk").and_then(Value::as_f64).unwrap_or(0.0);
            let cluster = d.get("cluster").and_then(Value::as_str).map(str::to_string);
            let reasons: Vec<String> = d
                .get("reasons")
                .and_then(|r| serde_json::from_value(r.clone()).ok())
                .unwrap_or_default();
            let e = best.entry(account.clone()).or_insert_with(|| {
                order.push(account.clone());
                AccountReport {
                    account,
                    risk: -1.0,
                    verdict: "from audit log".into(),
                    cluster: None,
                    reasons: Vec::new(),
                }
            });
            if risk > e.risk {
                e.risk = risk;
                e.reasons = reasons;
            }
            if cluster.is_some() {
                e.cluster = cluster;
            }
        }
    }
    let reports = order.into_iter().filter_map(|a| best.remove(&a)).collect();
    Ok(rank(
        reports,
        &HashMap::new(),
        store.list_enforcement().await?,
    ))
}

async fn ranked(
    cli: &Cli,
    store: &Store,
    offline: bool,
) -> anyhow::Result<(Vec<AccountRisk>, &'static str)> {
    if !offline {
        if let Some(v) = admin_get(cli, "/admin/v1/risk").await {
            if let Some(a) = v.get("accounts") {
                return Ok((serde_json::from_value(a.clone())?, "live engine"));
            }
        }
    }
    Ok((persisted(store).await?, "audit log"))
}

async fn risk(cli: &Cli, store: &Store, a: &RiskArgs) -> anyhow::Result<ExitCode> {
    let (mut r, source) = ranked(cli, store, a.offline).await?;
    r.truncate(a.limit);
    if a.json {
        print_json(&serde_json::json!({"source": source, "accounts": r}));
        return Ok(ExitCode::SUCCESS);
    }
    println!("# source: {source}");
    println!(
        "{:<24} {:>6} {:<11} {:<9} {:<10} reasons",
        "account", "risk", "verdict", "action", "cluster"
    );
    for x in &r {
        let action = x
            .pinned
            .as_ref()
            .map(|o| format!("{}*", o.action))
            .or_else(|| x.action.clone())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<24} {:>6.3} {:<11} {:<9} {:<10} {}",
            x.account,
            x.risk,
            x.verdict,
            action,
            x.cluster.as_deref().unwrap_or("-"),
            x.reasons.join("; ")
        );
    }
    println!("(* = override)");
    Ok(ExitCode::SUCCESS)
}

fn print_cluster(c: &ClusterView) {
    println!(
        "{}  max risk {:.3}  {} accounts",
        c.cluster,
        c.max_risk,
        c.accounts.len()
    );
    for a in &c.accounts {
        println!(
            "  {:<24} {:>6.3} {}",
            a.account,
            a.risk,
            a.reasons.join("; ")
        );
    }
}

/// Runs `moat clusters …`.
pub async fn clusters(cli: &Cli, cmd: &ClustersCmd) -> anyhow::Result<ExitCode> {
    let store = open_store(cli).await?;
    let (offline, json, id) = match cmd {
        ClustersCmd::List { json, offline } => (*offline, *json, None),
        ClustersCmd::Show { id, json, offline } => (*offline, *json, Some(id)),
    };
    let r = ranked(cli, &store, offline).await;
    store.close().await;
    let cl = group(&r?.0);
    match id {
        None => {
            if json {
                print_json(&serde_json::json!({"clusters": cl}));
            } else if cl.is_empty() {
                println!("no clusters");
            } else {
                cl.iter().for_each(print_cluster);
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(id) => match cl.iter().find(|c| &c.cluster == id) {
            Some(c) if json => {
                print_json(c);
                Ok(ExitCode::SUCCESS)
            }
            Some(c) => {
                print_cluster(c);
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("moat: cluster {id:?} not found");
                Ok(ExitCode::FAILURE)
            }
        },
    }
}
