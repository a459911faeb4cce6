//! The conformance suite: every behaviour of the `Parade` trait that users rely on, written
//! once and run against every backend. Each scenario is an `async fn(Backend)`; the
//! `conformance!` macro instantiates it as a test per backend, each on its own fresh store.
//!
//! Scenarios follow the upstream parade tests (shared/parade-spec.md §6), the behaviours
//! listed after them, and one test for each seed defect Parade fixes.

#[path = "../support/mod.rs"]
mod support;

mod batch;
mod common;
mod delete;
mod dependencies;
mod hostile;
mod insert;
mod operators;
mod own;
mod returns;
mod waiters;

macro_rules! conformance {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    crate::$module::$test(crate::support::Backend::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    crate::$module::$test(crate::support::Backend::Sqlite).await
                }
            )*
        }
    };
}

conformance!(
    hostile::megabyte_bodies_and_statuses_round_trip,
    hostile::ids_of_any_length_and_character_are_kept_exactly,
    hostile::a_task_that_signals_itself_is_defined,
    hostile::tasks_of_an_action_nobody_performs_wait,
    hostile::nul_characters_are_refused_on_insert,
    operators::summary_counts_by_action_and_status_and_names_owners,
    operators::list_newest_first_and_predecessors,
    operators::retry_makes_an_aborted_task_runnable_again,
    own::owning_hands_out_disjoint_batches,
    own::owned_task_carries_body_unchanged,
    own::owning_after_deadline_reoffers_task,
    own::owning_without_duration_never_expires,
    own::owning_follows_priority_then_insertion_order,
    own::tasks_without_tries_left_are_never_offered,
    own::dependency_counts_gate_owning_by_equality,
    own::concurrent_owners_perform_every_task_exactly_once,
    own::prefix_hides_other_namespaces_and_strips_names,
    returns::return_directly_and_retry,
    returns::returning_as_in_progress_is_rejected,
    returns::late_return_and_extend_succeed_until_reowned,
    returns::extend_with_unknown_token_is_invalid,
    returns::extend_keeps_ownership_past_original_deadline,
    returns::extend_fails_once_task_is_stolen,
    returns::retry_until_failed_aborts_and_signals_successor,
    returns::exhausted_pending_return_counts_as_failure_for_successors,
    returns::retry_multi_alternating_expiry_and_pending_return,
    returns::expired_last_try_ends_aborted_and_signals_failure,
    dependencies::counts_failures_of_predecessors,
    dependencies::divisor_dag_runs_each_task_after_its_divisors,
    dependencies::fan_in_dag_under_concurrent_owners,
    dependencies::signalling_missing_successor_is_ignored,
    delete::delete_chain_with_extra_link_removes_everything,
    delete::delete_only_one_dependency_keeps_successor,
    delete::delete_treelike_removes_whole_tree,
    delete::delete_done_predecessor_keeps_waiting_successor,
    delete::delete_pending_predecessor_removes_satisfied_successor,
    delete::delete_completed_predecessor_keeps_runnable_successor,
    delete::delete_duplicate_ids_decrements_once,
    delete::delete_unknown_and_already_deleted_ids_is_fine,
    delete::delete_handles_long_ids_and_cycles,
    insert::inserted_row_keeps_every_column,
    insert::insert_rejects_unknown_successor_and_stores_nothing,
    insert::insert_accepts_successor_already_stored,
    insert::insert_rejects_duplicate_id_and_stores_nothing,
    insert::insert_rejects_negative_counts,
    insert::list_filters_by_status_and_action_in_insertion_order,
    waiters::waiter_sees_completion_and_abort_created_before_or_after_return,
    waiters::waiter_on_task_without_channel_fails,
    waiters::waiter_on_missing_task_fails,
    waiters::cancel_returns_cancelled_at_once,
    waiters::cancel_after_finish_is_harmless,
    waiters::waiters_sharing_a_channel_wake_only_for_their_task,
    waiters::many_waiters_share_one_listener,
    batch::return_tasks_applies_each_return_like_return_task,
    batch::return_tasks_counts_each_signal_once_per_predecessor,
    batch::release_tasks_hands_back_without_using_a_try,
    batch::inserting_tasks_hints_idle_actors,
);
