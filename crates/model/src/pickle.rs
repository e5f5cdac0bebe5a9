//! Rewrites the pickle of a `torch.save(model.state_dict())` file so that libtorch's own
//! unpickler reads it.
//!
//! `state_dict()` returns a `collections.OrderedDict` with a `_metadata` attribute. It is pickled
//! as `OrderedDict()` (a class called with no arguments), its items, and a final `BUILD` that
//! sets the attribute. libtorch's unpickler makes None of the call and cannot apply the `BUILD`,
//! so such files fail with "Expected GenericDict but got None" (plain dicts load). This module
//! walks the opcodes and writes an equivalent pickle of a plain dict: every `OrderedDict()`
//! becomes `{}` (also the empty `backward_hooks` argument of each tensor), and a `BUILD` on such
//! a dict is dropped together with its state. Nothing else changes; a pickle with an opcode
//! outside what `torch.save` writes is returned as it is, for libtorch to judge.

use std::collections::BTreeMap;

#[derive(Clone, Copy, PartialEq)]
enum Item {
    Mark,
    /// A value whose opcodes start at this output position.
    Value(usize),
    /// The `collections.OrderedDict` class (not written out).
    OrderedDictClass,
    /// A dict made from `OrderedDict()`, starting at this position.
    Dict(usize),
}

