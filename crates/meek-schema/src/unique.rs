//! Refusing JSON objects that repeat a key.
//!
//! JSON leaves duplicate keys undefined; serde_json keeps the last one and has no option to refuse them. A result
//! file is untrusted, and one with `"decode_tokens_per_second"` twice reads differently in a viewer that keeps the
//! first, so a file that repeats a key in any object, at any depth, is refused with the key named.
//!
//! The check is a serde visitor that walks the document without building it, keeping one set of keys per open
//! object (so it costs one hash insert per key, never a comparison of every pair). It runs on serde_json's own
//! deserializer, whose nesting limit (128) still holds.

use std::collections::HashSet;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Longest part of a duplicate key quoted in the error.
const MAX_KEY_SHOWN: usize = 80;

/// Checks that `text` is one JSON value in which no object repeats a key. The error (with line and column) is
/// serde_json's for malformed JSON, or `duplicate key `KEY``.
pub fn check_unique_keys(text: &str) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    Unique.deserialize(&mut de)?;
    de.end()
}

/// Walks one value; for an object, checks its keys and walks each member.
#[derive(Clone, Copy)]
struct Unique;

impl<'de> DeserializeSeed<'de> for Unique {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key `{}`",
                    crate::shown(clipped(&key))
                )));
            }
            map.next_value_seed(self)?;
            seen.insert(key);
        }
        Ok(())
    }
}

/// `key` cut to [`MAX_KEY_SHOWN`] characters, so a megabyte-long key does not become a megabyte-long message.
fn clipped(key: &str) -> String {
    match key.char_indices().nth(MAX_KEY_SHOWN) {
        Some((at, _)) => format!("{}…", &key[..at]),
        None => key.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        check_unique_keys(r#"{"a": 1, "b": {"a": 2}, "c": [{"a": 1}, {"a": 2}]}"#).unwrap();
        let e = check_unique_keys(r#"{"a": 1, "a": 2}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key `a`"), "{e}");
        let e = check_unique_keys(r#"{"runs": [{"x": {"deep": 1, "deep": 1}}]}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key `deep`"), "{e}");
        assert_eq!(e.line(), 1);
        // Keys compare after unescaping, as a reader sees them.
        let e = check_unique_keys(r#"{"k": 1, "\u006b": 2}"#).unwrap_err();
        assert!(e.to_string().contains("`k`"), "{e}");
    }

    #[test]
    fn hostile_keys_are_shown_escaped_and_clipped() {
        let key = format!("\u{1b}]0;x\u{7}{}", "k".repeat(10_000));
        let text = format!(
            r#"{{"{0}": 1, "{0}": 2}}"#,
            key.replace('\u{1b}', "\\u001b").replace('\u{7}', "\\u0007")
        );
        let e = check_unique_keys(&text).unwrap_err().to_string();
        assert!(e.contains("\\x1b]0;x\\x07kkk"), "{e}");
        assert!(!e.contains('\u{1b}') && e.len() < 300, "{e}");
    }

    #[test]
    fn nesting_limit_and_syntax_errors_still_hold() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = check_unique_keys(&deep).unwrap_err();
        assert!(e.to_string().contains("recursion limit"), "{e}");
        assert!(check_unique_keys("{\"a\": 1} trailing").is_err());
        assert!(check_unique_keys("{\"a\": }").is_err());
    }

    #[test]
    fn many_keys_are_checked_quickly() {
        let members: Vec<String> = (0..200_000).map(|i| format!("\"k{i}\": {i}")).collect();
        let text = format!("{{{}}}", members.join(","));
        let t = std::time::Instant::now();
        check_unique_keys(&text).unwrap();
        assert!(t.elapsed().as_secs() < 10);
    }
}
