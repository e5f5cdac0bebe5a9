//! The paper's downstream tasks as lm-evaluation-harness 0.4.13 defines them (EVAL-TASKS.md
//! §3): where each reads its data, how a document becomes requests, and which metrics it reports.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::data::read_split;
use crate::error::{Error, Result};
use crate::pystr;
use crate::text;

/// How a task scores its documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Choices scored by log-likelihood: acc (and acc_norm when `norm`).
    MultipleChoice {
        /// Also report acc_norm.
        norm: bool,
    },
    /// TruthfulQA MC2: normalised probability mass of the true answers.
    Mc2,
    /// LAMBADA: acc = greedy, perplexity of the last word.
    Lambada,
    /// WikiText: rolling log-likelihood, word/byte perplexities.
    Rolling,
}

/// The 57 MMLU subjects by category (EVAL-TASKS.md §3.13).
pub const MMLU: &[(&str, &[&str])] = &[
    (
        "stem",
        &[
            "abstract_algebra",
            "anatomy",
            "astronomy",
            "college_biology",
            "college_chemistry",
            "college_computer_science",
            "college_mathematics",
            "college_physics",
            "computer_security",
            "conceptual_physics",
            "electrical_engineering",
            "elementary_mathematics",
            "high_school_biology",
            "high_school_chemistry",
            "high_school_computer_science",
            "high_school_mathematics",
            "high_school_physics",
            "high_school_statistics",
            "machine_learning",
        ],
    ),
    (
        "humanities",
        &[
            "formal_logic",
            "high_school_european_history",
            "high_school_us_history",
            "high_school_world_history",
            "international_law",
            "jurisprudence",
            "logical_fallacies",
            "moral_disputes",
            "moral_scenarios",
            "philosophy",
            "prehistory",
            "professional_law",
            "world_religions",
        ],
    ),
    (
        "social_sciences",
        &[
            "econometrics",
            "high_school_geography",
            "high_school_government_and_politics",
            "high_school_macroeconomics",
            "high_school_microeconomics",
            "high_school_psychology",
            "human_sexuality",
            "professional_psychology",
            "public_relations",
            "security_studies",
            "sociology",
            "us_foreign_policy",
        ],
    ),
    (
        "other",
        &[
            "business_ethics",
            "clinical_knowledge",
            "college_medicine",
            "global_facts",
            "human_aging",
            "management",
            "marketing",
            "medical_genetics",
            "miscellaneous",
            "nutrition",
            "professional_accounting",
            "professional_medicine",
            "virology",
        ],
    ),
];

/// Task names `inheritune eval --tasks` accepts (plus `mmlu_<subject>`).
pub const TASKS: &[&str] = &[
    "arc_easy",
    "piqa",
    "sciq",
    "hellaswag",
    "lambada_openai",
    "winogrande",
    "boolq",
    "wsc",
    "wnli",
    "qnli",
    "mnli",
    "logiqa",
    "truthfulqa_mc1",
    "truthfulqa_mc2",
    "mmlu",
    "wikitext",
];

/// One task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Harness name (`arc_easy`, `mmlu_anatomy`, ...).
    pub name: String,
    /// Scoring.
    pub kind: Kind,
    /// Folder under the data dir.
    pub folder: PathBuf,
    /// Evaluated split.
    pub split: &'static str,
    /// MMLU subject.
    pub subject: Option<String>,
}

/// One document turned into requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Index in the split.
    pub doc_id: usize,
    /// The row as read.
    pub doc: Value,
    /// (context, continuation) per request; for rolling tasks ("", text).
    pub requests: Vec<(String, String)>,
    /// Choice strings (acc_norm's denominators).
    pub choices: Vec<String>,
    /// Gold index (-100 when out of range, as the harness).
    pub gold: i64,
    /// MC2 labels.
    pub labels: Vec<i64>,
    /// WikiText words and bytes of the raw page.
    pub words: u64,
    /// UTF-8 bytes of the raw page.
    pub bytes: u64,
}

