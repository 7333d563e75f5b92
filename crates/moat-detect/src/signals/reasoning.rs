//! Chain-of-thought / reasoning-trace elicitation, in several languages.
//!
//! Three tiers of phrases, matched case-insensitively in the system text and the last user
//! turn. *Strong* phrases ask the model to expose its internal reasoning ("write out your
//! complete internal reasoning", "thought process", "chain of thought"); *medium* ones ask
//! for explicit step-by-step reasoning ("think step by step", "reason carefully"); *weak*
//! ones are ordinary tutoring language ("step by step", "show your work", and their
//! translations). Benchmarks and
//! tutoring apps use weak/medium phrasing all the time, so only the strong tier weighs much
//! on its own; the policy combines the share of such requests with other evidence.
//!
//! Native reasoning requests count too: Anthropic `thinking` budgets and OpenAI
//! `reasoning_effort` (see [`native_reasoning`]).

use serde_json::Value;

use crate::request_view::RequestView;

/// Weight of a strong phrase.
pub const STRONG: f32 = 1.0;
/// Weight of a medium phrase.
pub const MEDIUM: f32 = 0.6;
/// Weight of a weak phrase.
pub const WEAK: f32 = 0.2;

pub(crate) const PHRASES: &[(&str, f32)] = &[
    // English, strong: ask for the hidden reasoning itself
    ("internal reasoning", STRONG),
    ("thought process", STRONG),
    ("thinking process", STRONG),
    ("chain of thought", STRONG),
    ("chain-of-thought", STRONG),
    ("reasoning trace", STRONG),
    ("reasoning process", STRONG),
    ("all of your reasoning", STRONG),
    ("all your reasoning", STRONG),
    ("full reasoning", STRONG),
    ("complete reasoning", STRONG),
    ("entire reasoning", STRONG),
    ("every intermediate step", STRONG),
    ("every single step", STRONG),
    ("as if thinking aloud", STRONG),
    ("think aloud", STRONG),
    ("thinking aloud", STRONG),
    ("think out loud", STRONG),
    ("inner monologue", STRONG),
    ("scratchpad", STRONG),
    ("<think>", STRONG),
    ("do not skip any step", STRONG),
    ("don't skip any step", STRONG),
    // English, medium: explicit step-by-step reasoning requests
    ("think step by step", MEDIUM),
    ("think step-by-step", MEDIUM),
    ("reason step by step", MEDIUM),
    ("step-by-step reasoning", MEDIUM),
    ("step by step reasoning", MEDIUM),
    ("reason carefully", MEDIUM),
    ("explain your reasoning", MEDIUM),
    ("show your reasoning", MEDIUM),
    ("explain your approach in detail", MEDIUM),
    ("explaining each one", MEDIUM),
    ("think through the problem", MEDIUM),
    ("let's think", MEDIUM),
    ("intermediate steps", MEDIUM),
    // English, weak: ordinary tutoring / benchmark phrasing
    ("step by step", WEAK),
    ("step-by-step", WEAK),
    ("show your work", WEAK),
    ("show the work", WEAK),
    ("walk me through", WEAK),
    ("explain why", WEAK),
    // French
    ("raisonnement complet", STRONG),
    ("processus de réflexion", STRONG),
    ("raisonnement interne", STRONG),
    ("étape par étape", WEAK),
    // Spanish / Portuguese / Italian
    ("proceso de pensamiento", STRONG),
    ("razonamiento completo", STRONG),
    ("razonamiento interno", STRONG),
    ("paso a paso", WEAK),
    ("processo de pensamento", STRONG),
    ("raciocínio completo", STRONG),
    ("passo a passo", WEAK),
    ("passo dopo passo", WEAK),
    ("ragionamento completo", STRONG),
    // German
    ("denkprozess", STRONG),
    ("gedankengang", STRONG),
    ("schritt für schritt", WEAK),
    ("schritt-für-schritt", WEAK),
    // Russian
    ("ход рассуждений", STRONG),
    ("ход мыслей", STRONG),
    ("шаг за шагом", WEAK),
    ("пошагово", WEAK),
    // Chinese
    ("思考过程", STRONG),
    ("推理过程", STRONG),
    ("思维链", STRONG),
    ("一步一步", WEAK),
    ("逐步推理", MEDIUM),
    ("逐步", WEAK),
    // Japanese
    ("思考過程", STRONG),
    ("推論過程", STRONG),
    ("段階的に", WEAK),
    ("ステップバイステップ", WEAK),
    // Korean
    ("사고 과정", STRONG),
    ("추론 과정", STRONG),
    ("단계별로", WEAK),
    // Arabic, Hindi, Turkish
    ("خطوة بخطوة", WEAK),
    ("चरण दर चरण", WEAK),
    ("adım adım", WEAK),
];

/// Highest phrase weight found in `text` (0 when none), case-insensitively.
pub fn phrase_score(text: &str) -> f32 {
    super::lexicon::scan(text, false).reasoning
}

/// Native reasoning requested through API parameters: Anthropic `thinking` (its budget in
/// tokens) or OpenAI `reasoning_effort` / `reasoning.effort` (`high` counts as 8192,
/// `medium` as 2048, `low` as 512). Returns the requested budget in tokens (0 if none).
pub fn native_reasoning(req: &RequestView<'_>) -> u32 {
    if let Some(t) = &req.thinking {
        let enabled = t.is_object() && t.get("type").and_then(Value::as_str) != Some("disabled");
        if enabled {
            let b = t
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(1024);
            return b.min(u64::from(u32::MAX)) as u32;
        }
    }
    let effort = req
        .reasoning_effort
        .as_ref()
        .and_then(Value::as_str)
        .or_else(|| {
            req.reasoning
                .as_ref()
                .and_then(|r| r.get("effort"))
                .and_then(Value::as_str)
        });
    match effort {
        Some("high") | Some("xhigh") => 8192,
        Some("medium") => 2048,
        Some("low") | Some("minimal") => 512,
        _ => 0,
    }
}
