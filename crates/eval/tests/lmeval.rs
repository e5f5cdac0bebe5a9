//! Parity with lm-evaluation-harness 0.4.13 (fixtures made by lm-eval itself on the offline
//! oracle kit, `fixtures/lmeval/make_fixture.py`): for every task, every context and
//! continuation string equal, every log-likelihood within a relative 1e-5 (absolute 1e-4 near
//! zero), every is_greedy equal, and every task metric and standard error equal; at batch size 1
//! and 8. And all 57 MMLU subjects 5-shot (`fixtures/lmeval/make_mmlu57.py`, lm-eval's own
//! subject categories): every subject's, category's and the group's accuracy and stderr
//! (the group's pooled variance).

use std::path::{Path, PathBuf};

use inheritune_eval::{evaluate, Scorer};
use inheritune_model::tch::Device;
use inheritune_model::DType;
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lmeval")
}

fn close(a: f64, b: f64) -> bool {
    let tol = (1e-5 * b.abs()).max(1e-4);
    (a - b).abs() <= tol || (a.is_infinite() && a == b)
}

fn check(model: &str, expected: &str, batch: usize) -> anyhow::Result<()> {
    let dir = fixture();
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(expected))?)?;
    let scorer = Scorer::load(&dir.join(model), Device::Cpu, DType::F32, batch)?;
    let tasks: Vec<String> = expected.as_object().unwrap().keys().cloned().collect();
    assert_eq!(tasks.len(), 16, "the fixture covers every task");
    let eval = evaluate(&scorer, &tasks, &dir.join("data"), None, Some(5), &mut |_, _, _| {})?;
    for task in &tasks {
        let want = &expected[task];
        let ours: Vec<_> = eval.samples.iter().filter(|s| &s.task == task).collect();
        let mut n = 0;
        for doc in want["docs"].as_array().unwrap() {
            let doc_id = doc["doc_id"].as_u64().unwrap() as usize;
            for (k, req) in doc["requests"].as_array().unwrap().iter().enumerate() {
                let s = ours
                    .iter()
                    .find(|s| s.doc_id == doc_id && s.index == k)
                    .unwrap_or_else(|| panic!("{task} doc {doc_id} request {k} missing"));
                n += 1;
                if task == "wikitext" {
                    // The rolling request's text is the detokenized page.
                    assert_eq!(
                        s.continuation,
                        req["context"].as_str().unwrap(),
                        "{task} doc {doc_id} text"
                    );
                } else {
                    assert_eq!(
                        s.context,
                        req["context"].as_str().unwrap(),
                        "{task} doc {doc_id} context {k}"
                    );
                    assert_eq!(
                        s.continuation,
                        req["continuation"].as_str().unwrap(),
                        "{task} doc {doc_id} continuation {k}"
                    );
                    assert_eq!(
                        s.is_greedy,
                        req["is_greedy"].as_bool(),
                        "{task} doc {doc_id} is_greedy {k}"
                    );
                }
                let want_ll = req["loglikelihood"].as_f64().unwrap();
                assert!(
                    close(s.loglikelihood, want_ll),
                    "{task} doc {doc_id} request {k} (batch {batch}): ll {} vs lm-eval {want_ll}",
                    s.loglikelihood
                );
            }
        }
        assert_eq!(n, ours.len(), "{task}: request count");
        let result = eval.results.iter().find(|r| &r.name == task).unwrap();
        for (metric, v) in want["metrics"].as_object().unwrap() {
            let (ours, theirs) = (result.metrics[metric.as_str()], v.as_f64().unwrap());
            assert!(
                (ours - theirs).abs() <= 1e-5 * theirs.abs().max(1e-9),
                "{task} {metric}: {ours} vs lm-eval {theirs}"
            );
        }
        // Standard errors: the sample stderr of the mean, lambada's bootstrapped perplexity
        // stderr, and none (lm-eval's "N/A") for corpus-level metrics such as wikitext's.
        // expected.json carries them for every task (expected_bos.json, made before, does not).
        if model == "model" {
            assert!(
                want["stderr"].as_object().is_some_and(|m| !m.is_empty()),
                "{task}: no stderr in the fixture"
            );
        }
        for (metric, v) in want["stderr"].as_object().into_iter().flatten() {
            let ours = result.stderr.get(metric.as_str()).copied().flatten();
            match (ours, v.as_f64()) {
                (Some(o), Some(t)) => assert!(
                    (o - t).abs() <= 1e-5 * t.abs().max(1e-9),
                    "{task} {metric} stderr: {o} vs lm-eval {t}"
                ),
                (None, None) => {}
                (o, t) => panic!("{task} {metric} stderr: {o:?} vs lm-eval {t:?}"),
            }
        }
    }
    Ok(())
}

#[test]
fn every_task_matches_lm_eval_batch_1() -> anyhow::Result<()> {
    check("model", "expected.json", 1)
}

#[test]
fn every_task_matches_lm_eval_batch_8() -> anyhow::Result<()> {
    check("model", "expected.json", 8)
}

/// The same tasks with a tokenizer that prepends `<|endoftext|>` (a LLaMA-style post-processor):
/// the harness's BOS rule (EVAL-TASKS.md §1.4) and the BOS inside rolling windows (§1.8).
#[test]
fn every_task_matches_lm_eval_with_a_bos_tokenizer() -> anyhow::Result<()> {
    check("model_bos", "expected_bos.json", 4)
}

#[test]
fn all_57_mmlu_subjects_their_categories_and_the_group_match_lm_eval() -> anyhow::Result<()> {
    let dir = fixture();
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected_mmlu57.json"))?)?;
    let expected = expected.as_object().unwrap();
    assert_eq!(
        expected.len(),
        1 + 4 + 57,
        "the group, its 4 categories and 57 subjects"
    );
    let scorer = Scorer::load(&dir.join("model"), Device::Cpu, DType::F32, 8)?;
    let eval = evaluate(
        &scorer,
        &["mmlu".to_string()],
        &dir.join("data_mmlu57"),
        None,
        Some(5),
        &mut |_, _, _| {},
    )?;
    for (name, want) in expected {
        let got = eval
            .results
            .iter()
            .find(|r| &r.name == name)
            .unwrap_or_else(|| panic!("{name}: not in our results"));
        let (acc, want_acc) = (got.metrics["acc"], want["acc"].as_f64().unwrap());
        assert!(
            (acc - want_acc).abs() <= 1e-9,
            "{name} acc: {acc} vs lm-eval {want_acc}"
        );
        let se = got.stderr.get("acc").copied().flatten();
        match (se, want["acc_stderr"].as_f64()) {
            (Some(o), Some(t)) => assert!(
                (o - t).abs() <= 1e-9 * t.max(1.0),
                "{name} acc stderr: {o} vs lm-eval {t}"
            ),
            (None, None) => {}
            (o, t) => panic!("{name} acc stderr: {o:?} vs lm-eval {t:?}"),
        }
    }
    Ok(())
}
