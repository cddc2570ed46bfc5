//! sd_notify: how the daemon (scheduler) tells systemd it is ready, what it is doing, that its
//! main loop is alive, and that it is stopping. Plain datagrams on `$NOTIFY_SOCKET`, no extra
//! crate. Invariant: notification never fails the daemon — without a socket every call is a
//! no-op, and a failed send is logged at debug and forgotten.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Where systemd listens: a path, or a Linux abstract socket (`@name` in `NOTIFY_SOCKET`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Target {
    fn parse(socket: OsString) -> Option<Target> {
        let bytes = socket.as_bytes();
        match bytes.first() {
            None => None,
            Some(b'@') => Some(Target::Abstract(bytes[1..].to_vec())),
            Some(_) => Some(Target::Path(PathBuf::from(socket))),
        }
    }
}

/// A client for systemd's notification socket; cheap to clone and share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifier {
    target: Option<Target>,
    watchdog_usec: Option<u64>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`. The environment is left
    /// as it is: nothing this process starts is expected to talk to systemd.
    pub fn from_env() -> Notifier {
        Notifier::from_vars(
            std::env::var_os("NOTIFY_SOCKET"),
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        )
    }

    /// A notifier for `socket` (a path, or `@name` for an abstract socket) with a watchdog
    /// period of `watchdog_usec` microseconds; `None` disables either.
    pub fn new(socket: Option<PathBuf>, watchdog_usec: Option<u64>) -> Notifier {
        Notifier {
            target: socket.and_then(|s| Target::parse(s.into_os_string())),
            watchdog_usec: watchdog_usec.filter(|&usec| usec > 0),
        }
    }

    fn from_vars(socket: Option<OsString>, usec: Option<&str>, pid: Option<&str>, our_pid: u32) -> Notifier {
        // Like sd_watchdog_enabled(): WATCHDOG_PID, when set, names the process the watchdog
        // is meant for; a child that inherited the variables must not ping on its parent's
        // behalf, and an unreadable value disables the watchdog rather than guessing.
        let ours = match pid {
            None => true,
            Some(pid) => pid.trim().parse::<u32>().is_ok_and(|pid| pid == our_pid),
        };
        let watchdog_usec = usec.filter(|_| ours).and_then(|usec| usec.trim().parse::<u64>().ok());
        Notifier::new(socket.map(PathBuf::from), watchdog_usec)
    }

    /// True when there is a socket to notify.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Tells systemd start-up is complete (`Type=notify` units count as started only now).
    pub fn ready(&self) {
        self.notify("READY=1");
    }

    /// A one-line status shown by `systemctl status`.
    pub fn status(&self, text: &str) {
        // A newline would end the STATUS= assignment and start another (unknown) one.
        let line: String = text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
        self.notify(&format!("STATUS={line}"));
    }

    /// Tells systemd the main loop is alive; withhold it when the loop is stuck.
    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }

    /// Tells systemd shutdown has begun, so it waits for us rather than declaring a failure.
    pub fn stopping(&self) {
        self.notify("STOPPING=1");
    }

    /// How often to call [`Notifier::watchdog`]: half the watchdog period, as systemd
    /// recommends, so one late ping does not get the service killed. `None` when systemd
    /// is not watching.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.target.as_ref()?;
        self.watchdog_usec.map(|usec| Duration::from_micros(usec / 2))
    }

    /// Sends one datagram of newline-separated `KEY=VALUE` assignments.
    pub fn notify(&self, state: &str) {
        let Some(target) = &self.target else {
            return;
        };
        if let Err(e) = send(target, state.as_bytes()) {
            tracing::debug!(error = %e, state, "sd_notify failed; carrying on");
        }
    }
}

fn send(target: &Target, datagram: &[u8]) -> std::io::Result<()> {
    // A fresh unbound socket per message, as libsystemd does: notifications are rare, and
    // this keeps the notifier free of state that could go stale across a socket restart.
    let socket = UnixDatagram::unbound()?;
    let sent = match target {
        Target::Path(path) => socket.send_to(datagram, path)?,
        Target::Abstract(name) => send_abstract(&socket, name, datagram)?,
    };
    if sent != datagram.len() {
        return Err(std::io::Error::other(format!("sent {sent} of {} bytes", datagram.len())));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &[u8], datagram: &[u8]) -> std::io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(datagram, &addr)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_socket: &UnixDatagram, _name: &[u8], _datagram: &[u8]) -> std::io::Result<usize> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "abstract notification sockets exist only on Linux"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(dir: &tempfile::TempDir) -> (UnixDatagram, PathBuf) {
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        // A missing datagram must fail the test, not hang it.
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (socket, path)
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn systemd_receives_ready_status_watchdog_and_stopping_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (socket, path) = listener(&dir);
        let notifier = Notifier::new(Some(path), Some(120_000_000));

        notifier.ready();
        notifier.status("next scan 08:15; backlog 3");
        notifier.watchdog();
        notifier.stopping();

        assert_eq!(receive(&socket), "READY=1");
        assert_eq!(receive(&socket), "STATUS=next scan 08:15; backlog 3");
        assert_eq!(receive(&socket), "WATCHDOG=1");
        assert_eq!(receive(&socket), "STOPPING=1");
    }

    #[test]
    fn the_watchdog_is_pinged_at_half_its_period() {
        let notifier = Notifier::new(Some(PathBuf::from("/run/x.sock")), Some(120_000_000));
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn a_status_with_a_newline_stays_one_assignment() {
        let dir = tempfile::tempdir().unwrap();
        let (socket, path) = listener(&dir);
        Notifier::new(Some(path), None).status("scan failed:\nREADY=1");
        assert_eq!(receive(&socket), "STATUS=scan failed: READY=1");
    }

    #[test]
    fn without_a_socket_every_call_is_a_harmless_no_op() {
        let notifier = Notifier::from_vars(None, Some("120000000"), None, 42);
        assert!(!notifier.is_enabled());
        notifier.ready();
        notifier.status("x");
        notifier.watchdog();
        notifier.stopping();
        assert_eq!(notifier.watchdog_interval(), None);
    }

    #[test]
    fn a_missing_socket_file_is_ignored_rather_than_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::new(Some(dir.path().join("gone.sock")), None);
        assert!(notifier.is_enabled());
        notifier.ready();
    }

    #[test]
    fn the_watchdog_applies_only_to_the_process_named_by_watchdog_pid() {
        let socket = || Some(OsString::from("/run/systemd/notify"));
        let mine = Notifier::from_vars(socket(), Some("10000000"), Some("42"), 42);
        assert_eq!(mine.watchdog_interval(), Some(Duration::from_secs(5)));
        let unset = Notifier::from_vars(socket(), Some("10000000"), None, 42);
        assert_eq!(unset.watchdog_interval(), Some(Duration::from_secs(5)));
        let parents = Notifier::from_vars(socket(), Some("10000000"), Some("41"), 42);
        assert_eq!(parents.watchdog_interval(), None);
        let garbled = Notifier::from_vars(socket(), Some("10000000"), Some("x"), 42);
        assert_eq!(garbled.watchdog_interval(), None);
    }

    #[test]
    fn an_unreadable_or_zero_watchdog_period_disables_the_watchdog() {
        let socket = || Some(OsString::from("/run/systemd/notify"));
        assert_eq!(Notifier::from_vars(socket(), Some("soon"), None, 1).watchdog_interval(), None);
        assert_eq!(Notifier::from_vars(socket(), Some("0"), None, 1).watchdog_interval(), None);
        assert_eq!(Notifier::from_vars(socket(), None, None, 1).watchdog_interval(), None);
    }

    #[test]
    fn an_empty_notify_socket_means_no_socket() {
        let notifier = Notifier::from_vars(Some(OsString::new()), None, None, 1);
        assert!(!notifier.is_enabled());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_at_sign_names_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("nhacviec-test-{}", uuid::Uuid::new_v4().simple());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

        Notifier::from_vars(Some(OsString::from(format!("@{name}"))), None, None, 1).ready();

        assert_eq!(receive(&socket), "READY=1");
    }
}
