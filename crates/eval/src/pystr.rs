//! Python string semantics the harness's prompts depend on: `str.isspace`, `strip`, `split()`,
//! `capitalize`, code-point lengths and slices, and single-pass `replace`.

/// Python's `str.isspace` for one character: Unicode White_Space plus U+001C..U+001F.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `s.strip()`.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `s.lstrip()`.
pub fn lstrip(s: &str) -> &str {
    s.trim_start_matches(is_space)
}

/// `s.rstrip()`.
pub fn rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

/// `s.split()` (runs of whitespace, leading and trailing ignored).
pub fn split_ws(s: &str) -> Vec<&str> {
    s.split(is_space).filter(|p| !p.is_empty()).collect()
}

/// `s.capitalize()`: the first character upper-cased (title case where it differs), the rest lower-cased.
pub fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        None => String::new(),
        Some(first) => {
            let mut out: String = title_case(first);
            out.extend(chars.flat_map(char::to_lowercase));
            out
        }
    }
}

/// Python uses the title case of the first character; it equals upper case except for a few
/// digraphs (ǆ → ǅ, ǉ → ǈ, ǌ → ǋ, ǳ → ǲ).
fn title_case(c: char) -> String {
    match c {
        'Ǆ' | 'ǅ' | 'ǆ' => "ǅ".into(),
        'Ǉ' | 'ǈ' | 'ǉ' => "ǈ".into(),
        'Ǌ' | 'ǋ' | 'ǌ' => "ǋ".into(),
        'Ǳ' | 'ǲ' | 'ǳ' => "ǲ".into(),
        _ => c.to_uppercase().collect(),
    }
}

/// `len(s)` in code points.
pub fn len(s: &str) -> usize {
    s.chars().count()
}

/// `s[start:end]` by code points (clamped like Python).
pub fn slice(s: &str, start: usize, end: Option<usize>) -> String {
    let n = len(s);
    let end = end.unwrap_or(n).min(n);
    if start >= end {
        return String::new();
    }
    s.chars().skip(start).take(end - start).collect()
}

/// Number of trailing characters `rstrip` removes.
pub fn trailing_space_chars(s: &str) -> usize {
    s.chars().rev().take_while(|c| is_space(*c)).count()
}
