//! Web: each reminder item's link, `{web.base_url}/r/{token}`, opens that directive's page
//! for that person; the same path takes their answers as a JSON API (the page's forms post
//! to it). Answers are checked ([`rules`]) and recorded in one write transaction per
//! directive, with the change an accepted decision makes; the planner and the reports read
//! them from the store. Tokens are checked against the wall clock and answers recorded at it.

pub mod body;
pub mod page;
pub mod rate;
pub mod rules;
pub mod token;
pub mod view;

use crate::answer::{open_requests, Answer, AnswerKind};
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{HistoryRow, Store};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use body::{Fields, Invalid};
use chrono_tz::Tz;
use rules::{Denied, Standing};
use std::net::SocketAddr;
use std::sync::Arc;
use token::{Link, Secret};

/// Bodies larger than this are refused (413): an answer is a few paragraphs.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The longest token taken; anything longer is not one of ours.
const MAX_TOKEN_CHARS: usize = 1_024;

/// What the pages and the API need.
#[derive(Debug, Clone)]
pub struct WebState {
    pub store: Store,
    pub secret: Secret,
    pub timezone: Tz,
    pub clock: Arc<Clock>,
    pub rate_per_token: u32,
    pub rate_per_address: u32,
    pub rates: Arc<rate::RateLimiter>,
}

impl WebState {
    pub fn new(config: &Config, store: Store, clock: Arc<Clock>) -> Result<WebState, crate::config::ConfigError> {
        Ok(WebState {
            store,
            secret: secret(config)?,
            timezone: config.timezone,
            clock,
            rate_per_token: config.web.rate_per_token,
            rate_per_address: config.web.rate_per_address,
            rates: Arc::new(rate::RateLimiter::default()),
        })
    }
}

/// The signing secret `web.secret_file` holds.
pub fn secret(config: &Config) -> Result<Secret, crate::config::ConfigError> {
    let key = "web.secret_file";
    if config.web.secret_file.trim().is_empty() {
        return Err(crate::config::ConfigError::key(key, "is not set: links cannot be signed"));
    }
    let text = crate::channels::email::read_credential(key, config.web.secret_file.trim())?;
    Secret::new(text.as_bytes()).map_err(|e| crate::config::ConfigError::key(key, e))
}

/// The link of `person` to `directive`, valid `link_days` from `at` (Unix seconds).
pub fn link_url(config: &Config, secret: &Secret, person: &str, directive: &str, at: i64) -> String {
    let expires = at + i64::from(config.web.link_days) * 86_400;
    let token = token::sign(secret, &Link { person: person.into(), directive: directive.into(), expires });
    format!("{}/r/{token}", config.web.base_url.trim().trim_end_matches('/'))
}

/// The routes.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/r/{token}", get(show))
        .route("/r/{token}/{action}", post(act))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::new(state))
}

/// An answer that is not 2xx.
struct Failure {
    status: StatusCode,
    message: String,
    field: Option<&'static str>,
    retry_after: Option<i64>,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure { status, message: message.into(), field: None, retry_after: None }
    }

    /// Says nothing about why a token does not open beyond that it does not.
    fn forbidden() -> Failure {
        Failure::new(StatusCode::FORBIDDEN, "this link is not valid, has expired, or is not yours")
    }

    fn respond(self, html: bool) -> Response {
        let mut response = if html {
            (self.status, axum::response::Html(page::failure(self.status.as_u16(), &self.message, self.field)))
                .into_response()
        } else {
            let body = serde_json::json!({"error": self.message, "field": self.field});
            (self.status, json_body(body)).into_response()
        };
        if let Some(seconds) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        no_store(&mut response);
        response
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Failure {
        tracing::error!(error = %e, "web: database error");
        Failure::new(StatusCode::SERVICE_UNAVAILABLE, "the service cannot reach its database; try again shortly")
    }
}

impl From<Invalid> for Failure {
    fn from(e: Invalid) -> Failure {
        Failure {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("{}: {}", e.field, e.reason),
            field: Some(e.field),
            retry_after: None,
        }
    }
}

impl From<Denied> for Failure {
    fn from(d: Denied) -> Failure {
        match d {
            Denied::Forbidden(m) => Failure::new(StatusCode::FORBIDDEN, m),
            Denied::Conflict(m) => Failure::new(StatusCode::CONFLICT, m),
        }
    }
}

