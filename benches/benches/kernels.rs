//! Micro-benchmarks of the CPU kernels: each weight format's matrix-vector product (decode) and matrix-matrix
//! product (prefill, 64 activation rows) on a 1024 x 2048 matrix, with every instruction-set path this CPU runs and
//! in every layout the engine repacks to;
//! activation quantization; and the SentencePiece tokenizer.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meek_engine::cpu::EnginePool;
use meek_kernels::{
    Format, KernelPath, Layout, Q8Block, Q8KBlock, QActs, QK, QK_K, QMat, matmul, quantize_row,
    quantize_row_k,
};
use meek_testkit::random_values;

const ROWS: usize = 1024;
const COLS: usize = 2048;

fn qmat(fmt: Format, ggml: GgmlDType) -> QMat {
    let w = Tensor::from_vec(random_values(ROWS * COLS, 1), (ROWS, COLS), &Device::Cpu)
        .expect("tensor");
    let q = QTensor::quantize(&w, ggml).expect("quantize");
    QMat::new(fmt, ROWS, COLS, q.data().expect("bytes").into_owned()).expect("matrix")
}

fn activations(n: usize, fmt: Format) -> QActs {
    let mut q = QActs::default();
    q.quantize(&random_values(n * COLS, 2), COLS, &[fmt]);
    q
}

fn kernels(c: &mut Criterion) {
    let formats = [
        (Format::Q4_0, GgmlDType::Q4_0),
        (Format::Q4_1, GgmlDType::Q4_1),
        (Format::Q5_0, GgmlDType::Q5_0),
        (Format::Q5_1, GgmlDType::Q5_1),
        (Format::Q8_0, GgmlDType::Q8_0),
        (Format::Q4K, GgmlDType::Q4K),
        (Format::Q6K, GgmlDType::Q6K),
    ];
    for n in [1usize, 64] {
        let mut out = vec![0f32; n * ROWS];
        let mut g = c.benchmark_group(format!("matmul-{ROWS}x{COLS}-n{n}"));
        g.throughput(Throughput::Elements((ROWS * COLS * n) as u64));
        for (fmt, ggml) in formats {
            let w = qmat(fmt, ggml);
            let x = activations(n, fmt);
            for path in KernelPath::available() {
                if n > 1 && path == KernelPath::Portable {
                    continue;
                }
                g.bench_with_input(
                    BenchmarkId::new(format!("{fmt:?}"), path.name()),
                    &path,
                    |b, &path| b.iter(|| matmul(&EnginePool, path, &w, &x, &mut out)),
                );
                // The layout the engine multiplies in, where it differs from the file's.
                let wi = w.clone().interleaved(path);
                if wi.layout() != Layout::Rows {
                    g.bench_with_input(
                        BenchmarkId::new(format!("{fmt:?}-{:?}", wi.layout()), path.name()),
                        &path,
                        |b, &path| b.iter(|| matmul(&EnginePool, path, &wi, &x, &mut out)),
                    );
                }
            }
        }
        g.finish();
    }
    let x = random_values(COLS, 3);
    let mut q = vec![Q8Block::default(); COLS / QK];
    let mut g = c.benchmark_group("quantize-activations");
    g.throughput(Throughput::Elements(COLS as u64));
    g.bench_function("q8-2048", |b| b.iter(|| quantize_row(&x, &mut q)));
    let mut qk = vec![Q8KBlock::default(); COLS / QK_K];
    g.bench_function("q8k-2048", |b| b.iter(|| quantize_row_k(&x, &mut qk)));
    g.finish();
}

fn spm(c: &mut Criterion) {
    // A vocabulary of every lowercase bigram and trigram with Zipf-like scores, plus the byte tokens.
    let letters: Vec<char> = ('a'..='z').collect();
    let mut tokens = vec![
        "<unk>".to_string(),
        "<s>".to_string(),
        "\u{2581}".to_string(),
    ];
    for &a in &letters {
        tokens.push(a.to_string());
        tokens.push(format!("\u{2581}{a}"));
        for &b in &letters {
            tokens.push(format!("{a}{b}"));
            for &c in letters.iter().take(6) {
                tokens.push(format!("{a}{b}{c}"));
            }
        }
    }
    let n = tokens.len();
    let mut types = vec![1; n];
    types[0] = 2;
    types[1] = 3;
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    let scores: Vec<f32> = (0..tokens.len()).map(|i| -(i as f32).ln_1p()).collect();
    let spm = meek_engine::spm::Spm::new(&tokens, scores, &types, |t| t == 3, Some(0), true)
        .expect("vocabulary");
    let text = "the quick brown fox jumps over the lazy dog while seven wizards quietly hex \
                the jovial bank clerk. "
        .repeat(8);
    let mut g = c.benchmark_group("tokenizer");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("sentencepiece-encode", |b| b.iter(|| spm.encode(&text)));
    g.finish();
}

fn scorer(c: &mut Criterion) {
    let output = "First, 12 apples plus 35 apples is 47 apples. Then he gives away 1,250 grams... \
                  so the total is \\boxed{46}.\nAnswer: 46";
    let mut g = c.benchmark_group("scorer");
    g.bench_function("strict+flexible", |b| {
        b.iter(|| {
            let s = meek_eval::extract::strict(output);
            let f = meek_eval::extract::flexible(output);
            meek_eval::extract::matches(s.as_ref(), "46")
                && meek_eval::extract::matches(f.as_ref(), "46")
        })
    });
    g.finish();
}

criterion_group!(benches, kernels, spm, scorer);
criterion_main!(benches);
