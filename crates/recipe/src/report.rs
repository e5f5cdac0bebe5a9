//! The recipe's report, from the stages' facts (never from Markdown): `report.md`,
//! `summary.json`, and PNG + SVG figures (val-loss curves of the reference, every Inheritune
//! round and the baselines; MaxRank and AvgMass per layer of the reference and the target), the
//! final-loss table in the layout of METHOD.md §6.1 with the paper's numbers beside ours, each
//! round's verdict, the early-vs-late comparison that is the recipe's signature, and the
//! downstream table when eval ran.
//!
//! [`Report::build`] reads the facts and the run files into a typed [`Report`] (and draws the
//! figures); `summary.json` is its serialization and `report.md` its rendering ([`Report::markdown`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use inheritune_analysis::plot::{line_chart, Series};
use inheritune_analysis::Analysis;
use inheritune_eval::Evaluation;
use inheritune_train::curves::{plot_runs, read_curves, Curves};
use inheritune_train::RunDir;
use serde::Serialize;

use crate::config::Recipe;
use crate::error::{Error, Result};
use crate::facts::Facts;
use crate::growth::Next;
use crate::stages::{growth_state, rule, stages, Task};

/// What a row of the report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// The reference.
    Reference,
    /// An Inheritune round.
    Inheritune,
    /// Same-size scratch, same steps.
    Scratch,
    /// Same-size scratch, twice the steps.
    Scratch2x,
    /// Another baseline (hybrid stacking, half-width, distill-init, stacking and its half).
    Baseline,
    /// A target of the strategy comparison (blocks chosen by another rule), or the reference
    /// checkpoint trained the same steps.
    Strategy,
}

impl RowKind {
    /// The key of the recipe's `[paper]` table.
    fn paper_key(self) -> &'static str {
        match self {
            RowKind::Reference => "reference",
            RowKind::Inheritune => "inheritune",
            RowKind::Scratch => "scratch",
            RowKind::Scratch2x => "scratch_2x",
            RowKind::Baseline => "baseline",
            RowKind::Strategy => "strategy",
        }
    }
}

/// One trained model in the report.
struct Row {
    name: String,
    kind: RowKind,
    layers: Option<i64>,
    run: Option<PathBuf>,
    final_val: Option<f64>,
    curves: Curves,
}

/// A row of the final-loss table (`summary.json`'s `rows`).
#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    /// The stage.
    pub name: String,
    /// What it is.
    pub kind: RowKind,
    /// Its depth.
    pub layers: Option<i64>,
    /// Steps trained.
    pub steps: u64,
    /// Final full-pass validation loss.
    pub final_val_loss: Option<f64>,
    /// Mean val loss of the last five evaluations.
    pub last5_eval_mean: Option<f64>,
    /// The paper's number for it (the recipe's `[paper]` table).
    pub paper: Option<f64>,
    /// Its run folder.
    pub run: Option<PathBuf>,
}

/// The recipe's signature: the inherited target against same-size scratch early and at the end.
#[derive(Debug, Clone, Serialize)]
pub struct Signature {
    /// Tokens at the first evaluation after step 0.
    pub early_tokens: f64,
    /// The target's val loss there.
    pub target_early_val: f64,
    /// Scratch's val loss at its evaluation nearest to that.
    pub scratch_early_val: Option<f64>,
    /// Whether the target is below scratch there.
    pub target_below_scratch_early: bool,
    /// The target's final val loss.
    pub target_final_val: Option<f64>,
    /// Scratch's final val loss.
    pub scratch_final_val: Option<f64>,
    /// Whether the target ends at or below scratch.
    pub target_at_or_below_scratch_final: bool,
    /// Target minus reference at the end.
    pub target_minus_reference_final: Option<f64>,
    #[serde(skip)]
    target: String,
    #[serde(skip)]
    scratch: String,
}

