//! Packed rows ([`Packing`]: a shared context, continuations after it, the start of another
//! sequence beside them) give each token the logits `transformers` gives it in its own unpacked sequence
//! (`reference.safetensors` of every fixture, made by `fixtures/make_fixtures.py` and
//! `fixtures/make_families.py`), through the fast and the explicit attention paths, sliding
//! windows, soft-capping and every RoPE variant included.

mod common;

use common::{fixture, max_abs_diff, reference, FAMILIES, FIXTURES};
use inheritune_model::hf::{self, LoadOptions};
use inheritune_model::tch::{Kind, Tensor};
use inheritune_model::{Packing, Probe};

/// One row: `s[..c]` (segment 0), `s[c..]` (1), `s[c..c + 2]` (2), then `u` alone (3).
/// Returns ids, the packing, and for each packed token (row of the reference, position).
fn pack(s: &[i64], u: &[i64], u_row: i64) -> (Tensor, Packing, Vec<(i64, i64)>) {
    let (t, c) = (s.len(), s.len() / 2);
    let mut ids = Vec::new();
    let mut pos = Vec::new();
    let mut seg = Vec::new();
    let mut source = Vec::new();
    let mut push = |tok: i64, p: usize, sg: u8, row: i64| {
        ids.push(tok);
        pos.push(p as i64);
        seg.push(sg);
        source.push((row, p as i64));
    };
    for (sg, range) in [(0, 0..c), (1, c..t), (2, c..c + 2)] {
        for (p, &tok) in s.iter().enumerate().take(range.end).skip(range.start) {
            push(tok, p, sg, 0);
        }
    }
    for (p, &tok) in u.iter().enumerate() {
        push(tok, p, 3, u_row);
    }
    let n = ids.len();
    let mut allowed = vec![false; n * n];
    for q in 0..n {
        for k in 0..=q {
            allowed[q * n + k] = seg[k] == seg[q] || (seg[k] == 0 && seg[q] != 3);
        }
    }
    let n = n as i64;
    let packing = Packing {
        positions: Tensor::from_slice(&pos).view([1, n]),
        allowed: Tensor::from_slice(&allowed).view([1, 1, n, n]),
    };
    (Tensor::from_slice(&ids).view([1, n]), packing, source)
}

#[test]
fn packed_rows_give_every_token_its_unpacked_logits() -> anyhow::Result<()> {
    for name in FIXTURES.iter().copied().chain(FAMILIES.iter().map(|f| f.0)) {
        let (model, _) = hf::load(&fixture(name), &LoadOptions::default())?;
        let r = reference(name)?;
        let ids = &r["input_ids"];
        let rows: Vec<Vec<i64>> = (0..ids.size()[0])
            .map(|b| Vec::<i64>::try_from(ids.get(b)))
            .collect::<Result<_, _>>()?;
        let u_row = (rows.len() as i64 - 1).min(1);
        // Prefixes of the reference rows (causal: their logits are the reference's), sized so that
        // the packed row fits the context.
        let room = model.config().context_length() as usize - 2;
        let len = rows[0].len().min(room * 4 / 5);
        let u = &rows[u_row as usize][..len / 4];
        let (packed, packing, source) = pack(&rows[0][..len], u, u_row);
        let want = Tensor::stack(
            &source
                .iter()
                .map(|&(b, p)| r["logits"].get(b).get(p))
                .collect::<Vec<_>>(),
            0,
        );
        let fast = model.head(&model.probe(
            &packed,
            &mut Probe {
                packing: Some(&packing),
                ..Probe::default()
            },
        )?);
        let diff = max_abs_diff(&fast.get(0), &want);
        assert!(diff < 1e-4, "{name}: packed logits differ from transformers' by {diff}");
        let mut seen = 0;
        let mut visitor = |_: usize, probs: &Tensor| {
            // Nothing leaks across segments: the other sequence's rows give the rest zero weight.
            let n = probs.size()[3];
            let u_len = u.len() as i64;
            let leak = probs.narrow(2, n - u_len, u_len).narrow(3, 0, n - u_len).abs().max();
            assert_eq!(
                leak.double_value(&[]),
                0.0,
                "{name}: attention leaks into another sequence"
            );
            seen += 1;
        };
        let explicit = model.head(&model.probe(
            &packed,
            &mut Probe {
                attention: Some(&mut visitor),
                packing: Some(&packing),
                ..Probe::default()
            },
        )?);
        assert_eq!(seen, model.config().n_layer(), "{name}");
        let diff = max_abs_diff(&explicit.get(0), &want);
        assert!(diff < 1e-4, "{name}: packed explicit-path logits differ by {diff}");
    }
    Ok(())
}

#[test]
fn a_packing_that_does_not_fit_is_an_error() -> anyhow::Result<()> {
    let (model, _) = hf::load(&fixture("gpt2_bias"), &LoadOptions::default())?;
    let ids = Tensor::from_slice(&[1i64, 2, 3]).view([1, 3]);
    let allowed = Tensor::ones([1, 1, 3, 3], (Kind::Bool, inheritune_model::tch::Device::Cpu)).tril(0);
    let context = model.config().context_length();
    for (positions, allowed, needle) in [
        (
            Tensor::from_slice(&[0i64, 1]).view([1, 2]),
            allowed.shallow_clone(),
            "positions must be (1, 3) int64",
        ),
        (
            Tensor::from_slice(&[0i64, 1, context]).view([1, 3]),
            allowed.shallow_clone(),
            "positions must be in 0..",
        ),
        (
            Tensor::from_slice(&[0i64, 1, 2]).view([1, 3]),
            allowed.to_kind(Kind::Float),
            "allowed must be (1, 1, 3, 3) bool",
        ),
        (
            Tensor::from_slice(&[0i64, 1, 2]).view([1, 3]),
            allowed.triu(1),
            "attend to itself",
        ),
    ] {
        let packing = Packing { positions, allowed };
        let err = model
            .probe(
                &ids,
                &mut Probe {
                    packing: Some(&packing),
                    ..Probe::default()
                },
            )
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("packing: ") && err.contains(needle), "{err}");
    }
    Ok(())
}