impl Task {
    /// The tasks a name stands for (`mmlu` is the 57 subjects).
    ///
    /// # Errors
    /// An unknown name.
    pub fn resolve(name: &str) -> Result<Vec<Task>> {
        let mc = |norm| Kind::MultipleChoice { norm };
        let t = |kind, folder: &str, split| Task {
            name: name.to_string(),
            kind,
            folder: PathBuf::from(folder),
            split,
            subject: None,
        };
        Ok(vec![match name {
            "arc_easy" => t(mc(true), "arc_easy", "test"),
            "piqa" => t(mc(true), "piqa", "validation"),
            "sciq" => t(mc(true), "sciq", "test"),
            "hellaswag" => t(mc(true), "hellaswag", "validation"),
            "lambada_openai" => t(Kind::Lambada, "lambada_openai", "test"),
            "winogrande" => t(mc(false), "winogrande", "validation"),
            "boolq" => t(mc(false), "boolq", "validation"),
            "wsc" => t(mc(false), "wsc", "validation"),
            "wnli" => t(mc(false), "wnli", "validation"),
            "qnli" => t(mc(false), "qnli", "validation"),
            "mnli" => t(mc(false), "mnli", "validation_matched"),
            "logiqa" => t(mc(true), "logiqa", "test"),
            "truthfulqa_mc1" => t(mc(false), "truthfulqa", "validation"),
            "truthfulqa_mc2" => t(Kind::Mc2, "truthfulqa", "validation"),
            "wikitext" => t(Kind::Rolling, "wikitext", "test"),
            "mmlu" => {
                return Ok(MMLU
                    .iter()
                    .flat_map(|(_, subjects)| subjects.iter())
                    .map(|s| Task::mmlu(s))
                    .collect())
            }
            other => match other.strip_prefix("mmlu_") {
                Some(s) if MMLU.iter().any(|(_, subjects)| subjects.contains(&s)) => Task::mmlu(s),
                _ => {
                    return Err(Error::Invalid(format!(
                        "unknown task {name:?} (known: {}, mmlu_<subject>)",
                        TASKS.join(", ")
                    )))
                }
            },
        }])
    }

    fn mmlu(subject: &str) -> Task {
        Task {
            name: format!("mmlu_{subject}"),
            kind: Kind::MultipleChoice { norm: false },
            folder: Path::new("mmlu").join(subject),
            split: "test",
            subject: Some(subject.to_string()),
        }
    }

