//! Hugging Face checkpoint folders: `config.json` + `model.safetensors` (or a sharded index), or
//! PyTorch's `pytorch_model.bin` (or its sharded index) as older checkpoints publish them.
//!
//! This is the only place that knows the file layout: GPT-2's Conv1D weights are stored as
//! (in × out) and transposed here, its causal-mask buffers are skipped, tied heads are neither
//! read nor written, and a bias-free GPT-2 is written with zero biases so `GPT2LMHeadModel`
//! loads it with no missing keys. Files are memory-mapped and copied tensor by tensor.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::Serialize;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::config::{Gpt2Config, ModelConfig};
use crate::error::{Error, Result};
use crate::lm::{CausalLm, DType};

/// The weights file of an unsharded checkpoint.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// The configuration file.
pub const CONFIG_FILE: &str = "config.json";

/// How to load a checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Where the weights go.
    pub device: Device,
    /// The format the weights are converted to.
    pub dtype: DType,
    /// Fail on any missing, unexpected or mis-shaped key (otherwise they are reported and skipped).
    pub strict: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: Device::Cpu,
            dtype: DType::F32,
            strict: true,
        }
    }
}

/// A key whose shape differs from what the config implies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The checkpoint key.
    pub name: String,
    /// Shape implied by the config, in file layout.
    pub expected: Vec<i64>,
    /// Shape in the file.
    pub actual: Vec<i64>,
}

/// What loading did with every key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    /// Keys copied into the model.
    pub applied: Vec<String>,
    /// Model parameters absent from the checkpoint (left at their initialisation).
    pub missing: Vec<String>,
    /// Checkpoint keys the model has no place for.
    pub unexpected: Vec<String>,
    /// Keys present on both sides with different shapes (skipped).
    pub mismatched: Vec<Mismatch>,
    /// Keys skipped by plan, with the reason (mask buffers, tied heads, zero biases).
    pub ignored: Vec<(String, String)>,
}

impl LoadReport {
    /// Whether every parameter was loaded and nothing unplanned was found.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        write!(f, "applied {}, ignored {}", self.applied.len(), self.ignored.len())?;
        write!(
            f,
            "; missing: {}; unexpected: {}",
            list(&self.missing),
            list(&self.unexpected)
        )?;
        let mis: Vec<String> = self
            .mismatched
            .iter()
            .map(|m| format!("{} (expected {:?}, found {:?})", m.name, m.expected, m.actual))
            .collect();
        write!(f, "; mis-shaped: {}", list(&mis))
    }
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    match dtype {
        Dtype::F32 => Some(Kind::Float),
        Dtype::F16 => Some(Kind::Half),
        Dtype::BF16 => Some(Kind::BFloat16),
        Dtype::F64 => Some(Kind::Double),
        _ => None,
    }
}

fn dtype_of(kind: Kind) -> Option<Dtype> {
    match kind {
        Kind::Float => Some(Dtype::F32),
        Kind::Half => Some(Dtype::F16),
        Kind::BFloat16 => Some(Dtype::BF16),
        Kind::Double => Some(Dtype::F64),
        _ => None,
    }
}

/// PyTorch's weights file (`torch.save` of the state dict: a zip of pickles).
pub const PICKLE_FILE: &str = "pytorch_model.bin";
/// The index of a sharded `pytorch_model.bin`.
pub const PICKLE_INDEX_FILE: &str = "pytorch_model.bin.index.json";

/// The weight files of a checkpoint folder: `model.safetensors`, every shard of its index, or
/// (as published by older checkpoints such as OpenLLaMA) `pytorch_model.bin` or every shard of
/// its index; safetensors first when both are present.
///
/// # Errors
/// No weights in the folder, or an unreadable index.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    for (single, index) in [(WEIGHTS_FILE, INDEX_FILE), (PICKLE_FILE, PICKLE_INDEX_FILE)] {
        if dir.join(single).exists() {
            return Ok(vec![dir.join(single)]);
        }
        if dir.join(index).exists() {
            return index_files(dir, &dir.join(index));
        }
    }
    Err(Error::io(
        dir.join(WEIGHTS_FILE),
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no {WEIGHTS_FILE}, {INDEX_FILE}, {PICKLE_FILE} or {PICKLE_INDEX_FILE} in the checkpoint folder"),
        ),
    ))
}

