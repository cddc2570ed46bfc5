//! Sources ← fetch: a source's content, as bytes per file, with a hash of all of it so an
//! unchanged export is skipped without parsing. `file` sources read a path or every match of
//! a glob, in name order.

use crate::config::{Source, SourceKind};
use sha2::{Digest, Sha256};

/// What a source holds now: each file's name and bytes, and one hash over them all.
pub struct Content {
    pub files: Vec<(String, Vec<u8>)>,
    pub hash: String,
}

/// Reads the source; an error says why nothing could be read, naming the source.
pub fn fetch(source: &Source) -> Result<Content, String> {
    match source.kind {
        SourceKind::File => fetch_files(source),
        other => Err(format!("kind {:?} is not available in this version: use kind = \"file\"", other.as_str())),
    }
}

fn fetch_files(source: &Source) -> Result<Content, String> {
    let pattern = source.path.trim();
    let mut paths: Vec<std::path::PathBuf> = if pattern.contains(['*', '?', '[']) {
        glob::glob(pattern)
            .map_err(|e| format!("path {pattern:?} is not a valid glob: {e}"))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect()
    } else {
        vec![pattern.into()]
    };
    paths.sort();
    if paths.is_empty() {
        return Err(format!("no file matches {pattern:?}"));
    }
    let mut hasher = Sha256::new();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        hasher.update(path.display().to_string().as_bytes());
        hasher.update([0]);
        hasher.update(&bytes);
        files.push((path.display().to_string(), bytes));
    }
    let hash = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Content { files, hash })
}
