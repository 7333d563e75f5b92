//! Loading the `[detect]` table of `moat.toml`.

use std::path::Path;

use anyhow::Context as _;
use moat_detect::DetectConfig;

/// Reads `path` (TOML) and returns its `[detect]` table as a [`DetectConfig`] (defaults
/// when the table is absent). Unknown keys inside `[detect]` are an error; other tables
/// belong to other parts of moat and are ignored.
pub fn load_detect_config(path: &Path) -> anyhow::Result<DetectConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    match doc.get("detect") {
        None => Ok(DetectConfig::default()),
        Some(v) => v
            .clone()
            .try_into::<DetectConfig>()
            .with_context(|| format!("{}: invalid [detect] table", path.display())),
    }
}
