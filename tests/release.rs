//! The release: `.github/workflows/release.yml` publishes exactly what the chart installs (image
//! name, tag = appVersion = chart version = crate version, chart OCI name as the README shows
//! it) with the steps a release needs (buildx for amd64 and arm64, SBOM, provenance, cosign,
//! helm push); `.ci/release-check` refuses disagreeing versions; the Dockerfile passes hadolint;
//! the chart's securityContext is what the Dockerfile sets; and the binary runs as the chart
//! runs it: uid 65532, every mount read-only, no capabilities, no new privileges.
//!
//! What needs a Docker engine or a registry (building the image, its two platforms, pushing,
//! signing, running the real image) only the workflow does; see the README.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod chart_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use chart_support::{ci_values_files, kind, parse_documents, repo, template};
use serde_json::Value;

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

fn yaml(relative: &str) -> Value {
    serde_saphyr::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn crate_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

fn workflow() -> Value {
    yaml(".github/workflows/release.yml")
}

/// The steps of a job.
fn steps<'a>(workflow: &'a Value, job: &str) -> &'a Vec<Value> {
    workflow["jobs"][job]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("release.yml has no job {job} with steps"))
}

/// The one step of a job that uses an action (`owner/name@…`).
fn uses<'a>(workflow: &'a Value, job: &str, action: &str) -> &'a Value {
    let found: Vec<&Value> = steps(workflow, job)
        .iter()
        .filter(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.split('@').next() == Some(action))
        })
        .collect();
    assert_eq!(found.len(), 1, "job {job}: one step uses {action}");
    found[0]
}

/// Every `run:` script of a job, joined.
fn scripts(workflow: &Value, job: &str) -> String {
    steps(workflow, job)
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `*` matches any run of characters; nothing else is special (GitHub's tag filters as used here).
fn glob_matches(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len())
                    .any(|skip| glob_matches(rest, &text[head.len() + skip..]))
        }
    }
}

#[test]
fn the_crate_the_chart_and_the_workflow_agree_on_what_is_published() {
    let version = crate_version();
    let chart = yaml("charts/ecs-image-operator/Chart.yaml");
    assert_eq!(chart["version"], version.as_str(), "Chart.yaml version");
    assert_eq!(
        chart["appVersion"],
        version.as_str(),
        "Chart.yaml appVersion"
    );
    let values = yaml("charts/ecs-image-operator/values.yaml");

    let workflow = workflow();
    let tags: Vec<&str> = workflow["on"]["push"]["tags"]
        .as_array()
        .expect("release.yml runs on pushed tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let tag = format!("v{version}");
    assert!(
        tags.iter().any(|p| glob_matches(p, &tag)),
        "{tag} does not start the release ({tags:?})"
    );
    assert!(
        !tags.iter().any(|p| glob_matches(p, "main")),
        "{tags:?} is too wide"
    );

    // The image: the chart's default repository, tagged with the version the check job prints.
    let image = workflow["env"]["IMAGE"].as_str().unwrap();
    assert_eq!(values["image"]["repository"], image);
    assert_eq!(
        values["image"]["tag"], "",
        "the chart's default tag is its appVersion"
    );
    let build = uses(&workflow, "image", "docker/build-push-action");
    assert_eq!(
        build["with"]["tags"], "${{ env.IMAGE }}:${{ env.VERSION }}",
        "the pushed tag"
    );
    assert_eq!(
        workflow["jobs"]["image"]["env"]["VERSION"],
        "${{ needs.check.outputs.version }}"
    );
    assert!(
        workflow["jobs"]["check"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "versions"
                && s["run"].as_str().is_some_and(
                    |r| r.contains(".ci/release-check \"$GITHUB_REF_NAME\" \"$IMAGE\"")
                )),
        "the check job runs .ci/release-check on the tag and the image"
    );
    assert_eq!(
        workflow["jobs"]["check"]["outputs"]["version"],
        "${{ steps.versions.outputs.version }}"
    );

    // What `helm template` installs by default is exactly that image.
    let objects = parse_documents(&template(&[], &[]).unwrap());
    let deployment = objects.iter().find(|o| kind(o) == "Deployment").unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("{image}:{version}")
    );

    // The chart: pushed to CHART_REPOSITORY, installed from there as the README shows.
    let chart_repository = workflow["env"]["CHART_REPOSITORY"].as_str().unwrap();
    assert!(
        chart_repository.starts_with("oci://ghcr.io/"),
        "{chart_repository}"
    );
    assert_eq!(workflow["env"]["CHART_NAME"], chart["name"]);
    let chart_ref = format!("{chart_repository}/{}", chart["name"].as_str().unwrap());
    let readme = read("README.md");
    let install = format!("helm install ecs-image-operator {chart_ref} --version {version}");
    assert!(readme.contains(&install), "README.md lacks `{install}`");
    let chart_readme = read("charts/ecs-image-operator/README.md");
    assert!(
        chart_readme.contains(&install),
        "the chart README lacks `{install}`"
    );
}

