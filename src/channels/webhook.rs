//! The generic webhook channel: a stored JSON notice is POSTed to the agency's endpoint
//! (its bridge to Zalo OA, SMS or the document system), signed with HMAC-SHA256 so the
//! receiver can verify it came from nhacviec, and carrying the outbox key as an
//! idempotency key, identical on every retry, so the receiver can drop duplicates.

use super::http_status::{classify, network_error};
use super::{Built, Channel, DeliveryError, Envelope, Stored};
use crate::domain;
use crate::render::{ReminderInput, Renderer};
use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "X-Nhacviec-Signature";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

pub struct WebhookChannel {
    client: reqwest::Client,
    url: String,
    secret: Vec<u8>,
}

impl WebhookChannel {
    pub fn new(url: &str, secret: &[u8], timeout: Duration) -> Result<WebhookChannel, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(WebhookChannel { client, url: url.to_string(), secret: secret.to_vec() })
    }

    /// Posts one stored payload under `idempotency_key`.
    pub async fn send(&self, idempotency_key: &str, payload: &str) -> Result<(), DeliveryError> {
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&self.secret, payload.as_bytes()))
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .body(payload.to_string())
            .send()
            .await
            .map_err(|e| network_error(&e))?;
        let status = response.status().as_u16();
        let wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = response.text().await.unwrap_or_default();
        classify(status, wait, &body)
    }
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`, as GitHub-style receivers expect.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC accepts keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl Channel for WebhookChannel {
    fn name(&self) -> domain::Channel {
        domain::Channel::Webhook
    }

    /// Receivers get one request per notice, idempotent by its key.
    fn one_notice_per_message(&self) -> bool {
        true
    }

    /// The JSON a receiver gets for one notice (documented in the README); a confidential
    /// directive's title is left out.
    fn reminder(&self, _renderer: &Renderer, input: &ReminderInput<'_>, to: &Envelope<'_>) -> Result<Built, String> {
        let notice = input.notices.first().ok_or("no notice to send")?;
        let directive = notice.directive.as_deref().and_then(|code| input.directives.get(code).copied());
        let shown = directive.filter(|d| !d.confidential);
        let person = to.person;
        let payload = json!({
            "key": notice.key,
            "kind": notice.kind,
            "directive": notice.directive,
            "title": shown.map(|d| d.title.clone()),
            "unit": directive.map(|d| d.unit.clone()),
            "confidential": directive.is_some_and(|d| d.confidential),
            "recipient": person.code,
            "recipient_name": person.name,
            "webhook_id": person.address_on(domain::Channel::Webhook),
            "stage": notice.stage,
            "due_on": notice.effective_due,
            "days_overdue": notice.days_overdue,
        });
        Ok(Built::chat(payload.to_string()))
    }

    /// Posted under the notice's key (from the payload), the same on every retry.
    fn send<'a>(&'a self, message: Stored<'a>) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let key = serde_json::from_str::<serde_json::Value>(message.payload)
                .ok()
                .and_then(|v| v["key"].as_str().map(String::from))
                .unwrap_or_else(|| message.message_id.to_string());
            WebhookChannel::send(self, &key, message.payload).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
