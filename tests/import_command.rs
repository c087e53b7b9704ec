//! `ecs-image-operator import -f FILE --emulator`: the README's first command, as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
#[allow(unused_imports)]
mod source_support;

use std::process::{Command, Output};

fn import(file: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
        .args(["import", "--emulator", "--time-scale", "120", "-f"])
        .arg(file)
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .output()
        .unwrap()
}

/// `import -f manifest` against the emulator at `url` (the test's own, reached with
/// `--ecs-endpoint`, not `--emulator`), with that emulator's key in the environment.
fn import_at(url: &str, manifest: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"));
    command
        .args(["import", "--poll-interval-seconds", "1", "-f"])
        .arg(manifest)
        .args(["--ecs-endpoint", url, "--sts-endpoint", url])
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", emulator_support::AK_ID)
        .env(
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            emulator_support::AK_SECRET,
        );
    command
}

/// An ImageImport `name` of the test emulator's `images-hz/ubuntu-22.04.qcow2`.
fn ubuntu(name: &str) -> String {
    format!(
        "apiVersion: ecs.image-import.dev/v1alpha1\nkind: ImageImport\nmetadata:\n  name: {name}\n\
         spec:\n  regionId: cn-hangzhou\n  diskDeviceMappings:\n    \
         - ossBucket: images-hz\n      ossObject: ubuntu-22.04.qcow2\n"
    )
}

fn status(output: &Output) -> serde_json::Value {
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    let value: serde_json::Value = serde_saphyr::from_str(&text)
        .unwrap_or_else(|error| panic!("stdout is not YAML ({error}): {text}"));
    value["status"].clone()
}

#[test]
fn the_minimal_example_imports_into_the_emulator_with_a_progress_bar() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/minimal.yaml");
    let output = import(&example);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let status = status(&output);
    assert_eq!(status["phase"], "Available", "{status}");
    assert_eq!(status["progress"], 100);
    assert!(status["imageId"].as_str().unwrap().starts_with("m-"));
    assert!(status["importTaskId"].as_str().unwrap().starts_with("t-"));
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    // Issue 17 part 7: the image and its region come first; conditions that only say something is
    // not the case (Stalled, Reconciling False) are left out.
    let printed: serde_json::Value =
        serde_saphyr::from_str(&String::from_utf8(output.stdout.clone()).unwrap()).unwrap();
    assert_eq!(printed["image"]["id"], status["imageId"]);
    assert_eq!(printed["image"]["region"], "cn-hangzhou");
    let conditions = status["conditions"].as_array().unwrap();
    let types: Vec<&str> = conditions
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Ready"], "{conditions:?}");
    // Progress between 0 and 100 was drawn on the way.
    let shown: Vec<u32> = stderr
        .lines()
        .filter_map(|line| {
            line.split(']')
                .nth(1)?
                .trim()
                .split('%')
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    assert!(shown.iter().any(|p| (1..100).contains(p)), "{stderr}");
}

#[test]
fn the_distribution_example_ends_available_with_a_copy_per_region_shared_with_both_accounts() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/distribution.yaml");
    let output = import(&example);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let status = status(&output);
    assert_eq!(status["phase"], "Available", "{status}");
    assert_eq!(status["copiesReady"], "3/3", "{status}");
    let copies = status["copies"].as_array().unwrap();
    let regions: Vec<&str> = copies
        .iter()
        .map(|c| c["regionId"].as_str().unwrap())
        .collect();
    assert_eq!(regions, ["cn-shanghai", "cn-beijing", "ap-southeast-1"]);
    for copy in copies {
        assert!(
            copy["imageId"].as_str().unwrap().starts_with("m-"),
            "{copy}"
        );
        assert_eq!(copy["phase"], "Available", "{copy}");
    }
    assert_eq!(
        status["sharedWith"],
        serde_json::json!(["1234567890123456", "6543210987654321"])
    );
    assert!(
        stderr.lines().any(|line| line.contains("copying to")),
        "the progress line covers the copies: {stderr}"
    );
}