#[test]
fn the_workflow_builds_signs_and_publishes_both_artifacts() {
    let workflow = workflow();
    assert_eq!(workflow["permissions"]["contents"], "read");
    for job in ["image", "chart"] {
        let permissions = &workflow["jobs"][job]["permissions"];
        assert_eq!(permissions["packages"], "write", "{job}: push to GHCR");
        assert_eq!(permissions["id-token"], "write", "{job}: cosign keyless");
    }
    assert!(
        needed_by(&workflow, "image").iter().any(|n| n == "check"),
        "the image waits for the version check"
    );
    let needs: Vec<&str> = workflow["jobs"]["chart"]["needs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(needs.contains(&"image"), "the chart waits for its image");

    // The image: QEMU and buildx, both platforms, pushed with SBOM and provenance, signed.
    uses(&workflow, "image", "docker/setup-qemu-action");
    uses(&workflow, "image", "docker/setup-buildx-action");
    let login = uses(&workflow, "image", "docker/login-action");
    assert_eq!(login["with"]["registry"], "ghcr.io");
    let build = &uses(&workflow, "image", "docker/build-push-action")["with"];
    assert_eq!(build["file"], "deploy/Dockerfile");
    assert_eq!(build["context"], ".");
    let platforms: Vec<&str> = build["platforms"].as_str().unwrap().split(',').collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(build["push"], true);
    assert_eq!(build["sbom"], true);
    assert_eq!(build["provenance"], "mode=max");
    uses(&workflow, "image", "sigstore/cosign-installer");
    let image_scripts = scripts(&workflow, "image");
    for needle in [
        "cosign sign --yes \"$IMAGE@$DIGEST\"",
        "cosign verify \"$IMAGE@$DIGEST\"",
        "--certificate-oidc-issuer https://token.actions.githubusercontent.com",
        "--read-only --user 65532:65532 --cap-drop ALL",
        "import -f /examples/minimal.yaml --emulator",
        "\"arm64\"",
    ] {
        assert!(image_scripts.contains(needle), "image job lacks `{needle}`");
    }
    let sign = steps(&workflow, "image")
        .iter()
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains("cosign sign")))
        .unwrap();
    assert_eq!(sign["env"]["DIGEST"], "${{ steps.build.outputs.digest }}");
    assert_eq!(
        uses(&workflow, "image", "docker/build-push-action")["id"],
        "build"
    );

    // The chart: packaged, pushed to the OCI repository, signed, rendered back from it.
    let chart_scripts = scripts(&workflow, "chart");
    for needle in [
        "bash .ci/install-helm",
        "helm package charts/ecs-image-operator --destination dist",
        "helm registry login ghcr.io",
        "helm push \"dist/$CHART_NAME-$VERSION.tgz\" \"$CHART_REPOSITORY\"",
        "cosign sign --yes \"${CHART_REPOSITORY#oci://}/$CHART_NAME@$DIGEST\"",
        "helm template ecs-image-operator \"$CHART_REPOSITORY/$CHART_NAME\" --version \"$VERSION\"",
        "image: \\\"$IMAGE:$VERSION\\\"",
    ] {
        assert!(chart_scripts.contains(needle), "chart job lacks `{needle}`");
    }
    uses(&workflow, "chart", "sigstore/cosign-installer");
}

