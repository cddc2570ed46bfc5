//! The email channel: composes MIME messages (multipart/alternative, text then HTML, with a
//! stable Message-ID) and sends stored messages through lettre's pooled async SMTP transport,
//! one recipient per transaction, each send under a timeout — or writes `.eml` files.

use super::smtp_pool::{Security, SmtpPool};
use super::{Built, Channel, DeliveryError, Envelope, Stored};
use crate::config::{Config, ConfigError, MailTransport, TlsMode};
use crate::domain;
use crate::render::{ReminderInput, Rendered, Renderer};
use chrono::DateTime;
use chrono_tz::Tz;
use futures_util::future::BoxFuture;
use lettre::message::header::{ContentType, HeaderName, HeaderValue, MessageId};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::{Address, Message};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The pieces of one email before it becomes bytes.
pub struct Draft<'a> {
    pub from: &'a Mailbox,
    pub to_name: &'a str,
    pub to_address: &'a str,
    pub subject: &'a str,
    pub text: String,
    pub html: String,
    pub message_id: &'a str,
    /// When it was built, in the agency's time zone: the `Date` header keeps its offset.
    pub date: DateTime<Tz>,
    /// `Reply-To`, when `mail.reply_to` is set.
    pub reply_to: Option<&'a Mailbox>,
    /// `List-Id` (RFC 2919): `nhacviec.<domain>`, so mail filters can sort the service's mail.
    pub list_id: &'a str,
}

/// Builds the RFC 5322 bytes (ASCII: lettre encodes Vietnamese headers per RFC 2047 and
/// bodies as quoted-printable or base64, with CRLF line ends).
///
/// Never panics on content: header text is cleaned of control characters first (lettre's
/// header `Display` fails on a line break in a name, and its `to_string` then panics), and
/// any panic left in lettre is caught and returned as an error for this one message.
pub fn compose(draft: Draft<'_>) -> Result<String, BuildError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compose_checked(draft)))
        .unwrap_or_else(|_| Err(BuildError("the mail library failed on this message's content".into())))
}

/// Why a message could not be built: it is dead-lettered with this reason, alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// Text fit for a header: each run of control characters (line breaks, tabs, NUL…) becomes
/// one space. A header cannot carry them, and a line break would start a new header. Text
/// without them is returned as it is.
pub fn header_text(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for c in text.chars() {
        if c.is_control() {
            if !in_run {
                out.push(' ');
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    out.trim().to_string()
}

fn compose_checked(draft: Draft<'_>) -> Result<String, BuildError> {
    let address: Address =
        draft.to_address.parse().map_err(|e| BuildError(format!("invalid address {:?}: {e}", draft.to_address)))?;
    let to = Mailbox::new(Some(header_text(draft.to_name)), address);
    let mut builder = Message::builder()
        .from(draft.from.clone())
        .to(to)
        .subject(header_text(draft.subject))
        .header(MessageId::from(draft.message_id.to_string()));
    if let Some(reply_to) = draft.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    let mut message = builder
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(crlf(draft.text)))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(crlf(draft.html))),
        )
        .map_err(|e| BuildError(format!("cannot build message: {e}")))?;
    let headers = message.headers_mut();
    // lettre writes `Date` in UTC; the agency's readers see their own offset (+0700).
    headers.insert_raw(raw_header("Date", draft.date.to_rfc2822()));
    // RFC 3834: no out-of-office or other automatic reply to an automatic message.
    headers.insert_raw(raw_header("Auto-Submitted", "auto-generated".into()));
    headers.insert_raw(raw_header("X-Auto-Response-Suppress", "All".into()));
    headers.insert_raw(raw_header("List-Id", format!("Nhac viec <{}>", draft.list_id)));
    String::from_utf8(message.formatted()).map_err(|e| BuildError(format!("message is not ASCII/UTF-8: {e}")))
}

