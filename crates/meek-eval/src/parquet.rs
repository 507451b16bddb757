//! External suites from parquet files, the container Hugging Face datasets come in (`openai/gsm8k` is
//! `main/test-00000-of-00001.parquet`, snappy-compressed by pyarrow), so a suite can be the file a user has
//! without converting it. Columns map as JSONL keys do ([`Format`]): `question` and `answer` for GSM8K; `id`,
//! `prompt`, `answer` and optional `family`, `steps`, `solution` for plain suites; every check after decoding is
//! [`record`](crate::record)'s, so an item is the same from either container.
//!
//! Parquet files are untrusted like any suite file, and the reader (the `parquet` crate's low-level row API, no
//! arrow) believes what a file declares: it allocates a page's declared decoded size and a dictionary's declared
//! entry count before decoding them. So before any row is read the file is capped ([`MAX_FILE`]) and read whole,
//! every column chunk to be read must lie inside it, and each of its page headers is read here and checked: sizes
//! against the chunk and [`MAX_PAGE`], all pages' decoded sizes against [`MAX_DECODED`], dictionaries against
//! [`MAX_DICTIONARY`], encodings against those pyarrow writes (plain, dictionary). Codecs: uncompressed and
//! snappy (pyarrow's default); others are refused by name. A panic in the crate becomes an error naming the file.
//! Rows are then read one at a time and stop at `limit` or past [`MAX_ITEMS`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use bytes::Bytes;
use parquet::basic::{Compression, ConvertedType, LogicalType, Repetition, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::{Type, TypePtr};

use crate::Item;
use crate::record::field_len as field;
pub use crate::record::{Format, LoadError, MAX_FIELD, MAX_FILE, MAX_ITEMS};
use crate::record::{Record, Suite, os_reason, too_many};

/// Largest decoded page: pyarrow writes pages of about 1 MB.
pub const MAX_PAGE: u64 = 16 << 20;
/// Largest sum of the decoded sizes of a file's pages: text compresses a few times at most with snappy.
pub const MAX_DECODED: u64 = 4 * MAX_FILE;
/// Most entries in one dictionary page: a dictionary holds at most a row group's distinct values.
pub const MAX_DICTIONARY: u64 = 4 * MAX_ITEMS as u64;

type Bad = (usize, String);

/// Reads a parquet suite file; every bad row is an error naming the file, the row and the column. At most
/// `limit` items (all when None). Cheap and free of side effects, like [`jsonl::load`](crate::jsonl::load).
pub fn load(path: &Path, format: Format, limit: Option<usize>) -> Result<Vec<Item>, LoadError> {
    let err = |(line, message): Bad| LoadError {
        path: path.display().to_string(),
        line,
        row: true,
        message,
    };
    let bytes = read_capped(path).map_err(|m| err((0, m)))?;
    parse(bytes, format, limit).map_err(err)
}

/// Parses the bytes of a parquet file (see [`load`], whose limits apply); errors carry the 1-based row number, 0
/// for the file as a whole.
pub fn parse(
    bytes: Bytes,
    format: Format,
    limit: Option<usize>,
) -> Result<Vec<Item>, (usize, String)> {
    if bytes.len() as u64 > MAX_FILE {
        return Err((0, over_file()));
    }
    match catch_unwind(AssertUnwindSafe(|| read(bytes, format, limit))) {
        Ok(r) => r,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err((
                0,
                format!(
                    "the parquet reader failed on this file ({}); it is corrupt or written in a way this reader \
                     does not handle: download it again, or convert it to JSONL",
                    short(&why)
                ),
            ))
        }
    }
}

fn over_file() -> String {
    format!("the file is over {MAX_FILE} bytes, the cap on a suite file")
}

