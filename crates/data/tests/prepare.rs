//! `prepare` against tiktoken on pyarrow-written inputs, shard round trips, splits, resume,
//! the loader's determinism, and bad inputs.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use inheritune_data::loader::{full_pass_offsets, Loader, Order, TokenStream};
use inheritune_data::prepare::{prepare, EotPlacement, Manifest, PrepareConfig, SplitRule};
use inheritune_data::shards::read_tokens;
use inheritune_data::source::discover;
use inheritune_data::Tokenizer;
use proptest::prelude::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/prepare")
        .join(name)
}

fn expected_docs() -> anyhow::Result<Vec<Vec<u32>>> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("expected.json"))?)?;
    Ok(serde_json::from_value(v["docs"].clone())?)
}

fn split_tokens(dir: &Path, split: &str) -> anyhow::Result<Vec<u32>> {
    let m = Manifest::read(dir)?;
    let mut out = Vec::new();
    for (path, n) in m.split_shards(dir, split) {
        let t = read_tokens(&path, None)?;
        assert_eq!(t.len() as u64, n, "{}", path.display());
        out.extend(t);
    }
    Ok(out)
}

fn run(inputs: &[PathBuf], config: &PrepareConfig, out: &Path) -> inheritune_data::Result<Manifest> {
    let sources = discover(inputs)?;
    prepare(&sources, &Tokenizer::gpt2()?, config, out, &mut |_| {
        ControlFlow::Continue(())
    })
}

fn generic(shard_tokens: u64) -> PrepareConfig {
    PrepareConfig {
        shard_tokens,
        batch_docs: 5,
        ..PrepareConfig::generic()
    }
}

#[test]
fn every_input_layout_gives_tiktokens_tokens() -> anyhow::Result<()> {
    let docs = expected_docs()?;
    let appended: Vec<u32> = docs.iter().flat_map(|d| d.iter().copied().chain([50256])).collect();
    let prepended: Vec<u32> = docs
        .iter()
        .flat_map(|d| [50256].into_iter().chain(d.iter().copied()))
        .collect();
    for file in ["fineweb.parquet", "owt.parquet", "view.parquet", "docs.jsonl.gz"] {
        let tmp = tempfile::tempdir()?;
        let m = run(&[fixture(file)], &generic(97), tmp.path())?;
        assert_eq!(split_tokens(tmp.path(), "train")?, appended, "{file}");
        assert_eq!(m.documents, 12);
        assert_eq!(m.splits["train"].documents, 12);
        assert!(m.shards.iter().all(|s| s.tokens <= 97));

        // FineWeb-Edu: EOT prepended, the first shard's worth of tokens is val.
        let tmp = tempfile::tempdir()?;
        let config = PrepareConfig {
            split: SplitRule::FirstTokens { tokens: 200 },
            shard_tokens: 200,
            batch_docs: 3,
            ..PrepareConfig::fineweb_edu()
        };
        let m = run(&[fixture(file)], &config, tmp.path())?;
        let (val, train) = (split_tokens(tmp.path(), "val")?, split_tokens(tmp.path(), "train")?);
        assert_eq!(val.len(), 200);
        assert_eq!([val, train].concat(), prepended, "{file}");
        assert_eq!(m.shards[0].file, "train-000000.parquet");
    }
    Ok(())
}

#[test]
fn openwebtext_split_is_seeded_and_explicit_lists_work() -> anyhow::Result<()> {
    let docs = expected_docs()?;
    let with_eot = |ix: &mut dyn Iterator<Item = usize>| -> Vec<u32> {
        ix.flat_map(|i| docs[i].iter().copied().chain([50256])).collect()
    };
    let val_docs = BTreeSet::from([1u64, 4, 11]);
    let config = PrepareConfig {
        split: SplitRule::DocList { docs: val_docs.clone() },
        shard_tokens: 50,
        batch_docs: 4,
        ..PrepareConfig::openwebtext()
    };
    let tmp = tempfile::tempdir()?;
    let m = run(&[fixture("owt.parquet")], &config, tmp.path())?;
    assert_eq!(
        split_tokens(tmp.path(), "val")?,
        with_eot(&mut [1usize, 4, 11].into_iter())
    );
    assert_eq!(
        split_tokens(tmp.path(), "train")?,
        with_eot(&mut (0..12).filter(|i| !val_docs.contains(&(*i as u64))))
    );
    assert_eq!((m.splits["val"].documents, m.splits["train"].documents), (3, 9));

    // A seeded fraction: the same seed gives the same split, and the split is by whole documents.
    let frac = PrepareConfig {
        split: SplitRule::DocFraction { fraction: 0.4, seed: 7 },
        shard_tokens: 1000,
        ..PrepareConfig::openwebtext()
    };
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    run(&[fixture("owt.parquet")], &frac, a.path())?;
    run(&[fixture("fineweb.parquet")], &frac, b.path())?;
    assert_eq!(split_tokens(a.path(), "val")?, split_tokens(b.path(), "val")?);
    let total = split_tokens(a.path(), "val")?.len() + split_tokens(a.path(), "train")?.len();
    assert_eq!(total, docs.iter().map(|d| d.len() + 1).sum::<usize>());
    Ok(())
}

