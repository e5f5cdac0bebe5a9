//! The dry-run plan: every stage the recipe runs when round 1 matches, what it needs, and its
//! cost (parameters, tokens, FLOPs by the one FLOP-per-token formula, GPU-hours at the assumed
//! MFU), with the wall clock on the recipe's GPUs.

use crate::config::Recipe;
use crate::error::Result;
use crate::facts::{Facts, ModelFacts, StageFacts};
use crate::stages::{rule, stages, Task};

fn assumed(loss: f64, layers: i64) -> StageFacts {
    StageFacts::Model(ModelFacts {
        model: Default::default(),
        layers,
        final_val_loss: loss,
        final_val_tokens: 0,
        steps: None,
        run: None,
    })
}

/// The plan `--dry-run` prints.
///
/// # Errors
/// An invalid reference model or training section.
pub fn plan(recipe: &Recipe) -> Result<String> {
    let reference = recipe.planned_reference_config()?;
    let train = &recipe.train.section;
    let hw = &recipe.hardware;
    let gpus = hw.gpus.max(1);
    train.accum(gpus as u64)?;
    let tps = train.tokens_per_step(gpus as u64);
    let efficiency = if gpus > 1 { hw.scaling_efficiency } else { 1.0 };
    let hours = |f: f64| f / (hw.peak_tflops * 1e12 * hw.mfu) / 3600.0;
    let l_ref = reference.n_layer();
    // `first-lazy` is planned at ⌊L/2⌋ (the analysis decides when the recipe runs).
    let mut facts = Facts::default();
    if recipe.inheritune.start_depth == crate::config::StartDepth::FirstLazy {
        facts.0.insert(
            "analyze-reference".into(),
            StageFacts::Analysis(crate::facts::AnalysisFacts {
                model: Default::default(),
                analysis: Default::default(),
                n_layer: l_ref as usize,
                lazy_strict: vec![],
                lazy_relaxed: vec![],
                first_lazy_depth: None,
            }),
        );
    }
    let rule = rule(recipe, l_ref, &facts).expect("the start depth is known");
    let l0 = rule.start;
    let mut out = format!(
        "recipe {}: {}\nreference {} ({} layers x {}), {} tokens/step x {} steps, seq {}, lr {}\n\
         cost at {:.0}% MFU of {} ({:.0} TFLOP/s bf16): FLOPs = (6N + 12*L*H*Q*T) per token x tokens\n\n",
        recipe.name,
        recipe.description,
        reference.model_type(),
        l_ref,
        reference.n_embd(),
        tps,
        train.max_steps,
        train.seq_len,
        train.lr,
        hw.mfu * 100.0,
        hw.gpu,
        hw.peak_tflops
    );
    out += "| stage | model | parameters | tokens | FLOPs | GPU-hours | needs |\n| --- | --- | --- | --- | --- | --- | --- |\n";
    // The graph when round 1 matches.
    facts.0.insert("reference".into(), assumed(0.0, l_ref));
    facts.0.insert(format!("inheritune-l{l0}"), assumed(0.0, l0));
    let eval = recipe.eval.data_dir.is_some();
    let mut total = 0.0;
    let mut eval_shown = false;
    for stage in stages(recipe, l_ref, &facts, eval) {
        let needs = if stage.always {
            "every stage above".to_string()
        } else {
            stage.deps.join(", ")
        };
        let trained = |layers: i64, steps: u64, total: &mut f64| {
            let config = reference.with_layers(layers);
            let tokens = (tps * steps) as f64;
            let flops = inheritune_train::trainer::flops_per_token(&config, train.seq_len) * tokens;
            *total += flops;
            format!(
                "{} layers x {} | {} | {tokens:.3e} | {flops:.3e} | {:.1}",
                config.n_layer(),
                config.n_embd(),
                config.num_parameters(),
                hours(flops)
            )
        };
        let (label, what) = match &stage.task {
            Task::Tokenizer { vocab } => (
                stage.name.clone(),
                format!("train a byte-level BPE (bpe-{vocab}) | | | |"),
            ),
            Task::Data => (stage.name.clone(), "inheritune prepare | | | |".into()),
            Task::Reference if recipe.reference.checkpoint.is_some() => (
                stage.name.clone(),
                format!(
                    "given checkpoint{}, full val pass | {} | | |",
                    match &recipe.reference.checkpoint {
                        Some(c) if !c.join("config.json").exists() => format!(" ({} not there yet)", c.display()),
                        _ => String::new(),
                    },
                    reference.num_parameters()
                ),
            ),
            Task::Reference => (stage.name.clone(), trained(l_ref, train.max_steps, &mut total)),
            Task::Analyze { .. } => (stage.name.clone(), "attention rank and mass | | | |".into()),
            Task::Inheritune { round, layers, .. } => {
                let row = (
                    format!("{} (round {round})", stage.name),
                    trained(*layers, train.max_steps, &mut total),
                );
                let grown = reference.with_layers((layers + rule.grow_by).min(l_ref));
                out += &format!("| {} | {} | {needs} |\n", row.0, row.1);
                out += &format!(
                    "| (each further round, if worse than the reference by > {}) | {} layers x {} | {} | as round 1 | | | inheritune-l{layers} |\n",
                    rule.tolerance,
                    grown.n_layer(),
                    grown.n_embd(),
                    grown.num_parameters()
                );
                continue;
            }
            Task::Scratch { layers, factor } => (
                stage.name.clone(),
                trained(*layers, train.max_steps * factor, &mut total),
            ),
            Task::HybridStack { layers } | Task::DistillInit { layers } => {
                (stage.name.clone(), trained(*layers, train.max_steps, &mut total))
            }
            Task::Select { rule, layers } => (
                format!("{} (blocks by {rule})", stage.name),
                trained(*layers, train.max_steps, &mut total),
            ),
            Task::ReferenceTrained => (
                format!("{} (the checkpoint, same steps)", stage.name),
                trained(l_ref, train.max_steps, &mut total),
            ),
            Task::Kd { layers, .. } => {
                // The student's training plus the teacher's forward pass on every token.
                let config = reference.with_layers(*layers);
                let tokens = (tps * recipe.distill.max_steps) as f64;
                let fpt = inheritune_train::trainer::flops_per_token(&config, train.seq_len)
                    + inheritune_train::trainer::flops_per_token(&reference, train.seq_len) / 3.0;
                let flops = fpt * tokens;
                total += flops;
                (
                    format!("{} (student; FLOPs with the teacher's forward)", stage.name),
                    format!(
                        "{} layers x {} | {} | {tokens:.3e} | {flops:.3e} | {:.1}",
                        config.n_layer(),
                        config.n_embd(),
                        config.num_parameters(),
                        hours(flops)
                    ),
                )
            }
            Task::HalfWidth => match inheritune_surgery::ops::half_width_config(&reference) {
                Ok(c) => {
                    let config = inheritune_model::ModelConfig::Gpt2(c);
                    let tokens = (tps * train.max_steps) as f64;
                    let flops = inheritune_train::trainer::flops_per_token(&config, train.seq_len) * tokens;
                    total += flops;
                    (
                        stage.name.clone(),
                        format!(
                            "{} layers x {} ({} heads) | {} | {tokens:.3e} | {flops:.3e} | {:.1}",
                            config.n_layer(),
                            config.n_embd(),
                            config.n_head(),
                            config.num_parameters(),
                            hours(flops)
                        ),
                    )
                }
                Err(e) => (stage.name.clone(), format!("{e} | | | |")),
            },
            Task::Stack { .. } => {
                let layers = stage.name.trim_start_matches("stack-l").parse().unwrap_or(l0);
                (stage.name.clone(), trained(layers, train.max_steps, &mut total))
            }
            Task::Eval { .. } => {
                if !eval_shown {
                    out += &format!("| eval-* | {} | | | | | each model |\n", recipe.eval.tasks.join(", "));
                    eval_shown = true;
                }
                continue;
            }
            Task::Report => (stage.name.clone(), "report.md, figures, summary.json | | | |".into()),
        };
        out += &format!("| {label} | {what} | {needs} |\n");
    }
    if !eval {
        out += "| eval | skipped (no [eval] data_dir) | | | | | |\n";
    }
    let wall = hours(total) / (gpus as f64 * efficiency);
    out += &format!(
        "\ntotal (one Inheritune round): {:.3e} FLOPs, {:.1} GPU-hours on {}\n",
        total,
        hours(total),
        hw.gpu
    );
    out += &format!(
        "wall clock on {gpus} x {}: {:.1} hours ({:.0}% scaling efficiency assumed{}), one stage at a time\n",
        hw.gpu,
        wall,
        efficiency * 100.0,
        if gpus > 1 {
            ", [hardware] scaling_efficiency"
        } else {
            ": one GPU"
        }
    );
    Ok(out)
}
