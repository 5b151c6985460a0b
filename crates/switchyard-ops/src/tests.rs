//! The operations API through `tower::ServiceExt::oneshot` (no server), `/metrics`
//! through the real `promtool`, and `serve` + the `client` on loopback TCP.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use switchyard::breaker::{BreakerConfig, Classification};
use switchyard::bus::{HandlerError, Overflow, sync_handler};
use switchyard::kill_switch::{
    AuditAction, GateState, KillSwitchConfig, OperatorSecret, RefusalReason, Target,
};
use switchyard::{Envelope, ManualClock, Topic};
use tower::ServiceExt as _;

use super::*;
use crate::client;

const SECRET: &str = "correct horse battery staple";
const WRONG: &str = "tr0ub4dor&3";

struct TestProvider {
    ready: AtomicBool,
}

impl OpsProvider for TestProvider {
    fn status(&self) -> Value {
        json!({
            "components": [{ "name": "feed", "state": "running" }],
            "bus": "the provider cannot shadow the core",
        })
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn write_metrics(&self, out: &mut MetricsWriter) {
        out.counter(
            "switchyard_orders_submitted_total",
            "Orders sent to the exchange.",
            3u64,
        );
        out.family(
            "switchyard_position",
            "Position by instrument, in base units.",
            prometheus::MetricType::Gauge,
        )
        .sample(&[("instrument", "BTC-USD")], -0.25)
        .sample(&[("instrument", "say \"hi\"\\\n")], 1.5);
    }
}

struct Fixture {
    state: OpsState,
    provider: Arc<TestProvider>,
}

fn fixture_with(secret: Option<&str>, config: KillSwitchConfig) -> Fixture {
    let provider = Arc::new(TestProvider {
        ready: AtomicBool::new(true),
    });
    let kill_switch = KillSwitch::new(
        config,
        secret.map(|s| OperatorSecret::new(s).unwrap()),
        Arc::new(ManualClock::default()),
    )
    .unwrap();
    let breaker = Breaker::new(
        "exchange-api",
        BreakerConfig {
            consecutive_failures: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    let state = OpsState {
        bus: Bus::new(),
        kill_switch,
        breakers: vec![
            breaker,
            Breaker::new("nats", BreakerConfig::default()).unwrap(),
        ],
        provider: provider.clone(),
    };
    Fixture { state, provider }
}

fn fixture() -> Fixture {
    fixture_with(Some(SECRET), KillSwitchConfig::default())
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// Asserts the uniform error shape and returns the error code.
    fn error_code(&self) -> String {
        let v = self.json();
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v["error"].as_str().expect("error code").to_owned()
    }
}

async fn send(state: &OpsState, request: Request<Body>) -> Answer {
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(state: &OpsState, path: &str) -> Answer {
    send(state, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn post_json(state: &OpsState, path: &str, body: &str) -> Answer {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    send(state, request).await
}

async fn post_reset(state: &OpsState, authorization: Option<&str>, body: &str) -> Answer {
    let mut request = Request::post("/kill-switch/reset");
    if let Some(a) = authorization {
        request = request.header(header::AUTHORIZATION, a);
    }
    if !body.is_empty() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    send(state, request.body(Body::from(body.to_owned())).unwrap()).await
}

const ORDER: Target<'static> = Target {
    venue: "paper",
    strategy: "mm",
    instrument: "BTC-USD",
};

#[tokio::test]
async fn healthz_is_ok() {
    let f = fixture();
    let a = get(&f.state, "/healthz").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), json!({ "status": "ok" }));
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn readyz_follows_the_provider_and_shows_the_kill_switch() {
    let f = fixture();
    let a = get(&f.state, "/readyz").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.json(),
        json!({ "ready": true, "kill_switch": { "engaged": false, "active": 0 } })
    );

    f.provider.ready.store(false, Ordering::SeqCst);
    f.state
        .kill_switch
        .trigger(TriggerRequest::new(Scope::All, Mode::Halt, "test", "test"));
    let a = get(&f.state, "/readyz").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.error_code(), "not_ready");
    assert_eq!(a.json()["ready"], false);
    assert_eq!(
        a.json()["kill_switch"],
        json!({ "engaged": true, "active": 1 })
    );
}

#[tokio::test]
async fn status_has_the_core_parts_and_the_providers_fields() {
    let f = fixture();
    f.state.kill_switch.trigger(TriggerRequest::new(
        Scope::Venue("paper".into()),
        Mode::ReduceOnly,
        "venue degraded",
        "test",
    ));
    let a = get(&f.state, "/status").await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    assert_eq!(v["components"][0]["name"], "feed");
    assert!(v["bus"]["subscriptions"].is_array(), "{v}");
    assert_eq!(v["bus"]["closed"], false);
    assert_eq!(v["kill_switch"]["status"]["engaged"], true);
    assert_eq!(
        v["kill_switch"]["status"]["active"][0]["scope"],
        json!({ "kind": "venue", "name": "paper" })
    );
    assert_eq!(v["kill_switch"]["audit"][0]["action"]["kind"], "triggered");
    assert_eq!(v["breakers"][0]["name"], "exchange-api");
    assert_eq!(v["breakers"][0]["state"], "closed");
    assert_eq!(v["breakers"][1]["name"], "nats");
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_json() {
    let f = fixture();
    let a = get(&f.state, "/nope").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.error_code(), "not_found");
    assert!(a.json()["message"].as_str().unwrap().contains("/nope"));

    let a = send(
        &f.state,
        Request::delete("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.error_code(), "method_not_allowed");
    assert_eq!(a.headers[header::ALLOW], "GET,HEAD");

    let a = get(&f.state, "/kill-switch").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.error_code(), "method_not_allowed");
}

#[tokio::test]
async fn trigger_closes_the_gate_before_answering() {
    let f = fixture();
    assert_eq!(f.state.kill_switch.check(&ORDER), GateState::Open);
    let a = post_json(
        &f.state,
        "/kill-switch",
        r#"{"reason":"operator says stop"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(f.state.kill_switch.check(&ORDER), GateState::Halted);
    let v = a.json();
    assert_eq!(v["outcome"], json!({ "kind": "engaged" }));
    assert_eq!(v["active"][0]["scope"], json!({ "kind": "all" }));
    assert_eq!(v["active"][0]["mode"], "halt");
    assert_eq!(v["active"][0]["reason"], "operator says stop");
    assert_eq!(v["active"][0]["source"], DEFAULT_REQUESTER);

    // Scope, mode and source; a stricter mode on an active scope escalates.
    let body = r#"{"reason":"fat finger","scope":{"kind":"strategy","name":"mm2"},
                   "mode":"reduce-only","source":"alice"}"#;
    let a = post_json(&f.state, "/kill-switch", body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let target = Target {
        strategy: "mm2",
        ..ORDER
    };
    assert_eq!(f.state.kill_switch.check(&target), GateState::Halted);
    let body = r#"{"reason":"again","scope":{"kind":"strategy","name":"mm2"},"mode":"flatten"}"#;
    let a = post_json(&f.state, "/kill-switch", body).await;
    assert_eq!(a.json()["outcome"]["kind"], "escalated");
    assert_eq!(a.json()["outcome"]["first_reason"], "fat finger");
    let body = r#"{"reason":"again","scope":{"kind":"all"},"mode":"halt"}"#;
    let a = post_json(&f.state, "/kill-switch", body).await;
    assert_eq!(a.json()["outcome"]["kind"], "already_active", "{}", a.text);
}

#[tokio::test]
async fn trigger_refuses_bad_requests_with_json_errors() {
    let f = fixture();
    let cases: [(&str, StatusCode, &str); 8] = [
        (r#"{}"#, StatusCode::BAD_REQUEST, "missing_reason"),
        (
            r#"{"reason":"   "}"#,
            StatusCode::BAD_REQUEST,
            "missing_reason",
        ),
        (r#"{"reason":"x""#, StatusCode::BAD_REQUEST, "invalid_json"),
        ("", StatusCode::BAD_REQUEST, "invalid_json"),
        (
            r#"{"reason":"x","mode":"panic"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            r#"{"reason":"x","scope":{"kind":"venue","name":""}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            r#"{"reason":"x","colour":"red"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            r#"{"reason":7}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let a = post_json(&f.state, "/kill-switch", body).await;
        assert_eq!(
            (a.status, a.error_code().as_str()),
            (status, code),
            "{body}: {}",
            a.text
        );
    }
    let a = post_json(&f.state, "/kill-switch", r#"{"reason":"x","mode":"panic"}"#).await;
    assert!(
        a.json()["message"].as_str().unwrap().contains("panic"),
        "the message says what is wrong: {}",
        a.text
    );
    let long = format!(r#"{{"reason":"{}"}}"#, "x".repeat(MAX_TEXT_LEN + 1));
    let a = post_json(&f.state, "/kill-switch", &long).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let huge = format!(r#"{{"reason":"{}"}}"#, "x".repeat(BODY_LIMIT));
    let a = post_json(&f.state, "/kill-switch", &huge).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    a.error_code();

    // Not JSON: a browser's simple cross-site POST cannot trigger the switch.
    let a = send(
        &f.state,
        Request::post("/kill-switch")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(r#"{"reason":"csrf"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(a.error_code(), "unsupported_media_type");
    assert!(!f.state.kill_switch.is_engaged());
    assert!(f.state.kill_switch.audit().is_empty());
}

fn refusals(state: &OpsState) -> Vec<RefusalReason> {
    state
        .kill_switch
        .audit()
        .iter()
        .filter_map(|r| match r.action {
            AuditAction::ResetRefused { reason } => Some(reason),
            _ => None,
        })
        .collect()
}

fn assert_no_secret(text: &str) {
    for s in [SECRET, WRONG] {
        assert!(!text.contains(s), "a secret leaked into {text}");
    }
}

#[tokio::test]
async fn reset_needs_the_right_secret_and_audits_every_refusal() {
    let f = fixture();
    let ks = &f.state.kill_switch;
    ks.trigger(TriggerRequest::new(Scope::All, Mode::Halt, "stop", "test"));
    let mut bodies = Vec::new();

    // No credential: refused, audited.
    let a = post_reset(&f.state, None, "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error_code(), "missing_credentials");
    assert!(a.headers.contains_key(header::WWW_AUTHENTICATE));
    bodies.push(a.text);
    // Not a bearer credential: the same.
    let a = post_reset(&f.state, Some(&format!("Basic {SECRET}")), "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error_code(), "missing_credentials");
    bodies.push(a.text);
    assert_eq!(refusals(&f.state), [RefusalReason::WrongSecret; 2]);
    // A success clears the failure count (two failures, lockout at three).
    let a = post_reset(
        &f.state,
        Some(&format!("Bearer {SECRET}")),
        r#"{"scope":{"kind":"venue","name":"paper"},"who":"alice"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["cleared"], json!([]));
    assert!(
        ks.is_engaged(),
        "resetting another scope leaves `all` active"
    );
    bodies.push(a.text);

    // Wrong secret: refused, audited with the requester's name.
    let a = post_reset(
        &f.state,
        Some(&format!("Bearer {WRONG}")),
        r#"{"who":"mallory"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error_code(), "wrong_secret");
    assert_eq!(a.json()["consecutive_failures"], 1);
    bodies.push(a.text);
    let last = ks.audit().pop().unwrap();
    assert_eq!(
        last.action,
        AuditAction::ResetRefused {
            reason: RefusalReason::WrongSecret
        }
    );
    assert_eq!(last.source_or_who, "mallory");
    assert!(ks.is_engaged());
    assert_eq!(ks.check(&ORDER), GateState::Halted);

    // Right secret (the scheme is case-insensitive): cleared.
    let a = post_reset(&f.state, Some(&format!("bearer {SECRET}")), "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let v = a.json();
    assert_eq!(v["cleared"][0]["reason"], "stop");
    assert_eq!(v["still_active"], json!([]));
    assert_eq!(ks.check(&ORDER), GateState::Open);
    assert_eq!(ks.audit().pop().unwrap().source_or_who, DEFAULT_REQUESTER);
    bodies.push(a.text);

    // The secrets appear nowhere: answers, audit, status, metrics.
    bodies.push(serde_json::to_string(&ks.audit()).unwrap());
    bodies.push(get(&f.state, "/status").await.text);
    bodies.push(get(&f.state, "/metrics").await.text);
    for text in &bodies {
        assert_no_secret(text);
    }
    assert_eq!(ks.counters().refused_resets, 3);
    assert_eq!(ks.counters().resets, 2);
}

#[tokio::test]
async fn reset_locks_out_after_repeated_wrong_secrets() {
    let f = fixture_with(
        Some(SECRET),
        KillSwitchConfig {
            max_reset_failures: 2,
            lockout: Duration::from_millis(1500),
            ..Default::default()
        },
    );
    let wrong = format!("Bearer {WRONG}");
    let a = post_reset(&f.state, Some(&wrong), "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.json().get("locked_out_for_ms").is_none());
    let a = post_reset(&f.state, Some(&wrong), "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json()["locked_out_for_ms"], 1500);

    // Locked out: even the right secret is refused, with Retry-After in whole seconds.
    let a = post_reset(&f.state, Some(&format!("Bearer {SECRET}")), "").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
    assert_eq!(a.error_code(), "locked_out");
    assert_eq!(a.headers[header::RETRY_AFTER], "2");
    let retry_ms = a.json()["retry_after_ms"].as_u64().unwrap();
    assert!(retry_ms > 0 && retry_ms <= 1500, "{retry_ms}");
    assert_no_secret(&a.text);
    assert_eq!(
        refusals(&f.state),
        [
            RefusalReason::WrongSecret,
            RefusalReason::WrongSecret,
            RefusalReason::LockedOut
        ]
    );
}

#[tokio::test]
async fn reset_without_a_configured_secret_is_refused_and_says_why() {
    let f = fixture_with(None, KillSwitchConfig::default());
    let a = post_reset(&f.state, Some(&format!("Bearer {SECRET}")), "").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.error_code(), "no_secret_configured");
    assert_eq!(refusals(&f.state), [RefusalReason::NoSecretConfigured]);
}

#[tokio::test]
async fn reset_refuses_bad_bodies_before_trying_the_secret() {
    let f = fixture();
    let bearer = format!("Bearer {SECRET}");
    let a = post_reset(&f.state, Some(&bearer), "{nope").await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    let a = post_reset(&f.state, Some(&bearer), r#"{"scope":{"kind":"galaxy"}}"#).await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
    );
    let a = send(
        &f.state,
        Request::post("/kill-switch/reset")
            .header(header::AUTHORIZATION, &bearer)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(f.state.kill_switch.audit().is_empty());
}

/// A bus with real traffic: deliveries, a handler error and a panic, drops, two
/// subscriptions sharing a name; a tripped breaker; a triggered kill switch and a refused
/// reset.
async fn busy_fixture() -> Fixture {
    let f = fixture();
    let bus = &f.state.bus;
    bus.subscription::<u64>("md.*")
        .unwrap()
        .name("strategy \"mm\"")
        .subscribe(sync_handler(|ev: &Envelope<u64>| match *ev.payload() {
            3 => Err(HandlerError::msg("bad tick")),
            5 => panic!("handler bug (expected by the test)"),
            _ => Ok(()),
        }))
        .unwrap();
    for _ in 0..2 {
        // Same name (the pattern) twice: labelled `md.trades#<id>`.
        bus.subscribe("md.trades", sync_handler(|_: &Envelope<u64>| Ok(())))
            .unwrap();
    }
    bus.subscription::<u64>("md.>")
        .unwrap()
        .name("slow")
        .capacity(1)
        .overflow(Overflow::DropNewest)
        .subscribe(sync_handler(|_: &Envelope<u64>| Ok(())))
        .unwrap();
    let mut trades = bus.publisher::<u64>(Topic::new("md.trades").unwrap());
    let mut quotes = bus.publisher::<u64>(Topic::new("md.quotes").unwrap());
    for i in 0..10 {
        trades.publish(i).await.unwrap();
        quotes.publish(i).await.unwrap();
    }
    // Let the workers drain (current-thread runtime: they run while we yield).
    for _ in 0..10_000 {
        let snapshot = bus.snapshot();
        if snapshot.subscriptions.iter().all(|s| s.depth == 0)
            && snapshot.subscriptions[0].delivered == 20
        {
            break;
        }
        tokio::task::yield_now().await;
    }
    let s = &bus.snapshot().subscriptions[0];
    assert_eq!(
        (s.delivered, s.handler_errors, s.handler_panics),
        (20, 2, 2)
    );

    let breaker = &f.state.breakers[0];
    for _ in 0..2 {
        let permit = breaker.try_acquire().unwrap();
        breaker.report(permit, Classification::Failure, Duration::from_millis(3));
    }
    assert!(breaker.try_acquire().is_err());

    let ks = &f.state.kill_switch;
    ks.trigger(TriggerRequest::new(Scope::All, Mode::Halt, "test", "test"));
    let _ = ks.reset(None, WRONG, "mallory", std::time::Instant::now());
    f
}

async fn metrics_text(state: &OpsState) -> String {
    let w = render_metrics(state);
    assert!(w.errors().is_empty(), "{:#?}", w.errors());
    let a = get(state, "/metrics").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    a.text
}

fn promtool() -> &'static str {
    for candidate in ["/usr/bin/promtool", "promtool"] {
        if Command::new(candidate).arg("--version").output().is_ok() {
            return candidate;
        }
    }
    panic!(
        "promtool is not installed: run scripts/test, which installs it (Debian package \
         `prometheus`), or `apt-get install prometheus`"
    );
}

#[tokio::test]
async fn metrics_pass_promtool() {
    let f = busy_fixture().await;
    let text = metrics_text(&f.state).await;
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics failed ({}):\n{report}\n--- page ---\n{text}",
        out.status
    );
}

/// `name{labels}` → (name, labels without `le`, le).
fn split_sample(line: &str) -> (String, String, Option<String>, f64) {
    let (series, value) = line.rsplit_once(' ').unwrap();
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap(),
    };
    let Some((name, labels)) = series.split_once('{') else {
        return (series.to_owned(), String::new(), None, value);
    };
    let labels = labels.strip_suffix('}').unwrap();
    let mut le = None;
    let mut rest = Vec::new();
    // Label values in these tests hold no `,"` sequence, so a plain split is enough.
    for pair in labels.split("\",") {
        let pair = pair.trim_end_matches('"');
        match pair.strip_prefix("le=\"") {
            Some(v) => le = Some(v.to_owned()),
            None => rest.push(pair.to_owned()),
        }
    }
    (name.to_owned(), rest.join(","), le, value)
}

#[tokio::test]
async fn metrics_text_is_well_formed() {
    let f = busy_fixture().await;
    let text = metrics_text(&f.state).await;
    let mut help = HashSet::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut current: Option<(String, String)> = None;
    // (family, labels) → [(le, cumulative)], and → count.
    let mut buckets: HashMap<(String, String), Vec<(f64, f64)>> = HashMap::new();
    let mut counts: HashMap<(String, String), f64> = HashMap::new();
    let mut samples: HashMap<String, usize> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(help.insert(name.to_owned()), "HELP twice for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(help.contains(name), "TYPE before HELP for {name}");
            assert!(
                types.insert(name.into(), kind.into()).is_none(),
                "TYPE twice for {name}"
            );
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            current = Some((name.into(), kind.into()));
            continue;
        }
        assert!(!line.starts_with('#'), "{line}");
        let (family, kind) = current.clone().expect("sample before any TYPE");
        let (name, labels, le, value) = split_sample(line);
        *samples.entry(family.clone()).or_default() += 1;
        if kind == "histogram" {
            let key = (family.clone(), labels);
            if name == format!("{family}_bucket") {
                let le = match le.as_deref().expect("bucket without le") {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().unwrap(),
                };
                buckets.entry(key).or_default().push((le, value));
            } else if name == format!("{family}_count") {
                counts.insert(key, value);
            } else {
                assert_eq!(name, format!("{family}_sum"), "{line}");
                assert!(value >= 0.0);
            }
        } else {
            assert_eq!(name, family, "sample outside its family: {line}");
            assert!(value.is_finite(), "{line}");
            if kind == "counter" {
                assert!(value >= 0.0, "{line}");
            }
        }
    }
    assert!(!buckets.is_empty());
    for (key, b) in &buckets {
        assert!(
            b.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{key:?} not cumulative: {b:?}"
        );
        let last = b.last().unwrap();
        assert_eq!(last.0, f64::INFINITY, "{key:?} does not end with +Inf");
        assert_eq!(Some(&last.1), counts.get(key), "{key:?}: +Inf != count");
        assert_eq!(b.len(), LATENCY_BUCKETS_SECONDS_LEN + 1, "{key:?}");
    }
    let ty = |n: &str| types.get(n).map(String::as_str);
    for (name, kind) in [
        ("switchyard_bus_events_published_total", "counter"),
        ("switchyard_bus_published_total", "counter"),
        ("switchyard_subscription_queue_depth", "gauge"),
        ("switchyard_subscription_delivered_total", "counter"),
        ("switchyard_subscription_dropped_total", "counter"),
        ("switchyard_subscription_undelivered_total", "counter"),
        ("switchyard_subscription_handler_errors_total", "counter"),
        ("switchyard_subscription_handler_panics_total", "counter"),
        ("switchyard_subscription_latency_seconds", "histogram"),
        (
            "switchyard_subscription_handler_duration_seconds",
            "histogram",
        ),
        ("switchyard_kill_switch_engaged", "gauge"),
        ("switchyard_kill_switch_triggers_total", "counter"),
        ("switchyard_kill_switch_resets_total", "counter"),
        ("switchyard_kill_switch_refused_resets_total", "counter"),
        ("switchyard_breaker_state", "gauge"),
        ("switchyard_breaker_calls_total", "counter"),
        ("switchyard_ready", "gauge"),
        ("switchyard_orders_submitted_total", "counter"),
        ("switchyard_position", "gauge"),
    ] {
        assert_eq!(ty(name), Some(kind), "{name}");
        assert!(
            samples.get(name).is_some_and(|n| *n > 0),
            "{name} has no samples"
        );
    }
    for want in [
        // 20 events and 4 dead letters (2 errors, 2 panics).
        "switchyard_bus_events_published_total 24\n",
        "switchyard_bus_published_total{topic=\"switchyard.dead_letter.md.quotes\"} 2\n",
        "switchyard_bus_published_total{topic=\"md.trades\"} 10\n",
        "switchyard_subscription_delivered_total{subscription=\"strategy \\\"mm\\\"\"} 20\n",
        "switchyard_subscription_handler_errors_total{subscription=\"strategy \\\"mm\\\"\"} 2\n",
        "switchyard_subscription_handler_panics_total{subscription=\"strategy \\\"mm\\\"\"} 2\n",
        "switchyard_subscription_latency_seconds_count{subscription=\"strategy \\\"mm\\\"\"} 20\n",
        "switchyard_kill_switch_engaged 1\n",
        "switchyard_kill_switch_refused_resets_total 1\n",
        "switchyard_breaker_state{breaker=\"exchange-api\",state=\"open\"} 1\n",
        "switchyard_breaker_state{breaker=\"exchange-api\",state=\"closed\"} 0\n",
        "switchyard_breaker_calls_total{breaker=\"exchange-api\",outcome=\"failure\"} 2\n",
        "switchyard_breaker_calls_total{breaker=\"exchange-api\",outcome=\"rejected\"} 1\n",
        "switchyard_position{instrument=\"say \\\"hi\\\"\\\\\\n\"} 1.5\n",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    // Repeated subscription names are told apart by id.
    let ids: HashSet<_> = text
        .lines()
        .filter(|l| {
            l.starts_with("switchyard_subscription_delivered_total{subscription=\"md.trades#")
        })
        .collect();
    assert_eq!(ids.len(), 2, "{text}");
    let slow = f.state.bus.snapshot().subscriptions[3].dropped.newest;
    assert!(text.contains(&format!(
        "switchyard_subscription_dropped_total{{subscription=\"slow\",cause=\"newest\"}} {slow}\n"
    )));
}

const LATENCY_BUCKETS_SECONDS_LEN: usize = switchyard::bus::LATENCY_BUCKETS_SECONDS.len();

#[tokio::test]
async fn serve_and_client_over_loopback() {
    let f = fixture();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, task) = serve(
        "127.0.0.1:0".parse().unwrap(),
        f.state.clone(),
        async move {
            let _ = stopped.await;
        },
    )
    .await
    .unwrap();
    assert_ne!(addr.port(), 0);
    let addr_text = addr.to_string();

    let options = client::KillOptions {
        scope: Some(Scope::Instrument("BTC-USD".into())),
        mode: Some(Mode::Flatten),
        source: Some("cli-test".into()),
    };
    let answer = client::kill(&addr_text, "operator stop", &options)
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["outcome"]["kind"], "engaged");
    assert_eq!(f.state.kill_switch.check(&ORDER), GateState::Flatten);
    assert_eq!(v["active"][0]["source"], "cli-test");

    let e = client::kill(&addr_text, "", &client::KillOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HTTP 400") && e.contains("missing_reason"),
        "{e}"
    );

    let e = client::reset(&format!("http://{addr_text}/"), WRONG, "mallory")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("HTTP 401") && e.contains("wrong_secret"), "{e}");
    assert_no_secret(&e);
    assert_eq!(f.state.kill_switch.check(&ORDER), GateState::Flatten);

    let answer = client::reset(&addr_text, SECRET, "alice").await.unwrap();
    assert_no_secret(&answer);
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        v["cleared"][0]["scope"],
        json!({"kind": "instrument", "name": "BTC-USD"})
    );
    assert_eq!(f.state.kill_switch.check(&ORDER), GateState::Open);
    let last = f.state.kill_switch.audit().pop().unwrap();
    assert_eq!(
        (last.action, last.source_or_who.as_str()),
        (AuditAction::Reset, "alice")
    );

    // Graceful shutdown ends the server task; the port is closed afterwards.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("server stops")
        .unwrap();
    let e = client::reset(&addr_text, SECRET, "alice")
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("cannot connect"), "{e:#}");
}
