//! Issue 17, part 8: the `ecs` subcommands as a person uses them, against an emulator of the
//! test's own: `--output table|json|yaml` (JSON when stdout is not a terminal), `delete-image`
//! asking first on a terminal (through `script`, which gives the command one) unless `--yes`, and
//! a target that does not exist reported plainly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;

use std::process::{Command, Output, Stdio};

use ecs_image_operator::ecs::api::DiskDeviceMapping;

fn ecs(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
        .arg("ecs")
        .args(args)
        .args(["--region", "cn-hangzhou", "--ecs-endpoint", url])
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", emulator_support::AK_ID)
        .env(
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            emulator_support::AK_SECRET,
        )
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// An emulator with one available image; returns its ID.
async fn with_an_image() -> (ecs_image_operator::emulator::EmulatorHandle, String) {
    let handle = emulator_support::start().await;
    let client = emulator_support::client(&handle);
    let request = ecs_image_operator::ecs::api::ImportImageRequest {
        region_id: "cn-hangzhou".into(),
        image_name: Some("listed".into()),
        disk_device_mappings: vec![DiskDeviceMapping {
            oss_bucket: "images-hz".into(),
            oss_object: "ubuntu-22.04.qcow2".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let accepted = client
        .import_image(&emulator_support::creds(), &request)
        .await
        .unwrap();
    (handle, accepted.image_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_print_as_a_table_json_or_yaml() {
    let (handle, image) = with_an_image().await;
    let url = handle.url();
    let run = |args: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ecs(&url, &args)
        })
    };
    let list = |output: &str| {
        vec![
            "describe-images".to_string(),
            image.clone(),
            "-o".into(),
            output.into(),
        ]
    };
    let table = run(list("table")).await.unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("ImageId") && header.contains("ImageName") && header.contains("Status"),
        "{text}"
    );
    assert!(
        lines.any(|l| l.starts_with(&image) && l.contains("listed")),
        "{text}"
    );

    let yaml = run(list("yaml")).await.unwrap();
    let value: serde_json::Value =
        serde_saphyr::from_str(&String::from_utf8(yaml.stdout).unwrap()).unwrap();
    assert_eq!(value["Images"][0]["ImageId"], image.as_str());

    // Not a terminal, no --output: JSON, as scripts read it.
    let json = run(vec!["describe-images".into(), image.clone()])
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["Images"][0]["ImageId"], image.as_str());
}

/// Runs the shell command `line` on a terminal (`script` gives it a pty) with the emulator's key,
/// typing `answer`; what the terminal showed is its stdout.
async fn answered_on_a_terminal(line: String, answer: &'static [u8]) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", emulator_support::AK_ID)
            .env(
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                emulator_support::AK_SECRET,
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(answer).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_image_asks_on_a_terminal_and_says_plainly_when_there_is_nothing_to_delete() {
    let (handle, image) = with_an_image().await;
    let url = handle.url();
    // On a terminal, "n" keeps the image.
    let binary = env!("CARGO_BIN_EXE_ecs-image-operator");
    let line =
        format!("{binary} ecs delete-image {image} --region cn-hangzhou --ecs-endpoint {url}");
    let asked = answered_on_a_terminal(
        line, b"n
",
    )
    .await;
    let said = String::from_utf8_lossy(&asked.stdout);
    assert!(
        said.contains(&format!("delete image {image} in cn-hangzhou? [y/N]"))
            && said.contains("not deleted"),
        "{said}"
    );
    assert!(!asked.status.success());
    assert_eq!(
        handle.stats().calls("DeleteImage"),
        0,
        "nothing was deleted"
    );

    // With JSON logs the question and the answer's note are JSON events, on a terminal too.
    let line = format!(
        "{binary} --log-format json ecs delete-image {image} --region cn-hangzhou --ecs-endpoint {url}"
    );
    let asked = answered_on_a_terminal(
        line, b"n
",
    )
    .await;
    let said = String::from_utf8_lossy(&asked.stdout);
    for wanted in ["? [y/N]", "not deleted"] {
        let line = said
            .lines()
            .find(|line| line.contains(wanted))
            .unwrap_or_else(|| panic!("{wanted:?} not in {said}"));
        let event: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("not a JSON event ({e}): {line:?}"));
        assert!(
            event["message"].as_str().unwrap().contains(wanted),
            "{event}"
        );
    }
    assert_eq!(handle.stats().calls("DeleteImage"), 0);

    // --yes (or no terminal) deletes; a second time there is nothing, said plainly, exit 0.
    let run = |yes: bool| {
        let (url, image) = (url.clone(), image.clone());
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["delete-image", image.as_str()];
            if yes {
                args.push("--yes");
            }
            ecs(&url, &args)
        })
    };
    let deleted = run(true).await.unwrap();
    assert!(deleted.status.success());
    let again = run(false).await.unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "image {image} does not exist in cn-hangzhou: nothing was deleted"
        )),
        "{stderr}"
    );
}
