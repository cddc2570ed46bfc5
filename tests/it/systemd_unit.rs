//! The production unit file, `systemd/nhacviec.service`, checked without running systemd:
//! `systemd-analyze verify` must print no warning at all, `systemd-analyze security
//! --offline=true` must rate its exposure at 2.0 or lower, and the directives the daemon
//! relies on (notify, watchdog, state, configuration, credential) must be there.
//! These never skip: without systemd-analyze they fail and say how to install it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UNIT_NAME: &str = "nhacviec.service";
const MAX_EXPOSURE: f64 = 2.0;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd").join(UNIT_NAME)
}

fn unit_text() -> String {
    std::fs::read_to_string(unit_path()).unwrap_or_else(|e| panic!("cannot read {}: {e}", unit_path().display()))
}

fn systemd_analyze() -> PathBuf {
    let candidates = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"];
    if let Some(found) = candidates.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return found;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("systemd-analyze"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "systemd-analyze is not installed, so the unit file cannot be checked; \
             install it with `apt-get install systemd` (it does not need systemd running)"
        )
    })
}

/// A copy of the unit in a fresh directory, under its own name (systemd takes the unit's
/// name from the file name). `verify` fails when ExecStart= names a program that does not
/// exist, and /usr/local/bin/nhacviec is not installed where the tests run, so the copy
/// starts /bin/true instead; nothing else changes.
fn unit_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let stand_in =
        ["/bin/true", "/usr/bin/true"].into_iter().find(|p| Path::new(p).is_file()).expect("true(1) is installed");
    let text = unit_text();
    let mut replaced = 0;
    let copy: Vec<String> = text
        .lines()
        .map(|line| match line.split_once('=') {
            Some((key, value)) if key.trim().starts_with("Exec") => {
                replaced += 1;
                let program = value.trim().trim_start_matches(['-', '@', ':', '+', '!']);
                let args = program.split_once(' ').map_or("", |(_, args)| args);
                format!("{}={stand_in} {args}", key.trim())
            }
            _ => line.to_string(),
        })
        .collect();
    assert!(replaced > 0, "the unit has no Exec*= line to stand in for");
    let path = dir.path().join(UNIT_NAME);
    std::fs::write(&path, copy.join("\n") + "\n").unwrap();
    (dir, path)
}

fn analyze(args: &[&str], unit: &Path) -> Output {
    let tool = systemd_analyze();
    Command::new(&tool)
        .args(args)
        .arg(unit)
        .current_dir(unit.parent().unwrap())
        .env("SYSTEMD_LOG_COLOR", "0")
        .env("SYSTEMD_PAGER", "cat")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()))
}

/// The `[Service]` (and other) assignments of the unit, in order: (key, value).
fn directives(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(['#', ';', '[']))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect()
}

fn values<'a>(all: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    all.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
}

#[test]
fn systemd_analyze_verify_accepts_the_unit_without_a_single_warning() {
    let (_dir, unit) = unit_copy();
    let output = analyze(&["verify", "--no-pager"], &unit);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown = format!("status {}\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);
    assert!(output.status.success(), "systemd-analyze verify failed:\n{shown}");

    let bad = ["ignoring", "unknown key", "unknown section", "failed", "warning", "deprecated"];
    for line in stderr.lines().chain(stdout.lines()) {
        let lower = line.to_lowercase();
        assert!(!bad.iter().any(|word| lower.contains(word)), "systemd-analyze verify complains: {line}\n{shown}");
        // verify is silent about a good unit; anything it says about ours is a finding.
        assert!(!line.contains(UNIT_NAME), "systemd-analyze verify says: {line}\n{shown}");
    }
}

#[test]
fn the_unit_exposure_is_rated_at_most_2_0() {
    let (_dir, unit) = unit_copy();
    let output = analyze(&["security", "--offline=true", "--no-pager"], &unit);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stdout.lines().find(|l| l.contains("Overall exposure level for")).unwrap_or_else(|| {
        panic!(
            "no 'Overall exposure level' line from systemd-analyze security (status {}):\n{stdout}\n{stderr}",
            output.status
        )
    });
    // "→ Overall exposure level for nhacviec.service: 1.1 OK 🙂"
    let score: f64 = line
        .rsplit_once(": ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the exposure from {line:?}"));
    assert!(score <= MAX_EXPOSURE, "exposure {score} is above {MAX_EXPOSURE}; the checks that cost most:\n{stdout}");
    assert!(stderr.trim().is_empty(), "systemd-analyze security complains:\n{stderr}");
}

#[test]
fn the_unit_carries_the_directives_the_daemon_relies_on() {
    let text = unit_text();
    let all = directives(&text);
    let one = |key: &str| -> &str {
        let found = values(&all, key);
        assert_eq!(found.len(), 1, "{key}= should appear exactly once, found {found:?}");
        found[0]
    };

    assert_eq!(one("Type"), "notify");
    assert_eq!(one("NotifyAccess"), "main");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("StateDirectory"), "nhacviec");
    assert_eq!(one("ConfigurationDirectory"), "nhacviec");
    assert!(one("ExecStart").ends_with("nhacviec run"), "ExecStart= should start `nhacviec run`");

    let watchdog: u64 = one("WatchdogSec")
        .parse()
        .expect("WatchdogSec= in plain seconds, so the half-period ping is easy to reason about");
    let stop: u64 = one("TimeoutStopSec").parse().expect("TimeoutStopSec= in plain seconds");
    assert!(watchdog >= 10, "WatchdogSec={watchdog} leaves a scan no time");
    assert!(stop > 0);

    // The credential's name is what the password file setting points at.
    let credential = one("LoadCredential");
    let (name, source) = credential.split_once(':').expect("LoadCredential=NAME:PATH");
    assert!(source.starts_with("/etc/nhacviec/"), "{credential}");
    let environment = values(&all, "Environment");
    assert!(
        environment.contains(&format!("NHACVIEC__MAIL__SMTP__PASSWORD_FILE={name}").as_str()),
        "Environment=NHACVIEC__MAIL__SMTP__PASSWORD_FILE={name} missing: {environment:?}"
    );
    assert!(
        environment.contains(&"NHACVIEC__DATABASE__URL=sqlite:///var/lib/nhacviec/nhacviec.db"),
        "the SQLite database should live in the state directory: {environment:?}"
    );
}
