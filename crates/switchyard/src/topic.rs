//! Topics and subscription patterns, with NATS subject semantics.
//!
//! A topic is a dot-separated list of non-empty tokens, e.g. `market_data.trade.BTCUSDT`,
//! so that it maps 1:1 onto a NATS subject. A pattern may use `*` for exactly one token
//! and `>` (last token only) for one or more trailing tokens.
//!
//! Topics are *interned*: [`Topic::new`] stores each distinct topic string once for the
//! life of the process, after which a `Topic` is a `Copy` pointer that compares and hashes
//! in one instruction. This is the trade most trading runtimes make (NautilusTrader uses
//! interned `Ustr` topics): it keeps reference counting off the hot path. Do not build
//! topics from unbounded values (order ids, timestamps) — use a bounded set such as
//! instrument symbols.

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{OnceLock, RwLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest topic accepted, in bytes (NATS has no hard limit; this keeps names sane).
pub const MAX_TOPIC_LEN: usize = 256;

/// Why a topic or pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The string is empty.
    #[error("topic is empty")]
    Empty,
    /// Longer than [`MAX_TOPIC_LEN`].
    #[error("topic {0:?} is longer than {MAX_TOPIC_LEN} bytes")]
    TooLong(String),
    /// Two dots in a row, or a leading or trailing dot.
    #[error("{0:?} has an empty token at position {1} (leading, trailing or double '.')")]
    EmptyToken(String, usize),
    /// Whitespace or a control character.
    #[error("{0:?} contains whitespace or a control character at byte {1}")]
    BadCharacter(String, usize),
    /// `*` or `>` in a topic (wildcards are for patterns only).
    #[error("{0:?}: wildcards '*' and '>' are only allowed in subscription patterns")]
    WildcardInTopic(String),
    /// `*` or `>` inside a token, e.g. `a.b*`.
    #[error("{0:?}: wildcard must be a whole token, found {1:?}")]
    PartialWildcard(String, String),
    /// `>` that is not the last token.
    #[error("{0:?}: '>' must be the last token")]
    GtNotLast(String),
}

fn check_tokens(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong(s.to_owned()));
    }
    if let Some(i) = s
        .bytes()
        .position(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(TopicError::BadCharacter(s.to_owned(), i));
    }
    for (i, tok) in s.split('.').enumerate() {
        if tok.is_empty() {
            return Err(TopicError::EmptyToken(s.to_owned(), i));
        }
    }
    Ok(())
}

fn interner() -> &'static RwLock<HashSet<&'static str>> {
    static INTERNER: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    INTERNER.get_or_init(|| RwLock::new(HashSet::new()))
}

fn intern(s: &str) -> &'static str {
    if let Some(found) = interner().read().unwrap_or_else(|e| e.into_inner()).get(s) {
        return found;
    }
    let mut set = interner().write().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = set.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// A validated, interned topic such as `market_data.trade.BTCUSDT`.
#[derive(Clone, Copy)]
pub struct Topic(&'static str);

impl Topic {
    /// Validate and intern `s`.
    pub fn new(s: &str) -> Result<Topic, TopicError> {
        Topic::check(s)?;
        Ok(Topic(intern(s)))
    }

    /// Would [`Topic::new`] accept `s`? Validates without interning, e.g. a string from
    /// outside the process that may never become a topic.
    pub fn check(s: &str) -> Result<(), TopicError> {
        check_tokens(s)?;
        if s.split('.').any(|t| t.contains(['*', '>'])) {
            return Err(TopicError::WildcardInTopic(s.to_owned()));
        }
        Ok(())
    }

    /// The topic string.
    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// The dot-separated tokens.
    pub fn tokens(&self) -> std::str::Split<'static, char> {
        self.0.split('.')
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Self) -> bool {
        // Interned: equal strings share one address.
        std::ptr::eq(self.0.as_ptr(), other.0.as_ptr())
    }
}
impl Eq for Topic {}
impl Hash for Topic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.0.as_ptr() as usize).hash(state)
    }
}
impl PartialOrd for Topic {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Topic {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(other.0)
    }
}
impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic({})", self.0)
    }
}
impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
impl TryFrom<&str> for Topic {
    type Error = TopicError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Topic::new(s)
    }
}
impl Serialize for Topic {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}
impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Topic::new(&s).map_err(serde::de::Error::custom)
    }
}

