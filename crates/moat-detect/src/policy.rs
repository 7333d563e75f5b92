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
use crate::weights::{Feature, FIRST_REQUEST_FEATURE, N_FEATURES};

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
    /// Share of strongly extraction-like requests of any kind.
    ExtractionShare { frac: f64, n: u32 },
    /// `logit_bias` over many distinct token ids.
    ProbeWalk { bits: u32 },
    /// Share of next-token probes.
    Probe { frac: f64, n: u32 },
    /// Extraction intent of the prompts: mean score and the share flagged per intent
    /// (reasoning trace, grader, synthetic data).
    Intent {
        mean: f64,
        flagged: [f64; 3],
        n: u32,
    },
    /// Several independent kinds of evidence agree.
    Concordance { axes: Vec<&'static str> },
    /// A request-level feature (never listed among an account's reasons).
    Request { feature: Feature },
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
            Reason::ExtractionShare { frac, n } => write!(
                f,
                "{} of {n} requests are extraction-style (reasoning traces, native thinking, probing parameters, grader or training-data prompts)",
                pct(*frac)
            ),
            Reason::ProbeWalk { bits } => write!(
                f,
                "logit_bias walks across the vocabulary ({bits} of 64 token-id buckets biased)"
            ),
            Reason::Probe { frac, n } => write!(
                f,
                "{} of {n} requests read the next-token distribution (logprobs with a 1-2 token answer)",
                pct(*frac)
            ),
            Reason::Intent { mean, flagged, n } => {
                const WHAT: [&str; 3] = [
                    "ask for the model's reasoning trace",
                    "use the model as a grader or judge",
                    "ask for synthetic training data",
                ];
                let parts: Vec<String> = flagged
                    .iter()
                    .zip(WHAT)
                    .filter(|(x, _)| **x > 0.0)
                    .map(|(x, w)| format!("{} {w}", pct(*x)))
                    .collect();
                if parts.is_empty() {
                    write!(f, "prompts read as extraction requests (mean intent {mean:.2} over {n} requests)")
                } else {
                    write!(
                        f,
                        "by the intent model, of {n} requests {} (mean intent {mean:.2})",
                        parts.join(", ")
                    )
                }
            }
            Reason::Concordance { axes } => {
                write!(f, "independent kinds of evidence agree: {}", axes.join(", "))
            }
            Reason::Request { feature } => write!(f, "request feature {}", feature.name()),
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
        let mut out: Vec<String> = Vec::with_capacity(max);
        for t in t {
            let r = t.reason.to_string();
            // two features may give the same reason (the quick and the sustained share)
            if !out.contains(&r) {
                out.push(r);
            }
            if out.len() == max {
                break;
            }
        }
        out
    }
}

/// Feature values of one block of evidence (an account, its extraction sub-stream, a
/// principal or a cluster), with the figures its reasons quote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Phi {
    /// Unit-scale value per feature (request-level features are 0 here: see
    /// [`request_features`]).
    pub v: [f64; N_FEATURES],
    n: u32,
    strong_frac: f64,
    mean_reasoning: f64,
    thinking_frac: f64,
    shape_frac: f64,
    grader_frac: f64,
    followup_frac: f64,
    harvest_tokens: f64,
    harvest_hours: f64,
    novel_frac: f64,
    breadth: f64,
    template_frac: f64,
    reasoning_tokens: f64,
    active_hours: u32,
    long_is_ratio: bool,
    ratio: f64,
    out_tokens: u64,
    mean_answer: f64,
    hours_covered: u32,
    flatness: f64,
    interval_s: f64,
    cv: f64,
    young_frac: f64,
    new_ip_frac: f64,
    xlike_frac: f64,
    probe_frac: f64,
    bias_ids: u32,
    intent_mean: f64,
    intent_flagged: [f64; 3],
    axes: Vec<&'static str>,
    cluster: Option<(String, u32, String)>,
}

