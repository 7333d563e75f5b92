//! Scoring: turns evidence counters into a risk (log-odds sum of signal terms) with
//! human-readable reasons, and risk into an action on the graduated ladder.
//!
//! Every signal contributes a bounded term; no single family of evidence can push an
//! account past the degrade threshold on its own except in extreme cases, so benign
//! customers that look unusual on one axis (a benchmark run, a nightly batch, a tutoring
//! app asking for step-by-step math) stay below it.

use crate::config::DetectConfig;
use crate::event::Action;
use crate::evidence::Evidence;
use crate::features::RequestFeatures;
use crate::signals::{reasoning, topics};

/// Log-odds of an account with no evidence at all.
pub const PRIOR_Z: f64 = -4.5;

const HOUR_MS: f64 = 3_600_000.0;

/// Why a term contributes (formatted lazily: most decisions never print reasons). Field
/// names say what they hold: `frac` a share of the requests, `n` the request count,
/// `tokens` harvested answer tokens, `mean` a mean answer length in tokens.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Share of requests asking for the full reasoning trace.
    ReasoningTrace { frac: f64, n: u32 },
    /// Average strength of step-by-step reasoning requests.
    StepByStep { strength: f64, n: u32 },
    /// Share of requests asking for native reasoning.
    Thinking { frac: f64, n: u32 },
    /// Share of harvest-shaped requests.
    Shape { frac: f64, n: u32 },
    /// Share of grader requests.
    Grader { frac: f64, n: u32 },
    /// Share of conversation / agent follow-ups (negative evidence).
    Conversation { frac: f64 },
    /// Sliding count of novel single-turn prompts.
    Harvest {
        tokens: f64,
        hours: f64,
        novel_frac: f64,
        n: u32,
        breadth: f64,
    },
    /// Sustained harvest through a reasoning-eliciting template.
    TemplatedReasoningHarvest { tokens: f64, active_hours: u32 },
    /// Output/input token ratio.
    OutputRatio { ratio: f64, out_tokens: u64 },
    /// Mean single-turn answer length.
    LongAnswers { mean: f64 },
    /// Flat round-the-clock arrivals.
    Cadence { hours: u32, flatness: f64 },
    /// Share of requests repeating one of the account's templates (negative evidence).
    OneTemplate { frac: f64 },
    /// Regular inter-arrival gaps.
    Clockwork { interval_s: f64, cv: f64 },
    /// Share of requests from new accounts.
    Young { frac: f64 },
    /// Unverified account(s).
    Unverified,
    /// Share of requests from addresses new to the account.
    IpChurn { frac: f64 },
    /// Cross-account cluster.
    Cluster {
        label: String,
        size: u32,
        links: String,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::ReasoningTrace { frac, n } => {
                write!(f, "{} of {n} requests ask for the model's full reasoning trace", pct(*frac))
            }
            Reason::StepByStep { strength, n } => write!(
                f,
                "requests ask for step-by-step reasoning (average strength {strength:.2} over {n} requests)"
            ),
            Reason::Thinking { frac, n } => write!(
                f,
                "{} of {n} requests ask for native reasoning (thinking budget / reasoning effort)",
                pct(*frac)
            ),
            Reason::Shape { frac, n } => write!(
                f,
                "{} of {n} requests use harvest-style parameters (huge max_tokens, n>1, logprobs, logit_bias)",
                pct(*frac)
            ),
            Reason::Grader { frac, n } => {
                write!(f, "{} of {n} requests use the model as a grader / reward model", pct(*frac))
            }
            Reason::Conversation { frac } => {
                write!(f, "{} of requests continue a conversation or agent loop", pct(*frac))
            }
            Reason::Harvest { tokens, hours, novel_frac, n, breadth } if *breadth < 0.0 => write!(
                f,
                "{:.0}k answer tokens harvested by single-turn prompts in the last {hours:.0} hours, none building on earlier answers ({} of {n} requests untemplated)",
                tokens / 1000.0,
                pct(*novel_frac)
            ),
            Reason::Harvest { tokens, hours, novel_frac, n, breadth } => write!(
                f,
                "{:.0}k answer tokens harvested by single-turn prompts in the last {hours:.0} hours, none building on earlier answers ({} of {n} requests untemplated, topic breadth {breadth:.2})",
                tokens / 1000.0,
                pct(*novel_frac)
            ),
            Reason::TemplatedReasoningHarvest {
                tokens,
                active_hours,
            } => write!(
                f,
                "{:.0}k answer tokens harvested through a reasoning-eliciting template, active {active_hours} of the last 48 hours",
                tokens / 1000.0
            ),
            Reason::OutputRatio { ratio, out_tokens } => write!(
                f,
                "answers are {ratio:.1}x longer than prompts ({out_tokens} output tokens harvested)"
            ),
            Reason::LongAnswers { mean } => write!(f, "single-turn answers average {mean:.0} tokens"),
            Reason::Cadence { hours, flatness } => write!(
                f,
                "arrivals flat around the clock ({hours}/24 hours active, flatness {flatness:.2})"
            ),
            Reason::OneTemplate { frac } => {
                write!(f, "{} of requests follow the account's own templates", pct(*frac))
            }
            Reason::Clockwork { interval_s, cv } => write!(
                f,
                "requests arrive like clockwork (every {interval_s:.1} s, variation {:.0}%)",
                100.0 * cv
            ),
            Reason::Young { frac } => write!(f, "{} of requests come from a newly created account", pct(*frac)),
            Reason::Unverified => f.write_str("unverified account"),
            Reason::IpChurn { frac } => write!(
                f,
                "{} of requests come from a new IP address (rotating proxies)",
                pct(*frac)
            ),
            Reason::Cluster { label, size, links } => {
                write!(f, "cluster {label}: {size} accounts share {links}")
            }
        }
    }
}

