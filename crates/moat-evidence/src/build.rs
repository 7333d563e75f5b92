//! Building a pack from the records of a chain span.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use moat_store::{AuditEntry, ChainSpan, Checkpoint, SpanLink};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    AccountSummary, ActionEvent, DayPoint, EvidencePack, Link, Links, PriceTable, Proof,
    ReasonCount, Sample, Totals, FORMAT,
};

/// Samples shown per account, and in all.
const SAMPLES_PER_ACCOUNT: usize = 2;
const SAMPLES_MAX: usize = 20;
/// Characters of a sample body kept in the sample list (the proof holds them in full).
const SAMPLE_CHARS: usize = 2_000;

/// What a pack covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// The detection cluster asked for, if any.
    pub cluster: Option<String>,
    /// The accounts covered.
    pub accounts: Vec<String>,
    /// Start (inclusive), microseconds since the epoch.
    pub since_us: Option<i64>,
    /// End (exclusive), microseconds since the epoch.
    pub until_us: Option<i64>,
}

impl Selection {
    /// Whether a record belongs to the selection.
    pub fn matches(&self, account: Option<&str>, ts_us: i64) -> bool {
        account.is_some_and(|a| self.accounts.iter().any(|x| x == a))
            && self.since_us.is_none_or(|s| ts_us >= s)
            && self.until_us.is_none_or(|u| ts_us < u)
    }
}

/// Everything [`build`] needs, read from the store by the caller.
#[derive(Clone, Debug)]
pub struct PackInput {
    /// What to cover.
    pub selection: Selection,
    /// Links from the first selected record to the checkpoint (see `Store::audit_span`).
    pub span: ChainSpan,
    /// The checkpoint the span reaches.
    pub checkpoint: Checkpoint,
    /// Stored enforcement overrides of the selected accounts.
    pub overrides: Vec<ActionEvent>,
    /// List prices.
    pub prices: PriceTable,
    /// Clone-verification report, embedded as given.
    pub verify_report: Option<Value>,
    /// Build time.
    pub generated_at: DateTime<Utc>,
}

pub(crate) fn rfc3339(ts_us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(ts_us)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ts_us.to_string())
}

/// The selected records of a span, in chain order.
pub(crate) fn selected<'a>(
    span: &'a ChainSpan,
    sel: &'a Selection,
) -> impl Iterator<Item = &'a AuditEntry> + 'a {
    span.links.iter().filter_map(move |l| match l {
        SpanLink::Row(e) if sel.matches(e.row.account.as_deref(), e.row.ts_us) => Some(&**e),
        _ => None,
    })
}

fn requests_reasoning(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| {
        ["reasoning_effort", "reasoning", "thinking"]
            .iter()
            .any(|k| v.get(k).is_some_and(|x| !x.is_null()))
    })
}

fn add(t: &mut Totals, e: &AuditEntry) {
    let r = &e.row;
    let (input, output) = (r.input_tokens.max(0) as u64, r.output_tokens.max(0) as u64);
    t.exchanges += 1;
    t.served += u64::from((200..300).contains(&r.status));
    t.input_tokens += input;
    t.output_tokens += output;
    if e.request_body.as_deref().is_some_and(requests_reasoning) {
        t.reasoning_output_tokens += output;
    }
}

/// Per-account totals and values, then the grand total; recomputed by [`crate::verify`].
pub(crate) fn totals(
    span: &ChainSpan,
    sel: &Selection,
    prices: &PriceTable,
) -> (BTreeMap<String, (Totals, f64)>, Totals, f64) {
    let mut per: BTreeMap<String, (Totals, f64)> = BTreeMap::new();
    let mut all = Totals::default();
    let mut value = 0.0;
    for e in selected(span, sel) {
        let r = &e.row;
        let v = prices.value(
            r.model.as_deref(),
            r.input_tokens.max(0) as u64,
            r.output_tokens.max(0) as u64,
        );
        let slot = per
            .entry(r.account.clone().unwrap_or_default())
            .or_default();
        add(&mut slot.0, e);
        slot.1 += v;
        add(&mut all, e);
        value += v;
    }
    (per, all, value)
}

const ACTIONS: [&str; 5] = ["allow", "throttle", "degrade", "challenge", "block"];

fn severity(a: &str) -> usize {
    ACTIONS.iter().position(|x| *x == a).unwrap_or(0)
}

fn subnet(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => ip.to_string(),
    }
}

#[derive(Default)]
struct LinkAcc(BTreeMap<String, (BTreeSet<String>, u64)>);

impl LinkAcc {
    fn add(&mut self, value: &str, account: &str) {
        let slot = self.0.entry(value.to_string()).or_default();
        slot.0.insert(account.to_string());
        slot.1 += 1;
    }
    fn finish(self) -> Vec<Link> {
        let mut v: Vec<Link> = self
            .0
            .into_iter()
            .map(|(value, (accounts, exchanges))| Link {
                value,
                accounts: accounts.into_iter().collect(),
                exchanges,
            })
            .collect();
        v.sort_by(|a, b| {
            (b.accounts.len(), b.exchanges)
                .cmp(&(a.accounts.len(), a.exchanges))
                .then_with(|| a.value.cmp(&b.value))
        });
        v
    }
}

