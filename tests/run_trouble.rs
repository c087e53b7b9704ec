//! Issue 17: `run` in trouble. An API server that cannot be reached, or refuses, is named in the
//! log with the kubeconfig context it came from; SIGTERM with nothing in flight ends the process
//! at once, not after `--shutdown-timeout-seconds`; `--log-format json` keeps stderr JSON-only,
//! a fatal error at start included. Only loopback is ever contacted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kube_double::{FaultAction, FaultRule, Server, ServerOptions};

/// How long a line is waited for.
const PATIENCE: Duration = Duration::from_secs(60);

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A free loopback address for the probes.
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A kubeconfig naming `server` in a context called `context`.
fn write_kubeconfig(path: &Path, server: &str, context: &str) {
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
         users:\n- name: u\n  user: {{}}\ncontexts:\n- name: {context}\n  context:\n    \
         cluster: c\n    user: u\ncurrent-context: {context}\n"
    );
    std::fs::write(path, yaml).unwrap();
}

/// `ecs-image-operator run` with this kubeconfig and flags, an AccessKey that reaches nothing
/// (every ECS endpoint a closed loopback port), and stderr read line by line.
struct Operator {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Operator {
    fn spawn(kubeconfig: &Path, extra: &[&str]) -> Self {
        let closed = format!("http://127.0.0.1:{}", closed_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(extra)
            .args(["--ecs-endpoint", &closed, "--sts-endpoint", &closed])
            .args(["--metadata-endpoint", &closed])
            .env_clear()
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-test")
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-a-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first stderr line (from now on) for which `wanted` holds.
    fn wait_for_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {what} in {PATIENCE:?}:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// SIGTERM, then the exit status and how long it took.
    fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let started = Instant::now();
        let deadline = started + Duration::from_secs(150);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every stderr line so far and up to the end of the stream (after the process ended).
    fn all_lines(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_unreachable_api_server_is_named_with_its_context() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let server = format!("http://127.0.0.1:{}", closed_port());
    write_kubeconfig(&kubeconfig, &server, "closed-port-context");
    let mut operator = Operator::spawn(&kubeconfig, &["--probe-address", &free_address()]);
    let line = operator.wait_for_line("the API server", |line| line.contains("WARN"));
    assert!(line.contains(&server), "the server URL is named: {line}");
    assert!(
        line.contains("closed-port-context"),
        "the context is named: {line}"
    );
    assert!(line.contains("Connection refused"), "and why: {line}");
    let (status, _) = operator.terminate();
    let lines = operator.all_lines();
    assert!(status.success(), "{status:?}: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_api_server_is_named_with_its_context() {
    let double = Server::start(ServerOptions::default()).await.unwrap();
    double.faults().add(FaultRule::new(
        "/apis/ecs.image-import.dev",
        FaultAction::Status { code: 403 },
    ));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, &double.url(), "refusing-context");
    let mut operator = Operator::spawn(&kubeconfig, &["--probe-address", &free_address()]);
    let line = tokio::task::block_in_place(|| {
        operator.wait_for_line("the API server", |line| line.contains("WARN"))
    });
    assert!(
        line.contains(&double.url()),
        "the server URL is named: {line}"
    );
    assert!(line.contains("refusing-context"), "the context: {line}");
    assert!(line.contains("403"), "and what it said: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_nothing_in_flight_exits_at_once() {
    let double = Server::start(ServerOptions::default()).await.unwrap();
    double
        .apply_yaml(&ecs_image_operator::api::crd_yaml().unwrap())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    double.write_kubeconfig(&kubeconfig).unwrap();
    ecs_image_operator::ecs::ensure_tls_provider();
    let probes = free_address();
    let mut operator = Operator::spawn(
        &kubeconfig,
        &[
            "--probe-address",
            &probes,
            "--shutdown-timeout-seconds",
            "120",
        ],
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ready = reqwest::get(format!("http://{probes}/readyz")).await;
        if ready.is_ok_and(|response| response.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, took) = tokio::task::block_in_place(|| operator.terminate());
    assert!(status.success(), "{status:?}");
    // A generous bound, far below the 120 s allowed: nothing was in flight.
    assert!(
        took < Duration::from_secs(60),
        "exited {took:?} after SIGTERM"
    );
}

/// Each line parses as a JSON object.
fn assert_json_only(lines: &[String]) {
    assert!(!lines.is_empty(), "nothing on stderr");
    for line in lines {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok_and(|value| value.is_object()),
            "not a JSON line: {line:?}\nall:\n{}",
            lines.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_keep_stderr_json_only_in_trouble() {
    // An unreachable API server: warnings, then SIGTERM.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(
        &kubeconfig,
        &format!("http://127.0.0.1:{}", closed_port()),
        "closed",
    );
    let mut operator = Operator::spawn(
        &kubeconfig,
        &["--log-format", "json", "--probe-address", &free_address()],
    );
    tokio::task::block_in_place(|| {
        operator.wait_for_line("a warning", |line| line.contains("WARN"));
        operator.terminate();
    });
    assert_json_only(&operator.all_lines());

    // A fatal error at start: a kubeconfig that is not there.
    let missing = dir.path().join("missing");
    let mut fatal = Operator::spawn(&missing, &["--log-format", "json"]);
    tokio::task::block_in_place(|| fatal_ends(&mut fatal));
}

/// Waits for a `run` that must fail at start, and checks its stderr.
fn fatal_ends(fatal: &mut Operator) {
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = fatal.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "run with no kubeconfig never ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let lines = fatal.all_lines();
    assert_json_only(&lines);
    assert!(
        lines
            .iter()
            .any(|line| line.contains("ERROR") && line.contains("missing")),
        "{lines:?}"
    );
}

/// `ecs-image-operator --log-format json ecs ARGS` against `url`, with (or without) the
/// emulator's key: its stderr lines.
fn ecs_json(url: &str, args: &[&str], key: bool) -> Vec<String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"));
    command
        .args(["--log-format", "json", "ecs"])
        .args(args)
        .args(["--region", "cn-hangzhou", "--max-attempts", "1"])
        .args(["--ecs-endpoint", url, "--sts-endpoint", url])
        .args(["--metadata-endpoint", url])
        .env_clear()
        .stdin(Stdio::null());
    if key {
        command
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", emulator_support::AK_ID)
            .env(
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                emulator_support::AK_SECRET,
            );
    }
    let output = command.output().unwrap();
    String::from_utf8(output.stderr)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_keep_the_ecs_commands_stderr_json_only() {
    let emulator = emulator_support::start().await;
    let url = emulator.url();
    let closed = format!("http://127.0.0.1:{}", closed_port());
    tokio::task::spawn_blocking(move || {
        // No credentials at all (a fatal error), a task and an image that do not exist (notes
        // for the person), and a command line that does not parse.
        let cases: [(&str, &[&str], bool, &str); 4] = [
            (&closed, &["describe-regions"], false, "tried, in order"),
            (
                &url,
                &["cancel-task", "t-missing"],
                true,
                "nothing was cancelled",
            ),
            (
                &url,
                &["delete-image", "m-missing", "--yes"],
                true,
                "nothing was deleted",
            ),
            (&url, &["describe-task"], true, "TASK_ID"),
        ];
        for (endpoint, args, key, said) in cases {
            let lines = ecs_json(endpoint, args, key);
            assert_json_only(&lines);
            assert!(
                lines.iter().any(|line| line.contains(said)),
                "{args:?}: {said:?} is said: {lines:?}"
            );
        }
    })
    .await
    .unwrap();
}
