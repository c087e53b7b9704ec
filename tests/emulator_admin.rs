//! The admin API (objects, accounts, keys, time, images, tasks, stats, reset), the command line,
//! and that no secret shows in stats, admin answers or `Debug` output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;

use clap::{CommandFactory, Parser};
use ecs_image_operator::cli::{Cli, Command};
use ecs_image_operator::emulator::{Emulator, EmulatorConfig, EmulatorError};
use emulator_support::*;
use serde_json::{Value, json};

async fn admin(
    emulator: &ecs_image_operator::emulator::EmulatorHandle,
    method: reqwest::Method,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let response = http()
        .request(method, format!("{}{path}", emulator.admin_url()))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_str(&response.text().await.unwrap()).unwrap(),
    )
}

fn import_params(object: &str) -> ecs_image_operator::ecs::params::Params {
    signed(
        "POST",
        "ImportImage",
        &[
            ("RegionId", REGION),
            ("ClientToken", "admin-token"),
            ("DiskDeviceMapping.1.OSSBucket", "images-hz"),
            ("DiskDeviceMapping.1.OSSObject", object),
        ],
    )
}

#[tokio::test]
async fn objects_accounts_time_and_listings_over_http() {
    let emulator = start().await;
    use reqwest::Method;
    // An object uploaded "later", in YAML like the world file.
    let (_, body) = post_form(&emulator, &import_params("late.raw")).await;
    assert_eq!(code_of(&body), "InvalidOSSObject.NotFound");
    let yaml = "bucket: images-hz\nkey: late.raw\nregion: cn-hangzhou\nsize: 1073741824\n";
    let (status, added) = admin(&emulator, Method::POST, "/objects", yaml).await;
    assert_eq!((status, added["added"].as_u64()), (200, Some(1)));
    let listed = admin(&emulator, Method::GET, "/objects", "").await.1;
    assert!(
        listed["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["key"] == "late.raw")
    );
    let (status, body) = post_form(&emulator, &import_params("late.raw")).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = admin(&emulator, Method::POST, "/objects", "{\"bucket\":1}").await;
    assert_eq!(status, 400, "{body}");

    let (_, tasks) = admin(&emulator, Method::GET, "/tasks", "").await;
    assert_eq!(tasks["tasks"][0]["state"]["status"], "Processing");
    let (_, advanced) = admin(
        &emulator,
        Method::POST,
        "/time/advance",
        r#"{"seconds":3600}"#,
    )
    .await;
    assert!(advanced["now"].is_string());
    let (_, images) = admin(&emulator, Method::GET, "/images", "").await;
    assert_eq!(images["images"][0]["status"], "Available");
    assert_eq!(images["images"][0]["progress"], 100);

    let (status, account) = admin(
        &emulator,
        Method::PUT,
        "/accounts/default",
        r#"{"import_role": false, "image_quota": 3}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(account["image_quota"], 3);
    let (_, body) = post_form(
        &emulator,
        &signed(
            "POST",
            "ImportImage",
            &[
                ("RegionId", REGION),
                ("DiskDeviceMapping.1.OSSBucket", "images-hz"),
                ("DiskDeviceMapping.1.OSSObject", "late.raw"),
            ],
        ),
    )
    .await;
    assert_eq!(code_of(&body), "NoSetRoletoECSServiceAcount");
    let (status, rate) = admin(
        &emulator,
        Method::PUT,
        "/import-failure-rate",
        r#"{"rate":0.25}"#,
    )
    .await;
    assert_eq!((status, rate["rate"].as_f64()), (200, Some(0.25)));
    emulator.shutdown().await;
}

#[tokio::test]
async fn stats_list_import_calls_and_reset_clears_them() {
    let emulator = start().await;
    use reqwest::Method;
    post_form(&emulator, &import_params("ubuntu-22.04.qcow2")).await;
    post_form(&emulator, &import_params("ubuntu-22.04.qcow2")).await;
    let (status, stats) = admin(&emulator, Method::GET, "/stats", "").await;
    assert_eq!(status, 200);
    assert_eq!(stats["actions"]["ImportImage"]["calls"], 2);
    assert_eq!(stats["actions"]["ImportImage"]["ok"], 2);
    let calls = stats["import_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["client_token"], "admin-token");
    assert_eq!(calls[0]["image_id"], calls[1]["image_id"]);
    assert_eq!(calls[1]["outcome"], "replayed");

    let (status, _) = admin(&emulator, Method::POST, "/reset", "").await;
    assert_eq!(status, 200);
    let (_, stats) = admin(&emulator, Method::GET, "/stats", "").await;
    assert_eq!(stats["requests"], 0);
    assert_eq!(stats["import_calls"], json!([]));
    let (_, images) = admin(&emulator, Method::GET, "/images", "").await;
    assert_eq!(images["images"], json!([]));
    emulator.shutdown().await;
}

#[tokio::test]
async fn secrets_never_show() {
    let emulator = start().await;
    use reqwest::Method;
    let (status, _) = admin(
        &emulator,
        Method::POST,
        "/keys",
        r#"{"access_key_id":"LTAI-added","access_key_secret":"added-secret-value","account":"team"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let params = signed_as(
        "POST",
        "DescribeRegions",
        &[("RegionId", REGION)],
        "LTAI-added",
        "added-secret-value",
        &now_stamp(),
        &nonce(),
    );
    assert_eq!(post_form(&emulator, &params).await.0, 200);
    post_form(&emulator, &import_params("ubuntu-22.04.qcow2")).await;
    let mut shown = String::new();
    for path in ["/keys", "/stats", "/images", "/tasks", "/faults"] {
        shown.push_str(&admin(&emulator, Method::GET, path, "").await.1.to_string());
    }
    shown.push_str(&format!("{:?} {:?}", config(), emulator));
    for secret in [
        AK_SECRET,
        OTHER_SECRET,
        STS_SECRET,
        STS_TOKEN,
        "added-secret-value",
    ] {
        assert!(!shown.contains(secret), "{secret} shown");
    }
    assert!(shown.contains("LTAI-added"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn only_loopback_unless_allowed() {
    let refused = Emulator::start(EmulatorConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..config()
    })
    .await
    .unwrap_err();
    assert!(matches!(refused, EmulatorError::RemoteBind(_)));
}

#[test]
fn every_emulator_flag_has_an_environment_variable() {
    let command = Cli::command();
    let emulator = command.find_subcommand("emulator").unwrap();
    for arg in emulator.get_arguments().filter(|a| a.get_long().is_some()) {
        let env = arg.get_env().map(|e| e.to_string_lossy().to_string());
        assert!(
            env.as_deref()
                .is_some_and(|e| e.starts_with("ECS_IMAGE_OPERATOR_EMULATOR_")),
            "--{} has env {env:?}",
            arg.get_id()
        );
    }
}

#[test]
fn flags_build_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.yaml");
    std::fs::write(&world, WORLD).unwrap();
    let cli = Cli::try_parse_from([
        "ecs-image-operator",
        "emulator",
        "--access-key",
        "AK1:secret1",
        "--sts-key",
        "STS.1:secret2:CAIStoken:team",
        "--objects",
        world.to_str().unwrap(),
        "--time-scale",
        "600",
        "--throttle-rate",
        "0.5",
        "--fault-actions",
        "DescribeTasks,DescribeImages",
        "--sts-key-lifetime",
        "900",
    ])
    .unwrap();
    let Command::Emulator(args) = cli.command else {
        panic!("not the emulator command");
    };
    let config = args.config().unwrap();
    assert_eq!(config.keys.len(), 2);
    assert!(config.keys[0].expires_at.is_none());
    assert!(
        config.keys[1]
            .expires_at
            .is_some_and(|at| at > jiff::Timestamp::now())
    );
    assert_eq!(config.objects.len(), 7);
    assert_eq!(config.time_scale, 600.0);
    assert_eq!(config.faults.actions["DescribeTasks"].throttle_rate, 0.5);
    assert_eq!(config.faults.default.throttle_rate, 0.0);

    let no_keys = Cli::try_parse_from(["ecs-image-operator", "emulator"]).unwrap();
    let Command::Emulator(args) = no_keys.command else {
        panic!("not the emulator command");
    };
    assert!(matches!(args.config(), Err(EmulatorError::Config(_))));
}