#[test]
fn a_spec_ecs_refuses_ends_stalled_with_the_code_and_a_failing_exit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unsupported.yaml");
    std::fs::write(
        &file,
        "apiVersion: ecs.image-import.dev/v1alpha1\nkind: ImageImport\nmetadata:\n  name: x\nspec:\n  regionId: me-east-1\n  diskDeviceMappings:\n    - ossBucket: images\n      ossObject: o.raw\n",
    )
    .unwrap();
    let output = import(&file);
    assert!(!output.status.success());
    let status = status(&output);
    assert_eq!(status["phase"], "Failed", "{status}");
    assert_eq!(status["lastError"]["code"], "InvalidRegion.NotSupport");
    let stalled = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Stalled")
        .unwrap();
    assert_eq!(stalled["reason"], "InvalidRegionNotSupport");
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .starts_with("InvalidRegion.NotSupport: "),
        "{stalled}"
    );
    // Issue 17 part 4: the command has ended, so nothing promises a retry or names a Secret it
    // never read; the last line says what to do.
    let message = status["message"].as_str().unwrap();
    assert!(!message.contains("retrying"), "{message}");
    assert!(!message.contains("credentials Secret"), "{message}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("retrying") && !stderr.contains("credentials Secret"),
        "the progress lines promise nothing either: {stderr}"
    );
    assert!(
        stderr.contains("refused: InvalidRegion.NotSupport: ")
            && stderr.contains("change the manifest (or the credentials) and run again"),
        "{stderr}"
    );
}

/// Issue 17 part 2: what is not an ImageImport manifest is refused before anything starts, with
/// what it is instead.
#[test]
fn files_that_are_no_image_import_manifest_are_refused_for_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |file: &std::path::Path, words: &str| {
        let output = import(file);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(words), "{words:?} not in: {stderr}");
        assert!(output.stdout.is_empty(), "nothing was imported");
    };
    let deployment = dir.path().join("deployment.yaml");
    std::fs::write(
        &deployment,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n",
    )
    .unwrap();
    refused(
        &deployment,
        "document 1 of DIR/deployment.yaml is a Deployment (apps/v1): import -f takes ImageImports"
            .replace("DIR", &dir.path().display().to_string())
            .as_str(),
    );
    refused(dir.path(), "is a directory: name one manifest file");
    refused(
        std::path::Path::new("/dev/zero"),
        "/dev/zero is larger than 16 MiB (or endless)",
    );
    let disk = dir.path().join("disk.qcow2");
    let mut qcow2 = b"QFI\xfb\0\0\0\x03".to_vec();
    qcow2.resize(64 << 10, 7);
    std::fs::write(&disk, qcow2).unwrap();
    refused(
        &disk,
        "is not a text file: it looks like a QCOW2 disk image",
    );
    refused(
        &dir.path().join("missing.yaml"),
        "failed to read DIR/missing.yaml: No such file or directory"
            .replace("DIR", &dir.path().display().to_string())
            .as_str(),
    );
}

/// The status documents of a run's standard output, one per import.
fn statuses(output: &Output) -> Vec<serde_json::Value> {
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|error| panic!("stdout is not YAML ({error}): {text}"))
}

/// Issue 17 part 2: the shipped example of a Secret beside its ImageImport imports, its
/// AccessKey known to the emulator.
#[test]
fn the_credentials_secret_example_imports_on_the_emulator() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/examples/credentials-secret.yaml");
    let output = import(&example);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(status(&output)["phase"], "Available", "{stderr}");
}

