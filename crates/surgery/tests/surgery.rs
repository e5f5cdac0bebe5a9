//! Inheritance, growth and baselines: copies are bit-identical, fresh tensors are seeded, counts
//! follow the config, grow-then-truncate is the identity, function-preserving growth keeps logits.

use std::collections::BTreeSet;

use inheritune_model::tch::{self, Device, Kind, Tensor};
use inheritune_model::{CausalLm, DType, Gpt2Config, LlamaConfig, ModelConfig};
use inheritune_surgery::{distill_init, grow, half_width, hybrid_stack, inherit, stack, truncate};
use inheritune_surgery::{Group, GrowMode, InheritMap, Plan, Selection, Source};
use proptest::prelude::*;

/// libtorch's generator is process-global and tests run on parallel threads: every test that
/// draws random numbers holds this lock, so "reproducible from the seed" is not raced.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// A model with its own init plus noise on every tensor, so norms and biases differ from a fresh init.
fn model(config: ModelConfig, seed: i64) -> CausalLm {
    tch::manual_seed(seed);
    let m = CausalLm::new(&config, Device::Cpu, DType::F32).expect("valid test config");
    tch::no_grad(|| {
        for (_, mut t) in m.named_parameters() {
            let _ = t.f_add_(&(Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.05));
        }
    });
    m
}

fn gpt2(layers: i64) -> ModelConfig {
    ModelConfig::Gpt2(Gpt2Config {
        vocab_size: 64,
        n_positions: 16,
        ..Gpt2Config::paper(layers, 4, 32)
    })
}

fn llama(layers: i64) -> ModelConfig {
    ModelConfig::Llama(LlamaConfig {
        vocab_size: 64,
        max_position_embeddings: 16,
        hidden_size: 32,
        intermediate_size: 40,
        ..LlamaConfig::tiny().with_layers(layers)
    })
}

fn ids(vocab: i64) -> Tensor {
    tch::manual_seed(99);
    Tensor::randint(vocab, [2, 12], (Kind::Int64, Device::Cpu))
}

/// Every copied (unsliced) tensor equals its source bit for bit; every zero is zero.
fn check_copies(target: &CausalLm, plan: &Plan, donors: &[(&str, &CausalLm)]) -> Result<(), TestCaseError> {
    let tp = target.named_parameters();
    for e in &plan.entries {
        let t = &tp[&e.target];
        prop_assert_eq!(&t.size(), &e.shape);
        match &e.source {
            Source::Copy { donor, from, slices } if slices.is_empty() => {
                let d = donors
                    .iter()
                    .find(|(l, _)| l == donor)
                    .map(|(_, m)| m.named_parameters())
                    .unwrap_or_default();
                prop_assert!(t.equal(&d[from]), "{} != {donor}:{from}", e.target);
            }
            Source::Zero => prop_assert_eq!(t.abs().sum(Kind::Float).double_value(&[]), 0.0),
            _ => {}
        }
    }
    prop_assert_eq!(target.num_parameters(), plan.target.num_parameters());
    prop_assert_eq!(target.config().n_layer(), plan.target.n_layer());
    Ok(())
}

fn arb_config() -> impl Strategy<Value = ModelConfig> {
    (any::<bool>(), 2i64..7, any::<bool>(), any::<bool>()).prop_map(|(is_gpt2, layers, bias, tie)| {
        if is_gpt2 {
            ModelConfig::Gpt2(Gpt2Config {
                bias,
                tie_word_embeddings: tie,
                vocab_size: 40,
                n_positions: 12,
                ..Gpt2Config::paper(layers, 2, 16)
            })
        } else {
            ModelConfig::Llama(LlamaConfig {
                tie_word_embeddings: tie,
                attention_bias: bias,
                vocab_size: 40,
                max_position_embeddings: 12,
                hidden_size: 16,
                intermediate_size: 24,
                ..LlamaConfig::tiny().with_layers(layers)
            })
        }
    })
}

