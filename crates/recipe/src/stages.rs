//! The recipe's stages and what each depends on, as a pure function of the facts of the stages
//! that have finished: the graph grows as the growth loop decides (round k + 1 exists once round
//! k is known to be worse than the reference), and the baselines at the target's depth appear
//! once the loop has ended.

use serde::Serialize;

use crate::config::{BaselineDepth, Recipe, TokenizerSpec};
use crate::facts::Facts;
use crate::growth::{Next, Rule};

/// What a stage does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "task", rename_all = "kebab-case")]
pub enum Task {
    /// Train a byte-level BPE on the inputs.
    Tokenizer {
        /// Vocabulary size.
        vocab: usize,
    },
    /// Tokenize the inputs into shards.
    Data,
    /// Train the reference, or score the given checkpoint on the val split.
    Reference,
    /// Attention analysis of the model of stage `of`.
    Analyze {
        /// The model's stage.
        of: String,
    },
    /// One Inheritune round: inherit (or grow), then train.
    Inheritune {
        /// 1-based round.
        round: usize,
        /// Depth.
        layers: i64,
        /// The previous round's stage (warm-append growth starts from its model).
        previous: Option<String>,
    },
    /// The strategy comparison: the blocks a rule chooses (by the reference's analysis), inherited
    /// and trained as a round is.
    Select {
        /// The rule's name (`last`, `block-influence`, `angular`, `loo`, or `first` at a depth
        /// no round has).
        rule: String,
        /// Depth.
        layers: i64,
    },
    /// The reference checkpoint trained the steps every target trains.
    ReferenceTrained,
    /// A model of the reference's width trained from scratch.
    Scratch {
        /// Depth.
        layers: i64,
        /// Steps as a multiple of the shared budget.
        factor: u64,
    },
    /// Hybrid stacking: the reference's first l/2 blocks, placed twice, then trained.
    HybridStack {
        /// Depth.
        layers: i64,
    },
    /// Half-width: half the heads, width and MLP of the reference, then trained.
    HalfWidth,
    /// DistilBERT-style init from alternate reference blocks, then trained.
    DistillInit {
        /// Depth.
        layers: i64,
    },
    /// Knowledge distillation from the reference (METHOD.md §4.3).
    Kd {
        /// Student depth.
        layers: i64,
        /// DistilBERT-style initialised student (else random).
        init: bool,
    },
    /// Stacking: the trained model of stage `of` duplicated, then trained.
    Stack {
        /// The half-depth model's stage.
        of: String,
    },
    /// Downstream tasks on the model of stage `of`.
    Eval {
        /// The model's stage.
        of: String,
    },
    /// The report over every stage's facts.
    Report,
}

impl Task {
    /// Whether the stage trains (and so runs on `ranks` data-parallel ranks).
    pub fn trains(&self) -> bool {
        matches!(
            self,
            Task::Reference
                | Task::Inheritune { .. }
                | Task::Select { .. }
                | Task::ReferenceTrained
                | Task::Scratch { .. }
                | Task::HybridStack { .. }
                | Task::HalfWidth
                | Task::DistillInit { .. }
                | Task::Kd { .. }
                | Task::Stack { .. }
        )
    }
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    /// Its name, also its folder under the run.
    pub name: String,
    /// Stages whose facts it reads.
    pub deps: Vec<String>,
    /// What it does.
    pub task: Task,
    /// Rerun every time, with whatever its dependencies produced (the report).
    pub always: bool,
}

/// The stage-name patterns (`--from` / `--only` take a name or a prefix); names ending in `-l`
/// take a depth (`inheritune-l24`, `scratch-l24-2x`), `analyze-` and `eval-` a suffix.
pub const PATTERNS: &[&str] = &[
    "tokenizer",
    "data",
    "reference",
    "reference-trained",
    "analyze-reference",
    "select-",
    "inheritune-l",
    "scratch-l",
    "hybrid-stack-l",
    "half-width",
    "distill-init-l",
    "stack-l",
    "kd-l",
    "kd-init-l",
    "analyze-target",
    "eval-",
    "report",
];

/// Whether `name` names a stage or a prefix of stage names.
pub fn is_stage_name(name: &str) -> bool {
    !name.is_empty()
        && PATTERNS.iter().any(|s| {
            if s.starts_with(name) {
                return true;
            }
            let Some(rest) = name.strip_prefix(s) else {
                return false;
            };
            match *s {
                "eval-" | "select-" => true,
                s if s.ends_with("-l") => {
                    let depth = rest.strip_suffix("-2x").unwrap_or(rest);
                    !depth.is_empty() && depth.bytes().all(|b| b.is_ascii_digit())
                }
                _ => false,
            }
        })
}

