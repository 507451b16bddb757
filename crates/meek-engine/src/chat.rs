//! Chat templates: the model's own Jinja template (GGUF `tokenizer.chat_template`), rendered with minijinja the
//! way Hugging Face renders it (trim_blocks, lstrip_blocks, Python string methods, `raise_exception`).
//!
//! Templates come from model files shared by strangers, so they run under [`limits`]: source size, fuel, output
//! size, size-making filters, and a wall-time deadline. The render runs on its own thread so the deadline holds
//! even inside one long minijinja instruction (and Ctrl-C is seen by the caller); a render past the deadline is
//! abandoned (it ends with the process) and the template refuses every later render at once.

pub mod limits;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use minijinja::{Environment, Error, ErrorKind, context};
use serde::Serialize;

use limits::{ADVICE, CappedWriter, DEADLINE, FUEL, MAX_OUTPUT, MAX_SOURCE};

/// Stack of the render thread: minijinja recurses up to 500 levels (macros, nested loops), as on a main thread.
const RENDER_STACK: usize = 16 << 20;

/// One chat message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message from `role`.
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Arc<Environment<'static>>,
    bos: String,
    eos: String,
    /// Whether the template reads `enable_thinking` (Qwen3's switch between thinking and answering at once).
    thinking_switch: bool,
    /// Set once a render ran past [`DEADLINE`]: its thread may still be running, so no other is started.
    timed_out: Arc<AtomicBool>,
}

impl ChatTemplate {
    /// Compiles `source`; `bos` and `eos` are the texts of the model's special tokens.
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<Self, String> {
        if source.len() > MAX_SOURCE {
            return Err(format!(
                "the chat template is {} bytes, over the {MAX_SOURCE}-byte cap on a template's source; {ADVICE}",
                source.len()
            ));
        }
        let thinking_switch = source.contains("enable_thinking");
        // minijinja folds constant expressions while compiling (`'x' * 100000000`), so compiling is bounded by the
        // deadline too.
        let source = source.to_string();
        let env = on_worker(move || -> Result<Environment<'static>, String> {
            let mut env = Environment::new();
            env.set_trim_blocks(true);
            env.set_lstrip_blocks(true);
            env.set_fuel(Some(FUEL));
            limits::install(&mut env);
            env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, msg))
            });
            env.add_template_owned("chat".to_string(), source)
                .map_err(|e| format!("the chat template does not compile: {e}"))?;
            Ok(env)
        })
        .map_err(|late| late.to_string().replace("render", "compile"))??;
        Ok(Self {
            env: Arc::new(env),
            bos: bos.to_string(),
            eos: eos.to_string(),
            thinking_switch,
            timed_out: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Whether the template has a thinking switch (`enable_thinking`) that [`render_thinking`](Self::render_thinking)
    /// can set.
    pub fn has_thinking_switch(&self) -> bool {
        self.thinking_switch
    }

    /// Renders a conversation; with `add_generation_prompt` the text ends where the assistant's answer begins.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        self.render_thinking(messages, add_generation_prompt, None)
    }

    /// [`render`](Self::render) with `enable_thinking` set to `thinking` when it is `Some` (left undefined, the
    /// template's default, when `None`).
    pub fn render_thinking(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        thinking: Option<bool>,
    ) -> Result<String, String> {
        if self.timed_out.load(Ordering::SeqCst) {
            return Err(Late::Deadline.to_string());
        }
        let env = Arc::clone(&self.env);
        let (messages, bos, eos) = (messages.to_vec(), self.bos.clone(), self.eos.clone());
        on_worker(move || {
            render_capped(&env, &messages, add_generation_prompt, &bos, &eos, thinking)
        })
        .map_err(|late| {
            if late == Late::Deadline {
                self.timed_out.store(true, Ordering::SeqCst);
            }
            late.to_string()
        })?
    }
}

/// Why a worker gave no answer.
#[derive(Debug, PartialEq, Eq)]
enum Late {
    Deadline,
    Panicked,
    NoThread(String),
}

impl std::fmt::Display for Late {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Late::Deadline => write!(
                f,
                "the chat template failed to render: it ran for over {} s, the cap on one render; {ADVICE}",
                DEADLINE.as_secs()
            ),
            Late::Panicked => write!(
                f,
                "the chat template failed to render: the template engine panicked on it"
            ),
            Late::NoThread(e) => write!(f, "cannot start the chat template's thread: {e}"),
        }
    }
}

