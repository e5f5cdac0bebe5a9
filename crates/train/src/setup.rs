//! Setting a run up, one step each: the architecture (from `[model]` or `--init`), the run
//! folder (locked; continued, replaced or refused), the model and its initial weights, the
//! distillation teacher, the trainable parameters and their optimizer, and the checkpoint a
//! resumed run continues from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use inheritune_model::tch::{Device, Tensor};
use inheritune_model::{allow_tf32, hf, CausalLm, DType, ModelConfig};

use crate::adamw::{AdamW, AdamWConfig};
use crate::checkpoint::{self, TrainState};
use crate::config::{GradAccum, RunConfig, TrainSection, RESUMABLE_KEYS};
use crate::error::{file_err, Error, Result};
use crate::lock::RunLock;
use crate::run_dir::{RunDir, DONE};
use crate::trainer::{Options, Teacher};

/// The architecture the run trains: `[model]`'s, or an `--init` checkpoint's (which must have the
/// same parameter shapes, and a tokenizer the data was prepared with).
pub(crate) fn model_config(config: &RunConfig, init: Option<&Path>) -> Result<ModelConfig> {
    let model_config = config.model_config()?;
    let Some(init) = init else { return Ok(model_config) };
    let init_config = ModelConfig::from_file(&init.join(hf::CONFIG_FILE))?;
    if init_config.parameter_shapes() != model_config.parameter_shapes() {
        return Err(Error::Config {
            path: None,
            problems: vec![format!(
                "init checkpoint {} has a different architecture ({} layers × {}) than [model] ({} layers × {})",
                init.display(),
                init_config.n_layer(),
                init_config.n_embd(),
                model_config.n_layer(),
                model_config.n_embd()
            )],
        });
    }
    check_tokenizer(init, &config.data.dir)?;
    Ok(init_config)
}

/// Rank 0 owns the folder: one process at a time (the lock it returns), leftovers of a crash
/// removed, and an existing run continued (`resume`), replaced (`overwrite`) or refused.
pub(crate) fn claim(dir: &RunDir, options: &Options) -> Result<Option<RunLock>> {
    if options.dist.0.rank() != 0 {
        return Ok(None);
    }
    let root = dir.root();
    let lock = RunLock::acquire(root)?;
    clean_leftovers(root)?;
    let held = dir.contents();
    if !options.resume && !held.is_empty() {
        if !options.overwrite {
            return Err(file_err(
                root,
                format!(
                    "this folder already holds a run ({}); continue it with --resume or replace it with --overwrite",
                    held.join(", ")
                ),
            ));
        }
        remove_run(root)?;
    }
    Ok(Some(lock))
}

/// A fresh f32 model of `config` (initialised from the current torch seed), with `--init`'s
/// weights loaded when given: any published layout (model.safetensors, its shards,
/// pytorch_model.bin).
pub(crate) fn model(config: &ModelConfig, options: &Options) -> Result<CausalLm> {
    let mut model = CausalLm::new(config, options.device, DType::F32)?;
    if let Some(init) = &options.init {
        let report = hf::load_weights(&mut model, &hf::weight_files(init)?)?;
        if !report.is_clean() {
            return Err(file_err(init, format!("init checkpoint does not fit: {report}")));
        }
    }
    Ok(model)
}

/// The frozen distillation teacher of `[distill]`, loaded strictly.
pub(crate) fn teacher(config: &RunConfig, device: Device) -> Result<Option<Teacher>> {
    let Some(d) = &config.distill else { return Ok(None) };
    let options = hf::LoadOptions {
        device,
        dtype: DType::F32,
        strict: true,
    };
    let (model, _) = hf::load(&d.teacher, &options)?;
    Ok(Some(Teacher {
        model,
        alpha: d.alpha,
        temperature: d.temperature,
    }))
}

/// AdamW over `params` (fused on request; TF32 matmuls on CUDA).
pub(crate) fn optimizer(params: &BTreeMap<String, Tensor>, t: &TrainSection, device: Device) -> Result<AdamW> {
    let mut opt = AdamW::new(
        params,
        AdamWConfig {
            beta1: t.beta1,
            beta2: t.beta2,
            eps: t.eps,
            weight_decay: t.weight_decay,
        },
    )?;
    if matches!(device, Device::Cuda(_)) {
        allow_tf32(true);
    }
    if t.fused_adamw {
        opt.use_fused(device)?;
    }
    Ok(opt)
}