/// The whole file, when it is a regular file of at most [`MAX_FILE`] bytes.
fn read_capped(path: &Path) -> Result<Bytes, String> {
    use std::io::Read;
    // A FIFO or device would block or never end: only regular files (after symlinks) are suites.
    let meta = fs_err::metadata(path).map_err(|e| os_reason(&e))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE {
        return Err(over_file());
    }
    let file = fs_err::File::open(path).map_err(|e| os_reason(&e))?;
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| os_reason(&e))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(over_file());
    }
    Ok(Bytes::from(buf))
}

/// A reader's error, cut short: some quote the bytes they could not decode.
fn short(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn corrupt(e: impl std::fmt::Display) -> String {
    format!(
        "not a readable parquet file ({}); it may be truncated or not parquet at all: download it again",
        short(&e.to_string())
    )
}

/// The columns of `format`: name, whether it must be present and non-null, and what it holds.
fn columns(format: Format) -> &'static [(&'static str, bool, Kind)] {
    match format {
        Format::Gsm8k => &[("question", true, Kind::Text), ("answer", true, Kind::Text)],
        Format::Plain => &[
            ("id", true, Kind::TextOrNumber),
            ("prompt", true, Kind::Text),
            ("answer", true, Kind::TextOrNumber),
            ("family", false, Kind::Text),
            ("steps", false, Kind::Count),
            ("solution", false, Kind::Text),
        ],
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// A string column.
    Text,
    /// A string or a number (JSON's `"id": 1` or `"id": "a"`).
    TextOrNumber,
    /// A non-negative integer.
    Count,
}

impl Kind {
    fn wanted(self) -> &'static str {
        match self {
            Kind::Text => "text (a string column)",
            Kind::TextOrNumber => "text or a number (a string or numeric column)",
            Kind::Count => "a whole number (an integer column)",
        }
    }

    /// Whether a column of `t` can hold this kind.
    fn fits(self, t: &Type) -> bool {
        let text = t.get_physical_type() == PhysicalType::BYTE_ARRAY
            && matches!(
                t.get_basic_info().converted_type(),
                ConvertedType::UTF8 | ConvertedType::NONE
            )
            && matches!(
                t.get_basic_info().logical_type_ref(),
                None | Some(LogicalType::String)
            );
        let integer = matches!(
            t.get_physical_type(),
            PhysicalType::INT32 | PhysicalType::INT64
        ) && !matches!(
            t.get_basic_info().converted_type(),
            ConvertedType::DECIMAL
                | ConvertedType::DATE
                | ConvertedType::TIME_MILLIS
                | ConvertedType::TIME_MICROS
                | ConvertedType::TIMESTAMP_MILLIS
                | ConvertedType::TIMESTAMP_MICROS
                | ConvertedType::INTERVAL
        ) && matches!(
            t.get_basic_info().logical_type_ref(),
            None | Some(LogicalType::Integer { .. })
        );
        let float = matches!(
            t.get_physical_type(),
            PhysicalType::FLOAT | PhysicalType::DOUBLE
        ) && t.get_basic_info().logical_type_ref().is_none();
        match self {
            Kind::Text => text,
            Kind::TextOrNumber => text || integer || float,
            Kind::Count => integer,
        }
    }
}

/// What a column's type is, for messages.
fn describe(t: &Type) -> String {
    if !t.is_primitive() {
        return "a nested group".into();
    }
    let mut s = format!("{:?}", t.get_physical_type());
    if let Some(l) = t.get_basic_info().logical_type_ref() {
        s.push_str(&format!(" ({l:?})"));
    } else if t.get_basic_info().converted_type() != ConvertedType::NONE {
        s.push_str(&format!(" ({})", t.get_basic_info().converted_type()));
    }
    s
}

