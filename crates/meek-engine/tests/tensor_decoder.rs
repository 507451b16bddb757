//! meekbench's decoder on Candle tensors (what GPUs run) against its CPU path on the same files, run here on Candle's
//! CPU device: every family, the rotary variants and the sliding window, teacher-forced logits, greedy tokens and
//! a text's per-token loss. On a GPU machine `scripts/gpu-check.sh` checks the same decoder on CUDA against the CPU.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use meek_engine::{DeviceRequest, Engine, GenOptions, Kernels};
use meek_testkit::{TinySpec, rewrite_gguf, teacher_forced, write_tiny_llama};

fn tiny(dir: &Path, name: &str, spec: TinySpec) -> PathBuf {
    let p = dir.join(name);
    write_tiny_llama(&p, spec).unwrap();
    p
}

/// Teacher-forced logits of both decoders over 40 positions (a prefill of 12, then one token at a time, so that
/// Gemma 3's window of 8 hides keys in both phases): top-1 agreement and the largest difference.
fn agree(path: &Path) -> (usize, usize, f32) {
    let mut cpu = Engine::load_with(path, DeviceRequest::Cpu, Kernels::Auto).unwrap();
    let mut ten = Engine::load_with(path, DeviceRequest::Cpu, Kernels::Tensors).unwrap();
    assert!(cpu.kernel().starts_with("cpu-"), "{}", cpu.kernel());
    assert_eq!(ten.kernel(), "tensors-cpu");
    let seq = cpu.synthetic_prompt(40, 9);
    teacher_forced(&mut ten, &mut cpu, &seq, 11)
}

#[test]
fn every_family_agrees_with_the_cpu_path() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, Option<usize>, GgmlDType, usize)] = &[
        ("llama", None, GgmlDType::Q4_1, 2),
        ("llama", None, GgmlDType::Q8_0, 2),
        ("qwen2", None, GgmlDType::Q4_0, 2),
        ("qwen3", Some(32), GgmlDType::Q8_0, 2),
        // Seven layers: five local ones (window 8) and a global one (every sixth), then a local one.
        ("gemma3", None, GgmlDType::Q8_0, 7),
        ("gemma3", Some(32), GgmlDType::Q5_0, 7),
        // Even layers local, soft-capped attention and logits (llama.cpp's defaults: 50 and 30).
        ("gemma2", None, GgmlDType::Q8_0, 4),
        // The fourth layer without rotary embedding.
        ("smollm3", None, GgmlDType::Q4_0, 5),
    ];
    for &(arch, head_dim, dtype, layers) in cases {
        let name = format!("{arch}-{dtype:?}-{head_dim:?}.gguf");
        let path = tiny(
            dir.path(),
            &name,
            TinySpec {
                arch,
                head_dim,
                dtype,
                layers,
                seed: 31,
                ..TinySpec::default()
            },
        );
        let (same, n, worst) = agree(&path);
        assert!(same + 1 >= n, "{name}: top-1 agreed on {same} of {n}");
        assert!(
            worst < 0.03,
            "{name}: logits differ by {worst} of their range"
        );
    }
}

