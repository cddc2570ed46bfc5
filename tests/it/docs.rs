//! The documentation tells the truth: every repository path it names exists, and the
//! README's command examples run exactly as written (with the binary on PATH, as the README
//! says to put it), against a fresh database.

use crate::support;
use std::path::Path;

/// The documents an operator reads.
const DOCUMENTS: &[&str] = &["README.md", "examples/README.md", "docs/performance.md", "systemd/nhacviec.service"];
/// Paths the documents name as places to put a file, not files the repository holds.
const OPTIONAL: &[&str] = &["config/nhacviec.toml"];
/// Top-level folders of the repository: a word starting with one of them is a path.
const TREE: &[&str] =
    &["src/", "scripts/", "config/", "examples/", "tests/", "docs/", "systemd/", "migrations/", "debian/"];

#[test]
fn every_repository_path_the_documents_name_exists() {
    let repo = support::repo();
    let mut missing = Vec::new();
    for document in DOCUMENTS {
        let text = std::fs::read_to_string(repo.join(document)).unwrap();
        for (n, line) in text.lines().enumerate() {
            for word in line.split(|c: char| c.is_whitespace() || "`()[]<>\"',;|".contains(c)) {
                let word = word.trim_end_matches(['.', ':', '*']);
                let Some(top) = TREE.iter().find(|t| word.starts_with(**t)) else { continue };
                // A glob or a placeholder names a pattern, not a file.
                if word.contains(['*', '{', '$'])
                    || word.len() == top.len()
                    || word.contains("YYYY")
                    || OPTIONAL.contains(&word)
                {
                    continue;
                }
                let path = word.split('#').next().unwrap_or(word);
                if !repo.join(path).exists() {
                    missing.push(format!("{document}:{}: {word}", n + 1));
                }
            }
        }
    }
    assert!(missing.is_empty(), "named but not there:\n{}", missing.join("\n"));
}

/// The README's example block of `nhacviec …` commands ("Using it").
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(support::repo().join("README.md")).unwrap();
    let start = readme.find("```sh\nnhacviec migrate").expect("the README's command block");
    let block = &readme[start + 6..];
    let block = &block[..block.find("```").unwrap()];
    block.lines().map(|l| l.split('#').next().unwrap().trim().to_string()).filter(|l| !l.is_empty()).collect()
}

#[test]
fn the_readme_commands_run_as_written() {
    let dir = tempfile::tempdir().unwrap();
    // The commands name examples/… relative to the repository root.
    std::os::unix::fs::symlink(support::repo().join("examples"), dir.path().join("examples")).unwrap();
    let bin_dir = support::bin().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let commands = readme_commands();
    assert!(commands.len() >= 10, "{commands:?}");
    for command in &commands {
        // `run` waits for SIGTERM and `send-test` needs a mail server: the daemon tests and
        // the SMTP tests run those.
        if command.starts_with("nhacviec run") || command.starts_with("nhacviec send-test") {
            continue;
        }
        let out = std::process::Command::new("sh")
            .args(["-c", command])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env_remove("NHACVIEC_CONFIG")
            .env("NHACVIEC__DATABASE__URL", format!("sqlite://{}", dir.path().join("nv.db").display()))
            .env("NHACVIEC__MAIL__TRANSPORT", "file")
            .env("NHACVIEC__MAIL__FILE_DIR", dir.path().join("mail"))
            .env("NHACVIEC__HTTP__LISTEN", "")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{command}` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(Path::new(&dir.path().join("digest.html")).exists(), "digest --html wrote its file");
}