/// Pages and answers are personal: never cached, never sent on as a referrer.
fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
}

/// A JSON body.
fn json_body(value: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], value.to_string()).into_response()
}

/// The client's address the connection loop put on the request.
fn peer_of(request: &Request) -> Option<SocketAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"))
}

/// The client: the connection's peer, or the address a reverse proxy on this machine says
/// it forwarded (`X-Forwarded-For`, nearest hop last).
fn client(peer: Option<SocketAddr>, headers: &HeaderMap) -> String {
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(|v| v.trim().to_string())
        .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
    match (peer, forwarded) {
        (Some(p), Some(f)) if p.ip().is_loopback() => f,
        (Some(p), _) => p.ip().to_string(),
        (None, Some(f)) => f,
        (None, None) => "unknown".into(),
    }
}

/// The visitor and what they see, once the token, the rate and their standing pass.
struct Visit {
    link: Link,
    token: String,
    address: String,
}

fn admit(state: &WebState, token: &str, peer: Option<SocketAddr>, headers: &HeaderMap) -> Result<Visit, Failure> {
    let now = crate::clock::wall_seconds();
    let address = client(peer, headers);
    let limited = |seconds| Failure {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: "too many requests; try again shortly".into(),
        field: None,
        retry_after: Some(seconds),
    };
    state.rates.check(&format!("a {address}"), state.rate_per_address, now).map_err(limited)?;
    if token.len() > MAX_TOKEN_CHARS {
        return Err(Failure::forbidden());
    }
    let link = token::verify(&state.secret, token, now).map_err(|_| Failure::forbidden())?;
    state.rates.check(&format!("t {token}"), state.rate_per_token, now).map_err(limited)?;
    Ok(Visit { link, token: token.to_string(), address })
}

async fn show(State(state): State<Arc<WebState>>, Path(token): Path<String>, request: Request) -> Response {
    let peer = peer_of(&request);
    let (parts, _) = request.into_parts();
    let headers = parts.headers;
    let json = wants_json(&headers);
    let outcome = async {
        let visit = admit(&state, &token, peer, &headers)?;
        view::load(&state, &visit.link).await?.ok_or_else(Failure::forbidden).map(|v| (visit, v))
    }
    .await;
    let mut response = match outcome {
        Ok((_, view)) if json => json_body(view.to_json()).into_response(),
        Ok((visit, view)) => axum::response::Html(page::render(&view, &visit.token, None)).into_response(),
        Err(failure) => return failure.respond(!json),
    };
    no_store(&mut response);
    response
}

async fn act(
    State(state): State<Arc<WebState>>,
    Path((token, action)): Path<(String, String)>,
    request: Request,
) -> Response {
    let peer = peer_of(&request);
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let from_form = !content_type.starts_with("application/json");
    // A browser's form post is answered with the page (303 on success); a script gets JSON.
    let html = from_form && !wants_json(&headers);
    let outcome = async {
        let visit = admit(&state, &token, peer, &headers)?;
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
            Failure::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is over {MAX_BODY_BYTES} bytes"))
        })?;
        let kind: AnswerKind =
            action.parse().map_err(|()| Failure::new(StatusCode::NOT_FOUND, format!("no action {action:?}")))?;
        let fields = Fields::parse(&content_type, &body)?;
        let answer = read_answer(kind, &fields, &visit, state.clock.as_ref())?;
        apply(&state, &visit.link, answer).await?;
        view::load(&state, &visit.link).await?.ok_or_else(Failure::forbidden).map(|v| (visit, v))
    }
    .await;
    let mut response = match outcome {
        Ok((visit, _)) if html => {
            (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/r/{}", visit.token))]).into_response()
        }
        Ok((_, view)) => json_body(view.to_json()).into_response(),
        Err(failure) => return failure.respond(html),
    };
    no_store(&mut response);
    response
}