/// A row of the strategy comparison.
#[derive(Debug, Clone, Serialize)]
pub struct StrategyRow {
    /// The rule (`first`, `angular`, ..., `scratch`, `reference`).
    pub rule: String,
    /// Its stage.
    pub run: String,
    /// The reference blocks it kept (0-based), from its surgery record.
    pub blocks: Option<Vec<i64>>,
    /// Val loss at the step-0 evaluation, right after surgery.
    pub zero_shot_val: Option<f64>,
    /// Final full-pass val loss.
    pub final_val_loss: Option<f64>,
    /// Final val loss minus the reference's.
    pub minus_reference: Option<f64>,
    /// Downstream average, when eval ran.
    pub downstream_avg: Option<f64>,
}

/// The premise the recipe rests on, checked on this run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Premise {
    /// The reference's final val loss.
    pub reference_final_val: Option<f64>,
    /// Same-size scratch's final val loss.
    pub scratch_final_val: Option<f64>,
    /// Whether the larger reference beats same-size scratch at equal steps.
    pub reference_better_than_scratch: Option<bool>,
    /// Whether an Inheritune round matched the reference (`None`: the loop has not ended).
    pub inheritune_matched: Option<bool>,
    /// The reference's lazy layers (0-based), strict rule.
    pub lazy_strict: Option<Vec<usize>>,
    /// The reference's lazy layers (0-based), relaxed rule.
    pub lazy_relaxed: Option<Vec<usize>>,
    /// The reference's mean MaxRank over its first half of layers.
    pub avg_rank_first_half: Option<f64>,
    /// The same over its second half.
    pub avg_rank_second_half: Option<f64>,
    #[serde(skip)]
    reference_layers: Option<i64>,
    #[serde(skip)]
    scratch: Option<(String, Option<i64>)>,
    #[serde(skip)]
    next: Option<Next>,
    #[serde(skip)]
    n_layer: usize,
}

/// The report: what `summary.json` holds, plus what only `report.md` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The recipe's name.
    pub recipe: String,
    /// The reference's final val loss.
    pub reference_final_val_loss: Option<f64>,
    /// The match tolerance.
    pub tolerance: f64,
    /// Each finished round's verdict.
    pub rounds: Vec<crate::growth::Verdict>,
    /// The final-loss table.
    pub rows: Vec<SummaryRow>,
    /// Inherited vs scratch, early and at the end.
    pub signature: Option<Signature>,
    /// The strategy comparison.
    pub strategies: Option<Vec<StrategyRow>>,
    /// The premise, checked.
    pub premise: Premise,
    /// The figures written.
    pub figures: Vec<PathBuf>,
    /// Wall seconds of each finished stage's last run (the report's own excepted).
    pub stage_seconds: BTreeMap<String, f64>,
    #[serde(skip)]
    text: Text,
}

/// What `report.md` shows beyond `summary.json`.
#[derive(Debug, Clone, Default)]
struct Text {
    description: String,
    notes: String,
    /// `first-lazy`'s start-depth sentence.
    start_depth: Option<String>,
    /// The paper's number for each round.
    round_papers: Vec<Option<f64>>,
    next: Option<Next>,
    /// The strategy comparison's depth, of the reference's.
    compare_depth: Option<(i64, i64)>,
    /// Each evaluated model's downstream results.
    downstream: Vec<Downstream>,
    /// The timed stages in the order they finished.
    stage_order: Vec<String>,
}

/// One model's reported downstream columns and their average.
#[derive(Debug, Clone)]
struct Downstream {
    model: String,
    columns: Vec<(String, f64)>,
    average: f64,
}

fn last_mean(points: &[(f64, f64)], n: usize) -> Option<f64> {
    let k = points.len().min(n);
    (k > 0).then(|| points[points.len() - k..].iter().map(|p| p.1).sum::<f64>() / k as f64)
}

