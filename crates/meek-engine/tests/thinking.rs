//! Reasoning models on a tiny generated one with a thinking chat template: the template's `enable_thinking` switch,
//! the `<think>` tags as text, a thought counted and closed by its budget (budget forcing) or by the model, and stop
//! strings that count only after the thought.

use std::path::{Path, PathBuf};

use meek_engine::{DeviceRequest, Engine, GenOptions, Message, StopReason, Thinking};
use meek_testkit::{TinySpec, write_tiny_llama};

fn tiny(dir: &Path, think_boost: f32) -> PathBuf {
    let p = dir.join(format!("think-{think_boost}.gguf"));
    let spec = TinySpec {
        thinking: true,
        think_boost,
        seed: 5,
        ..TinySpec::default()
    };
    write_tiny_llama(&p, spec).unwrap();
    p
}

fn prompt(e: &Engine, thinking: Option<bool>) -> (String, Vec<u32>) {
    let t = e.chat_template().expect("a chat template");
    let text = t
        .render_thinking(&[Message::new("user", "What is 2+3?")], true, thinking)
        .unwrap();
    let ids = e.tokenizer().encode(&text).unwrap();
    (text, ids)
}

fn spec<'a>(open: bool, budget: Option<usize>, force: &'a [u32]) -> Thinking<'a> {
    Thinking {
        open_in_prompt: open,
        open: "<think>",
        close: "</think>",
        budget,
        force,
    }
}

const OPTS: GenOptions = GenOptions {
    max_new_tokens: 6,
    stop_at_eos: false,
};

#[test]
fn the_switch_reaches_the_template_and_the_tags_are_text() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::load(&tiny(dir.path(), 1.0), DeviceRequest::Cpu).unwrap();
    assert!(e.chat_template().unwrap().has_thinking_switch());
    let (default, _) = prompt(&e, None);
    let (off, _) = prompt(&e, Some(false));
    assert!(
        default.ends_with("<|im_start|>assistant\n<think>\n"),
        "{default:?}"
    );
    assert!(off.ends_with("<think>\n\n</think>\n\n"), "{off:?}");
    let t = e.tokenizer();
    let ids = t.encode("<think>hi</think>").unwrap();
    assert_eq!(ids.len(), 4, "each tag is one token: {ids:?}");
    // User-defined tokens are text, kept when special tokens are left out (as Hugging Face decodes them).
    assert_eq!(t.decode(&ids, true).unwrap(), "<think>hi</think>");
    assert_eq!(
        t.decode(&t.encode("<|im_end|>").unwrap(), true).unwrap(),
        ""
    );
}

#[test]
fn a_thought_at_its_budget_is_closed_and_the_model_answers() {
    let dir = tempfile::tempdir().unwrap();
    // A zero `</think>` row: this model never closes its thought itself.
    let mut e = Engine::load(&tiny(dir.path(), 0.0), DeviceRequest::Cpu).unwrap();
    let (text, ids) = prompt(&e, None);
    assert!(text.ends_with("<think>\n"));
    let force = e.tokenizer().encode("\n</think>\n\n").unwrap();
    let g = e
        .generate_thinking(&ids, OPTS, &[], Some(spec(true, Some(5), &force)), &mut ())
        .unwrap();
    let t = g.thinking.expect("the prompt opened a block");
    assert_eq!((t.tokens, t.forced_at, t.closed), (5, Some(5), true));
    assert_eq!(
        g.tokens.len(),
        5 + OPTS.max_new_tokens,
        "the answer has its own budget"
    );
    assert_eq!(
        g.token_times.len(),
        g.tokens.len(),
        "forced ids are not generated tokens"
    );
    assert_eq!(g.stop, StopReason::Length);
    // Without a budget the thought runs on and `max_new_tokens` bounds it all.
    let g = e
        .generate_thinking(&ids, OPTS, &[], Some(spec(true, None, &force)), &mut ())
        .unwrap();
    let t = g.thinking.unwrap();
    assert_eq!((t.tokens, t.forced_at, t.closed), (6, None, false));
    assert_eq!(g.tokens.len(), 6);
    // The context must hold the prompt, the thought, the forced close and the answer.
    let room = e.max_positions() - ids.len();
    let too_long = e.generate_thinking(
        &ids,
        OPTS,
        &[],
        Some(spec(true, Some(room), &force)),
        &mut (),
    );
    assert!(too_long.is_err());
}

#[test]
fn a_thought_the_model_closes_ends_where_it_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::load(&tiny(dir.path(), 60.0), DeviceRequest::Cpu).unwrap();
    let (_, ids) = prompt(&e, None);
    let force = e.tokenizer().encode("\n</think>\n\n").unwrap();
    let g = e
        .generate_thinking(&ids, OPTS, &[], Some(spec(true, Some(20), &force)), &mut ())
        .unwrap();
    let t = g.thinking.unwrap();
    let close = e.tokenizer().encode("</think>").unwrap()[0];
    let at = g.tokens.iter().position(|&id| id == close).expect("closed");
    assert_eq!((t.tokens, t.forced_at, t.closed), (at + 1, None, true));
    assert_eq!(g.tokens.len(), at + 1 + OPTS.max_new_tokens);
}

#[test]
fn stop_strings_wait_for_the_thought_to_end_and_no_block_means_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::load(&tiny(dir.path(), 0.0), DeviceRequest::Cpu).unwrap();
    let (_, ids) = prompt(&e, None);
    let force = e.tokenizer().encode("\n</think>\n\n").unwrap();
    // The text of the first thinking token, as a stop string: without the watch it ends generation at once.
    let plain = e.generate_until(&ids, OPTS, &[], &mut ()).unwrap();
    let first = e.tokenizer().decode(&plain.tokens[..1], true).unwrap();
    if first.trim().is_empty() {
        return;
    }
    let until = vec![first];
    let g = e.generate_until(&ids, OPTS, &until, &mut ()).unwrap();
    assert_eq!((g.stop, g.tokens.len()), (StopReason::StopSequence(0), 1));
    let g = e
        .generate_thinking(
            &ids,
            OPTS,
            &until,
            Some(spec(true, Some(4), &force)),
            &mut (),
        )
        .unwrap();
    assert!(
        g.tokens.len() > 4,
        "the thought ran to its budget: {}",
        g.tokens.len()
    );
    // Thinking off: the prompt holds a closed empty block, the model does not open one.
    let (_, off) = prompt(&e, Some(false));
    let g = e
        .generate_thinking(&off, OPTS, &[], Some(spec(false, Some(4), &force)), &mut ())
        .unwrap();
    assert_eq!(g.thinking, None);
    assert_eq!(g.tokens.len(), OPTS.max_new_tokens);
}
