//! GGUF reading: every supported block type dequantizes bit-equal to gguf-py's
//! `quants.dequantize` (fixture `gguf_quants.safetensors`, made by `fixtures/smollm2/make_smollm2.py`
//! from real blocks of SmolLM2's GGUF and from random blocks), and malformed files are one-line
//! errors naming the file.

use std::collections::HashMap;
use std::path::PathBuf;

use inheritune_model::gguf::quants::{dequantize, GgmlType};
use inheritune_model::gguf::GgufFile;
use inheritune_model::tch::Tensor;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn every_block_type_equals_gguf_py() -> anyhow::Result<()> {
    let r: HashMap<String, Tensor> = Tensor::read_safetensors(fixture("gguf_quants.safetensors"))?
        .into_iter()
        .collect();
    let types = [
        ("F32", GgmlType::F32),
        ("F16", GgmlType::F16),
        ("BF16", GgmlType::Bf16),
        ("Q4_0", GgmlType::Q4_0),
        ("Q4_1", GgmlType::Q4_1),
        ("Q8_0", GgmlType::Q8_0),
        ("Q4_K", GgmlType::Q4K),
        ("Q5_K", GgmlType::Q5K),
        ("Q6_K", GgmlType::Q6K),
    ];
    for (name, kind) in types {
        let blocks: Vec<u8> = Vec::<u8>::try_from(&r[&format!("blocks.{name}")])?;
        let want: Vec<f32> = Vec::<f32>::try_from(&r[&format!("values.{name}")])?;
        let mut got = Vec::new();
        dequantize(kind, &blocks, &mut got);
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "{name}[{i}]: {g} vs gguf-py {w}"
            );
        }
    }
    Ok(())
}

#[test]
fn malformed_files_are_one_line_errors() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("not.gguf", b"PK\x03\x04 not a gguf".to_vec(), "no GGUF magic"),
        (
            "v1.gguf",
            [b"GGUF".as_slice(), &1u32.to_le_bytes()].concat(),
            "version 1",
        ),
        (
            "cut.gguf",
            [
                b"GGUF".as_slice(),
                &3u32.to_le_bytes(),
                &1u64.to_le_bytes(),
                &1u64.to_le_bytes(),
                &[7u8; 5],
            ]
            .concat(),
            "truncated",
        ),
    ];
    for (name, bytes, want) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes)?;
        let err = GgufFile::open(&path).unwrap_err().to_string();
        assert!(
            err.contains(name) && err.contains(want) && err.lines().count() == 1,
            "{err}"
        );
    }
    Ok(())
}

/// Every architecture the converter maps, from tiny GGUF files written as llama.cpp writes them
/// (`fixtures/make_gguf_families.py`; transformers' own GGUF loader reads each back to the
/// original logits, except Llama 3's `rope_freqs`, which it ignores): the converted model gives
/// the original transformers model's logits within 1e-4. Q8_0, F16 and BF16 tensors included.
#[test]
fn every_architecture_converts_to_the_original_logits() -> anyhow::Result<()> {
    use inheritune_model::gguf::convert;
    use inheritune_model::{DType, ModelConfig};
    for (name, model_type) in [
        ("llama3", "llama"),
        ("llama", "llama"),
        ("qwen2", "qwen2"),
        ("qwen3", "qwen3"),
        ("gemma2", "gemma2"),
        ("gemma3", "gemma3_text"),
        ("phi3", "phi3"),
    ] {
        let dir = fixture("gguf_fam");
        let g = GgufFile::open(&dir.join(format!("{name}.gguf")))?;
        let model = convert::model(&g, DType::F32)?;
        assert_eq!(model.config().model_type(), model_type, "{name}");
        if name == "llama3" {
            let ModelConfig::Llama(c) = model.config() else {
                panic!("{name}")
            };
            let s = c.rope_scaling.clone().unwrap_or_default();
            assert_eq!(s["rope_type"], "llama3", "{name}: {s}");
            assert_eq!(s["factor"], 8.0, "{name}: {s}");
        }
        let r: HashMap<String, Tensor> = Tensor::read_safetensors(dir.join(format!("{name}.safetensors")))?
            .into_iter()
            .collect();
        let logits = model.forward(&r["input_ids"])?;
        let diff = (logits - &r["logits"]).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "{name}: logits differ from the original model's by {diff}");
    }
    Ok(())
}

/// Metadata of every width reads back as written (hand-built file: a u16 followed by a u32, an
/// i8 array and a string; no tensors).
#[test]
fn metadata_values_read_back() -> anyhow::Result<()> {
    let key = |k: &str| [(k.len() as u64).to_le_bytes().as_slice(), k.as_bytes()].concat();
    let mut b = [
        b"GGUF".as_slice(),
        &3u32.to_le_bytes(),
        &0u64.to_le_bytes(),
        &4u64.to_le_bytes(),
    ]
    .concat();
    b.extend(key("a.u16"));
    b.extend(2u32.to_le_bytes());
    b.extend(65535u16.to_le_bytes());
    b.extend(key("a.u32"));
    b.extend(4u32.to_le_bytes());
    b.extend(123456u32.to_le_bytes());
    b.extend(key("a.i8s"));
    b.extend(9u32.to_le_bytes());
    b.extend(1u32.to_le_bytes());
    b.extend(2u64.to_le_bytes());
    b.extend([0xffu8, 7]);
    b.extend(key("a.str"));
    b.extend(8u32.to_le_bytes());
    b.extend(key("smollm"));
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("meta.gguf");
    std::fs::write(&path, b)?;
    let g = GgufFile::open(&path)?;
    use inheritune_model::gguf::Value;
    assert_eq!(g.get("a.u16"), Some(&Value::Int(65535)));
    assert_eq!(g.get("a.u32"), Some(&Value::Int(123456)));
    assert_eq!(g.get("a.i8s"), Some(&Value::Array(vec![Value::Int(-1), Value::Int(7)])));
    assert_eq!(g.get("a.str").and_then(Value::as_str), Some("smollm"));
    Ok(())
}