/// Val loss of a run at its evaluation nearest to `tokens`.
fn val_at(c: &Curves, tokens: f64) -> Option<f64> {
    c.val
        .iter()
        .min_by(|a, b| (a.0 - tokens).abs().total_cmp(&(b.0 - tokens).abs()))
        .map(|p| p.1)
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.4}"))
}

fn read_analysis(path: &Path) -> Result<Analysis> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::file(path, e))
}

fn analysis_series(path: &Path, label: &str) -> Result<(Series, Series)> {
    let a = read_analysis(path)?;
    let pick = |f: fn(&inheritune_analysis::LayerResult) -> f64| -> Vec<(f64, f64)> {
        a.layers.iter().map(|l| (l.layer as f64, f(l))).collect()
    };
    let series = |points| Series {
        label: label.to_string(),
        points,
        light: false,
    };
    Ok((series(pick(|l| l.max_rank)), series(pick(|l| l.avg_mass))))
}

/// Writes the report into `out`, from the finished stages' `facts`: `report.md`,
/// `summary.json` and the figures.
///
/// # Errors
/// Unreadable run files (metrics, analyses, results) or an unwritable folder.
pub fn write(recipe: &Recipe, out: &Path, facts: &Facts) -> Result<()> {
    let report = Report::build(recipe, out, facts)?;
    inheritune_fs::write_file(&out.join("report.md"), report.markdown().as_bytes())?;
    // Through a JSON value, whose keys are sorted, as every summary.json has been.
    let value = serde_json::to_value(&report).map_err(|e| Error::file(out.join("summary.json"), e))?;
    let text = serde_json::to_string_pretty(&value).map_err(|e| Error::file(out.join("summary.json"), e))?;
    inheritune_fs::write_file(&out.join("summary.json"), text.as_bytes())?;
    Ok(())
}

/// The rows of the report: the reference, every Inheritune round, the baselines and the
/// comparison's targets that have finished.
fn rows(recipe: &Recipe, l_ref: i64, facts: &Facts, rounds: &[(String, f64)], next: Option<Next>) -> Result<Vec<Row>> {
    let row = |name: &str, kind: RowKind| -> Result<Row> {
        let m = facts.model(name);
        let run_dir = m.and_then(|m| m.run.clone());
        let curves = match &run_dir {
            Some(d) if RunDir::new(d).metrics().exists() => read_curves(d)?,
            _ => Curves::default(),
        };
        Ok(Row {
            name: name.to_string(),
            kind,
            layers: m.map(|m| m.layers),
            run: run_dir,
            final_val: m.map(|m| m.final_val_loss),
            curves,
        })
    };
    let mut rows = vec![row("reference", RowKind::Reference)?];
    rows[0].layers = Some(l_ref);
    for (name, _) in rounds {
        rows.push(row(name, RowKind::Inheritune)?);
    }
    let depth = match recipe.baselines.depth {
        crate::config::BaselineDepth::Layers(n) => Some(n),
        crate::config::BaselineDepth::Target => next.and_then(Next::final_layers),
    };
    for stage in &stages(recipe, l_ref, facts, false) {
        let kind = match stage.task {
            Task::Scratch { factor: 2, .. } => RowKind::Scratch2x,
            Task::Scratch { layers, .. } if Some(layers) == depth => RowKind::Scratch,
            Task::Scratch { .. }
            | Task::HybridStack { .. }
            | Task::HalfWidth
            | Task::DistillInit { .. }
            | Task::Kd { .. }
            | Task::Stack { .. } => RowKind::Baseline,
            Task::Select { .. } | Task::ReferenceTrained => RowKind::Strategy,
            _ => continue,
        };
        if facts.has(&stage.name) {
            rows.push(row(&stage.name, kind)?);
        }
    }
    Ok(rows)
}

/// The runs of `rows` (label, run folder) that logged metrics.
fn runs_of<'r>(rows: impl Iterator<Item = (String, &'r Row)>) -> Vec<(String, PathBuf)> {
    rows.filter_map(|(label, r)| {
        r.run
            .clone()
            .filter(|d| RunDir::new(d).metrics().exists())
            .map(|d| (label, d))
    })
    .collect()
}