impl Phi {
    /// The reason a feature's term gives, with this block's figures.
    fn reason(&self, f: Feature) -> Reason {
        let n = self.n;
        match f {
            Feature::Reasoning if self.strong_frac >= 0.25 => Reason::ReasoningTrace {
                frac: self.strong_frac,
                n,
            },
            Feature::Reasoning => Reason::StepByStep {
                strength: self.mean_reasoning,
                n,
            },
            Feature::Thinking => Reason::Thinking {
                frac: self.thinking_frac,
                n,
            },
            Feature::Shape => Reason::Shape {
                frac: self.shape_frac,
                n,
            },
            Feature::Grader => Reason::Grader {
                frac: self.grader_frac,
                n,
            },
            Feature::Conversation => Reason::Conversation {
                frac: self.followup_frac,
            },
            Feature::Harvest => Reason::Harvest {
                tokens: self.harvest_tokens,
                hours: self.harvest_hours,
                novel_frac: self.novel_frac,
                n,
                breadth: self.breadth,
            },
            Feature::OneTemplate => Reason::OneTemplate {
                frac: self.template_frac,
            },
            Feature::TemplatedHarvest => Reason::TemplatedReasoningHarvest {
                tokens: self.reasoning_tokens,
                active_hours: self.active_hours,
            },
            Feature::LongAnswers if self.long_is_ratio => Reason::OutputRatio {
                ratio: self.ratio,
                out_tokens: self.out_tokens,
            },
            Feature::LongAnswers => Reason::LongAnswers {
                mean: self.mean_answer,
            },
            Feature::FlatCadence | Feature::HumanCadence => Reason::Cadence {
                hours: self.hours_covered,
                flatness: self.flatness,
            },
            Feature::Clockwork => Reason::Clockwork {
                interval_s: self.interval_s,
                cv: self.cv,
            },
            Feature::Young => Reason::Young {
                frac: self.young_frac,
            },
            Feature::Unverified => Reason::Unverified,
            Feature::IpChurn => Reason::IpChurn {
                frac: self.new_ip_frac,
            },
            Feature::ExtractionShare | Feature::ExtractionShareSustained => {
                Reason::ExtractionShare {
                    frac: self.xlike_frac,
                    n,
                }
            }
            Feature::ProbeWalk => Reason::ProbeWalk {
                bits: self.bias_ids,
            },
            Feature::Probe => Reason::Probe {
                frac: self.probe_frac,
                n,
            },
            Feature::Intent => Reason::Intent {
                mean: self.intent_mean,
                flagged: self.intent_flagged,
                n,
            },
            Feature::Concordance => Reason::Concordance {
                axes: self.axes.clone(),
            },
            Feature::Cluster => {
                let (label, size, links) = self.cluster.clone().unwrap_or_default();
                Reason::Cluster { label, size, links }
            }
            Feature::RequestTrace
            | Feature::RequestStep
            | Feature::RequestShape
            | Feature::RequestIntent
            | Feature::RequestFollowup => Reason::Request { feature: f },
        }
    }
}

