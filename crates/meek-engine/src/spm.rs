//! SentencePiece-style BPE from GGUF metadata (`tokenizer.ggml.model = "llama"`), as llama.cpp runs it.
//!
//! The vocabulary carries a score per piece instead of a merge list: starting from single UTF-8 characters, the
//! adjacent pair whose concatenation is a piece with the highest score is merged first (the leftmost on ties), until
//! no pair forms a piece; what never became a piece is spelled with the byte tokens `<0xXX>`. Spaces are written
//! `▁` (U+2581); with `tokenizer.ggml.add_space_prefix`, a space is put before text that starts the input or
//! follows a special token. Control, user-defined and unknown tokens are cut out of the text first, longest first
//! (llama.cpp's `tokenizer_st_partition` with special tokens parsed). This is llama.cpp's `llm_tokenizer_spm`;
//! no library implements it from GGUF scores, and the ids must match llama.cpp's exactly.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// Token type of a byte token (`<0x0A>`) in `tokenizer.ggml.token_type`.
pub const TYPE_BYTE: i32 = 6;

/// A SentencePiece-BPE vocabulary.
#[derive(Debug, Clone)]
pub struct Spm {
    ids: HashMap<String, u32>,
    scores: Vec<f32>,
    /// Special tokens to cut out of the text, longest first.
    specials: Vec<(String, u32)>,
    bytes: [Option<u32>; 256],
    unk: Option<u32>,
    add_space_prefix: bool,
}

/// One piece of the text being merged: a byte range, linked to its neighbours.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

#[derive(Debug, PartialEq)]
struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    len: usize,
}

impl Eq for Bigram {}

impl Ord for Bigram {
    /// Higher score first, then the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Spm {
    /// Builds the vocabulary; `special` says which ids are cut out of text as whole tokens.
    pub fn new(
        tokens: &[String],
        scores: Vec<f32>,
        types: &[i32],
        special: impl Fn(i32) -> bool,
        unk: Option<u32>,
        add_space_prefix: bool,
    ) -> Result<Self, String> {
        if scores.len() != tokens.len() {
            return Err(format!(
                "{} scores for {} tokens in `tokenizer.ggml.scores`",
                scores.len(),
                tokens.len()
            ));
        }
        let mut ids = HashMap::with_capacity(tokens.len());
        let mut bytes = [None; 256];
        let mut specials = Vec::new();
        for (i, (t, &ty)) in tokens.iter().zip(types).enumerate() {
            let id = i as u32;
            // The first of duplicated pieces wins, as in llama.cpp's map.
            ids.entry(t.clone()).or_insert(id);
            if ty == TYPE_BYTE
                && let Some(hex) = t.strip_prefix("<0x").and_then(|h| h.strip_suffix('>'))
                && let Ok(b) = u8::from_str_radix(hex, 16)
            {
                bytes[b as usize] = Some(id);
            }
            if special(ty) && !t.is_empty() {
                specials.push((t.clone(), id));
            }
        }
        specials.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        Ok(Self {
            ids,
            scores,
            specials,
            bytes,
            unk,
            add_space_prefix,
        })
    }

    /// Token ids of `text` (no BOS).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut prev_special = true;
        for frag in self.partition(text) {
            match frag {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(t) => {
                    let mut s = String::with_capacity(t.len() + 3);
                    if self.add_space_prefix && prev_special {
                        s.push(' ');
                    }
                    s.push_str(t);
                    self.encode_piece(&s.replace(' ', "\u{2581}"), &mut out);
                    prev_special = false;
                }
            }
        }
        out
    }

    /// Splits `text` at every special token, longest tokens first.
    fn partition<'a>(&self, text: &'a str) -> Vec<Fragment<'a>> {
        let mut frags = vec![Fragment::Text(text)];
        for (tok, id) in &self.specials {
            if !text.contains(tok.as_str()) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                match f {
                    Fragment::Text(mut t) => {
                        while let Some(at) = t.find(tok.as_str()) {
                            if at > 0 {
                                next.push(Fragment::Text(&t[..at]));
                            }
                            next.push(Fragment::Token(*id));
                            t = &t[at + tok.len()..];
                        }
                        if !t.is_empty() {
                            next.push(Fragment::Text(t));
                        }
                    }
                    token => next.push(token),
                }
            }
            frags = next;
        }
        frags
    }

    /// The SentencePiece merge loop over one fragment (spaces already escaped).
    fn encode_piece(&self, text: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (i, (start, ch)) in text.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: ch.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
            if i > 0 {
                symbols[i - 1].next = Some(i);
            }
        }
        if symbols.is_empty() {
            return;
        }
        let mut queue = BinaryHeap::new();
        let add = |left: Option<usize>,
                   right: Option<usize>,
                   symbols: &[Symbol],
                   queue: &mut BinaryHeap<Bigram>| {
            let (Some(l), Some(r)) = (left, right) else {
                return;
            };
            let (a, b) = (symbols[l], symbols[r]);
            let piece = &text[a.start..b.start + b.len];
            if let Some(&id) = self.ids.get(piece) {
                queue.push(Bigram {
                    left: l,
                    right: r,
                    score: self.scores[id as usize],
                    len: piece.len(),
                });
            }
        };
        for i in 1..symbols.len() {
            add(Some(i - 1), Some(i), &symbols, &mut queue);
        }
        while let Some(bg) = queue.pop() {
            let (l, r) = (symbols[bg.left], symbols[bg.right]);
            // Skip pairs one of whose symbols has since been merged into another.
            if l.len == 0 || r.len == 0 || l.len + r.len != bg.len {
                continue;
            }
            symbols[bg.left].len += r.len;
            symbols[bg.right].len = 0;
            symbols[bg.left].next = r.next;
            if let Some(n) = r.next {
                symbols[n].prev = Some(bg.left);
            }
            add(symbols[bg.left].prev, Some(bg.left), &symbols, &mut queue);
            add(Some(bg.left), symbols[bg.left].next, &symbols, &mut queue);
        }
        // Every merged symbol is a piece (pairs are only queued when they are); a lone character that is not is
        // spelled with byte tokens (llama.cpp's `resegment`).
        let mut i = Some(0);
        while let Some(k) = i {
            let s = symbols[k];
            let piece = &text[s.start..s.start + s.len];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => out.extend(
                    piece
                        .bytes()
                        .filter_map(|b| self.bytes[b as usize].or(self.unk)),
                ),
            }
            i = s.next;
        }
    }
}

enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

/// Text of SentencePiece ids: `▁` becomes a space, byte tokens become their bytes (joined into UTF-8),
/// tokens of the types `is_special` names are kept as their text unless `skip_special`, every other token is text.
pub fn decode(
    tokens: &[String],
    types: &[i32],
    ids: &[u32],
    skip_special: bool,
    is_special: impl Fn(i32) -> bool,
) -> String {
    let mut bytes = Vec::new();
    for &id in ids {
        let (Some(t), Some(&ty)) = (tokens.get(id as usize), types.get(id as usize)) else {
            continue;
        };
        if ty == TYPE_BYTE
            && let Some(b) = t
                .strip_prefix("<0x")
                .and_then(|h| h.strip_suffix('>'))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            bytes.push(b);
        } else if is_special(ty) {
            if !skip_special {
                bytes.extend_from_slice(t.as_bytes());
            }
        } else if ty == 4 {
            // User-defined tokens are literal text.
            bytes.extend_from_slice(t.as_bytes());
        } else {
            bytes.extend_from_slice(t.replace('\u{2581}', " ").as_bytes());
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(pieces: &[(&str, f32, i32)], add_space_prefix: bool) -> (Spm, Vec<String>, Vec<i32>) {
        let mut tokens: Vec<String> = pieces.iter().map(|p| p.0.to_string()).collect();
        let mut scores: Vec<f32> = pieces.iter().map(|p| p.1).collect();
        let mut types: Vec<i32> = pieces.iter().map(|p| p.2).collect();
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            scores.push(0.0);
            types.push(TYPE_BYTE);
        }
        let spm = Spm::new(
            &tokens,
            scores,
            &types,
            |t| t == 3 || t == 4,
            Some(0),
            add_space_prefix,
        )
        .unwrap();
        (spm, tokens, types)
    }

    #[test]
    fn merges_follow_scores_and_fall_back_to_bytes() {
        let (spm, tokens, types) = vocab(
            &[
                ("<unk>", 0.0, 2),
                ("<s>", 0.0, 3),
                ("▁", -1.0, 1),
                ("a", -2.0, 1),
                ("b", -2.0, 1),
                ("ab", -3.0, 1),
                ("▁a", -0.5, 1),
                ("▁ab", -0.1, 1),
                ("<turn>", 0.0, 3),
            ],
            true,
        );
        // "▁a" (-0.5) beats "ab" (-3): ▁ + a first, then ▁a + b = ▁ab.
        assert_eq!(spm.encode("ab"), vec![7]);
        // "é" is no piece: its two UTF-8 bytes.
        let ids = spm.encode("é");
        assert_eq!(ids, vec![2, 9 + 0xC3, 9 + 0xA9]);
        assert_eq!(decode(&tokens, &types, &ids, false, |t| t == 3), " é");
        // A special token is cut out, and the text after it gets the space prefix again.
        assert_eq!(spm.encode("ab<turn>ab"), vec![7, 8, 7]);
        assert_eq!(
            decode(&tokens, &types, &[7, 8, 7], true, |t| t == 3),
            " ab ab"
        );
        // Without the prefix: "a" + "b" merge to "ab".
        let (plain, _, _) = vocab(
            &[
                ("<unk>", 0.0, 2),
                ("a", -2.0, 1),
                ("b", -2.0, 1),
                ("ab", -3.0, 1),
            ],
            false,
        );
        assert_eq!(plain.encode("ab"), vec![3]);
        assert_eq!(plain.encode(""), Vec::<u32>::new());
    }

    #[test]
    fn merging_stops_when_no_pair_is_a_piece() {
        // "bc" merges; "abc" is no piece, so a and bc stay apart.
        let (spm, _, _) = vocab(
            &[
                ("<unk>", 0.0, 2),
                ("a", -1.0, 1),
                ("b", -1.0, 1),
                ("c", -1.0, 1),
                ("bc", -0.5, 1),
            ],
            false,
        );
        assert_eq!(spm.encode("abc"), vec![1, 4]);
    }
}
