//! A GGUF model as a Hugging Face folder: the config of its family, its tensors under their
//! Hugging Face names with llama.cpp's conversion transforms undone, and its tokenizer as a
//! `tokenizer.json` the `tokenizers` crate runs.
//!
//! What llama.cpp's `convert_hf_to_gguf.py` bakes in, and what is undone here:
//! - arch `llama` only: q/k rows permuted to interleaved-pair RoPE order (reversed as
//!   transformers' `_reverse_permute_weights` does);
//! - Gemma: norm weights stored as `w + 1` (one is subtracted);
//! - a tied head: no `output.weight` (the config ties `lm_head` to `token_embd`);
//! - Llama 3.x rope scaling survives only as the `rope_freqs` tensor: the `llama3` parameters
//!   that reproduce it are found and checked, or the file is refused naming `rope_freqs`.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value as Json};
use tch::{Device, Tensor};

use super::{GgufFile, Value};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::llama::{DecoderFamily, LlamaConfig};
use crate::lm::{CausalLm, DType};

/// The architectures this converter maps.
pub const ARCHITECTURES: &str = "llama, qwen2, qwen3, gemma2, gemma3, phi3";

fn err(g: &GgufFile, message: String) -> Error {
    Error::Gguf {
        path: g.path().to_path_buf(),
        message,
    }
}

fn int(g: &GgufFile, key: &str) -> Result<i64> {
    g.get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| err(g, format!("missing or non-integer metadata key {key}")))
}

fn opt_int(g: &GgufFile, key: &str) -> Option<i64> {
    g.get(key).and_then(Value::as_i64)
}

fn opt_f64(g: &GgufFile, key: &str) -> Option<f64> {
    g.get(key).and_then(Value::as_f64)
}

/// The family of a GGUF `general.architecture`.
fn family(g: &GgufFile, arch: &str) -> Result<DecoderFamily> {
    Ok(match arch {
        "llama" => DecoderFamily::Llama,
        "qwen2" => DecoderFamily::Qwen2,
        "qwen3" => DecoderFamily::Qwen3,
        "gemma2" => DecoderFamily::Gemma2,
        "gemma3" => DecoderFamily::Gemma3Text,
        "phi3" => DecoderFamily::Phi3,
        other => {
            return Err(err(
                g,
                format!("general.architecture {other:?} is not supported ({ARCHITECTURES})"),
            ))
        }
    })
}

/// f32 values with the float arithmetic of the reference (`1 / base^(2i/d)` in f32).
fn default_inv_freq(theta: f64, dim: i64) -> Vec<f64> {
    (0..dim / 2)
        .map(|i| {
            let e = (2 * i) as f32 / dim as f32;
            (1.0f32 / (theta as f32).powf(e)) as f64
        })
        .collect()
}

