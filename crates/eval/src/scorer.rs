//! Log-likelihood requests scored exactly as lm-evaluation-harness's `hf` backend does
//! (EVAL-TASKS.md §1.3–§1.8): `_encode_pair`, the tokenizer's own BOS rule, left truncation
//! to the context length, log-softmax over the full vocabulary in f32, the per-request sum in
//! f32, teacher-forced greedy check, and the rolling windows of `loglikelihood_rolling`.
//!
//! Requests are batched by length with right padding (causal attention makes padding after a
//! sequence invisible to it), identical model inputs run once (MMLU's four answer letters share
//! one pass), and only the scored positions go through the output layer. Inputs that share a
//! prefix (a multiple-choice document's choices after their context, Winogrande's options before
//! the blank, MMLU's five shots) run as one packed row: the prefix once, then each input's rest
//! attending to the prefix and to itself only, at the positions it has on its own
//! ([`inheritune_model::Packing`]), so each scores exactly what it scores alone.

use std::collections::HashMap;
use std::path::Path;

use inheritune_data::Tokenizer;
use inheritune_model::tch::{self, Device, Kind, Tensor};
use inheritune_model::{autocast, hf, CausalLm, DType, LoadOptions, Packing, Probe};

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

/// The most logits one pass of the output layer computes (64M: 256 MB in f32), so that scoring
/// many short continuations at once never holds a long rolling window's worth per request.
const LOGITS_PER_PASS: usize = 64 << 20;

/// One packed row: a shared prefix followed by the tails of the inputs that share it.
struct PackedRow {
    tokens: Vec<u32>,
    positions: Vec<i64>,
    /// 0 for the prefix, i + 1 for the i-th tail.
    segments: Vec<u32>,
    /// (unique input, row index where its tail starts).
    members: Vec<(usize, usize)>,
    prefix: usize,
}

/// The shortest prefix worth sharing: below it, inputs run alone (every input of a BOS
/// tokenizer shares one token).
const MIN_SHARED: usize = 8;

