//! Credentials: wrong ones give a clear error without the secret; right ones work; the
//! config never prints them.

use switchyard::Bus;
use switchyard_nats::testing::NatsServer;
use switchyard_nats::{Auth, Bridge, BridgeConfig, BridgeError, Secret};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire as kinds;

const RIGHT: &str = "s3cret-Right-pw";
const WRONG: &str = "s3cret-WRONG-pw";

fn cfg(url: String, auth: Auth) -> BridgeConfig {
    BridgeConfig {
        url,
        auth,
        ..Default::default()
    }
}

async fn start(cfg: BridgeConfig) -> Result<Bridge, BridgeError> {
    Bridge::builder(Bus::new(), cfg)
        .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
}

fn assert_clean(text: &str) {
    for s in [RIGHT, WRONG, "tok-SECRET"] {
        assert!(!text.contains(s), "secret in {text:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_password() {
    let server = NatsServer::start_with(&["--user", "alice", "--pass", RIGHT]).unwrap();
    let bad = cfg(
        server.url(),
        Auth::UserPassword {
            user: "alice".into(),
            password: Secret::new(WRONG),
        },
    );
    assert_clean(&format!("{bad:?}"));
    let err = start(bad).await.unwrap_err();
    let (display, debug) = (err.to_string(), format!("{err:?}"));
    eprintln!("{display}");
    assert_clean(&display);
    assert_clean(&debug);
    assert!(
        matches!(
            err,
            BridgeError::Connect {
                auth_failed: true,
                ..
            }
        ),
        "{debug}"
    );
    assert!(
        display.contains(&server.url()),
        "names the server: {display}"
    );
    assert!(
        display.to_lowercase().contains("authorization"),
        "{display}"
    );

    // Credentials in the URL are redacted too.
    let url = format!("nats://alice:{WRONG}@127.0.0.1:{}", server.port());
    let c = cfg(url, Auth::None);
    assert_clean(&format!("{c:?}"));
    let err = start(c).await.unwrap_err();
    assert_clean(&err.to_string());
    assert_clean(&format!("{err:?}"));

    let good = cfg(
        server.url(),
        Auth::UserPassword {
            user: "alice".into(),
            password: Secret::new(RIGHT),
        },
    );
    let b = start(good).await.expect("right password connects");
    assert_clean(&format!("{b:?}"));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_from_env_lookup() {
    let server = NatsServer::start_with(&["--auth", "tok-SECRET"]).unwrap();
    let err = start(cfg(server.url(), Auth::Token(Secret::new("nope"))))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        BridgeError::Connect {
            auth_failed: true,
            ..
        }
    ));
    let auth = Auth::from_lookup_or(Auth::None, |k| {
        (k == switchyard_nats::config::ENV_TOKEN).then(|| "tok-SECRET".to_string())
    });
    let c = cfg(server.url(), auth);
    assert_clean(&format!("{c:?}"));
    let b = start(c).await.expect("token connects");
    b.shutdown().await;
}

#[test]
fn toml_config_and_redaction() {
    let c: BridgeConfig = toml::from_str(
        r#"
        url = "nats://10.0.0.1:4222"
        subject_prefix = "sy"
        origin = "feed-1"
        buffer = 1000
        shutdown_timeout = "3s"
        auth = { user_password = { user = "alice", password = "s3cret-Right-pw" } }
        [tls]
        require_tls = true
        root_ca = "/etc/ca.pem"
        [mode.jetstream]
        stream = "SY"
        durable = "strategy-1"
        max_in_flight = 512
        ack_wait = "10s"
        duplicate_window = "2m"
        "#,
    )
    .unwrap();
    assert_clean(&format!("{c:?}"));
    assert_eq!(c.shutdown_timeout, std::time::Duration::from_secs(3));
    match &c.mode {
        switchyard_nats::Mode::JetStream(j) => {
            assert_eq!(j.max_in_flight, 512);
            assert_eq!(j.duplicate_window, std::time::Duration::from_secs(120));
        }
        m => panic!("{m:?}"),
    }
    assert!(c.tls.require_tls);
    let core: BridgeConfig = toml::from_str("mode = \"core\"\nauth = \"none\"").unwrap();
    assert_eq!(core.mode, switchyard_nats::Mode::Core);
}
