//! Micro-benchmarks: one decode step and one short prefill of a tiny generated model, the harness's overhead on
//! decoding (the measured `generate`, with its per-token clock reads and a progress bar ticking per repetition as
//! in a bench, against the bare loop of greedy steps), and the statistics.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meek_engine::{DeviceRequest, Engine, GenOptions};
use meek_testkit::{TinySpec, write_tiny_llama};

fn engine(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tiny.gguf");
    let spec = TinySpec {
        layers: 4,
        hidden: 256,
        heads: 8,
        kv_heads: 4,
        ffn: 512,
        context: 1024,
        ..TinySpec::default()
    };
    write_tiny_llama(&path, spec).expect("write tiny model");
    let mut e = Engine::load(&path, DeviceRequest::Cpu).expect("load tiny model");
    let prompt = e.synthetic_prompt(64, 1);
    let mut g = c.benchmark_group("tiny-llama-cpu");
    g.throughput(Throughput::Elements(64));
    g.bench_function("prefill64+1", |b| {
        let opts = GenOptions {
            max_new_tokens: 1,
            stop_at_eos: false,
        };
        b.iter(|| e.generate(&prompt, opts, &mut ()).expect("generate"));
    });
    g.throughput(Throughput::Elements(32));
    g.bench_function("prefill8+decode32", |b| {
        let opts = GenOptions {
            max_new_tokens: 32,
            stop_at_eos: false,
        };
        b.iter(|| e.generate(&prompt[..8], opts, &mut ()).expect("generate"));
    });
    g.finish();

    // Harness overhead: 32 decode steps after an 8-token prefill, bare and measured.
    let mut g = c.benchmark_group("harness-overhead-decode32");
    g.throughput(Throughput::Elements(32));
    g.bench_function("bare-greedy-steps", |b| {
        b.iter(|| {
            let mut next = e.greedy_step(&prompt[..8], 0).expect("prefill");
            for pos in 8..8 + 31 {
                next = e.greedy_step(&[next], pos).expect("decode");
            }
            next
        });
    });
    let bar = indicatif::ProgressBar::hidden();
    g.bench_function("measured-generate", |b| {
        let opts = GenOptions {
            max_new_tokens: 32,
            stop_at_eos: false,
        };
        b.iter(|| {
            let out = e.generate(&prompt[..8], opts, &mut ()).expect("generate");
            bar.inc(1);
            (out.ttft(), out.decode_time())
        });
    });
    g.finish();
}

fn stats(c: &mut Criterion) {
    let values: Vec<f64> = (0..10_000).map(|i| f64::from((i * 7919) % 1000)).collect();
    c.bench_function("sample-describe-10k", |b| {
        b.iter(|| {
            let s = meek_stats::Sample::new(values.clone()).expect("finite");
            (meek_stats::describe(&s), s.percentile(99.0))
        });
    });
}

criterion_group!(benches, engine, stats);
criterion_main!(benches);