/// Every shard an index names.
fn index_files(dir: &Path, index: &Path) -> Result<Vec<PathBuf>> {
    let index = index.to_path_buf();
    let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: index.clone(),
        message: e.to_string(),
    })?;
    let map = value
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::Json {
            path: index.clone(),
            message: "missing object \"weight_map\"".to_string(),
        })?;
    let mut files = BTreeSet::new();
    for (key, file) in map {
        let file = file.as_str().ok_or_else(|| Error::Json {
            path: index.clone(),
            message: format!("weight_map[{key:?}] is not a string"),
        })?;
        files.insert(dir.join(file));
    }
    Ok(files.into_iter().collect())
}

/// What to do with one checkpoint key.
enum Plan {
    /// Copy into this model parameter, transposing first if set.
    Load { param: String, transpose: bool },
    /// Skip, for this reason.
    Ignore(&'static str),
    /// A bias of a bias-free GPT-2: must be zero.
    ZeroBias,
    /// Not part of the model.
    Unexpected,
}

fn plan_key(config: &ModelConfig, params: &HashMap<String, Tensor>, key: &str) -> Plan {
    match config {
        ModelConfig::Gpt2(c) => {
            // GPT2Model files (e.g. OpenAI's) have no "transformer." prefix.
            let name = if key.starts_with("transformer.") || key == "lm_head.weight" {
                key.to_string()
            } else {
                format!("transformer.{key}")
            };
            if name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") {
                return Plan::Ignore("causal-mask buffer");
            }
            if name == "lm_head.weight" && c.tie_word_embeddings {
                return Plan::Ignore("tied to transformer.wte.weight");
            }
            if params.contains_key(&name) {
                return Plan::Load {
                    transpose: crate::params::Role::parse(crate::params::Family::Gpt2, &name)
                        .is_some_and(|r| r.is_conv1d(crate::params::Family::Gpt2)),
                    param: name,
                };
            }
            if !c.bias && name.ends_with(".bias") && gpt2_bias_names(c).contains(&name) {
                return Plan::ZeroBias;
            }
            Plan::Unexpected
        }
        ModelConfig::Llama(c) => {
            if key.ends_with(".rotary_emb.inv_freq") {
                return Plan::Ignore("rotary buffer");
            }
            if key == "lm_head.weight" && c.tie_word_embeddings {
                return Plan::Ignore("tied to model.embed_tokens.weight");
            }
            if params.contains_key(key) {
                return Plan::Load {
                    param: key.to_string(),
                    transpose: false,
                };
            }
            Plan::Unexpected
        }
    }
}

/// The bias keys a GPT-2 of this shape would have with biases on.
fn gpt2_bias_names(c: &Gpt2Config) -> BTreeSet<String> {
    Gpt2Config {
        bias: true,
        ..c.clone()
    }
    .parameter_shapes()
    .into_iter()
    .filter(|p| p.name.ends_with(".bias"))
    .map(|p| p.name)
    .collect()
}

/// The torch kind of a view's dtype, or an error naming the file and tensor.
fn view_kind(path: &Path, name: &str, view: &TensorView) -> Result<Kind> {
    kind_of(view.dtype()).ok_or_else(|| Error::UnsupportedDtype {
        path: path.to_path_buf(),
        name: name.to_string(),
        dtype: format!("{:?}", view.dtype()),
    })
}

fn view_to_tensor(path: &Path, name: &str, view: &TensorView) -> Result<Tensor> {
    let kind = view_kind(path, name, view)?;
    let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    Ok(Tensor::f_from_data_size(view.data(), &shape, kind)?)
}

/// The tensor of a safetensors view without copying it: a CPU tensor over the mapped bytes
/// (a copy where they are not aligned for the dtype). Only for a tensor that is copied from and
/// dropped while the mapping lives (the loader's `apply`): loading then holds one copy of the
/// weights, not two.
fn view_borrowed(path: &Path, name: &str, view: &TensorView) -> Result<Tensor> {
    let kind = view_kind(path, name, view)?;
    let data = view.data();
    if data.is_empty() || !(data.as_ptr() as usize).is_multiple_of(kind.elt_size_in_bytes()) {
        return view_to_tensor(path, name, view);
    }
    let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    let mut strides = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    // SAFETY: `data` is aligned for `kind`, holds exactly `shape`'s elements (safetensors checked
    // it), and outlives the tensor, which the caller copies from and drops before the mapping.
    Ok(unsafe { Tensor::f_from_blob(data.as_ptr(), &shape, &strides, kind, tch::Device::Cpu)? })
}

fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the mapping is read-only and lives only while this checkpoint is copied; a file
    // truncated by another process meanwhile is outside what this loader supports.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))
}

