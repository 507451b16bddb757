//! Pinning a hub file without downloading it: a branch or tag resolved to its commit, and the file's SHA-256 and
//! size at that commit, from the hub's JSON API, for `meekbench lock`.
//!
//! Two requests, neither of which redirects: `GET /api/models/{repo}/revision/{rev}` gives the commit (`sha`), and
//! `POST /api/models/{repo}/paths-info/{commit}` gives the file's Git LFS object id, which is its SHA-256 (GGUF
//! files are always in LFS: the hub refuses files over 10 MB outside it). `hf-hub` has calls for both, but its
//! LFS record reads `sha256` where the hub writes `oid`, and its HEAD-based metadata follows the redirect to the
//! CDN, which drops `X-Repo-Commit`; so these are sent here, with the same endpoint, token and timeouts. A file
//! kept in Git itself (no LFS record) is downloaded at the commit and hashed. Answers are bounded in size and
//! every value in them is checked before it is used.

use std::io::Read;

use meek_config::lock::{LOCK_VERSION, LockState, MAX_MODEL_BYTES, is_hex};
use meek_config::{LoadedConfig, Lock, LockedModel};

use crate::Fetcher;
use crate::hub::{download_watched, hub_names};
use crate::verify::sha256_file;

/// The largest API answer read: a model's info lists its files; tens of thousands of them fit.
const MAX_ANSWER_BYTES: u64 = 8 << 20;

/// The largest file the hub keeps in Git itself rather than LFS (10 MiB), with room; such a file is downloaded
/// to be hashed.
const MAX_PLAIN_BYTES: u64 = 16 << 20;

/// A hub file pinned to a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubPin {
    /// The commit the revision resolved to.
    pub commit: String,
    /// SHA-256 of the file at that commit, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether the SHA-256 came from the hub's metadata (`false`: computed from the downloaded file).
    pub from_metadata: bool,
}

impl Fetcher {
    /// Resolves `revision` of model repository `repo` to its commit, and `file` there to its SHA-256 and size.
    pub fn pin_hub_file(&self, repo: &str, revision: &str, file: &str) -> Result<HubPin, String> {
        hub_names(repo, revision, file)?;
        if crate::hub::hub_offline() {
            return Err(
                "HF_HUB_OFFLINE is set: a revision cannot be resolved offline; lock on a connected machine, or \
                 give the file's sha256 in the config"
                    .into(),
            );
        }
        let api = Api::new(self)?;
        let commit = if is_hex(revision, 40) {
            revision.to_string()
        } else {
            api.commit(repo, revision)?
        };
        match api.lfs(repo, &commit, file)? {
            Some((sha256, size)) => Ok(HubPin {
                commit,
                sha256,
                size,
                from_metadata: true,
            }),
            None => {
                let path = download_watched(self, repo, &commit, file, false)?;
                let sha256 = sha256_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let size = fs_err::metadata(&path).map_err(|e| e.to_string())?.len();
                Ok(HubPin {
                    commit,
                    sha256,
                    size,
                    from_metadata: false,
                })
            }
        }
    }
}

/// What [`Fetcher::lock`] did to one model's pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockChange {
    /// Newly pinned.
    Added(LockedModel),
    /// Pinned again (its entry was stale, or `update`) to another commit or file: the old entry and the new.
    Moved(LockedModel, LockedModel),
    /// Resolved again to the same commit and file, or kept as locked.
    Unchanged(LockedModel),
    /// The lock's entry for a model the config no longer has (or now pins by `sha256`), dropped.
    Removed(LockedModel),
}

/// The outcome of [`Fetcher::lock`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOutcome {
    /// The new lock: every model that could be pinned, in config order.
    pub lock: Lock,
    /// One change per model, in config order, then the removed entries.
    pub changes: Vec<LockChange>,
    /// Models that could not be pinned: `models[i] (id)` and why. Their old entries are kept.
    pub failures: Vec<(String, String)>,
}

