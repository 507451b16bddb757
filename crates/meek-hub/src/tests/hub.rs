//! The `hub` source, against local HTTP servers in the hub's layout: downloads, the hub cache, checkpoints,
//! dataset files, broken and stalled transfers, the free-space check and names that would leave the cache.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

/// A local HTTP server for up to 64 connections: for each, reads the request line and the headers, records the
/// request line, and hands the line and the stream to `respond`. Returns its address and the recorded lines.
fn serve(
    mut respond: impl FnMut(&str, &mut TcpStream) + Send + 'static,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            log2.lock().unwrap().push(line.trim().to_string());
            respond(&line, &mut stream);
        }
    });
    (addr, log)
}

/// Serves `files` (repo path -> bytes) under `/{repo}/resolve/{COMMIT}/{file}` like the hub does for LFS files:
/// HEAD and GET, with `ETag` = the file's sha256 and `X-Repo-Commit`. Records each request line.
fn hub_server(
    repo: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
) -> (String, Arc<Mutex<Vec<String>>>) {
    serve(move |line, stream| {
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("");
        let found = files.iter().find(|(name, _)| {
            ["", "datasets/"].iter().any(|prefix| {
                path == format!("/{prefix}{repo}/resolve/{COMMIT}/{name}")
                    || path == format!("/{prefix}{repo}/resolve/main/{name}")
            })
        });
        let response = match found {
                Some((_, body)) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"{}\"\r\nX-Repo-Commit: {COMMIT}\r\n\
                         Connection: close\r\n\r\n",
                        body.len(),
                        sha(body)
                    );
                    let mut r = head.into_bytes();
                    if method == "GET" {
                        r.extend_from_slice(body);
                    }
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nX-Error-Code: EntryNotFound\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
        let _ = stream.write_all(&response);
    })
}

