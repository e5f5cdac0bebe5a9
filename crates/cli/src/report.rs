//! The recipe's report: `report.md`, `summary.json`, and PNG + SVG figures (val-loss curves of
//! the reference, every Inheritune round and the baselines; MaxRank and AvgMass per layer of
//! the reference and the target), the final-loss table in the layout of spec §6.1 with the
//! paper's numbers beside ours, the early-vs-late comparison that is the recipe's signature, and
//! the downstream table when eval ran. Every number is read back from the runs' own files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use inheritune_analysis::plot::{line_chart, Series};
use inheritune_model::hf::write_atomic;
use inheritune_train::curves::{read_curves, Curves};
use serde_json::{json, Value};

use crate::recipe::Recipe;
use crate::train::plot_runs;

/// One trained model in the report.
struct Row {
    name: String,
    kind: &'static str,
    layers: Option<i64>,
    run: Option<PathBuf>,
    final_val: Option<f64>,
    curves: Curves,
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
    let a: Value =
        serde_json::from_str(&std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?)?;
    let layers = a["layers"].as_array().cloned().unwrap_or_default();
    let pick = |key: &str| -> Vec<(f64, f64)> {
        layers
            .iter()
            .map(|l| {
                (
                    l["layer"].as_f64().unwrap_or(0.0) + 1.0,
                    l[key].as_f64().unwrap_or(f64::NAN),
                )
            })
            .collect()
    };
    Ok((
        Series {
            label: label.to_string(),
            points: pick("max_rank"),
            light: false,
        },
        Series {
            label: label.to_string(),
            points: pick("avg_mass"),
            light: false,
        },
    ))
}

