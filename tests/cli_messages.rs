//! Issue 17, part 5: every error a person reads says each cause once. The binary is run into its
//! common failures (a missing file, a directory, YAML that does not parse, a kubeconfig that is
//! not there, an ECS endpoint that refuses connections) and no message may repeat a fragment;
//! and (part 6) stderr that is not a terminal carries no ANSI colours.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

use std::process::Command;

use ecs_image_operator::explain::repeated_fragment;

/// The binary's stderr for these arguments, with credentials that reach nothing.
fn stderr_of(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
        .args(args)
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-test")
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-a-secret")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(!output.status.success(), "{args:?} succeeded");
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn common_failures_say_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "a: [\n").unwrap();
    let missing = dir.path().join("missing.yaml");
    let (broken, missing, folder) = (
        broken.to_str().unwrap(),
        missing.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    );
    let refusing = [
        "--ecs-endpoint",
        "http://127.0.0.1:1",
        "--region",
        "cn-hangzhou",
        "--max-attempts",
        "1",
    ];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["import", "-f", missing], "No such file or directory"),
        (vec!["import", "-f", folder], "is a directory"),
        (vec!["import", "-f", broken], "unclosed bracket"),
        (
            vec!["run", "--kubeconfig", missing],
            "No such file or directory",
        ),
        (
            [&["ecs", "describe-regions"][..], &refusing[..]].concat(),
            "Connection refused",
        ),
        (
            [&["ecs", "describe-task", "t-1"][..], &refusing[..]].concat(),
            "Connection refused",
        ),
    ];
    for (args, cause) in cases {
        let stderr = stderr_of(&args);
        // Part 6: stderr is a pipe here, so no ANSI colour codes.
        assert!(
            !stderr.contains('\u{1b}'),
            "{args:?}: colour codes on a pipe: {stderr:?}"
        );
        let error = stderr
            .lines()
            .find(|line| line.contains("ERROR"))
            .unwrap_or_else(|| panic!("{args:?}: no error line in {stderr}"));
        assert!(
            error.contains(cause),
            "{args:?}: the cause is missing: {error}"
        );
        assert_eq!(
            repeated_fragment(error),
            None,
            "{args:?}: a fragment is said twice: {error}"
        );
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Issue 17: with no credentials anywhere, `import -f` (not `--emulator`) names every source it
/// tried, in order, once each. Every endpoint is a closed loopback port, and the environment is
/// empty, so nothing but loopback is ever asked.
#[test]
fn missing_credentials_list_every_source_tried_in_order() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/minimal.yaml");
    // The same import naming a Secret the file does not hold.
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere.yaml");
    std::fs::write(
        &elsewhere,
        std::fs::read_to_string(&example).unwrap().replace(
            "spec:\n",
            "spec:\n  credentialsSecretRef:\n    name: team-keys\n",
        ),
    )
    .unwrap();
    let closed = format!("http://127.0.0.1:{}", closed_port());
    for (file, secret) in [
        (
            example,
            "Secret document: the ImageImport has no credentialsSecretRef",
        ),
        (
            elsewhere,
            "Secret document: credentialsSecretRef names Secret team-keys, which the file does not hold",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
            .arg("import")
            .arg("-f")
            .arg(&file)
            .args(["--metadata-endpoint", &closed])
            .args(["--ecs-endpoint", &closed])
            .args(["--sts-endpoint", &closed])
            .args(["--ecs-max-attempts", "1", "--timeout-seconds", "2"])
            .env_clear()
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8(output.stderr).unwrap();
        let line = stderr
            .lines()
            .find(|line| line.contains("tried, in order"))
            .unwrap_or_else(|| panic!("no line lists the sources tried:\n{stderr}"));
        let at = |what: &str| {
            assert_eq!(line.matches(what).count(), 1, "{what} once: {line}");
            line.find(what).unwrap()
        };
        let secret = at(secret);
        let environment = at(
            "environment: ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET not set",
        );
        let rrsa = at(
            "RRSA: ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE not set",
        );
        let role = at(&format!("instance role: metadata service at {closed}: "));
        assert!(
            secret < environment && environment < rrsa && rrsa < role,
            "in order: {line}"
        );
        assert_eq!(
            repeated_fragment(line),
            None,
            "a fragment is said twice: {line}"
        );
    }
}
