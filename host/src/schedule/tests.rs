use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 time")
}

fn cron(expression: &str, timezone: &str) -> Timing {
    Timing::Cron {
        expression: expression.into(),
        cron: Box::new(parse_cron(expression).expect("a valid expression")),
        timezone: parse_timezone(timezone).expect("a known zone"),
    }
}

/// The `n` slots after `t`.
fn slots_after(timing: &Timing, mut t: DateTime<Utc>, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            t = timing.next_after(t).expect("a next slot");
            slot_text(t)
        })
        .collect()
}

#[test]
fn a_cron_schedule_keeps_its_local_time_across_a_daylight_saving_change() {
    // 09:00 in Paris is 08:00Z in winter (CET) and 07:00Z in summer (CEST, from 29 March).
    let nine = cron("0 9 * * *", "Europe/Paris");
    assert_eq!(
        slots_after(&nine, at("2026-03-27T12:00:00Z"), 3),
        [
            "2026-03-28T08:00:00Z",
            "2026-03-29T07:00:00Z",
            "2026-03-30T07:00:00Z"
        ]
    );
    // Back to winter time on 25 October.
    assert_eq!(
        slots_after(&nine, at("2026-10-24T12:00:00Z"), 2),
        ["2026-10-25T08:00:00Z", "2026-10-26T08:00:00Z"]
    );
    // 02:30 does not exist on 29 March (the clock jumps from 02:00 to 03:00): that day's
    // slot is the first instant after the gap, 03:00 CEST. On 25 October 02:30 happens
    // twice: it runs once, at the first.
    let half_past_two = cron("30 2 * * *", "Europe/Paris");
    assert_eq!(
        slots_after(&half_past_two, at("2026-03-28T12:00:00Z"), 2),
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
    );
    assert_eq!(
        slots_after(&half_past_two, at("2026-10-24T12:00:00Z"), 2),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
    // The same expression in UTC is plain UTC.
    assert_eq!(
        slots_after(&cron("0 9 * * *", "UTC"), at("2026-03-28T12:00:00Z"), 1),
        ["2026-03-29T09:00:00Z"]
    );
}

#[test]
fn cron_takes_five_fields_or_six_with_seconds() {
    let every_ten_seconds = cron("*/10 * * * * *", "UTC");
    assert_eq!(
        slots_after(&every_ten_seconds, at("2026-12-01T20:15:03.250Z"), 2),
        ["2026-12-01T20:15:10Z", "2026-12-01T20:15:20Z"]
    );
    let weekdays = cron("30 8 * * MON-FRI", "UTC");
    // 2026-12-04 is a Friday.
    assert_eq!(
        slots_after(&weekdays, at("2026-12-04T09:00:00Z"), 1),
        ["2026-12-07T08:30:00Z"]
    );
    for bad in ["* * * *", "1 2 3 4 5 6 7", "61 * * * *", "", "every day"] {
        let e = parse_cron(bad).expect_err(bad);
        assert!(
            e.starts_with(&format!("invalid cron expression {bad:?}")),
            "{e}"
        );
        assert!(e.contains("write 5 fields"), "{e}");
    }
    assert!(parse_timezone("Europe/Pari").is_err());
    assert_eq!(parse_timezone("UTC"), Ok(Tz::UTC));
}

#[test]
fn every_counts_whole_periods_from_the_epoch() {
    let quarter = Timing::Every { seconds: 15 * 60 };
    let now = at("2026-12-01T20:21:07.500Z");
    assert_eq!(
        quarter.latest_at_or_before(now).map(slot_text).as_deref(),
        Some("2026-12-01T20:15:00Z")
    );
    assert_eq!(
        slots_after(&quarter, now, 3),
        [
            "2026-12-01T20:30:00Z",
            "2026-12-01T20:45:00Z",
            "2026-12-01T21:00:00Z"
        ]
    );
    // A slot is its own latest, and the next is one period on.
    let slot = at("2026-12-01T20:30:00Z");
    assert_eq!(quarter.latest_at_or_before(slot), Some(slot));
    assert_eq!(
        quarter.next_after(slot).map(slot_text).as_deref(),
        Some("2026-12-01T20:45:00Z")
    );
    let second = Timing::Every { seconds: 1 };
    assert_eq!(
        slots_after(&second, at("2026-12-01T20:15:00.999Z"), 2),
        ["2026-12-01T20:15:01Z", "2026-12-01T20:15:02Z"]
    );
}

#[test]
fn a_slot_names_one_task_id() {
    assert_eq!(
        slot_task_id("nightly-report", at("2026-12-01T20:15:00Z")).as_str(),
        "schedule:nightly-report:2026-12-01T20:15:00Z"
    );
    assert!(slot_task_id("a", at("2026-12-01T20:15:00Z"))
        .as_str()
        .starts_with(&task_id_prefix("a")));
}

#[test]
fn a_schedule_that_ran_before_catches_up_its_latest_slot_and_a_new_one_waits_for_the_next() {
    let hourly = cron("0 * * * *", "UTC");
    let now = at("2026-12-01T20:15:00Z");
    assert_eq!(
        first_slot(&hourly, true, now),
        Some(at("2026-12-01T20:00:00Z"))
    );
    assert_eq!(
        first_slot(&hourly, false, now),
        Some(at("2026-12-01T21:00:00Z"))
    );
}

#[test]
fn after_missing_several_slots_only_the_latest_is_due() {
    let minute = Timing::Every { seconds: 60 };
    // Waiting for 20:00; woken at 20:04:30 (suspended, or the store was unreachable).
    let due = due_slot(
        &minute,
        at("2026-12-01T20:00:00Z"),
        at("2026-12-01T20:04:30Z"),
    );
    assert_eq!(
        due,
        Some(Due {
            slot: at("2026-12-01T20:04:00Z"),
            missed_from: Some(at("2026-12-01T20:00:00Z")),
        })
    );
    // On time: that slot, nothing missed.
    let due = due_slot(
        &minute,
        at("2026-12-01T20:00:00Z"),
        at("2026-12-01T20:00:00.010Z"),
    );
    assert_eq!(
        due,
        Some(Due {
            slot: at("2026-12-01T20:00:00Z"),
            missed_from: None,
        })
    );
    // Early: nothing yet.
    assert_eq!(
        due_slot(
            &minute,
            at("2026-12-01T20:00:00Z"),
            at("2026-12-01T19:59:59.990Z")
        ),
        None
    );
    // A node back after a day down: one slot, the latest, however many were missed.
    let restart = at("2026-12-02T20:00:30Z");
    let first = first_slot(&minute, true, restart).unwrap();
    assert_eq!(first, at("2026-12-02T20:00:00Z"));
    assert_eq!(due_slot(&minute, first, restart).unwrap().slot, first);
    assert_eq!(minute.next_after(first), Some(at("2026-12-02T20:01:00Z")));
}

#[test]
fn timings_read_as_written() {
    assert_eq!(Timing::Every { seconds: 90 }.to_string(), "every 1m 30s");
    assert_eq!(cron("0 3 * * *", "UTC").to_string(), "cron \"0 3 * * *\"");
    assert_eq!(
        cron("0 3 * * *", "Europe/Paris").to_string(),
        "cron \"0 3 * * *\" in Europe/Paris"
    );
}