/// Loads a checkpoint folder: reads `config.json`, builds the model, and copies every tensor.
///
/// # Errors
/// A missing or invalid `config.json`, missing or corrupt weights, an unsupported dtype, a
/// non-zero bias in a bias-free config, or (in strict mode) any missing, unexpected or mis-shaped
/// key. Each message names the file and, where there is one, the key.
pub fn load(dir: &Path, options: &LoadOptions) -> Result<(CausalLm, LoadReport)> {
    let config = ModelConfig::from_file(&dir.join(CONFIG_FILE))?;
    let files = weight_files(dir)?;
    // Strict loading overwrites every weight or fails: no random init to pay for first.
    let mut model = if options.strict {
        crate::layers::for_loading(|| CausalLm::new(&config, options.device, options.dtype))?
    } else {
        CausalLm::new(&config, options.device, options.dtype)?
    };
    let report = load_weights(&mut model, &files)?;
    if options.strict && !report.is_clean() {
        let mut summary = report.to_string();
        if let Some(hint) = report.mismatched.iter().find_map(|m| blame(&config, m)) {
            summary.push_str(&format!(" ({hint})"));
        }
        return Err(Error::StrictLoad {
            dir: dir.to_path_buf(),
            summary,
        });
    }
    Ok((model, report))
}

/// The `config.json` keys that set the mismatched axis of a tensor, named for the message.
fn blame(config: &ModelConfig, m: &Mismatch) -> Option<String> {
    use crate::params::{Role, Slot};
    if m.expected.len() != m.actual.len() {
        return None;
    }
    let axis = (0..m.expected.len()).find(|&i| m.expected[i] != m.actual[i])?;
    let role = Role::parse(config.family(), &m.name)?;
    // GPT-2's Conv1D weights are stored transposed: name the axis of the model's layout.
    let axis = if role.is_conv1d(config.family()) && m.expected.len() == 2 {
        1 - axis
    } else {
        axis
    };
    let gpt2 = matches!(config, ModelConfig::Gpt2(_));
    let (hidden, heads, kv, inner) = if gpt2 {
        ("n_embd", "n_head", "n_head", "n_inner")
    } else {
        (
            "hidden_size",
            "num_attention_heads",
            "num_key_value_heads",
            "intermediate_size",
        )
    };
    let keys: String = match (role, axis) {
        (Role::Embedding | Role::Head, 0) => "vocab_size".into(),
        (Role::Positions, 0) => "n_positions".into(),
        (Role::Embedding | Role::Head | Role::Positions | Role::FinalNorm(_), _) => hidden.into(),
        (Role::Block { slot, .. }, axis) => match (slot, axis) {
            (Slot::AttnNorm | Slot::MlpNorm | Slot::PreFfnNorm | Slot::PostFfnNorm, _) => hidden.into(),
            (Slot::QNorm | Slot::KNorm, _) => "head_dim".into(),
            (Slot::Q, 0) => format!("{heads} × head_dim"),
            (Slot::K | Slot::V, 0) => format!("{kv} × head_dim"),
            (Slot::Qkv, 0) if !gpt2 => format!("{heads}, {kv} and head_dim"),
            (Slot::AttnOut, 1) if !gpt2 => format!("{heads} × head_dim"),
            (Slot::Gate | Slot::Up | Slot::GateUp | Slot::MlpIn, 0) => inner.into(),
            (Slot::MlpOut, 1) => inner.into(),
            _ => hidden.into(),
        },
    };
    Some(format!(
        "config.json's {keys} disagrees with the weights: {} is {:?} in the file, the config gives {:?}",
        m.name, m.actual, m.expected
    ))
}

