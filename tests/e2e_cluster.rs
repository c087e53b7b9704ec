//! End-to-end on a real cluster, selected by `ECS_IMAGE_OPERATOR_E2E_KUBECONFIG` (a kubeconfig file)
//! and `ECS_IMAGE_OPERATOR_E2E_IMAGE` (the operator image, already loadable by the cluster's nodes,
//! e.g. `kind load docker-image`). Unset, the test says it was not selected and passes; set, any
//! problem fails it.
//!
//! It installs the chart with the ECS emulator as a sidecar (nothing reaches Alibaba Cloud), gives
//! the emulator the OSS objects through its admin API (over `kubectl port-forward`), imports
//! `deploy/examples/minimal.yaml` until `kubectl wait --for=condition=Ready` succeeds, deletes it and
//! a second import caught mid-flight, and checks in the emulator's counters that the operator called
//! `DeleteImage` and `CancelTask` and left no image behind. Then `helm uninstall`.
//!
//! Needs `helm` (on PATH, or `.ci/install-helm`) and `kubectl` on PATH.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod chart_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chart_support::{chart_dir, helm, repo};
use serde_json::{Value, json};

const KUBECONFIG_VAR: &str = "ECS_IMAGE_OPERATOR_E2E_KUBECONFIG";
const IMAGE_VAR: &str = "ECS_IMAGE_OPERATOR_E2E_IMAGE";
const RELEASE: &str = "ecs-image-operator";
const EMULATOR_PORT: u16 = 9100;
/// The test's own key for the emulator: it never leaves the test namespace.
const KEY_ID: &str = "LTAI5tE2eEmulatorKey";
const KEY_SECRET: &str = "e2e-emulator-secret-not-a-real-one";

struct Cluster {
    kubeconfig: PathBuf,
    namespace: String,
    port_forward: Option<Child>,
    installed: bool,
}

impl Cluster {
    fn command(&self, program: &std::path::Path) -> Command {
        let mut command = Command::new(program);
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .current_dir(repo());
        command
    }