/// A header whose value is ASCII already (a date, a token, a list id).
fn raw_header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// The body with CRLF line ends, as lettre would make it — but in one linear pass. lettre
/// inserts each missing `\r` with `String::insert`, moving the rest of the body every time:
/// quadratic, and two thirds of a national cycle's time went there (a chief's message lists
/// thousands of overdue items). Given CRLF already, lettre leaves the body as it is.
fn crlf(body: String) -> String {
    if !body.contains('\n') {
        return body;
    }
    let mut out = String::with_capacity(body.len() + body.len() / 32);
    // Line by line (found with memchr), not char by char: this ran for every byte of a
    // national round's 200 MB of MIME.
    for line in body.split_inclusive('\n') {
        match line.strip_suffix('\n') {
            Some(content) if !content.ends_with('\r') => {
                out.push_str(content);
                out.push_str("\r\n");
            }
            _ => out.push_str(line),
        }
    }
    out
}

enum Transport {
    /// Our own small pool of lettre connections (plain, STARTTLS or implicit TLS), which
    /// knows at which step of the dialogue a failure came (see [`SmtpPool`]).
    Pooled(Box<SmtpPool>),
    File(PathBuf),
}

/// Sends stored email messages.
pub struct EmailChannel {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    list_id: String,
    transport: Transport,
    timeout: Duration,
}

impl EmailChannel {
    /// Every way this can fail is the configuration's (a credential file, the CA file, the
    /// file transport's directory), so the error is a [`ConfigError`] naming the key.
    pub fn from_config(config: &Config) -> Result<EmailChannel, ConfigError> {
        let timeout = Duration::from_secs(config.mail.smtp.timeout_seconds);
        let transport = match config.mail.transport {
            MailTransport::File => {
                let dir = PathBuf::from(&config.mail.file_dir);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| ConfigError::key("mail.file_dir", format!("{}: cannot create: {e}", dir.display())))?;
                Transport::File(dir)
            }
            MailTransport::Smtp => Transport::Pooled(Box::new(SmtpPool::from_config(config)?)),
        };
        let domain = match config.mail.message_id_domain.trim() {
            "" => config.from.email.domain().to_string(),
            configured => configured.to_string(),
        };
        let list_id = format!("nhacviec.{domain}");
        Ok(EmailChannel { from: config.from.clone(), reply_to: config.reply_to.clone(), list_id, transport, timeout })
    }

    pub fn from_mailbox(&self) -> &Mailbox {
        &self.from
    }

    /// Sends one stored message to its one recipient, within the send timeout.
    pub async fn send(&self, message_id: &str, address: &str, raw: &str) -> Result<(), DeliveryError> {
        let pool = match &self.transport {
            Transport::File(dir) => return write_eml(dir, message_id, raw).await,
            Transport::Pooled(pool) => pool,
        };
        let to: Address =
            address.parse().map_err(|e| DeliveryError::Permanent(format!("invalid address {address:?}: {e}")))?;
        let envelope = lettre::address::Envelope::new(Some(self.from.email.clone()), vec![to])
            .map_err(|e| DeliveryError::Permanent(format!("envelope: {e}")))?;
        match tokio::time::timeout(self.timeout, pool.send(&envelope, raw.as_bytes())).await {
            Ok(result) => result,
            Err(_) => Err(timed_out(self.timeout)),
        }
    }
}

fn timed_out(timeout: Duration) -> DeliveryError {
    DeliveryError::Transient(format!(
        "no answer within {}s (the server may still have accepted it; a retry keeps the same Message-ID)",
        timeout.as_secs()
    ))
}

async fn write_eml(dir: &Path, message_id: &str, raw: &str) -> Result<(), DeliveryError> {
    let name: String = message_id
        .trim_matches(|c| c == '<' || c == '>')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(format!("{name}.eml"));
    let shown = path.display().to_string();
    let raw = raw.to_owned();
    // Written and renamed in one trip to the blocking pool (two with tokio::fs).
    let written =
        tokio::task::spawn_blocking(move || std::fs::write(&tmp, raw).and_then(|()| std::fs::rename(&tmp, &path)))
            .await
            .map_err(|e| DeliveryError::Transient(format!("{shown}: {e}")))?;
    written.map_err(|e| DeliveryError::Transient(format!("{shown}: {e}")))
}