/// One token of a [`Pattern`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PatternToken {
    /// Matches this token exactly.
    Literal(&'static str),
    /// `*`: any one token.
    Any,
    /// `>`: one or more trailing tokens.
    Rest,
}

/// A subscription pattern: a topic, or a topic with `*` / `>` wildcards.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    raw: &'static str,
    tokens: Vec<PatternToken>,
}

impl Pattern {
    /// Parse and validate a pattern.
    pub fn new(s: &str) -> Result<Pattern, TopicError> {
        check_tokens(s)?;
        let raw = intern(s);
        let parts: Vec<&'static str> = raw.split('.').collect();
        let mut tokens = Vec::with_capacity(parts.len());
        for (i, tok) in parts.iter().enumerate() {
            let t = match *tok {
                "*" => PatternToken::Any,
                ">" if i + 1 == parts.len() => PatternToken::Rest,
                ">" => return Err(TopicError::GtNotLast(s.to_owned())),
                t if t.contains(['*', '>']) => {
                    return Err(TopicError::PartialWildcard(s.to_owned(), t.to_owned()));
                }
                t => PatternToken::Literal(t),
            };
            tokens.push(t);
        }
        Ok(Pattern { raw, tokens })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &'static str {
        self.raw
    }

    /// The parsed tokens.
    pub fn tokens(&self) -> &[PatternToken] {
        &self.tokens
    }

    /// True if the pattern has no wildcard (it names one topic).
    pub fn is_exact(&self) -> bool {
        self.tokens
            .iter()
            .all(|t| matches!(t, PatternToken::Literal(_)))
    }

    /// Does `topic` match? A plain linear match, used as the reference in tests; the bus
    /// routes through an index instead.
    pub fn matches(&self, topic: &Topic) -> bool {
        self.matches_str(topic.as_str())
    }

    /// Does the topic string `topic` match? For strings that should not become interned
    /// [`Topic`]s (e.g. subjects arriving from outside, journal records being filtered).
    pub fn matches_str(&self, topic: &str) -> bool {
        let mut toks = topic.split('.');
        for (i, p) in self.tokens.iter().enumerate() {
            match p {
                PatternToken::Rest => return toks.next().is_some() && i + 1 == self.tokens.len(),
                PatternToken::Any => {
                    if toks.next().is_none() {
                        return false;
                    }
                }
                PatternToken::Literal(l) => {
                    if toks.next() != Some(l) {
                        return false;
                    }
                }
            }
        }
        toks.next().is_none()
    }
}