fn read(bytes: Bytes, format: Format, limit: Option<usize>) -> Result<Vec<Item>, Bad> {
    let reader = SerializedFileReader::new(bytes.clone()).map_err(|e| (0, corrupt(e)))?;
    let meta = reader.metadata();
    let wanted = schema(meta, format)?;
    pages(meta, &bytes, &wanted)?;
    let rows = meta.file_metadata().num_rows();
    if rows < 0 {
        return Err((0, corrupt(format!("{rows} rows"))));
    }
    if limit.is_none() && rows as u64 > MAX_ITEMS as u64 {
        return Err((0, format!("the file has {rows} rows: {}", too_many())));
    }
    let projection = Type::group_type_builder(meta.file_metadata().schema().name())
        .with_fields(wanted.iter().map(|(_, t)| t.clone()).collect())
        .build()
        .map_err(|e| (0, corrupt(e)))?;
    let iter = reader
        .get_row_iter(Some(projection))
        .map_err(|e| (0, corrupt(e)))?;
    let mut suite = Suite::new(limit);
    for (i, row) in iter.enumerate() {
        let n = i + 1;
        if suite.done() {
            break;
        }
        suite.room(n)?;
        let row = row.map_err(|e| (n, corrupt(e)))?;
        let mut values: Vec<Option<Field>> = columns(format).iter().map(|_| None).collect();
        for (name, value) in row.into_columns() {
            if let Some(k) = columns(format).iter().position(|(c, ..)| *c == name) {
                values[k] = Some(value);
            }
        }
        let record = record(n, format, values)?;
        if !suite.push(n, record)? {
            break;
        }
    }
    suite.finish()
}

