//! Web ← token: the personal link of one person to one directive. `{base_url}/r/{token}`,
//! where the token carries the person, the directive and an expiry, signed with the server's
//! secret (HMAC-SHA256, compared in constant time). Replacing the secret revokes every link.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The server secret links are signed with.
#[derive(Clone)]
pub struct Secret(Hmac<Sha256>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Shorter secrets are refused: a link must not be forgeable by guessing.
pub const MIN_SECRET_BYTES: usize = 32;

impl Secret {
    pub fn new(bytes: &[u8]) -> Result<Secret, String> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "holds {} byte(s); at least {MIN_SECRET_BYTES} are needed (e.g. `head -c 48 /dev/urandom | base64`)",
                trimmed.len()
            ));
        }
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(trimmed).map_err(|e| e.to_string())?;
        Ok(Secret(keyed))
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(payload);
        mac
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub person: String,
    pub directive: String,
    /// Unix seconds after which the link no longer opens.
    pub expires: i64,
}

/// The token of `link`.
pub fn sign(secret: &Secret, link: &Link) -> String {
    let payload = format!("1\n{}\n{}\n{}", link.person, link.directive, link.expires);
    let tag = secret.mac(payload.as_bytes()).finalize().into_bytes();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(tag))
}

/// Why a token does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a token, or not signed with this server's secret.
    Invalid,
    Expired,
}

/// The link `token` stands for, if it is signed with `secret` and not expired at `now`.
pub fn verify(secret: &Secret, token: &str, now: i64) -> Result<Link, Refused> {
    let (payload, tag) = token.split_once('.').ok_or(Refused::Invalid)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| Refused::Invalid)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Refused::Invalid)?;
    secret.mac(&payload).verify_slice(&tag).map_err(|_| Refused::Invalid)?;
    let text = String::from_utf8(payload).map_err(|_| Refused::Invalid)?;
    let mut parts = text.split('\n');
    let (Some("1"), Some(person), Some(directive), Some(expires), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused::Invalid);
    };
    let expires: i64 = expires.parse().map_err(|_| Refused::Invalid)?;
    if now > expires {
        return Err(Refused::Expired);
    }
    Ok(Link { person: person.to_string(), directive: directive.to_string(), expires })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s.repeat(40).as_bytes()).unwrap()
    }

    #[test]
    fn a_signed_link_opens_until_it_expires_and_only_with_its_secret() {
        let link = Link { person: "ttv_my".into(), directive: "BC-THANG/2022-09".into(), expires: 1_000 };
        let token = sign(&secret("a"), &link);
        assert!(!token.contains('/') && !token.contains('+'), "URL-safe: {token}");
        assert_eq!(verify(&secret("a"), &token, 1_000), Ok(link.clone()));
        assert_eq!(verify(&secret("a"), &token, 1_001), Err(Refused::Expired));
        assert_eq!(verify(&secret("b"), &token, 0), Err(Refused::Invalid), "a rotated secret revokes it");
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let token = sign(&secret("a"), &Link { person: "cv".into(), directive: "NV-01".into(), expires: 9 });
        let (payload, tag) = token.split_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode("1\ntp_nv1\nNV-01\n9");
        assert_eq!(verify(&secret("a"), &format!("{other}.{tag}"), 0), Err(Refused::Invalid));
        assert_eq!(verify(&secret("a"), &format!("{payload}.AAAA"), 0), Err(Refused::Invalid));
        assert_eq!(verify(&secret("a"), "garbage", 0), Err(Refused::Invalid));
        assert!(Secret::new(b"short").is_err());
    }
}