/// Writes the report into `out`.
///
/// # Errors
/// Unreadable run files or an unwritable folder.
pub fn write(
    recipe: &Recipe,
    run: &Path,
    out: &Path,
    ref_loss: Option<f64>,
    ref_layers: i64,
    rounds: &[(i64, Option<Value>)],
    baselines: &[(String, Option<Value>)],
) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let row = |name: String, kind: &'static str, facts: &Option<Value>| -> Result<Row> {
        let run_dir = facts.as_ref().and_then(|f| f["run"].as_str()).map(PathBuf::from);
        let curves = match &run_dir {
            Some(d) if d.join("metrics.jsonl").exists() => read_curves(d)?,
            _ => Curves::default(),
        };
        Ok(Row {
            name,
            kind,
            layers: facts.as_ref().and_then(|f| f["layers"].as_i64()),
            run: run_dir,
            final_val: facts.as_ref().and_then(|f| f["final_val_loss"].as_f64()),
            curves,
        })
    };
    let reference_facts: Option<Value> = std::fs::read_to_string(run.join("reference/DONE"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let mut rows = vec![row("reference".into(), "reference", &reference_facts)?];
    rows[0].final_val = ref_loss.or(rows[0].final_val);
    rows[0].layers = Some(ref_layers);
    for (l, facts) in rounds {
        let mut r = row(format!("inheritune-l{l}"), "inheritune", facts)?;
        r.layers = Some(*l);
        rows.push(r);
    }
    for (name, facts) in baselines {
        let kind = if name.ends_with("-2x") {
            "scratch_2x"
        } else if name.starts_with("scratch") {
            "scratch"
        } else {
            "baseline"
        };
        rows.push(row(name.clone(), kind, facts)?);
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
        figures.extend(plot_runs(&runs, out, "val_loss", false)?);
    }
    let (ra, ta) = (
        run.join("analyze-reference/analysis.json"),
        run.join("analyze-target/analysis.json"),
    );
    if ra.exists() {
        let mut rank = Vec::new();
        let mut mass = Vec::new();
        for (path, label) in [(&ra, "reference"), (&ta, "target")] {
            if path.exists() {
                let (r, m) = analysis_series(path, label)?;
                rank.push(r);
                mass.push(m);
            }
        }
        figures.extend(line_chart(
            out,
            "max_rank",
            "MaxRank per layer (k*, tau = 0.9)",
            ("layer (1-based)", "MaxRank"),
            &rank,
        )?);
        figures.extend(line_chart(
            out,
            "avg_mass",
            "AvgMass per layer (m*, eta = 0.9)",
            ("layer (1-based)", "AvgMass"),
            &mass,
        )?);
    }

    // The signature: inherited vs same-size scratch early and at the end.
    let target = rows.iter().rev().find(|r| r.kind == "inheritune");
    let scratch = rows.iter().find(|r| r.kind == "scratch");
    let mut signature = json!(null);
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
            signature = json!({
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
    let paper = |kind: &str| recipe.paper.get(kind).map_or("–".into(), |v| format!("{v:.2}"));
    let mut md = format!("# Inheritune report: {}\n\n{}\n\n", recipe.name, recipe.description);
    md += "## Final validation loss (layout of spec §6.1)\n\n";
    md += "| run | layers | steps | final val (full pass) | last-5 eval mean | paper |\n| --- | --- | --- | --- | --- | --- |\n";
    let mut summary_rows = Vec::new();
    for r in &rows {
        let steps = r.curves.steps;
        let last5 = last_mean(&r.curves.val, 5);
        let paper_key = match r.kind {
            "inheritune" if Some(r.name.as_str()) == target.map(|t| t.name.as_str()) => "inheritune",
            k => k,
        };
        md += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.layers.map_or("–".into(), |l| l.to_string()),
            steps,
            fmt(r.final_val),
            fmt(last5),
            paper(paper_key)
        );
        summary_rows.push(
            json!({"name": r.name, "kind": r.kind, "layers": r.layers, "steps": steps,
            "final_val_loss": r.final_val, "last5_eval_mean": last5,
            "paper": recipe.paper.get(paper_key), "run": r.run}),
        );
    }
    md += &format!(
        "\nMatch rule: target ≤ reference + {} (this recipe's tolerance; spec §1.6 DECISION: 0.005). Final val = token-weighted cross-entropy over the whole val split.\n\n",
        recipe.inheritune.tolerance
    );
    md += &md_signature;
    md += "## Figures\n\n";
    for f in figures.iter().filter(|f| f.extension().is_some_and(|e| e == "png")) {
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        md += &format!("![{name}]({name})\n\n");
    }
    let mut downstream = Vec::new();
    for r in &rows {
        let results = run.join(format!("eval-{}", r.name)).join("results.md");
        if let Ok(t) = std::fs::read_to_string(&results) {
            downstream.push((r.name.clone(), t));
        }
    }
    if !downstream.is_empty() {
        md += "## Downstream (zero-shot, lm-evaluation-harness semantics; layout of Table 1)\n\n";
        for (i, (name, t)) in downstream.iter().enumerate() {
            let lines: Vec<&str> = t.lines().collect();
            if i == 0 {
                md += &format!("{}\n{}\n", lines.first().unwrap_or(&""), lines.get(1).unwrap_or(&""));
            }
            if let Some(row) = lines.get(2) {
                let cells: Vec<&str> = row.splitn(3, '|').collect();
                md += &format!("| {name} |{}\n", cells.get(2).unwrap_or(&""));
            }
        }
        md += "\n";
    }
    write_atomic(&out.join("report.md"), md.as_bytes())?;
    let summary = json!({
        "recipe": recipe.name,
        "reference_final_val_loss": rows[0].final_val,
        "tolerance": recipe.inheritune.tolerance,
        "rounds": rounds.iter().map(|(l, f)| json!({"layers": l, "final_val_loss": f.as_ref().and_then(|f| f["final_val_loss"].as_f64())})).collect::<Vec<_>>(),
        "rows": summary_rows,
        "signature": signature,
        "figures": figures.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
    });
    write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    Ok(())
}
