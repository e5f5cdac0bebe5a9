//! GPT-2 and the LLaMA family of decoders (LLaMA 1–3.x, Mistral, Qwen2/2.5, Qwen3, Gemma 2, Gemma 3, Phi-3) on libtorch, with Hugging Face checkpoint folders as the native format.
//!
//! [`CausalLm`] is the model the other crates use: built from a [`ModelConfig`] (a mirror of
//! `config.json`, with presets for every model of the paper), run through a fast fused-attention
//! path or an explicit path that exposes each layer's attention probabilities, and loaded from or
//! saved to `config.json` + `model.safetensors` by [`hf`]. This crate must not know about data,
//! tokenizers or training.

pub mod autocast;
pub mod config;
pub mod device;
pub mod error;
pub mod gguf;
pub mod gpt2;
pub mod hf;
pub mod kernels;
pub mod layers;
pub mod llama;
pub mod lm;
pub mod params;
pub mod pickle;
pub mod rope;

pub use autocast::{allow_tf32, autocast};
pub use config::{DecoderFamily, Gpt2Config, LlamaConfig, ModelConfig, ParamShape, Preset};
pub use device::DeviceSpec;
pub use error::{Error, Result};
pub use hf::{LoadOptions, LoadReport};
pub use layers::{AttentionVisitor, Packing, Probe, ResidualVisitor};
pub use lm::{check_device, CausalLm, DType};
pub use params::{Family, Part, Role, Slot};
pub use tch;

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