/// Issue 17 part 2: a Secret document named by credentialsSecretRef is that import's AccessKey,
/// really: the environment's key is one ECS does not know, so only the import naming the
/// Secret gets in, and the other is refused with ECS's code.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_document_is_the_access_key_of_the_import_that_names_it() {
    let handle = emulator_support::start_with(ecs_image_operator::emulator::EmulatorConfig {
        keys: vec![ecs_image_operator::emulator::AccessKey::new(
            emulator_support::AK_ID,
            emulator_support::AK_SECRET,
        )],
        ..emulator_support::config()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("two.yaml");
    let import = |name: &str, reference: &str| {
        format!(
            "apiVersion: ecs.image-import.dev/v1alpha1\nkind: ImageImport\nmetadata:\n  name: {name}\n\
             spec:\n  regionId: cn-hangzhou\n{reference}  diskDeviceMappings:\n    \
             - ossBucket: images-hz\n      ossObject: ubuntu-22.04.qcow2\n"
        )
    };
    std::fs::write(
        &manifest,
        [
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: keys\nstringData:\n  \
                 accessKeyId: {}\n  accessKeySecret: {}\n",
                emulator_support::AK_ID,
                emulator_support::AK_SECRET
            ),
            import("with-secret", "  credentialsSecretRef:\n    name: keys\n"),
            import("from-environment", ""),
            import("typo", "  credentialsSecretRef:\n    name: key\n"),
        ]
        .join("---\n"),
    )
    .unwrap();
    let url = handle.url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
            .args(["import", "--poll-interval-seconds", "1", "-f"])
            .arg(&manifest)
            .args(["--ecs-endpoint", &url, "--sts-endpoint", &url])
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI5tNotKnownToThisEcs")
            .env(
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                "NotKnownSecret0123456789abc",
            )
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "one import failed: {stderr}");
    let statuses = statuses(&output);
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert_eq!(statuses[0]["name"], "default/with-secret");
    assert_eq!(statuses[0]["status"]["phase"], "Available", "{stderr}");
    assert_eq!(statuses[1]["name"], "default/from-environment");
    assert_eq!(
        statuses[1]["status"]["lastError"]["code"], "InvalidAccessKeyId.NotFound",
        "{stderr}"
    );
    assert!(
        stderr.contains("default/from-environment: refused: InvalidAccessKeyId.NotFound"),
        "{stderr}"
    );
    // Where each key comes from is said before anything starts; a Secret the file does not
    // hold (a typo) is a warning, and that import uses the environment's key.
    assert!(
        stderr
            .contains("using the AccessKey of Secret keys in the file import=default/with-secret"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "WARN ecs_image_operator::import: credentialsSecretRef names Secret key, which the \
             file does not hold: using the credentials of the environment import=default/typo"
        ),
        "{stderr}"
    );
    assert_eq!(
        statuses[2]["status"]["lastError"]["code"], "InvalidAccessKeyId.NotFound",
        "{stderr}"
    );
    assert!(
        !stderr.contains(emulator_support::AK_SECRET),
        "the Secret's value is never shown"
    );
}

/// Issue 17 part 2: two ImageImports in one file are imported side by side, each on a row of
/// its own, and printed as two YAML documents that name them.
#[test]
fn two_imports_in_one_file_go_side_by_side_with_a_row_each() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("two.yaml");
    let import = |name: &str| {
        format!(
            "apiVersion: ecs.image-import.dev/v1alpha1\nkind: ImageImport\nmetadata:\n  name: {name}\n\
             spec:\n  regionId: cn-hangzhou\n  diskDeviceMappings:\n    \
             - ossBucket: images\n      ossObject: {name}.raw\n"
        )
    };
    std::fs::write(&manifest, [import("first"), import("second")].join("---\n")).unwrap();
    let output = import_slowly(&manifest);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let statuses = statuses(&output);
    let names: Vec<_> = statuses.iter().map(|s| s["name"].clone()).collect();
    assert_eq!(names, ["default/first", "default/second"]);
    for status in &statuses {
        assert_eq!(status["status"]["phase"], "Available", "{stderr}");
        assert_eq!(status["image"]["region"], "cn-hangzhou");
    }
    assert_ne!(statuses[0]["image"]["id"], statuses[1]["image"]["id"]);
    // Side by side: the second was importing before the first was done.
    let at = |words: &str| {
        stderr
            .find(words)
            .unwrap_or_else(|| panic!("{words:?} not in: {stderr}"))
    };
    assert!(
        at("default/second:  [") < at("default/first:   [####################] 100% Available"),
        "{stderr}"
    );
    assert!(at("default/second:  [") > 0);
}

/// `import --emulator` with imports that take about 4 real seconds.
fn import_slowly(file: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
        .args(["import", "--emulator", "--time-scale", "30", "-f"])
        .arg(file)
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .output()
        .unwrap()
}

/// Issue 17 part 2: `-f -` reads the manifest from standard input.
#[test]
fn a_manifest_on_standard_input_is_imported() {
    use std::io::Write as _;
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/minimal.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
        .args(["import", "--emulator", "--time-scale", "120", "-f", "-"])
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&std::fs::read(example).unwrap()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(status(&output)["phase"], "Available");
}

