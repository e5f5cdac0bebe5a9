//! Presets, parameter counts (METHOD.md §3.2 and §3.3), key sets, and invalid configs.

use inheritune_model::tch::Device;
use inheritune_model::{CausalLm, DType, Gpt2Config, LlamaConfig, ModelConfig, Preset};
use proptest::prelude::*;

fn millions(n: i64) -> f64 {
    (n as f64 / 1e5).round() / 10.0
}

#[test]
fn gpt2_parameter_counts_match_the_spec_table() {
    // (config, params incl. wpe, non-embedding) in millions, from METHOD.md §3.2.
    let table: Vec<(Gpt2Config, f64, f64)> = vec![
        (Gpt2Config::small(), 124.4, 85.0),
        (Gpt2Config::small().with_layers(4), 67.7, 28.3),
        (Gpt2Config::medium(), 354.6, 302.0),
        (Gpt2Config::medium().with_layers(16), 253.9, 201.4),
        (Gpt2Config::medium().with_layers(14), 228.8, 176.2),
        (Gpt2Config::medium().with_layers(12), 203.6, 151.0),
        (Gpt2Config::medium().with_layers(8), 153.2, 100.7),
        (Gpt2Config::paper(24, 8, 512), 101.8, 75.5),
        (Gpt2Config::large(), 773.6, 707.9),
        (Gpt2Config::large().with_layers(18), 419.6, 353.9),
        (Gpt2Config::large().with_layers(9), 242.7, 177.0),
        (Gpt2Config::paper(36, 10, 640), 209.8, 177.0),
        (Gpt2Config::large_fineweb(), 694.9, 629.2),
        (Gpt2Config::large_fineweb().with_layers(16), 380.3, 314.6),
        (Gpt2Config::xl(), 1556.8, 1474.7),
        (Gpt2Config::xl().with_layers(24), 819.5, 737.4),
        (Gpt2Config::xl().with_layers(12), 450.8, 368.7),
        (Gpt2Config::paper(48, 12, 800), 409.8, 368.7),
    ];
    for (c, total, non_emb) in table {
        let m = ModelConfig::Gpt2(c.clone());
        assert_eq!(millions(m.num_parameters()), total, "{}L×{}", c.n_layer, c.n_embd);
        assert_eq!(
            millions(m.num_non_embedding_parameters()),
            non_emb,
            "{}L×{}",
            c.n_layer,
            c.n_embd
        );
    }
}

#[test]
fn open_llama_parameter_counts_match_the_spec() {
    let full = ModelConfig::Llama(LlamaConfig::open_llama_3b());
    let target = ModelConfig::Llama(LlamaConfig::open_llama_3b().with_layers(13));
    // 26 layers: 3.426B total; 13 layers: 1.611B non-embedding, 1.816B with wte and lm_head.
    assert_eq!((full.num_parameters() as f64 / 1e6).round(), 3426.0);
    assert_eq!((target.num_non_embedding_parameters() as f64 / 1e6).round(), 1611.0);
    assert_eq!((target.num_parameters() as f64 / 1e6).round(), 1816.0);
    let per_layer = (full.num_parameters() - target.num_parameters()) / 13;
    assert_eq!((per_layer as f64 / 1e4).round() / 100.0, 123.91);
}

#[test]
fn preset_table_snapshot() {
    let rows: Vec<String> = Preset::ALL
        .iter()
        .map(|p| {
            let c = p.config();
            format!(
                "{:<20} {:<6} L={:<3} H={:<3} D={:<5} ctx={:<5} V={:<6} params={} non_embedding={}",
                p.name(),
                c.model_type(),
                c.n_layer(),
                c.n_head(),
                c.n_embd(),
                c.context_length(),
                c.vocab_size(),
                c.num_parameters(),
                c.num_non_embedding_parameters()
            )
        })
        .collect();
    insta::assert_snapshot!(rows.join("\n"));
}

fn small_gpt2() -> impl Strategy<Value = Gpt2Config> {
    (
        1i64..4,
        1i64..4,
        1i64..5,
        8i64..40,
        2i64..20,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(layers, heads, hd, vocab, ctx, bias, tie, inv)| Gpt2Config {
            vocab_size: vocab,
            n_positions: ctx,
            bias,
            tie_word_embeddings: tie,
            scale_attn_by_inverse_layer_idx: inv,
            ..Gpt2Config::paper(layers, heads, heads * hd)
        })
}

fn small_llama() -> impl Strategy<Value = LlamaConfig> {
    (
        1i64..4,
        1i64..4,
        1i64..4,
        1i64..4,
        8i64..40,
        4i64..20,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(layers, kv, rep, hd2, vocab, inter, tie, ab)| LlamaConfig {
            vocab_size: vocab,
            hidden_size: kv * rep * hd2 * 2,
            intermediate_size: inter,
            num_hidden_layers: layers,
            num_attention_heads: kv * rep,
            num_key_value_heads: Some(kv),
            max_position_embeddings: 16,
            tie_word_embeddings: tie,
            attention_bias: ab,
            ..LlamaConfig::tiny()
        })
}

