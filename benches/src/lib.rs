//! Criterion micro-benchmarks of meekbench's own hot paths (see `benches/engine.rs`); run with
//! `cargo bench -p meek-microbench`. Whole-model speed is measured by `meekbench bench`, not here.
