//! What each finished stage established, written as `<run>/<stage>/facts.json` just before its
//! `DONE` marker, and read back by the later stages, the growth loop and the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The facts of one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StageFacts {
    /// A trained tokenizer.
    Tokenizer(TokenizerFacts),
    /// Prepared data.
    Data(DataFacts),
    /// A model with its final full-pass validation loss (trained, or a given checkpoint scored).
    Model(ModelFacts),
    /// An attention analysis.
    Analysis(AnalysisFacts),
    /// A downstream evaluation.
    Eval(EvalFacts),
    /// The report.
    Report(ReportFacts),
}

/// `tokenizer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerFacts {
    /// Its `tokenizer.json`.
    pub tokenizer: PathBuf,
}

/// `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFacts {
    /// The prepared folder.
    pub dir: PathBuf,
}

/// A model stage: the reference, an Inheritune round, a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFacts {
    /// The model's Hugging Face folder.
    pub model: PathBuf,
    /// Its depth.
    pub layers: i64,
    /// Final full-pass validation loss (token-weighted cross-entropy).
    pub final_val_loss: f64,
    /// Tokens of that pass.
    pub final_val_tokens: u64,
    /// Optimizer steps (None for a given checkpoint).
    pub steps: Option<u64>,
    /// The training run folder (None for a given checkpoint).
    pub run: Option<PathBuf>,
}

/// `analyze-*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisFacts {
    /// The analysed model.
    pub model: PathBuf,
    /// Its `analysis.json`.
    pub analysis: PathBuf,
    /// Layers.
    pub n_layer: usize,
    /// 0-based strictly lazy layers.
    pub lazy_strict: Vec<usize>,
    /// 0-based lazy layers by the relaxed rule (⌊MaxRank⌋ = 1).
    #[serde(default)]
    pub lazy_relaxed: Vec<usize>,
    /// The first strictly lazy layer's index, if any (the non-paper depth rule).
    pub first_lazy_depth: Option<usize>,
}

/// `eval-*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalFacts {
    /// The evaluated model.
    pub model: PathBuf,
    /// Its lm-eval-style `results.json`.
    pub results: PathBuf,
}

/// `report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportFacts {
    /// `report.md`.
    pub report: PathBuf,
}

/// The facts of every finished stage, by stage name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts(pub BTreeMap<String, StageFacts>);

impl Facts {
    /// The model facts of `stage`, if it finished as a model stage.
    pub fn model(&self, stage: &str) -> Option<&ModelFacts> {
        match self.0.get(stage)? {
            StageFacts::Model(m) => Some(m),
            _ => None,
        }
    }

    /// The analysis facts of `stage`.
    pub fn analysis(&self, stage: &str) -> Option<&AnalysisFacts> {
        match self.0.get(stage)? {
            StageFacts::Analysis(a) => Some(a),
            _ => None,
        }
    }

    /// The eval facts of `stage`.
    pub fn eval(&self, stage: &str) -> Option<&EvalFacts> {
        match self.0.get(stage)? {
            StageFacts::Eval(e) => Some(e),
            _ => None,
        }
    }

    /// Whether `stage` finished.
    pub fn has(&self, stage: &str) -> bool {
        self.0.contains_key(stage)
    }
}

/// The marker a finished stage's folder holds, written after its facts.
pub const DONE: &str = "DONE";
/// The facts file beside it.
pub const FACTS: &str = "facts.json";

/// Writes `facts.json`, then `DONE`, into `dir` (each crash-safe).
///
/// # Errors
/// The folder cannot be written.
pub fn write(dir: &Path, facts: &StageFacts) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    let text = serde_json::to_string_pretty(facts).map_err(|e| Error::file(dir.join(FACTS), e))?;
    inheritune_fs::write_file(&dir.join(FACTS), text.as_bytes())?;
    inheritune_fs::write_file(&dir.join(DONE), b"")?;
    Ok(())
}

/// The wall time of a stage's last run, beside its facts.
pub const TIME: &str = "time.json";

/// Records that the stage in `dir` ran for `seconds` (before its facts are written).
///
/// # Errors
/// The folder cannot be written.
pub fn write_seconds(dir: &Path, seconds: f64) -> Result<()> {
    let text = serde_json::json!({ "seconds": seconds }).to_string();
    Ok(inheritune_fs::write_file(&dir.join(TIME), text.as_bytes())?)
}

/// The wall time recorded for the stage in `dir` (None: not recorded, e.g. a stage of an older run).
pub fn seconds(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(TIME)).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["seconds"].as_f64()
}

/// The facts of a finished stage folder; None when it has no `DONE`.
///
/// # Errors
/// A `DONE` without readable facts (a folder of another version, or edited by hand).
pub fn read(dir: &Path) -> Result<Option<StageFacts>> {
    if !dir.join(DONE).exists() {
        return Ok(None);
    }
    let path = dir.join(FACTS);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::file(&path, format!("{e} (remove the stage folder to redo it)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let facts = StageFacts::Model(ModelFacts {
            model: "m/final".into(),
            layers: 4,
            final_val_loss: 3.25,
            final_val_tokens: 1000,
            steps: Some(30),
            run: Some("m".into()),
        });
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), &facts).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(facts));
        std::fs::write(dir.path().join(FACTS), "{\"kind\": \"model\"}").unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("facts.json") && e.contains("missing field"), "{e}");
    }
}
