//! The scoring model: named account- and request-level features and their log-odds
//! weights.
//!
//! The weights are data, not code. The defaults are fitted on generated traffic
//! (`research/redteam`, `research/fit`: a logistic model with a sign constraint per
//! feature, every strategy left out in turn) and embedded from `model/weights.json`; a
//! `[detect.weights]` table of `moat.toml` may override any of them (unknown names are
//! rejected). See `docs/detection.md` for what each feature measures.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Account-level and request-level features. Each has a unit scale (roughly 0 to 1, a
/// few up to 1.25); its weight says how much log-odds one unit is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(usize)]
pub enum Feature {
    /// Mean reasoning-elicitation phrase weight (weak 0.2, medium 0.6, strong 1).
    Reasoning,
    /// Share of requests asking for native reasoning.
    Thinking,
    /// Mean harvest-shape weight (sampling/probing parameters 1, huge `max_tokens` ½).
    Shape,
    /// Share of grader / reward-model requests.
    Grader,
    /// Share of conversation follow-ups and agent steps (negative evidence).
    Conversation,
    /// Harvested answer volume of untemplated single-turn prompts, scaled by breadth.
    Harvest,
    /// Share of requests repeating the account's own templates beyond 80 % (negative).
    OneTemplate,
    /// Sustained harvest through a reasoning-eliciting template.
    TemplatedHarvest,
    /// Long answers (output/input ratio or mean single-turn answer length).
    LongAnswers,
    /// Flat round-the-clock arrivals.
    FlatCadence,
    /// A human day-night rhythm (negative evidence).
    HumanCadence,
    /// Regular inter-arrival gaps.
    Clockwork,
    /// Share of requests sent while the account was new.
    Young,
    /// Share of requests from an unverified account.
    Unverified,
    /// Share of requests from new addresses beyond 30 %.
    IpChurn,
    /// Share of strongly extraction-like requests of any kind, quick to build up.
    ExtractionShare,
    /// Share of strongly extraction-like requests of any kind, slow to build up (needs
    /// more requests before it counts).
    ExtractionShareSustained,
    /// `logit_bias` walking across the vocabulary (many distinct token ids).
    ProbeWalk,
    /// Share of untemplated next-token probes (log-probabilities or a bias, ≤ 2 tokens).
    Probe,
    /// Mean extraction-intent score of the prompts (intent model).
    Intent,
    /// How many independent kinds of evidence agree (content, probing parameters, volume,
    /// machine rhythm, a new unverified account, rotating addresses, long answers): a benign
    /// product that looks like extraction on one axis stays low, a campaign rarely does.
    Concordance,
    /// Size of a cross-account cluster that shares infrastructure or a creation burst.
    Cluster,
    /// This request asks for a full reasoning trace or native thinking.
    RequestTrace,
    /// This request asks for step-by-step reasoning (medium phrase).
    RequestStep,
    /// This request has sampling/probing parameters or is a grader prompt.
    RequestShape,
    /// This request's extraction-intent score.
    RequestIntent,
    /// This request continues a conversation or an agent loop (negative evidence).
    RequestFollowup,
}

/// Number of features.
pub const N_FEATURES: usize = Feature::RequestFollowup as usize + 1;

/// The first request-level feature; the ones before it are account-level.
pub const FIRST_REQUEST_FEATURE: usize = Feature::RequestTrace as usize;

impl Feature {
    /// Every feature, in index order.
    pub const ALL: [Feature; N_FEATURES] = [
        Feature::Reasoning,
        Feature::Thinking,
        Feature::Shape,
        Feature::Grader,
        Feature::Conversation,
        Feature::Harvest,
        Feature::OneTemplate,
        Feature::TemplatedHarvest,
        Feature::LongAnswers,
        Feature::FlatCadence,
        Feature::HumanCadence,
        Feature::Clockwork,
        Feature::Young,
        Feature::Unverified,
        Feature::IpChurn,
        Feature::ExtractionShare,
        Feature::ExtractionShareSustained,
        Feature::ProbeWalk,
        Feature::Probe,
        Feature::Intent,
        Feature::Concordance,
        Feature::Cluster,
        Feature::RequestTrace,
        Feature::RequestStep,
        Feature::RequestShape,
        Feature::RequestIntent,
        Feature::RequestFollowup,
    ];