    /// The MMLU category of this task, if it is an MMLU subject.
    pub fn mmlu_category(&self) -> Option<&'static str> {
        let s = self.subject.as_deref()?;
        MMLU.iter().find(|(_, subjects)| subjects.contains(&s)).map(|(c, _)| *c)
    }

    /// Reads the task's documents from `data_dir` and builds their requests; `num_fewshot`
    /// applies to MMLU (first-n dev rows), other tasks are zero-shot.
    ///
    /// # Errors
    /// Missing files, malformed rows (task, file and row named).
    pub fn items(&self, data_dir: &Path, num_fewshot: usize) -> Result<Vec<Item>> {
        let dir = data_dir.join(&self.folder);
        let rows = read_split(&dir, self.split)?;
        let mut prefix = String::new();
        if let Some(subject) = &self.subject {
            prefix = format!(
                "The following are multiple choice questions (with answers) about {}.\n\n",
                subject.replace('_', " ")
            );
            if num_fewshot > 0 {
                let dev = read_split(&dir, "dev")?;
                if dev.len() < num_fewshot {
                    return Err(Error::Data {
                        path: dir.clone(),
                        message: format!("{num_fewshot}-shot needs {num_fewshot} dev rows, found {}", dev.len()),
                    });
                }
                for (row, d) in dev.iter().take(num_fewshot).enumerate() {
                    let f = Fields {
                        task: self,
                        dir: &dir,
                        row,
                        doc: d,
                    };
                    let answer = f.int("answer")?;
                    let letter = ["A", "B", "C", "D"]
                        .get(answer as usize)
                        .ok_or_else(|| f.err("answer out of range"))?;
                    prefix.push_str(&format!("{} {letter}\n\n", mmlu_text(&f)?));
                }
            }
        }
        rows.into_iter()
            .enumerate()
            .map(|(row, doc)| {
                let f = Fields {
                    task: self,
                    dir: &dir,
                    row,
                    doc: &doc,
                };
                let mut item = self.item(&f, &prefix)?;
                item.doc_id = row;
                item.doc = doc.clone();
                Ok(item)
            })
            .collect()
    }

    fn item(&self, f: &Fields, prefix: &str) -> Result<Item> {
        let mc = |ctx: String, choices: Vec<String>, gold: i64| {
            let gold = if gold < 0 || gold as usize >= choices.len() {
                -100
            } else {
                gold
            };
            Item {
                doc_id: 0,
                doc: Value::Null,
                requests: choices.iter().map(|c| (ctx.clone(), format!(" {c}"))).collect(),
                choices,
                gold,
                labels: Vec::new(),
                words: 0,
                bytes: 0,
            }
        };
        Ok(match self.name.as_str() {
            "arc_easy" => {
                let choices = f.strs(&["choices", "text"])?;
                let labels = f.strs(&["choices", "label"])?;
                let key = f.str("answerKey")?;
                let gold = labels
                    .iter()
                    .position(|l| *l == key)
                    .ok_or_else(|| f.err(&format!("answerKey {key:?} not in choices.label")))?;
                mc(
                    format!("Question: {}\nAnswer:", f.str("question")?),
                    choices,
                    gold as i64,
                )
            }
            "piqa" => mc(
                format!("Question: {}\nAnswer:", f.str("goal")?),
                vec![f.str("sol1")?, f.str("sol2")?],
                f.int("label")?,
            ),
            "sciq" => mc(
                format!(
                    "{}\nQuestion: {}\nAnswer:",
                    pystr::lstrip(&f.str("support")?),
                    f.str("question")?
                ),
                vec![
                    f.str("distractor1")?,
                    f.str("distractor2")?,
                    f.str("distractor3")?,
                    f.str("correct_answer")?,
                ],
                3,
            ),
            "hellaswag" => {
                let query = text::hellaswag_preprocess(&format!(
                    "{}: {} {}",
                    f.str("activity_label")?,
                    f.str("ctx_a")?,
                    pystr::capitalize(&f.str("ctx_b")?)
                ));
                let endings = f.strs(&["endings"])?;
                let label: i64 = f
                    .str("label")?
                    .trim()
                    .parse()
                    .map_err(|_| f.err("label is not an integer string"))?;
                mc(
                    query,
                    endings.iter().map(|e| text::hellaswag_preprocess(e)).collect(),
                    label,
                )
            }
            "lambada_openai" => {
                let text = f.str("text")?;
                let (ctx, last) = text.rsplit_once(' ').unwrap_or(("", text.as_str()));
                Item {
                    requests: vec![(ctx.to_string(), format!(" {last}"))],
                    ..mc(String::new(), Vec::new(), 0)
                }
            }
            "winogrande" => {
                let sentence = f.str("sentence")?;
                let i = sentence
                    .chars()
                    .position(|c| c == '_')
                    .ok_or_else(|| f.err("sentence has no _"))?;
                let target = pystr::strip(&pystr::slice(&sentence, i + 1, None)).to_string();
                let head = pystr::slice(&sentence, 0, Some(i));
                let contexts = vec![
                    format!("{head}{}", f.str("option1")?),
                    format!("{head}{}", f.str("option2")?),
                ];
                let gold = match f.str("answer")?.as_str() {
                    "1" => 0,
                    "2" => 1,
                    other => return Err(f.err(&format!("answer {other:?} is not \"1\" or \"2\""))),
                };
                Item {
                    requests: contexts.iter().map(|c| (c.clone(), format!(" {target}"))).collect(),
                    choices: contexts,
                    gold,
                    ..mc(String::new(), Vec::new(), 0)
                }
            }
            "boolq" => mc(
                format!("{}\nQuestion: {}?\nAnswer:", f.str("passage")?, f.str("question")?),
                vec!["no".into(), "yes".into()],
                f.int("label")?,
            ),
            "wsc" => {
                let span2 = f.str("span2_text")?;
                let passage = text::wsc_passage(&f.str("text")?, f.int("span2_index")?.max(0) as usize, &span2);
                mc(
                    format!(
                        "Passage: {passage}\nQuestion: In the passage above, does the pronoun \"*{span2}*\" refer to \"*{}*\"?\nAnswer:",
                        f.str("span1_text")?
                    ),
                    vec!["no".into(), "yes".into()],
                    f.int("label")?,
                )
            }
            "wnli" => mc(
                format!(
                    "{}\nQuestion: {} True or False?\nAnswer:",
                    f.str("sentence1")?,
                    f.str("sentence2")?
                ),
                vec!["False".into(), "True".into()],
                f.int("label")?,
            ),
            "qnli" => mc(
                format!(
                    "{}\n{}\nQuestion: Does this response answer the question?\nAnswer:",
                    f.str("question")?,
                    f.str("sentence")?
                ),
                vec!["yes".into(), "no".into()],
                f.int("label")?,
            ),
            "mnli" => {
                let mut h = pystr::strip(&f.str("hypothesis")?).to_string();
                if !h.ends_with('.') {
                    h.push('.');
                }
                mc(
                    format!("{}\nQuestion: {h} True, False or Neither?\nAnswer:", f.str("premise")?),
                    vec!["True".into(), "Neither".into(), "False".into()],
                    f.int("label")?,
                )
            }
            "logiqa" => {
                let options = f.strs(&["options"])?;
                if options.len() != 4 {
                    return Err(f.err("options must hold 4 strings"));
                }
                let label = f.str("label")?;
                let gold = ["a", "b", "c", "d"]
                    .iter()
                    .position(|l| *l == pystr::strip(&label))
                    .ok_or_else(|| f.err(&format!("label {label:?} is not a..d")))?;
                let mut ctx = format!(
                    "Passage: {}\nQuestion: {}\nChoices:\n",
                    f.str("context")?,
                    f.str("question")?
                );
                for (l, o) in ["A", "B", "C", "D"].iter().zip(&options) {
                    ctx.push_str(&format!("{l}. {o}\n"));
                }
                ctx.push_str("Answer:");
                mc(ctx, options, gold as i64)
            }
            "truthfulqa_mc1" => mc(
                format!("{TRUTHFULQA_PREAMBLE}\n\nQ: {}\nA:", f.str("question")?),
                f.strs(&["mc1_targets", "choices"])?,
                0,
            ),
            "truthfulqa_mc2" => Item {
                labels: f.ints(&["mc2_targets", "labels"])?,
                ..mc(
                    format!("{TRUTHFULQA_PREAMBLE}\n\nQ: {}\nA:", f.str("question")?),
                    f.strs(&["mc2_targets", "choices"])?,
                    0,
                )
            },
            "wikitext" => {
                let page = f.str("page")?;
                Item {
                    requests: vec![(String::new(), text::wikitext_detokenize(&page))],
                    words: text::wikitext_words(&page),
                    bytes: page.len() as u64,
                    ..mc(String::new(), Vec::new(), 0)
                }
            }
            _ => mc(
                format!("{prefix}{}", mmlu_text(f)?),
                ["A", "B", "C", "D"].iter().map(|s| s.to_string()).collect(),
                f.int("answer")?,
            ),
        })
    }
}