/// The rewritten pickle, or `None` when it has no `OrderedDict` (or an opcode this walker does
/// not know, or a shape it does not expect): then the original bytes are what to read.
pub fn plain_dict_pickle(pickle: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(pickle.len());
    let mut stack: Vec<Item> = Vec::new();
    // Memo index -> (output position where its value starts, whether it is the OrderedDict class).
    let mut memo: BTreeMap<u64, (usize, bool)> = BTreeMap::new();
    let mut changed = false;
    let mut i = 0usize;
    let take = |i: &mut usize, n: usize| -> Option<&[u8]> {
        let s = pickle.get(*i..*i + n)?;
        *i += n;
        Some(s)
    };
    let le = |b: &[u8]| b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64);
    fn pop(stack: &mut Vec<Item>) -> Option<Item> {
        stack.pop()
    }
    fn pop_mark(stack: &mut Vec<Item>) -> Option<usize> {
        // The start of the first item after the mark, or None when there is no mark.
        let mut first = None;
        while let Some(item) = stack.pop() {
            match item {
                Item::Mark => return Some(first.unwrap_or(usize::MAX)),
                Item::Value(s) | Item::Dict(s) => first = Some(s),
                Item::OrderedDictClass => return None,
            }
        }
        None
    }
    fn start(item: Item) -> Option<usize> {
        match item {
            Item::Value(s) | Item::Dict(s) => Some(s),
            _ => None,
        }
    }
    loop {
        let at = i;
        let op = *pickle.get(i)?;
        i += 1;
        let here = out.len();
        match op {
            0x80 => {
                take(&mut i, 1)?; // PROTO
            }
            0x95 => {
                take(&mut i, 8)?; // FRAME
            }
            b'c' => {
                let rest = pickle.get(i..)?;
                let m = rest.iter().position(|&b| b == b'\n')?;
                let n = rest[m + 1..].iter().position(|&b| b == b'\n')?;
                let (module, name) = (&rest[..m], &rest[m + 1..m + 1 + n]);
                i += m + n + 2;
                if module == b"collections" && name == b"OrderedDict" {
                    stack.push(Item::OrderedDictClass);
                    changed = true;
                    continue;
                }
                stack.push(Item::Value(here));
            }
            b'q' | b'r' | 0x94 => {
                // BINPUT, LONG_BINPUT, MEMOIZE
                let idx = match op {
                    b'q' => le(take(&mut i, 1)?),
                    b'r' => le(take(&mut i, 4)?),
                    _ => memo.len() as u64,
                };
                let top = *stack.last()?;
                let is_class = top == Item::OrderedDictClass;
                memo.insert(idx, (start(top).unwrap_or(here), is_class));
                if is_class {
                    continue; // the class is never written out
                }
            }
            b'h' | b'j' => {
                let idx = if op == b'h' {
                    le(take(&mut i, 1)?)
                } else {
                    le(take(&mut i, 4)?)
                };
                let (pos, is_class) = *memo.get(&idx)?;
                if pos > here {
                    return None; // refers to a value that was dropped
                }
                if is_class {
                    stack.push(Item::OrderedDictClass);
                    continue;
                }
                stack.push(Item::Value(here));
            }
            b')' => {
                if stack.last() == Some(&Item::OrderedDictClass) && pickle.get(i) == Some(&b'R') {
                    // OrderedDict() -> {}
                    i += 1;
                    stack.pop();
                    stack.push(Item::Dict(here));
                    out.push(b'}');
                    continue;
                }
                stack.push(Item::Value(here));
            }
            b'(' => stack.push(Item::Mark),
            b'}' | b']' | b'N' | 0x88 | 0x89 => stack.push(Item::Value(here)),
            b'X' => {
                let n = le(take(&mut i, 4)?) as usize;
                take(&mut i, n)?;
                stack.push(Item::Value(here));
            }
            0x8c => {
                let n = le(take(&mut i, 1)?) as usize;
                take(&mut i, n)?;
                stack.push(Item::Value(here));
            }
            0x8d => {
                let n = le(take(&mut i, 8)?) as usize;
                take(&mut i, n)?;
                stack.push(Item::Value(here));
            }
            b'K' | b'M' | b'J' | b'G' => {
                take(
                    &mut i,
                    [1, 2, 4, 8][[b'K', b'M', b'J', b'G'].iter().position(|&o| o == op)?],
                )?;
                stack.push(Item::Value(here));
            }
            0x8a => {
                let n = le(take(&mut i, 1)?) as usize;
                take(&mut i, n)?;
                stack.push(Item::Value(here));
            }
            b't' => {
                let s = pop_mark(&mut stack)?;
                stack.push(Item::Value(s.min(here)));
            }
            0x85..=0x87 => {
                let mut s = here;
                for _ in 0..(op - 0x84) {
                    s = start(pop(&mut stack)?)?;
                }
                stack.push(Item::Value(s));
            }
            b'R' => {
                let _args = start(pop(&mut stack)?)?;
                let f = start(pop(&mut stack)?)?;
                stack.push(Item::Value(f));
            }
            b'Q' => {
                let s = start(pop(&mut stack)?)?;
                stack.push(Item::Value(s));
            }
            b's' => {
                pop(&mut stack)?;
                pop(&mut stack)?;
                stack.last()?;
            }
            b'a' => {
                pop(&mut stack)?;
            }
            b'u' | b'e' => {
                pop_mark(&mut stack)?;
            }
            b'b' => {
                let state = start(pop(&mut stack)?)?;
                if let Some(Item::Dict(_)) = stack.last() {
                    // The OrderedDict's attributes (`_metadata`): dropped with their opcodes.
                    out.truncate(state);
                    memo.retain(|_, (pos, _)| *pos < state);
                    continue;
                }
            }
            b'.' => {
                out.push(op);
                return changed.then_some(out);
            }
            _ => return None,
        }
        out.extend_from_slice(&pickle[at..i]);
    }
}

#[cfg(test)]
mod tests {
    use super::plain_dict_pickle;

    /// `pickle.dumps(OrderedDict(a=1), protocol=2)` with `_metadata` set as torch.save leaves it,
    /// written out by hand from Python's `pickletools.dis`, becomes `{'a': 1}` as Python pickles it.
    #[test]
    fn ordered_dict_with_metadata_becomes_a_plain_dict() {
        let mut p = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00aq\x02K\x01s".to_vec();
        p.extend_from_slice(b"}q\x03X\x09\x00\x00\x00_metadataq\x04h\x00)Rq\x05sb.");
        let got = plain_dict_pickle(&p).expect("rewritten");
        assert_eq!(got, b"\x80\x02}q\x01X\x01\x00\x00\x00aq\x02K\x01s.".to_vec());
    }

    #[test]
    fn a_plain_dict_is_left_alone() {
        let p = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.".to_vec();
        assert_eq!(plain_dict_pickle(&p), None);
        assert_eq!(plain_dict_pickle(b"\x80\x02\xff."), None);
    }
}
