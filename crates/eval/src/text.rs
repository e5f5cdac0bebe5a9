//! The harness's text transforms: HellaSwag's preprocess, WikiText's detokenizer, WSC's passage.

use crate::pystr::{self, is_space};

/// HellaSwag `preprocess`: strip, `" [title]"` → `". "`, delete `\[.*?\]` (not across newlines),
/// then one pass of `"  "` → `" "`.
pub fn hellaswag_preprocess(text: &str) -> String {
    let s = pystr::strip(text).replace(" [title]", ". ");
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '[' {
            // The shortest `[...]` without a newline inside.
            if let Some(j) = chars[i + 1..].iter().position(|&c| c == ']' || c == '\n') {
                if chars[i + 1 + j] == ']' {
                    i += j + 2;
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out.replace("  ", " ")
}

/// `re.sub(r"O\s*([^C]*?)\s*C", r"O\1C", s)`: every opener paired with the first closer after it,
/// the whitespace just inside removed; scanning resumes after the closer.
fn pair(s: &str, open: char, close: char) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == open {
            if let Some(j) = chars[i + 1..].iter().position(|&c| c == close) {
                let inner: String = chars[i + 1..i + 1 + j].iter().collect();
                out.push(open);
                out.push_str(pystr::strip(&inner));
                out.push(close);
                i += j + 2;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// lm-eval's `wikitext_detokenizer` (EVAL-TASKS.md §3.15), step by step, single passes.
pub fn wikitext_detokenize(page: &str) -> String {
    let mut s = page.replace("s '", "s'");
    // re.sub(r"/' [0-9]/", r"/'[0-9]/"): slash, apostrophe, space, digit, slash.
    let chars: Vec<char> = s.chars().collect();
    let mut t = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if i + 5 <= chars.len()
            && chars[i] == '/'
            && chars[i + 1] == '\''
            && chars[i + 2] == ' '
            && chars[i + 3].is_ascii_digit()
            && chars[i + 4] == '/'
        {
            t.push_str("/'[0-9]/");
            i += 5;
        } else {
            t.push(chars[i]);
            i += 1;
        }
    }
    s = t;
    for (a, b) in [
        (" @-@ ", "-"),
        (" @,@ ", ","),
        (" @.@ ", "."),
        (" : ", ": "),
        (" ; ", "; "),
        (" . ", ". "),
        (" ! ", "! "),
        (" ? ", "? "),
        (" , ", ", "),
    ] {
        s = s.replace(a, b);
    }
    for (o, c) in [('(', ')'), ('[', ']'), ('{', '}'), ('"', '"'), ('\'', '\'')] {
        s = pair(&s, o, c);
    }
    for (a, b) in [
        ("= = = =", "===="),
        ("= = =", "==="),
        ("= =", "=="),
        (" \u{b0} ", "\u{b0}"),
        (" \n", "\n"),
        ("\n ", "\n"),
        (" N ", " 1 "),
        (" 's", "'s"),
    ] {
        s = s.replace(a, b);
    }
    s
}

/// Words of a raw WikiText page as the harness counts them: `len(re.split(r"\s+", page))`.
pub fn wikitext_words(page: &str) -> u64 {
    let mut runs = 0u64;
    let mut in_run = false;
    for c in page.chars() {
        if is_space(c) {
            if !in_run {
                runs += 1;
            }
            in_run = true;
        } else {
            in_run = false;
        }
    }
    runs + 1
}

/// SuperGLUE WSC's `general_detokenize`.
pub fn general_detokenize(s: &str) -> String {
    let mut s = s.to_string();
    for (a, b) in [(" n't", "n't"), (" )", ")"), ("( ", "("), ("\" ", "\""), (" \"", "\"")] {
        s = s.replace(a, b);
    }
    // re.sub(r" (['.,])", r"\1", s)
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ' ' && i + 1 < chars.len() && matches!(chars[i + 1], '\'' | '.' | ',') {
            i += 1;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// WSC's marked passage: the pronoun wrapped in `*`, by the harness's (drifting) offsets.
pub fn wsc_passage(text: &str, span2_index: usize, span2_text: &str) -> String {
    let words = pystr::split_ws(text);
    let pre = words[..span2_index.min(words.len())].join(" ");
    let cut = pystr::len(&pre) + pystr::len(span2_text) + 1;
    let post = pystr::slice(text, cut, None);
    general_detokenize(&format!("{pre} *{span2_text}*{post}"))
}
