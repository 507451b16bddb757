//! The `template` target: chat templates come from model files shared by strangers, so any text must compile or
//! be refused, and render a short conversation or be refused, within meek-engine's template limits (fuel, output
//! size, filter sizes, deadline), without a panic.

use meek_engine::{ChatTemplate, Message};

/// Compiles `data` as a chat template and renders a system/user/assistant/user conversation, with and without
/// the generation prompt.
pub fn run(data: &[u8]) {
    let source = String::from_utf8_lossy(data);
    let Ok(t) = ChatTemplate::new(&source, "<s>", "</s>") else {
        return;
    };
    let messages = [
        Message::new("system", "You are terse."),
        Message::new("user", "What is 12 + 35?"),
        Message::new("assistant", "Answer: 47"),
        Message::new("user", "And 2 * 3?"),
    ];
    for generation_prompt in [true, false] {
        let _ = t.render(&messages, generation_prompt);
    }
}

/// Jinja tokens for the mutator.
pub const DICTIONARY: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{%-",
    "-%}",
    "{#",
    "#}",
    "for ",
    " in ",
    "endfor",
    "if ",
    "elif ",
    "else",
    "endif",
    "set ",
    "endset",
    "macro m(x)",
    "endmacro",
    "call m(1)",
    "endcall",
    "filter upper",
    "endfilter",
    "raw",
    "endraw",
    "namespace(a=1)",
    "loop.index0",
    "loop.first",
    "messages",
    "message['role']",
    "message['content']",
    "messages[1:]",
    "add_generation_prompt",
    "bos_token",
    "eos_token",
    "raise_exception('x')",
    "range(100000)",
    "range(",
    " * ",
    " ~ ",
    " + ",
    " ** ",
    " // ",
    " % ",
    "|join(', ')",
    "|replace('a', 'bb')",
    "|indent(4)",
    "|tojson(indent=2)",
    "|batch(3)",
    "|slice(2)",
    "|format(1)",
    "|trim",
    "|length",
    "|list",
    "|reverse",
    "|sort",
    "|string",
    ".strip()",
    ".split()",
    ".startswith('<')",
    ".join(messages)",
    ".replace('x', 'yy')",
    ".format(1)",
    "is string",
    "is defined",
    "'",
    "\"",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    "\n",
];
