//! `template.yaml` against the code it deploys: every function is a binary
//! in `functions/` and every binary a function; each function gets the
//! environment its code reads; each function's IAM actions are exactly the
//! ones its code path calls; the state machine is `infra/`'s, calling the
//! batch function.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_yaml::Value;

const TEMPLATE: &str = include_str!("../template.yaml");

/// Per binary: the AWS actions its code path calls (the adapters it
/// composes) and the environment it reads beyond the global ones.
fn expected() -> BTreeMap<&'static str, (Vec<&'static str>, Vec<&'static str>)> {
    BTreeMap::from([
        (
            // Snapshots (meta, chunks), the scope mirror: read and write.
            "clearance-read",
            (
                vec![
                    "dynamodb:BatchGetItem",
                    "dynamodb:BatchWriteItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                ],
                vec!["CLEARANCE_READER_DATABASE_URL"],
            ),
        ),
        (
            // Snapshots read, idempotency records (claim, complete, release),
            // jobs created, the mirror raised, executions started, events.
            "clearance-write",
            (
                vec![
                    "dynamodb:BatchGetItem",
                    "dynamodb:BatchWriteItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "events:PutEvents",
                    "states:StartExecution",
                ],
                vec!["CLEARANCE_APP_DATABASE_URL", "CLEARANCE_STATE_MACHINE_ARN", "CLEARANCE_EVENT_BUS"],
            ),
        ),
        ("clearance-jobs", (vec!["dynamodb:GetItem"], vec![])),
        (
            // Job plan and chunks read, counters and end written, the mirror
            // raised, events.
            "clearance-batch",
            (
                vec!["dynamodb:GetItem", "dynamodb:UpdateItem", "events:PutEvents"],
                vec!["CLEARANCE_APP_DATABASE_URL", "CLEARANCE_EVENT_BUS"],
            ),
        ),
    ])
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        // An intrinsic function (`!Sub "..."`): its argument.
        Value::Tagged(tagged) => strings(&tagged.value),
        _ => Vec::new(),
    }
}

