//! Switchyard's operations plane: the HTTP API — health, readiness, status, Prometheus
//! metrics, and the kill switch (trigger and reset) — a Prometheus text writer
//! ([`prometheus`]), and a client for the API ([`client`]).
//!
//! The API knows the core (bus, kill switch, breakers) and nothing of trading: what an
//! application adds — components, positions, P&L — comes through the [`OpsProvider`]
//! trait, which `switchyard-node` implements.
//!
//! | route | method | answer |
//! |---|---|---|
//! | `/healthz` | GET | 200 `{"status":"ok"}` while the process serves |
//! | `/readyz` | GET | 200 `{"ready":true,"kill_switch":{..}}` when [`OpsProvider::ready`], else 503 with `error: "not_ready"` |
//! | `/status` | GET | `{"bus": BusSnapshot, "kill_switch": {"status", "audit"}, "breakers": [..]}` plus the provider's fields |
//! | `/metrics` | GET | Prometheus text format 0.0.4 ([`crate::prometheus`]) |
//! | `/kill-switch` | POST | JSON `{"reason", "scope"?, "mode"?, "source"?}`: trigger; 200 `{"outcome", "active"}` |
//! | `/kill-switch/reset` | POST | `Authorization: Bearer <operator secret>`, optional JSON `{"scope"?, "who"?}`: reset; 200 `ResetOutcome` |
//!
//! Every error is JSON: `{"error": "<machine code>", "message": "<human text>", ..}` —
//! unknown routes (404), wrong methods (405, with `Allow`), unreadable bodies (400 `invalid_json`, 422
//! `invalid_request`, 415 when a body is not `application/json`, 413 when too large).
//! Requiring `application/json` for the kill switch means a browser cannot trigger it
//! from another site without a CORS preflight, which this API never answers.
//!
//! **Reset.** Every attempt goes to [`KillSwitch::reset`], so every refusal is audited
//! and counted towards the lockout — a request without a usable `Bearer` credential is
//! presented as an empty secret (401 `missing_credentials`). A wrong secret is 401
//! `wrong_secret`; during a lockout 429 `locked_out` with `Retry-After`; with no secret
//! configured 503 `no_secret_configured`. The secret is never logged, echoed or audited.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, extract::Request};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use switchyard::Bus;
use switchyard::breaker::Breaker;
use switchyard::kill_switch::{
    KillSwitch, Mode, ResetError, ResetOutcome, Scope, TriggerOutcome, TriggerRequest,
};

pub mod client;
pub mod prometheus;

use crate::prometheus::MetricsWriter;

#[cfg(test)]
mod tests;

/// Largest request body accepted (the kill-switch requests are tiny).
pub const BODY_LIMIT: usize = 16 * 1024;

/// Longest `reason`, `source` or `who` accepted, in bytes.
pub const MAX_TEXT_LEN: usize = 1024;

/// `source` of a trigger, and `who` of a reset, when the request does not say.
pub const DEFAULT_REQUESTER: &str = "http-api";

/// What the application (the trading pipeline) adds to the API.
pub trait OpsProvider: Send + Sync + 'static {
    /// Why the process is degraded (e.g. a bridge disconnected from its server); empty
    /// when all is well. Shown by `GET /healthz` and `GET /status`.
    fn degraded(&self) -> Vec<String> {
        Vec::new()
    }
    /// Pipeline-specific JSON (components, positions, counters, …). An object's fields
    /// are merged at the top level of `GET /status` (the core's `bus`, `kill_switch` and
    /// `breakers` win a name clash); any other non-null value goes under `"app"`.
    fn status(&self) -> Value;
    /// Whether the pipeline is ready (`GET /readyz`).
    fn ready(&self) -> bool;
    /// Extra metric families (trading counters, PnL gauges, component states), written
    /// after the core's. Family names must not repeat the core's.
    fn write_metrics(&self, out: &mut MetricsWriter);
}

/// What the API serves. Cloning shares everything.
#[derive(Clone)]
pub struct OpsState {
    /// The event bus.
    pub bus: Bus,
    /// The kill switch.
    pub kill_switch: KillSwitch,
    /// Circuit breakers to report.
    pub breakers: Vec<Breaker>,
    /// The application's part.
    pub provider: Arc<dyn OpsProvider>,
}