#[test]
fn interrupted_runs_resume_to_the_same_shards() -> anyhow::Result<()> {
    let config = PrepareConfig {
        split: SplitRule::DocList {
            docs: BTreeSet::from([2, 3, 9]),
        },
        shard_tokens: 60,
        batch_docs: 2,
        ..PrepareConfig::openwebtext()
    };
    let full = tempfile::tempdir()?;
    run(&[fixture("fineweb.parquet")], &config, full.path())?;
    let part = tempfile::tempdir()?;
    let sources = discover(&[fixture("fineweb.parquet")])?;
    let mut calls = 0;
    let r = prepare(&sources, &Tokenizer::gpt2()?, &config, part.path(), &mut |_| {
        calls += 1;
        if calls == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert!(matches!(r, Err(inheritune_data::Error::Interrupted)));
    assert!(!part.path().join("manifest.json").exists());
    let leftovers: Vec<_> = std::fs::read_dir(part.path())?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "half-written files left: {leftovers:?}");
    let m = run(&[fixture("fineweb.parquet")], &config, part.path())?;
    let f = Manifest::read(full.path())?;
    assert_eq!(m.shards, f.shards);
    assert_eq!(m.splits, f.splits);
    for split in ["train", "val"] {
        assert_eq!(split_tokens(part.path(), split)?, split_tokens(full.path(), split)?);
    }
    // A finished folder is returned as is; other settings in the same folder are refused.
    assert_eq!(
        run(&[fixture("fineweb.parquet")], &config, part.path())?.shards,
        f.shards
    );
    let err = run(&[fixture("fineweb.parquet")], &generic(60), part.path())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("other settings"), "{err}");
    Ok(())
}

fn err_of(inputs: &[PathBuf], out: &Path) -> String {
    run(inputs, &generic(100), out)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| "<ok>".into())
}

#[test]
fn bad_inputs_are_one_line_errors_naming_the_file() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("out");
    // Truncated Parquet.
    let bytes = std::fs::read(fixture("fineweb.parquet"))?;
    let cut = tmp.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2])?;
    let e = err_of(&[cut], &out);
    assert!(e.contains("cut.parquet") && !e.contains('\n'), "{e}");
    // Corrupt data pages (header intact): the error names the row group.
    let mut bad = bytes.clone();
    for b in &mut bad[8..bytes.len() / 3] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    let corrupt = tmp.path().join("corrupt.parquet");
    std::fs::write(&corrupt, &bad)?;
    let e = err_of(&[corrupt], &out);
    assert!(e.contains("corrupt.parquet") && e.contains("row group"), "{e}");
    // Missing column.
    let config = PrepareConfig {
        column: "body".into(),
        ..generic(100)
    };
    let e = run(&[fixture("owt.parquet")], &config, &out)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("owt.parquet") && e.contains("no column \"body\"") && e.contains("text"),
        "{e}"
    );
    // Invalid UTF-8 in JSONL, and a bad JSON line.
    let jsonl = tmp.path().join("bad.jsonl");
    std::fs::write(&jsonl, b"{\"text\": \"ok\"}\n{\"text\": \"caf\xe9\"}\n")?;
    let e = err_of(std::slice::from_ref(&jsonl), &out);
    assert!(
        e.contains("bad.jsonl") && e.contains("line 2") && e.contains("UTF-8"),
        "{e}"
    );
    std::fs::write(&jsonl, b"{\"text\": \"ok\"}\n{\"txt\": 1}\n")?;
    let e = err_of(&[jsonl], &out);
    assert!(e.contains("line 2") && e.contains("no string field \"text\""), "{e}");
    // Invalid UTF-8 in a .txt document.
    let txt_dir = tmp.path().join("txt");
    std::fs::create_dir(&txt_dir)?;
    std::fs::write(txt_dir.join("a.txt"), "fine")?;
    std::fs::write(txt_dir.join("b.txt"), b"\xff\xfe")?;
    let e = err_of(&[txt_dir], &out);
    assert!(e.contains("b.txt") && e.contains("UTF-8"), "{e}");
    // Empty input.
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "")?;
    assert!(err_of(&[empty], &out).contains("no documents"));
    let none = tmp.path().join("none");
    std::fs::create_dir(&none)?;
    assert!(err_of(&[none], &out).contains("no .parquet"));
    // Nothing half-written is left behind.
    if out.exists() {
        for e in std::fs::read_dir(&out)?.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            assert!(!name.ends_with(".tmp") && name != "manifest.json", "{name}");
        }
    }
    Ok(())
}