impl Fetcher {
    /// Pins every model of `cfg` that names a hub revision without `sha256` and is not pinned by its lock; with
    /// `update`, resolves the pinned ones again too (a branch that moved moves the pin). A non-empty `only`
    /// limits both to the models of those ids; the others keep their entries as they are.
    pub fn lock(&self, cfg: &LoadedConfig, update: bool, only: &[String]) -> LockOutcome {
        let old = cfg.lock.as_ref().map(|l| &l.lock);
        let old_entry = |id: &str| old.and_then(|l| l.get(id)).cloned();
        let mut out = LockOutcome {
            lock: Lock {
                version: LOCK_VERSION,
                models: Vec::new(),
            },
            changes: Vec::new(),
            failures: Vec::new(),
        };
        for m in &cfg.lockable {
            let before = old_entry(&m.spec.id);
            let skipped = !only.is_empty() && !only.contains(&m.spec.id);
            if (m.state == LockState::Pinned && !update) || skipped {
                // Kept as it is (a model left out keeps even a stale entry, for when it is chosen again).
                if let Some(e) = before {
                    out.lock.models.push(e.clone());
                    out.changes.push(LockChange::Unchanged(e));
                }
                continue;
            }
            let path = m.hub.path_in_repo(&m.spec.file);
            match self.pin_hub_file(&m.hub.repo, &m.hub.revision, path) {
                Ok(pin) => {
                    let e = LockedModel {
                        id: m.spec.id.clone(),
                        file: m.spec.file.clone(),
                        hub: m.hub.repo.clone(),
                        revision: m.hub.revision.clone(),
                        hub_file: m.hub.file.clone(),
                        commit: pin.commit,
                        sha256: pin.sha256,
                        size: pin.size,
                    };
                    out.lock.models.push(e.clone());
                    out.changes.push(match before {
                        None => LockChange::Added(e),
                        Some(b) if b == e => LockChange::Unchanged(e),
                        Some(b) => LockChange::Moved(b, e),
                    });
                }
                Err(why) => {
                    if let Some(b) = before {
                        out.lock.models.push(b);
                    }
                    out.failures.push((m.name(), why));
                }
            }
        }
        if let Some(old) = old {
            for e in &old.models {
                if !cfg.lockable.iter().any(|m| m.spec.id == e.id) {
                    out.changes.push(LockChange::Removed(e.clone()));
                }
            }
        }
        out
    }
}

/// The hub's JSON API, reached as `hf-hub` reaches the hub.
struct Api {
    http: reqwest::blocking::Client,
    endpoint: String,
    token: Option<String>,
}