/// The API as a router (no server): serve it with [`serve`], or test it with
/// `tower::ServiceExt::oneshot`.
pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/kill-switch", post(trigger))
        .route("/kill-switch/reset", post(reset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Bind `addr` (port 0 picks a free port) and serve the API until `shutdown` completes;
/// then stop accepting, let requests in flight finish, and end the task.
///
/// Returns the bound address and the server task. Binding errors are returned; a failure
/// of the running server is logged. Graceful shutdown waits for requests in flight, so
/// give the task a deadline (or abort it) if a client may stall.
pub async fn serve(
    addr: SocketAddr,
    state: OpsState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(state);
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "operations API server failed");
        }
        tracing::debug!(addr = %bound, "operations API stopped");
    });
    tracing::debug!(addr = %bound, "operations API listening");
    Ok((bound, task))
}

/// An error answer: `{"error": code, "message": message, ..details}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Map<String, Value>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Map::new(),
            headers: Vec::new(),
        }
    }

    fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    fn internal(what: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "operations API: {what}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{what}: {error}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("error".to_owned(), self.code.into());
        body.insert("message".to_owned(), self.message.into());
        body.extend(self.details);
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

fn to_json(value: &impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::internal("cannot serialize", e))
}

/// Liveness: 200 while the process serves; `"degraded"` with reasons when a part is
/// impaired but the process should not be restarted for it (a NATS reconnect).
async fn healthz(State(state): State<OpsState>) -> Json<Value> {
    Json(health(&state))
}

fn health(state: &OpsState) -> Value {
    let reasons = state.provider.degraded();
    if reasons.is_empty() {
        json!({ "status": "ok" })
    } else {
        json!({ "status": "degraded", "reasons": reasons })
    }
}

async fn readyz(State(state): State<OpsState>) -> Response {
    let ready = state.provider.ready();
    let kill_switch = json!({
        "engaged": state.kill_switch.is_engaged(),
        "active": state.kill_switch.active().len(),
    });
    if ready {
        Json(json!({ "ready": true, "kill_switch": kill_switch })).into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the pipeline is not ready",
        )
        .detail("ready", false)
        .detail("kill_switch", kill_switch)
        .into_response()
    }
}

async fn status(State(state): State<OpsState>) -> Result<Json<Value>, ApiError> {
    let mut top = match state.provider.status() {
        Value::Object(fields) => fields,
        Value::Null => Map::new(),
        other => Map::from_iter([("app".to_owned(), other)]),
    };
    let breakers: Vec<_> = state.breakers.iter().map(Breaker::snapshot).collect();
    top.insert("bus".to_owned(), to_json(&state.bus.snapshot())?);
    top.insert(
        "kill_switch".to_owned(),
        json!({
            "status": to_json(&state.kill_switch.status())?,
            "audit": to_json(&state.kill_switch.audit())?,
        }),
    );
    top.insert("breakers".to_owned(), to_json(&breakers)?);
    top.insert("health".to_owned(), health(&state));
    Ok(Json(Value::Object(top)))
}

/// The whole metrics page: bus, kill switch, breakers, readiness, then the provider's.
pub fn render_metrics(state: &OpsState) -> MetricsWriter {
    let mut w = MetricsWriter::new();
    prometheus::write_bus(&mut w, &state.bus.snapshot());
    prometheus::write_kill_switch(&mut w, &state.kill_switch.status());
    let breakers: Vec<_> = state.breakers.iter().map(Breaker::snapshot).collect();
    prometheus::write_breakers(&mut w, &breakers);
    w.gauge(
        "switchyard_ready",
        "1 when the pipeline reports ready.",
        state.provider.ready(),
    );
    state.provider.write_metrics(&mut w);
    w
}

async fn metrics(State(state): State<OpsState>) -> Response {
    let w = render_metrics(&state);
    if !w.errors().is_empty() {
        tracing::warn!(errors = ?w.errors(), "metrics left out of /metrics");
    }
    (
        [(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        w.finish(),
    )
        .into_response()
}

/// `POST /kill-switch` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    reason: Option<String>,
    scope: Option<Scope>,
    mode: Option<Mode>,
    source: Option<String>,
}

/// `POST /kill-switch` answer.
#[derive(Debug, Serialize)]
struct TriggerAnswer {
    outcome: TriggerOutcome,
    active: Vec<switchyard::kill_switch::ActiveTrigger>,
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let code = match &rejection {
        JsonRejection::JsonSyntaxError(_) => "invalid_json",
        JsonRejection::JsonDataError(_) => "invalid_request",
        JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
        _ => "invalid_body",
    };
    ApiError::new(rejection.status(), code, rejection.body_text())
}

fn text_field(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value.map(|v| v.trim().to_owned()) {
        Some(v) if v.len() > MAX_TEXT_LEN => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("`{field}` is longer than {MAX_TEXT_LEN} bytes"),
        )),
        Some(v) if v.is_empty() => Ok(None),
        v => Ok(v),
    }
}