/// The `llama3` rope scaling whose per-frequency divisors equal the file's `rope_freqs`.
fn llama3_from_rope_freqs(g: &GgufFile, theta: f64, dim: i64) -> Result<Json> {
    let info = g
        .tensor("rope_freqs.weight")
        .ok_or_else(|| err(g, "no rope_freqs.weight".into()))?;
    let freqs = g.dequantize(info)?;
    let inv = default_inv_freq(theta, dim);
    if freqs.len() != inv.len() {
        return Err(err(
            g,
            format!("rope_freqs has {} values for a rotary dimension of {dim}", freqs.len()),
        ));
    }
    let (low, high) = (1.0, 4.0);
    for factor in [8.0, 16.0, 32.0, 4.0, 2.0, 64.0] {
        for original in [8192.0, 4096.0, 2048.0, 16384.0, 32768.0] {
            let (low_wl, high_wl) = (original / low, original / high);
            let fits = inv.iter().zip(&freqs).all(|(&f, &got)| {
                let wl = 2.0 * std::f64::consts::PI / f;
                let divisor = if wl < high_wl {
                    1.0
                } else if wl > low_wl {
                    factor
                } else {
                    let s = (original / wl - low) / (high - low);
                    1.0 / ((1.0 - s) / factor + s)
                };
                (divisor - got as f64).abs() <= 1e-3 * divisor
            });
            if fits {
                return Ok(json!({"rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                                  "high_freq_factor": high, "original_max_position_embeddings": original as i64}));
            }
        }
    }
    Err(err(
        g,
        "rope_freqs matches no llama3 rope scaling (factor 2-64, original context 2048-32768, frequency factors 1 and 4)".into(),
    ))
}

/// The Hugging Face config of a GGUF model.
///
/// # Errors
/// An unsupported architecture or rope scaling, or a missing key; each named.
pub fn config(g: &GgufFile) -> Result<ModelConfig> {
    let arch = g
        .get("general.architecture")
        .and_then(Value::as_str)
        .ok_or_else(|| err(g, "missing metadata key general.architecture".into()))?
        .to_string();
    let family = family(g, &arch)?;
    let key = |k: &str| format!("{arch}.{k}");
    let embed = g
        .tensor("token_embd.weight")
        .ok_or_else(|| err(g, "no token_embd.weight tensor".into()))?;
    let hidden = int(g, &key("embedding_length"))?;
    let heads = int(g, &key("attention.head_count"))?;
    let kv = opt_int(g, &key("attention.head_count_kv")).unwrap_or(heads);
    let head_dim = opt_int(g, &key("attention.key_length"));
    let hd = head_dim.unwrap_or(if heads > 0 { hidden / heads } else { 0 });
    let theta = opt_f64(g, &key("rope.freq_base")).unwrap_or(10000.0);
    let rope_dim = opt_int(g, &key("rope.dimension_count")).unwrap_or(hd);
    let mut c = LlamaConfig {
        family,
        vocab_size: embed.shape.first().copied().unwrap_or(0),
        hidden_size: hidden,
        intermediate_size: int(g, &key("feed_forward_length"))?,
        num_hidden_layers: int(g, &key("block_count"))?,
        num_attention_heads: heads,
        num_key_value_heads: Some(kv),
        head_dim,
        max_position_embeddings: int(g, &key("context_length"))?,
        rms_norm_eps: opt_f64(g, &key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-6),
        rope_theta_field: Some(theta),
        tie_word_embeddings: g.tensor("output.weight").is_none(),
        ..LlamaConfig::open_llama_3b()
    };
    match opt_int(g, &key("rope.dimension_count")) {
        Some(d) if d != hd && family == DecoderFamily::Phi3 => c.partial_rotary_factor = Some(d as f64 / hd as f64),
        Some(d) if d != hd => {
            return Err(err(
                g,
                format!(
                    "{}: {d} rotated dimensions of {hd} is only supported for phi3",
                    key("rope.dimension_count")
                ),
            ))
        }
        _ => {}
    }
    // Rope scaling: stored keys, or Llama 3's factors as the rope_freqs tensor.
    let scaling_type = g.get(&key("rope.scaling.type")).and_then(Value::as_str);
    if g.tensor("rope_freqs.weight").is_some() {
        c.rope_scaling = Some(llama3_from_rope_freqs(g, theta, rope_dim)?);
    } else if let Some(t) = scaling_type.filter(|t| *t != "none") {
        let factor = opt_f64(g, &key("rope.scaling.factor")).ok_or_else(|| {
            err(
                g,
                format!(
                    "{} is {t:?} without {}",
                    key("rope.scaling.type"),
                    key("rope.scaling.factor")
                ),
            )
        })?;
        let mut s = json!({"rope_type": t, "factor": factor});
        if let Some(orig) = opt_int(g, &key("rope.scaling.original_context_length")) {
            s["original_max_position_embeddings"] = json!(orig);
        }
        c.rope_scaling = Some(s);
    }
    if g.tensor("rope_factors_long.weight").is_some() {
        return Err(err(
            g,
            "rope_factors_long (longrope, Phi-3 128k) is not implemented".into(),
        ));
    }
    match family {
        DecoderFamily::Qwen2 | DecoderFamily::Qwen3 => {
            c.use_sliding_window = Some(false);
        }
        DecoderFamily::Gemma2 | DecoderFamily::Gemma3Text => {
            c.hidden_activation = Some("gelu_pytorch_tanh".into());
            // GGUF has no key for it: llama.cpp scales by head_dim, except Gemma 2 27B (46 blocks),
            // whose query_pre_attn_scalar is hidden / heads (144); the same rule here.
            c.query_pre_attn_scalar = Some(if family == DecoderFamily::Gemma2 && c.num_hidden_layers == 46 {
                (hidden / heads.max(1)) as f64
            } else {
                hd as f64
            });
            c.sliding_window = opt_int(g, &key("attention.sliding_window"));
            c.attn_logit_softcapping = opt_f64(g, &key("attn_logit_softcapping"));
            c.final_logit_softcapping = opt_f64(g, &key("final_logit_softcapping"));
            if family == DecoderFamily::Gemma3Text {
                c.rope_local_base_freq = Some(10000.0);
                c.attn_logit_softcapping = None;
            }
        }
        DecoderFamily::Phi3 => {
            c.sliding_window = opt_int(g, &key("attention.sliding_window"));
        }
        _ => {}
    }
    for (k, hf) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
        ("tokenizer.ggml.padding_token_id", "pad_token_id"),
    ] {
        if let Some(id) = opt_int(g, k) {
            c.extra.insert(hf.into(), json!(id));
        }
    }
    let config = ModelConfig::Llama(c);
    config
        .validate()
        .map_err(|e| err(g, format!("the config it implies is invalid: {e}")))?;
    Ok(config)
}

/// How a GGUF tensor becomes its Hugging Face tensor.
enum Transform {
    None,
    /// Undo llama.cpp's q/k row permutation for this many heads.
    Unpermute(i64),
    /// Gemma norms are stored as `w + 1`.
    MinusOne,
}

/// The Hugging Face name of a GGUF tensor, and its transform.
fn hf_name(c: &LlamaConfig, arch_llama: bool, name: &str) -> Option<(String, Transform)> {
    let gemma = c.family.is_gemma();
    let norm = |n: String| {
        if gemma {
            (n, Transform::MinusOne)
        } else {
            (n, Transform::None)
        }
    };
    match name {
        "token_embd.weight" => return Some(("model.embed_tokens.weight".into(), Transform::None)),
        "output_norm.weight" => return Some(norm("model.norm.weight".into())),
        "output.weight" => return Some(("lm_head.weight".into(), Transform::None)),
        _ => {}
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: i64 = layer.parse().ok()?;
    let (module, part) = rest.rsplit_once('.')?;
    let p = format!("model.layers.{layer}");
    let (hf, transform) = match module {
        "attn_norm" => norm(format!("{p}.input_layernorm")),
        "ffn_norm" if gemma => norm(format!("{p}.pre_feedforward_layernorm")),
        "ffn_norm" => (format!("{p}.post_attention_layernorm"), Transform::None),
        "post_attention_norm" => norm(format!("{p}.post_attention_layernorm")),
        "post_ffw_norm" => norm(format!("{p}.post_feedforward_layernorm")),
        "attn_q_norm" => norm(format!("{p}.self_attn.q_norm")),
        "attn_k_norm" => norm(format!("{p}.self_attn.k_norm")),
        "attn_q" if arch_llama => (
            format!("{p}.self_attn.q_proj"),
            Transform::Unpermute(c.num_attention_heads),
        ),
        "attn_k" if arch_llama => (format!("{p}.self_attn.k_proj"), Transform::Unpermute(c.kv_heads())),
        "attn_q" => (format!("{p}.self_attn.q_proj"), Transform::None),
        "attn_k" => (format!("{p}.self_attn.k_proj"), Transform::None),
        "attn_v" => (format!("{p}.self_attn.v_proj"), Transform::None),
        "attn_qkv" => (format!("{p}.self_attn.qkv_proj"), Transform::None),
        "attn_output" => (format!("{p}.self_attn.o_proj"), Transform::None),
        "ffn_gate" => (format!("{p}.mlp.gate_proj"), Transform::None),
        "ffn_up" if c.family == DecoderFamily::Phi3 => (format!("{p}.mlp.gate_up_proj"), Transform::None),
        "ffn_up" => (format!("{p}.mlp.up_proj"), Transform::None),
        "ffn_down" => (format!("{p}.mlp.down_proj"), Transform::None),
        _ => return None,
    };
    Some((format!("{hf}.{part}"), transform))
}

/// The model a GGUF file holds, dequantized into a [`CausalLm`] of `dtype` (every tensor
/// checked against the config's shapes, none missing, none left over).
///
/// # Errors
/// An unsupported architecture, tensor type or tensor, a shape that contradicts the metadata.
pub fn model(g: &GgufFile, dtype: DType) -> Result<CausalLm> {
    let config = config(g)?;
    let ModelConfig::Llama(c) = &config else {
        return Err(err(g, "not a decoder of the LLaMA family".into()));
    };
    let arch_llama = g.get("general.architecture").and_then(Value::as_str) == Some("llama");
    // Every parameter is filled below (a missing one is an error): no random init first.
    let model = crate::layers::for_loading(|| CausalLm::new(&config, Device::Cpu, dtype))?;
    let params = model.named_parameters();
    let mut seen = std::collections::BTreeSet::new();
    for info in &g.tensors {
        if info.name == "rope_freqs.weight" {
            continue; // checked into the config's rope scaling
        }
        let (name, transform) = hf_name(c, arch_llama, &info.name)
            .ok_or_else(|| err(g, format!("tensor {} has no Hugging Face counterpart", info.name)))?;
        let var = params.get(&name).ok_or_else(|| {
            err(
                g,
                format!("tensor {} ({name}) is not a parameter of this config", info.name),
            )
        })?;
        if var.size() != info.shape {
            return Err(err(
                g,
                format!(
                    "tensor {} is {:?}, the metadata implies {:?} for {name}",
                    info.name,
                    info.shape,
                    var.size()
                ),
            ));
        }
        let values = g.dequantize(info)?;
        let mut t = Tensor::from_slice(&values).view(info.shape.as_slice());
        t = match transform {
            Transform::None => t,
            Transform::MinusOne => t - 1.0,
            Transform::Unpermute(n) => {
                let rows = info.shape[0];
                let rest: Vec<i64> = info.shape[1..].to_vec();
                // llama.cpp wrote reshape(n, 2, rows/n/2, ...).swapaxes(1, 2): read it back.
                let mut split = vec![n, rows / n / 2, 2];
                split.extend(&rest);
                t.reshape(split.as_slice())
                    .transpose(1, 2)
                    .reshape(info.shape.as_slice())
            }
        };
        tch::no_grad(|| var.shallow_clone().f_copy_(&t))?;
        seen.insert(name);
    }
    let missing: Vec<&String> = params.keys().filter(|k| !seen.contains(*k)).collect();
    if let Some(first) = missing.first() {
        return Err(err(
            g,
            format!("no tensor for {first} ({} parameters missing)", missing.len()),
        ));
    }
    Ok(model)
}

/// The pre-tokenizer of a `tokenizer.ggml.pre` name (llama.cpp's `llama-vocab.cpp` regexes, as
/// the published `tokenizer.json` of each family writes them).
fn pre_tokenizer(g: &GgufFile, pre: &str) -> Result<Json> {
    let byte_level =
        |regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    Ok(match pre {
        "default" | "gpt-2" | "gpt2" => byte_level(true),
        "smollm" => {
            json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level(true)]})
        }
        "llama-bpe" | "llama3" => json!({"type": "Sequence", "pretokenizers": [
            split(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
            byte_level(false)]}),
        "qwen2" => json!({"type": "Sequence", "pretokenizers": [
            split(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
            byte_level(false)]}),
        other => {
            return Err(err(
                g,
                format!("tokenizer.ggml.pre {other:?} is not supported (default, gpt-2, smollm, llama-bpe, qwen2)"),
            ))
        }
    })
}

/// The tokenizer of a GGUF file as `tokenizer.json` and `tokenizer_config.json` values, for a
/// `gpt2`-type (byte-level BPE) vocabulary; `None` when the file has no tokenizer.
///
/// # Errors
/// A tokenizer model or pre-tokenizer this converter does not build, named.
pub fn tokenizer(g: &GgufFile) -> Result<Option<(Json, Json)>> {
    let Some(model) = g.get("tokenizer.ggml.model").and_then(Value::as_str) else {
        return Ok(None);
    };
    if model != "gpt2" && model != "llama" {
        return Err(err(
            g,
            format!(
                "tokenizer.ggml.model {model:?} is not converted (gpt2, llama); give the published tokenizer.json instead"
            ),
        ));
    }
    let strings = |key: &str| -> Result<Vec<String>> {
        g.get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| err(g, format!("missing array {key}")))?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err(g, format!("{key}: not a string array")))
            })
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges");
    let types: Vec<i64> = match g.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
        Some(a) => a.iter().map(|v| v.as_i64().unwrap_or(1)).collect(),
        None => vec![1; tokens.len()],
    };
    if model == "llama" {
        return sentencepiece(g, &tokens, &types).map(Some);
    }
    let merges = merges?;
    let pre = g.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
    let vocab: Map<String, Json> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let added: Vec<Json> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(types.get(*i), Some(3) | Some(4)))
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": types.get(i) == Some(&3)})
        })
        .collect();
    let bos = opt_int(g, "tokenizer.ggml.bos_token_id").and_then(|i| tokens.get(i as usize).map(|t| (t.clone(), i)));
    let add_bos = g
        .get("tokenizer.ggml.add_bos_token")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let post = match (&bos, add_bos) {
        (Some((b, id)), true) => bos_template(b, *id),
        _ => json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}),
    };
    let tok = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
        "pre_tokenizer": pre_tokenizer(g, pre)?,
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges}
    });
    let mut cfg = special_entries(g, &tokens, add_bos);
    if let Some(n) = g
        .get("general.architecture")
        .and_then(Value::as_str)
        .and_then(|a| opt_int(g, &format!("{a}.context_length")))
    {
        cfg["model_max_length"] = json!(n);
    }
    Ok(Some((tok, cfg)))
}