/// TLS settings for the server (with the extra CA, if configured); `None` without TLS.
fn tls_parameters(config: &Config) -> Result<Option<TlsParameters>, ConfigError> {
    let smtp = &config.mail.smtp;
    if config.mail.smtp.tls == TlsMode::None {
        return Ok(None);
    }
    let mut params = TlsParameters::builder(smtp.host.clone());
    let ca_error = |reason: String| ConfigError::key("mail.smtp.ca_file", format!("{}: {reason}", smtp.ca_file));
    if !smtp.ca_file.is_empty() {
        let pem = std::fs::read(&smtp.ca_file).map_err(|e| ca_error(format!("cannot read: {e}")))?;
        // lettre takes a file without any PEM block as zero certificates, silently.
        if !pem.windows(PEM_CERTIFICATE.len()).any(|w| w == PEM_CERTIFICATE) {
            return Err(ca_error("holds no PEM certificate".into()));
        }
        let cert = Certificate::from_pem(&pem).map_err(|e| ca_error(format!("not a PEM certificate: {e}")))?;
        params = params.add_root_certificate(cert);
    }
    // The certificates' DER is parsed only here, so with a CA file that is what failed.
    params.build_rustls().map(Some).map_err(|e| {
        if smtp.ca_file.is_empty() {
            ConfigError::key("mail.smtp", format!("cannot set up TLS for {}: {e}", smtp.host))
        } else {
            ca_error(format!("not a usable certificate: {e}"))
        }
    })
}

const PEM_CERTIFICATE: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// AUTH credentials, the password read from its file; `None` without a user name.
fn credentials(config: &Config) -> Result<Option<Credentials>, ConfigError> {
    let smtp = &config.mail.smtp;
    if smtp.username.is_empty() {
        return Ok(None);
    }
    let password = read_credential("mail.smtp.password_file", &smtp.password_file)?;
    Ok(Some(Credentials::new(smtp.username.clone(), password)))
}

impl SmtpPool {
    fn from_config(config: &Config) -> Result<SmtpPool, ConfigError> {
        let smtp = &config.mail.smtp;
        let security = match (config.mail.smtp.tls, tls_parameters(config)?) {
            (TlsMode::Tls, Some(params)) => Security::Tls(params),
            (TlsMode::StartTls, Some(params)) => Security::StartTls(params),
            _ => Security::Plain,
        };
        Ok(SmtpPool::new(
            smtp.host.clone(),
            smtp.port,
            security,
            credentials(config)?,
            usize::try_from(smtp.pool_size).unwrap_or(1),
            Duration::from_secs(smtp.timeout_seconds),
        ))
    }
}

/// The secret in credential file `name` (see [`resolve_credential`]) for configuration key
/// `key`, without the trailing newline editors add. A file that cannot be read, or is empty,
/// is the configuration's fault: the error names the key and the path, and the OS reason
/// once.
pub fn read_credential(key: &str, name: &str) -> Result<String, ConfigError> {
    let path = resolve_credential(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError::key(key, format!("{}: cannot read: {e}", path.display())))?;
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(ConfigError::key(key, format!("{}: the file is empty", path.display())));
    }
    Ok(secret.to_string())
}

/// A bare file name is looked up in systemd's `$CREDENTIALS_DIRECTORY` (LoadCredential=).
pub fn resolve_credential(name: &str) -> PathBuf {
    let path = PathBuf::from(name);
    if path.components().count() == 1 {
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let candidate = PathBuf::from(dir).join(&path);
            if candidate.exists() {
                return candidate;
            }
        }
    }
    path
}

impl EmailChannel {
    /// The MIME message of one rendering, to `to`.
    fn build(&self, rendered: Rendered, to: &Envelope<'_>) -> Result<Built, String> {
        let subject = header_text(&rendered.subject);
        let raw = self
            .compose_to(&to.person.name, &to.person.email, rendered, to.message_id, to.now)
            .map_err(|e| format!("cannot be built: {e}"))?;
        Ok(Built { subject, payload: raw })
    }

