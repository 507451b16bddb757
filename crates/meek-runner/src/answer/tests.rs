use meek_eval::Item;

use super::*;

fn gsm_item() -> Item {
    Item {
        id: "item-1".into(),
        family: "gsm8k".into(),
        steps: 2,
        question: "Natalia sold 48 clips in April and half as many in May. How many in total?"
            .into(),
        answer: "72".into(),
        solution: String::new(),
        target: "May: 48/2 = <<48/2=24>>24\nTotal: 48+24 = <<48+24=72>>72\n#### 72".into(),
    }
}

fn outcome(output: &str, thinking: Option<ThinkingTrace>) -> Outcome<'_> {
    Outcome {
        output,
        prompt_tokens: 10,
        generated_tokens: 20,
        stop: "eos",
        seconds: 1.0,
        thinking,
    }
}

const CLOSED: ThinkingTrace = ThinkingTrace {
    tokens: 12,
    forced_at: None,
    closed: true,
};

#[test]
fn lm_eval_scoring_compares_strings_as_lm_eval_does() {
    let item = gsm_item();
    let gsm = Scoring::LmEval(Task::Gsm8k);
    let r = score(&item, &outcome(" 48 + 24 = 72\n#### 72", None), gsm, true);
    assert!(r.correct_strict && r.correct_flexible);
    assert_eq!(r.expected, "72");
    // `72.0` is a number equal to 72 but not lm-eval's string: wrong under lm-eval, right under meekbench's.
    let r = score(&item, &outcome(" so #### 72.0", None), gsm, false);
    assert!(!r.correct_strict && !r.correct_flexible);
    assert_eq!(r.extracted_strict.as_deref(), Some("72.0"));
    let r = score(
        &item,
        &outcome(" so Answer: 72.0", None),
        Scoring::Meek,
        false,
    );
    assert!(r.correct_strict && r.correct_flexible);
    let cot = Scoring::LmEval(Task::Gsm8kCotLlama);
    let r = score(
        &item,
        &outcome("24 more. The final answer is 72", None),
        cot,
        false,
    );
    assert!(r.correct_strict && r.correct_flexible);
    let r = score(&item, &outcome("It is 72 clips.", None), cot, false);
    assert!(!r.correct_strict && r.correct_flexible);
}

#[test]
fn the_extractors_read_only_what_follows_the_thinking_block() {
    let item = gsm_item();
    let text = "<think>\nMaybe 48, or 100?\n</think>\n\nThe final answer is 72";
    let r = score(
        &item,
        &outcome(text, Some(CLOSED)),
        Scoring::LmEval(Task::Gsm8kCotLlama),
        true,
    );
    assert!(r.correct_strict && r.correct_flexible);
    assert_eq!(r.thinking_tokens, Some(12));
    assert!(!r.thinking_forced);
    assert_eq!(
        r.output.as_deref(),
        Some(text),
        "the record keeps the thought"
    );
    // A thought that never closed leaves no answer, whatever numbers it holds.
    let open = ThinkingTrace {
        closed: false,
        ..CLOSED
    };
    let r = score(
        &item,
        &outcome("<think>72 72 72", Some(open)),
        Scoring::Meek,
        false,
    );
    assert!(!r.correct_flexible && r.extracted_flexible.is_none());
    // Without a block the whole text is the answer.
    assert_eq!(after_thinking("Answer: 3", None), "Answer: 3");
    let forced = ThinkingTrace {
        forced_at: Some(12),
        ..CLOSED
    };
    let r = score(
        &item,
        &outcome("<think>hmm\n</think>\n\nAnswer: 72", Some(forced)),
        Scoring::Meek,
        false,
    );
    assert!(r.thinking_forced && r.correct_strict);
}

#[test]
fn stop_strings_count_only_after_the_thought() {
    let until = vec!["Question:".to_string()];
    let text = "<think>Question: what if?</think>\nAnswer: 5\nQuestion: next";
    assert_eq!(
        cut_after_thinking(text, &until, Some(&CLOSED)),
        "<think>Question: what if?</think>\nAnswer: 5\n"
    );
    assert_eq!(cut_after_thinking(text, &until, None), "<think>");
    let unclosed = "<think>Question: 1";
    assert_eq!(
        cut_after_thinking(unclosed, &until, Some(&CLOSED)),
        unclosed
    );
}
