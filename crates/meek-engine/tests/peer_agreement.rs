//! Every family the own CPU path runs, checked against llama.cpp on a generated file (issue #17): the same
//! random-weight GGUF goes to `llama-completion --temp 0` and to both of meekbench's decoders (the CPU path, and the
//! GPU path's decoder on Candle tensors run on the CPU), and each one's greedy choice,
//! teacher-forced on llama.cpp's 32 tokens, must be llama.cpp's at >= 95% of the positions (quantised activations
//! differ between the two engines in the last bits, so an exact tie may break the other way; on these files, whose
//! logits are peaked, every position agrees in practice).
//!
//! The files use the tiny byte-level vocabulary, and only the printable ASCII byte tokens have output rows (the
//! others are zero, so never chosen): each generated token is one byte, and llama.cpp's text maps back to its token
//! ids exactly.
//!
//! The peer is built by `scripts/peer-llama-bench.sh build` (or named by `MEEKBENCH_PEER_BIN`, the directory holding
//! `llama-completion`); without it these tests pass with a message, unless `MEEKBENCH_REQUIRE_PEER=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use meek_engine::{DeviceRequest, Engine, Kernels, argmax};
use meek_testkit::{
    TinySpec, phi3_layout, random_values, rewrite_gguf, vocabulary, write_tiny_llama,
};

const GEN: usize = 32;
/// Factor on the query weights of the generated files.
const Q_GAIN: f64 = 4.0;
const PROMPT: &str = "hello the world, hello the tests of every family";

/// llama.cpp's binaries, or `None` (with a message) when they are not built.
fn peer() -> Option<PathBuf> {
    meek_testkit::peer_bin("llama-completion")
}

/// Token id of a byte in the tiny vocabulary (after its three special tokens).
fn byte_id(b: u8) -> u32 {
    3 + u32::from(b)
}

/// Whether a byte may be generated: letters, digits, space.
fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b' '
}

/// The tiny model of `spec` at test size, with an output matrix that only the allowed bytes have rows in, and
/// `edit` applied to its metadata and tensors.
fn model(
    dir: &Path,
    name: &str,
    spec: TinySpec,
    edit: impl FnOnce(&mut Vec<(String, Value)>, &mut Vec<(String, QTensor)>),
) -> PathBuf {
    let raw = dir.join(format!("{name}.raw.gguf"));
    write_tiny_llama(&raw, spec).unwrap();
    let path = dir.join(format!("{name}.gguf"));
    let vocab = vocabulary().len();
    let h = spec.hidden;
    let values = random_values(vocab * h, spec.seed ^ 0x07);
    let mut out = vec![0f32; vocab * h];
    for b in 0..=255u8 {
        if allowed(b) {
            let r = byte_id(b) as usize;
            out[r * h..(r + 1) * h].copy_from_slice(&values[r * h..(r + 1) * h]);
        }
    }
    let out = Tensor::from_vec(out, (vocab, h), &Device::Cpu).unwrap();
    let out = QTensor::quantize(&out, GgmlDType::Q8_0).unwrap();
    rewrite_gguf(&raw, &path, |md, tensors| {
        tensors.retain(|(n, _)| n != "output.weight");
        tensors.push(("output.weight".into(), out));
        // Sharper attention, so that positions (and so the rotary embedding) decide what each query sees.
        for (name, t) in tensors.iter_mut() {
            if name.ends_with(".attn_q.weight") {
                *t = scaled(t, Q_GAIN);
            }
        }
        edit(md, tensors);
    })
    .unwrap();
    path
}

/// `t` times `by`, in `t`'s type.
fn scaled(t: &QTensor, by: f64) -> QTensor {
    let w = t.dequantize(&Device::Cpu).unwrap();
    QTensor::quantize(&(w * by).unwrap(), t.dtype()).unwrap()
}

fn spec(arch: &'static str) -> TinySpec {
    TinySpec {
        arch,
        layers: 6,
        hidden: 256,
        heads: 4,
        kv_heads: 2,
        ffn: 512,
        context: 256,
        dtype: GgmlDType::Q8_0,
        seed: 17,
        chat_template: false,
        window: 8,
        ..TinySpec::default()
    }
}

