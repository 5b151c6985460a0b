//! HTTP requests into the operations API ([`switchyard_ops::router`], no server): above
//! all the kill switch's trigger and reset bodies, with fuzzer-chosen content type and
//! credentials, and now and then a method and path from the input.
//!
//! Input: a flag byte (route, `Content-Type`, `Authorization`, secret configured), for
//! the free route a first line `METHOD /path`, then the body. Checks: never a 500; every
//! answer but `/metrics` is JSON, and every error has the uniform `error`/`message` shape.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use switchyard::kill_switch::{KillSwitch, KillSwitchConfig, OperatorSecret};
use switchyard::{Bus, ManualClock};
use switchyard_ops::prometheus::MetricsWriter;
use switchyard_ops::{OpsProvider, OpsState, router};
use tower::ServiceExt as _;

const SECRET: &str = "fuzz operator secret";

struct Provider;

impl OpsProvider for Provider {
    fn status(&self) -> Value {
        Value::Null
    }
    fn ready(&self) -> bool {
        true
    }
    fn write_metrics(&self, _out: &mut MetricsWriter) {}
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// One request.
pub fn http(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (method, path, body) = match flags & 3 {
        0 | 1 => ("POST".to_owned(), "/kill-switch".to_owned(), rest),
        2 => ("POST".to_owned(), "/kill-switch/reset".to_owned(), rest),
        _ => {
            let (line, body) = crate::split_once(rest, b'\n');
            let line = String::from_utf8_lossy(line);
            let (m, p) = line.split_once(' ').unwrap_or(("GET", &line));
            (m.to_owned(), p.to_owned(), body)
        }
    };
    let content_type = match (flags >> 2) & 3 {
        0 => Some("application/json"),
        1 => Some("application/problem+json; charset=utf-8"),
        2 => Some("text/plain"),
        _ => None,
    };
    let authorization = match (flags >> 4) & 3 {
        0 => None,
        1 => Some(format!("Bearer {SECRET}")),
        2 => Some("bEaReR   wrong ".to_owned()),
        _ => Some("Basic Zm9vOmJhcg==".to_owned()),
    };
    let secret = (flags & 64 == 0).then(|| OperatorSecret::new(SECRET).expect("a secret"));

    let mut request = Request::builder()
        .method(method.as_str())
        .uri(path.as_str());
    if let Some(ct) = content_type {
        request = request.header(header::CONTENT_TYPE, ct);
    }
    if let Some(auth) = authorization {
        request = request.header(header::AUTHORIZATION, auth);
    }
    // Methods and paths the HTTP types refuse never reach the API.
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };
    let Ok(kill_switch) = KillSwitch::new(
        KillSwitchConfig::default(),
        secret,
        Arc::new(ManualClock::default()),
    ) else {
        return;
    };
    let state = OpsState {
        bus: Bus::new(),
        kill_switch,
        breakers: Vec::new(),
        provider: Arc::new(Provider),
    };
    let is_metrics = request.uri().path() == "/metrics";
    runtime().block_on(async {
        let response = router(state)
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a whole body");
        if is_metrics && status.is_success() {
            return;
        }
        let v: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {bytes:?}"));
        if !status.is_success() {
            assert!(v["error"].as_str().is_some_and(|c| !c.is_empty()), "{v}");
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        }
    });
}
