//! The recipe's report, from the stages' facts (never from Markdown): `report.md`,
//! `summary.json`, and PNG + SVG figures (val-loss curves of the reference, every Inheritune
//! round and the baselines; MaxRank and AvgMass per layer of the reference and the target), the
//! final-loss table in the layout of METHOD.md §6.1 with the paper's numbers beside ours, each
//! round's verdict, the early-vs-late comparison that is the recipe's signature, and the
//! downstream table when eval ran.

use std::path::{Path, PathBuf};

use inheritune_analysis::plot::{line_chart, Series};
use inheritune_analysis::Analysis;
use inheritune_eval::Evaluation;
use inheritune_train::curves::{read_curves, Curves};
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

/// A row of `summary.json`.
#[derive(Debug, Serialize)]
struct SummaryRow<'a> {
    name: &'a str,
    kind: RowKind,
    layers: Option<i64>,
    steps: u64,
    final_val_loss: Option<f64>,
    last5_eval_mean: Option<f64>,
    paper: Option<f64>,
    run: &'a Option<PathBuf>,
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

fn analysis_series(path: &Path, label: &str) -> Result<(Series, Series)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    let a: Analysis = serde_json::from_str(&text).map_err(|e| Error::file(path, e))?;
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

/// Writes the report into `out`, from the finished stages' `facts`.
///
/// # Errors
/// Unreadable run files (metrics, analyses, results) or an unwritable folder.
pub fn write(recipe: &Recipe, out: &Path, facts: &Facts) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::file(out, e))?;
    let l_ref = recipe.reference_config()?.n_layer();
    let row = |name: &str, kind: RowKind| -> Result<Row> {
        let m = facts.model(name);
        let run_dir = m.and_then(|m| m.run.clone());
        let curves = match &run_dir {
            Some(d) if d.join("metrics.jsonl").exists() => read_curves(d)?,
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
    let (rounds, next) = growth_state(recipe, l_ref, facts);
    for (name, _) in &rounds {
        rows.push(row(name, RowKind::Inheritune)?);
    }
    let plan = stages(recipe, l_ref, facts, false);
    let depth = match recipe.baselines.depth {
        crate::config::BaselineDepth::Layers(n) => Some(n),
        crate::config::BaselineDepth::Target => next.and_then(Next::final_layers),
    };
    for stage in &plan {
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

    // Figures.
    let mut figures = Vec::new();
    let runs: Vec<(String, PathBuf)> = rows
        .iter()
        .filter_map(|r| {
            r.run
                .clone()
                .filter(|d| d.join("metrics.jsonl").exists())
                .map(|d| (r.name.clone(), d))
        })
        .collect();
    if !runs.is_empty() {
        figures.extend(inheritune_train::curves::plot_runs(&runs, out, "val_loss", false)?);
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
        figures.extend(line_chart(
            out,
            "max_rank",
            "MaxRank per layer (k*, tau = 0.9)",
            ("layer (0-based, as model.layers.N)", "MaxRank"),
            &rank,
        )?);
        figures.extend(line_chart(
            out,
            "avg_mass",
            "AvgMass per layer (m*, eta = 0.9)",
            ("layer (0-based, as model.layers.N)", "AvgMass"),
            &mass,
        )?);
    }

    // The signature: inherited vs same-size scratch early and at the end.
    let target = rows.iter().rev().find(|r| r.kind == RowKind::Inheritune);
    let scratch = rows.iter().find(|r| r.kind == RowKind::Scratch);
    let mut signature = serde_json::Value::Null;
    let mut md_signature = String::new();
    if let (Some(t), Some(s)) = (target, scratch) {
        // The first evaluation after step 0.
        if let Some(&(early_tokens, t_early)) = t.curves.val.get(1) {
            let s_early = val_at(&s.curves, early_tokens);
            let verdict_early = s_early.is_some_and(|s| t_early < s);
            let verdict_end = matches!((t.final_val, s.final_val), (Some(a), Some(b)) if a <= b);
            let gap_ref = match (t.final_val, rows[0].final_val) {
                (Some(a), Some(b)) => Some(a - b),
                _ => None,
            };
            signature = serde_json::json!({
                "early_tokens": early_tokens, "target_early_val": t_early, "scratch_early_val": s_early,
                "target_below_scratch_early": verdict_early, "target_final_val": t.final_val,
                "scratch_final_val": s.final_val, "target_at_or_below_scratch_final": verdict_end,
                "target_minus_reference_final": gap_ref,
            });
            md_signature = format!(
                "## Signature\n\n\
                 - Early (first evaluation, {early_tokens:.0} tokens): {} val {t_early:.4} vs {} {} → inherited {} scratch.\n\
                 - End (full val pass): {} {} vs {} {} → inherited {} scratch.\n\
                 - Inherited minus reference at the end: {}.\n\n",
                t.name,
                s.name,
                fmt(s_early),
                if verdict_early { "far below" } else { "NOT below" },
                t.name,
                fmt(t.final_val),
                s.name,
                fmt(s.final_val),
                if verdict_end { "at or below" } else { "ABOVE" },
                gap_ref.map_or("–".into(), |g| format!("{g:+.4}")),
            );
        }
    }

    // Markdown.
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
    let mut md = format!("# Inheritune report: {}\n\n{}\n\n", recipe.name, recipe.description);
    md += "## Final validation loss (layout of METHOD.md §6.1)\n\n";
    md += "| run | layers | steps | final val (full pass) | last-5 eval mean | paper |\n| --- | --- | --- | --- | --- | --- |\n";
    let mut summary_rows = Vec::new();
    for r in &rows {
        let last5 = last_mean(&r.curves.val, 5);
        md += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.layers.map_or("–".into(), |l| l.to_string()),
            r.curves.steps,
            fmt(r.final_val),
            fmt(last5),
            paper_of(r).map_or("–".into(), |v| format!("{v:.2}"))
        );
        summary_rows.push(SummaryRow {
            name: &r.name,
            kind: r.kind,
            layers: r.layers,
            steps: r.curves.steps,
            final_val_loss: r.final_val,
            last5_eval_mean: last5,
            paper: paper_of(r),
            run: &r.run,
        });
    }
    md += &format!(
        "\nMatch rule: target ≤ reference + {} (this recipe's tolerance; METHOD.md §1.6 DECISION: 0.005). Final val = token-weighted cross-entropy over the whole val split.\n\n",
        recipe.inheritune.tolerance
    );
    let losses: Vec<f64> = rounds.iter().map(|r| r.1).collect();
    let verdicts = match (rows[0].final_val, rule(recipe, l_ref, facts)) {
        (Some(reference), Some(rule)) => rule.verdicts(reference, &losses),
        _ => Vec::new(),
    };
    if !verdicts.is_empty() {
        md += "## Growth (Algorithm 1)\n\n";
        if recipe.inheritune.start_depth == crate::config::StartDepth::FirstLazy {
            md += &match crate::stages::first_lazy(facts) {
                Some(Some(i)) if i >= 1 => format!("Start depth: the reference's first lazy layer (relaxed rule) is layer {i} (0-based), so {i} blocks.\n\n"),
                _ => format!("Start depth: `first-lazy` found no lazy layer in the reference (relaxed rule), so ⌊L/2⌋ = {} was used.\n\n", l_ref / 2),
            };
        }
        md += "| round | layers | final val | matched | paper |\n| --- | --- | --- | --- | --- |\n";
        for v in &verdicts {
            md += &format!(
                "| {} | {} | {:.4} | {} | {} |\n",
                v.round,
                v.layers,
                v.final_val_loss,
                if v.matched { "yes" } else { "no" },
                recipe
                    .paper
                    .get(&format!("inheritune-l{}", v.layers))
                    .map_or("–".into(), |p| format!("{p:.2}"))
            );
        }
        md += &match next {
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
    }
    md += &md_signature;
    let (md_compare, compare, compare_figures) = comparison(recipe, l_ref, facts, &rows, out)?;
    md += &md_compare;
    figures.extend(compare_figures);
    let (md_premise, premise) = premise(&rows, facts, next)?;
    md += &md_premise;
    if !recipe.notes.trim().is_empty() {
        md += &format!(
            "## What this recipe shows and what it cannot\n\n{}\n\n",
            recipe.notes.trim()
        );
    }
    md += "## Figures\n\n";
    for f in figures.iter().filter(|f| f.extension().is_some_and(|e| e == "png")) {
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        md += &format!("![{name}]({name})\n\n");
    }
    let mut downstream = Vec::new();
    for r in &rows {
        if let Some(e) = facts.eval(&format!("eval-{}", r.name)) {
            downstream.push((r.name.clone(), Evaluation::read_results(&e.results)?));
        }
    }
    if let Some((_, first)) = downstream.first() {
        md += "## Downstream (zero-shot, lm-evaluation-harness semantics; layout of Table 1)\n\n";
        let cols = first.reported();
        md += &format!(
            "| model | {} | avg |\n|{}\n",
            cols.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(" | "),
            " --- |".repeat(cols.len() + 2)
        );
        for (name, e) in &downstream {
            let values: Vec<String> = e.reported().iter().map(|c| format!("{:.2}", c.1)).collect();
            md += &format!("| {name} | {} | {:.2} |\n", values.join(" | "), e.reported_average());
        }
        md += "\n";
    }
    inheritune_fs::write_file(&out.join("report.md"), md.as_bytes())?;
    let summary = serde_json::json!({
        "recipe": recipe.name,
        "reference_final_val_loss": rows[0].final_val,
        "tolerance": recipe.inheritune.tolerance,
        "rounds": verdicts,
        "rows": summary_rows,
        "signature": signature,
        "strategies": compare,
        "premise": premise,
        "figures": figures.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::file(out.join("summary.json"), e))?;
    inheritune_fs::write_file(&out.join("summary.json"), text.as_bytes())?;
    Ok(())
}

/// The strategy comparison: every rule's target at the same depth beside same-size scratch and
/// the reference, with the blocks each kept, the loss right after surgery (the step-0
/// evaluation), the final loss and the validation curves. Markdown, `summary.json` rows, figures.
fn comparison(
    recipe: &Recipe,
    l_ref: i64,
    facts: &Facts,
    rows: &[Row],
    out: &Path,
) -> Result<(String, serde_json::Value, Vec<PathBuf>)> {
    let rules = recipe.inheritune.rules();
    let round1 = rule(recipe, l_ref, facts).map(|r| r.depth(1));
    let Some(layers) = recipe.inheritune.selection_layers.or(round1) else {
        return Ok((String::new(), serde_json::Value::Null, Vec::new()));
    };
    if rules.is_empty() {
        return Ok((String::new(), serde_json::Value::Null, Vec::new()));
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
    let downstream = |name: &str| -> Result<Option<f64>> {
        Ok(match facts.eval(&format!("eval-{name}")) {
            Some(e) => Some(Evaluation::read_results(&e.results)?.reported_average()),
            None => None,
        })
    };
    let mut md = format!(
        "## Strategy comparison ({layers} of {l_ref} blocks, the same data, steps and seed)\n\n\
         Zero-shot: the validation loss of the step-0 evaluation, right after surgery. Blocks are 0-based.\n\n\
         | rule | run | blocks kept | zero-shot val | final val (full pass) | minus reference | downstream avg |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    let mut json = Vec::new();
    for (rule, row) in &entries {
        let plan = row
            .run
            .as_ref()
            .and_then(|r| r.parent())
            .map(|d| d.join("init/surgery.json"))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        let kept: Option<Vec<i64>> = plan.and_then(|p| serde_json::from_value(p["settings"]["blocks"].clone()).ok());
        let zero_shot = row.curves.val.first().filter(|p| p.0 == 0.0).map(|p| p.1);
        let gap = match (row.final_val, reference) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        };
        let avg = downstream(&row.name)?;
        md += &format!(
            "| {rule} | {} | {} | {} | {} | {} | {} |
",
            row.name,
            kept.as_ref()
                .map_or("–".into(), |k| inheritune_analysis::depth::runs(k)),
            fmt(zero_shot),
            fmt(row.final_val),
            gap.map_or("–".into(), |g| format!("{g:+.4}")),
            avg.map_or("–".into(), |a| format!("{a:.2}"))
        );
        json.push(serde_json::json!({
            "rule": rule, "run": row.name, "blocks": kept, "zero_shot_val": zero_shot,
            "final_val_loss": row.final_val, "minus_reference": gap, "downstream_avg": avg,
        }));
    }
    md += "
";
    let runs: Vec<(String, PathBuf)> = entries
        .iter()
        .filter_map(|(rule, r)| {
            r.run
                .clone()
                .filter(|d| d.join("metrics.jsonl").exists())
                .map(|d| (rule.clone(), d))
        })
        .collect();
    let figures = if runs.is_empty() {
        Vec::new()
    } else {
        inheritune_train::curves::plot_runs(&runs, out, "strategies", false)?
    };
    Ok((md, serde_json::Value::Array(json), figures))
}

/// The premise the recipe rests on, checked on this run: the larger reference beats same-size
/// scratch at equal steps, Inheritune's target matches the reference, and which of the
/// reference's layers are lazy. Markdown and its `summary.json` object.
fn premise(rows: &[Row], facts: &Facts, next: Option<Next>) -> Result<(String, serde_json::Value)> {
    let reference = &rows[0];
    let scratch = rows.iter().find(|r| r.kind == RowKind::Scratch);
    let mut md = String::from("## Premise\n\n");
    let mut better = None;
    if let (Some(s), Some(r_val), Some(s_val)) = (scratch, reference.final_val, scratch.and_then(|s| s.final_val)) {
        let gap = s_val - r_val;
        better = Some(gap > 0.0);
        md += &format!(
            "- Larger reference vs same-size scratch, equal steps: reference ({} layers) {r_val:.4} vs {} ({} layers) {s_val:.4} → {}.\n",
            reference.layers.map_or("–".into(), |l| l.to_string()),
            s.name,
            s.layers.map_or("–".into(), |l| l.to_string()),
            if gap > 0.0 {
                format!("the reference is better by {gap:.4}")
            } else {
                format!("the reference is NOT better ({:+.4}): the premise does not hold at this size and budget", -gap)
            }
        );
    }
    let matched = match next {
        Some(Next::Matched { layers }) => {
            md += &format!("- Inheritune: the target matched the reference at {layers} layers.\n");
            Some(true)
        }
        Some(Next::Unmatched { layers, .. }) => {
            md += &format!("- Inheritune: no round matched the reference (last tried: {layers} layers).\n");
            Some(false)
        }
        _ => None,
    };
    let lazy = facts.analysis("analyze-reference");
    let mut avg_rank = None;
    if let Some(a) = lazy {
        let text = std::fs::read_to_string(&a.analysis).map_err(|e| Error::file(&a.analysis, e))?;
        let full: Analysis = serde_json::from_str(&text).map_err(|e| Error::file(&a.analysis, e))?;
        avg_rank = Some((full.avg_rank_first_half, full.avg_rank_second_half));
        let list = |v: &[usize]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            }
        };
        md += &format!(
            "- Lazy layers of the reference (0-based): strict (MaxRank = 1) {}; relaxed (⌊MaxRank⌋ = 1) {}.\n",
            list(&a.lazy_strict),
            list(&a.lazy_relaxed)
        );
        md += &format!(
            "- AvgRank (mean MaxRank) of the reference: first {} layers {:.2}, remaining {} layers {:.2} (the paper's lazy layers are late and of rank near 1).\n",
            full.n_layer / 2,
            full.avg_rank_first_half,
            full.n_layer - full.n_layer / 2,
            full.avg_rank_second_half
        );
    }
    md += "\n";
    let json = serde_json::json!({
        "reference_final_val": reference.final_val,
        "scratch_final_val": scratch.and_then(|s| s.final_val),
        "reference_better_than_scratch": better,
        "inheritune_matched": matched,
        "lazy_strict": lazy.map(|a| a.lazy_strict.clone()),
        "lazy_relaxed": lazy.map(|a| a.lazy_relaxed.clone()),
        "avg_rank_first_half": avg_rank.map(|r| r.0),
        "avg_rank_second_half": avg_rank.map(|r| r.1),
    });
    Ok((md, json))
}

