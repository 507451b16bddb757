//! Parquet suites: files the tests write (as pyarrow does: optional columns, snappy, dictionary pages) give the
//! same items as the equivalent JSONL; hostile files (truncated, flipped bytes, wrong types, nulls, page headers
//! declaring huge sizes) are refused by name, without a panic or a large allocation.

use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::*;
use crate::jsonl;

/// A column of a test file: its name and values (None: null).
pub(crate) enum Col {
    Text(&'static str, Vec<Option<String>>),
    Int(&'static str, Vec<Option<i64>>),
    Double(&'static str, Vec<Option<f64>>),
}

/// Options of a test file.
#[derive(Clone, Copy)]
struct Opts {
    compression: Compression,
    dictionary: bool,
    /// Rows per row group.
    group: usize,
}

const PYARROW: Opts = Opts {
    compression: Compression::SNAPPY,
    dictionary: true,
    group: 1 << 20,
};

/// A parquet file of `cols`, every column optional (nullable) as pyarrow writes them.
fn write(cols: &[Col], o: Opts) -> Bytes {
    let fields: String = cols
        .iter()
        .map(|c| match c {
            Col::Text(n, _) => format!("optional binary {n} (STRING);"),
            Col::Int(n, _) => format!("optional int64 {n};"),
            Col::Double(n, _) => format!("optional double {n};"),
        })
        .collect();
    let schema = Arc::new(parse_message_type(&format!("message schema {{ {fields} }}")).unwrap());
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(o.compression)
            .set_dictionary_enabled(o.dictionary)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_write_page_header_statistics(true)
            .build(),
    );
    let mut w = SerializedFileWriter::new(Vec::new(), schema, props).unwrap();
    let rows = match &cols[0] {
        Col::Text(_, v) => v.len(),
        Col::Int(_, v) => v.len(),
        Col::Double(_, v) => v.len(),
    };
    let mut start = 0;
    while start < rows.max(1) {
        let end = (start + o.group).min(rows);
        let mut g = w.next_row_group().unwrap();
        let mut i = 0;
        while let Some(mut c) = g.next_column().unwrap() {
            fn split<T: Clone>(v: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
                (
                    v.iter().flatten().cloned().collect(),
                    v.iter().map(|x| i16::from(x.is_some())).collect(),
                )
            }
            match &cols[i] {
                Col::Text(_, v) => {
                    let (vals, defs) = split(&v[start..end]);
                    let vals: Vec<ByteArray> =
                        vals.into_iter().map(|s| s.into_bytes().into()).collect();
                    c.typed::<ByteArrayType>()
                        .write_batch(&vals, Some(&defs), None)
                        .unwrap();
                }
                Col::Int(_, v) => {
                    let (vals, defs) = split(&v[start..end]);
                    c.typed::<Int64Type>()
                        .write_batch(&vals, Some(&defs), None)
                        .unwrap();
                }
                Col::Double(_, v) => {
                    let (vals, defs) = split(&v[start..end]);
                    c.typed::<DoubleType>()
                        .write_batch(&vals, Some(&defs), None)
                        .unwrap();
                }
            }
            c.close().unwrap();
            i += 1;
        }
        g.close().unwrap();
        start = end.max(start + 1);
    }
    Bytes::from(w.into_inner().unwrap())
}

fn texts(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|s| Some(s.to_string())).collect()
}

const QUESTIONS: [&str; 3] = [
    "Natalia sold 48 clips in April and half as many in May. How many in total?",
    "Big?",
    "Weng earns $12 an hour. How much for 50 minutes?",
];
const ANSWERS: [&str; 3] = [
    "May: 48/2 = <<48/2=24>>24\nTotal: 48+24 = <<48+24=72>>72\n#### 72",
    "x <<1*1000=1000>>1000\n#### 1,000",
    "12/60 = <<12/60=0.2>>0.2\n0.2*50 = <<0.2*50=10>>10\n#### 10",
];

fn gsm8k(o: Opts) -> Bytes {
    write(
        &[
            Col::Text("question", texts(&QUESTIONS)),
            Col::Text("answer", texts(&ANSWERS)),
        ],
        o,
    )
}

fn gsm8k_jsonl() -> String {
    QUESTIONS
        .iter()
        .zip(ANSWERS)
        .map(|(q, a)| serde_json::json!({"question": q, "answer": a}).to_string() + "\n")
        .collect()
}

#[test]
fn gsm8k_rows_give_the_items_of_the_same_jsonl_lines() {
    let want = jsonl::parse(&gsm8k_jsonl(), Format::Gsm8k, None).unwrap();
    for o in [
        PYARROW,
        Opts {
            compression: Compression::UNCOMPRESSED,
            dictionary: false,
            group: 2,
        },
        Opts {
            group: 1,
            ..PYARROW
        },
    ] {
        assert_eq!(parse(gsm8k(o), Format::Gsm8k, None).unwrap(), want);
    }
    assert_eq!(
        parse(gsm8k(PYARROW), Format::Gsm8k, Some(2)).unwrap(),
        want[..2]
    );
    // Other columns of a GSM8K file (a dataset's extras) are not read.
    let extra = write(
        &[
            Col::Int("index", vec![Some(1), None, Some(3)]),
            Col::Text("question", texts(&QUESTIONS)),
            Col::Text("answer", texts(&ANSWERS)),
        ],
        PYARROW,
    );
    assert_eq!(parse(extra, Format::Gsm8k, None).unwrap(), want);
}

#[test]
fn plain_rows_take_numbers_or_text_and_optional_columns() {
    let text = "{\"id\": 1, \"prompt\": \"2+2?\", \"answer\": \"4\", \"family\": \"add\", \"steps\": 1}\n\
                {\"id\": 2, \"prompt\": \"x\", \"answer\": \"-1.50\", \"steps\": 3, \"solution\": \"So -1.5\"}\n";
    let want = jsonl::parse(text, Format::Plain, None).unwrap();
    let file = write(
        &[
            Col::Int("id", vec![Some(1), Some(2)]),
            Col::Text("prompt", texts(&["2+2?", "x"])),
            Col::Text("answer", texts(&["4", "-1.50"])),
            Col::Text("family", vec![Some("add".into()), None]),
            Col::Int("steps", vec![Some(1), Some(3)]),
            Col::Text("solution", vec![None, Some("So -1.5".into())]),
        ],
        PYARROW,
    );
    assert_eq!(parse(file, Format::Plain, None).unwrap(), want);
    let numeric = write(
        &[
            Col::Text("id", texts(&["a", "b"])),
            Col::Text("prompt", texts(&["p", "q"])),
            Col::Double("answer", vec![Some(4.0), Some(-1.5)]),
        ],
        PYARROW,
    );
    let items = parse(numeric, Format::Plain, None).unwrap();
    assert_eq!(
        (items[0].answer.as_str(), items[1].answer.as_str()),
        ("4", "-1.5")
    );
    assert_eq!(
        (items[1].id.as_str(), items[1].family.as_str()),
        ("b", "plain")
    );
}

/// The message of refusing `bytes` as `format`, with its row (0: the file).
fn refused(bytes: Bytes, format: Format) -> (usize, String) {
    parse(bytes, format, None).unwrap_err()
}

#[test]
fn wrong_missing_null_and_unknown_columns_are_named() {
    let (r, m) = refused(
        write(
            &[
                Col::Int("question", vec![Some(1)]),
                Col::Text("answer", texts(&["#### 1"])),
            ],
            PYARROW,
        ),
        Format::Gsm8k,
    );
    assert_eq!(r, 0);
    assert!(
        m.contains("column `question` holds INT64") && m.contains("text"),
        "{m}"
    );
    let (_, m) = refused(
        write(&[Col::Text("question", texts(&["q"]))], PYARROW),
        Format::Gsm8k,
    );
    assert!(
        m.contains("no column `answer`") && m.contains("`question`"),
        "{m}"
    );
    let (r, m) = refused(
        write(
            &[
                Col::Text("question", vec![Some("q".into()), None]),
                Col::Text("answer", texts(&["#### 1", "#### 2"])),
            ],
            PYARROW,
        ),
        Format::Gsm8k,
    );
    assert_eq!(r, 2);
    assert!(m.contains("`question` is null"), "{m}");
    let plain = |extra: Col| {
        write(
            &[
                Col::Int("id", vec![Some(1)]),
                Col::Text("prompt", texts(&["p"])),
                Col::Text("answer", texts(&["1"])),
                extra,
            ],
            PYARROW,
        )
    };
    let (_, m) = refused(plain(Col::Text("hint", texts(&["h"]))), Format::Plain);
    assert!(m.contains("unknown column `hint`"), "{m}");
    let (_, m) = refused(plain(Col::Text("steps", texts(&["3"]))), Format::Plain);
    assert!(
        m.contains("column `steps`") && m.contains("whole number"),
        "{m}"
    );
    let (r, m) = refused(plain(Col::Int("steps", vec![Some(-1)])), Format::Plain);
    assert_eq!(r, 1);
    assert!(m.contains("`steps` is -1"), "{m}");
    // The checks after decoding are the JSONL ones.
    let (r, m) = refused(
        write(
            &[
                Col::Text("question", texts(&["q", "r"])),
                Col::Text("answer", texts(&["#### 1", "none"])),
            ],
            PYARROW,
        ),
        Format::Gsm8k,
    );
    assert_eq!(r, 2);
    assert!(m.contains("####"), "{m}");
    let e = LoadError {
        path: "t.parquet".into(),
        line: r,
        row: true,
        message: m,
    }
    .to_string();
    assert!(e.starts_with("t.parquet: row 2: "), "{e}");
}

#[test]
fn huge_fields_and_too_many_rows_are_refused_with_the_cap() {
    let (r, m) = refused(
        write(
            &[
                Col::Text("question", vec![Some("q".repeat(MAX_FIELD + 1))]),
                Col::Text("answer", texts(&["#### 1"])),
            ],
            PYARROW,
        ),
        Format::Gsm8k,
    );
    assert_eq!(r, 1);
    assert!(
        m.contains("`question`") && m.contains(&MAX_FIELD.to_string()),
        "{m}"
    );
    let n = MAX_ITEMS + 1;
    let many = write(
        &[
            Col::Int("id", (0..n as i64).map(Some).collect()),
            Col::Text("prompt", vec![Some("p".to_string()); n]),
            Col::Int("answer", vec![Some(1); n]),
        ],
        PYARROW,
    );
    let (r, m) = refused(many.clone(), Format::Plain);
    assert_eq!(r, 0);
    assert!(
        m.contains(&format!("{n} rows")) && m.contains("limit"),
        "{m}"
    );
    assert_eq!(parse(many, Format::Plain, Some(10)).unwrap().len(), 10);
}

#[test]
fn truncated_and_flipped_files_are_errors_not_panics() {
    let good = gsm8k(PYARROW);
    for cut in 0..good.len() {
        let (r, m) = refused(good.slice(..cut), Format::Gsm8k);
        assert_eq!(r, 0, "{cut}: {m}");
    }
    // Every byte flipped in turn: whatever the reader makes of it, an error or items, never a panic or an abort.
    for o in [
        PYARROW,
        Opts {
            compression: Compression::UNCOMPRESSED,
            dictionary: false,
            group: 1,
        },
    ] {
        let good = gsm8k(o).to_vec();
        for i in 0..good.len() {
            for x in [0xff, 0x80, 0x01] {
                let mut bad = good.clone();
                bad[i] ^= x;
                let _ = parse(Bytes::from(bad), Format::Gsm8k, None);
            }
        }
    }
    let mut footer = good.to_vec();
    let at = footer.len() - 8;
    footer[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let (_, m) = refused(Bytes::from(footer), Format::Gsm8k);
    assert!(m.contains("not a readable parquet file"), "{m}");
}

/// Rewrites the header of the first page of the first column chunk as `edit` changes its integer fields, padded
/// to the same length so that every offset in the file still holds.
fn rewrite_first_page(file: &Bytes, edit: impl Fn(&mut Vec<(i16, i16, i64)>)) -> Bytes {
    let reader = SerializedFileReader::new(file.clone()).unwrap();
    let c = &reader.metadata().row_groups()[0].columns()[0];
    let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset()) as usize;
    let mut t = Thrift {
        buf: &file[start..],
        at: 0,
    };
    let mut ints = Vec::new();
    t.structure(0, 0, &mut ints).unwrap();
    let len = t.at;
    edit(&mut ints);
    // Zigzag varints, `pad` bytes longer than needed (readers accept such).
    let varint = |out: &mut Vec<u8>, v: i64, pad: usize| {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        let mut extra = pad;
        loop {
            let b = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 && extra == 0 {
                out.push(b);
                break;
            }
            if z == 0 {
                extra -= 1;
            }
            out.push(b | 0x80);
        }
    };
    let build = |pad: usize, fill: usize| {
        let mut h = Vec::new();
        let mut last = 0;
        for &(_, id, v) in ints.iter().filter(|i| i.0 == 0) {
            h.push((((id - last) as u8) << 4) | 5);
            varint(&mut h, v, if last == 0 { pad } else { 0 });
            last = id;
        }
        let mut parents: Vec<i16> = ints.iter().map(|i| i.0).filter(|&p| p != 0).collect();
        parents.dedup();
        for p in parents {
            h.push((((p - last) as u8) << 4) | 12);
            last = p;
            let mut inner = 0;
            for &(_, id, v) in ints.iter().filter(|i| i.0 == p) {
                h.push((((id - inner) as u8) << 4) | 5);
                varint(&mut h, v, 0);
                inner = id;
            }
            h.push(0);
        }
        if fill > 0 {
            // An unknown binary field (id 99), which readers skip.
            h.extend([0x08, 0xc6, 0x01, (fill - 4) as u8]);
            h.extend(std::iter::repeat_n(b'.', fill - 4));
        }
        h.push(0);
        h
    };
    let short = len
        .checked_sub(build(0, 0).len())
        .expect("the page header is long enough to rewrite");
    assert!(short < 128);
    let h = if short < 4 {
        build(short, 0)
    } else {
        build(0, short)
    };
    assert_eq!(h.len(), len);
    let mut out = file.to_vec();
    out[start..start + len].copy_from_slice(&h);
    Bytes::from(out)
}

/// A change to a page header's integer fields.
type Edit = Box<dyn Fn(&mut Vec<(i16, i16, i64)>)>;

fn set(ints: &mut [(i16, i16, i64)], parent: i16, id: i16, v: i64) {
    let f = ints
        .iter_mut()
        .find(|i| i.0 == parent && i.1 == id)
        .unwrap();
    f.2 = v;
}

#[test]
fn page_headers_declaring_huge_sizes_or_other_encodings_are_refused_before_reading() {
    // Enough distinct values that a dictionary's entry count takes as many bytes as the one written here.
    let n = 10_000;
    let questions: Vec<Option<String>> = (0..n).map(|i| Some(format!("question {i}"))).collect();
    let answers: Vec<Option<String>> = (0..n).map(|i| Some(format!("#### {i}"))).collect();
    let plainly = Opts {
        dictionary: false,
        ..PYARROW
    };
    let file = |o: Opts| {
        write(
            &[
                Col::Text("question", questions.clone()),
                Col::Text("answer", answers.clone()),
            ],
            o,
        )
    };
    // The same header, rewritten unchanged, still reads: the rewriting itself is sound.
    let same = parse(
        rewrite_first_page(&file(plainly), |_| {}),
        Format::Gsm8k,
        None,
    );
    assert_eq!(same.map(|i| i.len()), Ok(n));
    let cases: [(Opts, Edit, &str); 4] = [
        (
            plainly,
            Box::new(|h| set(h, 0, 2, i32::MAX.into())),
            "decoded bytes",
        ),
        (
            plainly,
            Box::new(|h| set(h, 0, 3, i32::MAX.into())),
            "past its chunk's end",
        ),
        (
            plainly,
            Box::new(|h| set(h, 5, 2, 6)),
            "DELTA_LENGTH_BYTE_ARRAY",
        ),
        (
            PYARROW,
            Box::new(|h| set(h, 7, 1, MAX_DICTIONARY as i64 + 1)),
            "entries",
        ),
    ];
    for (o, edit, says) in cases {
        let (r, m) = refused(rewrite_first_page(&file(o), edit), Format::Gsm8k);
        assert_eq!(r, 0, "{m}");
        assert!(
            m.contains(says) && m.contains("column `question`"),
            "{says}: {m}"
        );
    }
}

#[test]
fn page_headers_are_read_within_their_bytes() {
    // A list claiming more elements than bytes, a huge binary, deep nesting, a cut: errors, not loops or
    // allocations.
    for bad in [
        &[0x19, 0xf5, 0xff, 0xff, 0xff, 0xff, 0x0f][..],
        &[0x18, 0xff, 0xff, 0xff, 0xff, 0x0f],
        &[0x1c; 64],
        &[0x15, 0x80],
        &[],
    ] {
        assert!(header(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn files_are_read_from_disk_with_errors_naming_them() {
    let dir = tempfile_dir("load");
    let p = dir.join("test-00000-of-00001.parquet");
    fs_err::write(&p, gsm8k(PYARROW)).unwrap();
    assert_eq!(load(&p, Format::Gsm8k, None).unwrap().len(), 3);
    let e = load(&p, Format::Plain, None).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: no column `id`", p.display())),
        "{e}"
    );
    #[cfg(unix)]
    {
        let e = load(Path::new("/dev/null"), Format::Plain, None).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{e}");
    }
    fs_err::remove_dir_all(dir).ok();
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("meek-eval-parquet-{name}-{}", std::process::id()));
    fs_err::create_dir_all(&dir).unwrap();
    dir
}