/// The `tokenizer_config.json` entries of the special tokens a GGUF file names.
fn special_entries(g: &GgufFile, tokens: &[String], add_bos: bool) -> Json {
    let token_of = |key: &str| opt_int(g, key).and_then(|i| tokens.get(i as usize).cloned());
    let mut cfg = json!({"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": add_bos, "clean_up_tokenization_spaces": false});
    for (key, value) in [
        ("bos_token", token_of("tokenizer.ggml.bos_token_id")),
        ("eos_token", token_of("tokenizer.ggml.eos_token_id")),
        ("unk_token", token_of("tokenizer.ggml.unknown_token_id")),
        ("pad_token", token_of("tokenizer.ggml.padding_token_id")),
    ] {
        if let Some(v) = value {
            cfg[key] = json!(v);
        }
    }
    if let Some(t) = g.get("tokenizer.chat_template").and_then(Value::as_str) {
        cfg["chat_template"] = json!(t);
    }
    cfg
}

/// A BOS template (`<s> $A`, pairs `<s> $A <s> $B`), as `LlamaTokenizerFast` builds it.
fn bos_template(bos: &str, id: i64) -> Json {
    json!({"type": "TemplateProcessing",
           "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
           "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
           "special_tokens": {bos: {"id": bos, "ids": [id], "tokens": [bos]}}})
}

