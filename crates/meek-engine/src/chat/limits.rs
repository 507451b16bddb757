//! Limits on chat templates, which come from model files shared by strangers: a template is a program, and a
//! hostile one can loop for hours (three nested `range(100000)`), print gigabytes, or ask one filter for a
//! terabyte (`indent(10**12)`). Real chat templates are a few KB of source, run a few thousand instructions and
//! print a few KB, so every cap below is hundreds of times what they need:
//!
//! - [`MAX_SOURCE`] bytes of template source, checked before minijinja parses it (its parser already refuses
//!   nesting deeper than 150).
//! - [`FUEL`] instructions per render (minijinja's fuel): bounds loops, whatever their ranges.
//! - [`MAX_OUTPUT`] bytes of rendered prompt, written through [`CappedWriter`], so the text is refused as it grows,
//!   not after.
//! - [`DEADLINE`] of wall time per render, for the few instructions fuel counts as one but that take long
//!   (minijinja's `"x" * 100000000` makes 100 MB in one instruction; string concatenation can double a value per
//!   instruction).
//! - The built-in filters and Python string methods that size their result from an argument (`join`, `replace`,
//!   `indent`, `tojson`, `batch`, `slice`, `format`, `str.join`, `str.replace`, `str.format`) are wrapped so a
//!   result over [`MAX_VALUE`] bytes, or a width or count over [`MAX_WIDTH`], is refused before it is allocated.
//!   minijinja itself refuses ranges over 100,000 items and repeated strings over 100 MB.

use std::fmt::Write as _;
use std::time::Duration;

use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

/// Largest template source accepted: real templates are 1–20 KB (tool-calling ones the largest).
pub const MAX_SOURCE: usize = 256 << 10;
/// Instructions one render may run: SmolLM2's template with a 9-turn few-shot prompt runs a few hundred.
pub const FUEL: u64 = 1_000_000;
/// Largest rendered prompt: 1 MiB is ~250k tokens, beyond the context of every model meekbench measures, and far
/// beyond suite prompts (few-shot GSM8K prompts are a few KB).
pub const MAX_OUTPUT: usize = 1 << 20;
/// Wall time one render may take: real templates render in well under a millisecond.
pub const DEADLINE: Duration = Duration::from_secs(2);
/// Largest string one wrapped filter or method may produce (the whole output is capped at [`MAX_OUTPUT`] anyway).
pub const MAX_VALUE: usize = MAX_OUTPUT;
/// Largest width or count given to `indent`, `tojson(indent=)`, `batch`, `slice` or a `format` field (real
/// templates use 2 or 4).
pub const MAX_WIDTH: usize = 1000;

/// What to tell the user when a template trips a limit: the template is the model file's, not theirs.
pub const ADVICE: &str = "real chat templates stay far below it, so this model file's template is broken or \
     hostile; use another file of the model, or one whose template comes from the model's publisher";

/// An [`std::io::Write`] that refuses to grow past `cap` bytes; [`CappedWriter::overflowed`] tells why a write
/// failed.
#[derive(Debug)]
pub struct CappedWriter {
    buf: Vec<u8>,
    cap: usize,
    overflowed: bool,
}

impl CappedWriter {
    /// An empty writer holding at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            cap,
            overflowed: false,
        }
    }

    /// Whether a write was refused for going past the cap.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The bytes written.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.cap {
            self.overflowed = true;
            return Err(std::io::Error::other("output cap reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts the bytes of a value's text without keeping them, and stops once past [`MAX_VALUE`].
struct Counter(usize);

impl std::fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 = self.0.saturating_add(s.len());
        if self.0 > MAX_VALUE {
            Err(std::fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The length of `v` as text, or None when it is over [`MAX_VALUE`].
fn text_len(v: &Value) -> Option<usize> {
    if let Some(s) = v.as_str() {
        return (s.len() <= MAX_VALUE).then_some(s.len());
    }
    let mut c = Counter(0);
    write!(c, "{v}").ok().map(|_| c.0)
}

fn too_large(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "{what} would be over {MAX_VALUE} bytes, the cap on one value in a chat template; {ADVICE}"
        ),
    )
}

/// Refuses joining `items` with `sep` when the result would be over [`MAX_VALUE`].
fn check_join(items: &Value, sep: usize) -> Result<(), Error> {
    if items.kind() == ValueKind::String {
        // `"abc"|join(", ")` joins the characters.
        let n = items.as_str().map_or(0, |s| s.chars().count());
        return check_total(
            items.as_str().map_or(0, str::len),
            n,
            sep,
            "a joined string",
        );
    }
    let mut total = 0usize;
    for (i, item) in items.try_iter()?.enumerate() {
        let len = text_len(&item).ok_or_else(|| too_large("a joined string"))?;
        total = total
            .saturating_add(len)
            .saturating_add(if i > 0 { sep } else { 0 });
        if total > MAX_VALUE {
            return Err(too_large("a joined string"));
        }
    }
    Ok(())
}

fn check_total(len: usize, n: usize, sep: usize, what: &str) -> Result<(), Error> {
    let total = len.saturating_add(n.saturating_sub(1).saturating_mul(sep));
    if total > MAX_VALUE {
        Err(too_large(what))
    } else {
        Ok(())
    }
}

/// Refuses `s.replace(from, to)` (at most `count` times) when the result would be over [`MAX_VALUE`].
fn check_replace(s: &str, from: &str, to: &str, count: Option<usize>) -> Result<(), Error> {
    if to.len() <= from.len() {
        return Ok(());
    }
    let hits = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from).count()
    };
    let hits = count.map_or(hits, |c| c.min(hits));
    let total = s
        .len()
        .saturating_add(hits.saturating_mul(to.len() - from.len()));
    if total > MAX_VALUE {
        Err(too_large("a replaced string"))
    } else {
        Ok(())
    }
}