fn release_check(tag: &str, image: &str, root: &Path) -> Result<String, String> {
    let output = Command::new("bash")
        .arg(repo().join(".ci/release-check"))
        .args([tag, image])
        .arg(root)
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn release_check_refuses_a_tag_or_a_file_that_disagrees() {
    let version = crate_version();
    let image = workflow()["env"]["IMAGE"].as_str().unwrap().to_string();
    let tag = format!("v{version}");
    assert_eq!(
        release_check(&tag, &image, repo()).unwrap(),
        format!("version={version}\n")
    );
    let error = release_check("v99.0.0", &image, repo()).unwrap_err();
    for what in [
        "Cargo.toml",
        "Cargo.lock",
        "Chart.yaml version",
        "appVersion",
    ] {
        assert!(error.contains(what), "{what}: {error}");
    }
    let error = release_check(&tag, "ghcr.io/someone/else", repo()).unwrap_err();
    assert!(error.contains("image.repository"), "{error}");
    let error = release_check("0.1", &image, repo()).unwrap_err();
    assert!(error.contains("not v<semver>"), "{error}");

    // A copy where only appVersion disagrees.
    let dir = tempfile::tempdir().unwrap();
    for file in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(repo().join(file), dir.path().join(file)).unwrap();
    }
    let chart = dir.path().join("charts/ecs-image-operator");
    chart_support::copy_chart(&chart);
    let chart_yaml = std::fs::read_to_string(chart.join("Chart.yaml")).unwrap();
    let changed = chart_yaml.replace(
        &format!("appVersion: \"{version}\""),
        "appVersion: \"0.0.9\"",
    );
    assert_ne!(changed, chart_yaml);
    std::fs::write(chart.join("Chart.yaml"), changed).unwrap();
    let error = release_check(&tag, &image, dir.path()).unwrap_err();
    assert!(
        error.contains("appVersion is '0.0.9'") && !error.contains("Chart.yaml version"),
        "{error}"
    );
}