/// With `--resume`: restores the newest complete checkpoint (rank 0 chooses, every rank loads it)
/// into `model` and `opt` after checking that the config may continue it, and returns its step;
/// `None` for a fresh start (no `--resume`, or nothing saved yet).
pub(crate) fn resume(
    dir: &RunDir,
    config: &RunConfig,
    options: &Options,
    model: &mut CausalLm,
    opt: &mut AdamW,
    accum: u64,
) -> Result<Option<u64>> {
    if !options.resume {
        return Ok(None);
    }
    let dist = &options.dist;
    let (rank, world) = (dist.0.rank(), dist.0.world());
    let newest = if rank == 0 {
        dir.checkpoints().pop().map_or(-1, |(s, _)| s as i64)
    } else {
        -1
    };
    let chosen = Tensor::from_slice(&[newest]);
    dist.0.broadcast(&chosen, 0)?;
    let chosen = chosen.int64_value(&[0]);
    if chosen < 0 {
        return Ok(None);
    }
    let step_dir = dir.step(chosen as u64);
    if !step_dir.join(DONE).exists() {
        return Err(file_err(
            &step_dir,
            format!("rank {rank}: rank 0 resumes from this checkpoint but it is not complete here (the run folder must be on a file system every rank sees)"),
        ));
    }
    if rank == 0 {
        check_config(dir, config)?;
    }
    let state = checkpoint::restore(&step_dir, model, opt)?;
    check_resume(&step_dir, &state, world, accum, &config.train)?;
    Ok(Some(state.step))
}

/// A resumed run's config may differ from the one it started with only in [`RESUMABLE_KEYS`].
fn check_config(dir: &RunDir, config: &RunConfig) -> Result<()> {
    let path = dir.config();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let saved: RunConfig = toml::from_str(&text).map_err(|e| {
        file_err(
            &path,
            format!(
                "not a run config this version reads ({}); start a new run folder",
                e.message()
            ),
        )
    })?;
    let changed = config.changed_keys(&saved)?;
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::Resume(format!(
        "cannot resume {}: the config differs from the run's ({}) in {}; only {} may change on resume",
        dir.root().display(),
        path.display(),
        changed.join(", "),
        RESUMABLE_KEYS.join(", ")
    )))
}

