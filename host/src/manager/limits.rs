//! Concurrency limits: how many tasks of a group of actions may be in progress at once.
//!
//! An actor puts actions in groups ([`Actor::concurrency`]; the component runtime makes one
//! group of each plugin's actions, with its manifest's `concurrency` and `node_concurrency`).
//! The fetch loop owns each limited group with a request of its own ([`OwnGroups`]), before
//! the unlimited actions, which it owns together in one request as it always has:
//!
//! - `node` caps the tasks of the group this node holds (owned and not yet settled: waiting
//!   for a worker, running, or being returned), so the request asks for no more than the
//!   room left, and a group at its node limit is not asked for at all;
//! - `global` travels to the store as [`OwnRequest::max_in_progress`]: the store owns no more
//!   than leaves that many of the group's tasks in progress, across every node.
//!
//! A group held back by either limit is owned again as soon as one of this node's tasks
//! settles (the fetch loop's pause ends then), and otherwise at the next poll, at most
//! `wait_time` later: room that another node's finished task frees is found that late.
//!
//! [`OwnRequest::max_in_progress`]: crate::queue::OwnRequest::max_in_progress

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use serde::Serialize;

use super::Actor;
use crate::queue::Backoff;

/// How many tasks of a group of actions may be in progress at once; unlimited by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConcurrencyLimits {
    /// At most this many across every node sharing the store (`concurrency`).
    pub global: Option<NonZeroU32>,
    /// At most this many on this node (`node_concurrency`).
    pub node: Option<NonZeroU32>,
}

impl ConcurrencyLimits {
    /// True if neither limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.global.is_none() && self.node.is_none()
    }
}

/// The group an action shares its limits with, as [`Actor::concurrency`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionGroup {
    /// Names the group: actions with equal names share the limits (the plugin's name).
    pub name: String,
    pub limits: ConcurrencyLimits,
}

/// One limited group's own request, in [`OwnRequest`](crate::queue::OwnRequest)'s terms.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LimitedGroup {
    pub name: String,
    pub actions: Vec<String>,
    pub backoff: Vec<Backoff>,
    pub limits: ConcurrencyLimits,
}

impl LimitedGroup {
    /// How many more tasks this node may own for the group, holding `held` of them; `None`
    /// without a node limit.
    pub fn node_room(&self, held: u64) -> Option<u32> {
        self.limits.node.map(|limit| {
            u32::try_from(u64::from(limit.get()).saturating_sub(held)).unwrap_or(u32::MAX)
        })
    }
}

/// The actor's actions split for owning: each limited group on its own, and every unlimited
/// action together.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct OwnGroups {
    /// In the order of their first action.
    pub limited: Vec<LimitedGroup>,
    pub unlimited_actions: Vec<String>,
    pub unlimited_backoff: Vec<Backoff>,
}

impl OwnGroups {
    /// Splits `actions` (with their `backoff`, in the same order) by the actor's groups.
    pub fn new(actor: &dyn Actor, actions: &[String], backoff: &[Backoff]) -> Self {
        let mut groups = OwnGroups::default();
        let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
        for (action, backoff) in actions.iter().zip(backoff) {
            match actor
                .concurrency(action)
                .filter(|g| !g.limits.is_unlimited())
            {
                Some(group) => {
                    let index = *by_name.entry(group.name.clone()).or_insert_with(|| {
                        groups.limited.push(LimitedGroup {
                            name: group.name.clone(),
                            actions: Vec::new(),
                            backoff: Vec::new(),
                            limits: group.limits,
                        });
                        groups.limited.len() - 1
                    });
                    groups.limited[index].actions.push(action.clone());
                    groups.limited[index].backoff.push(*backoff);
                }
                None => {
                    groups.unlimited_actions.push(action.clone());
                    groups.unlimited_backoff.push(*backoff);
                }
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::{ActorResult, SimpleActor};
    use crate::queue::ActorId;

    /// "a" and "b" share a plugin limited to 2 on this node; "c" is unlimited.
    struct Grouped;

    #[async_trait::async_trait]
    impl SimpleActor for Grouped {
        fn actions(&self) -> Vec<String> {
            ["a", "b", "c"].map(String::from).to_vec()
        }

        fn actor_id(&self) -> ActorId {
            ActorId::from("grouped")
        }

        fn concurrency(&self, action: &str) -> Option<ActionGroup> {
            (action != "c").then(|| ActionGroup {
                name: "ab".into(),
                limits: ConcurrencyLimits {
                    global: None,
                    node: NonZeroU32::new(2),
                },
            })
        }

        async fn handle(&self, _: &str, _: Option<&str>, _: i32) -> anyhow::Result<ActorResult> {
            Ok(ActorResult::completed(""))
        }
    }

    #[test]
    fn a_group_s_actions_are_owned_together_and_apart_from_the_unlimited_ones() {
        let actions = SimpleActor::actions(&Grouped);
        let backoff = [Backoff::IMMEDIATE, Backoff::default(), Backoff::IMMEDIATE];
        let groups = OwnGroups::new(&Grouped, &actions, &backoff);
        assert_eq!(groups.limited.len(), 1);
        assert_eq!(groups.limited[0].actions, ["a", "b"]);
        assert_eq!(
            groups.limited[0].backoff,
            [Backoff::IMMEDIATE, Backoff::default()]
        );
        assert_eq!(groups.unlimited_actions, ["c"]);
        assert_eq!(groups.limited[0].node_room(1), Some(1));
        assert_eq!(groups.limited[0].node_room(5), Some(0));
    }
}
