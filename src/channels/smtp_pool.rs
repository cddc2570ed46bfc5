//! A small pool of SMTP connections (lettre's `AsyncSmtpConnection`) on sockets with
//! TCP_NODELAY, used for plain and STARTTLS servers. lettre writes a message body and its
//! closing "." in two writes; with Nagle's algorithm on, the second waits for the server's
//! delayed ACK (~40 ms on Linux), capping a connection near 25 messages a second. At most
//! `size` connections exist; a connection that fails or is abandoned (its send timed out)
//! is dropped, never reused.

use super::email::classify;
use super::DeliveryError;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::sync::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

pub struct SmtpPool {
    host: String,
    port: u16,
    /// STARTTLS parameters; `None` for a plain connection.
    starttls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
    slots: Semaphore,
}

impl SmtpPool {
    pub fn new(
        host: String,
        port: u16,
        starttls: Option<TlsParameters>,
        credentials: Option<Credentials>,
        size: usize,
    ) -> SmtpPool {
        SmtpPool {
            host,
            port,
            starttls,
            credentials,
            hello: ClientId::default(),
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
            match conn.send(envelope, raw).await {
                Ok(_) => {
                    self.give_back(conn);
                    return Ok(());
                }
                Err(e) if e.is_response() => {
                    conn.abort().await;
                    return Err(classify(&e));
                }
                Err(_) => conn.abort().await,
            }
        }
        let mut conn = self.connect().await?;
        match conn.send(envelope, raw).await {
            Ok(_) => {
                self.give_back(conn);
                Ok(())
            }
            Err(e) => {
                conn.abort().await;
                Err(classify(&e))
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

    async fn connect(&self) -> Result<AsyncSmtpConnection, DeliveryError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| DeliveryError::Transient(format!("cannot connect to {}:{}: {e}", self.host, self.port)))?;
        // Best effort: without it delivery is slower, not wrong.
        let _ = tcp.set_nodelay(true);
        let mut conn =
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await.map_err(|e| classify(&e))?;
        if let Some(params) = &self.starttls {
            if let Err(e) = conn.starttls(params.clone(), &self.hello).await {
                conn.abort().await;
                return Err(classify(&e));
            }
        }
        if let Some(credentials) = &self.credentials {
            if let Err(e) = conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await {
                conn.abort().await;
                return Err(classify(&e));
            }
        }
        Ok(conn)
    }
}
