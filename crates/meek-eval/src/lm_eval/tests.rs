use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
struct Case {
    task: String,
    response: String,
    answer: String,
    strict: Expected,
    flexible: Expected,
}

#[derive(Deserialize)]
struct Expected {
    extracted: Option<String>,
    correct: bool,
}

/// `fixture.json`: responses (edge cases of both filters and the ignore list) scored by lm-eval 0.4.13's own
/// `RegexFilter` and `exact_match` with the task files' settings (`scripts/lm-eval-score.py fixture fixture.json
/// fixture.json` scores it again). Every verdict and every extracted string must be lm-eval's.
#[test]
fn verdicts_equal_lm_evals_item_by_item() {
    let cases: Vec<Case> = serde_json::from_str(include_str!("fixture.json")).unwrap();
    assert!(cases.len() >= 30);
    for (i, c) in cases.iter().enumerate() {
        let task = match c.task.as_str() {
            "gsm8k" => Task::Gsm8k,
            "gsm8k_cot_llama" => Task::Gsm8kCotLlama,
            other => panic!("case {i}: task {other}"),
        };
        for (got, want, which) in [
            (task.strict(&c.response, &c.answer), &c.strict, "strict"),
            (
                task.flexible(&c.response, &c.answer),
                &c.flexible,
                "flexible",
            ),
        ] {
            assert_eq!(
                (got.extracted.as_deref(), got.correct),
                (want.extracted.as_deref(), want.correct),
                "case {i} ({}, {which}): {:?}",
                c.task,
                c.response
            );
        }
    }
    // The fixture exercises both outcomes of both filters.
    assert!(cases.iter().any(|c| c.strict.correct) && cases.iter().any(|c| !c.flexible.correct));
    assert!(
        cases
            .iter()
            .any(|c| c.flexible.extracted.is_some() && !c.flexible.correct)
    );
}

fn item(q: &str, target: &str) -> Item {
    Item {
        id: q.into(),
        family: "gsm8k".into(),
        steps: 1,
        question: q.into(),
        answer: "1".into(),
        solution: String::new(),
        target: target.into(),
    }
}

#[test]
fn prompts_are_lm_evals_layouts() {
    let shots = [item("Q1?", "a <<1+1=2>>2\n#### 2"), item("Q2?", "#### 3")];
    assert_eq!(
        completion(&item("Q?", ""), &shots),
        "Question: Q1?\nAnswer: a <<1+1=2>>2\n#### 2\n\nQuestion: Q2?\nAnswer: #### 3\n\nQuestion: Q?\nAnswer:"
    );
    let turns = chat(&item("How many?", ""));
    assert_eq!(turns.len(), 17);
    assert_eq!(turns[1].1, COT_EXEMPLARS[0].1);
    assert!(
        turns[16]
            .1
            .contains("Problem: How many?\nYour response should end with")
    );
    assert!(turns[16].1.ends_with("the response to the problem.\n"));
    assert_eq!(Task::for_style(true).shots(), 8);
    assert_eq!(Task::for_style(false).until()[0], "Question:");
}

/// lm-eval's draws for the first questions of GSM8K's test split (`random.Random(1234)`, 5 of 7,473 per question).
#[test]
fn exemplars_are_drawn_as_lm_eval_draws_them() {
    let d = draw_exemplars(2, 7473, 5);
    assert_eq!(
        d,
        [[6374, 3610, 957, 61, 742], [7462, 6610, 4769, 286, 5501]]
    );
}
