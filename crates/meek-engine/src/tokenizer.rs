//! Tokenizers built from GGUF metadata, matching llama.cpp's token ids.
//!
//! GPT-2-style byte-level BPE (`tokenizer.ggml.model = "gpt2"`) is built from `tokenizer.ggml.tokens` and
//! `tokenizer.ggml.merges` with the pre-tokenisation llama.cpp uses for the file's `tokenizer.ggml.pre`:
//! no space is ever prepended (candle's own GGUF tokenizer prepends one, which gives wrong ids), digits are split
//! one by one for the SmolLM family, and control and user-defined tokens (`tokenizer.ggml.token_type` 3 and 4)
//! are matched as single special tokens in text, like llama.cpp with `parse_special`. SentencePiece-style
//! vocabularies (`tokenizer.ggml.model = "llama"`, e.g. Gemma) are tokenized by [`crate::spm`].
//!
//! Hugging Face checkpoints bring their own `tokenizer.json`, run as it is by the `tokenizers` crate, with the
//! special tokens and BOS behaviour of `tokenizer_config.json` ([`TextTokenizer::from_hf_dir`]).

use candle_core::quantized::gguf_file::{Content, Value};
use fs_err as fs;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use crate::spm::Spm;

/// Token type of a control token (`<|im_start|>`) in `tokenizer.ggml.token_type`.
const TYPE_CONTROL: i32 = 3;
/// Token type of a user-defined token.
const TYPE_USER_DEFINED: i32 = 4;
/// Token type of the unknown token.
const TYPE_UNKNOWN: i32 = 2;
/// Token type of an ordinary token.
const TYPE_NORMAL: i32 = 1;

/// llama.cpp's GPT-2 pattern (also the one inside HF's ByteLevel pre-tokenizer).
const REGEX_GPT2: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const REGEX_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const REGEX_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

#[derive(Clone)]
enum Model {
    /// Byte-level BPE through the `tokenizers` crate.
    Bpe(Box<Tokenizer>),
    /// SentencePiece BPE from scores.
    Spm(Box<Spm>),
    /// A Hugging Face `tokenizer.json`, run as it is.
    Hf(Box<Tokenizer>),
}

fn is_special(ty: i32) -> bool {
    matches!(ty, TYPE_CONTROL | TYPE_USER_DEFINED | TYPE_UNKNOWN)
}

/// The tokenizer of a GGUF file: [`TextTokenizer`] under its first name.
pub type GgufTokenizer = TextTokenizer;

/// A tokenizer with the model's special ids, from GGUF metadata or a Hugging Face `tokenizer.json`.
#[derive(Clone)]
pub struct TextTokenizer {
    model: Model,
    tokens: Vec<String>,
    types: Vec<i32>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab", &self.tokens.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .finish()
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.to_vec()
        .ok()?
        .iter()
        .map(|x| x.to_string().ok().cloned())
        .collect()
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::U8(x) => Some(i64::from(*x)),
        Value::I8(x) => Some(i64::from(*x)),
        Value::U16(x) => Some(i64::from(*x)),
        Value::I16(x) => Some(i64::from(*x)),
        Value::U32(x) => Some(i64::from(*x)),
        Value::I32(x) => Some(i64::from(*x)),
        Value::U64(x) => i64::try_from(*x).ok(),
        Value::I64(x) => Some(*x),
        _ => None,
    }
}

