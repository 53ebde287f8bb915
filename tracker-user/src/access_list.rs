//! Which torrents the tracker serves: an allow-all list, a blacklist or a
//! whitelist of info hashes read from a file.
//!
//! The list is consulted for every announce and scrape, so the hot path is a
//! lock-free [`ArcSwap`] load; a reload (SIGUSR1) builds the new list aside
//! and swaps it in whole, or keeps the old one if the file is bad.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tracker_proto::InfoHash;

use crate::config::{AccessListConfig, AccessListMode};

type HashSet = hashbrown::HashSet<InfoHash, foldhash::fast::RandomState>;

/// One immutable generation of the access list.
#[derive(Clone, Debug)]
pub struct AccessList {
    mode: AccessListMode,
    hashes: HashSet,
}

impl AccessList {
    /// The list for `mode = "off"`: every torrent is served.
    pub fn allow_all() -> Self {
        Self::new(AccessListMode::Off, HashSet::default())
    }

    fn new(mode: AccessListMode, hashes: HashSet) -> Self {
        Self { mode, hashes }
    }

    /// Whether a torrent may be announced or scraped.
    #[inline]
    pub fn allows(&self, h: &InfoHash) -> bool {
        match self.mode {
            AccessListMode::Off => true,
            AccessListMode::Black => !self.hashes.contains(h),
            AccessListMode::White => self.hashes.contains(h),
        }
    }

    /// Distinct info hashes in the list.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn mode(&self) -> AccessListMode {
        self.mode
    }
}

impl Default for AccessList {
    fn default() -> Self {
        Self::allow_all()
    }
}

/// Why an access list file was refused.
#[derive(Debug)]
pub struct AccessListError {
    path: PathBuf,
    /// 1-based; `None` when the file as a whole is the problem.
    line: Option<usize>,
    kind: AccessListErrorKind,
}

#[derive(Debug)]
enum AccessListErrorKind {
    NoPath(AccessListMode),
    Io(std::io::Error),
    BadLine(String),
}

impl AccessListError {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 1-based line of the bad entry, if the error is about one line.
    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

/// Longest piece of a bad line quoted in an error: enough to recognise it,
/// not so much that a binary file floods the log.
const MAX_QUOTED_CHARS: usize = 80;

impl fmt::Display for AccessListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            AccessListErrorKind::NoPath(mode) => write!(
                f,
                "access list mode is {mode} but access_list.path names no file"
            ),
            AccessListErrorKind::Io(e) => {
                write!(f, "{}: cannot read access list: {e}", self.path.display())
            }
            AccessListErrorKind::BadLine(text) => {
                write!(f, "{}", self.path.display())?;
                if let Some(line) = self.line {
                    write!(f, ":{line}")?;
                }
                let quoted: String = text.chars().take(MAX_QUOTED_CHARS).collect();
                let ellipsis = if quoted.len() < text.len() { "..." } else { "" };
                write!(f, ": not a 40-digit hex info hash: {quoted:?}{ellipsis}")
            }
        }
    }
}

impl std::error::Error for AccessListError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The io error is already part of Display; exposing it as the source
        // too would print it twice in `{:#}` chains.
        None
    }
}

/// Builds the list `config` describes. With mode off no file is read, so a
/// stale path in the config cannot stop the tracker from starting.
pub fn load(config: &AccessListConfig) -> Result<AccessList, AccessListError> {
    if config.mode == AccessListMode::Off {
        return Ok(AccessList::allow_all());
    }
    let path = &config.path;
    if path.as_os_str().is_empty() {
        return Err(AccessListError {
            path: path.clone(),
            line: None,
            kind: AccessListErrorKind::NoPath(config.mode),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| AccessListError {
        path: path.clone(),
        line: None,
        kind: AccessListErrorKind::Io(e),
    })?;
    let hashes = parse(&bytes).map_err(|(line, text)| AccessListError {
        path: path.clone(),
        line: Some(line),
        kind: AccessListErrorKind::BadLine(text),
    })?;
    Ok(AccessList::new(config.mode, hashes))
}

/// Parses the file's bytes; on error returns the 1-based line and its text.
/// Works line by line on bytes so stray non-UTF-8 (say, in a comment) is
/// judged only where it stands.
fn parse(bytes: &[u8]) -> Result<HashSet, (usize, String)> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut hashes = HashSet::default();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(raw);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let entry = line.split_once('#').map_or(line, |(entry, _)| entry).trim();
        match InfoHash::from_hex(entry) {
            Some(hash) => {
                hashes.insert(hash);
            }
            None => return Err((i + 1, line.to_owned())),
        }
    }
    Ok(hashes)
}