/// Issue 17, part 3: the same manifest imported twice against one ECS (an emulator of the test's
/// own, reached with `--ecs-endpoint`) makes one image: the second run finds it by its UID tag,
/// says so and exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_of_the_same_manifest_finds_the_image_and_imports_nothing() {
    let handle = emulator_support::start_with(ecs_image_operator::emulator::EmulatorConfig {
        time_scale: 600.0,
        ..emulator_support::config()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("twice.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: ecs.image-import.dev/v1alpha1\nkind: ImageImport\nmetadata:\n  name: twice\n\
         spec:\n  regionId: cn-hangzhou\n  imageName: twice\n  diskDeviceMappings:\n    \
         - ossBucket: images-hz\n      ossObject: ubuntu-22.04.qcow2\n",
    )
    .unwrap();
    let run = |manifest: std::path::PathBuf, url: String| {
        tokio::task::spawn_blocking(move || import_at(&url, &manifest).output().unwrap())
    };
    let first = run(manifest.clone(), handle.url()).await.unwrap();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(!stderr.contains("already imported"), "{stderr}");
    let image = status(&first)["imageId"].as_str().unwrap().to_string();
    let second = run(manifest, handle.url()).await.unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("already imported: image {image} in cn-hangzhou")),
        "{stderr}"
    );
    assert_eq!(status(&second)["imageId"], image.as_str());
    assert_eq!(
        handle.stats().calls("ImportImage"),
        1,
        "the second run asked for no import"
    );
}

/// A qcow2 file of `size` bytes for the upload examples: its header, then noise.
fn qcow2_body(seed: u64, size: u64) -> source_support::SourceBody {
    let mut header = b"QFI\xfb\0\0\0\x03".to_vec();
    header.resize(24, 0);
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    source_support::SourceBody::new(seed, size).with_prefix(&header)
}