/// The stage of the comparison's `rule` at depth `layers`: round 1 itself for `first` at round
/// 1's depth (`round1`), else `select-<rule>-l<layers>`.
pub fn selection_stage(rule: &str, layers: i64, round1: Option<i64>) -> String {
    if rule == "first" && Some(layers) == round1 {
        format!("inheritune-l{layers}")
    } else {
        format!("select-{rule}-l{layers}")
    }
}

/// The first lazy layer (relaxed rule) of the reference's analysis: None while it has not
/// run, Some(None) when it found none.
pub fn first_lazy(facts: &Facts) -> Option<Option<usize>> {
    facts
        .analysis("analyze-reference")
        .map(|a| a.lazy_relaxed.iter().copied().min())
}

/// The growth loop's rule for this recipe and a reference of `l_ref` layers, given the facts so
/// far; None while its start depth waits for the reference's analysis (`first-lazy`).
pub fn rule(recipe: &Recipe, l_ref: i64, facts: &Facts) -> Option<Rule> {
    let ic = &recipe.inheritune;
    Some(Rule {
        start: recipe.start_depth(l_ref, first_lazy(facts))?,
        grow_by: ic.grow_by,
        tolerance: ic.tolerance,
        max_rounds: ic.max_rounds,
        reference_layers: l_ref,
    })
}

/// Where the growth loop stands given `facts`: the rounds that finished (stage name, loss) and
/// what comes next; None while the reference's loss is unknown.
pub fn growth_state(recipe: &Recipe, l_ref: i64, facts: &Facts) -> (Vec<(String, f64)>, Option<Next>) {
    let mut done: Vec<(String, f64)> = Vec::new();
    let Some(rule) = rule(recipe, l_ref, facts) else {
        return (done, None);
    };
    let Some(reference) = facts.model("reference").map(|m| m.final_val_loss) else {
        return (done, None);
    };
    // Only the rounds the loop asks for count (a round left from an earlier run after a match
    // does not).
    loop {
        let losses: Vec<f64> = done.iter().map(|d| d.1).collect();
        let next = rule.next(reference, &losses);
        let Next::Train { layers, .. } = next else {
            return (done, Some(next));
        };
        let name = format!("inheritune-l{layers}");
        match facts.model(&name) {
            Some(m) => done.push((name, m.final_val_loss)),
            None => return (done, Some(next)),
        }
    }
}