/// Copies the tensors of `files` into `model`, by Hugging Face key.
///
/// # Errors
/// Corrupt files, unsupported dtypes, or a non-zero bias in a bias-free GPT-2.
pub fn load_weights(model: &mut CausalLm, files: &[PathBuf]) -> Result<LoadReport> {
    let params: HashMap<String, Tensor> = model.var_store().variables();
    let config = model.config().clone();
    let mut report = LoadReport::default();
    let mut seen = BTreeSet::new();
    for path in files {
        let mut apply = |key: String, actual: Vec<i64>, tensor: &dyn Fn() -> Result<Tensor>| -> Result<()> {
            match plan_key(&config, &params, &key) {
                Plan::Ignore(reason) => report.ignored.push((key, reason.to_string())),
                Plan::Unexpected => report.unexpected.push(key),
                Plan::ZeroBias => {
                    if tensor()?.f_abs()?.f_max()?.double_value(&[]) != 0.0 {
                        return Err(Error::NonZeroBias {
                            path: path.clone(),
                            name: key,
                        });
                    }
                    report.ignored.push((key, "zero bias of a bias-free model".to_string()));
                }
                Plan::Load { param, transpose } => {
                    let var = &params[&param];
                    let mut expected = var.size();
                    if transpose {
                        expected.reverse();
                    }
                    if expected != actual {
                        report.mismatched.push(Mismatch {
                            name: key,
                            expected,
                            actual,
                        });
                        return Ok(());
                    }
                    let src = tensor()?;
                    let src = if transpose { src.tr() } else { src };
                    tch::no_grad(|| var.shallow_clone().f_copy_(&src))?;
                    seen.insert(param);
                    report.applied.push(key);
                }
            }
            Ok(())
        };
        if path.extension().is_some_and(|e| e == "bin") {
            let mut tensors = read_pickle(path)?;
            tensors.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, t) in tensors {
                let size = t.size();
                apply(key, size, &|| Ok(t.shallow_clone()))?;
            }
            continue;
        }
        let mmap = map_file(path)?;
        let st = SafeTensors::deserialize(&mmap).map_err(|e| Error::Safetensors {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        names.sort();
        for key in names {
            let view = st.tensor(&key).map_err(|e| Error::Safetensors {
                path: path.clone(),
                message: format!("{key}: {e}"),
            })?;
            let actual: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let name = key.clone();
            apply(key, actual, &|| view_borrowed(path, &name, &view))?;
            // The tensor is copied: its file pages leave this process's memory (they stay in the
            // page cache), so loading peaks near the model's own size, not model + file.
            let offset = view.data().as_ptr() as usize - mmap.as_ptr() as usize;
            // SAFETY: a read-only private file mapping; no slice of this range is used again.
            let _ =
                unsafe { mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, view.data().len()) };
        }
    }
    let mut missing: Vec<String> = params.keys().filter(|k| !seen.contains(*k)).cloned().collect();
    missing.sort();
    report.missing = missing;
    Ok(report)
}

#[cfg(autocast_shim)]
extern "C" {
    fn inheritune_read_pickle(
        path: *const std::ffi::c_char,
        bytes: extern "C" fn(*mut std::ffi::c_void, *const u8, usize),
        ctx: *mut std::ffi::c_void,
        err: *mut std::ffi::c_char,
        err_len: usize,
    ) -> i32;
    fn inheritune_load_state_dict(
        path: *const std::ffi::c_char,
        pickle: *const u8,
        pickle_len: usize,
        entry: extern "C" fn(*mut std::ffi::c_void, *const std::ffi::c_char, *mut std::ffi::c_void),
        ctx: *mut std::ffi::c_void,
        err: *mut std::ffi::c_char,
        err_len: usize,
    ) -> i32;
}