/// Refuses any integer argument (positional or keyword, after the filtered value) over [`MAX_WIDTH`].
fn check_widths(name: &str, args: &[Value]) -> Result<(), Error> {
    let mut numbers = Vec::new();
    for a in args.iter().skip(1) {
        if a.is_kwargs() {
            for key in a.try_iter()? {
                numbers.push(a.get_item(&key)?);
            }
        } else {
            numbers.push(a.clone());
        }
    }
    for n in numbers {
        if n.kind() == ValueKind::Number && n.as_i64().is_none_or(|n| n > MAX_WIDTH as i64) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "`{name}` was given {n}, over {MAX_WIDTH}, the cap on a width or count in a chat template; \
                     {ADVICE}"
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses a format string with a field wider than [`MAX_WIDTH`] (`%99999999d`, `{:>99999999}`).
fn check_format(fmt: &str) -> Result<(), Error> {
    let longest = fmt
        .split(|c: char| !c.is_ascii_digit())
        .map(|run| run.trim_start_matches('0'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    if longest > MAX_WIDTH.to_string().len() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "a format string asks for a field over {MAX_WIDTH} wide, the cap in a chat template; {ADVICE}"
            ),
        ));
    }
    Ok(())
}

/// Registers filter `name` as `builtin` behind `check`.
fn guard(
    env: &mut Environment<'static>,
    name: &'static str,
    builtin: Value,
    check: fn(&[Value]) -> Result<(), Error>,
) {
    env.add_filter(name, move |state: &State, args: Rest<Value>| {
        check(&args)?;
        builtin.call(state, &args)
    });
}

fn str_arg(args: &[Value], i: usize) -> &str {
    args.get(i).and_then(Value::as_str).unwrap_or("")
}

/// Wraps the size-making built-in filters and the Python string methods in their checks.
pub fn install(env: &mut Environment<'static>) {
    use minijinja::filters as f;
    guard(env, "join", Value::from_function(f::join), |a| {
        let sep = a.get(1).and_then(text_len).unwrap_or(0);
        check_join(a.first().unwrap_or(&Value::UNDEFINED), sep)
    });
    guard(env, "replace", Value::from_function(f::replace), |a| {
        check_replace(str_arg(a, 0), str_arg(a, 1), str_arg(a, 2), None)
    });
    guard(env, "indent", Value::from_function(f::indent), |a| {
        check_widths("indent", a)?;
        // Each line gains at most MAX_WIDTH spaces.
        let s = str_arg(a, 0);
        let lines = s.matches('\n').count() + 1;
        check_total(
            s.len() + lines.saturating_mul(MAX_WIDTH),
            1,
            0,
            "an indented string",
        )
    });
    guard(env, "tojson", Value::from_function(f::tojson), |a| {
        check_widths("tojson", a)
    });
    guard(env, "batch", Value::from_function(f::batch), |a| {
        check_widths("batch", a)
    });
    guard(env, "slice", Value::from_function(f::slice), |a| {
        check_widths("slice", a)
    });
    guard(env, "format", Value::from_function(f::format), |a| {
        check_format(str_arg(a, 0))
    });
    env.set_unknown_method_callback(|state, value, method, args| {
        if let Some(s) = value.as_str() {
            match method {
                "join" => check_join(args.first().unwrap_or(&Value::UNDEFINED), s.len())?,
                "replace" => check_replace(
                    s,
                    str_arg(args, 0),
                    str_arg(args, 1),
                    args.get(2)
                        .and_then(Value::as_i64)
                        .and_then(|c| usize::try_from(c).ok()),
                )?,
                "format" => check_format(s)?,
                _ => {}
            }
        }
        minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
    });
}

