//! The Argo CD health checks for `ConnectInstance` and `ConnectAccount`
//! (`argocd/resource_customizations/connect.operators.dev/<Kind>/`), run the way Argo CD
//! runs argocd-cm health scripts: Lua 5.1 without the `string` library, `obj` bound to the
//! live object, the returned table read as `status` and `message`.
//!
//! Every case of `health_test.yaml` (Argo CD's own test layout) is checked here with an
//! embedded Lua 5.1 (mlua), and the Go checks in `gitops-tests/` (gopher-lua, the
//! interpreter Argo CD itself embeds, plus kstatus and Flux CEL) run from `cargo test`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use mlua::serde::SerializeOptions;
use mlua::{Lua, LuaOptions, LuaSerdeExt, StdLib, Table, Value as LuaValue};
use serde::Deserialize;
use serde_json::Value;

/// The kinds with a health check, each in Argo CD's `resource_customizations` layout.
const KINDS: &[&str] = &["ConnectInstance", "ConnectAccount"];

fn check_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("argocd/resource_customizations/connect.operators.dev")
        .join(kind)
}

/// `health_test.yaml`, in Argo CD's format.
#[derive(Debug, Deserialize)]
struct HealthTests {
    tests: Vec<HealthCase>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthCase {
    health_status: ExpectedHealth,
    input_path: String,
}

#[derive(Debug, Deserialize, PartialEq)]
struct ExpectedHealth {
    status: String,
    message: Option<String>,
}

/// A Lua 5.1 state with only what Argo CD opens for argocd-cm health scripts that do not
/// set `useOpenLibs`: base (always loaded), table and package. No `string`, `io`, `os`.
fn argocd_lua() -> Lua {
    let lua = Lua::new_with(StdLib::TABLE | StdLib::PACKAGE, LuaOptions::new())
        .expect("creating a Lua 5.1 state");
    let string: LuaValue = lua
        .globals()
        .get("string")
        .expect("reading global `string`");
    assert!(
        string.is_nil(),
        "the `string` library must not be loaded, found {string:?}"
    );
    lua
}

/// Runs `script` with `obj` bound as a global; returns `(status, message)` of its result.
fn run_health(script: &str, obj: &Value) -> mlua::Result<(Option<String>, Option<String>)> {
    let lua = argocd_lua();
    // Argo CD converts the object from JSON: nulls and absent fields are both nil.
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let obj = lua.to_value_with(obj, options)?;
    lua.globals().set("obj", obj)?;
    let health: Table = lua.load(script).set_name("health.lua").eval()?;
    Ok((health.get("status")?, health.get("message")?))
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_yaml::from_str(&text)
        .unwrap_or_else(|error| panic!("parsing {}: {error}", path.display()))
}

#[test]
fn argocd_health_lua_matches_every_health_test_case_without_string_library() {
    check_every_case("ConnectInstance");
}

#[test]
fn argocd_connect_account_health_lua_matches_every_health_test_case_without_string_library() {
    check_every_case("ConnectAccount");
}

/// Both layouts exist and are the only ones (a new kind needs a test above).
#[test]
fn argocd_health_checks_exist_for_exactly_the_known_kinds() {
    let group = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("argocd/resource_customizations/connect.operators.dev");
    let mut found: Vec<String> = std::fs::read_dir(&group)
        .expect("reading resource_customizations/connect.operators.dev")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    found.sort();
    let mut known: Vec<String> = KINDS.iter().map(|kind| (*kind).to_owned()).collect();
    known.sort();
    assert_eq!(found, known);
}

/// Every case of the kind's `health_test.yaml` agrees, and every fixture is a case.
fn check_every_case(kind: &str) {
    let dir = check_dir(kind);
    let script = std::fs::read_to_string(dir.join("health.lua")).expect("reading health.lua");
    let tests: HealthTests = serde_yaml::from_str(
        &std::fs::read_to_string(dir.join("health_test.yaml")).expect("reading health_test.yaml"),
    )
    .expect("parsing health_test.yaml");
    assert!(!tests.tests.is_empty(), "health_test.yaml has no cases");

    let mut failures = vec![];
    let mut covered = BTreeSet::new();
    for case in &tests.tests {
        covered.insert(case.input_path.clone());
        let obj = read_yaml(&dir.join(&case.input_path));
        assert_eq!(
            obj["kind"], kind,
            "{}: a {kind} fixture must be a {kind}",
            case.input_path
        );
        match run_health(&script, &obj) {
            Ok((status, message)) => {
                let got = ExpectedHealth {
                    status: status.unwrap_or_default(),
                    message,
                };
                if got != case.health_status {
                    failures.push(format!(
                        "{}: expected {:?}, got {got:?}",
                        case.input_path, case.health_status
                    ));
                }
            }
            Err(error) => failures.push(format!("{}: the script failed: {error}", case.input_path)),
        }
    }
    assert!(
        failures.is_empty(),
        "{kind}: {} of {} health_test.yaml cases disagree:\n{}",
        failures.len(),
        tests.tests.len(),
        failures.join("\n")
    );

    // Every fixture is a case (none silently left out).
    let fixtures: BTreeSet<String> = std::fs::read_dir(dir.join("testdata"))
        .expect("reading testdata/")
        .map(|entry| {
            format!(
                "testdata/{}",
                entry.expect("entry").file_name().to_string_lossy()
            )
        })
        .collect();
    let uncovered: Vec<&String> = fixtures.difference(&covered).collect();
    assert!(
        uncovered.is_empty(),
        "{kind}: fixtures without a case: {uncovered:?}"
    );
    eprintln!(
        "{kind}/health.lua: {} cases agree under Lua 5.1 without `string`",
        tests.tests.len()
    );
}

/// The sandbox is real: a script that calls a string method fails in it, so the check
/// above would catch a health.lua that needs the `string` library.
#[test]
fn argocd_lua_sandbox_rejects_string_methods() {
    let obj = serde_json::json!({ "metadata": { "name": "x" } });
    let result = run_health(
        "return { status = 'Healthy', message = obj.metadata.name:upper() }",
        &obj,
    );
    assert!(
        result.is_err(),
        "a string method worked without the string library: {result:?}"
    );
    let result = run_health("return { status = string.format('%s', 'Healthy') }", &obj);
    assert!(result.is_err(), "string.format worked: {result:?}");
    // And a script without them runs (the harness itself is sound).
    let (status, message) = run_health(
        "return { status = 'Healthy', message = obj.metadata.name .. '!' }",
        &obj,
    )
    .expect("plain script");
    assert_eq!(
        (status.as_deref(), message.as_deref()),
        (Some("Healthy"), Some("x!"))
    );
}

/// `go test ./...` in `gitops-tests/`: health.lua under gopher-lua (Argo CD's interpreter)
/// with Argo CD's libraries, the argocd-cm snippet being health.lua verbatim, kstatus
/// (Flux, `kubectl wait`) and the Flux CEL health expressions over the same fixtures.
#[test]
fn argocd_gitops_go_tests_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("gitops-tests");
    let go = std::env::var_os("GO").unwrap_or_else(|| "go".into());
    let started = Instant::now();
    let output = Command::new(&go)
        .args(["test", "-count=1", "./..."])
        .current_dir(&dir)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "`go` is not installed (or not on PATH; set GO=/path/to/go): the Argo CD \
             gopher-lua, kstatus and Flux CEL checks in gitops-tests/ need Go \
             (see gitops-tests/go.mod for the version)"
        ),
        Err(error) => panic!("running go test in {}: {error}", dir.display()),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "go test ./... in gitops-tests/ failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    eprintln!(
        "go test ./... in gitops-tests/ passed in {:.1?}:\n{}",
        started.elapsed(),
        stdout.trim()
    );
}
