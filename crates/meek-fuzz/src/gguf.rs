//! The GGUF target: a model file is untrusted input (a config names any file, a hub download is anyone's upload).
//!
//! Everything that reads a GGUF before weights are multiplied runs on the bytes, in memory: the header walk and
//! candle's reader ([`meek_engine::gguf::read_from`]), the summary (`gguf::info`), the metadata checks, the
//! tokenizer and chat template with an encode and decode, and the own CPU path's weight loading. Errors are the
//! expected outcome; a panic is a finding, and so is a panic that the engine's guard caught (its message carries
//! "panicked"), since the header checks must make those unreachable.

use std::io::Cursor;
use std::path::Path;

/// Runs one input.
pub fn run(data: &[u8]) {
    let path = Path::new("fuzz.gguf");
    let content =
        match meek_engine::gguf::read_from(&mut Cursor::new(data), data.len() as u64, path) {
            Ok(c) => c,
            Err(e) => return no_caught_panic(&e),
        };
    let _ = meek_engine::gguf::info(&content);
    match meek_engine::tokenizer_and_template(path, &content) {
        Ok((tok, _chat)) => {
            if let Ok(ids) = tok.encode("Hello world 123 <|im_start|>") {
                let _ = tok.decode(&ids, false);
                let _ = tok.decode(&ids, true);
            }
            let n = tok.vocab_size() as u32;
            let _ = tok.decode(&[0, n.saturating_sub(1)], false);
            let _ = tok.token_text(tok.bos());
            let _ = tok.token_text(tok.eos());
        }
        Err(e) => no_caught_panic(&e),
    }
    if meek_engine::cpu::decoder::unsupported(&content).is_none() {
        let kernels = meek_engine::cpu::KernelPath::detect();
        if let Err(e) =
            meek_engine::cpu::decoder::Decoder::load(&content, &mut Cursor::new(data), kernels)
        {
            assert!(!e.contains("panicked"), "a caught panic: {e}");
        }
    }
}

fn no_caught_panic(e: &meek_engine::EngineError) {
    let msg = e.to_string();
    assert!(!msg.contains("panicked"), "a caught panic: {msg}");
}

/// GGUF key names and type-ish tokens for the mutator.
pub const DICTIONARY: &[&str] = &[
    "GGUF",
    "general.architecture",
    "general.alignment",
    "general.name",
    "general.file_type",
    "llama",
    "qwen2",
    "qwen3",
    "gemma3",
    "llama.block_count",
    "llama.context_length",
    "llama.embedding_length",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.attention.key_length",
    "llama.attention.value_length",
    "llama.attention.layer_norm_rms_epsilon",
    "llama.rope.dimension_count",
    "llama.rope.freq_base",
    "llama.expert_count",
    "gemma3.attention.sliding_window",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_space_prefix",
    "tokenizer.chat_template",
    "token_embd.weight",
    "output.weight",
    "output_norm.weight",
    "blk.0.attn_norm.weight",
    "blk.0.attn_q.weight",
    "blk.0.ffn_down.weight",
    "blk.1.attn_q_norm.weight",
    "gpt2",
    "smollm",
    "<|im_start|>",
    "\u{0}\u{0}\u{0}\u{0}",
    "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}",
    "\u{1}\u{0}\u{0}\u{0}",
    "\u{4}\u{0}\u{0}\u{0}",
    "\u{8}\u{0}\u{0}\u{0}",
    "\u{9}\u{0}\u{0}\u{0}",
    "\u{7f}\u{7f}\u{7f}\u{7f}",
];

#[cfg(test)]
mod tests {
    use meek_testkit::{GgmlDType, TinySpec, write_tiny_llama};

    /// Regenerates the seed corpus `fuzz/corpus/gguf/` from the engine's tiny models, kept small (the mutator
    /// truncates inputs at 64 KiB): `cargo test -p meek-fuzz -- --ignored write_gguf_seeds`.
    #[test]
    #[ignore = "writes the seed corpus"]
    fn write_gguf_seeds() {
        let dir = crate::fuzz_dir().join("corpus").join("gguf");
        fs_err::create_dir_all(&dir).unwrap();
        let small = TinySpec {
            layers: 1,
            hidden: 32,
            heads: 2,
            kv_heads: 1,
            ffn: 32,
            context: 64,
            dtype: GgmlDType::Q4_0,
            ..TinySpec::default()
        };
        let llama = dir.join("tiny-llama.seed");
        write_tiny_llama(&llama, small).unwrap();
        let qwen3 = dir.join("tiny-qwen3.seed");
        write_tiny_llama(
            &qwen3,
            TinySpec {
                arch: "qwen3",
                kv_heads: 2,
                chat_template: false,
                ..small
            },
        )
        .unwrap();
        // The header and tensor table alone: mutations land in what is parsed, not in weights.
        let bytes = fs_err::read(&llama).unwrap();
        let content = meek_engine::gguf::read_from(
            &mut std::io::Cursor::new(&bytes),
            bytes.len() as u64,
            &llama,
        )
        .unwrap();
        let header = content.tensor_data_offset as usize;
        fs_err::write(dir.join("header-only.seed"), &bytes[..header]).unwrap();
        for p in [&llama, &qwen3] {
            let n = fs_err::metadata(p).unwrap().len();
            assert!(n < 50_000, "{} is {n} bytes", p.display());
        }
    }
}