/// Feature values of a block of evidence at event time `now_ms`.
pub fn features_of(e: &Evidence, now_ms: i64, cfg: &DetectConfig) -> Phi {
    let mut p = Phi {
        n: e.n,
        ..Phi::default()
    };
    if e.n == 0 {
        return p;
    }
    let n = f64::from(e.n);
    let conf = |k: f64| n / (n + k);
    let frac = |x: u32| f64::from(x) / n;
    let mut set = |f: Feature, x: f64| p.v[f as usize] = x;

    let fr = f64::from(e.reasoning_sum) / n;
    set(Feature::Reasoning, fr * conf(6.0));
    let ft = frac(e.thinking);
    set(Feature::Thinking, ft * conf(6.0));
    let shape_w = f64::from(e.shape_sum) / n;
    set(Feature::Shape, shape_w * conf(6.0));
    let fg = frac(e.grader);
    set(Feature::Grader, fg * conf(6.0));
    // real conversations and agent loops build on earlier answers
    let fu = frac(e.followup + e.agent).min(1.0);
    set(Feature::Conversation, fu * conf(4.0));
    // volume of harvested answers (single-turn), scaled by breadth, sliding window
    let hl = cfg.rate_half_life_hours * HOUR_MS;
    let h = e.harvest.value_at(now_ms, hl);
    let floor = cfg.harvest_tokens_floor.max(1.0);
    let breadth = topics::breadth(&e.topics);
    if h > floor {
        let span = ((now_ms - e.first_ts) as f64 / (2.0 * HOUR_MS)).clamp(0.5, 1.0);
        let single = (1.0 - fu).powi(2);
        let level = ((h / floor).ln() / 4f64.ln()).min(1.25);
        // narrow traffic (one subject) is what products serve; it only counts fully when
        // it is mostly reasoning-trace or native-thinking harvesting
        let reasoning_harvest = fr >= 0.8 || ft >= 0.5;
        let breadth_factor = if reasoning_harvest {
            1.0
        } else {
            // unknown breadth (unclassified language) counts as fairly broad
            breadth.map_or(0.75, |b| ((b - 0.3) / 0.35).clamp(0.25, 1.0))
        };
        set(Feature::Harvest, level * single * span * breadth_factor);
    }
    // one-template traffic (pipelines, benchmark harnesses) covers a narrow slice
    let ftpl = frac(e.templated);
    set(
        Feature::OneTemplate,
        ((ftpl - 0.8) / 0.15).clamp(0.0, 1.0) * conf(20.0),
    );
    // sustained templated reasoning harvest (a reasoning-eliciting template run around
    // the clock, as opposed to a benchmark run once in a burst)
    let hr = e.reasoning_harvest.value_at(now_ms, hl);
    let active = e.active_hours_48(now_ms);
    if hr > floor {
        let sustained = ((f64::from(active) - 6.0) / 12.0).clamp(0.0, 1.0);
        let level = ((hr / floor).ln() / 4f64.ln()).min(1.25);
        set(
            Feature::TemplatedHarvest,
            level * sustained * (1.0 - fu).powi(2),
        );
    }
    // long answers: output/input token ratio or mean single-turn answer length (one term:
    // both measure the same thing)
    let (ratio_w, ratio) = if e.settled >= 10 && e.in_tokens > 0 {
        let oi = e.out_tokens as f64 / e.in_tokens as f64;
        (((oi - 4.0) / 6.0).clamp(0.0, 1.0), oi)
    } else {
        (0.0, 0.0)
    };
    let (mean_w, mean) = if e.single_settled >= 20 {
        let mean = e.single_out_tokens as f64 / f64::from(e.single_settled);
        (((mean - 450.0) / 600.0).clamp(0.0, 1.0), mean)
    } else {
        (0.0, 0.0)
    };
    set(Feature::LongAnswers, ratio_w.max(mean_w));
    // machine cadence
    let span_h = (e.last_ts - e.first_ts) as f64 / HOUR_MS;
    let fl = e.hours.flatness();
    if span_h >= 36.0 && e.n >= 100 {
        set(Feature::FlatCadence, ((fl - 0.93) / 0.05).clamp(0.0, 1.0));
        set(Feature::HumanCadence, ((0.9 - fl) / 0.1).clamp(0.0, 1.0));
    }
    // clockwork arrivals: a script pacing itself under the limits
    let (interval_s, cv) = e.gap_regularity().unwrap_or((0.0, f64::INFINITY));
    set(Feature::Clockwork, ((0.25 - cv) / 0.15).clamp(0.0, 1.0));
    // account age and verification
    let fy = frac(e.young);
    set(Feature::Young, fy);
    set(Feature::Unverified, frac(e.unverified));
    // rotating client addresses
    let p_new = frac(e.new_ip);
    if e.n >= 20 {
        set(Feature::IpChurn, ((p_new - 0.3) / 0.5).clamp(0.0, 1.0));
    }
    // strongly extraction-like requests of any kind: one share that every recognised
    // extraction style feeds, so a style left out of fitting still counts through it
    let fx = frac(e.xlike);
    set(Feature::ExtractionShare, fx * conf(3.0));
    set(Feature::ExtractionShareSustained, fx * conf(24.0));
    // next-token probing: a bias walking across many token ids, or untemplated probes
    let bias_ids = e.bias_mask.count_ones();
    set(
        Feature::ProbeWalk,
        ((f64::from(bias_ids) - 8.0) / 24.0).clamp(0.0, 1.0),
    );
    let fp = frac(e.probe);
    set(Feature::Probe, fp * conf(6.0));
    let fi = f64::from(e.intent_sum) / n;
    set(Feature::Intent, fi * conf(3.0));

    // concordance: a soft count of the independent kinds of evidence present
    let v = |f: Feature| p.v[f as usize];
    let axes = [
        fx.max(fr).max(fi),
        v(Feature::Probe).max(v(Feature::ProbeWalk)).max(shape_w),
        (v(Feature::Harvest) / 1.25).max(v(Feature::TemplatedHarvest) / 1.25),
        v(Feature::FlatCadence).max(v(Feature::Clockwork)),
        fy.max(frac(e.unverified)),
        v(Feature::IpChurn),
        v(Feature::LongAnswers),
    ];
    let count: f64 = axes.iter().map(|x| x.clamp(0.0, 1.0)).sum();
    p.v[Feature::Concordance as usize] = ((count - 1.0) / 3.0).clamp(0.0, 1.0) * conf(12.0);
    const AXES: [&str; 7] = [
        "extraction-style prompts",
        "probing parameters",
        "harvested volume",
        "machine rhythm",
        "new unverified account",
        "rotating addresses",
        "long answers",
    ];
    p.axes = AXES
        .iter()
        .zip(axes)
        .filter(|(_, x)| *x >= 0.5)
        .map(|(n, _)| *n)
        .collect();
    p.strong_frac = frac(e.reasoning_strong);
    p.mean_reasoning = fr;
    p.thinking_frac = ft;
    p.shape_frac = frac(e.shape);
    p.grader_frac = fg;
    p.followup_frac = fu;
    p.harvest_tokens = h;
    // the hours a harvest counter covers (≈ 1.44 half-lives of the decay)
    p.harvest_hours = cfg.rate_half_life_hours * 1.44;
    p.novel_frac = frac(e.novel);
    p.breadth = breadth.unwrap_or(-1.0);
    p.template_frac = ftpl;
    p.reasoning_tokens = hr;
    p.active_hours = active;
    p.long_is_ratio = ratio_w >= mean_w;
    p.ratio = ratio;
    p.out_tokens = e.out_tokens;
    p.mean_answer = mean;
    p.hours_covered = e.hours.hours_covered(1);
    p.flatness = fl;
    p.interval_s = interval_s;
    p.cv = cv;
    p.young_frac = fy;
    p.new_ip_frac = p_new;
    p.xlike_frac = fx;
    p.probe_frac = fp;
    p.bias_ids = bias_ids;
    p.intent_mean = fi;
    p.intent_flagged = e.intent_flags.map(frac);
    p
}