fn check_keys_and_counts(config: ModelConfig) -> Result<(), TestCaseError> {
    let model = CausalLm::new(&config, Device::Cpu, DType::F32).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let params = model.named_parameters();
    let shapes = config.parameter_shapes();
    prop_assert_eq!(params.len(), shapes.len());
    for p in &shapes {
        let t = params
            .get(&p.name)
            .ok_or_else(|| TestCaseError::fail(format!("missing {}", p.name)))?;
        prop_assert_eq!(&t.size(), &p.shape, "{}", p.name);
    }
    prop_assert_eq!(model.num_parameters(), config.num_parameters());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn gpt2_key_sets_and_counts_follow_the_config(c in small_gpt2()) {
        check_keys_and_counts(ModelConfig::Gpt2(c))?;
    }

    #[test]
    fn llama_key_sets_and_counts_follow_the_config(c in small_llama()) {
        check_keys_and_counts(ModelConfig::Llama(c))?;
    }

    #[test]
    fn invalid_gpt2_configs_are_errors(
        layers in -2i64..3, heads in -1i64..5, embd in -1i64..20, vocab in -1i64..5, ctx in -1i64..3,
        eps in prop::sample::select(vec![1e-5, 0.0, -1.0, f64::NAN]),
        act in prop::sample::select(vec!["gelu_new", "relu", "gelu"]),
    ) {
        let c = Gpt2Config {
            n_layer: layers, n_head: heads, n_embd: embd, vocab_size: vocab, n_positions: ctx,
            layer_norm_epsilon: eps, activation_function: act.to_string(), ..Gpt2Config::tiny()
        };
        let valid = layers > 0 && heads > 0 && embd > 0 && embd % heads == 0 && vocab > 0 && ctx > 0 && eps > 0.0 && act != "relu";
        prop_assert_eq!(c.validate().is_ok(), valid);
        prop_assert_eq!(CausalLm::new(&ModelConfig::Gpt2(c), Device::Cpu, DType::F32).is_ok(), valid);
    }

    #[test]
    fn invalid_llama_configs_are_errors(
        layers in -1i64..3, heads in -1i64..7, kv in -1i64..5, hidden in -1i64..25, inter in -1i64..5,
        theta in prop::sample::select(vec![10000.0, 0.0, -5.0]),
    ) {
        let c = LlamaConfig {
            num_hidden_layers: layers, num_attention_heads: heads, num_key_value_heads: Some(kv), hidden_size: hidden,
            intermediate_size: inter, rope_theta_field: Some(theta), max_position_embeddings: 8, vocab_size: 8, ..LlamaConfig::tiny()
        };
        let valid = layers > 0 && heads > 0 && kv > 0 && heads % kv == 0 && hidden > 0 && hidden % heads == 0
            && (hidden / heads) % 2 == 0 && inter > 0 && theta > 0.0;
        prop_assert_eq!(c.validate().is_ok(), valid);
        prop_assert_eq!(CausalLm::new(&ModelConfig::Llama(c), Device::Cpu, DType::F32).is_ok(), valid);
    }
}

#[test]
fn invalid_config_lists_every_problem() {
    let c = Gpt2Config {
        n_embd: 30,
        n_head: 4,
        n_layer: 0,
        ..Gpt2Config::tiny()
    };
    let msg = c.validate().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("n_layer must be positive") && msg.contains("n_embd 30 is not divisible by n_head 4"),
        "{msg}"
    );
    let c = LlamaConfig {
        num_key_value_heads: Some(3),
        ..LlamaConfig::tiny()
    };
    let msg = c.validate().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("num_key_value_heads 3 does not divide num_attention_heads 4"),
        "{msg}"
    );
}

#[test]
fn fresh_gpt2_follows_nanogpt_init() -> anyhow::Result<()> {
    inheritune_model::tch::manual_seed(0);
    let c = Gpt2Config {
        vocab_size: 4096,
        ..Gpt2Config::paper(8, 4, 128)
    };
    let model = CausalLm::new(&ModelConfig::Gpt2(c), Device::Cpu, DType::F32)?;
    let p = model.named_parameters();
    let std = |name: &str| p[name].std(true).double_value(&[]);
    assert!((std("transformer.wte.weight") - 0.02).abs() < 0.001);
    assert!((std("transformer.h.3.attn.c_attn.weight") - 0.02).abs() < 0.001);
    let proj = 0.02 / (16f64).sqrt();
    assert!((std("transformer.h.3.attn.c_proj.weight") - proj).abs() < 0.0005);
    assert!((std("transformer.h.0.mlp.c_proj.weight") - proj).abs() < 0.0005);
    assert_eq!(
        p["transformer.ln_f.weight"]
            .mean(inheritune_model::tch::Kind::Float)
            .double_value(&[]),
        1.0
    );
    Ok(())
}