/// The access list shared by every socket worker, replaceable at run time.
#[derive(Debug)]
pub struct SharedAccessList(ArcSwap<AccessList>);

impl tracker_swarm::TorrentFilter for SharedAccessList {
    fn allows(&self, info_hash: &InfoHash) -> bool {
        SharedAccessList::allows(self, info_hash)
    }
}

impl SharedAccessList {
    pub fn new(list: AccessList) -> Self {
        Self(ArcSwap::from_pointee(list))
    }

    /// Hot path: a lock-free load, then a set lookup.
    #[inline]
    pub fn allows(&self, h: &InfoHash) -> bool {
        self.0.load().allows(h)
    }

    /// A short-lived view for checking many hashes against one generation.
    pub fn load(&self) -> arc_swap::Guard<Arc<AccessList>> {
        self.0.load()
    }

    /// The current generation, for holding past the next reload.
    pub fn load_full(&self) -> Arc<AccessList> {
        self.0.load_full()
    }

    pub fn len(&self) -> usize {
        self.0.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.load().is_empty()
    }

    pub fn mode(&self) -> AccessListMode {
        self.0.load().mode()
    }

    /// Rereads the list `config` describes and swaps it in, returning its
    /// size. On error the old list stays in force: a typo in the file must
    /// not open a whitelist or close a tracker. The caller logs the error.
    pub fn reload(&self, config: &AccessListConfig) -> Result<usize, AccessListError> {
        let list = load(config)?;
        let len = list.len();
        self.0.store(Arc::new(list));
        Ok(len)
    }
}

impl Default for SharedAccessList {
    fn default() -> Self {
        Self::new(AccessList::allow_all())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "fedcba9876543210fedcba9876543210fedcba98";
    const C: &str = "1111111111111111111111111111111111111111";

    fn hash(hex: &str) -> InfoHash {
        InfoHash::from_hex(hex).expect("test hash")
    }

    fn file_with(text: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text).expect("write temp file");
        file
    }

    fn config(mode: AccessListMode, path: &Path) -> AccessListConfig {
        AccessListConfig {
            mode,
            path: path.to_owned(),
        }
    }

    #[test]
    fn off_allows_everything_without_reading_a_file() {
        let list = load(&config(AccessListMode::Off, Path::new("/nonexistent/acl"))).unwrap();
        assert_eq!(list.mode(), AccessListMode::Off);
        assert_eq!(list.len(), 0);
        assert!(list.allows(&hash(A)));
        assert!(AccessList::allow_all().allows(&hash(B)));
    }

    #[test]
    fn white_allows_only_listed() {
        let file = file_with(format!("{A}\n{B}\n").as_bytes());
        let list = load(&config(AccessListMode::White, file.path())).unwrap();
        assert_eq!(list.mode(), AccessListMode::White);
        assert_eq!(list.len(), 2);
        assert!(list.allows(&hash(A)));
        assert!(list.allows(&hash(B)));
        assert!(!list.allows(&hash(C)));
    }

    #[test]
    fn black_refuses_only_listed() {
        let file = file_with(format!("{A}\n").as_bytes());
        let list = load(&config(AccessListMode::Black, file.path())).unwrap();
        assert_eq!(list.mode(), AccessListMode::Black);
        assert!(!list.allows(&hash(A)));
        assert!(list.allows(&hash(B)));
    }

    #[test]
    fn comments_blank_lines_and_duplicates() {
        let text = format!(
            "# torrents we serve\n\n   \n{A}  # linux iso\n\t{B}\t\n  # indented comment\n{A}\n{C}#tight\n"
        );
        let file = file_with(text.as_bytes());
        let list = load(&config(AccessListMode::White, file.path())).unwrap();
        assert_eq!(list.len(), 3);
        for h in [A, B, C] {
            assert!(list.allows(&hash(h)));
        }
    }