/// Runs `job` on its own thread and waits at most [`DEADLINE`]; a late job is abandoned (it ends with the process).
fn on_worker<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Result<T, Late> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("chat-template".into())
        .stack_size(RENDER_STACK)
        .spawn(move || {
            let _ = tx.send(job());
        })
        .map_err(|e| Late::NoThread(e.to_string()))?;
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => Ok(out),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(Late::Deadline),
        // The thread ended without sending: it panicked inside minijinja.
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Late::Panicked),
    }
}

/// Renders into a writer capped at [`MAX_OUTPUT`], naming the limit a failure hit.
fn render_capped(
    env: &Environment<'static>,
    messages: &[Message],
    add_generation_prompt: bool,
    bos: &str,
    eos: &str,
    thinking: Option<bool>,
) -> Result<String, String> {
    let t = env.get_template("chat").map_err(|e| e.to_string())?;
    let mut out = CappedWriter::new(MAX_OUTPUT);
    let switch = thinking.map_or_else(|| context! {}, |t| context! { enable_thinking => t });
    let rendered = t.render_captured_to(
        context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos,
            eos_token => eos,
            ..switch
        },
        &mut out,
    );
    match rendered {
        Ok(_) => String::from_utf8(out.into_inner())
            .map_err(|e| format!("the chat template rendered text that is not UTF-8: {e}")),
        Err(_) if out.overflowed() => Err(format!(
            "the chat template failed to render: its output went over {MAX_OUTPUT} bytes, the cap on a \
             rendered prompt; {ADVICE}"
        )),
        Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(format!(
            "the chat template failed to render: it ran over {FUEL} instructions, the cap on one render; {ADVICE}"
        )),
        Err(e) => Err(format!("the chat template failed to render: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_template_renders_like_transformers() {
        let t = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
        let out = t
            .render(&[Message::new("user", "What is 12 + 35?")], true)
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nWhat is 12 + 35?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_methods_and_raise_exception_work() {
        let src = "{% if messages[0]['role'] == 'bad' %}{{ raise_exception('roles must alternate') }}{% endif %}\
                   {{ bos_token }}{{ messages[0]['content'].strip() | upper }}";
        let t = ChatTemplate::new(src, "<s>", "</s>").unwrap();
        assert_eq!(
            t.render(&[Message::new("user", "  hi  ")], false).unwrap(),
            "<s>HI"
        );
        let err = t.render(&[Message::new("bad", "x")], false).unwrap_err();
        assert!(err.contains("roles must alternate"), "{err}");
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
    }

    const GEMMA3: &str = include_str!("../../../fuzz/corpus/template/gemma3.jinja");

    #[test]
    fn gemma3_template_folds_the_system_prompt_into_the_first_turn() {
        let t = ChatTemplate::new(GEMMA3, "<bos>", "<eos>").unwrap();
        let out = t
            .render(
                &[
                    Message::new("system", "Be brief."),
                    Message::new("user", "What is 12 + 35?"),
                    Message::new("assistant", "47"),
                    Message::new("user", "And 2 * 3?"),
                ],
                true,
            )
            .unwrap();
        assert_eq!(
            out,
            "<bos><start_of_turn>user\nBe brief.\n\nWhat is 12 + 35?<end_of_turn>\n\
             <start_of_turn>model\n47<end_of_turn>\n<start_of_turn>user\nAnd 2 * 3?<end_of_turn>\n\
             <start_of_turn>model\n"
        );
        let err = t
            .render(&[Message::new("assistant", "x")], false)
            .unwrap_err();
        assert!(err.contains("roles must alternate"), "{err}");
    }

    /// A long few-shot conversation stays far inside every limit.
    #[test]
    fn real_templates_with_long_conversations_stay_inside_the_limits() {
        let mut turns = vec![Message::new("system", &"rules ".repeat(500))];
        for i in 0..50 {
            turns.push(Message::new(
                "user",
                &format!("question {i} {}", "x".repeat(2000)),
            ));
            turns.push(Message::new("assistant", &format!("Answer: {i}")));
        }
        turns.push(Message::new("user", "last"));
        for src in [SMOLLM2, GEMMA3] {
            let out = ChatTemplate::new(src, "<s>", "</s>")
                .unwrap()
                .render(&turns, true)
                .unwrap();
            assert!(out.len() > 100_000, "{}", out.len());
        }
    }
}