/// The length of the longest common prefix of `a` and `b`.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Groups inputs by a shared prefix: in sorted order, each input joins the group before it while
/// the tokens saved, (members − 1) × prefix, do not fall; a group is (prefix length, members).
fn prefix_groups(inputs: &[&[u32]]) -> Vec<(usize, Vec<usize>)> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by(|&a, &b| inputs[a].cmp(inputs[b]).then(a.cmp(&b)));
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for u in order {
        if let Some((prefix, members)) = groups.last_mut() {
            let shared = common_prefix(&inputs[members[0]][..*prefix], inputs[u]);
            let m = members.len();
            if shared >= MIN_SHARED && m * shared >= (m - 1) * *prefix {
                *prefix = shared;
                members.push(u);
                continue;
            }
        }
        groups.push((inputs[u].len(), vec![u]));
    }
    groups
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

    /// Scores windows: unique inputs batched longest first, right-padded; inputs sharing a
    /// prefix packed into rows.
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
        // A position in the prefix is the same token with the same past in every member, so any
        // member's scored rows lie in the prefix or in its own tail.
        let mut alone: Vec<usize> = Vec::new();
        let mut rows: Vec<PackedRow> = Vec::new();
        for (prefix, members) in prefix_groups(&inputs) {
            if members.len() == 1 {
                alone.extend(members);
            } else {
                rows.extend(self.pack(&inputs[members[0]][..prefix], &members, &inputs));
            }
        }
        let mut out = vec![(0.0, false); windows.len()];
        alone.sort_by_key(|&u| std::cmp::Reverse(inputs[u].len()));
        for chunk in alone.chunks(self.batch_size) {
            let width = inputs[chunk[0]].len();
            let mut ids = vec![0i64; chunk.len() * width];
            for (b, &u) in chunk.iter().enumerate() {
                for (t, &tok) in inputs[u].iter().enumerate() {
                    ids[b * width + t] = tok as i64;
                }
            }
            let idx = Tensor::from_slice(&ids).view([chunk.len() as i64, width as i64]);
            self.model.check_input(&idx)?;
            let hidden =
                tch::no_grad(|| autocast(self.model.device(), self.dtype, || self.model.hidden_unchecked(&idx)))?;
            let mut jobs = Vec::new();
            for (b, &u) in chunk.iter().enumerate() {
                let len = inputs[u].len();
                for &w in &users[u] {
                    let k = windows[w].targets.len();
                    jobs.push((w, (len - k..len).map(|p| (b * width + p) as i64).collect()));
                }
            }
            self.score_rows(&hidden, &jobs, windows, &mut out)?;
            progress(chunk.iter().map(|&u| users[u].len()).sum());
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.tokens.len()));
        for chunk in rows.chunks(self.batch_size) {
            let hidden = self.packed_hidden(chunk)?;
            let width = hidden.size()[1] as usize;
            let mut jobs = Vec::new();
            for (b, row) in chunk.iter().enumerate() {
                for &(u, tail) in &row.members {
                    let len = inputs[u].len();
                    for &w in &users[u] {
                        let k = windows[w].targets.len();
                        // Input position p sits at row index p in the prefix, tail + p - prefix after it.
                        let at = (len - k..len).map(|p| {
                            let i = if p < row.prefix { p } else { tail + p - row.prefix };
                            (b * width + i) as i64
                        });
                        jobs.push((w, at.collect()));
                    }
                }
            }
            self.score_rows(&hidden, &jobs, windows, &mut out)?;
            progress(
                chunk
                    .iter()
                    .flat_map(|r| r.members.iter().map(|&(u, _)| users[u].len()))
                    .sum(),
            );
        }
        Ok(out)
    }

    /// Packs the inputs `members` sharing `prefix` into rows of at most `max_length` tokens, the
    /// prefix first in each.
    fn pack(&self, prefix: &[u32], members: &[usize], inputs: &[&[u32]]) -> Vec<PackedRow> {
        let c = prefix.len();
        let fresh = || PackedRow {
            tokens: prefix.to_vec(),
            positions: (0..c as i64).collect(),
            segments: vec![0; c],
            members: Vec::new(),
            prefix: c,
        };
        let mut rows = vec![fresh()];
        for &u in members {
            let tail = &inputs[u][c..];
            if rows
                .last()
                .is_some_and(|r| !r.members.is_empty() && r.tokens.len() + tail.len() > self.max_length)
            {
                rows.push(fresh());
            }
            let Some(row) = rows.last_mut() else { continue };
            let segment = row.members.len() as u32 + 1;
            row.members.push((u, row.tokens.len()));
            row.tokens.extend_from_slice(tail);
            row.positions.extend((c..c + tail.len()).map(|p| p as i64));
            row.segments.extend(std::iter::repeat_n(segment, tail.len()));
        }
        rows
    }

    /// Final hidden states `(B, W, d)` of packed rows, right-padded to the longest.
    fn packed_hidden(&self, chunk: &[PackedRow]) -> Result<Tensor> {
        let width = chunk.iter().map(|r| r.tokens.len()).max().unwrap_or(1);
        let b = chunk.len();
        let mut ids = vec![0i64; b * width];
        let mut pos = vec![0i64; b * width];
        // Padding is its own segment (-1): it sees the prefix and itself, never a tail.
        let mut seg = vec![-1i64; b * width];
        for (i, row) in chunk.iter().enumerate() {
            for (t, ((&tok, &p), &sg)) in row.tokens.iter().zip(&row.positions).zip(&row.segments).enumerate() {
                ids[i * width + t] = i64::from(tok);
                pos[i * width + t] = p;
                seg[i * width + t] = i64::from(sg);
            }
        }
        let device = self.model.device();
        let (b, w) = (b as i64, width as i64);
        let idx = Tensor::from_slice(&ids).view([b, w]);
        // Token q sees token k <= q of the prefix (segment 0) or of its own segment.
        let seg = Tensor::from_slice(&seg).view([b, w]).to_device(device);
        let same = seg.unsqueeze(2).eq_tensor(&seg.unsqueeze(1)); // (B, q, k)
        let causal = Tensor::ones([w, w], (Kind::Bool, device)).tril(0);
        let allowed = same
            .logical_or(&seg.unsqueeze(1).eq(0))
            .logical_and(&causal)
            .unsqueeze(1);
        let packing = Packing {
            positions: Tensor::from_slice(&pos).view([b, w]).to_device(device),
            allowed,
        };
        tch::no_grad(|| {
            autocast(device, self.dtype, || {
                self.model.probe(
                    &idx,
                    &mut Probe {
                        packing: Some(&packing),
                        ..Probe::default()
                    },
                )
            })
        })?
        .map_err(Error::from)
    }

    /// Scores `jobs` (window, rows of `hidden` flattened to `(B·W, d)` that predict its targets)
    /// into `out`: the output layer and the log-softmax over many jobs' rows at once (up to
    /// [`LOGITS_PER_PASS`] logits, at least one job), then per window the f32 sum of its targets'
    /// log-probabilities and whether each is the argmax.
    fn score_rows(
        &self,
        hidden: &Tensor,
        jobs: &[(usize, Vec<i64>)],
        windows: &[Window],
        out: &mut [(f64, bool)],
    ) -> Result<()> {
        let vocab = self.model.config().vocab_size().max(1) as usize;
        let mut start = 0;
        while start < jobs.len() {
            let mut end = start + 1;
            let mut rows = jobs[start].1.len();
            while end < jobs.len() && (rows + jobs[end].1.len()) * vocab <= LOGITS_PER_PASS {
                rows += jobs[end].1.len();
                end += 1;
            }
            self.score_pass(hidden, &jobs[start..end], windows, out)?;
            start = end;
        }
        Ok(())
    }

    fn score_pass(
        &self,
        hidden: &Tensor,
        jobs: &[(usize, Vec<i64>)],
        windows: &[Window],
        out: &mut [(f64, bool)],
    ) -> Result<()> {
        let device = self.model.device();
        let at: Vec<i64> = jobs.iter().flat_map(|(_, rows)| rows.iter().copied()).collect();
        let targets: Vec<i64> = jobs
            .iter()
            .flat_map(|&(w, _)| windows[w].targets.iter().map(|&t| t as i64))
            .collect();
        let (picked, greedy) = tch::no_grad(|| -> Result<(Tensor, Vec<bool>)> {
            let d = hidden.size()[2];
            let rows = hidden
                .view([-1, d])
                .index_select(0, &Tensor::from_slice(&at).to_device(device));
            let logits = autocast(device, self.dtype, || self.model.head(&rows))?;
            let logp = logits.to_kind(Kind::Float).log_softmax(-1, Kind::Float);
            let tgt = Tensor::from_slice(&targets).to_device(device);
            let picked = logp.gather(1, &tgt.unsqueeze(1), false).squeeze_dim(1);
            let greedy = Vec::<bool>::try_from(logp.argmax(-1, false).eq_tensor(&tgt).to_device(Device::Cpu))
                .map_err(inheritune_model::Error::from)?;
            Ok((picked.to_device(Device::Cpu), greedy))
        })?;
        let mut offset = 0;
        for (w, rows) in jobs {
            let k = rows.len();
            // The harness's `logits.sum()`: torch's f32 sum over the window's targets.
            let ll = picked
                .narrow(0, offset as i64, k as i64)
                .sum(Kind::Float)
                .double_value(&[]);
            out[*w] = (ll, greedy[offset..offset + k].iter().all(|&g| g));
            offset += k;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_groups;

    #[test]
    fn inputs_group_by_a_shared_prefix_while_it_saves_tokens() {
        let a: Vec<u32> = (1..=20).collect();
        let b: Vec<u32> = (1..=12).chain([50, 51]).collect();
        let c: Vec<u32> = (1..=12).chain([60]).collect();
        let d: Vec<u32> = vec![7, 8, 9];
        let e: Vec<u32> = (1..=5).chain([99]).collect();
        let inputs: Vec<&[u32]> = vec![&d, &c, &a, &e, &b];
        // Sorted: a, b, c (12 shared), e (5 shared: too few), d (none).
        assert_eq!(
            prefix_groups(&inputs),
            vec![(12, vec![2, 4, 1]), (6, vec![3]), (3, vec![0])]
        );
        // Three inputs sharing 100 tokens keep them rather than take a fourth sharing 30
        // (3 × 30 < 2 × 100); two sharing 100 do take a third sharing 60 (2 × 60 ≥ 100).
        let long = |tail: u32, shared: u32| -> Vec<u32> { (0..shared).chain(1000 + tail..1003 + tail).collect() };
        let (p, q, r, s) = (long(0, 100), long(10, 100), long(20, 100), long(30, 30));
        assert_eq!(
            prefix_groups(&[&p, &q, &r, &s]),
            vec![(100, vec![0, 1, 2]), (33, vec![3])]
        );
        let t = long(40, 60);
        assert_eq!(prefix_groups(&[&p, &q, &t]), vec![(60, vec![0, 1, 2])]);
    }
}