/// The file's columns for `format`, in [`columns`]' order (absent optional ones left out); refuses a missing
/// column, a column of the wrong type and, for plain suites, a column that is not one of them (as JSONL refuses
/// an unknown key).
fn schema(meta: &ParquetMetaData, format: Format) -> Result<Vec<(&'static str, TypePtr)>, Bad> {
    let fields = meta.file_metadata().schema().get_fields();
    let layout = match format {
        Format::Gsm8k => "a gsm8k suite",
        Format::Plain => "a plain suite",
    };
    let mut out = Vec::new();
    for &(name, required, kind) in columns(format) {
        let Some(t) = fields.iter().find(|f| f.name() == name) else {
            if required {
                return Err((
                    0,
                    format!(
                        "no column `{name}`; {layout} has columns {} (the file has {})",
                        names(columns(format).iter().map(|c| c.0)),
                        names(fields.iter().map(|f| f.name()))
                    ),
                ));
            }
            continue;
        };
        if !t.is_primitive()
            || t.get_basic_info().repetition() == Repetition::REPEATED
            || !kind.fits(t)
        {
            return Err((
                0,
                format!(
                    "column `{name}` holds {}{}; in {layout} it is {}",
                    describe(t),
                    if t.get_basic_info().has_repetition()
                        && t.get_basic_info().repetition() == Repetition::REPEATED
                    {
                        " lists"
                    } else {
                        ""
                    },
                    kind.wanted()
                ),
            ));
        }
        out.push((name, t.clone()));
    }
    if format == Format::Plain
        && let Some(f) = fields
            .iter()
            .find(|f| !columns(format).iter().any(|c| c.0 == f.name()))
    {
        return Err((
            0,
            format!(
                "unknown column `{}`; {layout} has columns {}",
                f.name(),
                names(columns(format).iter().map(|c| c.0))
            ),
        ));
    }
    Ok(out)
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The record of row `n` from its values, in [`columns`]' order (None: the column is absent).
fn record(n: usize, format: Format, values: Vec<Option<Field>>) -> Result<Record, Bad> {
    let mut texts = columns(format)
        .iter()
        .zip(values)
        .map(|(&(name, required, kind), v)| value(n, name, required, kind, v));
    let mut next = || texts.next().unwrap_or(Ok(Value::None));
    Ok(match format {
        Format::Gsm8k => Record::Gsm8k {
            question: next()?.text(),
            answer: next()?.text(),
        },
        Format::Plain => Record::Plain {
            id: next()?.text(),
            prompt: next()?.text(),
            answer: next()?.text(),
            family: next()?.optional(),
            steps: match next()? {
                Value::Count(c) => Some(c),
                _ => None,
            },
            solution: next()?.optional(),
        },
    })
}

enum Value {
    None,
    Text(String),
    Count(u32),
}

impl Value {
    fn text(self) -> String {
        match self {
            Value::Text(s) => s,
            Value::Count(c) => c.to_string(),
            Value::None => String::new(),
        }
    }

    fn optional(self) -> Option<String> {
        match self {
            Value::None => None,
            v => Some(v.text()),
        }
    }
}

/// Column `name` of row `n`.
fn value(n: usize, name: &str, required: bool, kind: Kind, v: Option<Field>) -> Result<Value, Bad> {
    let wrong = |what: &str| {
        (
            n,
            format!("column `{name}` holds {what}, not {}", kind.wanted()),
        )
    };
    let Some(v) = v else {
        return Ok(Value::None);
    };
    let number = |s: String| {
        if kind == Kind::Text {
            Err(wrong("a number"))
        } else {
            Ok(Value::Text(s))
        }
    };
    let count = |x: i128| {
        if kind == Kind::Count {
            u32::try_from(x).map(Value::Count).map_err(|_| {
                (
                    n,
                    format!("`{name}` is {x}, not a count of steps (0 to {})", u32::MAX),
                )
            })
        } else {
            number(x.to_string())
        }
    };
    match v {
        Field::Null if required => Err((
            n,
            format!("`{name}` is null; every row needs a value in column `{name}`"),
        )),
        Field::Null => Ok(Value::None),
        Field::Str(s) if kind != Kind::Count => Ok(Value::Text(s)),
        Field::Bytes(b) if kind != Kind::Count => {
            // Checked before decoding: a huge value is refused by its size, not copied.
            field(n, name, b.len())?;
            String::from_utf8(b.data().to_vec())
                .map(Value::Text)
                .map_err(|e| (n, format!("`{name}` is not UTF-8 text: {e}")))
        }
        Field::Byte(x) => count(x.into()),
        Field::Short(x) => count(x.into()),
        Field::Int(x) => count(x.into()),
        Field::Long(x) => count(x.into()),
        Field::UByte(x) => count(x.into()),
        Field::UShort(x) => count(x.into()),
        Field::UInt(x) => count(x.into()),
        Field::ULong(x) => count(x.into()),
        Field::Float(x) if kind == Kind::TextOrNumber => number(x.to_string()),
        Field::Double(x) if kind == Kind::TextOrNumber => number(x.to_string()),
        other => Err(wrong(
            &format!("{other:?}").chars().take(40).collect::<String>(),
        )),
    }
}

/// Checks every column chunk and page header of the `wanted` columns against the file and the caps, before the
/// reader allocates what they declare (the other columns are never read).
fn pages(meta: &ParquetMetaData, bytes: &[u8], wanted: &[(&str, TypePtr)]) -> Result<(), Bad> {
    let len = bytes.len() as u64;
    let mut decoded = 0u64;
    for (g, group) in meta.row_groups().iter().enumerate() {
        let read = group.columns().iter().filter(|c| {
            let parts = c.column_path().parts();
            parts.len() == 1 && wanted.iter().any(|(name, _)| parts[0] == *name)
        });
        for c in read {
            let column = c.column_path().string();
            let bad = |m: String| (0, format!("column `{column}`, row group {g}: {m}"));
            match c.compression() {
                Compression::UNCOMPRESSED | Compression::SNAPPY => {}
                other => {
                    return Err(bad(format!(
                        "compressed with {other}; suites read snappy (pyarrow's default) or uncompressed \
                         parquet: rewrite it with snappy (pyarrow: `compression=\"snappy\"`) or convert it to \
                         JSONL"
                    )));
                }
            }
            let start = match c.dictionary_page_offset() {
                Some(d) => d,
                None => c.data_page_offset(),
            };
            let size = c.compressed_size();
            let (Ok(start), Ok(size)) = (u64::try_from(start), u64::try_from(size)) else {
                return Err(bad(corrupt("a negative offset or size")));
            };
            let Some(end) = start.checked_add(size).filter(|&e| e <= len) else {
                return Err(bad(corrupt(format!(
                    "the chunk declares bytes {start}..{start}+{size}, past the file's {len} bytes"
                ))));
            };
            let mut at = start;
            while at < end {
                let h = header(&bytes[at as usize..end as usize]).map_err(|m| bad(corrupt(m)))?;
                let next = at
                    .checked_add(h.len)
                    .and_then(|a| a.checked_add(h.compressed))
                    .filter(|&a| a <= end);
                let Some(next) = next else {
                    return Err(bad(corrupt(format!(
                        "a page at byte {at} declares {} bytes, past its chunk's end at {end}",
                        h.compressed
                    ))));
                };
                if h.decoded > MAX_PAGE {
                    return Err(bad(format!(
                        "a page at byte {at} declares {} decoded bytes, over the {MAX_PAGE}-byte cap on a \
                         page; rewrite the file with smaller pages (pyarrow's default is 1 MB)",
                        h.decoded
                    )));
                }
                decoded += h.decoded;
                if decoded > MAX_DECODED {
                    return Err(bad(format!(
                        "its pages declare over {MAX_DECODED} decoded bytes, the cap on a suite file's \
                         contents; use a smaller file (a part of the dataset)"
                    )));
                }
                if h.dictionary_entries > MAX_DICTIONARY {
                    return Err(bad(format!(
                        "a dictionary page at byte {at} declares {} entries, over the {MAX_DICTIONARY} cap",
                        h.dictionary_entries
                    )));
                }
                if let Some(e) = h.encodings.iter().find(|e| !ENCODINGS.contains(e)) {
                    return Err(bad(format!(
                        "a page at byte {at} uses encoding {e} ({}); suites read the encodings pyarrow writes by \
                         default (plain and dictionary): rewrite it with pyarrow's defaults or convert it to JSONL",
                        encoding_name(*e)
                    )));
                }
                at = next;
            }
        }
    }
    Ok(())
}

/// Encodings accepted in page headers: PLAIN, PLAIN_DICTIONARY, RLE, BIT_PACKED (levels), RLE_DICTIONARY.
const ENCODINGS: [i64; 5] = [0, 2, 3, 4, 8];

fn encoding_name(e: i64) -> &'static str {
    match e {
        5 => "DELTA_BINARY_PACKED",
        6 => "DELTA_LENGTH_BYTE_ARRAY",
        7 => "DELTA_BYTE_ARRAY",
        9 => "BYTE_STREAM_SPLIT",
        _ => "unknown",
    }
}

