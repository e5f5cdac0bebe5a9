//! Running tasks through a [`Scorer`] and aggregating like lm-evaluation-harness (EVAL-TASKS.md
//! §2): acc, acc_norm (character length), TruthfulQA MC2, LAMBADA acc and
//! perplexity, WikiText word/byte perplexity and bits per byte, MMLU micro-averages; sample
//! standard errors; lm-eval-style results JSON, per-request samples, and a Markdown table.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::pystr;
use crate::scorer::Scorer;
use crate::tasks::{Item, Kind, Task, MMLU};

/// One request's outcome, for `--log-samples`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Task.
    pub task: String,
    /// Document index in the split.
    pub doc_id: usize,
    /// Request index within the document.
    pub index: usize,
    /// Context string.
    pub context: String,
    /// Continuation string.
    pub continuation: String,
    /// Summed log-probability of the continuation (f32 sum, as f64).
    pub loglikelihood: f64,
    /// Whether greedy decoding reproduces the continuation (null for rolling requests).
    pub is_greedy: Option<bool>,
}

/// A task's (or group's) metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    /// Task or group name.
    pub name: String,
    /// Metric → value (`acc`, `acc_norm`, `perplexity`, `word_perplexity`, ...).
    pub metrics: BTreeMap<String, f64>,
    /// Metric → standard error (None where the harness reports N/A).
    pub stderr: BTreeMap<String, Option<f64>>,
    /// Documents.
    pub n: usize,
}

/// Everything one evaluation produced.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// Per task, in the order asked, then MMLU groups.
    pub results: Vec<TaskResult>,
    /// Every request.
    pub samples: Vec<Sample>,
}

fn argmax(values: &[f64]) -> usize {
    // numpy.argmax: the first maximal index; NaN counts as the maximum.
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() {
            return i;
        }
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// lm-eval's default `bootstrap_iters`.
pub const BOOTSTRAP_ITERS: usize = 100_000;

/// lm-eval's `pooled_sample_stderr` for a size-weighted group: the members' (size, stderr)
/// pooled as Σ (nᵢ − 1)·seᵢ²·nᵢ / (N − k), then √(var / N); None (lm-eval's "N/A") when a
/// member has none.
fn pooled_sample_stderr(parts: &[(usize, Option<f64>)]) -> Option<f64> {
    let total: usize = parts.iter().map(|p| p.0).sum();
    if total <= parts.len() {
        return None;
    }
    let mut var = 0.0;
    for &(n, se) in parts {
        let se = se?;
        var += (n as f64 - 1.0) * se * se * n as f64;
    }
    Some((var / (total - parts.len()) as f64 / total as f64).sqrt())
}

fn mean_stderr(xs: &[f64]) -> (f64, Option<f64>) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, None);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, Some((var / n).sqrt()))
}