    /// The feature's name in `weights.json` and `[detect.weights]`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Reasoning => "reasoning",
            Feature::Thinking => "thinking",
            Feature::Shape => "shape",
            Feature::Grader => "grader",
            Feature::Conversation => "conversation",
            Feature::Harvest => "harvest",
            Feature::OneTemplate => "one_template",
            Feature::TemplatedHarvest => "templated_harvest",
            Feature::LongAnswers => "long_answers",
            Feature::FlatCadence => "flat_cadence",
            Feature::HumanCadence => "human_cadence",
            Feature::Clockwork => "clockwork",
            Feature::Young => "young",
            Feature::Unverified => "unverified",
            Feature::IpChurn => "ip_churn",
            Feature::ExtractionShare => "extraction_share",
            Feature::ExtractionShareSustained => "extraction_share_sustained",
            Feature::ProbeWalk => "probe_walk",
            Feature::Probe => "probe",
            Feature::Intent => "intent",
            Feature::Concordance => "concordance",
            Feature::Cluster => "cluster",
            Feature::RequestTrace => "request_trace",
            Feature::RequestStep => "request_step",
            Feature::RequestShape => "request_shape",
            Feature::RequestIntent => "request_intent",
            Feature::RequestFollowup => "request_followup",
        }
    }

    /// Whether the feature is evidence against extraction (its weight is ≤ 0).
    pub fn negative(self) -> bool {
        matches!(
            self,
            Feature::Conversation
                | Feature::OneTemplate
                | Feature::HumanCadence
                | Feature::RequestFollowup
        )
    }

    /// The feature with this name.
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Log-odds weights of the features plus the prior (`bias`: an account with no evidence).
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// Log-odds with every feature at 0.
    pub bias: f64,
    /// Weight per feature, indexed by `Feature as usize`.
    pub w: [f64; N_FEATURES],
}

const EMBEDDED: &str = include_str!("../model/weights.json");

impl Default for Weights {
    fn default() -> Self {
        static DEFAULT: OnceLock<Weights> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                let map: BTreeMap<String, f64> =
                    serde_json::from_str(EMBEDDED).expect("embedded model/weights.json is JSON");
                Weights::from_map(&Weights::zero(), &map)
                    .expect("embedded model/weights.json names known features")
            })
            .clone()
    }
}

impl Weights {
    /// All weights 0 and a bias of 0.
    pub fn zero() -> Weights {
        Weights {
            bias: 0.0,
            w: [0.0; N_FEATURES],
        }
    }

    /// The weight of one feature.
    pub fn of(&self, f: Feature) -> f64 {
        self.w[f as usize]
    }

    /// `base` with the named entries of `map` replaced (`bias` or a feature name).
    pub fn from_map(base: &Weights, map: &BTreeMap<String, f64>) -> Result<Weights, String> {
        let mut w = base.clone();
        for (k, v) in map {
            if !v.is_finite() {
                return Err(format!("weight {k:?} is not a finite number"));
            }
            if k == "bias" {
                w.bias = *v;
            } else {
                let f = Feature::from_name(k).ok_or_else(|| {
                    format!(
                        "unknown feature {k:?} (known: bias, {})",
                        Feature::ALL.map(Feature::name).join(", ")
                    )
                })?;
                w.w[f as usize] = *v;
            }
        }
        Ok(w)
    }

    /// Named weights (`bias` and every feature).
    pub fn to_map(&self) -> BTreeMap<String, f64> {
        let mut m: BTreeMap<String, f64> = Feature::ALL
            .iter()
            .map(|f| (f.name().to_string(), self.w[*f as usize]))
            .collect();
        m.insert("bias".to_string(), self.bias);
        m
    }
}

impl Serialize for Weights {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Weights {
    /// A partial table: names it leaves out keep their embedded default.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, f64>::deserialize(d)?;
        Weights::from_map(&Weights::default(), &map).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_rejected() {
        for f in Feature::ALL {
            assert_eq!(Feature::from_name(f.name()), Some(f));
            assert_eq!(Feature::ALL[f as usize], f);
        }
        let w = Weights::default();
        let back: Weights = serde_json::from_value(serde_json::to_value(&w).unwrap()).unwrap();
        assert_eq!(back, w);
        let err = serde_json::from_str::<Weights>(r#"{"no_such_feature": 1.0}"#).unwrap_err();
        assert!(err.to_string().contains("unknown feature"), "{err}");
    }

    #[test]
    fn a_partial_table_keeps_the_other_defaults() {
        let w: Weights = serde_json::from_str(r#"{"grader": 9.5}"#).unwrap();
        let d = Weights::default();
        assert_eq!(w.of(Feature::Grader), 9.5);
        assert_eq!(w.bias, d.bias);
        assert_eq!(w.of(Feature::Harvest), d.of(Feature::Harvest));
    }

    #[test]
    fn embedded_weights_respect_the_sign_of_each_feature() {
        let d = Weights::default();
        for f in Feature::ALL {
            if f.negative() {
                assert!(
                    d.of(f) <= 0.0,
                    "{} is evidence against extraction",
                    f.name()
                );
            } else {
                assert!(d.of(f) >= 0.0, "{} is evidence for extraction", f.name());
            }
        }
    }
}
