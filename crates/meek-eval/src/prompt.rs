//! Prompts: an instruction that fixes the answer format, k exemplars, the question.

use crate::Item;

/// The instruction given with every question.
pub const INSTRUCTION: &str = "Solve the problem. Work step by step if it helps, then give the final answer on its own line as \"Answer: <number>\".";

/// A prompt as chat turns (for models with a chat template).
pub fn chat(item: &Item, exemplars: &[Item]) -> Vec<(String, String)> {
    let mut turns = Vec::with_capacity(2 * exemplars.len() + 1);
    for e in exemplars {
        turns.push((
            "user".to_string(),
            format!("{INSTRUCTION}\n\n{}", e.question),
        ));
        turns.push(("assistant".to_string(), e.solution.clone()));
    }
    turns.push((
        "user".to_string(),
        format!("{INSTRUCTION}\n\n{}", item.question),
    ));
    turns
}

/// A completion prompt for base models without a chat template: exemplars as `Question:`/`Solution:` pairs, ending
/// where the model writes its solution. Generation is cut at [`STOP`].
pub fn completion(item: &Item, exemplars: &[Item]) -> String {
    let mut s = format!("{INSTRUCTION}\n\n");
    for e in exemplars {
        s.push_str(&format!(
            "Question: {}\nSolution: {}\n\n",
            e.question, e.solution
        ));
    }
    s.push_str(&format!("Question: {}\nSolution:", item.question));
    s
}

/// Where a completion-style answer ends (the model starting the next question).
pub const STOP: &str = "\nQuestion:";

/// The stop strings of completion prompts when a suite sets no `until`: the separators of [`completion`]'s own
/// few-shot layout, so a base model's answer ends where it starts inventing the next question (generation stops
/// there, and the answer is cut before it).
pub const COMPLETION_UNTIL: [&str; 2] = ["\n\nQuestion:", "Question:"];

/// The part of an output that answers the question: everything before [`STOP`].
pub fn answer_part(output: &str) -> &str {
    output.find(STOP).map_or(output, |p| &output[..p])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(q: &str, a: &str) -> Item {
        Item {
            id: q.into(),
            family: "t".into(),
            steps: 1,
            question: q.into(),
            answer: a.into(),
            solution: format!("Answer: {a}"),
            target: a.into(),
        }
    }

    #[test]
    fn chat_and_completion_prompts() {
        let shots = [item("1+1?", "2")];
        let turns = chat(&item("2+2?", "4"), &shots);
        assert_eq!(turns.len(), 3);
        assert_eq!(turns[1], ("assistant".into(), "Answer: 2".into()));
        assert!(turns[2].1.ends_with("2+2?") && turns[2].1.starts_with(INSTRUCTION));
        let c = completion(&item("2+2?", "4"), &shots);
        assert!(c.contains("Question: 1+1?\nSolution: Answer: 2\n\nQuestion: 2+2?\nSolution:"));
        assert_eq!(
            answer_part(" 4\nAnswer: 4\n\nQuestion: 3+3?\nSolution: 6"),
            " 4\nAnswer: 4\n"
        );
    }
}
