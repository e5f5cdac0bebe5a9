//! Log-likelihood requests scored exactly as lm-evaluation-harness's `hf` backend does
//! (EVAL-TASKS.md §1.3–§1.8): `_encode_pair`, the tokenizer's own BOS rule, left truncation
//! to the context length, log-softmax over the full vocabulary in f32, the per-request sum in
//! f32, teacher-forced greedy check, and the rolling windows of `loglikelihood_rolling`.
//!
//! Requests are batched by length with right padding (causal attention makes padding after a
//! sequence invisible to it), identical model inputs run once (MMLU's four answer letters share
//! one pass), and only the scored positions go through the output layer.

use std::collections::HashMap;
use std::path::Path;

use inheritune_data::Tokenizer;
use inheritune_model::tch::{self, Device, Kind, Tensor};
use inheritune_model::{autocast, hf, CausalLm, DType, LoadOptions};

use crate::error::{Error, Result};
use crate::pystr;

/// A model with its tokenizer, ready to score requests.
pub struct Scorer {
    model: CausalLm,
    tokenizer: Tokenizer,
    /// The harness's max_length (the model's context length).
    pub max_length: usize,
    /// Token of the empty-context and rolling-window prefix (BOS, else EOS).
    pub prefix_token: u32,
    /// The token the tokenizer prepends by default, with its text.
    bos: Option<(u32, String)>,
    /// Sequences per forward pass.
    pub batch_size: usize,
    dtype: DType,
}

/// One model input and the tokens its last rows predict.
#[derive(Debug, Clone)]
struct Window {
    input: Vec<u32>,
    targets: Vec<u32>,
}

fn special_token(dir: &Path, tokenizer: &Tokenizer, key: &str) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("tokenizer_config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let t = &v[key];
    let s = t.as_str().or_else(|| t["content"].as_str())?;
    tokenizer.token_to_id(s)
}

impl Scorer {
    /// Loads a Hugging Face folder (weights, `tokenizer.json` or the built-in GPT-2 tokenizer,
    /// `tokenizer_config.json` for BOS/EOS). f32 is the parity setting; bf16 runs the forward
    /// pass under autocast with f32 log-softmax.
    ///
    /// # Errors
    /// Unreadable checkpoint or tokenizer.
    pub fn load(dir: &Path, device: Device, dtype: DType, batch_size: usize) -> Result<Self> {
        let (model, _) = hf::load(
            dir,
            &LoadOptions {
                device,
                dtype: DType::F32,
                strict: true,
            },
        )?;
        let tokenizer = Tokenizer::for_model_dir(dir)?;
        let max_length = model.config().context_length().max(1) as usize;
        let bos_id = special_token(dir, &tokenizer, "bos_token");
        let eos_id = special_token(dir, &tokenizer, "eos_token").or_else(|| tokenizer.token_to_id("<|endoftext|>"));
        let prefix_token = bos_id
            .or(eos_id)
            .ok_or_else(|| {
                Error::Invalid(if dir.join("tokenizer_config.json").exists() {
                    format!("{}: tokenizer_config.json names no BOS or EOS token that tokenizer.json has", dir.display())
                } else {
                    format!(
                        "{}: tokenizer_config.json is missing, so the BOS/EOS token is unknown (copy it from the model's original folder)",
                        dir.display()
                    )
                })
            })?;
        // Does the tokenizer prepend a token by default (a LLaMA-style post-processor)?
        let with = tokenizer.encode("a")?;
        let without = tokenizer.encode_ordinary("a")?;
        let bos = if with.len() > without.len() && !with.is_empty() {
            let id = with[0];
            Some((id, tokenizer.decode(&[id])?))
        } else {
            None
        };
        Ok(Scorer {
            model,
            tokenizer,
            max_length,
            prefix_token,
            bos,
            batch_size: batch_size.max(1),
            dtype,
        })
    }

    /// `tok_encode`: the tokenizer's default special tokens, except that a string already
    /// starting with the BOS text gets no second one.
    pub fn encode(&self, s: &str) -> Result<Vec<u32>> {
        match &self.bos {
            Some((_, text)) if !text.is_empty() && s.starts_with(text.as_str()) => {
                Ok(self.tokenizer.encode_ordinary(s)?)
            }
            _ => Ok(self.tokenizer.encode(s)?),
        }
    }

    /// `_encode_pair` (§1.3): trailing context whitespace moves to the continuation; the
    /// continuation is the joint encoding minus the context's length.
    ///
    /// # Errors
    /// A tokenizer failure.
    pub fn encode_pair(&self, context: &str, continuation: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        if context.is_empty() {
            let cont = self.tokenizer.encode_ordinary(continuation)?;
            return Ok(match cont.first() {
                Some(&first) if first == self.prefix_token => (vec![first], cont[1..].to_vec()),
                _ => (vec![self.prefix_token], cont),
            });
        }
        let n = pystr::trailing_space_chars(context);
        let (context, continuation) = if n > 0 {
            let cut = context.char_indices().rev().nth(n - 1).map(|(i, _)| i).unwrap_or(0);
            (&context[..cut], format!("{}{continuation}", &context[cut..]))
        } else {
            (context, continuation.to_string())
        };
        let whole = self.encode(&format!("{context}{continuation}"))?;
        let ctx = self.encode(context)?;
        let cont = whole.get(ctx.len()..).unwrap_or_default().to_vec();
        Ok((ctx, cont))
    }

