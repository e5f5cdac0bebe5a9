//! Attention metrics on real model attention (against numpy on `transformers`' matrices) and
//! their invariants.

use std::path::PathBuf;

use inheritune_analysis::metrics::{approx_rank, synthetic};
use inheritune_analysis::{analyze, analyze_layer, Settings};
use inheritune_model::hf::{self, LoadOptions};
use inheritune_model::tch::{self, Device, Kind, Tensor};
use inheritune_model::{CausalLm, DType, Gpt2Config, LlamaConfig, ModelConfig};
use proptest::prelude::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

#[test]
fn per_window_rank_and_mass_equal_numpy_on_transformers_attention() -> anyhow::Result<()> {
    // kstar.{l} / mstar.{l} were computed by numpy from transformers' output_attentions
    // (crates/model/tests/fixtures/make_fixtures.py, and make_families.py for the families
    // with sliding windows, soft-capping and scaled RoPE).
    for name in [
        "gpt2_bias",
        "gpt2_inverse_scale",
        "llama_gqa_tied",
        "llama_mqa_untied",
        "fam_llama3",
        "fam_mistral",
        "fam_qwen2",
        "fam_qwen3",
        "fam_gemma2",
        "fam_gemma3",
        "fam_phi3",
    ] {
        let (model, _) = hf::load(&fixture(name), &LoadOptions::default())?;
        let r: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(fixture(name).join("reference.safetensors"))?
                .into_iter()
                .collect();
        let ids = &r["input_ids"];
        let settings = Settings {
            batch_size: 1,
            ..Settings::default()
        };
        let a = analyze(&model, name, ids, "fixture", &settings, &mut |_, _| {})?;
        for layer in &a.layers {
            let k: Vec<i64> = Vec::try_from(r[&format!("kstar.{}", layer.layer)].flatten(0, -1))?;
            let m: Vec<i64> = Vec::try_from(r[&format!("mstar.{}", layer.layer)].flatten(0, -1))?;
            let nh = a.n_head;
            for head in &layer.heads {
                for (w, (&kw, &mw)) in head.rank_per_window.iter().zip(&head.mass_per_window).enumerate() {
                    assert_eq!(
                        kw,
                        k[w * nh + head.head],
                        "{name} layer {} head {} window {w}: k*",
                        layer.layer,
                        head.head
                    );
                    assert_eq!(
                        mw,
                        m[w * nh + head.head],
                        "{name} layer {} head {} window {w}: m*",
                        layer.layer,
                        head.head
                    );
                }
            }
        }
    }
    Ok(())
}

fn tiny(gpt2: bool, seed: i64) -> CausalLm {
    tch::manual_seed(seed);
    let config = if gpt2 {
        ModelConfig::Gpt2(Gpt2Config {
            vocab_size: 50,
            n_positions: 24,
            bias: true,
            ..Gpt2Config::paper(2, 3, 24)
        })
    } else {
        ModelConfig::Llama(LlamaConfig {
            vocab_size: 50,
            max_position_embeddings: 24,
            hidden_size: 24,
            num_attention_heads: 6,
            num_key_value_heads: Some(2),
            intermediate_size: 30,
            ..LlamaConfig::tiny()
        })
    };
    let m = CausalLm::new(&config, Device::Cpu, DType::F32).expect("valid");
    tch::no_grad(|| {
        for (_, mut t) in m.named_parameters() {
            let _ = t.f_add_(&(Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.3));
        }
    });
    m
}