/// The upload example with its URL (or a local file instead) and digest replaced.
fn upload_example(dir: &std::path::Path, source: &str, sha256: &str) -> std::path::PathBuf {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/upload.yaml");
    let text = std::fs::read_to_string(example).unwrap();
    let text = text
        .replace("url: http://127.0.0.1:8099/images/ubuntu.qcow2", source)
        .replace(
            "\"0000000000000000000000000000000000000000000000000000000000000000\"",
            sha256,
        );
    assert!(
        text.contains(sha256),
        "the example's placeholders moved: {text}"
    );
    let path = dir.join("upload.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `import --emulator` on `manifest` with trace logging asked for.
fn import_traced(manifest: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
        .args(["import", "--emulator", "--time-scale", "120", "-f"])
        .arg(manifest)
        .args(["--upload-part-size-mib", "1"])
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env("RUST_LOG", "trace")
        .output()
        .unwrap()
}

/// Checks the end of an upload example's run: Available, the file uploaded with its digest, the
/// OSS object removed, the upload's progress drawn, and no OSS client log lines (they would
/// carry request headers).
fn assert_uploaded(output: &Output, sha256: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let status = status(output);
    assert_eq!(status["phase"], "Available", "{status}");
    let disk = &status["upload"]["disks"][0];
    assert_eq!(disk["uploaded"], true, "{status}");
    assert_eq!(disk["sha256"], sha256, "{status}");
    assert_eq!(
        disk["removed"], true,
        "cleanup Delete removed the object: {status}"
    );
    assert!(
        stderr.lines().any(|line| line.contains("Uploading")),
        "the progress line covers the upload: {stderr}"
    );
    assert!(
        !stderr.contains("ossify"),
        "the OSS client's own logs are off: {stderr}"
    );
}

/// Issue 19's "done when": the upload example, its source a local HTTP URL, ends Available on the
/// emulator with the OSS object removed.
#[tokio::test(flavor = "multi_thread")]
async fn the_upload_example_streams_a_local_url_into_oss_imports_it_and_removes_the_object() {
    let body = qcow2_body(7, 3 * (1 << 20) + 4321);
    let server = source_support::SourceServer::new()
        .route(
            "/images/ubuntu.qcow2",
            source_support::Serve::range(body.clone()),
        )
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("url: {}", server.url_of("/images/ubuntu.qcow2"));
    let manifest = upload_example(dir.path(), &url, &body.sha256());
    let output = tokio::task::spawn_blocking(move || import_traced(&manifest))
        .await
        .unwrap();
    assert_uploaded(&output, &body.sha256());
    assert_eq!(server.bytes_served_to("/images/ubuntu.qcow2"), body.size());
}

/// `source.file`: the Packer-like one-shot run of a file on this machine.
#[test]
fn a_local_file_source_is_uploaded_and_imported() {
    let body = qcow2_body(8, 2 * (1 << 20) + 99);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("disk.qcow2");
    std::fs::write(&file, body.to_vec()).unwrap();
    let source = format!("file: {}", file.display());
    let manifest = upload_example(dir.path(), &source, &body.sha256());
    assert_uploaded(&import_traced(&manifest), &body.sha256());
}

/// Runs `import` against `handle` (an emulator whose imports take minutes) with `extra` flags,
/// sending SIGINT once ECS has accepted the import when `interrupt` is set.
async fn run_slow_import(
    handle: &ecs_image_operator::emulator::EmulatorHandle,
    name: &str,
    extra: &[&str],
    interrupt: bool,
) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("slow.yaml");
    std::fs::write(&manifest, ubuntu(name)).unwrap();
    let url = handle.url();
    let child = import_at(&url, &manifest)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if interrupt {
        interrupt_once_imported(handle, &child, 1).await;
    }
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

/// Sends SIGINT to `child` once ECS has accepted `imports` imports (and a poll has followed).
async fn interrupt_once_imported(
    handle: &ecs_image_operator::emulator::EmulatorHandle,
    child: &std::process::Child,
    imports: u64,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while handle.stats().calls("ImportImage") < imports {
        assert!(
            std::time::Instant::now() < deadline,
            "ECS never saw {imports} imports"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// An emulator whose imports take about two real minutes.
async fn slow_emulator() -> ecs_image_operator::emulator::EmulatorHandle {
    emulator_support::start_with(ecs_image_operator::emulator::EmulatorConfig {
        time_scale: 1.0,
        ..emulator_support::config()
    })
    .await
}

/// Issue 17 part 4: `--timeout-seconds` says it stopped waiting, which task still runs and the
/// command that cancels it.
#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_names_the_running_task_and_how_to_cancel_it() {
    let handle = slow_emulator().await;
    let output = run_slow_import(&handle, "waited", &["--timeout-seconds", "2"], false).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let task = status(&output)["importTaskId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        stderr.contains(&format!(
            "stopped waiting after 2s; import task {task} is still running in ECS (cn-hangzhou)"
        )) && stderr.contains(&format!(
            "ecs-image-operator ecs cancel-task {task} --region cn-hangzhou"
        )),
        "{stderr}"
    );
    assert_eq!(handle.stats().calls("CancelTask"), 0);
}

/// Issue 17 part 4: Ctrl-C cancels the running task and says so (exit 130); with
/// `--keep-on-interrupt` the task keeps running and the message says how to follow or cancel it.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_cancels_the_running_task_unless_asked_to_keep_it() {
    let handle = slow_emulator().await;
    let output = run_slow_import(&handle, "interrupted", &[], true).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: cancelled import task t-"),
        "{stderr}"
    );
    assert_eq!(handle.stats().calls("CancelTask"), 1);

    let output = run_slow_import(&handle, "kept", &["--keep-on-interrupt"], true).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("keeps running (--keep-on-interrupt)")
            && stderr.contains("ecs-image-operator ecs cancel-task t-"),
        "{stderr}"
    );
    assert_eq!(handle.stats().calls("CancelTask"), 1, "no second cancel");
}