/// The answer the body describes, recorded at the wall clock.
fn read_answer(kind: AnswerKind, fields: &Fields, visit: &Visit, clock: &Clock) -> Result<Answer, Invalid> {
    let mut answer = Answer::new(
        clock.new_id().to_string(),
        &visit.link.directive,
        &visit.link.person,
        kind,
        crate::clock::wall_seconds(),
        &visit.address,
    );
    match kind {
        AnswerKind::Progress => {
            answer.note = Some(fields.required_text("note")?);
            answer.percent = fields.int("percent", 0..=100)?;
        }
        AnswerKind::Done => {
            answer.note = Some(fields.required_text("result")?);
            answer.on_date = fields.date("completed_on")?;
        }
        AnswerKind::Explain => {
            let cause = fields.required_text("cause")?;
            answer.cause = Some(cause.parse().map_err(|()| Invalid {
                field: "cause",
                reason: format!("{cause:?}: expected subjective or objective"),
            })?);
            answer.note = Some(fields.required_text("description")?);
            answer.measures = Some(fields.required_text("measures")?);
        }
        AnswerKind::Extend => {
            answer.on_date =
                Some(fields.date("until")?.ok_or(Invalid { field: "until", reason: "is required".into() })?);
            answer.note = Some(fields.required_text("reason")?);
        }
        AnswerKind::Confirm | AnswerKind::Decide => {
            let accept = fields.bool("accept")?;
            answer.accept = Some(accept);
            answer.note = fields.text("note")?;
            if !accept && answer.note.is_none() {
                return Err(Invalid { field: "note", reason: "is required when refusing".into() });
            }
        }
    }
    Ok(answer)
}

/// Checks and records `answer` in one transaction, with what an accepted decision changes.
async fn apply(state: &WebState, link: &Link, answer: Answer) -> Result<(), Failure> {
    let person = state.store.person(&link.person).await?.ok_or_else(Failure::forbidden)?;
    let mut tx = state.store.begin_import().await?;
    tx.lock_named(&format!("directive {}", link.directive)).await?;
    let directive =
        tx.directives_in(std::slice::from_ref(&link.directive)).await?.pop().ok_or_else(Failure::forbidden)?;
    let unit = state.store.unit(&directive.unit).await?;
    let standing = Standing::of(&person, &directive, unit.as_ref());
    if !standing.related() {
        return Err(Failure::forbidden());
    }
    let open = open_requests(&tx.answers_in(&directive.code).await?);
    let today = view::date_at(answer.at, state.timezone);
    rules::check(answer.kind, &person.code, standing, &directive, &open, today)?;
    match answer.kind {
        AnswerKind::Done if answer.on_date.is_some_and(|d| d > today) => {
            return Err(Invalid { field: "completed_on", reason: "is in the future".into() }.into())
        }
        AnswerKind::Extend if answer.on_date.zip(directive.due_on).is_some_and(|(until, due)| until <= due) => {
            return Err(Invalid { field: "until", reason: "must be later than the current due date".into() }.into())
        }
        _ => {}
    }
    tx.record_answer(&answer).await?;
    let origin = format!("web {}", person.code);
    let change = |field: &str, old: Option<String>, new: Option<String>| HistoryRow {
        id: state.clock.new_id().to_string(),
        code: directive.code.clone(),
        field: field.into(),
        old_value: old,
        new_value: new,
        origin: origin.clone(),
        at: answer.at,
    };
    match (answer.kind, answer.accept) {
        (AnswerKind::Confirm, Some(true)) => {
            if let Some(done) = &open.completion {
                let on = done.on_date.unwrap_or(today);
                let result = done.note.clone().unwrap_or_default();
                tx.complete(&directive.code, on, &result, answer.at).await?;
                tx.record_history(&[
                    change("status", Some(directive.status.to_string()), Some("completed".into())),
                    change("completed_on", directive.completed_on.map(|d| d.to_string()), Some(on.to_string())),
                    change("result", directive.result.clone(), Some(result)),
                ])
                .await?;
            }
        }
        (AnswerKind::Decide, Some(true)) => {
            if let Some(until) = open.extension.as_ref().and_then(|e| e.on_date) {
                tx.move_due_date(&directive.code, until, answer.at).await?;
                tx.record_history(&[change(
                    "due_on",
                    directive.due_on.map(|d| d.to_string()),
                    Some(until.to_string()),
                )])
                .await?;
            }
        }
        _ => {}
    }
    tx.commit().await?;
    tracing::info!(directive = %directive.code, person = %person.code, answer = %answer.kind, address = %answer.address, "answer recorded");
    Ok(())
}
