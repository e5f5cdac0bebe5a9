//! `inheritune download`: the corpora of `datasets/*.json` and the evaluation tasks of
//! `datasets/eval.json`, from the Hugging Face Hub through the shared cache, linked into the
//! folders the recipes read. Row counts a manifest states are checked after the download.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use inheritune_hub::{Hub, HubId, Source};
use serde::Deserialize;

/// Arguments of `inheritune download`.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[command(after_help = "Examples:
  inheritune download eval --tasks arc_easy,piqa
  inheritune download openwebtext
  inheritune download HuggingFaceFW/fineweb-edu --include 'sample/10BT/000_*' --out data/fw")]
pub struct Args {
    /// What to fetch: a corpus manifest (`openwebtext`, `fineweb-edu-sample-10BT`,
    /// `fineweb-edu-sample-100BT`, `redpajama-1t-sample`, or a `.json` manifest file), `eval`
    /// (the downstream tasks), or a Hub dataset id `org/name[@revision]`.
    #[arg(required_unless_present = "manifest")]
    pub what: Option<String>,
    /// Destination folder (default: the manifest's `local_dir`, `data/eval` for `eval`; required
    /// for a Hub id).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// With `eval`: only the folders these tasks read (comma-separated; default every task).
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// With a Hub id: files to fetch (glob patterns, `*` also matching `/`; default all).
    #[arg(long)]
    pub include: Vec<String>,
    /// A corpus manifest file (as those in `datasets/`) instead of a built-in name.
    #[arg(long, conflicts_with = "what")]
    pub manifest: Option<PathBuf>,
}

/// A corpus manifest (`datasets/<name>.json`; only the keys used here).
#[derive(Debug, Deserialize)]
struct Corpus {
    hub_repo: String,
    #[serde(default)]
    revision: Option<String>,
    files: Vec<String>,
    local_dir: PathBuf,
    #[serde(default)]
    expected: Expected,
}

#[derive(Debug, Default, Deserialize)]
struct Expected {
    #[serde(default)]
    documents: Option<u64>,
}

/// `datasets/eval.json`.
#[derive(Debug, Deserialize)]
struct EvalManifest {
    tasks: Vec<EvalData>,
}

#[derive(Debug, Deserialize)]
struct EvalData {
    tasks: Vec<String>,
    folder: String,
    hub_repo: String,
    #[serde(default)]
    revision: Option<String>,
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    split: String,
    rows: u64,
}

/// The manifests built into the binary: `datasets/*.json` at build time.
const CORPORA: [(&str, &str); 4] = [
    ("openwebtext", include_str!("../../../datasets/openwebtext.json")),
    (
        "fineweb-edu-sample-10BT",
        include_str!("../../../datasets/fineweb-edu-sample-10BT.json"),
    ),
    (
        "fineweb-edu-sample-100BT",
        include_str!("../../../datasets/fineweb-edu-sample-100BT.json"),
    ),
    (
        "redpajama-1t-sample",
        include_str!("../../../datasets/redpajama-1t-sample.json"),
    ),
];
const EVAL: &str = include_str!("../../../datasets/eval.json");

fn hub_id(repo: &str, revision: Option<&str>) -> Result<HubId> {
    let spec = match revision {
        Some(r) => format!("{repo}@{r}"),
        None => repo.to_string(),
    };
    HubId::parse(&spec).ok_or_else(|| anyhow!("{spec:?} is not a Hub id org/name[@revision]"))
}

/// Runs the verb and prints what it placed, as JSON.
pub fn run(args: &Args) -> Result<()> {
    let hub = Hub::from_env()?;
    let what = args.what.as_deref().unwrap_or_default();
    let file = args
        .manifest
        .clone()
        .or_else(|| what.ends_with(".json").then(|| PathBuf::from(what)));
    let summary = if let Some(path) = &file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let corpus: Corpus = serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
        corpus_download(&hub, &path.display().to_string(), &corpus, args.out.as_deref())?
    } else if what == "eval" {
        eval_download(&hub, &args.tasks, args.out.as_deref().unwrap_or(Path::new("data/eval")))?
    } else if let Some((name, text)) = CORPORA.iter().find(|(n, _)| *n == what) {
        let corpus: Corpus = serde_json::from_str(text).with_context(|| format!("datasets/{name}.json"))?;
        corpus_download(&hub, name, &corpus, args.out.as_deref())?
    } else if let Source::Hub(id) = Source::classify(what) {
        let out = args
            .out
            .as_deref()
            .ok_or_else(|| anyhow!("download {what}: --out is required for a Hub id"))?;
        let files = hub.dataset(&id, &args.include, &[], Some(out))?;
        serde_json::json!({"dataset": id.to_string(), "out": out, "files": files.len()})
    } else {
        let names: Vec<&str> = CORPORA.iter().map(|(n, _)| *n).collect();
        bail!(
            "download {what:?}: not a manifest ({}), `eval`, or a Hub id org/name",
            names.join(", ")
        )
    };
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

