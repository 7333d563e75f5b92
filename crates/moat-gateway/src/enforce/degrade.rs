//! What a degraded request may still harvest: the request is rewritten before it is
//! forwarded (`max_tokens` capped, log-probabilities, `logit_bias` and `n > 1` stripped or
//! refused, Anthropic extended thinking turned off) and the answer's reasoning is removed
//! ([`super::reasoning_strip`]). Each measure is configured in `[enforce.degrade]`.

use bytes::Bytes;
use serde_json::Value;

use crate::api::Api;
use crate::error::GatewayError;

/// What to do with a request feature a degraded account may not use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeaturePolicy {
    /// Pass it on unchanged.
    Keep,
    /// Remove it from the request (the answer comes without it).
    Strip,
    /// Refuse the request (403 `feature_restricted`).
    Refuse,
}

/// `[enforce.degrade]`: the measures applied to a degraded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DegradeConfig {
    /// Remove reasoning from the answer.
    pub strip_reasoning: bool,
    /// Cap on `max_tokens` / `max_completion_tokens` (`None`: no cap).
    pub max_tokens: Option<u64>,
    /// `logprobs`, `top_logprobs` and `logit_bias`.
    pub logprobs: FeaturePolicy,
    /// `n` (and `best_of`) above 1.
    pub n: FeaturePolicy,
    /// Remove Anthropic `thinking` (extended thinking) and OpenAI `reasoning_effort`.
    pub disable_thinking: bool,
}

impl Default for DegradeConfig {
    fn default() -> Self {
        Self {
            strip_reasoning: true,
            max_tokens: Some(512),
            logprobs: FeaturePolicy::Strip,
            n: FeaturePolicy::Strip,
            disable_thinking: true,
        }
    }
}

const LOGPROB_FIELDS: [&str; 3] = ["logprobs", "top_logprobs", "logit_bias"];

fn wants_logprobs(o: &serde_json::Map<String, Value>) -> bool {
    LOGPROB_FIELDS.iter().any(|f| match o.get(*f) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Object(m)) => !m.is_empty(),
        Some(_) => true,
    })
}

/// The request body with the degradations of `cfg` applied; `None` when nothing changes.
pub fn rewrite(body: &[u8], api: Api, cfg: &DegradeConfig) -> Result<Option<Bytes>, GatewayError> {
    let Ok(Value::Object(mut o)) = serde_json::from_slice::<Value>(body) else {
        return Ok(None);
    };
    let mut changed = false;
    if wants_logprobs(&o) {
        match cfg.logprobs {
            FeaturePolicy::Keep => {}
            FeaturePolicy::Strip => {
                for f in LOGPROB_FIELDS {
                    changed |= o.remove(f).is_some();
                }
            }
            FeaturePolicy::Refuse => {
                return Err(GatewayError::FeatureRestricted("logprobs / logit_bias"));
            }
        }
    }
    for f in ["n", "best_of"] {
        if o.get(f).and_then(Value::as_u64).is_some_and(|n| n > 1) {
            match cfg.n {
                FeaturePolicy::Keep => {}
                FeaturePolicy::Strip => {
                    o.insert(f.into(), Value::from(1));
                    changed = true;
                }
                FeaturePolicy::Refuse => return Err(GatewayError::FeatureRestricted("n > 1")),
            }
        }
    }
    if let Some(cap) = cfg.max_tokens {
        let fields: &[&str] = match api {
            Api::AnthropicMessages => &["max_tokens"],
            _ => &["max_tokens", "max_completion_tokens"],
        };
        let mut seen = false;
        for f in fields {
            if let Some(v) = o.get_mut(*f) {
                seen = true;
                if v.as_u64().is_none_or(|n| n > cap) {
                    *v = Value::from(cap);
                    changed = true;
                }
            }
        }
        if !seen {
            o.insert("max_tokens".into(), Value::from(cap));
            changed = true;
        }
    }
    if cfg.disable_thinking {
        for f in ["thinking", "reasoning_effort", "reasoning"] {
            changed |= o.remove(f).is_some();
        }
    }
    Ok(changed.then(|| Bytes::from(serde_json::to_vec(&Value::Object(o)).unwrap_or_default())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(v: Value, api: Api, cfg: &DegradeConfig) -> Value {
        let b = serde_json::to_vec(&v).unwrap();
        match rewrite(&b, api, cfg).unwrap() {
            Some(b) => serde_json::from_slice(&b).unwrap(),
            None => v,
        }
    }

    #[test]
    fn caps_and_strips() {
        let cfg = DegradeConfig::default();
        let v = apply(
            json!({"model":"m","max_tokens":9000,"logprobs":true,"top_logprobs":5,"logit_bias":{"1":2},"n":4}),
            Api::OpenAiChat,
            &cfg,
        );
        assert_eq!(v, json!({"model":"m","max_tokens":512,"n":1}));
        let v = apply(
            json!({"model":"m","max_tokens":100,"thinking":{"type":"enabled","budget_tokens":64}}),
            Api::AnthropicMessages,
            &cfg,
        );
        assert_eq!(v, json!({"model":"m","max_tokens":100}));
        let v = apply(json!({"model":"m"}), Api::OpenAiChat, &cfg);
        assert_eq!(v["max_tokens"], 512);
    }

    #[test]
    fn refuses_when_configured() {
        let cfg = DegradeConfig {
            logprobs: FeaturePolicy::Refuse,
            n: FeaturePolicy::Refuse,
            ..Default::default()
        };
        let b = br#"{"logprobs":true}"#;
        assert!(rewrite(b, Api::OpenAiChat, &cfg).is_err());
        let b = br#"{"n":2}"#;
        assert!(rewrite(b, Api::OpenAiChat, &cfg).is_err());
        let b = br#"{"n":1,"logprobs":false,"max_tokens":10}"#;
        assert!(rewrite(b, Api::OpenAiChat, &cfg).unwrap().is_none());
    }
}