/// Evaluates `tasks` (names as in [`crate::tasks::TASKS`]) with data from `data_dir`.
/// `limit` keeps the first N documents of each task; `num_fewshot` applies to MMLU (default 5).
///
/// # Errors
/// Unknown tasks, bad data, model failures.
pub fn evaluate(
    scorer: &Scorer,
    tasks: &[String],
    data_dir: &Path,
    limit: Option<usize>,
    num_fewshot: Option<usize>,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Evaluation> {
    let mut resolved = Vec::new();
    for name in tasks {
        resolved.extend(Task::resolve(name)?);
    }
    // Read and check every task's data before scoring anything.
    let mut prepared: Vec<(Task, Vec<Item>)> = Vec::new();
    for task in resolved {
        let shots = if task.subject.is_some() {
            num_fewshot.unwrap_or(5)
        } else {
            0
        };
        let mut items = task.items(data_dir, shots)?;
        if let Some(l) = limit {
            items.truncate(l);
        }
        if items.is_empty() {
            return Err(Error::Data {
                path: data_dir.join(&task.folder),
                message: format!("{}: no documents", task.name),
            });
        }
        prepared.push((task, items));
    }
    let mut eval = Evaluation::default();
    let mut mmlu: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut subject_means: Vec<f64> = Vec::new();
    // Per category, each subject's (documents, acc stderr): the groups' pooled stderr.
    let mut subjects: BTreeMap<&'static str, Vec<(usize, Option<f64>)>> = BTreeMap::new();
    for (task, items) in &prepared {
        let requests: Vec<(String, String)> = items.iter().flat_map(|i| i.requests.iter().cloned()).collect();
        let total = requests.len();
        let mut done = 0;
        let mut tick = |n: usize| {
            done += n;
            progress(&task.name, done, total);
        };
        let scores: Vec<(f64, Option<bool>)> = if task.kind == Kind::Rolling {
            let texts: Vec<String> = requests.iter().map(|r| r.1.clone()).collect();
            scorer
                .rolling(&texts, &mut tick)?
                .into_iter()
                .map(|ll| (ll, None))
                .collect()
        } else {
            scorer
                .loglikelihood(&requests, &mut tick)?
                .into_iter()
                .map(|(ll, g)| (ll, Some(g)))
                .collect()
        };
        let mut at = 0;
        let mut per: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let (mut ll_sum, mut words, mut bytes) = (0.0f64, 0u64, 0u64);
        for item in items {
            let k = item.requests.len();
            let doc_scores = &scores[at..at + k];
            for (j, ((ctx, cont), (ll, greedy))) in item.requests.iter().zip(doc_scores).enumerate() {
                eval.samples.push(Sample {
                    task: task.name.clone(),
                    doc_id: item.doc_id,
                    index: j,
                    context: ctx.clone(),
                    continuation: cont.clone(),
                    loglikelihood: *ll,
                    is_greedy: *greedy,
                });
            }
            at += k;
            let lls: Vec<f64> = doc_scores.iter().map(|s| s.0).collect();
            match task.kind {
                Kind::MultipleChoice { norm } => {
                    let pred = argmax(&lls);
                    per.entry("acc").or_default().push(f64::from(pred as i64 == item.gold));
                    if norm {
                        let normed: Vec<f64> = lls
                            .iter()
                            .zip(&item.choices)
                            .map(|(ll, c)| ll / pystr::len(c) as f64)
                            .collect();
                        per.entry("acc_norm")
                            .or_default()
                            .push(f64::from(argmax(&normed) as i64 == item.gold));
                    }
                }
                Kind::Mc2 => {
                    let p: Vec<f64> = lls.iter().map(|l| l.exp()).collect();
                    let z: f64 = p.iter().sum();
                    let score: f64 = p
                        .iter()
                        .zip(&item.labels)
                        .filter(|(_, &l)| l == 1)
                        .map(|(p, _)| p / z)
                        .sum();
                    per.entry("acc").or_default().push(score);
                }
                Kind::Lambada => {
                    per.entry("perplexity").or_default().push(lls[0]);
                    per.entry("acc")
                        .or_default()
                        .push(f64::from(doc_scores[0].1 == Some(true)));
                }
                Kind::Rolling => {
                    ll_sum += lls[0];
                    words += item.words;
                    bytes += item.bytes;
                }
            }
        }
        let mut result = TaskResult {
            name: task.name.clone(),
            metrics: BTreeMap::new(),
            stderr: BTreeMap::new(),
            n: items.len(),
        };
        for (metric, xs) in &per {
            if *metric == "perplexity" {
                let mean = xs.iter().sum::<f64>() / xs.len() as f64;
                result.metrics.insert("perplexity".into(), (-mean).exp());
                // lm-eval bootstraps this one (100,000 resamples by default), bit for bit.
                let se = crate::bootstrap::perplexity_stderr(xs, BOOTSTRAP_ITERS);
                result.stderr.insert("perplexity".into(), se);
            } else {
                let (m, se) = mean_stderr(xs);
                result.metrics.insert(metric.to_string(), m);
                result.stderr.insert(metric.to_string(), se);
            }
        }
        if task.kind == Kind::Rolling {
            for (metric, v) in [
                ("word_perplexity", (-ll_sum / words as f64).exp()),
                ("byte_perplexity", (-ll_sum / bytes as f64).exp()),
                ("bits_per_byte", -ll_sum / bytes as f64 / std::f64::consts::LN_2),
            ] {
                result.metrics.insert(metric.into(), v);
                result.stderr.insert(metric.into(), None);
            }
        }
        if let Some(category) = task.mmlu_category() {
            let accs = per.get("acc").cloned().unwrap_or_default();
            if !accs.is_empty() {
                subject_means.push(accs.iter().sum::<f64>() / accs.len() as f64);
                subjects
                    .entry(category)
                    .or_default()
                    .push((accs.len(), mean_stderr(&accs).1));
            }
            mmlu.entry(category).or_default().extend(&accs);
            mmlu.entry("").or_default().extend(accs);
        }
        eval.results.push(result);
    }
    // MMLU groups: size-weighted (micro) averages over every question of the subjects run, and
    // lm-eval's pooled stderr over each group's leaf tasks: a category over its subjects, and
    // `mmlu` over all subjects (lm-eval 0.4.13's Group.aggregate reads the leaves, not the
    // categories' stderrs; tests/lmeval.rs checks all 57 subjects against it).
    let category_stderr = |c: &str| pooled_sample_stderr(subjects.get(c).map_or(&[][..], |v| v.as_slice()));
    let all_subjects: Vec<(usize, Option<f64>)> = MMLU
        .iter()
        .flat_map(|(c, _)| subjects.get(c).cloned().unwrap_or_default())
        .collect();
    for (category, _) in std::iter::once(&("", &[][..])).chain(MMLU.iter()) {
        if let Some(xs) = mmlu.get(category) {
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            let se = if category.is_empty() {
                pooled_sample_stderr(&all_subjects)
            } else {
                category_stderr(category)
            };
            let mut metrics = BTreeMap::from([("acc".to_string(), m)]);
            let mut stderr = BTreeMap::from([("acc".to_string(), se)]);
            if category.is_empty() {
                // The paper's MMLU number is the mean over subjects (macro); lm-eval's group
                // is the size-weighted mean above (micro). Both are reported.
                let macro_mean = subject_means.iter().sum::<f64>() / subject_means.len() as f64;
                metrics.insert("acc_macro".to_string(), macro_mean);
                stderr.insert("acc_macro".to_string(), None);
            }
            eval.results.push(TaskResult {
                name: if category.is_empty() {
                    "mmlu".into()
                } else {
                    format!("mmlu_{category}")
                },
                metrics,
                stderr,
                n: xs.len(),
            });
        }
    }
    Ok(eval)
}

impl Evaluation {
    /// lm-eval-compatible results: `results[task]["acc,none"]`, `"acc_stderr,none"`, ...
    pub fn results_json(&self, config: Value) -> Value {
        let mut results = serde_json::Map::new();
        let mut n_samples = serde_json::Map::new();
        for r in &self.results {
            let mut m = serde_json::Map::new();
            m.insert("alias".into(), json!(r.name));
            for (k, v) in &r.metrics {
                m.insert(format!("{k},none"), json!(v));
                let se = r.stderr.get(k).copied().flatten();
                m.insert(format!("{k}_stderr,none"), se.map_or(json!("N/A"), |s| json!(s)));
            }
            results.insert(r.name.clone(), Value::Object(m));
            n_samples.insert(r.name.clone(), json!({"original": r.n, "effective": r.n}));
        }
        json!({"results": results, "n-samples": n_samples, "config": config})
    }

    /// The metric Table 1 reports for each task, in the order run: (column label, value in
    /// percent, or as it is for perplexities, and whether it counts in the average). MMLU's
    /// categories are left out (the `mmlu` row carries the average); its macro mean over
    /// subjects follows it as a column of its own, outside the average.
    pub fn reported(&self) -> Vec<(String, f64, bool)> {
        let reported = |r: &TaskResult| -> Option<(String, f64, bool)> {
            let (metric, pct) = match r.name.as_str() {
                "hellaswag" => ("acc_norm", true),
                "wikitext" => ("word_perplexity", false),
                n if n.starts_with("mmlu_") => return None,
                _ => ("acc", true),
            };
            let v = *r.metrics.get(metric)?;
            Some((format!("{} ({metric})", r.name), if pct { 100.0 * v } else { v }, pct))
        };
        let mut cols = Vec::new();
        for r in &self.results {
            cols.extend(reported(r));
            // The paper's MMLU number is the macro mean over subjects; lm-eval's is micro.
            if let (true, Some(&v)) = (r.name == "mmlu", r.metrics.get("acc_macro")) {
                cols.push(("mmlu (acc_macro, the paper's)".to_string(), 100.0 * v, false));
            }
        }
        cols
    }

    /// The mean of the percentage columns of [`Evaluation::reported`] (NaN without any).
    pub fn reported_average(&self) -> f64 {
        let accs: Vec<f64> = self.reported().iter().filter(|c| c.2).map(|c| c.1).collect();
        if accs.is_empty() {
            f64::NAN
        } else {
            accs.iter().sum::<f64>() / accs.len() as f64
        }
    }

    /// The paper's Table 1 layout: one row, the reported metric of each task in percent
    /// (perplexities as they are), and the average of the percentages.
    pub fn markdown_table(&self, model: &str) -> String {
        let cols = self.reported();
        let mut out = format!(
            "| model | {} | avg |\n",
            cols.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(" | ")
        );
        out += &format!("|{}\n", " --- |".repeat(cols.len() + 2));
        out += &format!(
            "| {model} | {} | {:.2} |\n",
            cols.iter()
                .map(|c| format!("{:.2}", c.1))
                .collect::<Vec<_>>()
                .join(" | "),
            self.reported_average()
        );
        out
    }

    /// Reads the metrics back from a `results.json` that [`Evaluation::results_json`] wrote,
    /// tasks in the order they were run (no samples).
    ///
    /// # Errors
    /// An unreadable file or one not in that layout, naming the file and the key.
    pub fn read_results(path: &Path) -> Result<Evaluation> {
        let bad = |message: String| Error::Data {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let results = v["results"]
            .as_object()
            .ok_or_else(|| bad("no \"results\" object".into()))?;
        // Tasks in the order asked, then the MMLU groups (a JSON object is read back sorted).
        let mut order: Vec<String> = v["config"]["tasks"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect())
            .unwrap_or_default();
        order.retain(|t| results.contains_key(t));
        let rest: Vec<String> = results.keys().filter(|k| !order.contains(k)).cloned().collect();
        order.extend(rest);
        let mut eval = Evaluation::default();
        for name in order {
            let entry = results[&name]
                .as_object()
                .ok_or_else(|| bad(format!("results.{name} is not an object")))?;
            let mut r = TaskResult {
                name: name.clone(),
                metrics: BTreeMap::new(),
                stderr: BTreeMap::new(),
                n: v["n-samples"][&name]["effective"].as_u64().unwrap_or(0) as usize,
            };
            for (key, value) in entry {
                let Some(metric) = key.strip_suffix(",none") else {
                    continue;
                };
                if let Some(m) = metric.strip_suffix("_stderr") {
                    r.stderr.insert(m.to_string(), value.as_f64());
                } else {
                    let x = value
                        .as_f64()
                        .ok_or_else(|| bad(format!("results.{name}.{key} is not a number")))?;
                    r.metrics.insert(metric.to_string(), x);
                }
            }
            eval.results.push(r);
        }
        Ok(eval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pooled stderr equals the within-subject pooled variance computed from the items
    /// themselves: Σᵢ Σⱼ (xᵢⱼ − x̄ᵢ)² / (N − k), over N, square-rooted.
    #[test]
    fn pooled_stderr_is_the_within_group_variance() {
        let groups: [&[f64]; 3] = [&[1.0, 0.0, 1.0, 1.0], &[0.0, 0.0, 1.0], &[1.0, 1.0, 0.0, 1.0, 0.0]];
        let parts: Vec<(usize, Option<f64>)> = groups.iter().map(|g| (g.len(), mean_stderr(g).1)).collect();
        let n: usize = groups.iter().map(|g| g.len()).sum();
        let within: f64 = groups
            .iter()
            .map(|g| {
                let m = g.iter().sum::<f64>() / g.len() as f64;
                g.iter().map(|x| (x - m) * (x - m)).sum::<f64>()
            })
            .sum();
        let want = (within / (n - groups.len()) as f64 / n as f64).sqrt();
        let got = pooled_sample_stderr(&parts).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // A member without a stderr (one document) makes the group's N/A, as lm-eval does.
        assert_eq!(pooled_sample_stderr(&[(4, Some(0.25)), (1, None)]), None);
    }
}