/// Feature values of a cross-account cluster: its members' pooled evidence plus its size,
/// which counts only when the cluster shares infrastructure or a creation burst (a cluster
/// linked by prompt family alone is scored on its pooled evidence only). `kinds` are the
/// link kinds that built it (see [`crate::cluster`]).
pub fn cluster_features(
    pooled: &Evidence,
    size: u32,
    kinds: u8,
    now_ms: i64,
    cfg: &DetectConfig,
) -> Phi {
    use crate::cluster::{CREATED, INFRA};
    let mut p = features_of(pooled, now_ms, cfg);
    if kinds & (INFRA | CREATED) != 0 {
        p.v[Feature::Cluster as usize] = (f64::from(size).ln() / 4.0).min(1.0);
    }
    p
}

/// Scores feature values with the configured weights; `collect` keeps the terms for
/// reasons (the decision path skips them unless the request is acted on).
pub fn score(p: &Phi, cfg: &DetectConfig, collect: bool) -> Assessment {
    let w = &cfg.weights;
    let mut a = Assessment {
        z: w.bias,
        terms: Vec::new(),
        collect,
    };
    for f in &Feature::ALL[..FIRST_REQUEST_FEATURE] {
        let c = w.of(*f) * p.v[*f as usize];
        if c != 0.0 {
            a.z += c;
            if collect && c.abs() >= 0.05 {
                a.terms.push(Term {
                    weight: c,
                    reason: p.reason(*f),
                });
            }
        }
    }
    a
}