/// Reads a `pytorch_model.bin` (a zip of pickles written by `torch.save`) with libtorch's own
/// unpickler: a plain dict through tch, and the `OrderedDict` with `_metadata` that
/// `torch.save(model.state_dict())` writes through the C++ shim (csrc/autocast.cpp), its pickle
/// rewritten as a plain dict first ([`crate::pickle`]).
fn read_pickle(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let first_line = |e: &str| {
        e.lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("Internal torch error: ")
            .to_string()
    };
    let bad = |message: String| Error::Pickle {
        path: path.to_path_buf(),
        message: format!("not a state dict torch.save wrote ({message})"),
    };
    let plain = match Tensor::loadz_multi(path) {
        Ok(tensors) => return Ok(tensors),
        Err(e) => first_line(&e.to_string()),
    };
    #[cfg(autocast_shim)]
    {
        use std::ffi::{c_char, c_void, CStr, CString};
        extern "C" fn bytes(ctx: *mut c_void, data: *const u8, len: usize) {
            // SAFETY: ctx is the Vec below; data holds len bytes for this call.
            let out = unsafe { &mut *(ctx as *mut Vec<u8>) };
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(data, len) });
        }
        extern "C" fn entry(ctx: *mut c_void, name: *const c_char, t: *mut c_void) {
            // SAFETY: ctx is the Vec below; name is a NUL-terminated string and t a heap
            // tensor handed over by the shim for this call.
            let out = unsafe { &mut *(ctx as *mut Vec<(String, Tensor)>) };
            let name = unsafe { CStr::from_ptr(name) }.to_string_lossy().to_string();
            out.push((name, unsafe { Tensor::from_ptr(t as *mut _) }));
        }
        let c_path = CString::new(path.as_os_str().to_string_lossy().as_bytes())
            .map_err(|_| bad("the path holds a NUL byte".into()))?;
        let mut err = vec![0 as c_char; 512];
        let message = |err: &[c_char]| first_line(&unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy());
        let mut pickle: Vec<u8> = Vec::new();
        // SAFETY: every pointer is valid for the call; the shim catches every C++ exception.
        let rc = unsafe {
            inheritune_read_pickle(
                c_path.as_ptr(),
                bytes,
                &mut pickle as *mut Vec<u8> as *mut c_void,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if rc != 0 {
            return Err(bad(message(&err)));
        }
        let Some(rewritten) = crate::pickle::plain_dict_pickle(&pickle) else {
            return Err(bad(plain));
        };
        let mut out: Vec<(String, Tensor)> = Vec::new();
        // SAFETY: as above.
        let rc = unsafe {
            inheritune_load_state_dict(
                c_path.as_ptr(),
                rewritten.as_ptr(),
                rewritten.len(),
                entry,
                &mut out as *mut Vec<(String, Tensor)> as *mut c_void,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if rc != 0 {
            return Err(bad(message(&err)));
        }
        return Ok(out);
    }
    #[allow(unreachable_code)]
    Err(bad(plain))
}

/// One tensor to write: its key, and its bytes in file layout.
struct Entry {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn entry(name: String, t: &Tensor) -> Result<Entry> {
    let t = t.f_to_device(Device::Cpu)?.f_contiguous()?;
    let dtype = dtype_of(t.kind())
        .ok_or_else(|| Error::Unavailable(format!("cannot save tensor {name} of kind {:?}", t.kind())))?;
    let numel = t.numel();
    let mut data = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.f_copy_data_u8(&mut data, numel)?;
    let shape = t.size().iter().map(|&d| d as usize).collect();
    Ok(Entry {
        name,
        dtype,
        shape,
        data,
    })
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
///
/// # Errors
/// An I/O error naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    inheritune_fs::write_file(path, bytes).map_err(|e| Error::io(e.path, e.source))
}

/// Saves `model` as a Hugging Face checkpoint folder (`config.json` and `model.safetensors`),
/// loadable by `transformers` with no missing or unexpected keys. Each file is written under a
/// temporary name and renamed, so an interrupted save never leaves a half file that looks whole.
///
/// # Errors
/// An I/O error naming the file, or a torch error while copying tensors.
pub fn save(model: &CausalLm, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let params = model.named_parameters();
    let mut entries = Vec::with_capacity(params.len());
    for (name, t) in &params {
        let family = model.config().family();
        let t = if crate::params::Role::parse(family, name).is_some_and(|r| r.is_conv1d(family)) {
            t.tr()
        } else {
            t.shallow_clone()
        };
        entries.push(entry(name.clone(), &t)?);
    }
    if let ModelConfig::Gpt2(c) = model.config() {
        if !c.bias {
            let kind = model.dtype().kind();
            let shapes: BTreeMap<String, Vec<i64>> = Gpt2Config {
                bias: true,
                ..c.clone()
            }
            .parameter_shapes()
            .into_iter()
            .map(|p| (p.name, p.shape))
            .collect();
            for name in gpt2_bias_names(c) {
                let zeros = Tensor::f_zeros(&shapes[&name], (kind, Device::Cpu))?;
                entries.push(entry(name, &zeros)?);
            }
        }
    }
    let views = entries
        .iter()
        .map(|e| {
            TensorView::new(e.dtype, e.shape.clone(), &e.data)
                .map(|v| (e.name.clone(), v))
                .map_err(|err| Error::Safetensors {
                    path: dir.join(WEIGHTS_FILE),
                    message: format!("{}: {err}", e.name),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    let bytes = safetensors::serialize(views, metadata).map_err(|e| Error::Safetensors {
        path: dir.join(WEIGHTS_FILE),
        message: e.to_string(),
    })?;
    write_atomic(&dir.join(WEIGHTS_FILE), &bytes)?;
    write_config(model.config(), model.dtype(), dir)
}

/// Writes `config.json` for `config` with weights in `dtype`.
///
/// # Errors
/// An I/O error naming the file.
pub fn write_config(config: &ModelConfig, dtype: DType, dir: &Path) -> Result<()> {
    let mut value = config.to_value();
    if let Value::Object(map) = &mut value {
        map.insert("torch_dtype".into(), Value::from(dtype.hf_name()));
        map.insert("dtype".into(), Value::from(dtype.hf_name()));
    }
    let path = dir.join(CONFIG_FILE);
    let mut text = serde_json::to_string_pretty(&value).map_err(|e| Error::Json {
        path: path.clone(),
        message: e.to_string(),
    })?;
    text.push('\n');
    write_atomic(&path, text.as_bytes())
}