#[test]
fn hub_download_goes_to_the_hub_cache_and_is_verified() {
    let body = b"GGUF pretend weights".repeat(1000);
    let (endpoint, log) = hub_server("owner/repo", vec![("tiny.gguf", body.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let f = Fetcher::new(dir.path().join("cache"))
        .with_hub_endpoint(endpoint)
        .with_hub_cache(dir.path().join("hf"));
    let source = Source::Hub {
        repo: "owner/repo".into(),
        revision: COMMIT.into(),
        file: None,
    };
    let got = f.fetch(&spec(&sha(&body), vec![source.clone()])).unwrap();
    assert_eq!(fs::read(&got.path).unwrap(), body);
    assert_eq!(got.source, format!("hub:owner/repo@{COMMIT}"));
    // The standard hub cache layout, shared with other Hugging Face tools.
    let expected = dir.path().join(format!(
        "hf/models--owner--repo/snapshots/{COMMIT}/tiny.gguf"
    ));
    assert_eq!(got.path, expected);
    let requests = log.lock().unwrap().len();
    // Pinned to a commit, a second fetch is served from the cache without the network.
    let again = f.fetch(&spec(&sha(&body), vec![source])).unwrap();
    assert_eq!(again.path, expected);
    assert_eq!(log.lock().unwrap().len(), requests);
}

#[test]
fn hub_file_with_wrong_hash_and_missing_file_are_refused() {
    let (endpoint, _) = hub_server("owner/repo", vec![("tiny.gguf", b"other bytes".to_vec())]);
    let dir = tempfile::tempdir().unwrap();
    let f = Fetcher::new(dir.path().join("cache"))
        .with_hub_endpoint(endpoint)
        .with_hub_cache(dir.path().join("hf"));
    let hub = |file: Option<&str>| Source::Hub {
        repo: "owner/repo".into(),
        revision: COMMIT.into(),
        file: file.map(str::to_string),
    };
    let err = f
        .fetch(&spec(&sha(b"expected"), vec![hub(None)]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("sha256 mismatch"), "{err}");
    let err = f
        .fetch(&spec(&sha(b"expected"), vec![hub(Some("absent.gguf"))]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("hub:owner/repo"), "{err}");
}

#[test]
fn dataset_files_come_from_the_hub_cache() {
    let (endpoint, log) = hub_server(
        "owner/suite",
        vec![("test.jsonl", b"{\"id\": 1}\n".to_vec())],
    );
    let dir = tempfile::tempdir().unwrap();
    let f = Fetcher::new(dir.path().join("cache"))
        .with_hub_endpoint(endpoint)
        .with_hub_cache(dir.path().join("hf"));
    let p = f
        .fetch_dataset_file("owner/suite", COMMIT, "test.jsonl")
        .unwrap();
    assert_eq!(fs::read_to_string(&p).unwrap(), "{\"id\": 1}\n");
    assert!(
        p.starts_with(dir.path().join("hf/datasets--owner--suite")),
        "{}",
        p.display()
    );
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("/datasets/owner/suite/resolve/"))
    );
    let err = f
        .fetch_dataset_file("owner/suite", COMMIT, "missing.jsonl")
        .unwrap_err();
    assert!(err.contains("missing.jsonl"), "{err}");
}

/// A GSM8K split as `openai/gsm8k` has it on the hub: parquet (snappy, nullable string columns, as pyarrow
/// writes it) under `main/`.
fn gsm8k_parquet(rows: &[(&str, &str)]) -> Vec<u8> {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = parquet::schema::parser::parse_message_type(
        "message schema { optional binary question (STRING); optional binary answer (STRING); }",
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut w = SerializedFileWriter::new(Vec::new(), Arc::new(schema), Arc::new(props)).unwrap();
    let mut group = w.next_row_group().unwrap();
    for pick in [
        |r: &(&str, &str)| r.0.to_string(),
        |r: &(&str, &str)| r.1.to_string(),
    ] {
        let mut c = group.next_column().unwrap().unwrap();
        let values: Vec<ByteArray> = rows.iter().map(|r| pick(r).into_bytes().into()).collect();
        c.typed::<ByteArrayType>()
            .write_batch(&values, Some(&vec![1; rows.len()]), None)
            .unwrap();
        c.close().unwrap();
    }
    group.close().unwrap();
    w.into_inner().unwrap()
}

#[test]
fn a_parquet_dataset_file_is_fetched_and_loads_as_a_suite() {
    let rows = [
        (
            "Natalia sold 48 clips in April and half as many in May. How many in total?",
            "48/2 = <<48/2=24>>24\n48+24 = <<48+24=72>>72\n#### 72",
        ),
        (
            "Weng earns $12 an hour. How much for 50 minutes?",
            "12/60*50 = <<12/60*50=10>>10\n#### 10",
        ),
    ];
    let file = "main/test-00000-of-00001.parquet";
    let (endpoint, log) = hub_server("openai/gsm8k", vec![(file, gsm8k_parquet(&rows))]);
    let dir = tempfile::tempdir().unwrap();
    let f = Fetcher::new(dir.path().join("cache"))
        .with_hub_endpoint(endpoint)
        .with_hub_cache(dir.path().join("hf"));
    let p = f.fetch_dataset_file("openai/gsm8k", COMMIT, file).unwrap();
    assert!(
        p.starts_with(dir.path().join("hf/datasets--openai--gsm8k")),
        "{}",
        p.display()
    );
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&format!("/datasets/openai/gsm8k/resolve/{COMMIT}/{file}")))
    );
    let items = meek_eval::parquet::load(&p, meek_eval::record::Format::Gsm8k, None).unwrap();
    let got: Vec<(&str, &str, u32)> = items
        .iter()
        .map(|i| (i.question.as_str(), i.answer.as_str(), i.steps))
        .collect();
    assert_eq!(got, [(rows[0].0, "72", 2), (rows[1].0, "10", 1)]);
}

#[test]
fn a_checkpoint_is_downloaded_whole_into_the_hub_cache_and_verified() {
    let files = checkpoint();
    let digest = listing_digest(&files);
    let (endpoint, _) = hub_server("owner/ck", files.clone());
    let dir = tempfile::tempdir().unwrap();
    let f = Fetcher::new(dir.path().join("cache"))
        .with_hub_endpoint(endpoint)
        .with_hub_cache(dir.path().join("hf"));
    let mut s = spec(
        &digest,
        vec![Source::Hub {
            repo: "owner/ck".into(),
            revision: COMMIT.into(),
            file: None,
        }],
    );
    s.file = CHECKPOINT_FILE.into();
    let got = f.fetch(&s).unwrap();
    let snapshot = dir
        .path()
        .join(format!("hf/models--owner--ck/snapshots/{COMMIT}"));
    assert_eq!(got.path, snapshot);
    for (n, b) in &files {
        assert_eq!(&fs::read(snapshot.join(n)).unwrap(), b, "{n}");
    }
    // A wrong digest is refused after the download.
    s.sha256 = "0".repeat(64);
    let err = f.fetch(&s).unwrap_err().to_string();
    assert!(err.contains("sha256 mismatch for checkpoint"), "{err}");
    // A repository without weights is refused with both attempts named.
    let (endpoint, _) = hub_server("owner/empty", files[..1].to_vec());
    let f = Fetcher::new(dir.path().join("cache2"))
        .with_hub_endpoint(endpoint)
        .with_hub_cache(dir.path().join("hf2"));
    s.sources = vec![Source::Hub {
        repo: "owner/empty".into(),
        revision: COMMIT.into(),
        file: None,
    }];
    let err = f.fetch(&s).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}

/// Serves one file of `repo` whose HEAD describes `good` (size, ETag = its sha256); the n-th GET sends
/// `gets[n]` (the last one again after that), cut after `cut` bytes when given, with the connection then closed.
/// Records each request line.
fn scripted_server(
    repo: &'static str,
    name: &'static str,
    good: Vec<u8>,
    gets: Vec<(Vec<u8>, Option<usize>)>,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let mut served = 0;
    serve(move |line, stream| {
        let path = line.split_whitespace().nth(1).unwrap_or("");
        if path != format!("/{repo}/resolve/{COMMIT}/{name}") {
            let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nX-Error-Code: EntryNotFound\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            return;
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"{}\"\r\nX-Repo-Commit: {COMMIT}\r\nConnection: close\r\n\r\n",
            good.len(),
            sha(&good)
        );
        let mut r = head.into_bytes();
        if line.starts_with("GET") {
            let (body, cut) = &gets[served.min(gets.len() - 1)];
            served += 1;
            r.extend_from_slice(&body[..cut.unwrap_or(body.len()).min(body.len())]);
        }
        let _ = stream.write_all(&r);
        let _ = stream.flush();
        // Dropping the stream closes the connection, midway through the body when it was cut.
    })
}

fn hub_fetcher(dir: &Path, endpoint: String) -> Fetcher {
    Fetcher::new(dir.join("cache"))
        .with_hub_endpoint(endpoint)
        .with_hub_cache(dir.join("hf"))
}

fn hub_source() -> Source {
    Source::Hub {
        repo: "owner/repo".into(),
        revision: COMMIT.into(),
        file: None,
    }
}

fn gets(log: &Mutex<Vec<String>>) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("GET"))
        .count()
}

