//! Per-request features: everything the engine needs from one request, computed by a pure
//! function so callers (replay) can compute them in parallel before feeding the engine in order.

use crate::event::{Api, Event};
use crate::request_view::RequestView;
use crate::signals::{lexicon, reasoning, shape, skeleton};
use crate::text::{extract_text, hash_str, ip_key, subnet_key};
use moat_intent::{Intent, IntentModel};

/// The extraction intent a request was flagged for by the intent model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IntentKind {
    /// Asks for the model's reasoning trace.
    Reasoning,
    /// Uses the model as a grader / judge / reward model.
    Grader,
    /// Asks for synthetic training data.
    Synth,
}

impl From<Intent> for IntentKind {
    fn from(i: Intent) -> Self {
        match i {
            Intent::Reasoning => IntentKind::Reasoning,
            Intent::Grader => IntentKind::Grader,
            Intent::Synth => IntentKind::Synth,
        }
    }
}

/// Features of one request. Build with [`RequestFeatures::extract`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RequestFeatures {
    /// Reasoning-elicitation phrase weight (0, weak, medium or strong; see `signals::reasoning`).
    pub reasoning: f32,
    /// Native reasoning budget requested (Anthropic thinking / OpenAI reasoning effort), tokens.
    pub thinking_budget: u32,
    /// Harvest-shape flags.
    pub shape: shape::Shape,
    /// Requested `max_tokens` (0 if absent).
    pub max_tokens: u32,
    /// `logit_bias` token ids folded into a 64-bit mask (see `shape::logit_bias_mask`).
    pub bias_mask: u64,
    /// Extraction intent of the prompt from the intent model (`moat-intent`), in [0, 1]:
    /// the highest of its reasoning-trace, grader and synthetic-data scores.
    pub intent: f32,
    /// Which intent the model flagged (at or above its operating threshold), if any.
    pub intent_flag: Option<IntentKind>,
    /// Model-as-grader prompt.
    pub grader: bool,
    /// Earlier assistant turns present: a conversation that builds on previous answers.
    pub followup: bool,
    /// Tool results present: an agent loop.
    pub agent: bool,
    /// Hash of the system text (0 when none or shorter than 40 characters: generic one-line
    /// prompts such as "You are a helpful assistant." are shared by unrelated customers).
    pub system_key: u64,
    /// Hash of the tool definitions (0 when none).
    pub tools_key: u64,
    /// Skeleton prefix key of the last user turn.
    pub prefix_key: u64,
    /// Skeleton suffix key of the last user turn.
    pub suffix_key: u64,
    /// Hash of the whole last user turn (exact repeats).
    pub content_key: u64,
    /// Topic bin of the last user turn (see `signals::topics`).
    pub topic: u8,
    /// Length of the last user turn in characters.
    pub user_chars: u32,
    /// /24 (or /48) network of the client address (hashed).
    pub subnet_key: u64,
    /// Client address (hashed).
    pub ip_key: u64,
    /// End-user id sent by the client (`safety_identifier`, `user` or `metadata.user_id`),
    /// hashed; 0 if none.
    pub end_user_key: u64,
    /// The *principal* behind the request inside its account: API key, end-user id and
    /// user agent together (hashed). Set by [`RequestFeatures::with_client`]; 0 if not.
    pub principal_key: u64,
}

impl RequestFeatures {
    /// Extracts the features of an event's request.
    pub fn extract(ev: &Event) -> Self {
        Self::from_parts(ev.api, &ev.request, &ev.ip).with_client(&ev.key, &ev.user_agent)
    }

    /// Same as [`RequestFeatures::extract`], from borrowed parts.
    pub fn from_parts(api: Api, req: &serde_json::Value, ip: &str) -> Self {
        Self::from_view(api, &RequestView::from_value(req), ip)
    }

