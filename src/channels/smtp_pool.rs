//! A small pool of SMTP connections (lettre's `AsyncSmtpConnection`) on sockets with
//! TCP_NODELAY, used for plain and STARTTLS servers. lettre writes a message body and its
//! closing "." in two writes; with Nagle's algorithm on, the second waits for the server's
//! delayed ACK (~40 ms on Linux), capping a connection near 25 messages a second. At most
//! `size` connections exist; a connection that fails or is abandoned (its send timed out)
//! is dropped, never reused.

use super::DeliveryError;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailParameter};
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// How the connection is secured.
#[derive(Clone)]
pub enum Security {
    Plain,
    StartTls(TlsParameters),
    /// Implicit TLS (port 465).
    Tls(TlsParameters),
}

/// Where in a mail transaction a reply came: it says who is at fault for a failure. (A
/// failure before the transaction — connecting, greeting, STARTTLS, AUTH — is always the
/// server's or the configuration's: see [`SmtpPool::connect`].)
#[derive(Debug, Clone, Copy)]
enum Step {
    MailFrom,
    RcptTo,
    Data,
}

pub struct SmtpPool {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    connect_timeout: Duration,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
    slots: Semaphore,
}

impl SmtpPool {
    pub fn new(
        host: String,
        port: u16,
        security: Security,
        credentials: Option<Credentials>,
        size: usize,
        connect_timeout: Duration,
    ) -> SmtpPool {
        SmtpPool {
            host,
            port,
            security,
            credentials,
            hello: ClientId::default(),
            connect_timeout,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(size.max(1)),
        }
    }

    /// Sends one message on an idle connection, or a new one. A reused connection the
    /// server has meanwhile closed fails before the server takes anything, so that one
    /// failure is retried once on a fresh connection.
    pub async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), DeliveryError> {
        let _slot =
            self.slots.acquire().await.map_err(|_| DeliveryError::Transient("the SMTP pool is shut down".into()))?;
        if let Some(mut conn) = self.take_idle() {
            match transaction(&mut conn, envelope, raw).await {
                Ok(()) => {
                    self.give_back(conn);
                    return Ok(());
                }
                Err((step, e)) if e.is_response() || e.is_transient() || e.is_permanent() => {
                    conn.abort().await;
                    return Err(classify(step, &e));
                }
                Err(_) => conn.abort().await,
            }
        }
        let mut conn = self.connect().await?;
        match transaction(&mut conn, envelope, raw).await {
            Ok(()) => {
                self.give_back(conn);
                Ok(())
            }
            Err((step, e)) => {
                conn.abort().await;
                Err(classify(step, &e))
            }
        }
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        self.idle.lock().ok()?.pop()
    }

    fn give_back(&self, conn: AsyncSmtpConnection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }

    /// A new session, greeted, secured and authenticated. Any failure here is the server's
    /// or the configuration's, never the recipient's.
    async fn connect(&self) -> Result<AsyncSmtpConnection, DeliveryError> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            DeliveryError::Unavailable(format!("{what} {}:{}: {e}", self.host, self.port))
        };
        let mut conn = match &self.security {
            Security::Tls(params) => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.connect_timeout),
                &self.hello,
                Some(params.clone()),
                None,
            )
            .await
            .map_err(|e| unavailable("cannot open a TLS session with", &e))?,
            Security::Plain | Security::StartTls(_) => {
                let tcp = TcpStream::connect((self.host.as_str(), self.port))
                    .await
                    .map_err(|e| unavailable("cannot connect to", &e))?;
                // Best effort: without it delivery is slower, not wrong.
                let _ = tcp.set_nodelay(true);
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                    .await
                    .map_err(|e| unavailable("no SMTP greeting from", &e))?
            }
        };
        if let Security::StartTls(params) = &self.security {
            if let Err(e) = conn.starttls(params.clone(), &self.hello).await {
                conn.abort().await;
                return Err(unavailable("STARTTLS failed with", &e));
            }
        }
        if let Some(credentials) = &self.credentials {
            if let Err(e) = conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await {
                conn.abort().await;
                return Err(unavailable("AUTH failed with", &e));
            }
        }
        Ok(conn)
    }
}

/// One mail transaction (MAIL FROM, RCPT TO, DATA) on an open session, saying at which step
/// a failure came.
async fn transaction(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    raw: &[u8],
) -> Result<(), (Step, lettre::transport::smtp::Error)> {
    let mut options = Vec::new();
    let non_ascii = envelope.from().into_iter().chain(envelope.to()).any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii && conn.server_info().supports_feature(Extension::SmtpUtfEight) {
        options.push(MailParameter::SmtpUtfEight);
    }
    conn.command(Mail::new(envelope.from().cloned(), options)).await.map_err(|e| (Step::MailFrom, e))?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), Vec::new())).await.map_err(|e| (Step::RcptTo, e))?;
    }
    conn.command(Data).await.map_err(|e| (Step::Data, e))?;
    conn.message(raw).await.map_err(|e| (Step::Data, e))?;
    Ok(())
}

/// Who caused a failure, from where it came: a 5xx answer to the recipient (RCPT TO, or the
/// message after DATA) is permanent and the only bounce; a 5xx to MAIL FROM means the server
/// will not take our sender (configuration); 4xx, timeouts and dropped connections are
/// worth a retry.
fn classify(step: Step, e: &lettre::transport::smtp::Error) -> DeliveryError {
    let text = e.to_string();
    match step {
        _ if e.is_transient() => DeliveryError::Transient(text),
        Step::MailFrom if e.is_permanent() => {
            DeliveryError::Unavailable(format!("the server refused our sender: {text}"))
        }
        Step::RcptTo | Step::Data if e.is_permanent() => DeliveryError::Permanent(text),
        // lettre refusing on its own, before the server said anything of this recipient.
        _ if e.is_client() => DeliveryError::Unavailable(text),
        _ => DeliveryError::Transient(text),
    }
}
