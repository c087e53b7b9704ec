//! kubectl (a subprocess) against the double, in-process and as the standalone binary.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::*;

const KUBECTL: &str = "/usr/bin/kubectl";

const CUSTOM_RESOURCE: &str = "
apiVersion: ecs.image-import.dev/v1
kind: ImageImport
metadata:
  name: ubuntu
  namespace: imports
spec:
  imageName: ubuntu-22
  source: {bucket: images-bucket, object: images/ubuntu.qcow2}
  osType: linux
";

/// Runs kubectl off the async threads; returns (success, stdout, stderr).
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(KUBECTL);
    // A discovery cache next to the kubeconfig: the default one under $HOME is keyed by host and
    // port, and a later server on a reused port must not be described by an old cache.
    let cache = kubeconfig.with_file_name("kubectl-cache");
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn ok(kubeconfig: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = kubectl(kubeconfig, args).await;
    assert!(success, "kubectl {args:?} failed: {stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_manages_namespaces_crds_and_custom_resources() {
    let server = kube_double::Server::start(Default::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let crd = dir.path().join("crd.yaml");
    std::fs::write(&crd, CRD_YAML).unwrap();
    let cr = dir.path().join("cr.yaml");
    std::fs::write(&cr, CUSTOM_RESOURCE).unwrap();
    let k = kubeconfig.as_path();

    ok(k, &["create", "namespace", "imports"]).await;
    ok(k, &["apply", "-f", crd.to_str().unwrap()]).await;
    ok(
        k,
        &[
            "wait",
            "--for=condition=Established",
            "crd/imageimports.ecs.image-import.dev",
            "--timeout=10s",
        ],
    )
    .await;
    let created = ok(k, &["apply", "-f", cr.to_str().unwrap()]).await;
    assert!(
        created.contains("imageimport.ecs.image-import.dev/ubuntu created"),
        "{created}"
    );
    let unchanged = ok(k, &["apply", "-f", cr.to_str().unwrap()]).await;
    assert!(unchanged.contains("unchanged"), "{unchanged}");

    let table = ok(k, &["get", "imageimports", "-n", "imports"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "IMAGE", "PHASE", "READY", "AGE"]);
    assert!(table.contains("ubuntu-22"), "{table}");
    let by_short_name = ok(k, &["get", "imgimp", "-n", "imports", "-o", "name"]).await;
    assert_eq!(
        by_short_name.trim(),
        "imageimport.ecs.image-import.dev/ubuntu"
    );
    let by_category = ok(k, &["get", "alibabacloud", "-A", "-o", "name"]).await;
    assert_eq!(
        by_category.trim(),
        "imageimport.ecs.image-import.dev/ubuntu"
    );

    ok(
        k,
        &[
            "patch",
            "imgimp",
            "ubuntu",
            "-n",
            "imports",
            "--type=merge",
            "-p",
            r#"{"spec":{"diskSizeGiB":30}}"#,
        ],
    )
    .await;
    ok(
        k,
        &[
            "patch",
            "imgimp",
            "ubuntu",
            "-n",
            "imports",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Importing","conditions":[{"type":"Ready","status":"False"}]}}"#,
        ],
    )
    .await;
    let table = ok(k, &["get", "imgimp", "ubuntu", "-n", "imports"]).await;
    assert!(
        table.contains("Importing") && table.contains("False"),
        "{table}"
    );
    let size = ok(
        k,
        &[
            "get",
            "imgimp",
            "ubuntu",
            "-n",
            "imports",
            "-o",
            "jsonpath={.spec.diskSizeGiB}/{.metadata.generation}",
        ],
    )
    .await;
    assert_eq!(size, "30/2");

    let (success, _, stderr) = kubectl(
        k,
        &[
            "patch",
            "imgimp",
            "ubuntu",
            "-n",
            "imports",
            "--type=merge",
            "-p",
            r#"{"spec":{"imageName":"other"}}"#,
        ],
    )
    .await;
    assert!(!success);
    assert!(stderr.contains("imageName is immutable"), "{stderr}");

    ok(k, &["delete", "imgimp", "ubuntu", "-n", "imports"]).await;
    let (_, stdout, stderr) = kubectl(k, &["get", "imgimp", "-n", "imports"]).await;
    assert!(
        stdout.is_empty() && stderr.contains("No resources found"),
        "{stdout}{stderr}"
    );
    ok(k, &["delete", "namespace", "imports"]).await;
    let namespaces = ok(k, &["get", "namespaces", "-o", "name"]).await;
    assert!(!namespaces.contains("imports"), "{namespaces}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_process_serves_kubectl_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_kube-double"))
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(url.trim().starts_with("http://127.0.0.1:"), "{url}");
    let namespaces = ok(&kubeconfig, &["get", "namespaces", "-o", "name"]).await;
    assert!(namespaces.contains("namespace/default"), "{namespaces}");

    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = eventually(PROMPTLY, || {
        let status = child.0.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(status.success(), "{status:?}");
}

/// Ends the standalone process if the test fails before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
