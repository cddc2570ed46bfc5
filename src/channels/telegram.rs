//! The Telegram channel: a stored `sendMessage` body (chat id + short text, built by the
//! renderer, never carrying a confidential directive's title) is posted to the Bot API.
//! The bot token is read from a credential file, never from the configuration file.

use super::http_status::{classify, network_error};
use super::{Built, Channel, DeliveryError, Envelope, Stored};
use crate::domain;
use crate::render::{ReminderInput, Renderer};
use futures_util::future::BoxFuture;
use std::time::Duration;

pub struct TelegramChannel {
    client: reqwest::Client,
    endpoint: String,
}

impl TelegramChannel {
    /// `api_url` is normally https://api.telegram.org (tests point it at a stand-in).
    pub fn new(api_url: &str, token: &str, timeout: Duration) -> Result<TelegramChannel, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(TelegramChannel {
            client,
            endpoint: format!("{}/bot{}/sendMessage", api_url.trim_end_matches('/'), token.trim()),
        })
    }

    /// Posts one stored `sendMessage` body. Telegram's 429 carries `parameters.retry_after`.
    pub async fn send(&self, payload: &str) -> Result<(), DeliveryError> {
        let response = self
            .client
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload.to_string())
            .send()
            .await
            .map_err(|e| network_error(&e.without_url()))?;
        let status = response.status().as_u16();
        let header_wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = response.text().await.unwrap_or_default();
        let body_wait =
            serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["parameters"]["retry_after"].as_u64());
        classify(status, body_wait.or(header_wait), &body)
    }
}

impl Channel for TelegramChannel {
    fn name(&self) -> domain::Channel {
        domain::Channel::Telegram
    }

    /// A `sendMessage` body: the person's chat id and the short chat text.
    fn reminder(&self, renderer: &Renderer, input: &ReminderInput<'_>, to: &Envelope<'_>) -> Result<Built, String> {
        let text = renderer.chat(input).map_err(|e| format!("cannot be rendered: {e}"))?;
        let chat_id = to.person.address_on(domain::Channel::Telegram).unwrap_or_default();
        Ok(Built::chat(serde_json::json!({ "chat_id": chat_id, "text": text }).to_string()))
    }

    fn send<'a>(&'a self, message: Stored<'a>) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(TelegramChannel::send(self, message.payload))
    }
}