/// llama3 frequency factors and linear scaling, which candle-transformers' llama ignores, are computed alike.
#[test]
fn rotary_variants_agree_with_the_cpu_path() {
    let dir = tempfile::tempdir().unwrap();
    let good = tiny(dir.path(), "good.gguf", TinySpec::default());
    let factors = dir.path().join("factors.gguf");
    rewrite_gguf(&good, &factors, |_, tensors| {
        // The tiny llama's heads are 16 wide: 8 factors, growing as llama3's do.
        let f: Vec<f32> = (0..8).map(|i| 1.0 + i as f32).collect();
        let t = Tensor::from_vec(f, 8, &Device::Cpu).unwrap();
        tensors.push((
            "rope_freqs.weight".into(),
            QTensor::quantize(&t, GgmlDType::F32).unwrap(),
        ));
    })
    .unwrap();
    let linear = dir.path().join("linear.gguf");
    rewrite_gguf(&good, &linear, |md, _| {
        md.push((
            "llama.rope.scaling.type".into(),
            Value::String("linear".into()),
        ));
        md.push(("llama.rope.scaling.factor".into(), Value::F32(4.0)));
    })
    .unwrap();
    // Phi-3's layout: fused q/k/v and gate/up, NeoX pairs, LongRoPE short factors and the attention factor.
    let phi3 = dir.path().join("phi3.gguf");
    let layers = TinySpec::default().layers;
    let short: Vec<f32> = (0..8).map(|i| 1.0 + 0.5 * i as f32).collect();
    rewrite_gguf(
        &good,
        &phi3,
        meek_testkit::phi3_layout(layers, Some((short, 1.19, 64))),
    )
    .unwrap();
    assert_eq!(
        Engine::load_with(&phi3, DeviceRequest::Cpu, Kernels::Auto)
            .unwrap()
            .max_positions(),
        64,
        "a run stops at the original context, where the long factors begin"
    );
    for path in [factors, linear, phi3] {
        let (same, n, worst) = agree(&path);
        assert!(
            same + 1 >= n,
            "{}: top-1 agreed on {same} of {n}",
            path.display()
        );
        assert!(worst < 0.03, "{}: logits differ by {worst}", path.display());
    }
}

#[test]
fn greedy_tokens_and_text_loss_match_the_cpu_path() {
    let dir = tempfile::tempdir().unwrap();
    for arch in ["llama", "gemma3"] {
        let path = tiny(
            dir.path(),
            &format!("{arch}.gguf"),
            TinySpec {
                arch,
                layers: 7,
                dtype: GgmlDType::Q8_0,
                seed: 5,
                ..TinySpec::default()
            },
        );
        let mut cpu = Engine::load_with(&path, DeviceRequest::Cpu, Kernels::Auto).unwrap();
        let mut ten = Engine::load_with(&path, DeviceRequest::Cpu, Kernels::Tensors).unwrap();
        let prompt = cpu.synthetic_prompt(10, 2);
        let opts = GenOptions {
            max_new_tokens: 24,
            stop_at_eos: false,
        };
        // The tensors' free-running greedy tokens, each the CPU path's greedy choice given the ones before, or
        // within 1% of its top logit (random tiny weights have near ties, which rounding may break either way).
        let a = ten.generate(&prompt, opts, &mut ()).unwrap().tokens;
        let mut logits = cpu.logits(&prompt, 0).unwrap();
        let mut ties = 0;
        for (i, &t) in a.iter().enumerate() {
            let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let gap = top - logits[t as usize];
            assert!(
                gap <= 0.01 * top.abs().max(1.0),
                "{arch}: token {i} ({t}) is {gap} below the CPU path's top logit {top}"
            );
            ties += usize::from(gap > 0.0);
            logits = cpu.logits(&[t], prompt.len() + i).unwrap();
        }
        assert!(
            ties <= 3,
            "{arch}: {ties} of 24 greedy tokens were near ties"
        );
        // A text's loss, all positions in one pass on the tensors, against the CPU path's.
        let text = cpu.synthetic_prompt(48, 4);
        let x = ten.token_nll(&text, 4).unwrap();
        let y = cpu.token_nll(&text, 4).unwrap();
        assert_eq!(x.len(), y.len());
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            (mean(&x) - mean(&y)).abs() < 0.01 * mean(&y).abs().max(1.0),
            "{arch}: loss {} vs {}",
            mean(&x),
            mean(&y)
        );
    }
}

/// A step that does not follow the cached positions is an error, not a silently wrong answer; a new sequence at
/// position 0 starts afresh.
#[test]
fn positions_must_follow_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny(dir.path(), "t.gguf", TinySpec::default());
    let mut e = Engine::load_with(&path, DeviceRequest::Cpu, Kernels::Tensors).unwrap();
    let first = e.logits(&[5, 6, 7], 0).unwrap();
    let err = e.logits(&[8], 7).unwrap_err().to_string();
    assert!(err.contains("position 7"), "{err}");
    assert_eq!(e.logits(&[5, 6, 7], 0).unwrap(), first);
}
