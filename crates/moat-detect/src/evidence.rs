//! Aggregatable evidence counters, kept per account and per cluster.
//!
//! Everything here is a fixed-size counter, so an account costs the same memory after
//! ten requests or ten million; a cluster's evidence is the sum of its members'.

use crate::cadence::HourHistogram;
use crate::decay::Decayed;
use crate::event::Outcome;
use crate::features::RequestFeatures;
use crate::signals::reasoning;
use crate::signals::topics::TOPICS;

/// Per-request facts that depend on the account's own history (computed by the engine).
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// The prompt repeats a skeleton the account already used (template).
    pub templated: bool,
    /// The client address was not among the account's recent addresses.
    pub new_ip: bool,
    /// The account was younger than `new_account_days` at this request.
    pub young: bool,
    /// The account is not verified.
    pub unverified: bool,
}

/// What kind of request a settled response belonged to.
#[derive(Debug, Clone, Copy, Default)]
pub struct SettleKind {
    /// Single-turn prompt (no earlier answers, no tool results).
    pub single_turn: bool,
    /// Untemplated single-turn prompt.
    pub novel: bool,
    /// Templated single-turn prompt that asks for reasoning (medium phrase or stronger,
    /// or native thinking).
    pub templated_reasoning: bool,
}

/// Evidence counters (serialisable: detector workers ship them in account summaries).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Evidence {
    /// Requests seen.
    pub n: u32,
    /// Sum of reasoning-elicitation phrase weights.
    pub reasoning_sum: f32,
    /// Requests with a strong reasoning-trace phrase.
    pub reasoning_strong: u32,
    /// Requests asking for native reasoning (thinking budget ≥ 1024 / reasoning effort).
    pub thinking: u32,
    /// Requests with a harvest shape (huge max_tokens, n>1, logprobs, logit_bias, max_tokens 1).
    pub shape: u32,
    /// Sum of harvest-shape weights (see `Shape::score`).
    pub shape_sum: f32,
    /// Requests with several completions (`n > 1`) or log-probabilities.
    pub sampling: u32,
    /// Model-as-grader requests.
    pub grader: u32,
    /// Requests that continue a conversation (earlier answers in context).
    pub followup: u32,
    /// Agent-loop requests (tool results in context).
    pub agent: u32,
    /// Single-turn requests whose skeleton is new for the account (breadth).
    pub novel: u32,
    /// Requests repeating one of the account's skeletons.
    pub templated: u32,
    /// Requests sent while the account was new.
    pub young: u32,
    /// Requests from unverified accounts.
    pub unverified: u32,
    /// Requests from an address not among the account's recent ones.
    pub new_ip: u32,
    /// Responses settled.
    pub settled: u32,
    /// Prompt tokens of settled responses.
    pub in_tokens: u64,
    /// Completion tokens of settled responses.
    pub out_tokens: u64,
    /// Completion tokens of settled single-turn responses.
    pub single_out_tokens: u64,
    /// Settled single-turn responses.
    pub single_settled: u32,
    /// Hour-of-day arrival histogram.
    pub hours: HourHistogram,
    /// First arrival.
    pub first_ts: i64,
    /// Last arrival.
    pub last_ts: i64,
    /// Decayed sum of harvested answer tokens: output tokens beyond the prompt's length,
    /// over untemplated single-turn requests (sliding harvest volume).
    pub harvest: Decayed,
    /// Decayed sum of harvested answer tokens of templated reasoning requests.
    pub reasoning_harvest: Decayed,
    /// Bit `i` set: the account was active `i` hours before `last_hour`.
    pub active_hours: u64,
    /// Hour index (ms / 3.6e6) of the latest activity.
    pub last_hour: i64,
    /// Inter-arrival gaps seen (for regularity).
    pub gap_n: u32,
    /// Sum of inter-arrival gaps, seconds.
    pub gap_sum: f32,
    /// Sum of squared inter-arrival gaps, seconds².
    pub gap_sq_sum: f32,
    /// Topic histogram of single-turn prompts (breadth).
    pub topics: [u16; TOPICS],
    /// Strongly extraction-like requests of any kind (reasoning trace, native thinking,
    /// sampling/probing parameters, grader use, extraction intent).
    pub xlike: u32,
    /// Untemplated requests probing the next-token distribution (log-probabilities or a
    /// `logit_bias` with an answer of at most two tokens).
    pub probe: u32,
    /// Union of the requests' `logit_bias` token-id masks.
    pub bias_mask: u64,
    /// Sum of the requests' extraction-intent scores.
    pub intent_sum: f32,
    /// Requests the intent model flagged, per intent (reasoning trace, grader, synthetic
    /// data).
    pub intent_flags: [u32; 3],
}