/// Assesses a cross-account cluster at event time `now_ms` (see [`cluster_features`]);
/// the size term applies only once the pooled evidence is already suspicious (log-odds
/// above −1.5). `label` is only called when reasons are collected.
pub fn assess_cluster(
    pooled: &Evidence,
    size: u32,
    kinds: u8,
    label: impl FnOnce() -> String,
    now_ms: i64,
    cfg: &DetectConfig,
    collect: bool,
) -> Assessment {
    let mut p = cluster_features(pooled, size, kinds, now_ms, cfg);
    let size_term = std::mem::take(&mut p.v[Feature::Cluster as usize]);
    let mut ca = score(&p, cfg, collect);
    let bonus = if ca.z > -1.5 {
        cfg.weights.of(Feature::Cluster) * size_term
    } else {
        0.0
    };
    let (label, links) = if collect {
        (label(), crate::cluster::Clusters::describe_kinds(kinds))
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

/// Assesses evidence at event time `now_ms`; `collect` keeps the terms for reasons.
pub fn assess_with(e: &Evidence, now_ms: i64, cfg: &DetectConfig, collect: bool) -> Assessment {
    score(&features_of(e, now_ms, cfg), cfg, collect)
}

/// Request-level feature values of one request (the account-level ones are 0).
pub fn request_features(f: &RequestFeatures) -> [f64; N_FEATURES] {
    let mut v = [0.0; N_FEATURES];
    let trace = f.reasoning >= reasoning::STRONG || f.thinking_budget >= 1024;
    v[Feature::RequestTrace as usize] = f64::from(u8::from(trace));
    v[Feature::RequestStep as usize] =
        f64::from(u8::from(!trace && f.reasoning >= reasoning::MEDIUM));
    v[Feature::RequestShape as usize] = f64::from(u8::from(f.shape.score() >= 1.0 || f.grader));
    v[Feature::RequestIntent as usize] = f64::from(f.intent);
    v[Feature::RequestFollowup as usize] = f64::from(u8::from(f.followup || f.agent));
    v
}

/// Request-level adjustment of the account/cluster log-odds: extraction-typical requests
/// weigh more, follow-ups in real conversations less.
pub fn request_adjustment(f: &RequestFeatures, cfg: &DetectConfig) -> f64 {
    let v = request_features(f);
    Feature::ALL[FIRST_REQUEST_FEATURE..]
        .iter()
        .map(|x| cfg.weights.of(*x) * v[*x as usize])
        .sum()
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

/// The highest action an account may get next, given the highest it has had: its first
/// restriction is at most `degrade`, so a campaign is degraded before it is challenged or
/// blocked (the restriction itself is not delayed); after that the risk decides.
pub fn rung_ceiling(top: Action) -> Action {
    if top >= Action::Degrade {
        Action::Block
    } else {
        Action::Degrade
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
