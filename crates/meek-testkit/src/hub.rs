//! A fake Hugging Face hub on a local port, for the tests of pinning, locking and downloading: repositories
//! with branches that move to new commits, files in Git LFS (their SHA-256 in the API, as the hub gives it) or in
//! Git itself, a file replaced under the same commit (a corrupt mirror), and gated repositories that want a
//! token. It answers the requests meekbench and `hf-hub` send:
//!
//! - `GET /api/models/{repo}/revision/{rev}`: `{"id", "sha"}`, the commit a branch, tag or commit names;
//! - `POST /api/models/{repo}/paths-info/{commit}` with `{"paths": [...]}`: one entry per existing file, with
//!   `lfs: {oid, size}` for LFS files;
//! - `HEAD` and `GET /{repo}/resolve/{rev}/{path}`: the file, with `ETag` (its SHA-256 for LFS files) and
//!   `X-Repo-Commit`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

#[derive(Default)]
struct Repo {
    refs: HashMap<String, String>,
    /// commit -> (path, bytes, in LFS)
    commits: HashMap<String, Vec<(String, Vec<u8>, bool)>>,
    gated: bool,
}

/// The fake hub; it serves until the process ends.
pub struct FakeHub {
    /// `http://127.0.0.1:PORT`, for `HF_ENDPOINT` or `Fetcher::with_hub_endpoint`.
    pub endpoint: String,
    repos: Arc<Mutex<HashMap<String, Repo>>>,
    log: Arc<Mutex<Vec<String>>>,
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl FakeHub {
    /// Starts the server.
    pub fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
        let repos: Arc<Mutex<HashMap<String, Repo>>> = Arc::default();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, l) = (repos.clone(), log.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, l) = (r.clone(), l.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &r, &l);
                });
            }
        });
        FakeHub {
            endpoint,
            repos,
            log,
        }
    }

    /// Makes `commit` of `repo` with `files` (in LFS when `lfs`) and points `branch` at it.
    pub fn commit(
        &self,
        repo: &str,
        branch: &str,
        commit: &str,
        files: &[(&str, &[u8])],
        lfs: bool,
    ) {
        let mut repos = self.repos.lock().unwrap();
        let r = repos.entry(repo.to_string()).or_default();
        r.commits.insert(
            commit.to_string(),
            files
                .iter()
                .map(|(p, b)| (p.to_string(), b.to_vec(), lfs))
                .collect(),
        );
        r.refs.insert(branch.to_string(), commit.to_string());
    }

    /// Replaces the bytes of `path` at `commit` without a new commit (what a corrupt or tampered mirror serves).
    pub fn overwrite(&self, repo: &str, commit: &str, path: &str, bytes: &[u8]) {
        let mut repos = self.repos.lock().unwrap();
        let files = repos
            .get_mut(repo)
            .and_then(|r| r.commits.get_mut(commit))
            .expect("the commit exists");
        for f in files.iter_mut().filter(|f| f.0 == path) {
            f.1 = bytes.to_vec();
        }
    }

    /// Makes `repo` answer 401 to requests without an `Authorization` header.
    pub fn gate(&self, repo: &str) {
        self.repos
            .lock()
            .unwrap()
            .entry(repo.to_string())
            .or_default()
            .gated = true;
    }

    /// The request lines received so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    repos: &Mutex<HashMap<String, Repo>>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let (mut length, mut auth) = (0usize, false);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0).min(1 << 20);
        }
        auth |= lower.starts_with("authorization:");
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    log.lock().unwrap().push(line.trim().to_string());
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let (status, headers, payload) = answer(&method, &path, &body, auth, &repos.lock().unwrap());
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
        payload.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(&payload);
    }
    let mut stream = stream;
    stream.write_all(&out)
}

type Answer = (&'static str, String, Vec<u8>);

fn not_found(code: &str) -> Answer {
    (
        "404 Not Found",
        format!("X-Error-Code: {code}\r\n"),
        Vec::new(),
    )
}

fn answer(
    method: &str,
    path: &str,
    body: &[u8],
    auth: bool,
    repos: &HashMap<String, Repo>,
) -> Answer {
    let path = path.replace("%2F", "/");
    let (api, rest) = match path.strip_prefix("/api/models/") {
        Some(rest) => (true, rest.to_string()),
        None => (false, path.trim_start_matches('/').to_string()),
    };
    // owner/name/ACTION/REV/...
    let mut it = rest.splitn(4, '/');
    let (owner, name, action, tail) = (
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
    );
    let repo_id = format!("{owner}/{name}");
    let Some(repo) = repos.get(&repo_id) else {
        return not_found("RepoNotFound");
    };
    if repo.gated && !auth {
        return (
            "401 Unauthorized",
            "X-Error-Code: GatedRepo\r\n".into(),
            Vec::new(),
        );
    }
    let resolve = |rev: &str| {
        repo.refs
            .get(rev)
            .cloned()
            .or_else(|| repo.commits.contains_key(rev).then(|| rev.to_string()))
    };
    let json = |v: serde_json::Value| {
        (
            "200 OK",
            "Content-Type: application/json\r\n".to_string(),
            v.to_string().into_bytes(),
        )
    };
    match (api, method, action) {
        (true, "GET", "revision") => match resolve(tail) {
            Some(c) => json(serde_json::json!({"id": repo_id, "sha": c})),
            None => not_found("RevisionNotFound"),
        },
        (true, "POST", "paths-info") => {
            let Some(files) = resolve(tail).and_then(|c| repo.commits.get(&c)) else {
                return not_found("RevisionNotFound");
            };
            let asked: Vec<String> = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("paths").cloned())
                .and_then(|p| serde_json::from_value(p).ok())
                .unwrap_or_default();
            let entries: Vec<serde_json::Value> = files
                .iter()
                .filter(|(p, _, _)| asked.contains(p))
                .map(|(p, b, lfs)| {
                    let mut e = serde_json::json!({"type": "file", "path": p, "size": b.len(), "oid": "0".repeat(40)});
                    if *lfs {
                        e["lfs"] = serde_json::json!({"oid": sha256_hex(b), "size": b.len(), "pointerSize": 134});
                    }
                    e
                })
                .collect();
            json(serde_json::Value::Array(entries))
        }
        (false, "GET" | "HEAD", "resolve") => {
            let (rev, file) = tail.split_once('/').unwrap_or((tail, ""));
            let Some(commit) = resolve(rev) else {
                return not_found("RevisionNotFound");
            };
            match repo.commits[&commit].iter().find(|(p, _, _)| p == file) {
                Some((_, b, _)) => (
                    "200 OK",
                    format!("ETag: \"{}\"\r\nX-Repo-Commit: {commit}\r\n", sha256_hex(b)),
                    b.clone(),
                ),
                None => not_found("EntryNotFound"),
            }
        }
        _ => not_found("EntryNotFound"),
    }
}