impl Report {
    /// Reads the facts and run files into the report, drawing the figures into `out`.
    ///
    /// # Errors
    /// Unreadable run files (metrics, analyses, results) or an unwritable folder.
    pub fn build(recipe: &Recipe, out: &Path, facts: &Facts) -> Result<Report> {
        std::fs::create_dir_all(out).map_err(|e| Error::file(out, e))?;
        let l_ref = recipe.reference_config()?.n_layer();
        let (rounds, next) = growth_state(recipe, l_ref, facts);
        let rows = rows(recipe, l_ref, facts, &rounds, next)?;
        let mut figures = Self::figures(&rows, facts, out)?;
        let target = rows.iter().rev().find(|r| r.kind == RowKind::Inheritune);
        let scratch = rows.iter().find(|r| r.kind == RowKind::Scratch);
        let paper_of = |r: &Row| -> Option<f64> {
            if let Some(v) = recipe.paper.get(&r.name) {
                return Some(*v);
            }
            let key = match r.kind {
                RowKind::Inheritune if Some(r.name.as_str()) != target.map(|t| t.name.as_str()) => return None,
                // Stacking's half-depth model has no number of its own.
                RowKind::Baseline if r.name.starts_with("scratch") => return None,
                RowKind::Baseline => r.name.split("-l").next().unwrap_or_default(),
                k => k.paper_key(),
            };
            recipe.paper.get(key).copied()
        };
        let summary_rows = rows
            .iter()
            .map(|r| SummaryRow {
                name: r.name.clone(),
                kind: r.kind,
                layers: r.layers,
                steps: r.curves.steps,
                final_val_loss: r.final_val,
                last5_eval_mean: last_mean(&r.curves.val, 5),
                paper: paper_of(r),
                run: r.run.clone(),
            })
            .collect();
        let losses: Vec<f64> = rounds.iter().map(|r| r.1).collect();
        let verdicts = match (rows[0].final_val, rule(recipe, l_ref, facts)) {
            (Some(reference), Some(rule)) => rule.verdicts(reference, &losses),
            _ => Vec::new(),
        };
        let start_depth = (recipe.inheritune.start_depth == crate::config::StartDepth::FirstLazy).then(|| {
            match crate::stages::first_lazy(facts) {
                Some(Some(i)) if i >= 1 => format!("Start depth: the reference's first lazy layer (relaxed rule) is layer {i} (0-based), so {i} blocks.\n\n"),
                _ => format!("Start depth: `first-lazy` found no lazy layer in the reference (relaxed rule), so ⌊L/2⌋ = {} was used.\n\n", l_ref / 2),
            }
        });
        let round_papers = verdicts
            .iter()
            .map(|v| recipe.paper.get(&format!("inheritune-l{}", v.layers)).copied())
            .collect();
        let (compare_depth, strategies, compare_figures) = comparison(recipe, l_ref, facts, &rows, out)?;
        figures.extend(compare_figures);
        let mut downstream = Vec::new();
        for r in &rows {
            if let Some(e) = facts.eval(&format!("eval-{}", r.name)) {
                let e = Evaluation::read_results(&e.results)?;
                downstream.push(Downstream {
                    model: r.name.clone(),
                    columns: e.reported().into_iter().map(|c| (c.0, c.1)).collect(),
                    average: e.reported_average(),
                });
            }
        }
        let run = out.parent().unwrap_or(Path::new("."));
        let stage_seconds: BTreeMap<String, f64> = facts
            .0
            .keys()
            .filter_map(|name| Some((name.clone(), crate::facts::seconds(&run.join(name))?)))
            .collect();
        // In the order they finished (their time files' ages).
        let mut finished: Vec<(std::time::SystemTime, String)> = stage_seconds
            .keys()
            .map(|name| {
                let path = run.join(name).join(crate::facts::TIME);
                let when = std::fs::metadata(path).and_then(|m| m.modified());
                (when.unwrap_or(std::time::UNIX_EPOCH), name.clone())
            })
            .collect();
        finished.sort();
        Ok(Report {
            stage_seconds,
            recipe: recipe.name.clone(),
            reference_final_val_loss: rows[0].final_val,
            tolerance: recipe.inheritune.tolerance,
            rounds: verdicts,
            rows: summary_rows,
            signature: target
                .zip(scratch)
                .and_then(|(t, s)| signature(t, s, rows[0].final_val)),
            strategies,
            premise: premise(&rows, facts, next)?,
            figures,
            text: Text {
                description: recipe.description.clone(),
                notes: recipe.notes.clone(),
                start_depth,
                round_papers,
                next,
                compare_depth,
                downstream,
                stage_order: finished.into_iter().map(|(_, name)| name).collect(),
            },
        })
    }