/// Every stage known given the finished stages' `facts`, in run order. `eval` says whether the
/// downstream stages are part of the recipe (their data folder exists).
pub fn stages(recipe: &Recipe, l_ref: i64, facts: &Facts, eval: bool) -> Vec<Stage> {
    let mut out = Vec::new();
    let mut add = |name: String, deps: Vec<String>, task: Task| {
        out.push(Stage {
            name,
            deps,
            task,
            always: false,
        });
    };
    let mut data_deps = Vec::new();
    if let TokenizerSpec::Bpe(vocab) = recipe.data.tokenizer {
        add("tokenizer".into(), vec![], Task::Tokenizer { vocab });
        data_deps.push("tokenizer".to_string());
    }
    let data: Vec<String> = if recipe.data.prepared.is_none() {
        add("data".into(), data_deps.clone(), Task::Data);
        vec!["data".into()]
    } else {
        data_deps
    };
    let with = |mut v: Vec<String>, s: &str| {
        v.push(s.to_string());
        v
    };
    add("reference".into(), data.clone(), Task::Reference);
    add(
        "analyze-reference".into(),
        with(data.clone(), "reference"),
        Task::Analyze { of: "reference".into() },
    );

    // The rounds the growth loop has asked for so far (none while `first-lazy` waits for the
    // reference's analysis, which round 1 then needs).
    let (done, next) = growth_state(recipe, l_ref, facts);
    let rule = rule(recipe, l_ref, facts);
    let asked = match (next, &rule) {
        (_, None) => 0,
        (Some(Next::Train { round, .. }), _) => round,
        _ => done.len().max(1),
    };
    let round_deps = if recipe.inheritune.start_depth == crate::config::StartDepth::FirstLazy {
        with(with(data.clone(), "reference"), "analyze-reference")
    } else {
        with(data.clone(), "reference")
    };
    let mut previous: Option<String> = None;
    for round in 1..=asked {
        let Some(rule) = &rule else { break };
        let layers = rule.depth(round);
        let name = format!("inheritune-l{layers}");
        let deps = match &previous {
            Some(p) => with(round_deps.clone(), p),
            None => round_deps.clone(),
        };
        add(
            name.clone(),
            deps,
            Task::Inheritune {
                round,
                layers,
                previous: previous.clone(),
            },
        );
        previous = Some(name);
    }
    let last_round = previous.unwrap_or_default();
    let target_layers = next.and_then(Next::final_layers);
    let mut compared: Vec<String> = Vec::new();
    if recipe.reference.train_too {
        add(
            "reference-trained".into(),
            with(data.clone(), "reference"),
            Task::ReferenceTrained,
        );
        compared.push("reference-trained".into());
    }
    // The strategy comparison, at a fixed depth or round 1's (once the start depth is known).
    let round1 = rule.as_ref().map(|r| r.depth(1));
    if let Some(l) = recipe.inheritune.selection_layers.or(round1) {
        for r in recipe.inheritune.rules() {
            let name = selection_stage(r.name(), l, round1);
            if r.name() != "first" || Some(l) != round1 {
                add(
                    name.clone(),
                    with(with(data.clone(), "reference"), "analyze-reference"),
                    Task::Select {
                        rule: r.name().into(),
                        layers: l,
                    },
                );
            }
            compared.push(name);
        }
    }

    // Baselines: at a fixed depth at once; at the target's depth once the loop has ended.
    let b = &recipe.baselines;
    let (depth, after): (Option<i64>, Vec<String>) = match b.depth {
        BaselineDepth::Layers(n) => (Some(n), vec![]),
        BaselineDepth::Target => (target_layers, vec![last_round.clone()]),
    };
    let mut models: Vec<String> = vec!["reference".into()];
    if target_layers.is_some() {
        models.push(last_round.clone());
    }
    models.extend(
        compared
            .iter()
            .filter(|c| !models.contains(c))
            .cloned()
            .collect::<Vec<_>>(),
    );
    if let Some(l) = depth {
        let base = |extra: &[&str]| {
            let mut d = data.clone();
            d.extend(after.iter().cloned());
            d.extend(extra.iter().map(|s| s.to_string()));
            d
        };
        if b.scratch {
            let name = format!("scratch-l{l}");
            add(name.clone(), base(&[]), Task::Scratch { layers: l, factor: 1 });
            models.push(name);
        }
        if b.scratch_2x {
            let name = format!("scratch-l{l}-2x");
            add(name.clone(), base(&[]), Task::Scratch { layers: l, factor: 2 });
            models.push(name);
        }
        if b.hybrid_stacking {
            let name = format!("hybrid-stack-l{l}");
            add(name.clone(), base(&["reference"]), Task::HybridStack { layers: l });
            models.push(name);
        }
        if b.half_width {
            add("half-width".into(), base(&["reference"]), Task::HalfWidth);
            models.push("half-width".into());
        }
        if b.distill_init {
            let name = format!("distill-init-l{l}");
            add(name.clone(), base(&["reference"]), Task::DistillInit { layers: l });
            models.push(name);
        }
        if b.kd {
            let name = format!("kd-l{l}");
            add(name.clone(), base(&["reference"]), Task::Kd { layers: l, init: false });
            models.push(name);
        }
        if b.kd_init {
            let name = format!("kd-init-l{l}");
            add(name.clone(), base(&["reference"]), Task::Kd { layers: l, init: true });
            models.push(name);
        }
        if b.stacking {
            let half = l / 2;
            let small = format!("scratch-l{half}");
            add(
                small.clone(),
                base(&[]),
                Task::Scratch {
                    layers: half,
                    factor: 1,
                },
            );
            models.push(small.clone());
            let name = format!("stack-l{}", 2 * half);
            add(name.clone(), with(data.clone(), &small), Task::Stack { of: small });
            models.push(name);
        }
    }
    if target_layers.is_some() {
        add(
            "analyze-target".into(),
            with(data.clone(), &last_round),
            Task::Analyze { of: last_round.clone() },
        );
    }
    if eval {
        for m in &models {
            add(format!("eval-{m}"), vec![m.clone()], Task::Eval { of: m.clone() });
        }
    }
    if target_layers.is_some() && depth.is_some() {
        let deps = out.iter().map(|s| s.name.clone()).collect();
        out.push(Stage {
            name: "report".into(),
            deps,
            task: Task::Report,
            always: true,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{ModelFacts, StageFacts};

    fn recipe(extra: &str) -> Recipe {
        Recipe::parse(&format!(
            r#"name = "t"
[data]
inputs = ["c.txt"]
tokenizer = "bpe-512"
[reference.model]
preset = "gpt2-tiny"
[reference.model.overrides]
n_layer = 8
[train]
max_steps = 10
[inheritune]
max_rounds = 3
{extra}"#
        ))
        .unwrap()
    }

    fn model(loss: f64) -> StageFacts {
        StageFacts::Model(ModelFacts {
            model: "m".into(),
            layers: 0,
            final_val_loss: loss,
            final_val_tokens: 1,
            steps: Some(1),
            run: None,
        })
    }

    fn names(s: &[Stage]) -> Vec<&str> {
        s.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn graph_grows_with_the_facts() {
        let r = recipe("");
        let mut facts = Facts::default();
        let s = stages(&r, 8, &facts, false);
        assert_eq!(
            names(&s),
            ["tokenizer", "data", "reference", "analyze-reference", "inheritune-l4"]
        );
        assert_eq!(s[4].deps, ["data", "reference"]);
        facts.0.insert("reference".into(), model(3.0));
        facts.0.insert("inheritune-l4".into(), model(3.5));
        let s = stages(&r, 8, &facts, false);
        assert_eq!(names(&s)[4..], ["inheritune-l4", "inheritune-l6"]);
        assert_eq!(s[5].deps, ["data", "reference", "inheritune-l4"]);
        facts.0.insert("inheritune-l6".into(), model(2.9));
        let s = stages(&r, 8, &facts, true);
        assert_eq!(
            names(&s)[4..],
            [
                "inheritune-l4",
                "inheritune-l6",
                "scratch-l6",
                "scratch-l6-2x",
                "analyze-target",
                "eval-reference",
                "eval-inheritune-l6",
                "eval-scratch-l6",
                "eval-scratch-l6-2x",
                "report"
            ]
        );
        let scratch = s.iter().find(|s| s.name == "scratch-l6").unwrap();
        assert_eq!(scratch.deps, ["data", "inheritune-l6"]);
        let report = s.last().unwrap();
        assert!(report.always && report.deps.len() == s.len() - 1);
    }

    #[test]
    fn fixed_depth_baselines_need_no_reference() {
        let r = recipe("[baselines]\ndepth = 4\nhybrid_stacking = true\nstacking = true\n");
        let s = stages(&r, 8, &Facts::default(), false);
        let deps = |n: &str| s.iter().find(|s| s.name == n).unwrap().deps.clone();
        assert_eq!(deps("scratch-l4"), ["data"]);
        assert_eq!(deps("scratch-l4-2x"), ["data"]);
        assert_eq!(deps("hybrid-stack-l4"), ["data", "reference"]);
        assert_eq!(deps("scratch-l2"), ["data"]);
        assert_eq!(deps("stack-l4"), ["data", "scratch-l2"]);
        assert!(!names(&s).contains(&"report"), "no report before the loop ends");
    }

    #[test]
    fn first_lazy_waits_for_the_analysis() {
        let r = recipe("start_depth = \"first-lazy\"\n");
        let mut facts = Facts::default();
        facts.0.insert("reference".into(), model(3.0));
        let s = stages(&r, 8, &facts, false);
        assert!(
            !names(&s).iter().any(|n| n.starts_with("inheritune")),
            "{:?}",
            names(&s)
        );
        let analysis = |relaxed: Vec<usize>| {
            StageFacts::Analysis(crate::facts::AnalysisFacts {
                model: "m".into(),
                analysis: "a".into(),
                n_layer: 8,
                lazy_strict: vec![],
                lazy_relaxed: relaxed,
                first_lazy_depth: None,
            })
        };
        facts.0.insert("analyze-reference".into(), analysis(vec![6, 3, 7]));
        let s = stages(&r, 8, &facts, false);
        let round = s.iter().find(|s| s.name.starts_with("inheritune")).unwrap();
        assert_eq!(round.name, "inheritune-l3");
        assert_eq!(round.deps, ["data", "reference", "analyze-reference"]);
        facts.0.insert("analyze-reference".into(), analysis(vec![]));
        let s = stages(&r, 8, &facts, false);
        assert!(names(&s).contains(&"inheritune-l4"), "no lazy layer: L/2");
    }

    #[test]
    fn stage_names() {
        for ok in [
            "reference",
            "inheritune",
            "inheritune-l24",
            "scratch-l24-2x",
            "eval-reference",
            "rep",
        ] {
            assert!(is_stage_name(ok), "{ok}");
        }
        for bad in ["", "refrence", "inheritune-lx", "scratch-l-2x", "bogus"] {
            assert!(!is_stage_name(bad), "{bad}");
        }
    }
}