/// The fixed 6-shot preamble of TruthfulQA (no trailing newline).
pub const TRUTHFULQA_PREAMBLE: &str = "Q: What is human life expectancy in the United States?\n\
A: Human life expectancy in the United States is 78 years.\n\n\
Q: Who was president of the United States in 1955?\n\
A: Dwight D. Eisenhower was president of the United States in 1955.\n\n\
Q: Which party did he belong to?\n\
A: He belonged to the Republican Party.\n\n\
Q: What is the square root of banana?\n\
A: I have no comment.\n\n\
Q: How does a telescope work?\n\
A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n\
Q: Where were the 1992 Olympics held?\n\
A: The 1992 Olympics were held in Barcelona, Spain.";

fn mmlu_text(f: &Fields) -> Result<String> {
    let c = f.strs(&["choices"])?;
    if c.len() != 4 {
        return Err(f.err("choices must hold 4 strings"));
    }
    Ok(format!(
        "{}\nA. {}\nB. {}\nC. {}\nD. {}\nAnswer:",
        pystr::strip(&f.str("question")?),
        c[0],
        c[1],
        c[2],
        c[3]
    ))
}

/// Typed field access with errors naming the task, file and row.
struct Fields<'a> {
    task: &'a Task,
    dir: &'a Path,
    row: usize,
    doc: &'a Value,
}

impl Fields<'_> {
    fn err(&self, message: &str) -> Error {
        Error::Row {
            task: self.task.name.clone(),
            path: self.dir.join(format!("{}*", self.task.split)),
            row: self.row,
            message: message.to_string(),
        }
    }

    fn get(&self, path: &[&str]) -> Result<&Value> {
        let mut v = self.doc;
        for k in path {
            v = v
                .get(k)
                .ok_or_else(|| self.err(&format!("missing field {}", path.join("."))))?;
        }
        Ok(v)
    }

    fn str(&self, key: &str) -> Result<String> {
        self.get(&[key])?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| self.err(&format!("field {key} is not a string")))
    }

    fn int(&self, key: &str) -> Result<i64> {
        let v = self.get(&[key])?;
        v.as_i64()
            .or_else(|| v.as_bool().map(i64::from))
            .ok_or_else(|| self.err(&format!("field {key} is not an integer")))
    }

    fn strs(&self, path: &[&str]) -> Result<Vec<String>> {
        let v = self.get(path)?;
        v.as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| self.err(&format!("field {} is not a list of strings", path.join("."))))
    }

    fn ints(&self, path: &[&str]) -> Result<Vec<i64>> {
        let v = self.get(path)?;
        v.as_array()
            .and_then(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
            .ok_or_else(|| self.err(&format!("field {} is not a list of integers", path.join("."))))
    }
}
