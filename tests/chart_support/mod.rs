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
    let mut args = Vec::new();
    for file in values_files {
        args.extend(["--values", file]);
    }
    args.extend(extra);
    template_chart(&chart_dir(), &args)
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

/// The generated CRD, relative to the repository (`cargo run -q -- crd` writes it).
pub const GENERATED_CRD: &str = "crds/imageimports.ecs.image-import.dev.yaml";
/// The chart's verbatim copy of it, relative to the chart: `templates/crd.yaml` renders it.
pub const CHART_CRD: &str = "files/crds/imageimports.ecs.image-import.dev.yaml";

/// Copies the chart's folder to `dest` (created), file by file.
pub fn copy_chart(dest: &Path) {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
        let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let target = to.join(path.file_name().unwrap_or_default());
            if path.is_dir() {
                copy_dir(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
    }
    copy_dir(&chart_dir(), dest);
}

/// The ImageImport spec field the "previous" chart's CRD lacks.
pub const FIELD_ADDED_SINCE: &str = "description";

/// A "previous release" of the chart in `dest`: this chart with version 0.0.1 and a CRD whose
/// ImageImport spec lacks [`FIELD_ADDED_SINCE`], as if a release had added that field since.
pub fn previous_chart(dest: &Path) {
    copy_chart(dest);
    let chart_yaml = dest.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).unwrap_or_else(|e| panic!("{e}"));
    let version_line = text
        .lines()
        .find(|l| l.starts_with("version:"))
        .unwrap_or_else(|| panic!("Chart.yaml has no version line"))
        .to_string();
    std::fs::write(&chart_yaml, text.replace(&version_line, "version: 0.0.1"))
        .unwrap_or_else(|e| panic!("{e}"));
    let crd_path = dest.join(CHART_CRD);
    let text = std::fs::read_to_string(&crd_path).unwrap_or_else(|e| panic!("{e}"));
    let mut crd: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let removed = spec_properties_mut(&mut crd).remove(FIELD_ADDED_SINCE);
    assert!(
        removed.is_some(),
        "the CRD has no spec.{FIELD_ADDED_SINCE} to remove"
    );
    // JSON is YAML: the template's fromYaml reads it alike.
    std::fs::write(&crd_path, crd.to_string()).unwrap_or_else(|e| panic!("{e}"));
}

/// The properties of the ImageImport spec in a CRD object (its first version).
pub fn spec_properties(crd: &Value) -> &serde_json::Map<String, Value> {
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no spec properties in the CRD"))
}

fn spec_properties_mut(crd: &mut Value) -> &mut serde_json::Map<String, Value> {
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        .as_object_mut()
        .unwrap_or_else(|| panic!("no spec properties in the CRD"))
}

/// `helm template` of the chart in `chart` (any folder) for the usual release; Ok(YAML) or Err.
pub fn template_chart(chart: &Path, extra: &[&str]) -> Result<String, String> {
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().unwrap_or_default(),
        "--namespace",
        NAMESPACE,
    ];
    args.extend(extra);
    run_helm(&args)
}

/// The Argo CD sync options an object's annotation names (`argocd.argoproj.io/sync-options`).
pub fn sync_options(object: &Value) -> Vec<&str> {
    object["metadata"]["annotations"]["argocd.argoproj.io/sync-options"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .collect()
}

/// The Argo CD sync wave of an object (0 without the annotation).
pub fn sync_wave(object: &Value) -> i64 {
    object["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        .as_str()
        .map_or(0, |w| {
            w.parse().unwrap_or_else(|e| panic!("sync-wave {w:?}: {e}"))
        })
}
