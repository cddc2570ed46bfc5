//! How chat and webhook channels read an HTTP answer: 2xx delivered; 429 throttled (retry
//! after what the server asks); 408, 5xx and timeouts transient; 401 and 404 (a wrong token
//! or URL) and an unreachable server pause the channel — the configuration is at fault, not
//! the recipient; any other 4xx permanent (retrying the same request cannot help).

use super::DeliveryError;

/// Classifies a finished HTTP exchange. `retry_after` is the server's requested wait, if any.
pub fn classify(status: u16, retry_after: Option<u64>, body: &str) -> Result<(), DeliveryError> {
    let snippet: String = body.chars().take(200).collect();
    match status {
        200..=299 => Ok(()),
        429 => Err(DeliveryError::Throttled {
            retry_after_seconds: retry_after.unwrap_or(60),
            reason: format!("HTTP 429 too many requests: {snippet}"),
        }),
        408 | 500..=599 => Err(DeliveryError::Transient(format!("HTTP {status}: {snippet}"))),
        401 | 404 => Err(DeliveryError::Unavailable(format!("HTTP {status} (check the URL and the token): {snippet}"))),
        _ => Err(DeliveryError::Permanent(format!("HTTP {status}: {snippet}"))),
    }
}

/// A request that never got an answer is worth retrying.
pub fn network_error(e: &reqwest::Error) -> DeliveryError {
    if e.is_timeout() {
        DeliveryError::Transient("no answer in time".into())
    } else if e.is_builder() {
        DeliveryError::Permanent(format!("cannot build the request: {e}"))
    } else if e.is_connect() {
        DeliveryError::Unavailable(format!("cannot reach the server: {e}"))
    } else {
        DeliveryError::Transient(format!("cannot reach the server: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_sent_retry_or_dead() {
        assert!(classify(204, None, "").is_ok());
        assert!(matches!(
            classify(429, Some(7), "slow down"),
            Err(DeliveryError::Throttled { retry_after_seconds: 7, .. })
        ));
        assert!(matches!(classify(503, None, ""), Err(DeliveryError::Transient(_))));
        assert!(matches!(classify(403, None, "bot was blocked"), Err(DeliveryError::Permanent(_))));
        assert!(matches!(classify(401, None, "Unauthorized"), Err(DeliveryError::Unavailable(_))));
    }
}
