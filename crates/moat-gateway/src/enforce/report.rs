//! Operator views: accounts ranked by risk (with reasons, cluster, current action and
//! override) and the cross-account clusters they form. Used by the admin API
//! (`/admin/v1/risk`, `/admin/v1/clusters`) and by `moat accounts risk` / `moat clusters`.

use std::collections::{BTreeMap, HashMap};

use moat_detect::{AccountReport, Action};
use moat_store::EnforcementOverride;
use serde::{Deserialize, Serialize};

/// One account in the risk ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRisk {
    /// Account id.
    pub account: String,
    /// Risk in [0, 1].
    pub risk: f64,
    /// `extraction`, `suspicious`, `benign` or `allowlisted`.
    pub verdict: String,
    /// Cluster id, if linked to other accounts.
    pub cluster: Option<String>,
    /// Human-readable reasons.
    pub reasons: Vec<String>,
    /// The ladder's current action for the account (`None`: not seen since start).
    pub action: Option<String>,
    /// Persisted override, if any.
    #[serde(rename = "override")]
    pub pinned: Option<EnforcementOverride>,
}

/// One cluster of linked accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    /// Cluster id (`cl_N`).
    pub cluster: String,
    /// Highest member risk.
    pub max_risk: f64,
    /// Members, riskiest first.
    pub accounts: Vec<AccountRisk>,
}

/// Ranks `reports` by risk (highest first), adding actions and overrides.
pub fn rank(
    reports: Vec<AccountReport>,
    actions: &HashMap<String, Action>,
    overrides: Vec<EnforcementOverride>,
) -> Vec<AccountRisk> {
    let mut pinned: HashMap<String, EnforcementOverride> = overrides
        .into_iter()
        .map(|o| (o.account.clone(), o))
        .collect();
    let mut out: Vec<AccountRisk> = reports
        .into_iter()
        .map(|r| AccountRisk {
            action: actions.get(&r.account).map(|a| a.as_str().to_string()),
            pinned: pinned.remove(&r.account),
            account: r.account,
            risk: r.risk,
            verdict: r.verdict,
            cluster: r.cluster,
            reasons: r.reasons,
        })
        .collect();
    // Overridden accounts the engine has not seen (since start) are listed too.
    out.extend(pinned.into_values().map(|o| AccountRisk {
        account: o.account.clone(),
        risk: 0.0,
        verdict: "unknown".into(),
        cluster: None,
        reasons: Vec::new(),
        action: Some(o.action.clone()),
        pinned: Some(o),
    }));
    out.sort_by(|a, b| b.risk.total_cmp(&a.risk).then(a.account.cmp(&b.account)));
    out
}

/// Groups ranked accounts by cluster, riskiest cluster first.
pub fn clusters(ranked: &[AccountRisk]) -> Vec<ClusterView> {
    let mut by: BTreeMap<String, Vec<AccountRisk>> = BTreeMap::new();
    for a in ranked {
        if let Some(c) = &a.cluster {
            by.entry(c.clone()).or_default().push(a.clone());
        }
    }
    let mut out: Vec<ClusterView> = by
        .into_iter()
        .map(|(cluster, accounts)| ClusterView {
            max_risk: accounts.iter().map(|a| a.risk).fold(0.0, f64::max),
            cluster,
            accounts,
        })
        .collect();
    out.sort_by(|a, b| {
        b.max_risk
            .total_cmp(&a.max_risk)
            .then(a.cluster.cmp(&b.cluster))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(a: &str, risk: f64, cluster: Option<&str>) -> AccountReport {
        AccountReport {
            account: a.into(),
            risk,
            verdict: "benign".into(),
            cluster: cluster.map(str::to_string),
            reasons: vec![],
        }
    }

    #[test]
    fn ranks_and_groups() {
        let ranked = rank(
            vec![
                rep("a", 0.1, None),
                rep("b", 0.9, Some("cl_1")),
                rep("c", 0.5, Some("cl_1")),
            ],
            &HashMap::from([("b".to_string(), Action::Degrade)]),
            vec![],
        );
        assert_eq!(
            ranked
                .iter()
                .map(|r| r.account.as_str())
                .collect::<Vec<_>>(),
            ["b", "c", "a"]
        );
        assert_eq!(ranked[0].action.as_deref(), Some("degrade"));
        let cl = clusters(&ranked);
        assert_eq!(cl.len(), 1);
        assert_eq!(cl[0].accounts.len(), 2);
        assert_eq!(cl[0].max_risk, 0.9);
    }
}