/// The tokenizer files copied into every checkpoint: `--init`'s, else the data folder's.
pub(crate) fn tokenizer_files(config: &RunConfig, init: Option<&Path>) -> Vec<PathBuf> {
    [init, Some(config.data.dir.as_path())]
        .into_iter()
        .flatten()
        .find(|d| d.join("tokenizer.json").exists())
        .map(|d| {
            ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
                .iter()
                .map(|f| d.join(f))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the entries of `dir` (files or folders) whose names `doomed` picks.
fn remove_entries(dir: &Path, doomed: impl Fn(&str) -> bool) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| file_err(dir, e))?.flatten() {
        let path = entry.path();
        if !doomed(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| file_err(&path, e))?;
    }
    Ok(())
}

/// Removes what a crashed run left half-written (`*.tmp` files and folders, plot temporaries).
fn clean_leftovers(dir: &Path) -> Result<()> {
    remove_entries(dir, |name| name.ends_with(".tmp") || name.contains(".tmp."))
}

/// Removes a previous run from `dir` (for `--overwrite`): metrics, config, plots, checkpoints,
/// TensorBoard events.
fn remove_run(dir: &Path) -> Result<()> {
    remove_entries(dir, RunDir::is_run_entry)
}

/// An `--init` checkpoint that carries a tokenizer must have been made for the tokenizer the
/// data was prepared with: the same definition (hash), or the same tokens on a probe text and the
/// same vocabulary (e.g. a hub GPT-2 `tokenizer.json` and the built-in GPT-2 tokenizer).
fn check_tokenizer(init: &Path, data: &Path) -> Result<()> {
    if !init.join("tokenizer.json").exists() {
        return Ok(());
    }
    let ours = inheritune_data::Tokenizer::for_model_dir(init)?;
    let manifest = inheritune_data::Manifest::read(data)?;
    if ours.hash() == manifest.tokenizer.hash {
        return Ok(());
    }
    // Ordinary text only: a tokenizer.json matches its special tokens in any text, which the
    // built-in encoder's ordinary encoding does not; the end-of-text id is compared instead.
    const PROBE: &str = "The Inheritune recipe: 12 layers, café, naïve — tokens!\n  indented\tline";
    const EOT: &str = "<|endoftext|>";
    let builtin = inheritune_data::Tokenizer::gpt2()?;
    let same_as_builtin = builtin.hash() == manifest.tokenizer.hash
        && ours.vocab_size() >= builtin.vocab_size()
        && ours.token_to_id(EOT) == builtin.token_to_id(EOT)
        && ours.encode_ordinary(PROBE)? == builtin.encode_ordinary(PROBE)?;
    if same_as_builtin {
        return Ok(());
    }
    Err(file_err(
        init,
        format!(
            "its tokenizer.json ({} tokens, sha256 {}) is not the tokenizer {} ({} tokens, sha256 {}) that {} was prepared with; prepare the text with the model's tokenizer: inheritune prepare --tokenizer {}/tokenizer.json --text ... --out NEW",
            ours.vocab_size(),
            &ours.hash()[..12.min(ours.hash().len())],
            manifest.tokenizer.name,
            manifest.tokenizer.vocab_size,
            &manifest.tokenizer.hash[..12.min(manifest.tokenizer.hash.len())],
            data.display(),
            init.display()
        ),
    ))
}

/// The parameters the optimizer updates: all of them, or those of the `groups` named (the others
/// stop requiring gradients, so backward skips them).
pub(crate) fn trainable_parameters(
    model: &CausalLm,
    groups: &[String],
) -> Result<std::collections::BTreeMap<String, Tensor>> {
    let mut params = model.named_parameters();
    if groups.is_empty() {
        return Ok(params);
    }
    let family = model.config().family();
    let mut frozen = Vec::new();
    for (name, p) in params.iter_mut() {
        let group = inheritune_model::Role::parse(family, name).map(|r| r.group());
        if !group.is_some_and(|g| groups.iter().any(|x| x == g)) {
            let _ = p.requires_grad_(false);
            frozen.push(name.clone());
        }
    }
    params.retain(|name, _| !frozen.contains(name));
    if params.is_empty() {
        return Err(Error::Config {
            path: None,
            problems: vec![format!(
                "train.trainable {groups:?}: the model has no parameter in these groups"
            )],
        });
    }
    let count: i64 = params.values().map(|p| p.numel() as i64).sum();
    tracing::info!(
        "training {} of the model's parameters ({} tensors in {}); {} tensors frozen",
        count,
        params.len(),
        groups.join(", "),
        frozen.len()
    );
    Ok(params)
}

/// Whether a checkpoint written by `state.world` ranks may continue on `world` ranks with
/// `accum` micro-steps each: the data order must be the one it would have had (the same global
/// micro-batches per step), and in `sum` mode the gradient scale (the per-rank accumulation) too.
fn check_resume(dir: &Path, state: &TrainState, world: u64, accum: u64, t: &TrainSection) -> Result<()> {
    if state.world == world && (state.accum == 0 || state.accum == accum) {
        return Ok(());
    }
    let here = format!(
        "cannot resume from {}: it was saved by a run of world size {} with {} micro-steps per rank, and this run has world size {world} with {accum}",
        dir.display(),
        state.world,
        if state.accum == 0 { "an unrecorded number of".to_string() } else { state.accum.to_string() },
    );
    if state.accum == 0 || state.accum * state.world != accum * world {
        return Err(Error::Resume(format!(
            "{here}: the global batch differs, so the data order would change"
        )));
    }
    // With sum_micro_batch the summed gradient is the released split's on any world size.
    if t.grad_accum_mode == GradAccum::Sum && t.sum_micro_batch.is_none() {
        return Err(Error::Resume(format!(
            "{here}: grad_accum_mode = \"sum\" scales the gradient by the per-rank micro-steps, so resume on {} ranks",
            state.world
        )));
    }
    Ok(())
}