/// One contribution to the risk.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// Log-odds contribution.
    pub weight: f64,
    /// Why.
    pub reason: Reason,
}

/// Risk assessment of an account or a cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assessment {
    /// Total log-odds.
    pub z: f64,
    /// Contributing terms (positive and negative); empty unless collected.
    pub terms: Vec<Term>,
    collect: bool,
}

/// Logistic function.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}

impl Assessment {
    fn add(&mut self, weight: f64, reason: Reason) {
        if weight.abs() >= 0.05 {
            self.z += weight;
            if self.collect {
                self.terms.push(Term { weight, reason });
            }
        }
    }

    /// Adds a cross-account cluster term (always listed first among the reasons).
    pub fn add_cluster(&mut self, bonus: f64, label: String, size: u32, links: String) {
        self.z += bonus;
        if self.collect {
            self.terms.push(Term {
                weight: bonus,
                reason: Reason::Cluster { label, size, links },
            });
        }
    }

    /// Whether reasons are being collected.
    pub fn collects(&self) -> bool {
        self.collect
    }

    /// Risk in [0, 1].
    pub fn risk(&self) -> f64 {
        sigmoid(self.z)
    }

    /// Reasons of the `max` largest positive terms, largest first (cluster first).
    pub fn reasons(&self, max: usize) -> Vec<String> {
        let mut t: Vec<&Term> = self
            .terms
            .iter()
            .filter(|t| t.weight >= 0.4 || matches!(t.reason, Reason::Cluster { .. }))
            .collect();
        t.sort_by(|a, b| {
            let ka = matches!(a.reason, Reason::Cluster { .. });
            let kb = matches!(b.reason, Reason::Cluster { .. });
            kb.cmp(&ka).then(b.weight.total_cmp(&a.weight))
        });
        t.into_iter()
            .take(max)
            .map(|t| t.reason.to_string())
            .collect()
    }
}

/// Assesses a cross-account cluster at event time `now_ms`: its members' pooled evidence,
/// plus a size term when the pooled evidence is already suspicious and the cluster shares
/// infrastructure or a creation burst (a cluster linked by prompt family alone is scored on
/// its pooled evidence only). `kinds` are the link kinds that built it (see
/// [`crate::cluster`]); `label` is only called when reasons are collected.
pub fn assess_cluster(
    pooled: &Evidence,
    size: u32,
    kinds: u8,
    label: impl FnOnce() -> String,
    now_ms: i64,
    cfg: &DetectConfig,
    collect: bool,
) -> Assessment {
    use crate::cluster::{Clusters, CREATED, INFRA};
    let mut ca = assess_with(pooled, now_ms, cfg, collect);
    let bonus = if ca.z > -1.5 && kinds & (INFRA | CREATED) != 0 {
        (0.5 * f64::from(size).ln()).min(2.0)
    } else {
        0.0
    };
    let (label, links) = if collect {
        (label(), Clusters::describe_kinds(kinds))
    } else {
        (String::new(), String::new())
    };
    ca.add_cluster(bonus, label, size, links);
    ca
}