#[cfg(test)]
mod tests {
    use super::super::{ChatTemplate, Message};
    use super::*;

    fn render(src: &str) -> Result<String, String> {
        ChatTemplate::new(src, "<s>", "</s>")?.render(&[Message::new("user", "hi")], true)
    }

    /// Issue #18 item 3: every hostile template is refused, quickly, naming the limit it hit.
    #[test]
    fn hostile_templates_are_refused_naming_the_limit() {
        let cases: &[(&str, &str)] = &[
            // Three nested loops: 10^15 iterations.
            (
                "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}x\
                 {% endfor %}{% endfor %}{% endfor %}",
                "instructions",
            ),
            // The same without output, so only fuel sees it.
            (
                "{% for a in range(100000) %}{% for b in range(100000) %}{% set c = a + b %}{% endfor %}{% endfor %}",
                "instructions",
            ),
            // 10 MB of output.
            (
                "{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}",
                "output",
            ),
            ("{{ 'x' * 100000000 }}", "output"),
            ("{{ 'x' * 1000000000 }}", "too large"),
            ("{{ range(100000000000) }}", "too many"),
            ("{{ range(100000)|join('x' * 1000) }}", "joined"),
            ("{{ ('x' * 1000)|join('y' * 100000) }}", "joined"),
            (
                "{{ 'y'.join(range(100000)|map('string')) * 100 }}",
                "output",
            ),
            (
                "{{ ('x' * 100000)|replace('x', 'yyyyyyyyyyyyyyyyyyyy') }}",
                "replaced",
            ),
            (
                "{{ ('x' * 100000).replace('', 'yyyyyyyyyyyy') }}",
                "replaced",
            ),
            ("{{ 'x'|indent(1000000000000) }}", "width"),
            ("{{ messages|tojson(indent=1000000000000) }}", "width"),
            ("{{ range(10)|batch(1000000000000)|list }}", "width"),
            ("{{ range(10)|slice(1000000000000)|list }}", "width"),
            ("{{ '%999999999999d'|format(1) }}", "format"),
            ("{{ '{:>999999999999}'.format(1) }}", "format"),
            // Doubling a string: 32 MB in ~100 instructions, caught at output. (40 doublings would reach 1 TB
            // faster than any deadline: see the module docs.)
            (
                "{% set ns = namespace(s='x') %}{% for i in range(25) %}{% set ns.s = ns.s ~ ns.s %}\
                 {% endfor %}{{ ns.s }}",
                "output",
            ),
        ];
        for (src, want) in cases {
            let err = render(src).expect_err(src);
            assert!(err.contains(want), "{src}: {err}");
            assert!(
                err.contains("template") || err.contains("render"),
                "{src}: {err}"
            );
        }
    }

    #[test]
    fn sources_too_big_or_too_deep_are_refused_at_compile() {
        let big = "x".repeat(MAX_SOURCE + 1);
        let e = ChatTemplate::new(&big, "", "").unwrap_err();
        assert!(e.contains(&MAX_SOURCE.to_string()), "{e}");
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
        assert!(ChatTemplate::new(&deep, "", "").is_err());
        let nested = format!(
            "{}x{}",
            "{% if 1 %}".repeat(5000),
            "{% endif %}".repeat(5000)
        );
        assert!(ChatTemplate::new(&nested, "", "").is_err());
        // Deep recursion at render time is minijinja's (500 levels), on the render thread's large stack.
        let recursive = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
        assert!(render(recursive).is_err());
    }

    #[test]
    fn after_a_deadline_the_template_refuses_at_once() {
        let t = ChatTemplate::new(
            // Not a constant, so minijinja cannot fold it at compile time: 100 MB per iteration.
            "{% for i in range(100000) %}{% set s = 'x' * (99900000 + i) %}{{ s|length }}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        let first = t.render(&[], false).unwrap_err();
        assert!(
            first.contains("instructions") || first.contains(" s,"),
            "{first}"
        );
        if first.contains(" s,") {
            let again = t.render(&[], false).unwrap_err();
            assert_eq!(again, first);
        }
    }

    #[test]
    fn the_capped_writer_stops_at_its_cap() {
        use std::io::Write;
        let mut w = CappedWriter::new(4);
        w.write_all(b"abcd").unwrap();
        assert!(!w.overflowed());
        assert!(w.write_all(b"e").is_err());
        assert!(w.overflowed());
        assert_eq!(w.into_inner(), b"abcd");
    }
}
