//! [`CausalLm`]: a model of either family together with the var store that owns its weights.
//!
//! This is the type the other crates use: build from a config, run with checked inputs, read and
//! replace parameters by their Hugging Face names. It must not know about files; see [`crate::hf`].

use std::collections::BTreeMap;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gpt2::Gpt2;
use crate::layers::{AttentionVisitor, Packing, Probe};
use crate::llama::Llama;

/// Floating-point formats for weights and compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// bfloat16.
    Bf16,
    /// IEEE half.
    F16,
}

impl DType {
    /// The matching torch kind.
    pub fn kind(self) -> Kind {
        match self {
            DType::F32 => Kind::Float,
            DType::Bf16 => Kind::BFloat16,
            DType::F16 => Kind::Half,
        }
    }

    /// The name `transformers` uses in `config.json`.
    pub fn hf_name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::Bf16 => "bfloat16",
            DType::F16 => "float16",
        }
    }

    /// The format of a torch kind, if it is one of ours.
    pub fn from_kind(kind: Kind) -> Option<Self> {
        match kind {
            Kind::Float => Some(DType::F32),
            Kind::BFloat16 => Some(DType::Bf16),
            Kind::Half => Some(DType::F16),
            _ => None,
        }
    }
}

/// Checks that `device` can be used, with a clear message when CUDA is asked for but absent.
///
/// # Errors
/// [`Error::Unavailable`] for a CUDA device on a machine (or build) without CUDA.
pub fn check_device(device: Device) -> Result<()> {
    if let Device::Cuda(i) = device {
        let n = tch::Cuda::device_count();
        if !tch::Cuda::is_available() || i as i64 >= n {
            return Err(Error::Unavailable(format!(
                "CUDA device {i} requested but {n} CUDA device(s) are available to libtorch (is libtorch_cuda.so linked and a GPU present?)"
            )));
        }
    }
    Ok(())
}

#[allow(clippy::large_enum_variant)] // one per model
#[derive(Debug)]
enum Arch {
    Gpt2(Gpt2),
    Llama(Llama),
}

/// A causal language model and its weights.
#[derive(Debug)]
pub struct CausalLm {
    config: ModelConfig,
    vs: VarStore,
    arch: Arch,
}