/// A `llama`-type (SentencePiece) vocabulary as the byte-fallback BPE that transformers builds
/// from GGUF (`GGUFLlamaConverter`): merges from `tokenizer.ggml.merges`, or derived from the
/// vocabulary and its scores as `GGUFTokenizerSkeleton` does; `▁` for spaces, prepended unless
/// `tokenizer.ggml.add_space_prefix` is false (Gemma); control tokens special; BOS by
/// `tokenizer.ggml.add_bos_token` (default true).
fn sentencepiece(g: &GgufFile, tokens: &[String], types: &[i64]) -> Result<(Json, Json)> {
    let merges: Vec<String> = match g.get("tokenizer.ggml.merges").and_then(Value::as_array) {
        Some(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        None => {
            let scores: Vec<f64> = g
                .get("tokenizer.ggml.scores")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    err(
                        g,
                        "a llama-type tokenizer needs tokenizer.ggml.scores or tokenizer.ggml.merges".into(),
                    )
                })?
                .iter()
                .map(|v| v.as_f64().unwrap_or(0.0))
                .collect();
            // The score of each distinct piece (a later duplicate overwrites, as a dict does),
            // in first-appearance order.
            let mut score: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
            let mut order: Vec<&str> = Vec::new();
            for (t, s) in tokens.iter().zip(&scores) {
                if score.insert(t.as_str(), *s).is_none() {
                    order.push(t.as_str());
                }
            }
            let mut merges: Vec<(String, String, f64)> = Vec::new();
            for piece in order {
                let mut local: Vec<(&str, &str)> = Vec::new();
                for (i, _) in piece.char_indices().skip(1) {
                    let (l, r) = piece.split_at(i);
                    if score.contains_key(l) && score.contains_key(r) {
                        local.push((l, r));
                    }
                }
                local.sort_by(|a, b| {
                    (score[b.0], score[b.1])
                        .partial_cmp(&(score[a.0], score[a.1]))
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
                merges.extend(
                    local
                        .into_iter()
                        .map(|(l, r)| (l.to_string(), r.to_string(), score[piece])),
                );
            }
            merges.sort_by(|a, b| b.2.partial_cmp(&a.2).unwrap_or(std::cmp::Ordering::Equal));
            merges.into_iter().map(|(l, r, _)| format!("{l} {r}")).collect()
        }
    };
    let mut vocab = Map::new();
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.clone(), json!(i));
    }
    let added: Vec<Json> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| types.get(*i) == Some(&3))
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                              "normalized": false, "special": true})
        })
        .collect();
    let unk = opt_int(g, "tokenizer.ggml.unknown_token_id").and_then(|i| tokens.get(i as usize).cloned());
    let prefix = g
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let add_bos = g
        .get("tokenizer.ggml.add_bos_token")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut normalizers = Vec::new();
    if prefix {
        normalizers.push(json!({"type": "Prepend", "prepend": "▁"}));
    }
    normalizers.push(json!({"type": "Replace", "pattern": {"String": " "}, "content": "▁"}));
    let mut decoders = vec![
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
        json!({"type": "Replace", "pattern": {"String": "▁"}, "content": " "}),
    ];
    if prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    let bos = opt_int(g, "tokenizer.ggml.bos_token_id").and_then(|i| tokens.get(i as usize).map(|t| (t.clone(), i)));
    let post = match (&bos, add_bos) {
        (Some((b, id)), true) => bos_template(b, *id),
        _ => Json::Null,
    };
    let tok = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": null,
        "post_processor": post,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {"type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                  "vocab": vocab, "merges": merges}
    });
    Ok((tok, special_entries(g, tokens, add_bos)))
}