#[test]
fn the_template_deploys_exactly_the_functions_with_what_they_need() -> Result<(), Box<dyn std::error::Error>>
{
    let template: Value = serde_yaml::from_str(TEMPLATE)?;
    let resources = template["Resources"].as_mapping().ok_or("no Resources")?;
    let global_env: BTreeSet<String> = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut deployed = BTreeSet::new();
    let expected = expected();
    for (name, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().unwrap_or_default();
        assert_eq!(resource["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"), "{name}");
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().ok_or("no Binary")?;
        let main = root.join("functions").join(binary).join("src/main.rs");
        assert!(main.exists(), "{name} builds {binary}, which is not a binary in functions/");
        deployed.insert(binary.to_owned());
        let (actions, env) = expected.get(binary).ok_or_else(|| format!("{binary} has no expectation"))?;

        let mut granted = BTreeSet::new();
        for policy in resource["Properties"]["Policies"].as_sequence().into_iter().flatten() {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                assert_eq!(statement["Effect"].as_str(), Some("Allow"));
                granted.extend(strings(&statement["Action"]));
            }
        }
        let wanted: BTreeSet<String> = actions.iter().map(|a| (*a).to_owned()).collect();
        assert_eq!(granted, wanted, "{name}: IAM actions granted = those its code calls");

        let own: BTreeSet<String> = resource["Properties"]["Environment"]["Variables"]
            .as_mapping()
            .map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        for var in env.iter().chain(["CLEARANCE_TABLE"].iter()) {
            assert!(own.contains(*var) || global_env.contains(*var), "{name} does not set {var}");
        }
        // Every variable the function's own main reads is set.
        let source = std::fs::read_to_string(&main)?;
        for (i, _) in source.match_indices("\"CLEARANCE_") {
            let var: String =
                source[i + 1..].chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
            assert!(own.contains(&var) || global_env.contains(&var), "{name} reads {var}, which is not set");
        }
        let in_vpc = !resource["Properties"]["VpcConfig"].is_null();
        let database = env.iter().find(|var| var.ends_with("_DATABASE_URL"));
        assert_eq!(in_vpc, database.is_some(), "{name}: in the VPC exactly when it uses the database");
        // Each function connects as its own role: the read function as the
        // read-only one, so no grant lets it write the ledger.
        if let Some(var) = database {
            let role = if binary == "clearance-read" { "clearance_reader" } else { "clearance_app" };
            let url = strings(&resource["Properties"]["Environment"]["Variables"][*var]).concat();
            assert!(url.starts_with(&format!("postgres://{role}:")), "{name} connects as {url}");
        }
    }
    let binaries: BTreeSet<String> = std::fs::read_dir(root.join("functions"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    assert_eq!(deployed, binaries, "every binary in functions/ is deployed, once");

    let machine = &template["Resources"]["BatchStateMachine"]["Properties"];
    assert_eq!(machine["Type"].as_str(), Some("STANDARD"));
    assert_eq!(machine["DefinitionUri"].as_str(), Some("infra/batch-clearing.asl.json"));
    assert!(root.join("infra/batch-clearing.asl.json").exists());
    let arn = &machine["DefinitionSubstitutions"]["BatchFunctionArn"];
    assert_eq!(
        serde_yaml::to_string(arn)?.trim(),
        "!GetAtt BatchFunction.Arn",
        "the Tasks are the batch function"
    );
    Ok(())
}

fn own_or_global<'a>(template: &'a Value, resource: &'a Value, path: &[&str]) -> &'a Value {
    let own = path.iter().fold(&resource["Properties"], |v, k| &v[*k]);
    if own.is_null() {
        path.iter().fold(&template["Globals"]["Function"], |v, k| &v[*k])
    } else {
        own
    }
}

#[test]
fn each_function_knows_its_timeout_and_reaches_the_database_over_verified_tls(
) -> Result<(), Box<dyn std::error::Error>> {
    let template: Value = serde_yaml::from_str(TEMPLATE)?;
    let resources = template["Resources"].as_mapping().ok_or("no Resources")?;
    for (name, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let timeout = own_or_global(&template, resource, &["Timeout"]).as_u64().ok_or("no Timeout")?;
        let told = own_or_global(
            &template,
            resource,
            &["Environment", "Variables", "CLEARANCE_FUNCTION_TIMEOUT_SECS"],
        );
        assert_eq!(told.as_str(), Some(timeout.to_string().as_str()), "{name:?}: the timeout it is told");
        let variables = resource["Properties"]["Environment"]["Variables"].as_mapping();
        for (var, value) in variables.into_iter().flatten() {
            if !var.as_str().is_some_and(|v| v.ends_with("_DATABASE_URL")) {
                continue;
            }
            let url = strings(value).concat();
            assert!(
                url.ends_with("?sslmode=verify-full&sslrootcert=/opt/rds-ca/global-bundle.pem"),
                "{name:?}: {url}"
            );
            let layers = strings(&resource["Properties"]["Layers"]);
            assert!(layers.iter().any(|l| l == "RdsCaBundleLayer"), "{name:?} lacks the CA bundle layer");
        }
    }
    Ok(())
}

#[test]
fn the_http_api_allows_browsers_what_the_local_server_allows() -> Result<(), Box<dyn std::error::Error>> {
    use clearance_http::cors;
    let template: Value = serde_yaml::from_str(TEMPLATE)?;
    let config = &template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"];
    assert_eq!(strings(&config["AllowMethods"]), cors::ALLOW_METHODS);
    assert_eq!(strings(&config["AllowHeaders"]), cors::ALLOW_HEADERS);
    assert_eq!(strings(&config["ExposeHeaders"]), cors::EXPOSE_HEADERS);
    assert_eq!(config["MaxAge"].as_u64(), Some(cors::MAX_AGE_SECS));
    assert_eq!(config["AllowCredentials"].as_bool(), Some(false));
    assert_eq!(strings(&config["AllowOrigins"]), ["CorsAllowedOrigins"], "origins are a parameter");
    Ok(())
}

#[test]
fn the_http_api_routes_exactly_the_served_routes_each_to_the_function_that_serves_it(
) -> Result<(), Box<dyn std::error::Error>> {
    let template: Value = serde_yaml::from_str(TEMPLATE)?;
    let mut routed = BTreeSet::new();
    for (name, resource) in template["Resources"].as_mapping().ok_or("no Resources")? {
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or_default();
        for (_, event) in resource["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let method = event["Properties"]["Method"].as_str().ok_or("no Method")?.to_owned();
            let path = event["Properties"]["Path"].as_str().ok_or("no Path")?.to_owned();
            let concrete = path.replace("{id}", "x").replace("{n}", "0");
            let serves = match binary {
                "clearance-read" => clearance_http::serves_read(&concrete),
                "clearance-write" => clearance_http::serves_write(&concrete),
                "clearance-jobs" => clearance_http::serves_jobs(&concrete),
                other => return Err(format!("{name:?}: {other} takes HTTP events").into()),
            };
            assert!(serves, "{method} {path} goes to {binary}, whose API does not serve it");
            routed.insert((method, path));
        }
    }
    let served: BTreeSet<(String, String)> =
        clearance_http::ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(routed, served, "the HTTP API routes exactly the served routes");
    Ok(())
}
