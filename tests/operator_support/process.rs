//! The real `ecs-image-operator run` binary as a child process, and the emulator's view of images
//! read over its admin API (never counted as ECS requests, never faulted).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use ecs_image_operator::api::image_import::UID_TAG;
use ecs_image_operator::emulator::EmulatorHandle;

use crate::emulator_support;

/// The operator process; killed with SIGKILL when dropped, so a failing test leaves none behind.
pub struct OperatorProcess(Child);

impl OperatorProcess {
    /// Starts `ecs-image-operator run` against the double's kubeconfig and the emulator, with the
    /// emulator's key as operator-wide credentials, `extra` flags and, unless they name one, any free
    /// probe port. Its logs go
    /// to stderr when `OPERATOR_LOG` is set, else nowhere.
    pub fn spawn(kubeconfig: &Path, emulator: &EmulatorHandle, extra: &[&str]) -> Self {
        let stderr = if std::env::var_os("OPERATOR_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        Self::spawn_with_stderr(kubeconfig, emulator, extra, stderr)
    }

    /// As [`OperatorProcess::spawn`], with the logs written to `log`.
    pub fn spawn_logging_to(
        kubeconfig: &Path,
        emulator: &EmulatorHandle,
        extra: &[&str],
        log: &Path,
    ) -> Self {
        let file = std::fs::File::create(log).unwrap();
        Self::spawn_with_stderr(kubeconfig, emulator, extra, Stdio::from(file))
    }

    fn spawn_with_stderr(
        kubeconfig: &Path,
        emulator: &EmulatorHandle,
        extra: &[&str],
        stderr: Stdio,
    ) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
            .args(["run", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["--ecs-endpoint", &emulator.url()])
            .args(
                (!extra.contains(&"--probe-address"))
                    .then_some(["--probe-address", "127.0.0.1:0"])
                    .into_iter()
                    .flatten(),
            )
            .args(extra)
            .env_remove("KUBECONFIG")
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", emulator_support::AK_ID)
            .env(
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                emulator_support::AK_SECRET,
            )
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Self(child)
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// The exit status, if the process has exited.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.0.try_wait()
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One image as the emulator's admin API shows it.
#[derive(Debug, Clone)]
pub struct AdminImage {
    /// `m-…`.
    pub id: String,
    /// `Creating`, `Available`, `CreateFailed`.
    pub status: String,
    /// The value of the operator's UID tag, if tagged.
    pub uid: Option<String>,
}

/// Every image in the emulator, in any status, read over the admin API.
pub async fn admin_images(emulator: &EmulatorHandle) -> Vec<AdminImage> {
    let text = emulator_support::http()
        .get(format!("{}/images", emulator.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| AdminImage {
            id: entry["image"]["id"].as_str().unwrap().to_string(),
            status: entry["status"].as_str().unwrap().to_string(),
            uid: entry["image"]["tags"]
                .as_array()
                .unwrap()
                .iter()
                .find(|tag| tag[0] == UID_TAG)
                .and_then(|tag| tag[1].as_str())
                .map(str::to_string),
        })
        .collect()
}
