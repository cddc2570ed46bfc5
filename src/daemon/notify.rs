//! sd_notify: how the daemon (scheduler) tells systemd it is ready, what it is doing, that its
//! main loop is alive, and that it is stopping — through the `sd-notify` crate. Invariant:
//! notification never fails the daemon — without `$NOTIFY_SOCKET` every call is a no-op, and
//! a failed send is logged at debug and forgotten.

use sd_notify::NotifyState;
use std::ffi::OsString;
use std::time::Duration;

/// A client for systemd's notification socket; cheap to clone and share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifier {
    socket: Option<OsString>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`. The environment is left
    /// as it is: nothing this process starts is expected to talk to systemd.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty());
        let watchdog = if socket.is_some() { watchdog_period() } else { None };
        Notifier { socket, watchdog }
    }

    /// True when there is a socket to notify.
    pub fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Tells systemd start-up is complete (`Type=notify` units count as started only now).
    pub fn ready(&self) {
        self.send(&[NotifyState::Ready]);
    }

    /// A one-line status shown by `systemctl status`.
    pub fn status(&self, text: &str) {
        self.send(&[NotifyState::Status(&status_line(text))]);
    }

    /// Tells systemd the main loop is alive; withhold it when the loop is stuck.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// Tells systemd shutdown has begun, so it waits for us rather than declaring a failure.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// How often to call [`Notifier::watchdog`]: half the watchdog period, as systemd
    /// recommends, so one late ping does not get the service killed. `None` when systemd
    /// is not watching.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|period| period / 2)
    }

    /// Sends one datagram of `KEY=VALUE` assignments (newline-separated, as `KEY=VALUE` text).
    pub fn notify(&self, state: &str) {
        self.send(&[NotifyState::Custom(state)]);
    }

    fn send(&self, state: &[NotifyState]) {
        let Some(socket) = &self.socket else {
            return;
        };
        let sent = match abstract_name(socket) {
            Some(name) => send_abstract(name, state),
            None => sd_notify::notify(state),
        };
        if let Err(e) = sent {
            let state: Vec<String> = state.iter().map(ToString::to_string).collect();
            tracing::debug!(error = %e, state = %state.join(" "), "sd_notify failed; carrying on");
        }
    }
}

/// The watchdog period systemd set for this process, if any. Like sd_watchdog_enabled(),
/// `WATCHDOG_PID`, when set, names the process it is meant for (a child that inherited the
/// variables must not ping on its parent's behalf); the crate takes an unreadable
/// `WATCHDOG_PID` for an absent one, so that case is refused here first, and a zero period
/// means no watchdog.
fn watchdog_period() -> Option<Duration> {
    if std::env::var_os("WATCHDOG_PID").is_some_and(|pid| pid.to_str().and_then(|p| p.parse::<u32>().ok()).is_none()) {
        return None;
    }
    sd_notify::watchdog_enabled().filter(|period| !period.is_zero())
}

/// A newline would end the STATUS= assignment and start another (unknown) one.
fn status_line(text: &str) -> String {
    text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect()
}

/// `@name` in `NOTIFY_SOCKET` is a Linux abstract socket, which the crate (it connects to a
/// path) does not reach.
fn abstract_name(socket: &OsString) -> Option<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    socket.as_bytes().strip_prefix(b"@")
}

#[cfg(target_os = "linux")]
fn send_abstract(name: &[u8], state: &[NotifyState]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    // The same datagram the crate sends: each assignment on its own line.
    let datagram: String = state.iter().map(|s| format!("{s}\n")).collect();
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    let sent = std::os::unix::net::UnixDatagram::unbound()?.send_to_addr(datagram.as_bytes(), &addr)?;
    if sent != datagram.len() {
        return Err(std::io::Error::other(format!("sent {sent} of {} bytes", datagram.len())));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_name: &[u8], _state: &[NotifyState]) -> std::io::Result<()> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "abstract notification sockets exist only on Linux"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_with_a_newline_stays_one_assignment() {
        assert_eq!(
            NotifyState::Status(&status_line("scan failed:\nREADY=1")).to_string(),
            "STATUS=scan failed: READY=1"
        );
    }

    #[test]
    fn without_a_socket_every_call_is_a_harmless_no_op() {
        let notifier = Notifier { socket: None, watchdog: None };
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
        let notifier = Notifier { socket: Some(dir.path().join("gone.sock").into_os_string()), watchdog: None };
        assert!(notifier.is_enabled());
        notifier.ready();
    }

    #[test]
    fn the_watchdog_is_pinged_at_half_its_period() {
        let notifier = Notifier { socket: Some("/run/x.sock".into()), watchdog: Some(Duration::from_secs(120)) };
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(60)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_at_sign_names_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("nhacviec-test-{}", uuid::Uuid::new_v4().simple());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

        Notifier { socket: Some(format!("@{name}").into()), watchdog: None }.ready();

        let mut buf = [0u8; 64];
        let n = socket.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }
}
