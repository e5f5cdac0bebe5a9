//! A stand-in for the Hub on 127.0.0.1, for tests that may not reach the network. It serves the endpoints the client uses — `api/{models,datasets}/…/revision/…`,
//! `…/tree/…`, and `…/resolve/<revision>/<file>` for HEAD and GET, with `ETag`, `X-Repo-Commit`
//! and `Range` — for repositories given to it, answers 404 for anything else and 401 to a
//! request without a repository's token, and can cut a transfer short to test resume.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::id::RepoKind;

/// One repository the fake Hub serves.
#[derive(Debug, Clone)]
pub struct FakeRepo {
    /// Model or dataset.
    pub kind: RepoKind,
    /// `org/name`.
    pub repo: String,
    /// Its one commit.
    pub commit: String,
    /// Branches and tags pointing at it (`main` is one by default).
    pub refs: Vec<String>,
    /// Its files: path, contents, and whether they are in LFS.
    pub files: Vec<(String, Vec<u8>, bool)>,
    /// A token every request must carry (a gated repository), or none.
    pub token: Option<String>,
}

impl FakeRepo {
    /// A repository at commit `commit` with branch `main` and no files yet.
    pub fn new(kind: RepoKind, repo: &str, commit: &str) -> FakeRepo {
        FakeRepo {
            kind,
            repo: repo.into(),
            commit: commit.into(),
            refs: vec!["main".into()],
            files: Vec::new(),
            token: None,
        }
    }

    /// Adds a file; files over 1 KiB, and `.safetensors`, `.bin` and `.parquet` ones, are LFS.
    pub fn file(mut self, path: &str, bytes: Vec<u8>) -> FakeRepo {
        let lfs = bytes.len() > 1024 || [".safetensors", ".bin", ".parquet"].iter().any(|s| path.ends_with(s));
        self.files.push((path.into(), bytes, lfs));
        self
    }
}

/// The git-style object id the fake Hub gives a file (40 hex digits).
pub fn oid(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"blob ");
    h.update(bytes);
    hex(&h.finalize()[..20])
}

/// The sha256 of `bytes`, in hex: the cache blob name of an LFS file.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Default)]
struct State {
    repos: Vec<FakeRepo>,
    cuts: HashMap<String, usize>,
    log: Vec<String>,
}

/// The fake Hub: a thread answering on 127.0.0.1 until the process ends.
#[derive(Clone)]
pub struct FakeHub {
    /// `http://127.0.0.1:<port>`, for `HF_ENDPOINT`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeHub {
    /// Starts one on a free port.
    ///
    /// # Panics
    /// When no port can be bound (a test helper).
    pub fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let state = Arc::new(Mutex::new(State::default()));
        let s = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let _ = serve(stream, &s);
                });
            }
        });
        FakeHub { url, state }
    }

    /// Serves `repo` (replacing one of the same kind and name).
    pub fn add(&self, repo: FakeRepo) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.repos.retain(|r| !(r.kind == repo.kind && r.repo == repo.repo));
        st.repos.push(repo);
    }

    /// The next GET of a file whose path ends with `path` sends its headers and only `after`
    /// bytes of the body, then closes the connection.
    pub fn cut(&self, path: &str, after: usize) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cuts
            .insert(path.into(), after);
    }

    /// Every request so far, as `METHOD path[ range]`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).log.clone()
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Reply {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    cut: Option<usize>,
    length: Option<usize>,
}

fn reply(status: &'static str, body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.into(),
        cut: None,
        length: None,
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let range = headers.get("range").cloned();
    let r = {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.log.push(format!(
            "{method} {target}{}",
            range.as_ref().map(|r| format!(" {r}")).unwrap_or_default()
        ));
        route(
            &mut st,
            &method,
            &target,
            range.as_deref(),
            headers.get("authorization").map(String::as_str),
        )
    };
    let mut out = stream;
    let length = r.length.unwrap_or(r.body.len());
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Length: {length}\r\nConnection: close\r\n",
        r.status
    );
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if method != "HEAD" {
        let n = r.cut.unwrap_or(r.body.len()).min(r.body.len());
        out.write_all(&r.body[..n])?;
    }
    out.flush()?;
    let _ = out.shutdown(std::net::Shutdown::Both);
    let mut sink = Vec::new();
    let _ = reader.read_to_end(&mut sink);
    Ok(())
}

