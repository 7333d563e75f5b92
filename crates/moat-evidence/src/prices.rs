//! List prices per model, per million tokens.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Price of one model per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// Per million input tokens.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
}

/// Prices per model; `"*"` applies to models not listed.
///
/// File form (TOML, or the same shape in JSON):
///
/// ```toml
/// currency = "USD"
/// [models."*"]
/// input = 3.0
/// output = 15.0
/// [models."my-model"]
/// input = 1.25
/// output = 10.0
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    /// Currency label.
    pub currency: String,
    /// Model → price.
    pub models: BTreeMap<String, Price>,
}

impl Default for PriceTable {
    /// An illustrative default (USD 3 / 15 per million input / output tokens for every
    /// model): pass the provider's own list prices with `--prices`.
    fn default() -> Self {
        PriceTable {
            currency: "USD".into(),
            models: BTreeMap::from([(
                "*".into(),
                Price {
                    input: 3.0,
                    output: 15.0,
                },
            )]),
        }
    }
}

impl PriceTable {
    /// Read a TOML (`.toml`) or JSON file.
    pub fn load(path: &Path) -> Result<PriceTable, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read price table {}: {e}", path.display()))?;
        let table: PriceTable = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        } else {
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        };
        for (m, p) in &table.models {
            if !(p.input.is_finite() && p.output.is_finite() && p.input >= 0.0 && p.output >= 0.0) {
                return Err(format!("price of {m:?} must be finite and non-negative"));
            }
        }
        Ok(table)
    }

    /// Price of `model` (or of `"*"`; zero when neither is listed).
    pub fn price(&self, model: Option<&str>) -> Price {
        model
            .and_then(|m| self.models.get(m))
            .or_else(|| self.models.get("*"))
            .copied()
            .unwrap_or(Price {
                input: 0.0,
                output: 0.0,
            })
    }

    /// Value of `input` and `output` tokens of `model`.
    pub fn value(&self, model: Option<&str>, input: u64, output: u64) -> f64 {
        let p = self.price(model);
        (input as f64 * p.input + output as f64 * p.output) / 1e6
    }
}