impl CausalLm {
    /// Builds a freshly initialised model (the family's own initialisation, from torch's global RNG:
    /// call `tch::manual_seed` first for reproducible weights).
    ///
    /// # Errors
    /// An invalid config, an unavailable device, or a torch error while allocating.
    pub fn new(config: &ModelConfig, device: Device, dtype: DType) -> Result<Self> {
        config.validate()?;
        check_device(device)?;
        let mut vs = VarStore::new(device);
        // Creating the variables directly in the target kind avoids an f32 copy of a large model.
        vs.set_kind(dtype.kind());
        let root = vs.root();
        let arch = match config {
            ModelConfig::Gpt2(c) => Arch::Gpt2(Gpt2::new(&root, c)?),
            ModelConfig::Llama(c) => Arch::Llama(Llama::new(&root, c)?),
        };
        Ok(CausalLm {
            config: config.clone(),
            vs,
            arch,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The var store holding every parameter under its Hugging Face name.
    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// Mutable access to the var store (device moves, freezing).
    pub fn var_store_mut(&mut self) -> &mut VarStore {
        &mut self.vs
    }

    /// The device of the weights.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The floating-point format of the weights.
    pub fn dtype(&self) -> DType {
        let kind = self
            .vs
            .variables()
            .values()
            .next()
            .map(Tensor::kind)
            .unwrap_or(Kind::Float);
        DType::from_kind(kind).unwrap_or(DType::F32)
    }

    /// Casts every weight to `dtype` in place.
    pub fn set_dtype(&mut self, dtype: DType) {
        self.vs.set_kind(dtype.kind());
    }

    /// Every parameter by Hugging Face name (tied weights appear once, under the embedding's name).
    pub fn named_parameters(&self) -> BTreeMap<String, Tensor> {
        self.vs.variables().into_iter().collect()
    }

    /// Total number of parameter elements.
    pub fn num_parameters(&self) -> i64 {
        self.vs.variables().values().map(|t| t.numel() as i64).sum()
    }

    /// Checks that `idx` is a `(B, T)` integer tensor with `T` within the context and ids within the vocabulary.
    ///
    /// # Errors
    /// [`Error::BadInput`], [`Error::SequenceTooLong`] or [`Error::TokenOutOfRange`].
    pub fn check_input(&self, idx: &Tensor) -> Result<()> {
        let shape = idx.size();
        if shape.len() != 2 || !matches!(idx.kind(), Kind::Int64 | Kind::Int) || shape[1] == 0 {
            return Err(Error::BadInput {
                shape,
                kind: format!("{:?}", idx.kind()),
            });
        }
        let max = self.config.context_length();
        if shape[1] > max {
            return Err(Error::SequenceTooLong { len: shape[1], max });
        }
        let vocab_size = self.config.vocab_size();
        let (lo, hi) = (idx.f_min()?.int64_value(&[]), idx.f_max()?.int64_value(&[]));
        for id in [lo, hi] {
            if id < 0 || id >= vocab_size {
                return Err(Error::TokenOutOfRange { id, vocab_size });
            }
        }
        Ok(())
    }

    /// Checks a [`Packing`] against ids `(B, T)`: positions `(B, T)` int64 within the context,
    /// `allowed` `(B, 1, T, T)` bool, on the model's device.
    fn check_packing(&self, idx: &Tensor, p: &Packing) -> Result<()> {
        let (b, t) = (idx.size()[0], idx.size()[1]);
        let bad = |what: &str, shape: Vec<i64>, kind: Kind| {
            Err(Error::BadPacking(format!(
                "{what} must be {} on {:?}, got {shape:?} {kind:?} on {:?}",
                if what == "positions" {
                    format!("({b}, {t}) int64")
                } else {
                    format!("({b}, 1, {t}, {t}) bool")
                },
                self.device(),
                if what == "positions" {
                    p.positions.device()
                } else {
                    p.allowed.device()
                }
            )))
        };
        if p.positions.size() != [b, t] || p.positions.kind() != Kind::Int64 || p.positions.device() != self.device() {
            return bad("positions", p.positions.size(), p.positions.kind());
        }
        if p.allowed.size() != [b, 1, t, t] || p.allowed.kind() != Kind::Bool || p.allowed.device() != self.device() {
            return bad("allowed", p.allowed.size(), p.allowed.kind());
        }
        if p.allowed.f_diagonal(0, -2, -1)?.f_all()?.int64_value(&[]) == 0 {
            return Err(Error::BadPacking(
                "allowed must let every token attend to itself (its diagonal is all true)".to_string(),
            ));
        }
        let (lo, hi) = (
            p.positions.f_min()?.int64_value(&[]),
            p.positions.f_max()?.int64_value(&[]),
        );
        let max = self.config.context_length();
        if lo < 0 || hi >= max {
            return Err(Error::BadPacking(format!(
                "positions must be in 0..{max} (the context), got {lo}..={hi}"
            )));
        }
        Ok(())
    }

    /// Logits `(B, T, V)` through the fast attention path.
    ///
    /// # Errors
    /// An invalid input (see [`CausalLm::check_input`]).
    pub fn forward(&self, idx: &Tensor) -> Result<Tensor> {
        self.check_input(idx)?;
        Ok(self.forward_unchecked(idx))
    }

    /// Mean next-token cross-entropy of `x` against the targets `y` (both `(B, T)`), through the
    /// fast path, the logits taken as they come: under autocast ATen casts them to f32 itself,
    /// as `F.cross_entropy` does in PyTorch. The one loss of training and of every loss pass.
    ///
    /// # Errors
    /// libtorch failed (mismatched shapes, targets out of range).
    pub fn loss(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let logits = self.forward_unchecked(x); // (B, T, V)
        let v = logits.size()[2];
        Ok(logits.view([-1, v]).f_cross_entropy_loss(
            &y.to_device(self.device()).reshape([-1]),
            None::<Tensor>,
            tch::Reduction::Mean,
            -100,
            0.0,
        )?)
    }

    /// Logits `(B, T, V)` through the fast path, for inputs the caller has already validated
    /// (the training loop's hot path: no host synchronisation).
    pub fn forward_unchecked(&self, idx: &Tensor) -> Tensor {
        let idx = idx.to_device(self.device());
        match &self.arch {
            Arch::Gpt2(m) => m.logits(&idx, None),
            Arch::Llama(m) => m.logits(&idx, None),
        }
    }

    /// Final hidden states `(B, T, d)` (after the last norm) through the fast path, for inputs
    /// the caller has validated; with [`CausalLm::head`] this scores only the positions needed.
    pub fn hidden_unchecked(&self, idx: &Tensor) -> Tensor {
        let idx = idx.to_device(self.device());
        match &self.arch {
            Arch::Gpt2(m) => m.hidden(&idx, None),
            Arch::Llama(m) => m.hidden(&idx, None),
        }
    }

    /// Logits `(..., V)` of hidden states `(..., d)` from [`CausalLm::hidden_unchecked`].
    pub fn head(&self, hidden: &Tensor) -> Tensor {
        match &self.arch {
            Arch::Gpt2(m) => m.head(hidden),
            Arch::Llama(m) => m.head(hidden),
        }
    }

    /// Logits `(B, T, V)` through the explicit attention path; `visitor(l, probs)` receives each
    /// layer's post-softmax attention `(B, nh, T, T)` in f32 as it is computed, so at most one
    /// layer's matrices are alive at a time.
    ///
    /// # Errors
    /// An invalid input (see [`CausalLm::check_input`]).
    pub fn forward_with_attention(&self, idx: &Tensor, visitor: AttentionVisitor) -> Result<Tensor> {
        self.check_input(idx)?;
        let idx = idx.to_device(self.device());
        Ok(match &self.arch {
            Arch::Gpt2(m) => m.logits(&idx, Some(visitor)),
            Arch::Llama(m) => m.logits(&idx, Some(visitor)),
        })
    }

    /// Runs the blocks through the explicit attention path for `visitor` (as
    /// [`CausalLm::forward_with_attention`]) without the output head, for analyses that need
    /// only the attention matrices.
    ///
    /// # Errors
    /// An invalid input (see [`CausalLm::check_input`]).
    pub fn visit_attention(&self, idx: &Tensor, visitor: AttentionVisitor) -> Result<()> {
        self.probe(idx, &mut Probe::attention(Some(visitor))).map(|_| ())
    }

    /// Final hidden states `(B, T, d)` (after the last norm) of a pass that reports to or
    /// changes as `probe` asks: attention matrices (explicit path), the residual stream between
    /// blocks (pre-norm), a block skipped.
    ///
    /// # Errors
    /// An invalid input (see [`CausalLm::check_input`]) or a skipped block the model lacks.
    pub fn probe(&self, idx: &Tensor, probe: &mut Probe) -> Result<Tensor> {
        self.check_input(idx)?;
        if let Some(s) = probe.skip.filter(|&s| s as i64 >= self.config().n_layer()) {
            return Err(Error::Unavailable(format!(
                "cannot skip block {s} of a {}-block model",
                self.config().n_layer()
            )));
        }
        if let Some(p) = probe.packing {
            self.check_packing(idx, p)?;
        }
        let idx = idx.to_device(self.device());
        Ok(match &self.arch {
            Arch::Gpt2(m) => m.hidden_probed(&idx, probe),
            Arch::Llama(m) => m.hidden_probed(&idx, probe),
        })
    }
}