/// Random row-stochastic causal matrices `(N, H, T, T)`, some heads made pure sinks.
fn random_attention(n: i64, h: i64, t: i64, sinks: &[i64], sharp: f64) -> Tensor {
    let logits = Tensor::randn([n, h, t, t], (Kind::Double, Device::Cpu)) * sharp;
    let mask = Tensor::ones([t, t], (Kind::Bool, Device::Cpu)).triu(1);
    let a = logits.masked_fill(&mask, f64::NEG_INFINITY).softmax(-1, Kind::Double);
    for &s in sinks {
        a.narrow(1, s, 1).copy_(&synthetic::sink(t).expand([n, 1, t, t], false));
    }
    a
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn model_attention_rows_sum_to_one_with_zero_upper_triangle(gpt2 in any::<bool>(), seed in 0i64..100, t in 2i64..20) {
        let model = tiny(gpt2, seed);
        let ids = Tensor::randint(50, [2, t], (Kind::Int64, Device::Cpu));
        let mut ok = true;
        let mut visitor = |_: usize, p: &Tensor| {
            let rows = p.sum_dim_intlist(-1, false, Kind::Double);
            ok &= (rows - 1.0).abs().max().double_value(&[]) < 1e-6;
            ok &= p.triu(1).abs().max().double_value(&[]) == 0.0;
        };
        let _ = model.forward_with_attention(&ids, &mut visitor).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(ok);
    }

    #[test]
    fn kstar_is_monotone_in_tau(seed in 0i64..1000, t in 2i64..30, sharp in 0.1f64..8.0) {
        tch::manual_seed(seed);
        let a = random_attention(3, 2, t, &[], sharp);
        let taus = [0.5, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0];
        let k: Vec<i64> = Vec::try_from(approx_rank(&a, &taus).flatten(0, -1)).unwrap_or_default();
        for row in k.chunks(taus.len()) {
            prop_assert!(row.windows(2).all(|p| p[0] <= p[1]), "{row:?}");
            prop_assert!(row[0] >= 1 && row[taus.len() - 1] <= t);
        }
    }

    #[test]
    fn permuting_heads_permutes_results(seed in 0i64..1000, shift in 1i64..4) {
        tch::manual_seed(seed);
        let a = random_attention(4, 4, 12, &[1], 3.0);
        let perm: Vec<i64> = (0..4).map(|h| (h + shift) % 4).collect();
        let pa = a.index_select(1, &Tensor::from_slice(&perm));
        let s = Settings::default();
        let (r, rp) = (analyze_layer(0, &a, &s).map_err(|e| TestCaseError::fail(e.to_string()))?, analyze_layer(0, &pa, &s).map_err(|e| TestCaseError::fail(e.to_string()))?);
        for (i, &p) in perm.iter().enumerate() {
            let (x, y) = (&r.heads[p as usize], &rp.heads[i]);
            prop_assert_eq!(&x.rank_per_window, &y.rank_per_window);
            prop_assert_eq!(&x.mass_per_window, &y.mass_per_window);
            prop_assert_eq!(x.rank_of_mean_matrix, y.rank_of_mean_matrix);
        }
        prop_assert_eq!(r.max_rank, rp.max_rank);
        prop_assert!((r.avg_mass - rp.avg_mass).abs() < 1e-12);
    }

    #[test]
    fn aggregations_agree_on_the_strict_lazy_test(seed in 0i64..1000, n_sinks in 0usize..4, sharp in 0.5f64..30.0) {
        tch::manual_seed(seed);
        let sinks: Vec<i64> = (0..n_sinks as i64).collect();
        let a = random_attention(5, 3, 10, &sinks, sharp);
        let r = analyze_layer(0, &a, &Settings::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // v4's max_h mean_n k* == 1 iff (a) mean_n max_h k* == 1 iff every k* is 1.
        let every_one = r.heads.iter().all(|h| h.rank_per_window.iter().all(|&k| k == 1));
        prop_assert_eq!(r.lazy_strict, every_one);
        prop_assert_eq!(r.max_rank_window_mean == 1.0, every_one);
        if n_sinks == 3 {
            prop_assert!(r.lazy_strict && r.max_rank_window_std == 0.0 && r.avg_mass == 1.0);
        }
    }
}

#[test]
fn summary_and_plots_are_written() -> anyhow::Result<()> {
    let model = tiny(true, 1);
    tch::manual_seed(5);
    let ids = Tensor::randint(50, [6, 16], (Kind::Int64, Device::Cpu));
    let a = analyze(
        &model,
        "tiny",
        &ids,
        "random",
        &Settings {
            batch_size: 4,
            ..Settings::default()
        },
        &mut |_, _| {},
    )?;
    assert_eq!(a.windows.len(), 6);
    assert_eq!(a.layers.len(), 2);
    assert_eq!(a.layers[0].heads[0].rank_per_window.len(), 6);
    let text = a.summary();
    assert!(text.contains("suggested inheritance depth (paper, L/2): 1"), "{text}");
    let dir = tempfile::tempdir()?;
    let files = inheritune_analysis::plot::write_plots(&a, dir.path())?;
    // MaxRank, AvgMass, the rank heatmap, the depth criteria and the angular heatmap.
    assert_eq!(files.len(), 10);
    for f in files {
        assert!(std::fs::metadata(&f)?.len() > 1000, "{}", f.display());
    }
    Ok(())
}