#[test]
fn a_download_cut_midway_is_never_used_and_the_next_fetch_starts_again() {
    let body = b"GGUF weights that arrive in pieces ".repeat(4000);
    let (endpoint, log) = scripted_server(
        "owner/repo",
        "tiny.gguf",
        body.clone(),
        vec![(body.clone(), Some(body.len() / 2)), (body.clone(), None)],
    );
    let dir = tempfile::tempdir().unwrap();
    let f = hub_fetcher(dir.path(), endpoint);
    let s = spec(&sha(&body), vec![hub_source()]);
    let err = f.fetch(&s).unwrap_err().to_string();
    assert!(err.contains("hub:owner/repo"), "{err}");
    let snapshot = dir.path().join(format!(
        "hf/models--owner--repo/snapshots/{COMMIT}/tiny.gguf"
    ));
    assert!(
        !snapshot.exists(),
        "no file where a complete one is expected"
    );
    assert!(f.lookup(&s).is_none());
    let got = f.fetch(&s).unwrap();
    assert_eq!(got.path, snapshot);
    assert_eq!(fs::read(&got.path).unwrap(), body);
    assert_eq!(gets(&log), 2, "downloaded again from the start");
}

#[test]
fn a_corrupt_download_is_removed_so_the_next_fetch_downloads_it_again() {
    let body = b"GGUF good weights ".repeat(1000);
    let mut bad = body.clone();
    bad[100] ^= 0x20;
    let (endpoint, log) = scripted_server(
        "owner/repo",
        "tiny.gguf",
        body.clone(),
        vec![(bad, None), (body.clone(), None)],
    );
    let dir = tempfile::tempdir().unwrap();
    let f = hub_fetcher(dir.path(), endpoint);
    let s = spec(&sha(&body), vec![hub_source()]);
    let err = f.fetch(&s).unwrap_err().to_string();
    assert!(err.contains("sha256 mismatch"), "{err}");
    // The corrupt blob, complete and under the right ETag, would otherwise be found again and again.
    let got = f.fetch(&s).unwrap();
    assert_eq!(fs::read(&got.path).unwrap(), body);
    assert_eq!(gets(&log), 2);
}