    fn run(
        &self,
        program: &std::path::Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, String> {
        let mut command = self.command(program);
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", program.display()));
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "{} {args:?} failed:\n{stdout}{}",
                program.display(),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let mut full = vec!["--namespace", self.namespace.as_str()];
        full.extend(args);
        self.run(std::path::Path::new("kubectl"), &full, None)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    fn kubectl_apply(&self, yaml: &str) {
        self.run(
            std::path::Path::new("kubectl"),
            &["--namespace", &self.namespace, "apply", "-f", "-"],
            Some(yaml),
        )
        .unwrap_or_else(|error| panic!("{error}"));
    }

    fn helm(&self, args: &[&str]) -> String {
        let mut full = args.to_vec();
        full.extend(["--namespace", self.namespace.as_str()]);
        self.run(helm(), &full, None)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    fn import(&self, name: &str) -> Value {
        serde_json::from_str(&self.kubectl(&["get", "imageimport", name, "--output", "json"]))
            .unwrap()
    }

    /// Forwards a free local port to the emulator inside the operator pod; returns its base URL.
    fn forward_emulator(&mut self) -> String {
        let local = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = self
            .command(std::path::Path::new("kubectl"))
            .args([
                "--namespace",
                &self.namespace,
                "port-forward",
                &format!("deployment/{RELEASE}"),
                &format!("{local}:{EMULATOR_PORT}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl port-forward starts");
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        assert!(
            first_line.contains("Forwarding from"),
            "kubectl port-forward said: {first_line:?}"
        );
        self.port_forward = Some(child);
        format!("127.0.0.1:{local}")
    }

    fn diagnostics(&self) {
        for args in [
            vec!["get", "pods,imageimports", "--output", "wide"],
            vec!["get", "events", "--sort-by", ".lastTimestamp"],
            vec![
                "logs",
                &format!("deployment/{RELEASE}"),
                "--container",
                "operator",
                "--tail",
                "200",
            ],
            vec![
                "logs",
                &format!("deployment/{RELEASE}"),
                "--container",
                "emulator",
                "--tail",
                "50",
            ],
        ] {
            let mut full = vec!["--namespace", self.namespace.as_str()];
            full.extend(args.iter().copied());
            let output = self.run(std::path::Path::new("kubectl"), &full, None);
            println!(
                "--- kubectl {}\n{}",
                args.join(" "),
                output.unwrap_or_else(|error| error)
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.diagnostics();
        }
        if let Some(mut child) = self.port_forward.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.installed {
            // Resources first, while the operator can still remove its finalizer.
            let _ = self.run(
                std::path::Path::new("kubectl"),
                &[
                    "--namespace",
                    &self.namespace,
                    "delete",
                    "imageimports",
                    "--all",
                    "--timeout=120s",
                ],
                None,
            );
            let _ = self.run(
                helm(),
                &[
                    "uninstall",
                    RELEASE,
                    "--namespace",
                    &self.namespace,
                    "--wait",
                ],
                None,
            );
        }
        let _ = self.run(
            std::path::Path::new("kubectl"),
            &["delete", "namespace", &self.namespace, "--wait=false"],
            None,
        );
    }
}

/// One HTTP/1.0 request to the forwarded emulator; (status, JSON body).
fn http(
    address: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut stream = TcpStream::connect(address).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let payload = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let json = serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))?;
    Ok((status, json))
}

fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(error) if start.elapsed() > timeout => {
                panic!("{what}: gave up after {timeout:?}: {error}")
            }
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

fn calls(stats: &Value, action: &str) -> u64 {
    stats["actions"][action]["ok"].as_u64().unwrap_or(0)
}

#[test]
fn the_chart_imports_and_cleans_up_on_a_real_cluster() {
    let Some(kubeconfig) = std::env::var_os(KUBECONFIG_VAR) else {
        println!(
            "e2e_cluster: not selected (set {KUBECONFIG_VAR} to a kubeconfig, and {IMAGE_VAR}, to run it)"
        );
        return;
    };
    let image = std::env::var(IMAGE_VAR).unwrap_or_else(|_| {
        panic!("{KUBECONFIG_VAR} is set, so {IMAGE_VAR} must name the operator image")
    });
    let (repository, tag) = image
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .unwrap_or_else(|| panic!("{IMAGE_VAR}={image} must be repository:tag"));
    let mut cluster = Cluster {
        kubeconfig: PathBuf::from(kubeconfig),
        namespace: format!("ecs-e2e-{}", std::process::id()),
        port_forward: None,
        installed: false,
    };
    cluster
        .run(
            std::path::Path::new("kubectl"),
            &["create", "namespace", &cluster.namespace],
            None,
        )
        .unwrap_or_else(|error| panic!("{error}"));
    cluster.kubectl(&[
        "create",
        "secret",
        "generic",
        "emulator-key",
        &format!("--from-literal=accessKeyId={KEY_ID}"),
        &format!("--from-literal=accessKeySecret={KEY_SECRET}"),
    ]);

    cluster.installed = true;
    let chart = chart_dir();
    let emulator_values = chart.join("ci/emulator-values.yaml");
    cluster.helm(&[
        "install",
        RELEASE,
        chart.to_str().unwrap(),
        "--values",
        emulator_values.to_str().unwrap(),
        "--set",
        &format!("image.repository={repository}"),
        "--set",
        &format!("image.tag={tag}"),
        "--set",
        "controller.pollIntervalSeconds=2",
        "--set",
        "logging.format=text",
        "--wait",
        "--timeout",
        "5m",
    ]);

    let emulator = cluster.forward_emulator();
    eventually(
        "the emulator answers over port-forward",
        Duration::from_secs(60),
        || http(&emulator, "GET", "/_emulator/stats", None),
    );
    let (status, _) = http(
        &emulator,
        "POST",
        "/_emulator/objects",
        Some(&json!([
            // deploy/examples/minimal.yaml's file: 2 GiB, imported in (60 + 2 × 30) / 600 s.
            {"bucket": "my-images", "key": "ubuntu/ubuntu-22.04.qcow2", "region": "cn-hangzhou",
             "size": 2_147_483_648_u64, "virtual_size_gib": 20, "format": "QCOW2"},
            // A file so large that its import still runs when it is deleted (about 100 s).
            {"bucket": "my-images", "key": "e2e/huge.raw", "region": "cn-hangzhou",
             "size": 2_147_483_648_000_u64, "virtual_size_gib": 2000, "format": "RAW"},
        ])),
    )
    .unwrap();
    assert_eq!(status, 200, "adding the OSS objects");

    let minimal = std::fs::read_to_string(repo().join("deploy/examples/minimal.yaml")).unwrap();
    cluster.kubectl_apply(&minimal);
    cluster.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "imageimport/ubuntu-2204",
        "--timeout=180s",
    ]);
    let ready = cluster.import("ubuntu-2204");
    assert_eq!(ready["status"]["phase"], "Available", "{ready}");
    let image_id = ready["status"]["imageId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(image_id.starts_with("m-"), "{ready}");
    assert_eq!(
        ready["status"]["observedGeneration"],
        ready["metadata"]["generation"]
    );

    cluster.kubectl_apply(
        "apiVersion: ecs.image-import.dev/v1alpha1\nkind: ImageImport\nmetadata:\n  name: e2e-cancel\n\
         spec:\n  regionId: cn-hangzhou\n  diskDeviceMappings:\n    - ossBucket: my-images\n      \
         ossObject: e2e/huge.raw\n      format: RAW\n",
    );
    cluster.kubectl(&[
        "wait",
        "--for=jsonpath={.status.phase}=Importing",
        "imageimport/e2e-cancel",
        "--timeout=120s",
    ]);

    let (_, before) = http(&emulator, "GET", "/_emulator/stats", None).unwrap();
    assert_eq!(
        calls(&before, "ImportImage"),
        2,
        "one ImportImage per resource: {before}"
    );
    cluster.kubectl(&[
        "delete",
        "imageimport",
        "ubuntu-2204",
        "e2e-cancel",
        "--timeout=180s",
    ]);

    let (_, stats) = http(&emulator, "GET", "/_emulator/stats", None).unwrap();
    assert!(
        calls(&stats, "CancelTask") >= 1,
        "the running import was cancelled: {stats}"
    );
    assert!(
        calls(&stats, "DeleteImage") >= 2,
        "both images were deleted: {stats}"
    );
    assert_eq!(
        calls(&stats, "ImportImage"),
        2,
        "no second image for a resource: {stats}"
    );
    let (_, images) = http(&emulator, "GET", "/_emulator/images", None).unwrap();
    assert_eq!(
        images["images"],
        json!([]),
        "images left in the emulator: {images}"
    );
    let left = cluster.kubectl(&["get", "imageimports", "--output", "name"]);
    assert!(left.trim().is_empty(), "ImageImports left: {left}");

    cluster.helm(&["uninstall", RELEASE, "--wait"]);
    cluster.installed = false;
}