/// Issue 17 part 6: with `--log-format json` standard error is JSON only, the progress rows and
/// the closing lines among it, while standard output keeps the status YAML.
#[test]
fn with_json_logs_every_line_on_standard_error_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("minimal.yaml");
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/minimal.yaml");
    std::fs::copy(example, &manifest).unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
            .args(["--log-format", "json", "import", "--emulator"])
            .args(["--time-scale", "120", "--timeout-seconds", "0", "-f"])
            .arg(&manifest)
            .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
            .output()
            .unwrap()
    };
    let output = run();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();
    let progress: Vec<_> = events.iter().filter(|e| e["phase"].is_string()).collect();
    assert!(!progress.is_empty(), "no progress event: {stderr}");
    assert!(
        progress
            .iter()
            .all(|e| e["import"] == "default/ubuntu-2204"),
        "{stderr}"
    );
    assert!(
        events.iter().any(|e| e["level"] == "WARN"
            && e["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("stopped waiting after 0s")),
        "the ending is an event too: {stderr}"
    );
    assert!(statuses(&output).len() == 1, "stdout keeps the YAML");
}

/// Issue 17 part 1: what the API server would refuse, `import -f` refuses the same way (kubectl's
/// words, the field path), before any ECS call: the ECS the command is pointed at hears nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_spec_the_api_server_would_refuse_is_refused_before_any_ecs_call() {
    let handle = emulator_support::start().await;
    let dir = tempfile::tempdir().unwrap();
    let minimal = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/minimal.yaml"),
    )
    .unwrap();
    let arm64 = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/arm64-uefi.yaml"),
    )
    .unwrap();
    let cases = [
        (
            minimal.replace("spec:\n", "spec:\n  foo: bar\n"),
            "(document 1): ImageImport in version \"v1alpha1\" cannot be handled as a ImageImport: \
             strict decoding error: unknown field \"spec.foo\"",
        ),
        (
            arm64.replace("bootMode: UEFI", "bootMode: BIOS"),
            "is invalid: spec: Invalid value: \"object\": arm64 images boot with UEFI only",
        ),
        (
            minimal.replace(
                "spec:\n",
                &format!("spec:\n  description: {}\n", "a".repeat(10 << 20)),
            ),
            "spec.description: Too long: may not be more than 256 bytes",
        ),
        (
            minimal.replace(
                "spec:\n",
                "spec:\n  platform: Windows Server 2022\n  osType: linux\n",
            ),
            "a Windows platform needs osType windows",
        ),
        (
            minimal.replace(
                "spec:\n",
                "spec:\n  tags:\n    ecs-image-operator/uid: forged\n",
            ),
            "spec.tags",
        ),
    ];
    for (index, (manifest, words)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("case-{index}.yaml"));
        std::fs::write(&file, manifest).unwrap();
        let url = handle.url();
        let output = tokio::task::spawn_blocking(move || import_at(&url, &file).output().unwrap())
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "case {index}: {stderr}");
        assert!(
            stderr.contains("error when creating \"") && stderr.contains(words),
            "case {index}: {words:?} not in: {stderr}"
        );
        assert!(stderr.len() < 4096, "case {index}: the refusal is short");
    }
    assert_eq!(handle.stats().requests, 0, "no ECS call was made");
}

/// Issue 17 parts 2 and 4: Ctrl-C with two imports running cancels both tasks and says so for
/// each (exit 130).
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_with_two_imports_cancels_both_tasks() {
    let handle = slow_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("two.yaml");
    std::fs::write(&manifest, [ubuntu("left"), ubuntu("right")].join("---\n")).unwrap();
    let url = handle.url();
    let child = import_at(&url, &manifest)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    interrupt_once_imported(&handle, &child, 2).await;
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    for name in ["default/left", "default/right"] {
        assert!(
            stderr.contains(&format!("{name}: interrupted: cancelled import task t-")),
            "{name}: {stderr}"
        );
    }
    assert_eq!(handle.stats().calls("CancelTask"), 2);
    assert_eq!(statuses(&output).len(), 2, "a status document each");
}

/// Issue 17 part 2: the imports of one file share one rate budget per AccessKey (one client), so
/// a file of several imports asks ECS no faster than one would.
#[tokio::test(flavor = "multi_thread")]
async fn the_imports_of_a_file_share_one_rate_budget() {
    let handle = emulator_support::start().await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("three.yaml");
    std::fs::write(
        &manifest,
        [ubuntu("a"), ubuntu("b"), ubuntu("c")].join("---\n"),
    )
    .unwrap();
    let url = handle.url();
    let output = tokio::task::spawn_blocking(move || {
        import_at(&url, &manifest)
            .args(["--rate-limit", "2"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stats = handle.stats();
    assert_eq!(stats.calls("ImportImage"), 3);
    // A budget of 2 a second (a burst of 2): at most 4 in any wall-clock second of the
    // emulator's count, where three clients would have sent the first passes' 9 or more at once.
    let busiest = stats.per_second.iter().copied().max().unwrap_or(0);
    assert!(
        busiest <= 4,
        "{busiest} requests in one second: {:?}",
        stats.per_second
    );
}