#[test]
fn a_download_the_disk_cannot_hold_is_refused_before_writing() {
    let body = b"GGUF big weights ".repeat(2000);
    let (endpoint, log) = scripted_server(
        "owner/repo",
        "tiny.gguf",
        body.clone(),
        vec![(body.clone(), None)],
    );
    let dir = tempfile::tempdir().unwrap();
    let s = spec(&sha(&body), vec![hub_source()]);
    let full = hub_fetcher(dir.path(), endpoint.clone()).with_free_space(FREE_SPACE_MARGIN);
    let err = full.fetch(&s).unwrap_err().to_string();
    assert!(
        err.contains(&format!("needs {} bytes", body.len()))
            && err.contains("only 67108864 bytes")
            && err.contains("HF_HUB_CACHE"),
        "{err}"
    );
    assert_eq!(gets(&log), 0, "nothing was downloaded");
    // Room enough: fetched. An unknown size (0) is never refused.
    let roomy =
        hub_fetcher(dir.path(), endpoint).with_free_space(FREE_SPACE_MARGIN + body.len() as u64);
    assert!(roomy.fetch(&s).is_ok());
    assert!(full.check_space(dir.path(), 0).is_ok());
    // The real figure for this disk is known and positive.
    assert!(free_bytes(dir.path()).is_some_and(|b| b > 0));
    assert!(free_bytes(&dir.path().join("not/yet/there")).is_some());
}

#[test]
fn a_hub_that_stops_answering_fails_the_source_instead_of_hanging() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        // Accept and hold every connection without ever answering.
        let held: Vec<_> = listener.incoming().take(16).collect();
        drop(held);
    });
    let dir = tempfile::tempdir().unwrap();
    let f = hub_fetcher(dir.path(), endpoint)
        .with_timeouts(Duration::from_secs(1), Duration::from_secs(1));
    let err = f
        .fetch(&spec(&sha(b"x"), vec![hub_source()]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("hub:owner/repo"), "{err}");
}

/// A hub `file` or `revision` that would leave the hub cache (the config refuses them; here a spec made in code
/// reaches the fetcher directly) is refused before any request or file operation: the victim file is untouched.
#[test]
fn hub_names_that_escape_the_cache_touch_nothing() {
    let (endpoint, log) = hub_server("owner/repo", vec![]);
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("notes.txt");
    fs::write(&victim, "my notes").unwrap();
    let f = hub_fetcher(dir.path(), endpoint);
    let sources = vec![
        Source::Hub {
            repo: "owner/repo".into(),
            revision: COMMIT.into(),
            file: Some(victim.display().to_string()),
        },
        Source::Hub {
            repo: "owner/repo".into(),
            revision: "main".into(),
            file: Some(format!("../../../{}", victim.display())),
        },
        Source::Hub {
            repo: "owner/repo".into(),
            revision: format!("../../../../{}", victim.display()),
            file: None,
        },
        Source::Hub {
            repo: "../..".into(),
            revision: COMMIT.into(),
            file: None,
        },
    ];
    let err = f
        .fetch(&spec(&sha(b"my notes"), sources))
        .unwrap_err()
        .to_string();
    assert_eq!(err.matches("hub:").count(), 4, "{err}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "my notes");
    assert!(log.lock().unwrap().is_empty(), "no request was made");
}

/// A symlink planted in the hub cache that points out of it is never followed by the corrupt-blob clean-up.
#[cfg(unix)]
#[test]
fn the_corrupt_blob_clean_up_never_deletes_outside_the_hub_cache() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("notes.txt");
    fs::write(&victim, "my notes").unwrap();
    let snap = dir
        .path()
        .join(format!("hf/models--owner--repo/snapshots/{COMMIT}"));
    fs::create_dir_all(&snap).unwrap();
    fs::os::unix::fs::symlink(&victim, snap.join("tiny.gguf")).unwrap();
    fs::create_dir_all(dir.path().join("hf/models--owner--repo/refs")).unwrap();
    let f = Fetcher::new(dir.path().join("cache")).with_hub_cache(dir.path().join("hf"));
    // The cached "file" (the victim, through the link) fails the hash; the download then fails (no server).
    let f = f.with_hub_endpoint("http://127.0.0.1:9".to_string());
    let s = spec(&sha(b"the real weights"), vec![hub_source()]);
    assert!(f.fetch(&s).is_err());
    assert_eq!(fs::read_to_string(&victim).unwrap(), "my notes");
}
