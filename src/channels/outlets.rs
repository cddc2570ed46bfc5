//! Channels ← configuration: the templates and every channel switched on, built once from the
//! configuration (and their credential files) for delivery to use. `check-config` builds
//! exactly this, so whatever fails here is the configuration's.

use super::email::read_credential;
use super::telegram::TelegramChannel;
use super::webhook::WebhookChannel;
use super::{Channel, EmailChannel};
use crate::config::{Config, ConfigError};
use crate::domain;
use crate::render::Renderer;
use crate::report::render::DigestRenderer;
use std::path::Path;
use std::time::Duration;

/// What turns recorded notices into sent messages: the templates and the channels.
pub struct Outlets {
    pub renderer: Renderer,
    pub digests: DigestRenderer,
    channels: Vec<Box<dyn Channel>>,
    /// The domain of every Message-ID: `mail.message_id_domain`, else the sender's.
    message_id_domain: String,
}

impl Outlets {
    /// Loads the templates (built in, or overridden from `mail.templates_dir`), reads the
    /// channels' credential files and sets the channels up. Needs no database.
    pub fn from_config(config: &Config) -> Result<Outlets, ConfigError> {
        let dir = templates_dir(config);
        let templates = |e: crate::render::RenderError| ConfigError::key("mail.templates_dir", e.to_string());
        let email = EmailChannel::from_config(config)?;
        let configured = config.mail.message_id_domain.trim();
        let message_id_domain = if configured.is_empty() {
            email.from_mailbox().email.domain().to_string()
        } else {
            configured.to_string()
        };
        let mut channels: Vec<Box<dyn Channel>> = vec![Box::new(email)];
        if let Some(telegram) = telegram_channel(config)? {
            channels.push(Box::new(telegram));
        }
        if let Some(webhook) = webhook_channel(config)? {
            channels.push(Box::new(webhook));
        }
        Ok(Outlets {
            renderer: Renderer::new(dir).map_err(templates)?,
            digests: DigestRenderer::new(dir, &config.agency.name, reply_address(config).as_deref())
                .map_err(templates)?,
            channels,
            message_id_domain,
        })
    }

    /// The channel named `name`, if it is switched on.
    pub fn channel(&self, name: domain::Channel) -> Option<&dyn Channel> {
        self.channels.iter().find(|c| c.name() == name).map(|c| &**c)
    }

    pub fn message_id_domain(&self) -> &str {
        &self.message_id_domain
    }
}

/// Where administrators' template overrides live, if configured.
pub fn templates_dir(config: &Config) -> Option<&Path> {
    let dir = config.mail.templates_dir.trim();
    (!dir.is_empty()).then(|| Path::new(dir))
}

fn telegram_channel(config: &Config) -> Result<Option<TelegramChannel>, ConfigError> {
    let t = &config.telegram;
    if !t.enabled {
        return Ok(None);
    }
    let token = read_credential("telegram.token_file", &t.token_file)?;
    let channel = TelegramChannel::new(&t.api_url, &token, Duration::from_secs(t.timeout_seconds))
        .map_err(|e| ConfigError::key("telegram.api_url", e))?;
    Ok(Some(channel))
}

fn webhook_channel(config: &Config) -> Result<Option<WebhookChannel>, ConfigError> {
    let w = &config.webhook;
    if !w.enabled {
        return Ok(None);
    }
    let secret = read_credential("webhook.secret_file", &w.secret_file)?;
    let channel = WebhookChannel::new(&w.url, secret.as_bytes(), Duration::from_secs(w.timeout_seconds))
        .map_err(|e| ConfigError::key("webhook.url", e))?;
    Ok(Some(channel))
}

/// `mail.reply_to`'s address, as footers name it.
pub fn reply_address(config: &Config) -> Option<String> {
    config.reply_to.as_ref().map(|m| m.email.to_string())
}