    /// The MIME bytes of `rendered` from this channel's sender to `name <address>`, with
    /// every header the service sets (Reply-To, List-Id, Auto-Submitted, Date in `date`'s
    /// offset).
    pub fn compose_to(
        &self,
        name: &str,
        address: &str,
        rendered: Rendered,
        message_id: &str,
        date: DateTime<Tz>,
    ) -> Result<String, BuildError> {
        compose(Draft {
            from: &self.from,
            to_name: name,
            to_address: address,
            subject: &rendered.subject,
            text: rendered.text,
            html: rendered.html,
            message_id,
            date,
            reply_to: self.reply_to.as_ref(),
            list_id: &self.list_id,
        })
    }
}

impl Channel for EmailChannel {
    fn name(&self) -> domain::Channel {
        domain::Channel::Email
    }

    fn reminder(&self, renderer: &Renderer, input: &ReminderInput<'_>, to: &Envelope<'_>) -> Result<Built, String> {
        let rendered = renderer.reminder(input).map_err(|e| format!("cannot be rendered: {e}"))?;
        self.build(rendered, to)
    }

    fn report(&self, rendered: Rendered, to: &Envelope<'_>) -> Result<Built, String> {
        self.build(rendered, to)
    }

    fn send<'a>(&'a self, message: Stored<'a>) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(EmailChannel::send(self, message.message_id, message.address, message.payload))
    }
}

#[cfg(test)]
mod tests {
    use super::{compose, crlf, header_text, Draft};

    fn draft<'a>(from: &'a lettre::message::Mailbox, name: &'a str, subject: &'a str) -> Draft<'a> {
        Draft {
            from,
            to_name: name,
            to_address: "pp@x.vn",
            subject,
            text: "t".into(),
            html: "h".into(),
            message_id: "<1@b.vn>",
            date: chrono::DateTime::from_timestamp(1_662_339_600, 0)
                .unwrap()
                .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh),
            reply_to: None,
            list_id: "nhacviec.b.vn",
        }
    }

    #[test]
    fn a_line_break_in_a_name_or_subject_is_not_a_new_header() {
        let from: lettre::message::Mailbox = "Thanh tra <a@b.vn>".parse().unwrap();
        for name in ["A\nB", "A\rB", "A\r\nBcc: x@y.vn", "\0A\u{85}B\t"] {
            let raw = compose(draft(&from, name, "Hạn\r\nBcc: evil@x.vn")).expect("built");
            assert!(!raw.lines().any(|l| l.starts_with("Bcc:")), "no header is injected: {raw}");
            let to: Vec<&str> = raw.lines().filter(|l| l.starts_with("To:")).collect();
            assert!(to.len() == 1 && to[0].ends_with(" <pp@x.vn>"), "{raw}");
        }
        assert_eq!(header_text("A\r\nB\t"), "A B");
        let raw = compose(draft(&from, "A\nB", "S")).expect("built");
        assert!(raw.lines().any(|l| l == "To: \"A B\" <pp@x.vn>"), "{raw}");
        assert_eq!(header_text("Nguyễn  Thị Liên"), "Nguyễn  Thị Liên");
    }

    #[test]
    fn a_bad_address_is_an_error_not_a_panic() {
        let from: lettre::message::Mailbox = "Thanh tra <a@b.vn>".parse().unwrap();
        let mut d = draft(&from, "A", "S");
        d.to_address = "not an address\n";
        assert!(compose(d).is_err());
    }

    #[test]
    fn line_ends_become_crlf_once() {
        assert_eq!(crlf("\nKính gửi\r\nđồng chí\n\nHạn: 15/09".into()), "\r\nKính gửi\r\nđồng chí\r\n\r\nHạn: 15/09");
        assert_eq!(crlf("một dòng".into()), "một dòng");
        assert_eq!(crlf("cuối\n".into()), "cuối\r\n");
        assert_eq!(crlf("đã đúng\r\n".into()), "đã đúng\r\n");
    }
}