/// Everything derived from the selected records' metadata and decisions.
#[derive(Default)]
struct Scan {
    keys: LinkAcc,
    ips: LinkAcc,
    subnets: LinkAcc,
    uas: LinkAcc,
    days: BTreeMap<String, DayPoint>,
    reasons: BTreeMap<String, (u64, BTreeSet<String>, i64)>,
    actions: Vec<ActionEvent>,
    last_action: BTreeMap<String, String>,
    info: BTreeMap<String, AccountSummary>,
    samples: Vec<Sample>,
}

impl Scan {
    fn record(&mut self, e: &AuditEntry) {
        let r = &e.row;
        let account = r.account.clone().unwrap_or_default();
        if let Some(k) = &r.key_id {
            self.keys.add(k, &account);
        }
        self.ips.add(&r.ip, &account);
        self.subnets.add(&subnet(&r.ip), &account);
        self.uas.add(&r.user_agent, &account);
        let ts = rfc3339(r.ts_us);
        let day = self.days.entry(ts[..10].to_string()).or_default();
        day.day = ts[..10].to_string();
        day.requests += 1;
        day.tokens += (r.input_tokens.max(0) + r.output_tokens.max(0)) as u64;
        let info = self.info.entry(account.clone()).or_default();
        if info.first_seen.is_empty() {
            info.first_seen = ts.clone();
            info.max_action = "allow".into();
        }
        info.last_seen = ts.clone();
        let decision: Option<Value> = r
            .decision
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok());
        if let Some(d) = decision {
            let risk = d.get("risk").and_then(Value::as_f64).unwrap_or(0.0);
            info.max_risk = info.max_risk.max(risk);
            if let Some(c) = d.get("cluster").and_then(Value::as_str) {
                if !info.clusters.iter().any(|x| x == c) {
                    info.clusters.push(c.to_string());
                }
            }
            let action = d.get("action").and_then(Value::as_str).unwrap_or("allow");
            if severity(action) > severity(&info.max_action) {
                info.max_action = action.to_string();
            }
            let prev = self.last_action.insert(account.clone(), action.to_string());
            if prev.as_deref().unwrap_or("allow") != action {
                self.actions.push(ActionEvent {
                    ts: ts.clone(),
                    account: account.clone(),
                    action: action.to_string(),
                    source: "decision".into(),
                    seq: Some(r.seq),
                    detail: format!("risk {risk:.3}"),
                });
            }
            for reason in d
                .get("reasons")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(reason) = reason.as_str() {
                    let slot = self.reasons.entry(reason.to_string()).or_insert((
                        0,
                        BTreeSet::new(),
                        r.ts_us,
                    ));
                    slot.0 += 1;
                    slot.1.insert(account.clone());
                }
            }
        }
        let shown = self.samples.iter().filter(|s| s.account == account).count();
        if shown < SAMPLES_PER_ACCOUNT && self.samples.len() < SAMPLES_MAX {
            if let Some(req) = &e.request_body {
                self.samples.push(Sample {
                    seq: r.seq,
                    account,
                    ts,
                    request: req.chars().take(SAMPLE_CHARS).collect(),
                    response: e
                        .response_text
                        .as_ref()
                        .map(|t| t.chars().take(SAMPLE_CHARS).collect()),
                });
            }
        }
    }
}

/// Build the pack.
pub fn build(input: PackInput) -> EvidencePack {
    let PackInput {
        selection,
        span,
        checkpoint,
        overrides,
        prices,
        verify_report,
        generated_at,
    } = input;
    let mut scan = Scan::default();
    for e in selected(&span, &selection) {
        scan.record(e);
    }
    let (per, totals, value) = totals(&span, &selection, &prices);
    let accounts = per
        .into_iter()
        .map(|(account, (t, v))| {
            let info = scan.info.remove(&account).unwrap_or_default();
            AccountSummary {
                account,
                totals: t,
                value: v,
                ..info
            }
        })
        .collect();
    let mut actions = scan.actions;
    actions.extend(overrides);
    actions.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.seq.cmp(&b.seq)));
    let mut reasons: Vec<ReasonCount> = scan
        .reasons
        .into_iter()
        .map(|(reason, (count, accounts, first))| ReasonCount {
            reason,
            count,
            accounts: accounts.into_iter().collect(),
            first: rfc3339(first),
        })
        .collect();
    reasons.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    let first_seq = span.links.first().map_or(checkpoint.seq, |l| match l {
        SpanLink::Row(e) => e.row.seq,
        SpanLink::Leaf { seq, .. } => *seq,
    });
    EvidencePack {
        format: FORMAT.into(),
        generated_at: generated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        selection,
        accounts,
        totals,
        value,
        prices,
        links: Links {
            keys: scan.keys.finish(),
            ips: scan.ips.finish(),
            subnets: scan.subnets.finish(),
            user_agents: scan.uas.finish(),
        },
        timeline: scan.days.into_values().collect(),
        reasons,
        actions,
        samples: scan.samples,
        verify_report,
        proof: Proof {
            first_seq,
            checkpoint,
            span,
        },
    }
}