impl Api {
    fn new(f: &Fetcher) -> Result<Api, String> {
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("meekbench/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(f.hub.connect_timeout)
            .timeout(f.hub.connect_timeout + f.hub.read_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        let endpoint = f
            .hub
            .endpoint
            .clone()
            .or_else(|| std::env::var("HF_ENDPOINT").ok())
            .unwrap_or_else(|| "https://huggingface.co".to_string());
        let token = hub_token();
        Ok(Api {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The commit `revision` names now.
    fn commit(&self, repo: &str, revision: &str) -> Result<String, String> {
        let url = format!(
            "{}/api/models/{repo}/revision/{}",
            self.endpoint,
            revision.replace('/', "%2F")
        );
        let what = format!("hub:{repo}@{revision}");
        let v = self.send(self.http.get(&url), &what)?;
        match v.get("sha").and_then(|s| s.as_str()) {
            Some(sha) if is_hex(sha, 40) => Ok(sha.to_string()),
            _ => Err(format!(
                "{what}: the hub's answer has no commit hash (`sha`); is {} a Hugging Face hub?",
                self.endpoint
            )),
        }
    }

    /// The LFS SHA-256 and size of `file` at `commit`; `None` when the file is kept in Git itself.
    fn lfs(&self, repo: &str, commit: &str, file: &str) -> Result<Option<(String, u64)>, String> {
        let url = format!("{}/api/models/{repo}/paths-info/{commit}", self.endpoint);
        let what = format!("hub:{repo}@{commit}/{file}");
        let body = serde_json::json!({ "paths": [file] });
        let req = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let v = self.send(req, &what)?;
        let entry = v
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|e| e.get("path").and_then(|p| p.as_str()) == Some(file))
            })
            .filter(|e| e.get("type").and_then(|t| t.as_str()) == Some("file"))
            .ok_or_else(|| format!("{what}: no such file in the repository at that commit"))?;
        let Some(lfs) = entry.get("lfs").filter(|l| !l.is_null()) else {
            // Kept in Git itself, so downloaded to be hashed: only what the hub keeps outside LFS (10 MiB).
            return match entry.get("size").and_then(serde_json::Value::as_u64) {
                Some(size) if size <= MAX_PLAIN_BYTES => Ok(None),
                size => Err(format!(
                    "{what}: the hub lists it outside LFS with size {size:?}; a file kept in Git itself is at most \
                     {MAX_PLAIN_BYTES} bytes here (it is downloaded to be hashed): give its sha256 in the config"
                )),
            };
        };
        let oid = lfs.get("oid").and_then(|o| o.as_str()).unwrap_or("");
        let oid = oid.strip_prefix("sha256:").unwrap_or(oid);
        let size = lfs
            .get("size")
            .or_else(|| entry.get("size"))
            .and_then(serde_json::Value::as_u64);
        match size {
            Some(size) if is_hex(oid, 64) && size <= MAX_MODEL_BYTES => {
                Ok(Some((oid.to_string(), size)))
            }
            _ => Err(format!(
                "{what}: the hub's LFS record has no usable SHA-256 and size (`lfs.oid`, `lfs.size`)"
            )),
        }
    }

    /// Sends a request and reads its JSON answer, with the status turned into words.
    fn send(
        &self,
        req: reqwest::blocking::RequestBuilder,
        what: &str,
    ) -> Result<serde_json::Value, String> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().map_err(|e| {
            format!(
                "{what}: cannot reach the hub at {}: {e} (check the network, HF_ENDPOINT or HTTPS_PROXY)",
                self.endpoint
            )
        })?;
        let status = resp.status();
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 | 403 => {
                    "the repository is gated or private: accept its licence on the hub and set HF_TOKEN"
                }
                404 => {
                    "no such repository or revision (check the names, or set HF_TOKEN for a private one)"
                }
                429 => "the hub limits requests: wait a minute, or set HF_TOKEN",
                _ => "the hub refused the request",
            };
            return Err(format!("{what}: HTTP {status}: {hint}"));
        }
        let mut bytes = Vec::new();
        resp.take(MAX_ANSWER_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{what}: reading the hub's answer: {e}"))?;
        if bytes.len() as u64 > MAX_ANSWER_BYTES {
            return Err(format!(
                "{what}: the hub's answer is over {MAX_ANSWER_BYTES} bytes; refused"
            ));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{what}: the hub's answer is not the JSON it should be: {e}"))
    }
}

/// The hub token, found where hf-hub's downloads find it: `HF_TOKEN`, the file `HF_TOKEN_PATH` names, or the file
/// a hub login writes (`$HF_HOME/token`, by default `~/.cache/huggingface/token`); none when
/// `HF_HUB_DISABLE_IMPLICIT_TOKEN` is set. A file is read up to 4 KiB, and a token that is not one line of
/// printable ASCII is not sent (it could not be a header).
fn hub_token() -> Option<String> {
    let set = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if set("HF_HUB_DISABLE_IMPLICIT_TOKEN").is_some() {
        return None;
    }
    let from_file = |path: std::path::PathBuf| {
        let mut text = String::new();
        fs_err::File::open(path)
            .ok()?
            .take(4096)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    };
    let home = set("HF_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| set("XDG_CACHE_HOME").map(|x| std::path::Path::new(&x).join("huggingface")))
        .or_else(|| set("HOME").map(|h| std::path::Path::new(&h).join(".cache/huggingface")));
    let token = set("HF_TOKEN")
        .or_else(|| set("HF_TOKEN_PATH").and_then(|p| from_file(p.into())))
        .or_else(|| home.and_then(|h| from_file(h.join("token"))))?;
    let token = token.trim().to_string();
    (!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())).then_some(token)
}