impl Evidence {
    /// Adds one request.
    pub fn observe(&mut self, ts_ms: i64, f: &RequestFeatures, cx: &Context) {
        if self.n == 0 || ts_ms < self.first_ts {
            self.first_ts = ts_ms;
        }
        if self.n > 0 && ts_ms >= self.last_ts {
            // gaps above a day are pauses, not rhythm
            let gap = ((ts_ms - self.last_ts) as f32 / 1000.0).min(86_400.0);
            self.gap_n += 1;
            self.gap_sum += gap;
            self.gap_sq_sum += gap * gap;
        }
        self.last_ts = self.last_ts.max(ts_ms);
        self.n += 1;
        self.reasoning_sum += f.reasoning;
        self.reasoning_strong += u32::from(f.reasoning >= reasoning::STRONG);
        self.thinking += u32::from(f.thinking_budget >= 1024);
        self.shape += u32::from(f.shape.any());
        // native thinking needs a large max_tokens: do not count that twice
        let shape_score = if f.thinking_budget >= 1024
            && f.shape.0 == crate::signals::shape::Shape::HUGE_MAX_TOKENS
        {
            0.0
        } else {
            f.shape.score()
        };
        self.shape_sum += shape_score;
        self.sampling += u32::from(f.shape.has(
            crate::signals::shape::Shape::MULTI_SAMPLE | crate::signals::shape::Shape::LOGPROBS,
        ));
        self.grader += u32::from(f.grader);
        self.xlike += u32::from(f.strongly_extraction_like());
        self.probe += u32::from(f.probe() && !cx.templated);
        self.bias_mask |= f.bias_mask;
        self.intent_sum += f.intent;
        if let Some(k) = f.intent_flag {
            self.intent_flags[k as usize] += 1;
        }
        self.followup += u32::from(f.followup);
        self.agent += u32::from(f.agent);
        let novel = f.single_turn() && !cx.templated;
        self.novel += u32::from(novel);
        self.templated += u32::from(cx.templated);
        self.young += u32::from(cx.young);
        self.unverified += u32::from(cx.unverified);
        self.new_ip += u32::from(cx.new_ip);
        self.hours.observe(ts_ms);
        self.mark_hour(ts_ms.div_euclid(3_600_000));
        if f.single_turn() {
            let t = usize::from(f.topic).min(TOPICS - 1);
            self.topics[t] = self.topics[t].saturating_add(1);
        }
    }

    /// Adds one settled response (of the request observed last).
    /// `novel` says whether that request was an untemplated single-turn prompt: only those
    /// feed the sliding harvest volume (templated batch generation does not).
    pub fn settle(&mut self, out: &Outcome, kind: SettleKind, half_life_ms: f64) {
        let SettleKind {
            single_turn,
            novel,
            templated_reasoning,
        } = kind;
        if out.status >= 400 {
            return;
        }
        self.settled += 1;
        self.in_tokens += out.input_tokens;
        self.out_tokens += out.output_tokens;
        if single_turn {
            self.single_settled += 1;
            self.single_out_tokens += out.output_tokens;
            let excess = out.output_tokens.saturating_sub(out.input_tokens);
            if novel && excess > 0 {
                self.harvest.add(self.last_ts, excess as f64, half_life_ms);
            }
            if templated_reasoning && excess > 0 {
                self.reasoning_harvest
                    .add(self.last_ts, excess as f64, half_life_ms);
            }
        }
    }

    fn mark_hour(&mut self, h: i64) {
        if self.active_hours == 0 || h > self.last_hour {
            let shift = if self.active_hours == 0 {
                64
            } else {
                h - self.last_hour
            };
            self.active_hours = if shift >= 64 {
                0
            } else {
                self.active_hours << shift
            };
            self.last_hour = h;
        }
        let back = self.last_hour - h;
        if (0..64).contains(&back) {
            self.active_hours |= 1 << back;
        }
    }

    /// Mean and coefficient of variation of the inter-arrival gaps (None before 50 gaps).
    pub fn gap_regularity(&self) -> Option<(f64, f64)> {
        if self.gap_n < 50 {
            return None;
        }
        let n = f64::from(self.gap_n);
        let mean = f64::from(self.gap_sum) / n;
        if mean < 1.0 {
            return None;
        }
        let var = (f64::from(self.gap_sq_sum) / n - mean * mean).max(0.0);
        Some((mean, var.sqrt() / mean))
    }

    /// Distinct active hours among the 48 before `now_ms`.
    pub fn active_hours_48(&self, now_ms: i64) -> u32 {
        let now_h = now_ms.div_euclid(3_600_000);
        let age = now_h - self.last_hour;
        if self.active_hours == 0 || age >= 48 {
            return 0;
        }
        let window = 48 - age.max(0) as u32;
        let mask = if window >= 64 {
            u64::MAX
        } else {
            (1u64 << window) - 1
        };
        (self.active_hours & mask).count_ones()
    }