fn set(md: &mut Vec<(String, Value)>, key: &str, v: Value) {
    md.retain(|(k, _)| k != key);
    md.push((key.to_string(), v));
}

/// llama.cpp's greedy continuation of [`PROMPT`] as token ids.
fn llama_cpp(bin: &Path, model: &Path) -> Vec<u32> {
    let out = Command::new(bin.join("llama-completion"))
        .arg("-m")
        .arg(model)
        .args([
            "-p",
            PROMPT,
            // llama.cpp prints through a logging thread that may lose its last pieces when the process exits
            // (seen on a busy machine): ask for twice the tokens and keep the first GEN.
            "-n",
            &(2 * GEN).to_string(),
            "--temp",
            "0",
            "--ignore-eos",
        ])
        .args([
            "-no-cnv",
            "--no-display-prompt",
            "--simple-io",
            "--no-warmup",
        ])
        .args([
            "-c", "256", "-t", "2", "-s", "1", "-ctk", "f32", "-ctv", "f32", "-fa", "off",
        ])
        .output()
        .expect("running llama-completion");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "llama-completion failed on {}: {}\n{stdout}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout.trim_end_matches('\n');
    let ids: Vec<u32> = text.bytes().take(GEN).map(byte_id).collect();
    assert!(
        text.bytes().all(allowed) && ids.len() == GEN,
        "llama-completion on {} printed {:?}, not {GEN} allowed bytes; stderr: {}",
        model.display(),
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    ids
}

/// A greedy choice whose logit is within this fraction of the top one is a tie that the two engines' rounding
/// (activation quantisation, summation order) may break either way.
const TIE: f32 = 0.005;
/// The same for the decoder on Candle tensors, whose activations stay f32 where llama.cpp's (and the CPU path's)
/// are quantised to 8 bits before each matrix product: its rounding differs from llama.cpp's by more (up to ~3% of
/// the logits' range on these sharp files, `tests/tensor_decoder.rs`), so a near-tie breaks the other way more
/// often.
const TIE_F32: f32 = 0.015;

/// Teacher-forced on llama.cpp's tokens: the positions where meekbench's greedy choice is llama.cpp's, those where
/// it is not but llama.cpp's is within [`TIE`] of it, and meekbench's own free-running greedy text.
fn agreement(path: &Path, peer: &[u32], kernels: Kernels, report: bool) -> (usize, usize, String) {
    let mut e = Engine::load_with(path, DeviceRequest::Cpu, kernels).unwrap();
    let prompt = e.tokenizer().encode(PROMPT).unwrap();
    let mut logits = e.logits(&prompt, 0).unwrap();
    let (mut same, mut ties) = (0, 0);
    for (i, &want) in peer.iter().enumerate() {
        let got = argmax(&logits);
        let (top, theirs) = (logits[got as usize], logits[want as usize]);
        let tolerance = if kernels == Kernels::Tensors {
            TIE_F32
        } else {
            TIE
        };
        let tie = top - theirs <= tolerance * top.abs();
        if got == want {
            same += 1;
        } else if tie {
            ties += 1;
        }
        if got != want && report {
            let kind = if tie { "a tie" } else { "a difference" };
            eprintln!(
                "position {i}: {kind}, meekbench's logit {top} for {got}, {theirs} for llama.cpp's {want}"
            );
        }
        logits = e.logits(&[want], prompt.len() + i).unwrap();
    }
    let mut own = Vec::new();
    let mut next = argmax(&e.logits(&prompt, 0).unwrap());
    for i in 0..GEN {
        own.push(next);
        next = argmax(&e.logits(&[next], prompt.len() + i).unwrap());
    }
    (same, ties, e.tokenizer().decode(&own, true).unwrap())
}

/// Both of meekbench's decoders (the CPU path, and the GPU path's decoder on Candle tensors, run on the CPU)
/// agree with llama.cpp on `path`.
fn check(bin: &Path, path: &Path) -> Vec<u32> {
    let peer = llama_cpp(bin, path);
    let peer_text: String = peer.iter().map(|&id| char::from((id - 3) as u8)).collect();
    for kernels in [Kernels::Auto, Kernels::Tensors] {
        let (same, ties, own) = agreement(path, &peer, kernels, true);
        eprintln!(
            "{} ({kernels:?}): {same}/{GEN} teacher-forced ({ties} ties); llama.cpp {peer_text:?}, meekbench {own:?}",
            path.file_name().unwrap().to_string_lossy()
        );
        assert!(
            same + ties == GEN && same * 100 >= GEN * 90,
            "{} ({kernels:?}): meekbench agrees with llama.cpp at {same} of {GEN} positions, {ties} more are \
             ties\n llama.cpp: {peer_text:?}\n meekbench: {own:?}",
            path.display()
        );
    }
    peer
}

/// `featured` agrees with llama.cpp, and `plain` (the same weights without the feature under test) does not: the
/// check can tell the feature's absence.
fn check_feature(bin: &Path, featured: &Path, plain: &Path) {
    let peer = check(bin, featured);
    let (same, ties, _) = agreement(plain, &peer, Kernels::Auto, false);
    assert!(
        same + ties + 2 <= GEN,
        "{} without the feature still agrees with llama.cpp on the featured file at {same} of {GEN} positions \
         ({ties} ties): the test cannot tell the feature's absence",
        plain.display()
    );
}

#[test]
fn llama_agrees_with_llama_cpp() {
    let Some(bin) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    check(&bin, &model(dir.path(), "llama", spec("llama"), |_, _| {}));
}

/// Llama 3.1/3.2's rotary frequency factors, computed as llama.cpp's converter does (factor 32, low 1, high 4),
/// for an original context of 32 positions so that they matter within the test's few dozen.
#[test]
fn llama3_frequency_factors_agree_with_llama_cpp() {
    let Some(bin) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    let head_dim = 64;
    let (base, factor, low, high, orig) = (10_000f32, 32f32, 1f32, 4f32, 32f32);
    let factors: Vec<f32> = (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / base.powf(2.0 * i as f32 / head_dim as f32);
            let wavelen = 2.0 * std::f32::consts::PI / freq;
            let (low_wl, high_wl) = (orig / low, orig / high);
            if wavelen < high_wl {
                1.0
            } else if wavelen > low_wl {
                factor
            } else {
                let smooth = (orig / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect();
    assert!(factors[0] == 1.0 && factors[head_dim / 2 - 1] == factor);
    let plain = model(dir.path(), "llama", spec("llama"), |_, _| {});
    let path = model(
        dir.path(),
        "llama3-rope-freqs",
        spec("llama"),
        |_, tensors| {
            let t = Tensor::from_vec(factors, head_dim / 2, &Device::Cpu).unwrap();
            tensors.push((
                "rope_freqs.weight".into(),
                QTensor::quantize(&t, GgmlDType::F32).unwrap(),
            ));
        },
    );
    check_feature(&bin, &path, &plain);
}

#[test]
fn llama_linear_rotary_scaling_agrees_with_llama_cpp() {
    let Some(bin) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    let plain = model(dir.path(), "llama", spec("llama"), |_, _| {});
    let path = model(dir.path(), "llama-linear4", spec("llama"), |md, _| {
        set(
            md,
            "llama.rope.scaling.type",
            Value::String("linear".into()),
        );
        set(md, "llama.rope.scaling.factor", Value::F32(4.0));
    });
    check_feature(&bin, &path, &plain);
}

#[test]
fn qwen2_agrees_with_llama_cpp() {
    let Some(bin) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    check(&bin, &model(dir.path(), "qwen2", spec("qwen2"), |_, _| {}));
}

#[test]
fn qwen3_agrees_with_llama_cpp() {
    let Some(bin) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    check(&bin, &model(dir.path(), "qwen3", spec("qwen3"), |_, _| {}));
}

/// Gemma 3 at 270M/1B style: five sliding-window layers (window 8, shorter than the prompt) and a global one.
#[test]
fn gemma3_agrees_with_llama_cpp() {
    let Some(bin) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    check(
        &bin,
        &model(dir.path(), "gemma3", spec("gemma3"), |_, _| {}),
    );
}

/// Gemma 3 at 4B style: the global layers' rotary scaled linearly by 8, the local ones not.
#[test]
fn gemma3_scaled_global_rotary_agrees_with_llama_cpp() {
    let Some(bin) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    let plain = model(dir.path(), "gemma3", spec("gemma3"), |_, _| {});
    let path = model(dir.path(), "gemma3-linear8", spec("gemma3"), |md, _| {
        set(
            md,
            "gemma3.rope.scaling.type",
            Value::String("linear".into()),
        );
        set(md, "gemma3.rope.scaling.factor", Value::F32(8.0));
    });
    check_feature(&bin, &path, &plain);
}

/// Gemma 2: sandwich norms without q/k norms, windows on the even layers, and soft-capped attention (here at 2, so
/// that capping decides what the sharp queries see; llama.cpp's default of 50 would rarely bind on a tiny model),
/// against the same weights capped at 10,000 (no capping in effect).
#[test]
fn gemma2_agrees_with_llama_cpp() {
    let Some(bin) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Gemma 2 files are always tied (llama.cpp refuses an `output.weight`): the restricted output matrix becomes
    // the embedding too, divided by the `sqrt(hidden)` the model multiplies it by (else the token's own embedding
    // outweighs every layer and the model echoes its input), and the final norm multiplied by as much, to keep the
    // logits peaked.
    let capped = |cap: f32| {
        move |md: &mut Vec<(String, Value)>, tensors: &mut Vec<(String, QTensor)>| {
            set(md, "gemma2.attn_logit_softcapping", Value::F32(cap));
            set(md, "gemma2.final_logit_softcapping", Value::F32(30.0));
            let at = tensors
                .iter()
                .position(|(n, _)| n == "output.weight")
                .unwrap();
            let (_, out) = tensors.remove(at);
            let root = (spec("gemma2").hidden as f64).sqrt();
            for (name, t) in tensors.iter_mut() {
                if name == "token_embd.weight" {
                    *t = scaled(&out, 1.0 / root);
                } else if name == "output_norm.weight" {
                    *t = scaled(t, root);
                }
            }
        }
    };
    let featured = model(dir.path(), "gemma2", spec("gemma2"), capped(0.5));
    let plain = model(
        dir.path(),
        "gemma2-uncapped",
        spec("gemma2"),
        capped(10_000.0),
    );
    check_feature(&bin, &featured, &plain);
}

/// SmolLM3: llama without rotary embedding on every fourth layer; the same weights read as llama (every layer
/// rotated) must disagree.
#[test]
fn smollm3_agrees_with_llama_cpp() {
    let Some(bin) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    let plain = model(dir.path(), "llama", spec("llama"), |_, _| {});
    let featured = model(dir.path(), "smollm3", spec("llama"), |md, _| {
        for (k, v) in md.iter_mut() {
            if let Some(rest) = k.strip_prefix("llama.") {
                *k = format!("smollm3.{rest}");
            }
            if k == "general.architecture" {
                *v = Value::String("smollm3".into());
            }
        }
    });
    check_feature(&bin, &featured, &plain);
}

/// Phi-3.5: fused matrices, NeoX rotary pairs, LongRoPE short factors and the attention factor, against the same
/// fused weights without factors (which must disagree).
#[test]
fn phi3_agrees_with_llama_cpp() {
    let Some(bin) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    let head_dim = spec("llama").hidden / spec("llama").heads;
    let short: Vec<f32> = (0..head_dim / 2)
        .map(|i| 1.0 + 7.0 * i as f32 / (head_dim / 2) as f32)
        .collect();
    let layers = spec("llama").layers;
    let plain = model(
        dir.path(),
        "phi3-plain",
        spec("llama"),
        phi3_layout(layers, None),
    );
    // The original context is llama-completion's -c, so that llama.cpp takes the short factors.
    let featured = model(
        dir.path(),
        "phi3",
        spec("llama"),
        phi3_layout(layers, Some((short, 1.19, 256))),
    );
    check_feature(&bin, &featured, &plain);
    // A run may not go past the original context, where llama.cpp would switch to the long factors.
    let e = Engine::load_with(&featured, DeviceRequest::Cpu, Kernels::Auto).unwrap();
    assert_eq!(e.max_positions(), 256);
}
