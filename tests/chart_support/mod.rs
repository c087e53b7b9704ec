//! Shared set-up for the chart and deploy tests: a Helm binary (from PATH, or installed once by
//! `.ci/install-helm`), rendering the chart, and reading multi-document YAML.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    repo().join("charts/ecs-image-operator")
}

fn helm_version(helm: &Path) -> Option<String> {
    let output = Command::new(helm)
        .args(["version", "--template", "{{.Version}}"])
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && (version.starts_with("v3.") || version.starts_with("v4.")))
        .then_some(version)
}

/// A working Helm 3 or 4: `$HELM`, else `helm` on PATH, else the one `.ci/install-helm` installs.
/// Panics (the test fails, it does not skip) when none can be had.
pub fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let explicit = std::env::var_os("HELM").map(PathBuf::from);
        let on_path = std::env::var_os("PATH")
            .map(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("helm"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for candidate in explicit.into_iter().chain(on_path) {
            if candidate.is_file() && helm_version(&candidate).is_some() {
                return candidate;
            }
        }
        let script = repo().join(".ci/install-helm");
        let output = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", script.display()));
        assert!(
            output.status.success(),
            "no helm on PATH and {} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        assert!(
            helm_version(&path).is_some(),
            "{} printed {}, which is not a working helm",
            script.display(),
            path.display()
        );
        path
    })
}

/// Runs helm with these arguments; Ok(stdout) or Err(stderr).
pub fn run_helm(args: &[&str]) -> Result<String, String> {
    let output = Command::new(helm())
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|error| panic!("cannot run helm: {error}"));
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The release name and namespace every rendering uses.
pub const RELEASE: &str = "ecs-image-operator";
/// The namespace every rendering uses.
pub const NAMESPACE: &str = "ecs-image-operator";

/// `helm template` of the chart with these values files (paths relative to the repository) and
/// extra arguments; Ok(YAML) or Err(helm's error).
pub fn template(values_files: &[&str], extra: &[&str]) -> Result<String, String> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().unwrap_or_default(),
        "--namespace",
        NAMESPACE,
    ];
    for file in values_files {
        args.extend(["--values", file]);
    }
    args.extend(extra);
    run_helm(&args)
}

/// The objects of a multi-document YAML stream (empty documents dropped).
pub fn parse_documents(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)
        .unwrap_or_else(|error| panic!("rendered YAML does not parse: {error}\n{yaml}"));
    docs.into_iter().filter(Value::is_object).collect()
}

/// The chart's CI values files (`charts/ecs-image-operator/ci/*.yaml`), relative to the repository.
pub fn ci_values_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(chart_dir().join("ci"))
        .unwrap_or_else(|error| panic!("cannot list the chart's ci/: {error}"))
        .map(|entry| entry.unwrap_or_else(|error| panic!("{error}")).path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            path.strip_prefix(repo())
                .unwrap_or(&path)
                .display()
                .to_string()
        })
        .collect();
    files.sort();
    files
}

/// `kind` of an object.
pub fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

/// `metadata.name` of an object.
pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// The objects of a kind.
pub fn of_kind<'a>(objects: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| kind(o) == wanted).collect()
}

/// The one object of a kind; panics unless there is exactly one.
pub fn one<'a>(objects: &'a [Value], wanted: &str) -> &'a Value {
    let found = of_kind(objects, wanted);
    assert_eq!(
        found.len(),
        1,
        "expected one {wanted}, found {}",
        found.len()
    );
    found[0]
}