/// Writes the Hugging Face folder of a GGUF file into `out` (config.json, model.safetensors in
/// `dtype`, tokenizer.json and tokenizer_config.json when the file has a tokenizer), through a
/// temporary folder renamed when complete.
///
/// # Errors
/// As [`model`] and [`tokenizer`], or an existing `out`.
pub fn to_folder(gguf: &Path, out: &Path, dtype: DType) -> Result<()> {
    if out.exists() {
        return Err(Error::Gguf {
            path: out.to_path_buf(),
            message: "already exists; choose a new output folder".into(),
        });
    }
    let g = GgufFile::open(gguf)?;
    let model = model(&g, dtype)?;
    let tokenizer = tokenizer(&g)?;
    let mut tmp_name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = out.with_file_name(tmp_name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    crate::hf::save(&model, &tmp)?;
    if let Some((tok, cfg)) = tokenizer {
        for (name, value) in [("tokenizer.json", tok), ("tokenizer_config.json", cfg)] {
            let text = serde_json::to_string_pretty(&value).map_err(|e| err(&g, e.to_string()))?;
            inheritune_fs::write_file(&tmp.join(name), text.as_bytes()).map_err(|e| err(&g, e.to_string()))?;
        }
    }
    inheritune_fs::commit_dir(&tmp, out).map_err(|e| err(&g, e.to_string()))?;
    Ok(())
}

/// Part of every cached conversion's folder name: raised whenever the conversion changes what
/// it writes, so an upgrade never reads a stale conversion.
pub const CONVERTER_VERSION: u32 = 1;

/// The per-user cache of converted GGUF files (`INHERITUNE_CACHE`, else `XDG_CACHE_HOME/inheritune`,
/// else `~/.cache/inheritune`, then `gguf/`).
pub fn cache_root() -> PathBuf {
    let base = std::env::var_os("INHERITUNE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("inheritune")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("inheritune")))
        .unwrap_or_else(|| std::env::temp_dir().join("inheritune"));
    base.join("gguf")
}

/// The Hugging Face folder of a GGUF file, converted once (f32) into the cache under the
/// sha256 of the file's bytes and [`CONVERTER_VERSION`], and reused after; the log says which.
///
/// # Errors
/// An unreadable file, or a failed conversion (see [`to_folder`]).
pub fn cached_folder(gguf: &Path) -> Result<PathBuf> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(gguf).map_err(|e| Error::io(gguf, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(gguf, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let hash: String = hasher.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    let stem = gguf
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let dir = cache_root().join(format!("{stem}-{hash}-v{CONVERTER_VERSION}"));
    if dir.join("config.json").exists() {
        tracing::info!("{}: using its conversion cached in {}", gguf.display(), dir.display());
        return Ok(dir);
    }
    std::fs::create_dir_all(cache_root()).map_err(|e| Error::io(cache_root(), e))?;
    tracing::info!(
        "{}: converting to a Hugging Face folder in {} (once)",
        gguf.display(),
        dir.display()
    );
    // Another process may convert the same file at the same time: each writes its own folder,
    // and the first to finish wins.
    let mine = dir.with_file_name(format!("{stem}-{hash}-v{CONVERTER_VERSION}.{}", std::process::id()));
    if mine.exists() {
        std::fs::remove_dir_all(&mine).map_err(|e| Error::io(&mine, e))?;
    }
    to_folder(gguf, &mine, DType::F32)?;
    if std::fs::rename(&mine, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&mine);
        if !dir.join("config.json").exists() {
            return Err(Error::Gguf {
                path: dir,
                message: "could not be written".into(),
            });
        }
    }
    Ok(dir)
}