    #[test]
    fn crlf_bom_and_uppercase() {
        let text = format!("\u{feff}# windows\r\n{}\r\n\r\n{B}\r\n", A.to_uppercase());
        let file = file_with(text.as_bytes());
        let list = load(&config(AccessListMode::White, file.path())).unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.allows(&hash(A)));
        assert!(list.allows(&hash(B)));
    }

    #[test]
    fn empty_file_is_an_empty_list() {
        let file = file_with(b"");
        let list = load(&config(AccessListMode::White, file.path())).unwrap();
        assert!(list.is_empty());
        assert!(!list.allows(&hash(A)));
    }

    #[test]
    fn bad_line_names_file_line_and_text() {
        let text = format!("# header\n{A}\n\n{B}\n\n\nxyz # not a hash\n{C}\n");
        let file = file_with(text.as_bytes());
        let err = load(&config(AccessListMode::White, file.path())).unwrap_err();
        assert_eq!(err.line(), Some(7));
        assert_eq!(err.path(), file.path());
        assert_eq!(
            err.to_string(),
            format!(
                "{}:7: not a 40-digit hex info hash: \"xyz # not a hash\"",
                file.path().display()
            )
        );
    }

    #[test]
    fn near_misses_are_refused() {
        for bad in [
            &A[..39],
            &format!("{A}0"),
            &A.replace('a', "g"),
            &format!("{} {}", &A[..20], &A[20..]),
            "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567",
        ] {
            let file = file_with(format!("{B}\r\n{bad}\r\n").as_bytes());
            let err = load(&config(AccessListMode::Black, file.path())).unwrap_err();
            assert_eq!(err.line(), Some(2), "{bad}");
        }
    }

    #[test]
    fn bad_text_is_quoted_safely_and_shortened() {
        let mut text = b"\xff\xfe\"quote\x07".to_vec();
        text.extend(std::iter::repeat_n(b'z', 500));
        let file = file_with(&text);
        let msg = load(&config(AccessListMode::White, file.path()))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(":1: not a 40-digit hex info hash: \""),
            "{msg}"
        );
        assert!(msg.contains("\\\"quote\\u{7}"), "{msg}");
        assert!(msg.ends_with("\"..."), "{msg}");
        assert!(msg.len() < 300, "{msg}");
    }

    #[test]
    fn unreadable_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.txt");
        let err = load(&config(AccessListMode::White, &path)).unwrap_err();
        assert_eq!(err.line(), None);
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{}: cannot read access list: ", path.display())),
            "{msg}"
        );
    }

    #[test]
    fn empty_path_is_refused_when_on() {
        let err = load(&config(AccessListMode::Black, Path::new(""))).unwrap_err();
        assert!(err.to_string().contains("access_list.path"), "{err}");
    }

    #[test]
    fn shared_list_reload_swaps_or_keeps() {
        let good = file_with(format!("{A}\n").as_bytes());
        let cfg = config(AccessListMode::White, good.path());
        let shared = SharedAccessList::new(load(&cfg).unwrap());
        assert!(shared.allows(&hash(A)));
        assert!(!shared.allows(&hash(B)));
        let held = shared.load_full();

        // A bad file leaves the old list in force.
        let bad = file_with(format!("{B}\nnope\n").as_bytes());
        let err = shared
            .reload(&config(AccessListMode::White, bad.path()))
            .unwrap_err();
        assert_eq!(err.line(), Some(2));
        assert!(shared.allows(&hash(A)));
        assert!(!shared.allows(&hash(B)));
        let missing = config(AccessListMode::White, Path::new("/nonexistent/acl.txt"));
        assert!(shared.reload(&missing).is_err());
        assert!(shared.allows(&hash(A)));

        // A good file replaces it whole, mode included.
        let next = file_with(format!("{B}\n{C}\n").as_bytes());
        let count = shared
            .reload(&config(AccessListMode::White, next.path()))
            .unwrap();
        assert_eq!(count, 2);
        assert_eq!(shared.len(), 2);
        assert!(!shared.allows(&hash(A)));
        assert!(shared.allows(&hash(B)));
        assert_eq!(
            shared
                .reload(&config(AccessListMode::Black, next.path()))
                .unwrap(),
            2
        );
        assert_eq!(shared.mode(), AccessListMode::Black);
        assert!(shared.allows(&hash(A)));
        assert!(!shared.allows(&hash(B)));

        // A generation taken before the swaps is unchanged.
        assert!(held.allows(&hash(A)));
        assert_eq!(held.mode(), AccessListMode::White);
    }
}
