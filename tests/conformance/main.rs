//! The conformance suite: every behaviour of the `Parade` trait that users rely on, written
//! once and run against every store: PostgreSQL and SQLite, each bare (as `parade run` uses
//! it by default) and namespaced by `Prefixed` (as with `[actor] prefix`). Each scenario is
//! an `async fn(Store)`; the `conformance!` macro instantiates it as a test in modules
//! `postgres_bare`, `postgres_prefixed`, `sqlite_bare` and `sqlite_prefixed`, each test on a
//! fresh store. Scenarios about namespaces themselves run in the prefixed modules only.
//!
//! Scenarios follow the upstream parade tests, the behaviours listed after them, and one
//! test for each seed defect Parade fixes (`docs/queue-semantics.md` states the rules).

#[path = "../support/mod.rs"]
mod support;

mod batch;
mod browse;
mod cancel;
mod common;
mod completion;
mod delete;
mod dependencies;
mod hostile;
mod insert;
mod limits;
mod operators;
mod own;
mod retention;
mod returns;
mod time;
mod waiters;

// The scenarios, by name, for the macro below.
use batch::*;
use browse::*;
use cancel::*;
use completion::*;
use delete::*;
use dependencies::*;
use hostile::*;
use insert::*;
use limits::*;
use operators::*;
use own::*;
use retention::*;
use returns::*;
use time::*;
use waiters::*;

/// Instantiates the scenarios of `every_store` on all four stores, and those of
/// `prefixed_stores` on the two namespaced ones as well.
macro_rules! conformance {
    (every_store: $every:tt, prefixed_stores: $prefixed:tt $(,)?) => {
        support::instantiate!(postgres_bare (crate::support::Store::bare(crate::support::Backend::Postgres)) $every);
        support::instantiate!(sqlite_bare (crate::support::Store::bare(crate::support::Backend::Sqlite)) $every);
        support::instantiate!(postgres_prefixed (crate::support::Store::prefixed(crate::support::Backend::Postgres)) $every $prefixed);
        support::instantiate!(sqlite_prefixed (crate::support::Store::prefixed(crate::support::Backend::Sqlite)) $every $prefixed);
    };
}