impl TextTokenizer {
    /// Builds the tokenizer from a GGUF header. Errors are plain messages; the caller adds the file name.
    pub fn from_gguf(content: &Content) -> Result<Self, String> {
        let md = &content.metadata;
        let get = |k: &str| {
            md.get(k)
                .ok_or_else(|| format!("metadata key `{k}` is missing"))
        };
        let kind = get("tokenizer.ggml.model")?
            .to_string()
            .map_err(|e| e.to_string())?
            .clone();
        let tokens = strings(get("tokenizer.ggml.tokens")?)
            .ok_or("`tokenizer.ggml.tokens` is not a list of strings")?;
        let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|e| e.to_string())?
                .iter()
                .map(|x| int(x).map(|i| i as i32))
                .collect::<Option<_>>()
                .ok_or("`tokenizer.ggml.token_type` is not a list of integers")?,
            None => vec![TYPE_NORMAL; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(format!(
                "{} token types for {} tokens",
                types.len(),
                tokens.len()
            ));
        }
        let id = |k: &str| md.get(k).and_then(int).and_then(|i| u32::try_from(i).ok());
        let flag = |k: &str| md.get(k).and_then(|v| v.to_bool().ok());
        let bos = id("tokenizer.ggml.bos_token_id");
        let eos = id("tokenizer.ggml.eos_token_id");
        match kind.as_str() {
            "gpt2" => {}
            "llama" => {
                let scores: Vec<f32> = match md.get("tokenizer.ggml.scores") {
                    Some(v) => v
                        .to_vec()
                        .map_err(|e| e.to_string())?
                        .iter()
                        .map(|x| x.to_f32().ok())
                        .collect::<Option<_>>()
                        .ok_or("`tokenizer.ggml.scores` is not a list of numbers")?,
                    None => return Err("metadata key `tokenizer.ggml.scores` is missing".into()),
                };
                let spm = Spm::new(
                    &tokens,
                    scores,
                    &types,
                    is_special,
                    id("tokenizer.ggml.unknown_token_id"),
                    // llama.cpp's default for SentencePiece vocabularies.
                    flag("tokenizer.ggml.add_space_prefix").unwrap_or(true),
                )?;
                return Ok(Self {
                    model: Model::Spm(Box::new(spm)),
                    bos,
                    eos,
                    // llama.cpp's default for SentencePiece vocabularies.
                    add_bos: flag("tokenizer.ggml.add_bos_token").unwrap_or(true),
                    tokens,
                    types,
                });
            }
            _ => {
                return Err(format!(
                    "tokenizer model `{kind}` is not supported yet (supported: `gpt2` byte-level BPE, `llama` \
                     SentencePiece BPE)"
                ));
            }
        }
        let merges: Vec<(String, String)> = strings(get("tokenizer.ggml.merges")?)
            .ok_or("`tokenizer.ggml.merges` is not a list of strings")?
            .into_iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| format!("merge `{m}` is not two tokens separated by a space"))
            })
            .collect::<Result<_, _>>()?;
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| format!("cannot build the BPE model: {e}"))?;
        let mut inner = Tokenizer::new(bpe);
        let pre = md
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map_or("default", String::as_str);
        inner.with_pre_tokenizer(Some(pre_tokenizer(pre)?));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        // Both kinds are matched whole when encoding; only control tokens are special (left out of decoded text),
        // as in the Hugging Face tokenizer the file was converted from: user-defined ones (Qwen3's and
        // DeepSeek-R1's `<think>` and `</think>`) are text the answer shows.
        let added = |ty: i32| -> Vec<AddedToken> {
            tokens
                .iter()
                .zip(&types)
                .filter(|(_, t)| **t == ty)
                .map(|(tok, _)| AddedToken::from(tok.clone(), ty == TYPE_CONTROL))
                .collect()
        };
        inner.add_special_tokens(&added(TYPE_CONTROL));
        inner.add_tokens(&added(TYPE_USER_DEFINED));
        Ok(Self {
            model: Model::Bpe(Box::new(inner)),
            bos,
            eos,
            add_bos: flag("tokenizer.ggml.add_bos_token").unwrap_or(false),
            tokens,
            types,
        })
    }

    /// Builds the tokenizer of a Hugging Face checkpoint from `tokenizer.json` in `dir`, with BOS and EOS from
    /// `tokenizer_config.json` (else `config.json`). Errors are plain messages; the caller adds the directory.
    pub fn from_hf_dir(dir: &std::path::Path) -> Result<Self, String> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(
                "no tokenizer.json (only checkpoints with a fast tokenizer file are supported)"
                    .into(),
            );
        }
        let inner = Tokenizer::from_file(&path).map_err(|e| format!("tokenizer.json: {e}"))?;
        let read = |name: &str| -> Result<Option<serde_json::Value>, String> {
            match fs::read_to_string(dir.join(name)) {
                Ok(t) => serde_json::from_str(&t)
                    .map(Some)
                    .map_err(|e| format!("{name}: {e}")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("{name}: {e}")),
            }
        };
        let tc = read("tokenizer_config.json")?.unwrap_or_default();
        let config = read("config.json")?.unwrap_or_default();
        // Ids by content: the vocabulary with every added token.
        let vocab = inner.get_vocab(true);
        let size = vocab.values().map(|&i| i as usize + 1).max().unwrap_or(0);
        let mut tokens = vec![String::new(); size];
        // Ids no entry has are neither text nor control: type 0, never drawn for synthetic prompts.
        let mut types = vec![0; size];
        for (text, &id) in &vocab {
            tokens[id as usize] = text.clone();
            types[id as usize] = TYPE_NORMAL;
        }
        for (&id, added) in inner.get_added_tokens_decoder().iter() {
            if let Some(t) = types.get_mut(id as usize) {
                *t = if added.special {
                    TYPE_CONTROL
                } else {
                    TYPE_USER_DEFINED
                };
            }
        }
        let token_id = |key: &str| -> Option<u32> {
            let v = tc.get(key)?;
            let text = v
                .as_str()
                .or_else(|| v.get("content").and_then(serde_json::Value::as_str))?;
            inner.token_to_id(text)
        };
        let config_id = |key: &str| -> Option<u32> {
            let v = config.get(key)?;
            let v = v.as_array().and_then(|a| a.first()).unwrap_or(v);
            v.as_u64().and_then(|i| u32::try_from(i).ok())
        };
        let bos = token_id("bos_token").or_else(|| config_id("bos_token_id"));
        let eos = token_id("eos_token").or_else(|| config_id("eos_token_id"));
        // BOS first when tokenizer_config.json says so, else when tokenizer.json's post-processor adds it.
        let add_bos = match tc.get("add_bos_token").and_then(serde_json::Value::as_bool) {
            Some(b) => b,
            None => bos.is_some_and(|b| {
                inner
                    .encode("a", true)
                    .is_ok_and(|e| e.get_ids().first() == Some(&b))
            }),
        };
        Ok(Self {
            model: Model::Hf(Box::new(inner)),
            tokens,
            types,
            bos,
            eos,
            add_bos,
        })
    }

    /// Token ids of `text`, with BOS first when the model asks for it (`tokenizer.ggml.add_bos_token`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let mut ids = Vec::new();
        if self.add_bos
            && let Some(b) = self.bos
        {
            ids.push(b);
        }
        match &self.model {
            Model::Bpe(t) => {
                let enc = t.encode(text, false).map_err(|e| e.to_string())?;
                ids.extend_from_slice(enc.get_ids());
            }
            Model::Spm(s) => ids.extend(s.encode(text)),
            Model::Hf(t) => {
                let enc = t.encode(text, false).map_err(|e| e.to_string())?;
                ids.extend_from_slice(enc.get_ids());
            }
        }
        Ok(ids)
    }

    /// Text of `ids`; special tokens are kept as their text unless `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, String> {
        match &self.model {
            Model::Bpe(t) | Model::Hf(t) => t.decode(ids, skip_special).map_err(|e| e.to_string()),
            Model::Spm(_) => Ok(crate::spm::decode(
                &self.tokens,
                &self.types,
                ids,
                skip_special,
                // User-defined tokens (Gemma's newlines and tabs) are text; control tokens are skippable.
                |ty| ty == TYPE_CONTROL || ty == TYPE_UNKNOWN,
            )),
        }
    }

    /// The vocabulary entry of `id` as stored in the file (byte-level form, e.g. `Ġworld`).
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Whether `id` is an ordinary (not control, not unused) token.
    pub fn is_normal(&self, id: u32) -> bool {
        self.types.get(id as usize) == Some(&TYPE_NORMAL)
    }

    /// Number of entries in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Beginning-of-sequence id.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence id.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether [`encode`](Self::encode) puts BOS first.
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    /// Text of a token id, for chat templates (`bos_token`, `eos_token`).
    pub fn token_text(&self, id: Option<u32>) -> String {
        id.and_then(|i| self.piece(i))
            .unwrap_or_default()
            .to_string()
    }
}