/// Assesses evidence at event time `now_ms`, with reasons.
pub fn assess(e: &Evidence, now_ms: i64, cfg: &DetectConfig) -> Assessment {
    assess_with(e, now_ms, cfg, true)
}

/// Assesses evidence at event time `now_ms`; `collect` keeps the terms for reasons (the
/// decision path skips them unless the request is acted on).
pub fn assess_with(e: &Evidence, now_ms: i64, cfg: &DetectConfig, collect: bool) -> Assessment {
    let mut a = Assessment {
        z: PRIOR_Z,
        terms: Vec::new(),
        collect,
    };
    if e.n == 0 {
        return a;
    }
    let n = f64::from(e.n);
    let conf = |k: f64| n / (n + k);
    let frac = |x: u32| f64::from(x) / n;

    // reasoning-trace elicitation (prompt text)
    let fr = f64::from(e.reasoning_sum) / n;
    let fs = frac(e.reasoning_strong);
    let why = if fs >= 0.25 {
        Reason::ReasoningTrace { frac: fs, n: e.n }
    } else {
        Reason::StepByStep {
            strength: fr,
            n: e.n,
        }
    };
    a.add(3.0 * fr * conf(6.0), why);
    // native reasoning parameters
    let ft = frac(e.thinking);
    a.add(2.0 * ft * conf(6.0), Reason::Thinking { frac: ft, n: e.n });
    // harvest-shaped parameters
    let fsh = frac(e.shape);
    let shape_w = f64::from(e.shape_sum) / n;
    a.add(
        2.0 * shape_w * conf(6.0),
        Reason::Shape { frac: fsh, n: e.n },
    );
    // model as grader / reward model
    let fg = frac(e.grader);
    a.add(2.5 * fg * conf(6.0), Reason::Grader { frac: fg, n: e.n });
    // real conversations and agent loops build on earlier answers
    let fu = frac(e.followup + e.agent).min(1.0);
    a.add(-3.0 * fu * conf(4.0), Reason::Conversation { frac: fu });
    // volume of harvested answers (single-turn), scaled by breadth, sliding window
    let hl = cfg.rate_half_life_hours * HOUR_MS;
    let h = e.harvest.value_at(now_ms, hl);
    let floor = cfg.harvest_tokens_floor.max(1.0);
    if h > floor {
        let span = ((now_ms - e.first_ts) as f64 / (2.0 * HOUR_MS)).clamp(0.5, 1.0);
        let single = (1.0 - fu).powi(2);
        let level = ((h / floor).ln() / 4f64.ln()).min(1.25);
        let breadth = topics::breadth(&e.topics);
        // narrow traffic (one subject) is what products serve; it only counts fully when
        // it is mostly reasoning-trace or native-thinking harvesting
        let reasoning_harvest = fr >= 0.8 || ft >= 0.5;
        let breadth_factor = if reasoning_harvest {
            1.0
        } else {
            // unknown breadth (unclassified language) counts as fairly broad
            breadth.map_or(0.75, |b| ((b - 0.3) / 0.35).clamp(0.25, 1.0))
        };
        a.add(
            4.0 * level * single * span * breadth_factor,
            Reason::Harvest {
                tokens: h,
                hours: cfg.rate_half_life_hours * 1.44,
                novel_frac: frac(e.novel),
                n: e.n,
                breadth: breadth.unwrap_or(-1.0),
            },
        );
    }
    // one-template traffic (pipelines, benchmark harnesses) covers a narrow slice
    let ftpl = frac(e.templated);
    a.add(
        -0.75 * ((ftpl - 0.8) / 0.15).clamp(0.0, 1.0) * conf(20.0),
        Reason::OneTemplate { frac: ftpl },
    );
    // sustained templated reasoning harvest (a reasoning-eliciting template run around
    // the clock, as opposed to a benchmark run once in a burst)
    let hr = e.reasoning_harvest.value_at(now_ms, hl);
    if hr > floor {
        let active = e.active_hours_48(now_ms);
        let sustained = ((f64::from(active) - 6.0) / 12.0).clamp(0.0, 1.0);
        let level = ((hr / floor).ln() / 4f64.ln()).min(1.25);
        a.add(
            3.0 * level * sustained * (1.0 - fu).powi(2),
            Reason::TemplatedReasoningHarvest {
                tokens: hr,
                active_hours: active,
            },
        );
    }
    // long answers: output/input token ratio or mean single-turn answer length (one term:
    // both measure the same thing)
    let ratio_w = if e.settled >= 10 && e.in_tokens > 0 {
        let oi = e.out_tokens as f64 / e.in_tokens as f64;
        (((oi - 4.0) / 6.0).clamp(0.0, 1.0), oi)
    } else {
        (0.0, 0.0)
    };
    let mean_w = if e.single_settled >= 20 {
        let mean = e.single_out_tokens as f64 / f64::from(e.single_settled);
        (((mean - 450.0) / 600.0).clamp(0.0, 1.0), mean)
    } else {
        (0.0, 0.0)
    };
    if ratio_w.0 >= mean_w.0 {
        a.add(
            ratio_w.0,
            Reason::OutputRatio {
                ratio: ratio_w.1,
                out_tokens: e.out_tokens,
            },
        );
    } else {
        a.add(mean_w.0, Reason::LongAnswers { mean: mean_w.1 });
    }
    // machine cadence
    let span_h = (e.last_ts - e.first_ts) as f64 / HOUR_MS;
    if span_h >= 36.0 && e.n >= 100 {
        let fl = e.hours.flatness();
        let w = 1.5 * ((fl - 0.93) / 0.05).clamp(0.0, 1.0) - ((0.9 - fl) / 0.1).clamp(0.0, 1.0);
        a.add(
            w,
            Reason::Cadence {
                hours: e.hours.hours_covered(1),
                flatness: fl,
            },
        );
    }
    // clockwork arrivals: a script pacing itself under the limits
    if let Some((mean, cv)) = e.gap_regularity() {
        a.add(
            0.75 * ((0.25 - cv) / 0.15).clamp(0.0, 1.0),
            Reason::Clockwork {
                interval_s: mean,
                cv,
            },
        );
    }
    // account age and verification
    let fy = frac(e.young);
    a.add(0.7 * fy, Reason::Young { frac: fy });
    a.add(0.4 * frac(e.unverified), Reason::Unverified);
    // rotating client addresses
    if e.n >= 20 {
        let p = frac(e.new_ip);
        a.add(
            ((p - 0.3) / 0.5).clamp(0.0, 1.0),
            Reason::IpChurn { frac: p },
        );
    }
    a
}