    /// The val-loss curves of every run, and MaxRank and AvgMass per layer of the analysed models.
    fn figures(rows: &[Row], facts: &Facts, out: &Path) -> Result<Vec<PathBuf>> {
        let mut figures = Vec::new();
        let runs = runs_of(rows.iter().map(|r| (r.name.clone(), r)));
        if !runs.is_empty() {
            figures.extend(plot_runs(&runs, out, "val_loss", false)?);
        }
        let analyses: Vec<(PathBuf, &str)> = [("analyze-reference", "reference"), ("analyze-target", "target")]
            .iter()
            .filter_map(|(stage, label)| Some((facts.analysis(stage)?.analysis.clone(), *label)))
            .collect();
        if !analyses.is_empty() {
            let (mut rank, mut mass) = (Vec::new(), Vec::new());
            for (path, label) in &analyses {
                let (r, m) = analysis_series(path, label)?;
                rank.push(r);
                mass.push(m);
            }
            let layer = "layer (0-based, as model.layers.N)";
            figures.extend(line_chart(
                out,
                "max_rank",
                "MaxRank per layer (k*, tau = 0.9)",
                (layer, "MaxRank"),
                &rank,
            )?);
            figures.extend(line_chart(
                out,
                "avg_mass",
                "AvgMass per layer (m*, eta = 0.9)",
                (layer, "AvgMass"),
                &mass,
            )?);
        }
        Ok(figures)
    }