fn arb_map() -> impl Strategy<Value = InheritMap> {
    prop_oneof![
        Just(InheritMap::Paper),
        Just(InheritMap::ReleasedCode),
        prop::collection::btree_set(prop::sample::select(Group::ALL.to_vec()), 0..8).prop_map(InheritMap::Custom),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn inherited_tensors_are_bit_identical(config in arb_config(), frac in 0.0f64..1.0, map in arb_map(), last in any::<bool>(), seed in 0i64..1000) {
        let _rng = rng_lock();
        let reference = model(config.clone(), 1);
        let big = config.n_layer();
        let l = 1 + ((big - 1) as f64 * frac) as i64;
        let selection = if last { Selection::Last } else { Selection::First };
        // A custom map may name only groups the model has (LLaMA has no `pos`, a tied model no
        // `head`): the others are refused, naming them.
        let present: std::collections::BTreeSet<Group> = config
            .parameter_shapes()
            .iter()
            .map(|p| inheritune_surgery::ops::group_of(
                inheritune_model::Role::parse(config.family(), &p.name).expect("a parameter"),
            ))
            .collect();
        let map = match map {
            InheritMap::Custom(g) if !g.is_subset(&present) => {
                let absent = g.difference(&present).next().expect("absent").name();
                let err = inherit(&reference, l, &InheritMap::Custom(g.clone()), &selection, seed).unwrap_err().to_string();
                prop_assert!(err.contains(absent), "{err}");
                InheritMap::Custom(g.intersection(&present).copied().collect())
            }
            m => m,
        };
        let (target, plan) = inherit(&reference, l, &map, &selection, seed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_copies(&target, &plan, &[("reference", &reference)])?;
        // Block j comes from reference block j (first) or L-l+j (last), for the groups in the map.
        let groups = map.groups(&config).unwrap();
        for e in &plan.entries {
            let copied = matches!(e.source, Source::Copy { .. });
            let group = inheritune_surgery::ops::group_of(
                inheritune_model::Role::parse(reference.config().family(), &e.target).expect("a parameter"),
            );
            prop_assert_eq!(copied, groups.contains(&group), "{}", e.target);
        }
        // Fresh tensors are reproducible from the seed.
        let again = plan.apply(&[("reference", &reference)]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (name, t) in target.named_parameters() {
            prop_assert!(t.equal(&again.named_parameters()[&name]), "{name} not reproducible");
        }
    }

    #[test]
    fn grow_then_truncate_is_identity(config in arb_config(), delta in 1i64..3, fp in any::<bool>(), seed in 0i64..100) {
        let _rng = rng_lock();
        let reference = model(config.clone(), 2);
        let big = config.n_layer();
        prop_assume!(big > delta);
        let l = big - delta;
        let (trained, _) = inherit(&reference, l, &InheritMap::Paper, &Selection::First, seed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (grown, plan) = grow(&trained, &reference, delta, GrowMode::WarmAppend, &InheritMap::Paper, fp, seed)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_copies(&grown, &plan, &[("trained", &trained), ("reference", &reference)])?;
        let (back, _) = truncate(&grown, l).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (a, b) = (trained.named_parameters(), back.named_parameters());
        prop_assert_eq!(a.len(), b.len());
        for (name, t) in &a {
            prop_assert!(t.equal(&b[name]), "{name}");
        }
    }

    #[test]
    fn function_preserving_growth_keeps_logits(config in arb_config(), delta in 1i64..3) {
        let _rng = rng_lock();
        let reference = model(config.clone(), 3);
        let big = config.n_layer();
        prop_assume!(big > delta);
        let (trained, _) = inherit(&reference, big - delta, &InheritMap::ReleasedCode, &Selection::First, 5).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (grown, _) = grow(&trained, &reference, delta, GrowMode::WarmAppend, &InheritMap::Paper, true, 5).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let x = ids(40);
        let diff = (trained.forward(&x).map_err(|e| TestCaseError::fail(e.to_string()))? - grown.forward(&x).map_err(|e| TestCaseError::fail(e.to_string()))?)
            .abs().max().double_value(&[]);
        prop_assert!(diff <= 1e-6, "logits moved by {diff}");
    }
}

#[test]
fn released_code_map_differs_from_paper_only_in_positions_and_final_norm() -> anyhow::Result<()> {
    let _rng = rng_lock();
    let reference = model(gpt2(6), 4);
    let (paper, _) = inherit(&reference, 3, &InheritMap::Paper, &Selection::First, 9)?;
    let (released, _) = inherit(&reference, 3, &InheritMap::ReleasedCode, &Selection::First, 9)?;
    let (p, r) = (paper.named_parameters(), released.named_parameters());
    let differing: BTreeSet<&str> = p.keys().filter(|k| !p[*k].equal(&r[*k])).map(String::as_str).collect();
    assert_eq!(
        differing,
        BTreeSet::from(["transformer.ln_f.weight", "transformer.wpe.weight"])
    );
    // Spec §8.1: blocks 0..l-1, wte, wpe and ln_f of the paper map equal the reference's.
    let refp = reference.named_parameters();
    for (name, t) in &p {
        assert!(t.equal(&refp[name]), "{name}");
    }
    Ok(())
}

#[test]
fn fresh_tensors_follow_the_targets_init() -> anyhow::Result<()> {
    let _rng = rng_lock();
    let reference = model(
        ModelConfig::Gpt2(Gpt2Config {
            vocab_size: 2048,
            ..Gpt2Config::paper(8, 4, 128)
        }),
        5,
    );
    let (target, _) = inherit(
        &reference,
        4,
        &InheritMap::Custom(BTreeSet::from([Group::Embed])),
        &Selection::First,
        11,
    )?;
    let p = target.named_parameters();
    let std = |n: &str| p[n].std(true).double_value(&[]);
    assert!((std("transformer.h.0.attn.c_attn.weight") - 0.02).abs() < 0.001);
    // c_proj uses the *target's* depth: 0.02 / sqrt(2 * 4).
    assert!((std("transformer.h.2.mlp.c_proj.weight") - 0.02 / 8f64.sqrt()).abs() < 0.0005);
    assert!((std("transformer.wpe.weight") - 0.02).abs() < 0.001);
    Ok(())
}

#[test]
fn baselines_place_the_right_blocks() -> anyhow::Result<()> {
    let _rng = rng_lock();
    let reference = model(gpt2(8), 6);
    let refp = reference.named_parameters();
    let w =
        |m: &CausalLm, i: i64| m.named_parameters()[&format!("transformer.h.{i}.attn.c_attn.weight")].shallow_clone();

    let (small, _) = inherit(&reference, 2, &InheritMap::Paper, &Selection::First, 1)?;
    let (stacked, plan) = stack(&small, 1)?;
    assert_eq!(stacked.config().n_layer(), 4);
    check_copies(&stacked, &plan, &[("reference", &small)]).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(w(&stacked, 2).equal(&w(&small, 0)) && w(&stacked, 3).equal(&w(&small, 1)));

    let (hybrid, _) = hybrid_stack(&reference, 6, &InheritMap::Paper, 1)?;
    for j in 0..6 {
        assert!(w(&hybrid, j).equal(&refp[&format!("transformer.h.{}.attn.c_attn.weight", j % 3)]));
    }

    let big = model(gpt2(24), 7);
    let (student, plan) = distill_init(&big, 16, None, &InheritMap::Paper, 1)?;
    assert_eq!(
        plan.settings["blocks"],
        serde_json::json!([0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 18, 19, 20, 21])
    );
    assert!(w(&student, 12).equal(&big.named_parameters()["transformer.h.18.attn.c_attn.weight"]));
    Ok(())
}

#[test]
fn half_width_slices_heads_units_and_coordinates() -> anyhow::Result<()> {
    let _rng = rng_lock();
    // 5 heads of 8 (d = 40) -> 2 heads (d' = 16), as XL's 25 -> 12.
    let config = ModelConfig::Gpt2(Gpt2Config {
        vocab_size: 50,
        n_positions: 12,
        bias: true,
        ..Gpt2Config::paper(2, 5, 40)
    });
    let reference = model(config, 8);
    let (half, _) = half_width(&reference, 3)?;
    let (r, h) = (reference.named_parameters(), half.named_parameters());
    assert_eq!(half.config().n_embd(), 16);
    assert_eq!(half.config().n_head(), 2);
    let c_attn = &r["transformer.h.1.attn.c_attn.weight"]; // (120, 40)
    let q = c_attn.narrow(0, 0, 16);
    let k = c_attn.narrow(0, 40, 16);
    let v = c_attn.narrow(0, 80, 16);
    let expected = Tensor::cat(&[q, k, v], 0).narrow(1, 0, 16);
    assert!(h["transformer.h.1.attn.c_attn.weight"].equal(&expected));
    assert!(h["transformer.h.0.mlp.c_fc.weight"]
        .equal(&r["transformer.h.0.mlp.c_fc.weight"].narrow(0, 0, 64).narrow(1, 0, 16)));
    assert!(h["transformer.h.0.mlp.c_proj.weight"]
        .equal(&r["transformer.h.0.mlp.c_proj.weight"].narrow(0, 0, 16).narrow(1, 0, 64)));
    assert!(h["transformer.wte.weight"].equal(&r["transformer.wte.weight"].narrow(1, 0, 16)));
    assert!(h["transformer.h.0.ln_2.bias"].equal(&r["transformer.h.0.ln_2.bias"].narrow(0, 0, 16)));
    assert_eq!(half.num_parameters(), half.config().num_parameters());
    Ok(())
}

#[test]
fn invalid_requests_are_errors() {
    let _rng = rng_lock();
    let reference = model(gpt2(4), 9);
    let msg = |r: inheritune_surgery::Result<(CausalLm, Plan)>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg(inherit(&reference, 0, &InheritMap::Paper, &Selection::First, 0)).contains("between 1 and 4"));
    assert!(msg(inherit(&reference, 5, &InheritMap::Paper, &Selection::First, 0)).contains("between 1 and 4"));
    assert!(msg(inherit(
        &reference,
        2,
        &InheritMap::Paper,
        &Selection::Indices(vec![1, 1]),
        0
    ))
    .contains("repeated"));
    assert!(msg(inherit(
        &reference,
        2,
        &InheritMap::Paper,
        &Selection::Indices(vec![1, 4]),
        0
    ))
    .contains("outside"));
    assert!(msg(inherit(
        &reference,
        2,
        &InheritMap::Paper,
        &Selection::Indices(vec![1]),
        0
    ))
    .contains("1 block indices"));
    assert!(msg(hybrid_stack(&reference, 3, &InheritMap::Paper, 0)).contains("even"));
    let other = model(llama(2), 9);
    assert!(msg(grow(
        &other,
        &reference,
        1,
        GrowMode::WarmAppend,
        &InheritMap::Paper,
        false,
        0
    ))
    .contains("families and shapes"));
    let (small, _) = inherit(&reference, 3, &InheritMap::Paper, &Selection::First, 0).expect("valid");
    assert!(msg(grow(
        &small,
        &reference,
        2,
        GrowMode::Restart,
        &InheritMap::Paper,
        false,
        0
    ))
    .contains("cannot grow a 3-layer model by 2 to 5 layers: the reference has only 4"));
    assert!(msg(grow(
        &small,
        &reference,
        0,
        GrowMode::Restart,
        &InheritMap::Paper,
        false,
        0
    ))
    .contains("at least one"));
    assert!(msg(half_width(&other, 0)).contains("GPT-2 models only"));
    assert!(Group::parse("attention").is_err());
}

#[test]
fn plan_tables_snapshot() -> anyhow::Result<()> {
    let _rng = rng_lock();
    let reference = model(gpt2(4), 10);
    let lreference = model(llama(4), 10);
    let mut out = String::new();
    let ablation = InheritMap::Custom(BTreeSet::from([Group::Attn, Group::Ln1]));
    for map in [InheritMap::Paper, InheritMap::ReleasedCode, ablation] {
        out += &inherit(&reference, 2, &map, &Selection::First, 1)?.1.table();
        out += &inherit(&lreference, 2, &map, &Selection::Last, 1)?.1.table();
    }
    let (small, _) = inherit(&reference, 2, &InheritMap::Paper, &Selection::First, 1)?;
    out += &grow(
        &small,
        &reference,
        2,
        GrowMode::Restart,
        &InheritMap::ReleasedCode,
        false,
        1,
    )?
    .1
    .table();
    out += &grow(&small, &reference, 1, GrowMode::WarmAppend, &InheritMap::Paper, true, 1)?
        .1
        .table();
    out += &stack(&small, 1)?.1.table();
    out += &hybrid_stack(&reference, 4, &InheritMap::Paper, 1)?.1.table();
    out += &half_width(&reference, 1)?.1.table();
    out += &distill_init(&reference, 3, None, &InheritMap::Paper, 1)?.1.table();
    insta::assert_snapshot!(out);
    Ok(())
}