/// What a page header declares.
#[derive(Debug, Default)]
struct Header {
    /// Bytes of the header itself.
    len: u64,
    /// Bytes of the page after the header.
    compressed: u64,
    /// Bytes once decompressed.
    decoded: u64,
    /// Entries of a dictionary page.
    dictionary_entries: u64,
    /// The encodings it names (values and levels).
    encodings: Vec<i64>,
}

/// Reads the Thrift (compact protocol) page header at the start of `buf`: its length, sizes, dictionary entries
/// and encodings; every length inside is checked against `buf` and nesting is bounded, so nothing here
/// allocates what the header declares.
fn header(buf: &[u8]) -> Result<Header, String> {
    let mut t = Thrift { buf, at: 0 };
    let mut ints = Vec::new();
    t.structure(0, 0, &mut ints)?;
    let get = |parent: i16, id: i16| {
        ints.iter()
            .find(|&&(p, i, _)| p == parent && i == id)
            .map(|&(_, _, v)| v)
    };
    let size = |id: i16, what: &str| -> Result<u64, String> {
        let v = get(0, id).ok_or_else(|| format!("a page header without its {what}"))?;
        u64::try_from(v)
            .ok()
            .filter(|&v| v <= i32::MAX as u64)
            .ok_or_else(|| format!("a page header declaring {v} as its {what}"))
    };
    let entries = get(7, 1).unwrap_or(0);
    // Encodings: data page v1 (5): values 2, definition levels 3, repetition levels 4; dictionary page (7): 2;
    // data page v2 (8): 4.
    let encodings = [(5, 2), (5, 3), (5, 4), (7, 2), (8, 4)]
        .iter()
        .filter_map(|&(p, i)| get(p, i))
        .collect();
    Ok(Header {
        len: t.at as u64,
        compressed: size(3, "compressed size")?,
        decoded: size(2, "decoded size")?,
        dictionary_entries: u64::try_from(entries)
            .map_err(|_| format!("a dictionary page declaring {entries} entries"))?,
        encodings,
    })
}