    /// This evidence without `part` (a subset of the same requests, e.g. the extraction
    /// sub-stream). Counters subtract; the activity ring and time span stay.
    pub fn minus(&self, part: &Evidence, half_life_ms: f64) -> Evidence {
        let mut r = self.clone();
        r.n = r.n.saturating_sub(part.n);
        r.reasoning_sum = (r.reasoning_sum - part.reasoning_sum).max(0.0);
        r.reasoning_strong = r.reasoning_strong.saturating_sub(part.reasoning_strong);
        r.thinking = r.thinking.saturating_sub(part.thinking);
        r.shape = r.shape.saturating_sub(part.shape);
        r.shape_sum = (r.shape_sum - part.shape_sum).max(0.0);
        r.sampling = r.sampling.saturating_sub(part.sampling);
        r.grader = r.grader.saturating_sub(part.grader);
        r.xlike = r.xlike.saturating_sub(part.xlike);
        r.probe = r.probe.saturating_sub(part.probe);
        // a mask cannot subtract: the part's token ids are taken out altogether
        r.bias_mask &= !part.bias_mask;
        r.intent_sum = (r.intent_sum - part.intent_sum).max(0.0);
        for (a, b) in r.intent_flags.iter_mut().zip(part.intent_flags) {
            *a = a.saturating_sub(b);
        }
        r.followup = r.followup.saturating_sub(part.followup);
        r.agent = r.agent.saturating_sub(part.agent);
        r.novel = r.novel.saturating_sub(part.novel);
        r.templated = r.templated.saturating_sub(part.templated);
        r.young = r.young.saturating_sub(part.young);
        r.unverified = r.unverified.saturating_sub(part.unverified);
        r.new_ip = r.new_ip.saturating_sub(part.new_ip);
        r.settled = r.settled.saturating_sub(part.settled);
        r.in_tokens = r.in_tokens.saturating_sub(part.in_tokens);
        r.out_tokens = r.out_tokens.saturating_sub(part.out_tokens);
        r.single_out_tokens = r.single_out_tokens.saturating_sub(part.single_out_tokens);
        r.single_settled = r.single_settled.saturating_sub(part.single_settled);
        for (a, b) in r.hours.0.iter_mut().zip(part.hours.0.iter()) {
            *a = a.saturating_sub(*b);
        }
        for (a, b) in r.topics.iter_mut().zip(part.topics.iter()) {
            *a = a.saturating_sub(*b);
        }
        r.gap_n = r.gap_n.saturating_sub(part.gap_n);
        r.gap_sum = (r.gap_sum - part.gap_sum).max(0.0);
        r.gap_sq_sum = (r.gap_sq_sum - part.gap_sq_sum).max(0.0);
        r.harvest.subtract(&part.harvest, half_life_ms);
        r.reasoning_harvest
            .subtract(&part.reasoning_harvest, half_life_ms);
        r
    }

    /// Adds another account's (or cluster's) evidence.
    pub fn merge(&mut self, o: &Evidence, half_life_ms: f64) {
        if o.n == 0 {
            return;
        }
        self.first_ts = if self.n == 0 {
            o.first_ts
        } else {
            self.first_ts.min(o.first_ts)
        };
        self.last_ts = self.last_ts.max(o.last_ts);
        self.n += o.n;
        self.reasoning_sum += o.reasoning_sum;
        self.reasoning_strong += o.reasoning_strong;
        self.thinking += o.thinking;
        self.shape += o.shape;
        self.shape_sum += o.shape_sum;
        self.sampling += o.sampling;
        self.grader += o.grader;
        self.xlike += o.xlike;
        self.probe += o.probe;
        self.bias_mask |= o.bias_mask;
        self.intent_sum += o.intent_sum;
        for (a, b) in self.intent_flags.iter_mut().zip(o.intent_flags) {
            *a += b;
        }
        self.followup += o.followup;
        self.agent += o.agent;
        self.novel += o.novel;
        self.templated += o.templated;
        self.young += o.young;
        self.unverified += o.unverified;
        self.new_ip += o.new_ip;
        self.settled += o.settled;
        self.in_tokens += o.in_tokens;
        self.out_tokens += o.out_tokens;
        self.single_out_tokens += o.single_out_tokens;
        self.single_settled += o.single_settled;
        self.hours.merge(&o.hours);
        self.harvest.merge(&o.harvest, half_life_ms);
        self.reasoning_harvest
            .merge(&o.reasoning_harvest, half_life_ms);
        if o.active_hours != 0 {
            let (mut mine, mut theirs) = (self.active_hours, o.active_hours);
            let top = if mine == 0 {
                o.last_hour
            } else {
                self.last_hour.max(o.last_hour)
            };
            let d_mine = top - self.last_hour;
            let d_theirs = top - o.last_hour;
            mine = if mine == 0 || d_mine >= 64 {
                0
            } else {
                mine << d_mine
            };
            theirs = if d_theirs >= 64 {
                0
            } else {
                theirs << d_theirs
            };
            self.active_hours = mine | theirs;
            self.last_hour = top;
        }
        for (a, b) in self.topics.iter_mut().zip(o.topics.iter()) {
            *a = a.saturating_add(*b);
        }
    }
}