    fn request_window(&self, context: &str, continuation: &str) -> Result<Window> {
        let (ctx, cont) = self.encode_pair(context, continuation)?;
        if cont.is_empty() || cont.len() > self.max_length {
            return Err(Error::Invalid(format!(
                "continuation {continuation:?} has {} tokens; the harness needs 1..={}",
                cont.len(),
                self.max_length
            )));
        }
        let full: Vec<u32> = ctx.iter().chain(&cont).copied().collect();
        let start = full.len().saturating_sub(self.max_length + 1);
        Ok(Window {
            input: full[start..full.len() - 1].to_vec(),
            targets: cont,
        })
    }

    /// The windows of a rolling request (§1.8).
    fn rolling_windows(&self, text: &str) -> Result<Vec<Window>> {
        let tokens = self.encode(text)?;
        let (n, l) = (tokens.len(), self.max_length);
        let mut out = Vec::new();
        let mut s = 0;
        while s < n {
            let e = (s + l).min(n);
            let input = if s == 0 {
                std::iter::once(self.prefix_token)
                    .chain(tokens[..e - 1].iter().copied())
                    .collect()
            } else {
                tokens[e - 1 - l..e - 1].to_vec()
            };
            out.push(Window {
                input,
                targets: tokens[s..e].to_vec(),
            });
            s = e;
        }
        Ok(out)
    }

    /// (log-likelihood, is_greedy) of each (context, continuation) request.
    ///
    /// # Errors
    /// A request the harness would reject, or a model failure.
    pub fn loglikelihood(
        &self,
        requests: &[(String, String)],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<(f64, bool)>> {
        let windows = requests
            .iter()
            .map(|(c, x)| self.request_window(c, x))
            .collect::<Result<Vec<_>>>()?;
        self.score(&windows, progress)
    }

    /// The rolling log-likelihood of each text (the sum over its windows).
    ///
    /// # Errors
    /// A model failure.
    pub fn rolling(&self, texts: &[String], progress: &mut dyn FnMut(usize)) -> Result<Vec<f64>> {
        let mut windows = Vec::new();
        let mut owner = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            for w in self.rolling_windows(t)? {
                windows.push(w);
                owner.push(i);
            }
        }
        let scores = self.score(&windows, progress)?;
        let mut out = vec![0.0f64; texts.len()];
        for (i, (ll, _)) in owner.into_iter().zip(scores) {
            out[i] += ll;
        }
        Ok(out)
    }

    /// Scores windows: unique inputs batched longest first, right-padded.
    fn score(&self, windows: &[Window], progress: &mut dyn FnMut(usize)) -> Result<Vec<(f64, bool)>> {
        let mut unique: HashMap<&[u32], usize> = HashMap::new();
        let mut inputs: Vec<&[u32]> = Vec::new();
        let mut users: Vec<Vec<usize>> = Vec::new();
        for (i, w) in windows.iter().enumerate() {
            let id = *unique.entry(&w.input).or_insert_with(|| {
                inputs.push(&w.input);
                users.push(Vec::new());
                inputs.len() - 1
            });
            users[id].push(i);
        }
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(inputs[i].len()));
        let mut out = vec![(0.0, false); windows.len()];
        let device = self.model.device();
        for chunk in order.chunks(self.batch_size) {
            let width = inputs[chunk[0]].len();
            let mut ids = vec![0i64; chunk.len() * width];
            for (b, &u) in chunk.iter().enumerate() {
                for (t, &tok) in inputs[u].iter().enumerate() {
                    ids[b * width + t] = tok as i64;
                }
            }
            let idx = Tensor::from_slice(&ids).view([chunk.len() as i64, width as i64]);
            self.model.check_input(&idx)?;
            tch::no_grad(|| -> Result<()> {
                let hidden = autocast(device, self.dtype, || self.model.hidden_unchecked(&idx))?;
                for (b, &u) in chunk.iter().enumerate() {
                    let len = inputs[u].len() as i64;
                    for &w in &users[u] {
                        let targets = &windows[w].targets;
                        let k = targets.len() as i64;
                        let rows = hidden.get(b as i64).narrow(0, len - k, k);
                        let logits = autocast(device, self.dtype, || self.model.head(&rows))?;
                        let logp = logits.to_kind(Kind::Float).log_softmax(-1, Kind::Float);
                        let tgt = Tensor::from_slice(&targets.iter().map(|&t| t as i64).collect::<Vec<_>>())
                            .to_device(device);
                        let picked = logp.gather(1, &tgt.unsqueeze(1), false).squeeze_dim(1);
                        let ll = picked.sum(Kind::Float).double_value(&[]);
                        let greedy = logp.argmax(-1, false).eq_tensor(&tgt).all().int64_value(&[]) == 1;
                        out[w] = (ll, greedy);
                    }
                }
                Ok(())
            })?;
            progress(chunk.iter().map(|&u| users[u].len()).sum());
        }
        Ok(out)
    }
}
