//! TensorBoard event files: the writer's bytes equal the `tensorboard` package's own for the same
//! events (`tests/fixtures/tensorboard/make_golden.py`), and a run with `tensorboard = true`
//! writes one well-framed record per metrics line.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use inheritune_model::tch::Device;
use inheritune_train::tensorboard::{event, record};
use inheritune_train::{train, Options, RunConfig};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn events_equal_the_tensorboard_packages_bytes() {
    let golden = std::fs::read(fixtures().join("tensorboard/golden.tfevents")).unwrap();
    type Scalars<'a> = &'a [(&'a str, f32)];
    let events: [(f64, i64, Scalars); 4] = [
        (
            1700000000.25,
            1,
            &[
                ("train/loss", 10.8125),
                ("train/lr", 1.5e-4),
                ("train/grad_norm", 0.9375),
            ],
        ),
        (1700000001.5, 2, &[("train/loss", 9.5)]),
        (
            1700000100.0,
            1000,
            &[("eval/train_loss", 3.25), ("eval/val_loss", 3.375)],
        ),
        (1700000200.0, 300000, &[("train/tokens_per_s", 52100.0)]),
    ];
    let mut ours = record(&event(1700000000.0, 0, Some("brain.Event:2"), &[]));
    for (wall, step, values) in events {
        ours.extend(record(&event(wall, step, None, values)));
    }
    assert_eq!(ours, golden);
}

/// Splits a TFRecord stream into its payloads, checking the framing.
fn records(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let data = bytes[12..12 + len].to_vec();
        assert_eq!(record(&data), bytes[..16 + len].to_vec(), "a record's CRCs are wrong");
        out.push(data);
        bytes = &bytes[16 + len..];
    }
    out
}

#[test]
fn a_run_writes_one_event_per_metrics_line() {
    let parity = fixtures().join("parity");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run.toml");
    std::fs::write(
        &path,
        format!(
            "[model]\nconfig = \"{}/config.json\"\n[data]\ndir = \"{}\"\n[train]\nmicro_batch = 2\nseq_len = 16\nmax_steps = 4\n\
             warmup_steps = 1\neval_interval = 2\neval_iters = 1\ntensorboard = true\n",
            parity.join("init").display(),
            parity.join("data").display()
        ),
    )
    .unwrap();
    let config = RunConfig::from_file(&path).unwrap();
    let run = tmp.path().join("run");
    let options = Options {
        init: Some(parity.join("init")),
        ..Options::new(Device::Cpu)
    };
    train(&config, &run, &options, &mut |_| ControlFlow::Continue(())).unwrap();
    let files: Vec<PathBuf> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .collect();
    assert_eq!(files.len(), 1);
    let recs = records(&std::fs::read(&files[0]).unwrap());
    let lines = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(recs.len(), 1 + lines, "a version record and one per metrics line");
    assert!(recs[1..].iter().all(|r| r.windows(b"loss".len()).any(|w| w == b"loss")));
}