fn corpus_download(hub: &Hub, name: &str, c: &Corpus, out: Option<&Path>) -> Result<serde_json::Value> {
    let id = hub_id(&c.hub_repo, c.revision.as_deref())?;
    let out = out.unwrap_or(&c.local_dir);
    let files = hub.dataset(&id, &c.files, &[], Some(out))?;
    let rows = match c.expected.documents {
        Some(want) => {
            let got = inheritune_eval::data::count_rows(&files)?;
            if got != want {
                bail!(
                    "{name}: {got} documents in the {} files under {}, the manifest states {want}",
                    files.len(),
                    out.display()
                );
            }
            Some(got)
        }
        None => None,
    };
    Ok(
        serde_json::json!({"manifest": name, "dataset": id.to_string(), "out": out, "files": files.len(), "documents": rows}),
    )
}

/// The eval folders `tasks` read (all when empty); `mmlu_<subject>` reads `mmlu`.
fn eval_entries<'a>(manifest: &'a EvalManifest, tasks: &[String]) -> Result<Vec<&'a EvalData>> {
    if tasks.is_empty() {
        return Ok(manifest.tasks.iter().collect());
    }
    let mut out: Vec<&EvalData> = Vec::new();
    for t in tasks {
        let base = if t.starts_with("mmlu_") { "mmlu" } else { t.as_str() };
        let e = manifest
            .tasks
            .iter()
            .find(|e| e.tasks.iter().any(|n| n == base))
            .ok_or_else(|| anyhow!("download eval: unknown task {t:?} (datasets/eval.json)"))?;
        if !out.iter().any(|o| o.folder == e.folder) {
            out.push(e);
        }
    }
    Ok(out)
}

fn eval_download(hub: &Hub, tasks: &[String], out: &Path) -> Result<serde_json::Value> {
    let manifest: EvalManifest = serde_json::from_str(EVAL).context("datasets/eval.json")?;
    let mut done = Vec::new();
    for e in eval_entries(&manifest, tasks)? {
        let id = hub_id(&e.hub_repo, e.revision.as_deref())?;
        let folder = out.join(&e.folder);
        hub.dataset(&id, &e.include, &e.exclude, Some(&folder))?;
        let files = inheritune_eval::data::split_files(&folder, &e.split)?;
        let rows = inheritune_eval::data::count_rows(&files)?;
        if rows != e.rows {
            bail!(
                "download eval: {} has {rows} {} rows under {}, datasets/eval.json states {}",
                e.folder,
                e.split,
                folder.display(),
                e.rows
            );
        }
        eprintln!("download eval: {} ready ({rows} {} rows)", e.folder, e.split);
        done.push(serde_json::json!({"folder": folder, "dataset": id.to_string(), "split": e.split, "rows": rows}));
    }
    Ok(serde_json::json!({"eval": done}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_manifests_parse_and_name_every_eval_task() {
        for (name, text) in CORPORA {
            let c: Corpus = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(HubId::parse(&c.hub_repo).is_some(), "{name}");
        }
        let m: EvalManifest = serde_json::from_str(EVAL).unwrap();
        for task in inheritune_eval::tasks::TASKS {
            assert!(
                eval_entries(&m, &[task.to_string()]).is_ok(),
                "{task} has no eval data entry"
            );
        }
        assert_eq!(
            eval_entries(&m, &["mmlu_anatomy".into(), "mmlu".into()]).unwrap().len(),
            1
        );
        assert!(eval_entries(&m, &["nope".into()]).is_err());
    }
}