fn check_scope(scope: &Option<Scope>) -> Result<(), ApiError> {
    match scope {
        Some(Scope::Venue(n) | Scope::Strategy(n) | Scope::Instrument(n))
            if n.trim().is_empty() || n.len() > MAX_TEXT_LEN =>
        {
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "`scope.name` must be a non-empty name",
            ))
        }
        _ => Ok(()),
    }
}

async fn trigger(
    State(state): State<OpsState>,
    body: Result<Json<TriggerBody>, JsonRejection>,
) -> Result<Json<TriggerAnswer>, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    let reason = text_field("reason", body.reason)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_reason",
            "a kill-switch trigger needs a non-empty `reason`",
        )
    })?;
    check_scope(&body.scope)?;
    let source = text_field("source", body.source)?.unwrap_or_else(|| DEFAULT_REQUESTER.into());
    let request = TriggerRequest::new(
        body.scope.unwrap_or(Scope::All),
        body.mode.unwrap_or(Mode::Halt),
        reason,
        source,
    );
    let outcome = state.kill_switch.trigger(request);
    Ok(Json(TriggerAnswer {
        outcome,
        active: state.kill_switch.active(),
    }))
}

/// `POST /kill-switch/reset` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    scope: Option<Scope>,
    who: Option<String>,
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(Ok(value)) = headers.get(header::CONTENT_TYPE).map(|v| v.to_str()) else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
        || mime
            .rsplit_once('+')
            .is_some_and(|(t, suffix)| t.starts_with("application/") && suffix == "json")
}

fn parse_reset_body(headers: &HeaderMap, bytes: &[u8]) -> Result<ResetBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(ResetBody::default());
    }
    if !is_json(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a request body must be JSON, sent with `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let (status, code) = match e.classify() {
            Category::Data => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            Category::Syntax | Category::Eof | Category::Io => {
                (StatusCode::BAD_REQUEST, "invalid_json")
            }
        };
        ApiError::new(status, code, format!("cannot read the request body: {e}"))
    })
}

/// The token of `Authorization: Bearer <token>`, if there is a usable one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = std::str::from_utf8(headers.get(header::AUTHORIZATION)?.as_bytes()).ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn www_authenticate() -> HeaderValue {
    HeaderValue::from_static("Bearer realm=\"switchyard\"")
}

async fn reset(
    State(state): State<OpsState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ResetOutcome>, ApiError> {
    let bytes = body.map_err(|r| ApiError::new(r.status(), "invalid_body", r.body_text()))?;
    let body = parse_reset_body(&headers, &bytes)?;
    check_scope(&body.scope)?;
    let who = text_field("who", body.who)?.unwrap_or_else(|| DEFAULT_REQUESTER.into());
    let presented = bearer(&headers);
    // Without a credential the attempt still goes to the kill switch (as an empty
    // secret, which never matches): it is audited and counts towards the lockout.
    let now = tokio::time::Instant::now().into_std();
    let result = state
        .kill_switch
        .reset(body.scope, presented.unwrap_or(""), &who, now);
    match result {
        Ok(outcome) => Ok(Json(outcome)),
        Err(ResetError::NoSecretConfigured) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_secret_configured",
            "resets are disabled: no operator secret is configured; restart with one \
             configured to allow resets",
        )),
        Err(ResetError::WrongSecret {
            consecutive_failures,
            locked_out_for,
        }) => {
            let error = if presented.is_none() {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing_credentials",
                    "a reset needs the operator secret: `Authorization: Bearer <secret>`",
                )
            } else {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "wrong_secret",
                    "the operator secret is wrong",
                )
            };
            let mut error = error
                .detail("consecutive_failures", consecutive_failures)
                .header(header::WWW_AUTHENTICATE, www_authenticate());
            if let Some(lockout) = locked_out_for {
                error = error.detail("locked_out_for_ms", millis(lockout));
            }
            Err(error)
        }
        Err(e @ ResetError::LockedOut { retry_after }) => {
            // Whole seconds, rounded up: retrying at `Retry-After` is never too early.
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            Err(
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "locked_out", e.to_string())
                    .detail("retry_after_ms", millis(retry_after))
                    .header(header::RETRY_AFTER, HeaderValue::from(secs.max(1))),
            )
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}