/// hadolint: `$HADOLINT`, else on PATH, else the one `.ci/install-hadolint` installs.
fn hadolint() -> PathBuf {
    if let Some(path) = std::env::var_os("HADOLINT") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("hadolint"))
            .find(|p| p.is_file())
    });
    if let Some(path) = on_path {
        return path;
    }
    let output = Command::new("bash")
        .arg(repo().join(".ci/install-hadolint"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        ".ci/install-hadolint failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn lint(dockerfile: &Path) -> Result<(), String> {
    let output = Command::new(hadolint())
        .args(["--no-color", "--failure-threshold", "info"])
        .arg(dockerfile)
        .output()
        .unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

#[test]
fn the_dockerfile_passes_hadolint() {
    if let Err(findings) = lint(&repo().join("deploy/Dockerfile")) {
        panic!("hadolint finds problems in deploy/Dockerfile:\n{findings}");
    }
    // The linter really looks: an unpinned base image is reported.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian:latest\nRUN apt-get install -y curl\n").unwrap();
    let findings = lint(&bad).unwrap_err();
    assert!(findings.contains("DL3007"), "{findings}");
}

/// The final stage's `USER` of deploy/Dockerfile, as (uid, gid).
fn dockerfile_user() -> (u32, u32) {
    let text = read("deploy/Dockerfile");
    let final_stage = text
        .rsplit_once("\nFROM ")
        .map(|(_, stage)| stage)
        .expect("deploy/Dockerfile has stages");
    assert!(
        final_stage.starts_with("gcr.io/distroless/cc-debian12:nonroot"),
        "the runtime base changed: {}",
        final_stage.lines().next().unwrap_or_default()
    );
    let user = final_stage
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("the final stage sets USER");
    let (uid, gid) = user.trim().split_once(':').expect("USER uid:gid");
    (uid.parse().unwrap(), gid.parse().unwrap())
}

#[test]
fn the_charts_security_context_is_what_the_dockerfile_sets() {
    let (uid, gid) = dockerfile_user();
    assert_ne!(uid, 0);
    let text = read("deploy/Dockerfile");
    assert!(text.contains("\nEXPOSE 8080\n"), "the probe port");
    for file in ci_values_files() {
        let objects = parse_documents(&template(&[&file], &[]).unwrap());
        let deployment = objects.iter().find(|o| kind(o) == "Deployment").unwrap();
        let pod = &deployment["spec"]["template"]["spec"];
        let context = &pod["securityContext"];
        assert_eq!(context["runAsUser"], uid, "{file}: pod runAsUser");
        assert_eq!(context["runAsGroup"], gid, "{file}: pod runAsGroup");
        assert_eq!(context["fsGroup"], gid, "{file}: pod fsGroup");
        assert_eq!(context["runAsNonRoot"], true, "{file}");
        assert_eq!(
            context["seccompProfile"]["type"], "RuntimeDefault",
            "{file}"
        );
        // Every container runs this image (the emulator sidecar too).
        for container in pod["containers"].as_array().unwrap() {
            let which = format!("{file}/{}", container["name"]);
            let context = &container["securityContext"];
            assert_eq!(context["runAsUser"], uid, "{which}");
            assert_eq!(context["runAsGroup"], gid, "{which}");
            assert_eq!(context["runAsNonRoot"], true, "{which}");
            assert_eq!(context["readOnlyRootFilesystem"], true, "{which}");
            assert_eq!(context["allowPrivilegeEscalation"], false, "{which}");
            assert_eq!(
                context["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{which}"
            );
            assert_eq!(
                context["seccompProfile"]["type"], "RuntimeDefault",
                "{which}"
            );
            if container["name"] == "operator" {
                assert_eq!(container["ports"][0]["containerPort"], 8080, "{which}");
            }
            // The sandbox below offers no writable path: the chart must mount none either.
            for mount in container["volumeMounts"].as_array().into_iter().flatten() {
                assert_eq!(
                    mount["readOnly"], true,
                    "{which}: {} is writable; give the sandbox in tests/release.rs a tmpfs there",
                    mount["mountPath"]
                );
            }
        }
    }
}

/// Runs `program args` as `uid:gid` with every mount read-only (a private mount namespace whose
/// mounts are all remounted `ro`, or detached where a pseudo file system refuses that), no capabilities (bounding set and inheritable emptied), no new
/// privileges, an empty environment but HOME and PATH, in `/`. Needs root (or passwordless sudo).
fn sandboxed(uid: u32, gid: u32, program: &Path, args: &[&str]) -> std::process::Output {
    const SANDBOX: &str = r#"
set -eu
mount --make-rprivate /
for mp in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
  # Gone already: detached with a parent below.
  awk -v m="$mp" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo || continue
  # Read-only, or, where the kernel refuses that (some pseudo file systems), not there at all.
  mount -o remount,bind,ro "$mp" 2>/dev/null || umount -l "$mp" ||
    { echo "sandbox: cannot make $mp read-only or detach it" >&2; exit 97; }
done
uid="$1"; gid="$2"; shift 2
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all --bounding-set=-all \
  --no-new-privs -- env -i HOME=/home/nonroot PATH=/usr/local/bin:/usr/bin:/bin "$@"
"#;
    let mut command = match sudo().unwrap_or_else(|why| panic!("{why}")) {
        Some(prefix) => {
            let mut c = Command::new(prefix[0]);
            c.args(&prefix[1..]).arg("unshare");
            c
        }
        None => Command::new("unshare"),
    };
    command
        .args(["--mount", "--", "sh", "-c", SANDBOX, "sandbox"])
        .arg(uid.to_string())
        .arg(gid.to_string())
        .arg(program)
        .args(args)
        .current_dir("/");
    command.output().unwrap()
}

/// How to become root for the sandbox: `Ok(None)` as root, `Ok(Some(["sudo", "-n"]))` with
/// passwordless sudo (GitHub's runners), `Err(why)` otherwise.
fn sudo() -> Result<Option<Vec<&'static str>>, String> {
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        return Ok(None);
    }
    let works = Command::new("sudo")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if works {
        Ok(Some(vec!["sudo", "-n"]))
    } else {
        Err("the sandbox needs root or passwordless sudo (unshare --mount, setpriv)".into())
    }
}

#[test]
fn the_binary_runs_as_65532_with_nothing_writable() {
    // Where `CI` is set (GitHub Actions sets it) the sandbox must run; elsewhere a machine without
    // root or passwordless sudo says so and skips.
    if let Err(why) = sudo() {
        assert!(std::env::var_os("CI").is_none(), "{why}");
        println!("skipped: {why}");
        return;
    }
    let (uid, gid) = dockerfile_user();
    // The debug binary the suite builds anyway (a release build costs CI minutes), copied with
    // the example into a folder anyone may read, like /usr/local/bin in the image.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("ecs-image-operator");
    std::fs::copy(env!("CARGO_BIN_EXE_ecs-image-operator"), &bin).unwrap();
    let example = dir.path().join("minimal.yaml");
    std::fs::copy(repo().join("deploy/examples/minimal.yaml"), &example).unwrap();
    let status = Command::new("chmod")
        .args(["-R", "a+rX", "--"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();

    // The sandbox is what it claims: that uid, and no probe path writable.
    let sh = Path::new("/bin/sh");
    let probe = sandboxed(
        uid,
        gid,
        sh,
        &[
            "-c",
            "id -u; id -g; for d in / /tmp /var/tmp /dev/shm /run /home \"$HOME\" \"$0\"; do \
             if touch \"$d/.sandbox-probe\" 2>/dev/null; then echo \"writable $d\"; fi; done; \
             grep CapEff /proc/self/status",
            dir.path().to_str().unwrap(),
        ],
    );
    let said = text(&probe.stdout);
    assert!(probe.status.success(), "{said}{}", text(&probe.stderr));
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines[..2], [uid.to_string(), gid.to_string()], "{said}");
    assert!(!said.contains("writable"), "{said}");
    assert!(said.contains("CapEff:\t0000000000000000"), "{said}");

    let version = sandboxed(uid, gid, &bin, &["--version"]);
    assert!(version.status.success(), "{}", text(&version.stderr));
    assert_eq!(
        text(&version.stdout).trim(),
        format!("ecs-image-operator {}", crate_version())
    );
    let help = sandboxed(uid, gid, &bin, &["--help"]);
    assert!(help.status.success(), "{}", text(&help.stderr));
    assert!(text(&help.stdout).contains("run"));

    // A whole import against the in-process emulator: runtime, loopback HTTP, TLS set-up, output.
    let import = sandboxed(
        uid,
        gid,
        &bin,
        &["import", "-f", example.to_str().unwrap(), "--emulator"],
    );
    let (out, err) = (text(&import.stdout), text(&import.stderr));
    assert!(
        import.status.success(),
        "import failed in the sandbox:\n{out}\n{err}"
    );
    assert!(out.contains("phase: Available"), "{out}\n{err}");
}

/// The jobs `job` waits for, directly or through the jobs it needs.
fn needed_by(workflow: &Value, job: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut next = vec![job.to_string()];
    while let Some(job) = next.pop() {
        let needs = &workflow["jobs"][job.as_str()]["needs"];
        let names: Vec<String> = match needs {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        for name in names {
            if !seen.contains(&name) {
                seen.push(name.clone());
                next.push(name);
            }
        }
    }
    seen
}

/// Nothing is published from a tag whose commit fails CI: the release runs the CI workflow
/// itself (`.ci/run`, the envtest tier, the kind suite) and every publishing job waits for it.
#[test]
fn nothing_is_published_before_the_ci_workflow_passes_on_the_tagged_commit() {
    let release = workflow();
    let ci_jobs: Vec<&str> = release["jobs"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, job)| job["uses"] == "./.github/workflows/ci.yml")
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        ci_jobs.len(),
        1,
        "one job of release.yml calls ci.yml: {ci_jobs:?}"
    );
    for publishing in ["image", "chart"] {
        assert!(
            needed_by(&release, publishing)
                .iter()
                .any(|n| n == ci_jobs[0]),
            "{publishing} does not wait for {}",
            ci_jobs[0]
        );
    }
    let ci = yaml(".github/workflows/ci.yml");
    assert!(
        ci["on"].get("workflow_call").is_some(),
        "ci.yml can be called by the release: {}",
        ci["on"]
    );
    assert!(
        ci["jobs"]["ci"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|step| step["run"] == "bash .ci/run")
    );
}