conformance!(
    every_store: [
    // hostile
    megabyte_bodies_and_statuses_round_trip,
    ids_up_to_the_maximum_of_any_character_are_kept_exactly,
    overlong_names_and_unusable_channels_are_refused_naming_the_task,
    a_task_that_signals_itself_is_defined,
    tasks_of_an_action_nobody_performs_wait,
    nul_characters_are_refused_on_insert,
    // operators
    summary_counts_by_action_and_status_and_names_owners,
    summary_names_runnable_tasks_and_those_past_their_deadline,
    finished_tasks_are_counted_by_minute_action_and_code,
    list_newest_first_and_predecessors,
    retry_makes_an_aborted_task_runnable_again,
    // own
    owning_hands_out_disjoint_batches,
    owned_task_carries_body_unchanged,
    owning_after_deadline_reoffers_task,
    expired_ownerships_are_offered_before_pending_tasks,
    owning_without_duration_never_expires,
    owning_follows_priority_then_insertion_order,
    tasks_without_tries_left_are_never_offered,
    dependency_counts_gate_owning_by_equality,
    concurrent_owners_perform_every_task_exactly_once,
    // returns
    return_directly_and_retry,
    returning_as_in_progress_is_rejected,
    late_return_and_extend_succeed_until_reowned,
    extend_with_unknown_token_is_invalid,
    extend_keeps_ownership_past_original_deadline,
    extend_fails_once_task_is_stolen,
    retry_until_failed_aborts_and_signals_successor,
    exhausted_pending_return_counts_as_failure_for_successors,
    retry_multi_alternating_expiry_and_pending_return,
    expired_last_try_ends_aborted_and_signals_failure,
    // dependencies
    counts_failures_of_predecessors,
    divisor_dag_runs_each_task_after_its_divisors,
    fan_in_dag_under_concurrent_owners,
    signalling_missing_successor_is_ignored,
    // delete
    delete_chain_with_extra_link_removes_everything,
    delete_only_one_dependency_keeps_successor,
    delete_treelike_removes_whole_tree,
    delete_done_predecessor_keeps_waiting_successor,
    delete_pending_predecessor_removes_satisfied_successor,
    delete_completed_predecessor_keeps_runnable_successor,
    delete_duplicate_ids_decrements_once,
    delete_unknown_and_already_deleted_ids_is_fine,
    delete_handles_long_ids_and_cycles,
    // insert
    inserted_row_keeps_every_column,
    insert_rejects_unknown_successor_and_stores_nothing,
    insert_accepts_successor_already_stored,
    insert_rejects_duplicate_id_and_stores_nothing,
    insert_rejects_negative_counts,
    list_filters_by_status_and_action_in_insertion_order,
    // waiters
    waiter_sees_completion_and_abort_created_before_or_after_return,
    waiter_on_task_without_channel_fails,
    waiter_on_missing_task_fails,
    waiter_on_a_deleted_task_fails_promptly,
    cancel_returns_cancelled_at_once,
    cancel_after_finish_is_harmless,
    waiters_sharing_a_channel_wake_only_for_their_task,
    many_waiters_share_one_listener,
    // batch
    return_tasks_applies_each_return_like_return_task,
    return_tasks_counts_each_signal_once_per_predecessor,
    release_tasks_hands_back_without_using_a_try,
    inserting_tasks_hints_idle_actors,
    // time
    a_delayed_task_is_owned_only_once_due,
    priority_and_insertion_order_hold_among_due_tasks,
    next_due_is_the_earliest_delayed_task_or_deadline_of_the_actions,
    insert_if_absent_adds_only_new_ids_and_names_them,
    a_pending_return_with_a_delay_waits_it_out,
    an_expired_ownership_backs_off_by_its_actions_policy,
    // cancel
    cancel_answers_each_id_and_ends_what_has_not_ended,
    cancel_with_cascade_reaches_every_waiting_successor,
    // retention
    pruning_deletes_exactly_the_expired_finished_tasks_in_batches,
    a_successor_keeps_the_signals_of_pruned_predecessors,
    a_pruned_task_is_gone_for_later_inserts,
    concurrent_pruners_delete_each_expired_task_once,
    // completion
    a_completion_that_deletes_still_signals_its_successors,
    a_completion_that_deletes_keeps_aborts_retries_and_waited_for_tasks,
    a_completion_that_does_not_hold_the_task_deletes_nothing,
    // browse
    pages_through_ten_thousand_tasks_without_gap_or_repeat,
    a_task_owned_or_finished_between_two_pages_keeps_its_place,
    each_state_filter_lists_exactly_its_tasks,
    pages_filter_by_action_id_prefix_and_enqueue_time,
    an_id_prefix_matches_exactly_and_pages_alike_sparse_or_dense,
    tasks_enqueued_together_page_by_position_without_gap_or_repeat,
    a_filter_matching_few_of_many_tasks_pages_newest_first_through_all,
    task_graph_holds_every_ancestor_and_descendant,
    task_graph_stops_at_its_bound_and_marks_what_it_left_out,
    ancestors_leave_the_graph_once_deleted_pruned_or_stored_anew,
    // limits
    the_global_limit_holds_under_concurrent_owners,
    an_own_takes_no_more_than_the_room_left,
    a_limit_counts_the_tasks_owned_within_it,
    the_summary_counts_what_the_limit_counts,
    expired_ownerships_stop_counting_toward_the_limit,
    an_at_limit_group_owns_nothing_while_others_are_unaffected,
    ],
    prefixed_stores: [
        prefix_hides_other_namespaces_and_strips_names,
        a_limit_counts_only_its_namespace,
    ],
);
