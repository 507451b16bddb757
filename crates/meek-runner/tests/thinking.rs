//! A reasoning model answering a suite, on a tiny generated model with a thinking chat template: the thought is
//! counted per item and in the suite, a budget closes it (budget forcing) and the model answers after it, the
//! record keeps the thought; a thinking switch on a model without one is refused before anything is measured.

use std::path::Path;

use meek_eval::generate;
use meek_runner::eval::{PreparedItem, PreparedSuite};
use meek_runner::{EnergyRequest, MeasureRequest, measure};
use meek_testkit::{TinySpec, write_tiny_llama};

fn request(path: &Path, suite: PreparedSuite) -> MeasureRequest {
    MeasureRequest {
        model_id: "tiny-think".into(),
        path: path.to_path_buf(),
        sha256: "0".repeat(64),
        size_bytes: 1,
        source: "local".into(),
        device: "cpu".into(),
        threads: 1,
        points: vec![(8, 2)],
        warmup: 0,
        repetitions: 1,
        seed: 1,
        progress: false,
        suites: vec![suite],
        keep_outputs: true,
        energy: EnergyRequest {
            sources: Some(vec![]),
            ..EnergyRequest::default()
        },
        perplexity: vec![],
    }
}

fn suite(thinking: Option<bool>, max_thinking_tokens: Option<usize>) -> PreparedSuite {
    PreparedSuite {
        name: "think".into(),
        shots: 0,
        max_new_tokens: 3,
        sweep: false,
        until: None,
        lm_eval: false,
        thinking,
        max_thinking_tokens,
        items: generate::items("arithmetic", 1, 2, 3, 0)
            .unwrap()
            .into_iter()
            .map(|item| PreparedItem {
                item,
                exemplars: vec![],
            })
            .collect(),
    }
}

#[test]
fn thoughts_are_counted_capped_by_their_budget_and_kept_out_of_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("think.gguf");
    // A zero `</think>` row and no EOS boost: the model thinks until the budget closes its thought.
    let spec = TinySpec {
        thinking: true,
        think_boost: 0.0,
        eos_boost: 0.0,
        seed: 5,
        ..TinySpec::default()
    };
    write_tiny_llama(&path, spec).unwrap();
    let run = measure(&request(&path, suite(None, Some(4)))).unwrap();
    let s = &run.accuracy[0];
    assert_eq!(s.items.len(), 2);
    for r in &s.items {
        assert_eq!(r.thinking_tokens, Some(4), "{r:?}");
        assert!(r.thinking_forced);
        assert_eq!(r.generated_tokens, 4 + 3, "the answer had its own budget");
        let out = r.output.as_deref().unwrap();
        assert!(
            out.contains("\n</think>\n\n"),
            "the forced close is in the text: {out:?}"
        );
    }
    assert_eq!(
        (s.mean_thinking_tokens, s.thinking_forced),
        (Some(4.0), Some(2))
    );
    assert_eq!(
        s.mean_generated_tokens, 7.0,
        "thinking tokens are spent tokens"
    );

    // Thinking off: the template writes an empty closed block and the model does not open another.
    let run = measure(&request(&path, suite(Some(false), Some(4)))).unwrap();
    let s = &run.accuracy[0];
    assert_eq!(s.thinking.as_deref(), Some("off"));
    assert!(s.items.iter().all(|r| r.thinking_tokens.is_none()));
    assert_eq!(s.mean_thinking_tokens, None);
}

#[test]
fn a_thinking_switch_without_a_template_switch_is_refused_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.gguf");
    write_tiny_llama(&path, TinySpec::default()).unwrap();
    let e = measure(&request(&path, suite(Some(true), None)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("suite `think`") && e.contains("enable_thinking") && e.contains("tiny-think"),
        "{e}"
    );
    let base = dir.path().join("base.gguf");
    let spec = TinySpec {
        chat_template: false,
        ..TinySpec::default()
    };
    write_tiny_llama(&base, spec).unwrap();
    let e = measure(&request(&base, suite(None, Some(8))))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("max_thinking_tokens") && e.contains("no chat template"),
        "{e}"
    );
}