fn route(st: &mut State, method: &str, target: &str, range: Option<&str>, auth: Option<&str>) -> Reply {
    let not_found = || reply("404 Not Found", r#"{"error":"Not Found"}"#);
    let (path, _query) = target.split_once('?').unwrap_or((target, ""));
    let segs: Vec<String> = path.trim_start_matches('/').split('/').map(decode).collect();
    let seg = |i: usize| segs.get(i).map(String::as_str).unwrap_or("");
    // (kind, org, name, verb, revision, rest)
    let (kind, org, name, verb, rev, rest) = if seg(0) == "api" {
        let kind = match seg(1) {
            "models" => RepoKind::Model,
            "datasets" => RepoKind::Dataset,
            _ => return not_found(),
        };
        (
            kind,
            seg(2),
            seg(3),
            seg(4),
            seg(5),
            segs.get(6..).map(|s| s.join("/")).unwrap_or_default(),
        )
    } else if seg(0) == "datasets" {
        (
            RepoKind::Dataset,
            seg(1),
            seg(2),
            seg(3),
            seg(4),
            segs.get(5..).map(|s| s.join("/")).unwrap_or_default(),
        )
    } else {
        (
            RepoKind::Model,
            seg(0),
            seg(1),
            seg(2),
            seg(3),
            segs.get(4..).map(|s| s.join("/")).unwrap_or_default(),
        )
    };
    let repo_id = format!("{org}/{name}");
    let Some(repo) = st.repos.iter().find(|r| r.kind == kind && r.repo == repo_id).cloned() else {
        return not_found();
    };
    if let Some(t) = &repo.token {
        if auth != Some(&format!("Bearer {t}")) {
            return reply(
                "401 Unauthorized",
                r#"{"error":"Access to this repository is restricted"}"#,
            );
        }
    }
    if rev != repo.commit && !repo.refs.iter().any(|r| r == rev) {
        return not_found();
    }
    let commit = repo.commit.clone();
    match (seg(0) == "api", verb) {
        (true, "revision") => reply("200 OK", serde_json::json!({"id": repo_id, "sha": commit}).to_string()),
        (true, "tree") => {
            let mut entries = Vec::new();
            let mut dirs: Vec<String> = Vec::new();
            for (p, bytes, lfs) in &repo.files {
                let mut d = p.as_str();
                while let Some((parent, _)) = d.rsplit_once('/') {
                    if !dirs.iter().any(|x| x == parent) {
                        dirs.push(parent.to_string());
                    }
                    d = parent;
                }
                let mut e = serde_json::json!({"type": "file", "oid": oid(bytes), "size": bytes.len(), "path": p});
                if *lfs {
                    e["lfs"] = serde_json::json!({"oid": sha256(bytes), "size": bytes.len(), "pointerSize": 134});
                }
                entries.push(e);
            }
            for d in dirs {
                entries.push(serde_json::json!({"type": "directory", "oid": oid(d.as_bytes()), "size": 0, "path": d}));
            }
            reply("200 OK", serde_json::Value::Array(entries).to_string())
        }
        (false, "resolve") => {
            let Some((_, bytes, lfs)) = repo.files.iter().find(|(p, _, _)| *p == rest) else {
                return not_found();
            };
            let etag = if *lfs { sha256(bytes) } else { oid(bytes) };
            let mut r = reply("200 OK", bytes.clone());
            r.headers = vec![
                ("ETag".into(), format!("\"{etag}\"")),
                ("X-Repo-Commit".into(), commit),
                ("Accept-Ranges".into(), "bytes".into()),
                ("Content-Type".into(), "application/octet-stream".into()),
            ];
            // As the Hub does, the LFS headers come with the HEAD answer only (a GET of an LFS
            // file is a redirect to storage, whose answer has only Content-Length).
            if *lfs && method == "HEAD" {
                r.headers.push(("X-Linked-Etag".into(), format!("\"{etag}\"")));
                r.headers.push(("X-Linked-Size".into(), bytes.len().to_string()));
            }
            if method == "GET" {
                if let Some(spec) = range.and_then(|r| r.strip_prefix("bytes=")) {
                    let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
                    let a: usize = a.parse().unwrap_or(0).min(bytes.len());
                    let b: usize = b.parse().map(|b: usize| b + 1).unwrap_or(bytes.len()).min(bytes.len());
                    r.status = "206 Partial Content";
                    r.headers.push((
                        "Content-Range".into(),
                        format!("bytes {a}-{}/{}", b.saturating_sub(1), bytes.len()),
                    ));
                    r.body = bytes[a..b.max(a)].to_vec();
                }
                if let Some(key) = st.cuts.keys().find(|k| rest.ends_with(k.as_str())).cloned() {
                    r.cut = st.cuts.remove(&key);
                }
            }
            if method == "HEAD" {
                r.length = Some(bytes.len());
                r.body.clear();
            }
            r
        }
        _ => not_found(),
    }
}