    /// Features from a typed view of the request body (fastest path: replay parses
    /// the traffic line straight into a [`RequestView`]).
    pub fn from_view(api: Api, req: &RequestView<'_>, ip: &str) -> Self {
        let rt = extract_text(api, req);
        let sys_scan = lexicon::scan(&rt.system, false);
        let user_scan = lexicon::scan(&rt.last_user, true);
        let reasoning = sys_scan.reasoning.max(user_scan.reasoning);
        let grader = sys_scan.grader_phrases >= 2 || user_scan.grader_phrases >= 2;
        let (prefix_key, suffix_key) = skeleton::skeleton_keys(&rt.last_user);
        let model = IntentModel::embedded();
        let scores = model.score(&rt.system, &rt.last_user);
        let flagged = model.flagged(&scores);
        let intent_flagged = !flagged.is_empty();
        let intent = match flagged.first() {
            Some(&(k, p)) => Some((IntentKind::from(k), p)),
            None => Intent::ALL
                .into_iter()
                .map(|k| (IntentKind::from(k), scores.get(k)))
                .max_by(|a, b| a.1.total_cmp(&b.1)),
        };
        let system_key = if rt.system.trim().chars().count() >= 40 {
            hash_str(rt.system.trim()) | 1
        } else {
            0
        };
        let mut tools_key = 0u64;
        for name in req
            .tools
            .iter()
            .flatten()
            .filter_map(|t| {
                t.name
                    .as_deref()
                    .or(t.function.as_ref().and_then(|f| f.name.as_deref()))
            })
            .chain(
                req.functions
                    .iter()
                    .flatten()
                    .filter_map(|f| f.name.as_deref()),
            )
        {
            tools_key = (tools_key.rotate_left(7) ^ hash_str(name)) | 1;
        }
        RequestFeatures {
            reasoning,
            thinking_budget: reasoning::native_reasoning(req),
            shape: shape::shape(req),
            max_tokens: shape::max_tokens(req),
            bias_mask: shape::logit_bias_mask(req),
            intent: intent.map_or(0.0, |(_, p)| p),
            intent_flag: intent.map(|(k, _)| k).filter(|_| intent_flagged),
            grader,
            followup: rt.assistant_turns > 0,
            agent: rt.tool_results > 0,
            system_key,
            tools_key,
            prefix_key,
            suffix_key,
            content_key: hash_str(&rt.last_user) | 1,
            topic: user_scan.topic,
            user_chars: rt.last_user.chars().count().min(u32::MAX as usize) as u32,
            subnet_key: subnet_key(ip),
            ip_key: ip_key(ip),
            end_user_key: req
                .safety_identifier
                .as_deref()
                .or(req.user.as_deref())
                .or(req.metadata.as_ref().and_then(|m| m.user_id.as_deref()))
                .map_or(0, |u| hash_str(u) | 1),
            principal_key: 0,
        }
    }

    /// Sets the principal (API key, end user, user agent) of the request. A
    /// distiller hidden behind a reseller's key, or a leaked key used from elsewhere, is
    /// then also scored on its own traffic.
    pub fn with_client(mut self, key: &str, user_agent: &str) -> Self {
        let mut h = hash_str(key);
        h = (h.rotate_left(13) ^ hash_str(user_agent)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h = (h.rotate_left(13) ^ self.end_user_key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.principal_key = h | 1;
        self
    }

    /// Whether the request itself carries extraction-typical content or shape
    /// (reasoning elicitation, native thinking, harvest shape, grader use).
    pub fn extraction_like(&self) -> bool {
        self.reasoning >= reasoning::MEDIUM
            || self.thinking_budget >= 1024
            || self.shape.any()
            || self.grader
            || self.intent_flag.is_some()
    }

    /// Whether the request is strongly extraction-like: a full reasoning trace, native
    /// thinking, sampling/probing parameters (n>1, logprobs, logit_bias, max_tokens 1) or
    /// a grader prompt.
    pub fn strongly_extraction_like(&self) -> bool {
        self.reasoning >= reasoning::STRONG
            || self.thinking_budget >= 1024
            || self.shape.score() >= 1.0
            || self.grader
            || self.intent_flag.is_some()
    }

    /// Whether the request reads the next-token distribution: log-probabilities with an
    /// answer of at most two tokens (`max_tokens` absent counts as unbounded). A fixed
    /// `logit_bias` with a one-token answer is a classifier, not a probe; a bias that walks the
    /// vocabulary is caught across requests (`Evidence::bias_mask`).
    pub fn probe(&self) -> bool {
        self.shape.has(shape::Shape::LOGPROBS) && (1..=2).contains(&self.max_tokens)
    }

    /// Whether the request is a single-turn prompt (no earlier answers, no tool results).
    pub fn single_turn(&self) -> bool {
        !self.followup && !self.agent
    }
}