/// Request-level adjustment of the account/cluster log-odds: extraction-typical requests
/// weigh more, follow-ups in real conversations less.
pub fn request_adjustment(f: &RequestFeatures) -> f64 {
    let mut z = 0.0;
    if f.reasoning >= reasoning::STRONG || f.thinking_budget >= 1024 {
        z += 0.4;
    } else if f.reasoning >= reasoning::MEDIUM {
        z += 0.2;
    }
    if f.shape.score() >= 1.0 || f.grader {
        z += 0.2;
    }
    if f.followup || f.agent {
        z -= 1.0;
    }
    z
}

/// The rung of the ladder a risk reaches (before the per-request rule of [`action_for`]).
pub fn ladder_action(risk: f64, cfg: &DetectConfig) -> Action {
    if risk >= cfg.block_at {
        Action::Block
    } else if risk >= cfg.challenge_at {
        Action::Challenge
    } else if risk >= cfg.degrade_at {
        Action::Degrade
    } else if risk >= cfg.throttle_at {
        Action::Throttle
    } else {
        Action::Allow
    }
}

/// Maps a risk to an action. Requests that neither look extraction-like nor are
/// single-turn prompts (follow-ups in a real conversation) are at most throttled.
pub fn action_for(risk: f64, f: &RequestFeatures, cfg: &DetectConfig) -> Action {
    let a = ladder_action(risk, cfg);
    if a.is_restrictive() && !f.extraction_like() && !f.single_turn() {
        Action::Throttle
    } else {
        a
    }
}
