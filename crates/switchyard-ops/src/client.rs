//! Client of the operations API's kill switch, for `switchyard kill` and `switchyard
//! reset`.
//!
//! It speaks HTTP/1.1 over a plain [`TcpStream`] (one request per connection,
//! `Connection: close`): the API listens on loopback and a hand-written request of a
//! dozen lines is smaller than an HTTP client dependency. No TLS: `https://` addresses
//! are refused.
//!
//! The operator secret goes only into the `Authorization` header; it is never printed,
//! logged or put into an error.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value};
use switchyard::kill_switch::{Mode, Scope};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response read.
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;

/// Options of a kill-switch trigger; the server's defaults (scope all, mode halt, source
/// `http-api`) apply to what is `None`.
#[derive(Clone, Debug, Default)]
pub struct KillOptions {
    /// What to cover.
    pub scope: Option<Scope>,
    /// What to do there.
    pub mode: Option<Mode>,
    /// Who asks.
    pub source: Option<String>,
}

/// Trigger the kill switch of the API at `addr` (`host:port` or `http://host:port`).
/// Returns the server's JSON answer; a non-2xx answer is an error with the status and
/// the server's message.
pub async fn kill(addr: &str, reason: &str, options: &KillOptions) -> anyhow::Result<String> {
    let mut body = Map::new();
    body.insert("reason".into(), reason.into());
    if let Some(scope) = &options.scope {
        body.insert("scope".into(), serde_json::to_value(scope)?);
    }
    if let Some(mode) = options.mode {
        body.insert("mode".into(), serde_json::to_value(mode)?);
    }
    if let Some(source) = &options.source {
        body.insert("source".into(), source.as_str().into());
    }
    let response = request(addr, "/kill-switch", None, &Value::Object(body)).await?;
    response.into_result(addr)
}

/// Reset every kill-switch scope of the API at `addr` with the operator `secret`,
/// recording `who` in the audit. Returns the server's JSON answer; a non-2xx answer is
/// an error with the status and the server's message (never the secret).
pub async fn reset(addr: &str, secret: &str, who: &str) -> anyhow::Result<String> {
    reset_scope(addr, secret, who, None).await
}

/// [`reset`] of one `scope` (`None`: every scope).
pub async fn reset_scope(
    addr: &str,
    secret: &str,
    who: &str,
    scope: Option<&Scope>,
) -> anyhow::Result<String> {
    if secret.is_empty() {
        bail!("no operator secret given");
    }
    if secret.chars().any(char::is_control) {
        bail!("the operator secret contains a control character (a line break?)");
    }
    let mut body = Map::new();
    body.insert("who".into(), who.into());
    if let Some(scope) = scope {
        body.insert("scope".into(), serde_json::to_value(scope)?);
    }
    let response = request(
        addr,
        "/kill-switch/reset",
        Some(secret),
        &Value::Object(body),
    )
    .await?;
    response.into_result(addr)
}

/// An HTTP response, as far as this client cares.
#[derive(Debug)]
struct HttpResponse {
    status: u16,
    reason: String,
    retry_after: Option<String>,
    body: String,
}

impl HttpResponse {
    fn into_result(self, addr: &str) -> anyhow::Result<String> {
        if (200..300).contains(&self.status) {
            return Ok(self.body);
        }
        let detail = match serde_json::from_str::<Value>(&self.body) {
            Ok(Value::Object(o)) => {
                let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                format!("{} ({})", text("message"), text("error"))
            }
            _ => self.body.chars().take(500).collect(),
        };
        let retry = match &self.retry_after {
            Some(s) => format!("; retry after {s} s"),
            None => String::new(),
        };
        bail!(
            "{addr}: HTTP {} {}: {detail}{retry}",
            self.status,
            self.reason
        )
    }
}