    /// `report.md`.
    pub fn markdown(&self) -> String {
        let mut md = format!("# Inheritune report: {}\n\n{}\n\n", self.recipe, self.text.description);
        md += "## Final validation loss (layout of METHOD.md §6.1)\n\n";
        md += "| run | layers | steps | final val (full pass) | last-5 eval mean | paper |\n| --- | --- | --- | --- | --- | --- |\n";
        for r in &self.rows {
            md += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                r.name,
                r.layers.map_or("–".into(), |l| l.to_string()),
                r.steps,
                fmt(r.final_val_loss),
                fmt(r.last5_eval_mean),
                r.paper.map_or("–".into(), |v| format!("{v:.2}"))
            );
        }
        md += &format!(
            "\nMatch rule: target ≤ reference + {} (this recipe's tolerance; METHOD.md §1.6 DECISION: 0.005). Final val = token-weighted cross-entropy over the whole val split.\n\n",
            self.tolerance
        );
        md += &self.growth_markdown();
        if let Some(s) = &self.signature {
            md += &s.markdown();
        }
        if let (Some((layers, l_ref)), Some(rows)) = (self.text.compare_depth, &self.strategies) {
            md += &strategies_markdown(layers, l_ref, rows);
        }
        md += &self.premise.markdown();
        if !self.text.notes.trim().is_empty() {
            md += &format!(
                "## What this recipe shows and what it cannot\n\n{}\n\n",
                self.text.notes.trim()
            );
        }
        md += &self.times_markdown();
        md += "## Figures\n\n";
        for f in self
            .figures
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "png"))
        {
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            md += &format!("![{name}]({name})\n\n");
        }
        if let Some(first) = self.text.downstream.first() {
            let cols = &first.columns;
            md += "## Downstream (zero-shot, lm-evaluation-harness semantics; layout of Table 1)\n\n";
            md += &format!(
                "| model | {} | avg |\n|{}\n",
                cols.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(" | "),
                " --- |".repeat(cols.len() + 2)
            );
            for d in &self.text.downstream {
                let values: Vec<String> = d.columns.iter().map(|c| format!("{:.2}", c.1)).collect();
                md += &format!("| {} | {} | {:.2} |\n", d.model, values.join(" | "), d.average);
            }
            md += "\n";
        }
        md
    }

    /// How long each stage took (its last run), and all of them.
    fn times_markdown(&self) -> String {
        if self.stage_seconds.is_empty() {
            return String::new();
        }
        let clock = |s: f64| {
            let s = s.round() as u64;
            format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
        };
        let mut md =
            "## Stage times (wall clock of each stage's last run)\n\n| stage | time |\n| --- | --- |\n".to_string();
        for stage in &self.text.stage_order {
            md += &format!("| {stage} | {} |\n", clock(self.stage_seconds[stage]));
        }
        md += &format!(
            "| all (one after another) | {} |\n\n",
            clock(self.stage_seconds.values().sum())
        );
        md
    }

    /// The growth loop's rounds and how it ended.
    fn growth_markdown(&self) -> String {
        if self.rounds.is_empty() {
            return String::new();
        }
        let mut md = "## Growth (Algorithm 1)\n\n".to_string();
        if let Some(s) = &self.text.start_depth {
            md += s;
        }
        md += "| round | layers | final val | matched | paper |\n| --- | --- | --- | --- | --- |\n";
        for (v, paper) in self.rounds.iter().zip(&self.text.round_papers) {
            md += &format!(
                "| {} | {} | {:.4} | {} | {} |\n",
                v.round,
                v.layers,
                v.final_val_loss,
                if v.matched { "yes" } else { "no" },
                paper.map_or("–".into(), |p| format!("{p:.2}"))
            );
        }
        md += &match self.text.next {
            Some(Next::Matched { layers }) => format!("\nThe target matched the reference at {layers} layers.\n\n"),
            Some(Next::Unmatched { layers, stop }) => format!(
                "\nNo round matched; the loop stopped at {layers} layers ({}).\n\n",
                match stop {
                    crate::growth::Stop::MaxRounds => "max_rounds reached",
                    crate::growth::Stop::ReferenceDepth => "growing further would pass the reference's depth",
                }
            ),
            _ => "\nThe growth loop has not ended.\n\n".to_string(),
        };
        md
    }
}

/// The signature of target `t` against scratch `s` (none before the target's first evaluation
/// after step 0).
fn signature(t: &Row, s: &Row, reference: Option<f64>) -> Option<Signature> {
    let &(early_tokens, t_early) = t.curves.val.get(1)?;
    let s_early = val_at(&s.curves, early_tokens);
    Some(Signature {
        early_tokens,
        target_early_val: t_early,
        scratch_early_val: s_early,
        target_below_scratch_early: s_early.is_some_and(|s| t_early < s),
        target_final_val: t.final_val,
        scratch_final_val: s.final_val,
        target_at_or_below_scratch_final: matches!((t.final_val, s.final_val), (Some(a), Some(b)) if a <= b),
        target_minus_reference_final: t.final_val.zip(reference).map(|(a, b)| a - b),
        target: t.name.clone(),
        scratch: s.name.clone(),
    })
}