impl Pattern {
    /// Is there a topic that both patterns match? (E.g. `orders.>` and `*.request.*`
    /// overlap; `orders.>` and `market_data.>` do not.) Used to subscribe only the event
    /// types whose topics a configured pattern can reach.
    pub fn overlaps(&self, other: &Pattern) -> bool {
        use PatternToken::{Any, Literal, Rest};
        let (a, b) = (&self.tokens, &other.tokens);
        for i in 0.. {
            match (a.get(i), b.get(i)) {
                (None, None) => return true,
                (None, Some(_)) | (Some(_), None) => return false,
                (Some(Rest), Some(_)) | (Some(_), Some(Rest)) => return true,
                (Some(Literal(x)), Some(Literal(y))) if x != y => return false,
                (Some(Literal(_) | Any), Some(Literal(_) | Any)) => {}
            }
        }
        unreachable!("the loop returns")
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({})", self.raw)
    }
}
impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}
impl TryFrom<&str> for Pattern {
    type Error = TopicError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Pattern::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exhaustive over short patterns: `overlaps` is true exactly when some topic
    /// matches both (a witness needs at most one token more than the longer pattern).
    #[test]
    fn overlaps_iff_a_topic_matches_both() {
        fn all(alphabet: &[&str], max: usize) -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            let mut level: Vec<String> = alphabet.iter().map(|s| s.to_string()).collect();
            for _ in 0..max {
                out.extend(level.iter().cloned());
                level = level
                    .iter()
                    .flat_map(|p| alphabet.iter().map(move |t| format!("{p}.{t}")))
                    .collect();
            }
            out
        }
        let patterns: Vec<Pattern> = all(&["a", "b", "*", ">"], 3)
            .iter()
            .filter_map(|p| Pattern::new(p).ok())
            .collect();
        let topics: Vec<Topic> = all(&["a", "b", "c"], 4)
            .iter()
            .map(|t| Topic::new(t).unwrap())
            .collect();
        let mut overlapping = 0;
        for p in &patterns {
            for q in &patterns {
                let witness = topics.iter().any(|t| p.matches(t) && q.matches(t));
                assert_eq!(p.overlaps(q), witness, "{p} vs {q}");
                overlapping += usize::from(witness);
            }
        }
        assert!(overlapping > 0 && overlapping < patterns.len() * patterns.len());
    }

    #[test]
    fn check_agrees_with_new() {
        for s in [
            "a.b",
            "",
            "a..b",
            "a b",
            "a.*",
            "a.b>",
            "x".repeat(300).as_str(),
        ] {
            assert_eq!(Topic::check(s), Topic::new(s).map(|_| ()), "{s:?}");
        }
    }

    #[test]
    fn topics_validate_and_intern() {
        let a = Topic::new("market_data.trade.BTCUSDT").unwrap();
        let b = Topic::new(&String::from("market_data.trade.BTCUSDT")).unwrap();
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_eq!(Topic::new(""), Err(TopicError::Empty));
        assert!(matches!(
            Topic::new("a..b"),
            Err(TopicError::EmptyToken(_, 1))
        ));
        assert!(matches!(
            Topic::new(".a"),
            Err(TopicError::EmptyToken(_, 0))
        ));
        assert!(matches!(
            Topic::new("a."),
            Err(TopicError::EmptyToken(_, 1))
        ));
        assert!(matches!(
            Topic::new("a b"),
            Err(TopicError::BadCharacter(_, 1))
        ));
        assert!(matches!(
            Topic::new("a.*"),
            Err(TopicError::WildcardInTopic(_))
        ));
        assert!(matches!(
            Topic::new("a.b>"),
            Err(TopicError::WildcardInTopic(_))
        ));
        assert!(matches!(
            Topic::new(&"x".repeat(300)),
            Err(TopicError::TooLong(_))
        ));
        let msg = Topic::new("a..b").unwrap_err().to_string();
        assert!(msg.contains("empty token"), "{msg}");
    }

    #[test]
    fn patterns_follow_nats_semantics() {
        let t = |s| Topic::new(s).unwrap();
        let p = |s| Pattern::new(s).unwrap();
        assert!(p("a.*.c").matches(&t("a.b.c")));
        assert!(!p("a.*.c").matches(&t("a.b.d")));
        assert!(!p("a.*").matches(&t("a")));
        assert!(!p("a.*").matches(&t("a.b.c")));
        assert!(p("a.>").matches(&t("a.b")));
        assert!(p("a.>").matches(&t("a.b.c.d")));
        assert!(!p("a.>").matches(&t("a")));
        assert!(p(">").matches(&t("a")));
        assert!(p("a.b").matches(&t("a.b")));
        assert!(!p("a.b").matches(&t("a.b.c")));
        assert!(p("a.b").is_exact());
        assert!(!p("a.*").is_exact());
        assert!(matches!(
            Pattern::new("a.>.b"),
            Err(TopicError::GtNotLast(_))
        ));
        assert!(matches!(
            Pattern::new("a.b*"),
            Err(TopicError::PartialWildcard(_, _))
        ));
    }
}