struct Thrift<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Thrift<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .buf
            .get(self.at)
            .ok_or("a page header cut short (the file is truncated)")?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a page header with an overlong number".into())
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        let left = (self.buf.len() - self.at) as u64;
        if n > left {
            return Err("a page header cut short (the file is truncated)".into());
        }
        self.at += n as usize;
        Ok(())
    }

    /// A struct's fields up to its stop byte; integer fields at depth 0 and 1 are kept as (parent, id, value).
    fn structure(
        &mut self,
        depth: u32,
        parent: i16,
        ints: &mut Vec<(i16, i16, i64)>,
    ) -> Result<(), String> {
        let mut id = 0i16;
        loop {
            let b = self.byte()?;
            if b == 0 {
                return Ok(());
            }
            let delta = (b >> 4) as i16;
            id = if delta == 0 {
                i16::try_from(self.zigzag()?).map_err(|_| "a page header with a bad field id")?
            } else {
                id.wrapping_add(delta)
            };
            let ty = b & 0x0f;
            match ty {
                5 | 6 if depth <= 1 => {
                    let v = self.zigzag()?;
                    ints.push((parent, id, v));
                }
                12 if depth == 0 => self.structure(depth + 1, id, ints)?,
                _ => self.value(ty, depth + 1)?,
            }
        }
    }

    fn value(&mut self, ty: u8, depth: u32) -> Result<(), String> {
        if depth > 16 {
            return Err("a page header nested too deeply".into());
        }
        match ty {
            // Booleans: in a field, the value is the type.
            1 | 2 => {}
            3 => self.skip(1)?,
            4..=6 => {
                self.varint()?;
            }
            7 => self.skip(8)?,
            8 => {
                let n = self.varint()?;
                self.skip(n)?;
            }
            9 | 10 => {
                let b = self.byte()?;
                let n = match b >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                self.elements(n, b & 0x0f, depth)?;
            }
            11 => {
                let n = self.varint()?;
                if n > (self.buf.len() - self.at) as u64 {
                    return Err("a page header cut short (the file is truncated)".into());
                }
                if n > 0 {
                    let kv = self.byte()?;
                    for _ in 0..n {
                        self.element(kv >> 4, depth)?;
                        self.element(kv & 0x0f, depth)?;
                    }
                }
            }
            12 => {
                let mut ignored = Vec::new();
                self.structure(depth + 1, 0, &mut ignored)?;
            }
            13 => self.skip(16)?,
            _ => return Err(format!("a page header with an unknown field type {ty}")),
        }
        Ok(())
    }

    fn elements(&mut self, n: u64, ty: u8, depth: u32) -> Result<(), String> {
        // Each element takes at least a byte: a count past the buffer is refused before looping on it.
        if n > (self.buf.len() - self.at) as u64 {
            return Err("a page header cut short (the file is truncated)".into());
        }
        for _ in 0..n {
            self.element(ty, depth)?;
        }
        Ok(())
    }

    /// One element of a list or map: booleans take a byte there.
    fn element(&mut self, ty: u8, depth: u32) -> Result<(), String> {
        if matches!(ty, 1 | 2) {
            self.skip(1)
        } else {
            self.value(ty, depth + 1)
        }
    }
}

#[cfg(test)]
mod tests;