impl Signature {
    fn markdown(&self) -> String {
        format!(
            "## Signature\n\n\
             - Early (first evaluation, {:.0} tokens): {} val {:.4} vs {} {} → inherited {} scratch.\n\
             - End (full val pass): {} {} vs {} {} → inherited {} scratch.\n\
             - Inherited minus reference at the end: {}.\n\n",
            self.early_tokens,
            self.target,
            self.target_early_val,
            self.scratch,
            fmt(self.scratch_early_val),
            if self.target_below_scratch_early {
                "far below"
            } else {
                "NOT below"
            },
            self.target,
            fmt(self.target_final_val),
            self.scratch,
            fmt(self.scratch_final_val),
            if self.target_at_or_below_scratch_final {
                "at or below"
            } else {
                "ABOVE"
            },
            self.target_minus_reference_final
                .map_or("–".into(), |g| format!("{g:+.4}")),
        )
    }
}

/// The strategy comparison: every rule's target at the same depth beside same-size scratch and
/// the reference, with the blocks each kept, the loss right after surgery (the step-0
/// evaluation), the final loss and the validation curves: its depth (of the reference's), its
/// rows and its figures; none without `[inheritune] selections`.
#[allow(clippy::type_complexity)]
fn comparison(
    recipe: &Recipe,
    l_ref: i64,
    facts: &Facts,
    rows: &[Row],
    out: &Path,
) -> Result<(Option<(i64, i64)>, Option<Vec<StrategyRow>>, Vec<PathBuf>)> {
    let rules = recipe.inheritune.rules();
    let round1 = rule(recipe, l_ref, facts).map(|r| r.depth(1));
    let Some(layers) = recipe.inheritune.selection_layers.or(round1) else {
        return Ok((None, None, Vec::new()));
    };
    if rules.is_empty() {
        return Ok((None, None, Vec::new()));
    }
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let mut entries: Vec<(String, &Row)> = Vec::new();
    for r in &rules {
        if let Some(row) = find(&crate::stages::selection_stage(r.name(), layers, round1)) {
            entries.push((r.name().to_string(), row));
        }
    }
    if let Some(row) = rows
        .iter()
        .find(|r| r.kind == RowKind::Scratch && r.layers == Some(layers))
    {
        entries.push(("scratch".into(), row));
    }
    for name in ["reference-trained", "reference"] {
        if let Some(row) = find(name) {
            entries.push((name.into(), row));
        }
    }
    let reference = rows[0].final_val;
    let mut table = Vec::new();
    for (rule, row) in &entries {
        let plan = row
            .run
            .as_ref()
            .and_then(|r| r.parent())
            .map(|d| d.join("init/surgery.json"))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        let downstream_avg = match facts.eval(&format!("eval-{}", row.name)) {
            Some(e) => Some(Evaluation::read_results(&e.results)?.reported_average()),
            None => None,
        };
        table.push(StrategyRow {
            rule: rule.clone(),
            run: row.name.clone(),
            blocks: plan.and_then(|p| serde_json::from_value(p["settings"]["blocks"].clone()).ok()),
            zero_shot_val: row.curves.val.first().filter(|p| p.0 == 0.0).map(|p| p.1),
            final_val_loss: row.final_val,
            minus_reference: row.final_val.zip(reference).map(|(a, b)| a - b),
            downstream_avg,
        });
    }
    let runs = runs_of(entries.iter().map(|(rule, r)| (rule.clone(), *r)));
    let figures = if runs.is_empty() {
        Vec::new()
    } else {
        plot_runs(&runs, out, "strategies", false)?
    };
    Ok((Some((layers, l_ref)), Some(table), figures))
}

fn strategies_markdown(layers: i64, l_ref: i64, rows: &[StrategyRow]) -> String {
    let mut md = format!(
        "## Strategy comparison ({layers} of {l_ref} blocks, the same data, steps and seed)\n\n\
         Zero-shot: the validation loss of the step-0 evaluation, right after surgery. Blocks are 0-based.\n\n\
         | rule | run | blocks kept | zero-shot val | final val (full pass) | minus reference | downstream avg |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for r in rows {
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.rule,
            r.run,
            r.blocks
                .as_ref()
                .map_or("–".into(), |k| inheritune_analysis::depth::runs(k)),
            fmt(r.zero_shot_val),
            fmt(r.final_val_loss),
            r.minus_reference.map_or("–".into(), |g| format!("{g:+.4}")),
            r.downstream_avg.map_or("–".into(), |a| format!("{a:.2}"))
        );
    }
    md + "\n"
}