fn split(regex: &str) -> Result<PreTokenizerWrapper, String> {
    Split::new(
        SplitPattern::Regex(regex.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map(Into::into)
    .map_err(|e| e.to_string())
}

/// The pre-tokeniser llama.cpp uses for `tokenizer.ggml.pre` (see `llama-vocab.cpp`): the splitting that a
/// Hugging Face `tokenizer.json` of the same vocabulary must carry to give the same ids (meek-testkit writes one).
pub fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, String> {
    // ByteLevel after an explicit split: no prefix space, no second regex.
    let bytes = || ByteLevel::new(false, false, false).into();
    Ok(match pre {
        // Digits one by one, then the GPT-2 pattern.
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            Sequence::new(vec![Digits::new(true).into(), split(REGEX_GPT2)?, bytes()]).into()
        }
        "llama3" | "llama-bpe" | "smaug-bpe" | "falcon3" | "pixtral" => {
            Sequence::new(vec![split(REGEX_LLAMA3)?, bytes()]).into()
        }
        "qwen2" | "stablelm2" | "deepseek-r1-qwen" | "hunyuan" => {
            Sequence::new(vec![split(REGEX_QWEN2)?, bytes()]).into()
        }
        "gpt-2" | "gpt2" | "default" | "mpt" | "olmo" | "jais" => {
            Sequence::new(vec![split(REGEX_GPT2)?, bytes()]).into()
        }
        other => {
            return Err(format!(
                "pre-tokenizer `{other}` is not supported yet (supported: smollm, gpt2, llama-bpe, qwen2 and their aliases)"
            ));
        }
    })
}

/// The GPT-2 byte-to-character table: byte-level BPE vocabularies store byte `b` as `table[b]`.
pub fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable =
            (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + n).expect("valid code point");
            n += 1;
            c
        };
    }
    table
}