#[test]
fn loader_is_deterministic_and_ranks_are_disjoint() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    run(&[fixture("fineweb.parquet")], &generic(64), tmp.path())?;
    let all = split_tokens(tmp.path(), "train")?;
    let open = |order, rank, world| -> anyhow::Result<Loader> {
        Ok(Loader::new(
            TokenStream::open(tmp.path(), "train")?,
            order,
            2,
            8,
            42,
            rank,
            world,
        )?)
    };
    for order in [Order::Random, Order::Sequential] {
        let mut a = open(order, 0, 1)?;
        let mut b = open(order, 0, 1)?;
        for step in [0u64, 5, 3, 5] {
            assert_eq!(a.micro_batch(step, 1, 4)?, b.micro_batch(step, 1, 4)?);
        }
        let batch = a.micro_batch(7, 0, 2)?;
        // y is x shifted by one within each window, and every window is a slice of the stream.
        for row in 0..2 {
            let x = &batch.x[row * 8..(row + 1) * 8];
            let y = &batch.y[row * 8..(row + 1) * 8];
            assert_eq!(&x[1..], &y[..7]);
            let xs: Vec<u32> = x.iter().map(|&v| v as u32).collect();
            assert!(all.windows(8).any(|w| w == xs.as_slice()));
        }
    }
    // Sequential contract: micro-step m of step s reads B*T+1 tokens at ((s*accum+m)*W + r)*B*T.
    let mut one = open(Order::Sequential, 0, 1)?;
    let b = one.micro_batch(2, 1, 3)?;
    let off = (2 * 3 + 1) * 16;
    assert_eq!(b.x, all[off..off + 16].iter().map(|&v| v as i64).collect::<Vec<_>>());
    assert_eq!(
        b.y,
        all[off + 1..off + 17].iter().map(|&v| v as i64).collect::<Vec<_>>()
    );
    let (mut r0, mut r1) = (open(Order::Sequential, 0, 2)?, open(Order::Sequential, 1, 2)?);
    let mut seen = BTreeSet::new();
    for step in 0..5 {
        for r in [&mut r0, &mut r1] {
            let x = r.micro_batch(step, 0, 1)?.x;
            assert!(seen.insert(x), "two ranks read the same chunk");
        }
    }
    let (mut q0, mut q1) = (open(Order::Random, 0, 2)?, open(Order::Random, 1, 2)?);
    assert_ne!(q0.micro_batch(0, 0, 1)?, q1.micro_batch(0, 0, 1)?);
    // A step's micro-batches depend on accum × world only: rank r's micro-step m of 2 ranks × 2
    // is micro-step 2m + r of one process × 4, in both orders.
    for order in [Order::Random, Order::Sequential] {
        let mut solo = open(order, 0, 1)?;
        let mut ranks = [open(order, 0, 2)?, open(order, 1, 2)?];
        for step in [0u64, 3, 11] {
            for m in 0..2u64 {
                for (r, loader) in ranks.iter_mut().enumerate() {
                    assert_eq!(
                        loader.micro_batch(step, m, 2)?,
                        solo.micro_batch(step, 2 * m + r as u64, 4)?
                    );
                }
            }
            if order == Order::Random {
                // Micro-batches of consecutive steps do not coincide (no step·31 + m aliasing).
                assert_ne!(solo.micro_batch(step, 31, 40)?, solo.micro_batch(step + 1, 0, 40)?);
            }
        }
    }
    assert_eq!(full_pass_offsets(17, 8), vec![0, 8]);
    assert_eq!(full_pass_offsets(16, 8), vec![0]);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn shards_round_trip_every_token(
        docs in prop::collection::vec("[a-zé ]{0,30}", 1..25),
        shard in 1u64..40,
        eot in prop::sample::select(vec![EotPlacement::Append, EotPlacement::Prepend, EotPlacement::None]),
        val in prop::collection::btree_set(0u64..25, 0..6),
    ) {
        let tmp = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let input = tmp.path().join("docs.jsonl");
        let lines: Vec<String> = docs.iter().map(|d| serde_json::json!({"text": d}).to_string()).collect();
        std::fs::write(&input, lines.join("\n")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let out = tmp.path().join("out");
        // Val indices are documents of the corpus (indices past it are refused, tested elsewhere).
        let val: std::collections::BTreeSet<u64> = val.into_iter().filter(|&i| i < docs.len() as u64).collect();
        let config = PrepareConfig { eot, shard_tokens: shard, batch_docs: 3, split: SplitRule::DocList { docs: val.clone() }, ..PrepareConfig::generic() };
        let tok = Tokenizer::gpt2().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let m = run(&[input], &config, &out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut expect = (Vec::new(), Vec::new());
        for (i, d) in docs.iter().enumerate() {
            let mut t = tok.encode(d).unwrap_or_default();
            match eot {
                EotPlacement::Append => t.push(50256),
                EotPlacement::Prepend => t.insert(0, 50256),
                EotPlacement::None => {}
            }
            if val.contains(&(i as u64)) { expect.0.extend(t) } else { expect.1.extend(t) }
        }
        prop_assert_eq!(split_tokens(&out, "val").map_err(|e| TestCaseError::fail(e.to_string()))?, expect.0);
        prop_assert_eq!(split_tokens(&out, "train").map_err(|e| TestCaseError::fail(e.to_string()))?, expect.1);
        prop_assert!(m.shards.iter().all(|s| s.tokens <= shard && s.tokens > 0));
        prop_assert_eq!(m.documents, docs.len() as u64);
    }
}

/// Vocabularies of 128K–262K tokens (Llama 3, Qwen, Gemma 3): ids above 65,535 are stored as
/// u32 and read back unchanged. A word-level tokenizer of 200,000 tokens (`w{i}` is id i, built
/// here with the `tokenizers` crate) makes the expected ids hand-derivable; its end-of-text
/// token `<|end_of_text|>` (Llama 3's name) is found by the tokenizer's own rule.
#[test]
fn large_vocabularies_round_trip_losslessly() -> anyhow::Result<()> {
    use std::collections::HashMap;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
    let n: u32 = 200_000;
    let mut vocab: HashMap<String, u32> = (0..n - 1).map(|i| (format!("w{i}"), i)).collect();
    vocab.insert("<|end_of_text|>".into(), n - 1);
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("w0".into())
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut inner = tokenizers::Tokenizer::new(model);
    inner.with_pre_tokenizer(Some(WhitespaceSplit));
    inner.add_special_tokens(&[tokenizers::AddedToken::from("<|end_of_text|>", true)]);
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("tokenizer.json");
    inner.save(&file, false).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tok = Tokenizer::from_file(&file)?;
    assert_eq!(tok.vocab_size(), n as usize);
    assert_eq!(tok.default_eot(Some(&file)).as_deref(), Some("<|end_of_text|>"));
    assert!(!tok.adds_special_tokens()?);
    let docs = ["w131072 w5 w199998", "w65535 w65536 w70000"];
    let input = tmp.path().join("docs.jsonl");
    let lines: Vec<String> = docs
        .iter()
        .map(|d| serde_json::json!({"text": d}).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n"))?;
    let config = PrepareConfig {
        eot_token: "<|end_of_text|>".into(),
        ..generic(4)
    };
    let out = tmp.path().join("out");
    let m = prepare(&discover(&[input])?, &tok, &config, &out, &mut |_| {
        ControlFlow::Continue(())
    })?;
    assert_eq!(m.token_dtype, inheritune_data::shards::TokenDtype::Uint32);
    let want: Vec<u32> = vec![131072, 5, 199998, n - 1, 65535, 65536, 70000, n - 1];
    assert_eq!(split_tokens(&out, "train")?, want);
    Ok(())
}