/// `host:port` from `host:port` or `http://host:port[/]`.
fn authority(addr: &str) -> anyhow::Result<&str> {
    let addr = addr.trim();
    if addr.starts_with("https://") {
        bail!("{addr}: https is not supported (the operations API is plain HTTP on loopback)");
    }
    let authority = addr
        .strip_prefix("http://")
        .unwrap_or(addr)
        .trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
        bail!("{addr}: expected host:port or http://host:port");
    }
    Ok(authority)
}

async fn request(
    addr: &str,
    path: &str,
    bearer: Option<&str>,
    body: &Value,
) -> anyhow::Result<HttpResponse> {
    let authority = authority(addr)?;
    let body = serde_json::to_vec(body)?;
    let exchange = async {
        let mut stream = TcpStream::connect(authority)
            .await
            .with_context(|| format!("cannot connect to the operations API at {authority}"))?;
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: switchyard/{}\r\n\
             Accept: application/json\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n",
            env!("CARGO_PKG_VERSION"),
            body.len()
        )
        .into_bytes();
        if let Some(secret) = bearer {
            head.extend_from_slice(b"Authorization: Bearer ");
            head.extend_from_slice(secret.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        head.extend_from_slice(&body);
        stream
            .write_all(&head)
            .await
            .with_context(|| format!("cannot send the request to {authority}"))?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE)
            .read_to_end(&mut raw)
            .await
            .with_context(|| format!("cannot read the answer of {authority}"))?;
        parse_response(&raw).with_context(|| format!("bad HTTP answer from {authority}"))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{authority}: no answer within {REQUEST_TIMEOUT:?}"))?
}

fn parse_response(raw: &[u8]) -> anyhow::Result<HttpResponse> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("incomplete response head")?;
    let head = std::str::from_utf8(&raw[..end]).context("response head is not UTF-8")?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        bail!("bad status line {status_line:?}");
    };
    if !version.starts_with("HTTP/1.") {
        bail!("bad status line {status_line:?}");
    }
    let status: u16 = code
        .parse()
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let reason = parts.next().unwrap_or("").to_owned();
    let (mut length, mut chunked, mut retry_after) = (None, false, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            bail!("bad header line {line:?}");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("retry-after") {
            retry_after = Some(value.to_owned());
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .context("response body shorter than Content-Length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        reason,
        retry_after,
        body: String::from_utf8(body).context("response body is not UTF-8")?,
    })
}

fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk size")?;
        let size_text = std::str::from_utf8(&raw[..eol])?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = raw.get(..size).context("truncated chunk")?;
        body.extend_from_slice(chunk);
        raw = raw.get(size + 2..).context("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked_answers() {
        let r = parse_response(
            b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 2\r\nretry-after: 3\r\n\r\n{}",
        )
        .unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.body.as_str()),
            (429, "Too Many Requests", "{}")
        );
        assert_eq!(r.retry_after.as_deref(), Some("3"));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, "abcde");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn error_answers_carry_status_and_message() {
        let r = HttpResponse {
            status: 401,
            reason: "Unauthorized".into(),
            retry_after: None,
            body: r#"{"error":"wrong_secret","message":"the operator secret is wrong"}"#.into(),
        };
        let e = r.into_result("127.0.0.1:1").unwrap_err().to_string();
        assert_eq!(
            e,
            "127.0.0.1:1: HTTP 401 Unauthorized: the operator secret is wrong (wrong_secret)"
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(
            authority("http://127.0.0.1:9464/").unwrap(),
            "127.0.0.1:9464"
        );
        assert_eq!(authority("localhost:1").unwrap(), "localhost:1");
        assert!(authority("https://x:1").is_err());
        assert!(authority("127.0.0.1").is_err());
        assert!(authority("http://x:1/status").is_err());
    }

    #[tokio::test]
    async fn refuses_unsendable_secrets_without_echoing_them() {
        let e = reset("127.0.0.1:1", "abc\r\nX-Evil: 1", "me")
            .await
            .unwrap_err()
            .to_string();
        assert!(!e.contains("abc") && !e.contains("Evil"), "{e}");
        assert!(reset("127.0.0.1:1", "", "me").await.is_err());
    }
}
