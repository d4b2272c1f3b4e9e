//! The state machine in `infra/` against the code that runs it: it parses,
//! every state is reachable, its error names are exactly the batch
//! function's, its retry policy and concurrency are the local runner's, and
//! every Task payload is one the batch function accepts.

use std::collections::{BTreeSet, HashMap};

use clearance_core::batch::{ANNOUNCE_RETRY, ERROR_NAMES, MAP_MAX_CONCURRENCY, RETRY};
use clearance_workflow::task::TaskInput;
use serde_json::Value;

const ASL: &str = include_str!("../infra/batch-clearing.asl.json");

/// Every state of a scope and the names it can go to next.
fn transitions(states: &serde_json::Map<String, Value>) -> HashMap<String, Vec<String>> {
    states
        .iter()
        .map(|(name, state)| {
            let mut next: Vec<String> = Vec::new();
            next.extend(state["Next"].as_str().map(str::to_owned));
            next.extend(state["Default"].as_str().map(str::to_owned));
            for catch in state["Catch"].as_array().into_iter().flatten() {
                next.extend(catch["Next"].as_str().map(str::to_owned));
            }
            for choice in state["Choices"].as_array().into_iter().flatten() {
                next.extend(choice["Next"].as_str().map(str::to_owned));
            }
            (name.clone(), next)
        })
        .collect()
}

/// Checks one scope (the machine, or a Map's processor) and recurses.
fn check_scope(scope: &Value, tasks: &mut Vec<Value>, names: &mut BTreeSet<String>, maps: &mut Vec<Value>) {
    let states = scope["States"].as_object().expect("a scope has States");
    let start = scope["StartAt"].as_str().expect("a scope has StartAt");
    let graph = transitions(states);
    for (from, targets) in &graph {
        for to in targets {
            assert!(states.contains_key(to), "{from} goes to {to}, which does not exist");
        }
    }
    let mut reached = BTreeSet::from([start.to_owned()]);
    let mut queue = vec![start.to_owned()];
    while let Some(state) = queue.pop() {
        for next in graph.get(&state).into_iter().flatten() {
            if reached.insert(next.clone()) {
                queue.push(next.clone());
            }
        }
    }
    let all: BTreeSet<String> = states.keys().cloned().collect();
    assert_eq!(reached, all, "every state is reachable from {start}");
    for (name, state) in states {
        let kind = state["Type"].as_str().unwrap_or_default();
        let ends = state["End"] == true || matches!(kind, "Succeed" | "Fail");
        assert!(ends || state["Next"].is_string() || kind == "Choice", "{name} neither ends nor goes on");
        for rule in state["Retry"].as_array().into_iter().chain(state["Catch"].as_array()).flatten() {
            for error in rule["ErrorEquals"].as_array().into_iter().flatten() {
                names.insert(error.as_str().unwrap_or_default().to_owned());
            }
        }
        match kind {
            "Task" => tasks.push(state.clone()),
            "Map" => {
                maps.push(state.clone());
                check_scope(&state["ItemProcessor"], tasks, names, maps);
            }
            _ => {}
        }
    }
}

/// A Task's payload with sample values for its paths.
fn sample_payload(parameters: &Value) -> Value {
    let mut payload = serde_json::Map::new();
    for (key, value) in parameters.as_object().into_iter().flatten() {
        match key.strip_suffix(".$") {
            Some("job_id") => payload.insert("job_id".into(), Value::String(uuid::Uuid::nil().to_string())),
            Some("chunk") => payload.insert("chunk".into(), Value::from(3)),
            Some("error") => payload.insert(
                "error".into(),
                serde_json::json!({"Error": "Clearance.Conflict", "Cause": "{\"errorType\":\"Clearance.Conflict\",\"errorMessage\":\"{}\"}"}),
            ),
            Some(other) => panic!("a Task passes an unknown path {other}"),
            None => payload.insert(key.clone(), value.clone()),
        };
    }
    Value::Object(payload)
}

#[test]
fn the_state_machine_matches_the_batch_function() -> Result<(), Box<dyn std::error::Error>> {
    let machine: Value = serde_json::from_str(ASL)?;
    let (mut tasks, mut names, mut maps) = (Vec::new(), BTreeSet::new(), Vec::new());
    check_scope(&machine, &mut tasks, &mut names, &mut maps);

    let ours: BTreeSet<String> = names.iter().filter(|n| n.starts_with("Clearance.")).cloned().collect();
    let code: BTreeSet<String> = ERROR_NAMES.iter().map(|n| (*n).to_owned()).collect();
    assert_eq!(ours, code, "the error names the ASL matches are exactly those the batch function raises");
    for name in &names {
        assert!(
            name.starts_with("Clearance.")
                || name.starts_with("Lambda.")
                || name == "States.ALL"
                || name == "States.Timeout",
            "unexpected error name {name}"
        );
    }

    let mut steps = BTreeSet::new();
    for task in &tasks {
        assert_eq!(task["Resource"], "${BatchFunctionArn}", "every Task is the batch function");
        let payload = sample_payload(&task["Parameters"]);
        steps.insert(payload["step"].as_str().unwrap_or_default().to_owned());
        serde_json::from_value::<TaskInput>(payload.clone()).map_err(|e| format!("{payload}: {e}"))?;
        let retry = task["Retry"].as_array().and_then(|r| {
            r.iter().find(|rule| {
                rule["ErrorEquals"].as_array().is_some_and(|e| e.iter().any(|n| n == "Clearance.Retryable"))
            })
        });
        let retry = retry.ok_or("every Task retries Clearance.Retryable")?;
        let policy = if payload["step"] == "announce" { ANNOUNCE_RETRY } else { RETRY };
        assert_eq!(retry["IntervalSeconds"].as_f64(), Some(policy.interval_secs));
        assert_eq!(retry["BackoffRate"].as_f64(), Some(policy.backoff_rate));
        assert_eq!(retry["MaxAttempts"].as_u64(), Some(u64::from(policy.max_attempts)));
        for rule in task["Retry"].as_array().into_iter().flatten() {
            let errors = rule["ErrorEquals"].as_array().cloned().unwrap_or_default();
            assert!(
                !errors
                    .iter()
                    .any(|e| e == "Clearance.Conflict" || e == "Clearance.Fatal" || e == "States.ALL"),
                "only retryable errors are retried"
            );
        }
    }
    assert_eq!(
        steps,
        BTreeSet::from(["plan", "reserve", "finalize", "announce", "compensate"].map(String::from))
    );
    assert_eq!(maps.len(), 1);

    // Money posted is never compensated: after Finalize comes Announce, whose
    // failures end in NotAnnounced (a redrive), never in Compensate; and a
    // Compensate that finds the clearance posted goes on to Announce.
    let states = &machine["States"];
    assert_eq!(states["Finalize"]["Next"], "Announce");
    let announce_catch: Vec<&Value> =
        states["Announce"]["Catch"].as_array().into_iter().flatten().map(|c| &c["Next"]).collect();
    assert_eq!(announce_catch, [&Value::from("NotAnnounced")]);
    assert_eq!(states["NotAnnounced"]["Type"], "Fail");
    let choice = &states[states["Compensate"]["Next"].as_str().unwrap_or_default()];
    assert_eq!(choice["Type"], "Choice");
    assert_eq!(choice["Choices"][0]["Variable"], "$.compensation.posted");
    assert_eq!(choice["Choices"][0]["Next"], "Announce");
    assert_eq!(choice["Default"], "JobFailed");
    assert_eq!(maps[0]["MaxConcurrency"].as_u64(), Some(u64::from(MAP_MAX_CONCURRENCY)));
    Ok(())
}
