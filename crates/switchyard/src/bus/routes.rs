//! The routing index: a token trie over subscription patterns.
//!
//! Resolving a topic walks the trie once (cost grows with the topic's depth, not with the
//! number of subscriptions); the result is cached per topic and type until the next
//! subscribe or unsubscribe bumps the bus generation, so the hot path does no matching.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use crate::topic::{Pattern, PatternToken, Topic};

/// A subscription's id, unique within a bus.
pub type SubId = u64;

#[derive(Default)]
struct Node {
    children: HashMap<&'static str, Node>,
    any: Option<Box<Node>>,
    /// Subscriptions whose pattern ends here.
    here: Vec<SubId>,
    /// Subscriptions whose pattern ends with `>` here.
    rest: Vec<SubId>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.any.is_none()
            && self.here.is_empty()
            && self.rest.is_empty()
    }
}

pub(crate) struct RouteEntry {
    pub type_id: TypeId,
    /// `Arc<SubShared<T>>` for the subscription's event type `T`.
    pub typed: Arc<dyn Any + Send + Sync>,
}

#[derive(Default)]
pub(crate) struct Routes {
    root: Node,
    entries: HashMap<SubId, RouteEntry>,
}

impl Routes {
    pub fn insert(&mut self, pattern: &Pattern, id: SubId, entry: RouteEntry) {
        let mut node = &mut self.root;
        for tok in pattern.tokens() {
            match tok {
                PatternToken::Literal(l) => node = node.children.entry(l).or_default(),
                PatternToken::Any => node = node.any.get_or_insert_with(Default::default),
                PatternToken::Rest => {
                    node.rest.push(id);
                    self.entries.insert(id, entry);
                    return;
                }
            }
        }
        node.here.push(id);
        self.entries.insert(id, entry);
    }

    pub fn remove(&mut self, pattern: &Pattern, id: SubId) -> bool {
        fn walk(node: &mut Node, toks: &[PatternToken], id: SubId) -> bool {
            let Some((first, rest)) = toks.split_first() else {
                let before = node.here.len();
                node.here.retain(|s| *s != id);
                return node.here.len() != before;
            };
            match first {
                PatternToken::Rest => {
                    let before = node.rest.len();
                    node.rest.retain(|s| *s != id);
                    node.rest.len() != before
                }
                PatternToken::Any => match node.any.as_deref_mut() {
                    Some(child) => {
                        let r = walk(child, rest, id);
                        if child.is_empty() {
                            node.any = None;
                        }
                        r
                    }
                    None => false,
                },
                PatternToken::Literal(l) => match node.children.get_mut(l) {
                    Some(child) => {
                        let r = walk(child, rest, id);
                        if child.is_empty() {
                            node.children.remove(l);
                        }
                        r
                    }
                    None => false,
                },
            }
        }
        let removed = walk(&mut self.root, pattern.tokens(), id);
        self.entries.remove(&id);
        removed
    }

    /// Ids of the subscriptions matching `topic`, ascending (subscription order).
    pub fn matching(&self, topic: &Topic) -> Vec<SubId> {
        let toks: Vec<&str> = topic.tokens().collect();
        let mut out = Vec::new();
        fn walk(node: &Node, toks: &[&str], out: &mut Vec<SubId>) {
            let Some((first, rest)) = toks.split_first() else {
                out.extend_from_slice(&node.here);
                return;
            };
            // `>` here matches one or more remaining tokens: there is at least one.
            out.extend_from_slice(&node.rest);
            if let Some(child) = node.children.get(first) {
                walk(child, rest, out);
            }
            if let Some(child) = &node.any {
                walk(child, rest, out);
            }
        }
        walk(&self.root, &toks, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The typed queues of the subscriptions of event type `S` matching `topic`.
    pub fn resolve<S: Any + Send + Sync>(&self, topic: &Topic) -> Vec<Arc<S>> {
        let want = TypeId::of::<S>();
        self.matching(topic)
            .into_iter()
            .filter_map(|id| {
                let e = self.entries.get(&id)?;
                if e.type_id != want {
                    return None;
                }
                Arc::clone(&e.typed).downcast::<S>().ok()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> RouteEntry {
        RouteEntry {
            type_id: TypeId::of::<()>(),
            typed: Arc::new(()),
        }
    }

    #[test]
    fn trie_matches_like_the_reference_and_forgets_removed() {
        let pats = ["a.b.c", "a.*.c", "a.>", ">", "*.b.*", "a.b", "x.y"];
        let mut r = Routes::default();
        let parsed: Vec<Pattern> = pats.iter().map(|p| Pattern::new(p).unwrap()).collect();
        for (i, p) in parsed.iter().enumerate() {
            r.insert(p, i as u64, entry());
        }
        for t in ["a.b.c", "a.b", "a", "x.y", "q.b.z", "a.x.c.d"] {
            let topic = Topic::new(t).unwrap();
            let want: Vec<u64> = parsed
                .iter()
                .enumerate()
                .filter(|(_, p)| p.matches(&topic))
                .map(|(i, _)| i as u64)
                .collect();
            assert_eq!(r.matching(&topic), want, "topic {t}");
        }
        assert!(r.remove(&parsed[1], 1));
        assert!(!r.remove(&parsed[1], 1));
        let topic = Topic::new("a.b.c").unwrap();
        assert!(!r.matching(&topic).contains(&1));
        for (i, p) in parsed.iter().enumerate() {
            r.remove(p, i as u64);
        }
        assert!(r.root.is_empty());
        assert!(r.entries.is_empty());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(str::to_owned)
    }

    fn topic() -> impl Strategy<Value = String> {
        proptest::collection::vec(token(), 1..5).prop_map(|t| t.join("."))
    }

    fn pattern() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(prop_oneof![token(), Just("*".to_owned())], 0..4),
            prop_oneof![token(), Just("*".to_owned()), Just(">".to_owned())],
        )
            .prop_map(|(mut head, last)| {
                head.push(last);
                head.join(".")
            })
    }

    proptest! {
        /// The trie routes exactly like the reference matcher, before and after removals.
        #[test]
        fn trie_agrees_with_the_reference_matcher(
            pats in proptest::collection::vec(pattern(), 1..12),
            topics in proptest::collection::vec(topic(), 1..12),
            remove_every in 2usize..4,
        ) {
            let parsed: Vec<Pattern> = pats.iter().map(|p| Pattern::new(p).unwrap()).collect();
            let mut r = Routes::default();
            for (i, p) in parsed.iter().enumerate() {
                r.insert(p, i as u64, RouteEntry { type_id: TypeId::of::<()>(), typed: Arc::new(()) });
            }
            let check = |r: &Routes, live: &dyn Fn(usize) -> bool| {
                for t in &topics {
                    let topic = Topic::new(t).unwrap();
                    let want: Vec<u64> = parsed.iter().enumerate()
                        .filter(|(i, p)| live(*i) && p.matches(&topic))
                        .map(|(i, _)| i as u64).collect();
                    prop_assert_eq!(r.matching(&topic), want, "topic {}", t);
                }
                Ok(())
            };
            check(&r, &|_| true)?;
            for (i, p) in parsed.iter().enumerate() {
                if i % remove_every == 0 {
                    r.remove(p, i as u64);
                }
            }
            check(&r, &|i| i % remove_every != 0)?;
        }
    }
}