/// The premise the recipe rests on, checked on this run: the larger reference beats same-size
/// scratch at equal steps, Inheritune's target matches the reference, and which of the
/// reference's layers are lazy.
fn premise(rows: &[Row], facts: &Facts, next: Option<Next>) -> Result<Premise> {
    let reference = &rows[0];
    let scratch = rows.iter().find(|r| r.kind == RowKind::Scratch);
    let s_val = scratch.and_then(|s| s.final_val);
    let lazy = facts.analysis("analyze-reference");
    let full = lazy.map(|a| read_analysis(&a.analysis)).transpose()?;
    Ok(Premise {
        reference_final_val: reference.final_val,
        scratch_final_val: s_val,
        reference_better_than_scratch: reference.final_val.zip(s_val).map(|(r, s)| s - r > 0.0),
        inheritune_matched: match next {
            Some(Next::Matched { .. }) => Some(true),
            Some(Next::Unmatched { .. }) => Some(false),
            _ => None,
        },
        lazy_strict: lazy.map(|a| a.lazy_strict.clone()),
        lazy_relaxed: lazy.map(|a| a.lazy_relaxed.clone()),
        avg_rank_first_half: full.as_ref().map(|f| f.avg_rank_first_half),
        avg_rank_second_half: full.as_ref().map(|f| f.avg_rank_second_half),
        reference_layers: reference.layers,
        scratch: scratch.map(|s| (s.name.clone(), s.layers)),
        next,
        n_layer: full.as_ref().map_or(0, |f| f.n_layer),
    })
}

impl Premise {
    fn markdown(&self) -> String {
        let mut md = String::from("## Premise\n\n");
        let layers = |l: Option<i64>| l.map_or("–".into(), |l| l.to_string());
        if let (Some((name, s_layers)), Some(r_val), Some(s_val)) =
            (&self.scratch, self.reference_final_val, self.scratch_final_val)
        {
            let gap = s_val - r_val;
            md += &format!(
                "- Larger reference vs same-size scratch, equal steps: reference ({} layers) {r_val:.4} vs {name} ({} layers) {s_val:.4} → {}.\n",
                layers(self.reference_layers),
                layers(*s_layers),
                if gap > 0.0 {
                    format!("the reference is better by {gap:.4}")
                } else {
                    format!("the reference is NOT better ({:+.4}): the premise does not hold at this size and budget", -gap)
                }
            );
        }
        match self.next {
            Some(Next::Matched { layers }) => {
                md += &format!("- Inheritune: the target matched the reference at {layers} layers.\n");
            }
            Some(Next::Unmatched { layers, .. }) => {
                md += &format!("- Inheritune: no round matched the reference (last tried: {layers} layers).\n");
            }
            _ => {}
        }
        if let (Some(strict), Some(relaxed), Some(first), Some(second)) = (
            &self.lazy_strict,
            &self.lazy_relaxed,
            self.avg_rank_first_half,
            self.avg_rank_second_half,
        ) {
            let list = |v: &[usize]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                }
            };
            md += &format!(
                "- Lazy layers of the reference (0-based): strict (MaxRank = 1) {}; relaxed (⌊MaxRank⌋ = 1) {}.\n",
                list(strict),
                list(relaxed)
            );
            md += &format!(
                "- AvgRank (mean MaxRank) of the reference: first {} layers {first:.2}, remaining {} layers {second:.2} (the paper's lazy layers are late and of rank near 1).\n",
                self.n_layer / 2,
                self.n_layer - self.n_layer / 2,
            );
        }
        md + "\n"
    }
}
