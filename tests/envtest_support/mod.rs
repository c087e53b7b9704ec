//! A real Kubernetes API server for tests: etcd and kube-apiserver v1.28 from the folder named by
//! `KUBEBUILDER_ASSETS` (envtest's layout: `kube-apiserver`, `etcd`, `kubectl`, and here also
//! `kube-controller-manager`), started once per test binary on first use.
//!
//! Loopback only, on free ports: TLS with a CA made here by the `openssl` CLI, RBAC, bearer tokens
//! (a `system:masters` token for the test's own calls; ServiceAccount tokens minted through the
//! TokenRequest API for the operator), the operator's CRD from `crds/` installed and established.
//! Each test takes a fresh namespace ([`Envtest::fresh_namespace`]), since the server is shared.
//!
//! Teardown even after a panic: statics are never dropped in Rust, so nothing here relies on
//! `Drop`. Each server runs under a small `sh` supervisor whose stdin is a pipe from the test
//! process; the write end is never closed by us, so it closes when the test process ends, however
//! it ends (normal exit, panic, abort, SIGKILL). The supervisor then sends SIGTERM, SIGKILL after
//! 5 s, waits for its child, and the etcd supervisor removes the temporary folder last.
//! `tests/envtest.rs` proves it by running a child test that panics and checking that every
//! process it started is gone and its folder removed.
#![allow(dead_code)] // each test crate uses its own subset

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// The environment variable that selects the tier: envtest's assets folder.
pub const ASSETS_VAR: &str = "KUBEBUILDER_ASSETS";

/// The admin user's bearer token (group `system:masters`); loopback only, made up per run.
const ADMIN_USER: &str = "envtest-admin";

/// How long the server may take to answer `/readyz` (a loaded 2-core machine is slow).
const READY_PATIENCE: Duration = Duration::from_secs(120);

/// The supervisor: runs `"$@"` in the background with its output in `$LOG`, prints its PID, waits
/// for EOF on stdin (the test process ending), then stops it: SIGTERM, SIGKILL after 5 s. `$CLEAN`,
/// when set, is removed once the child is gone. Polls with `sleep 0.1` rather than a background
/// timer so that nothing outlives the supervisor.
const SUPERVISOR: &str = r#"
"$@" </dev/null >>"$LOG" 2>&1 &
pid=$!
echo "$pid"
cat >/dev/null
kill -TERM "$pid" 2>/dev/null
i=0
while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill -KILL "$pid" 2>/dev/null
wait "$pid"
if [ -n "${CLEAN:-}" ]; then rm -rf "$CLEAN"; fi
"#;

/// One running server shared by every test of the binary.
pub struct Envtest {
    /// The assets folder (`KUBEBUILDER_ASSETS`).
    pub assets: PathBuf,
    /// The temporary folder with certificates, keys, etcd's data and the logs.
    pub dir: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The CA that signed the serving certificate, PEM.
    pub ca_pem: String,
    admin_token: String,
    /// The supervisors' stdin pipes: kept open for the life of the process, on purpose.
    pipes: Mutex<Vec<ChildStdin>>,
    /// PIDs of the supervisors and of the servers they run.
    pids: Mutex<Vec<u32>>,
    namespaces: AtomicU64,
    controller_manager: OnceLock<Result<(), String>>,
}

static ENVTEST: OnceLock<Result<Envtest, String>> = OnceLock::new();

/// Whether the tier is selected: `KUBEBUILDER_ASSETS` names a folder.
pub fn selected() -> bool {
    std::env::var_os(ASSETS_VAR).is_some_and(|v| !v.is_empty())
}

/// The server of this test binary, started on first use; `None` when the tier is not selected.
/// Panics (failing the test) when the server cannot start, with its log tail.
pub fn get() -> Option<&'static Envtest> {
    if !selected() {
        return None;
    }
    match ENVTEST.get_or_init(start) {
        Ok(envtest) => Some(envtest),
        Err(message) => panic!("envtest did not start: {message}"),
    }
}

/// The server, or a line on stdout saying the tier was not selected (the caller then returns).
pub fn get_or_say_why(test: &str) -> Option<&'static Envtest> {
    let envtest = get();
    if envtest.is_none() {
        println!("{test}: {ASSETS_VAR} is not set, the envtest tier was not selected");
    }
    envtest
}

/// A free TCP port on loopback (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

fn run(what: &str, command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The serving certificate for 127.0.0.1 signed by a fresh CA, and the ServiceAccount key pair.
fn make_keys(dir: &Path) -> Result<(), String> {
    let openssl = |args: &[&str]| {
        let mut command = Command::new("openssl");
        command.current_dir(dir).args(args);
        run(&format!("openssl {}", args[0]), &mut command)
    };
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=envtest-ca",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ])?;
    openssl(&["genrsa", "-out", "sa.key", "2048"])?;
    openssl(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    Ok(())
}

/// A random token: 32 bytes from the OS, hex.
fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Envtest {
    /// Starts `program args` under a supervisor (see [`SUPERVISOR`]), logging to `log`; `clean`
    /// is removed once the program has stopped.
    fn supervise(
        &self,
        program: &Path,
        args: &[String],
        log: &str,
        clean: Option<&Path>,
    ) -> Result<(), String> {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("envtest-supervisor")
            .arg(program)
            .args(args)
            .env("LOG", self.dir.join(log))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(clean) = clean {
            command.env("CLEAN", clean);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        self.pipes.lock().unwrap().push(stdin);
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let pid: u32 = line
            .trim()
            .parse()
            .map_err(|_| format!("supervisor of {} said {line:?}", program.display()))?;
        self.pids.lock().unwrap().extend([child.id(), pid]);
        Ok(())
    }

    /// The last lines of a log in the folder, for failure messages.
    pub fn log_tail(&self, log: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join(log)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// PIDs of every supervisor and server started so far.
    pub fn pids(&self) -> Vec<u32> {
        self.pids.lock().unwrap().clone()
    }

    /// A kubeconfig for this server with a bearer token, its default namespace `namespace`.
    pub fn kubeconfig_yaml(&self, token: &str, namespace: &str) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: {url}
    certificate-authority-data: {ca}
users:
- name: envtest
  user:
    token: {token}
contexts:
- name: envtest
  context:
    cluster: envtest
    user: envtest
    namespace: {namespace}
current-context: envtest
preferences: {{}}
",
            url = self.url
        )
    }

    /// The admin kubeconfig (for `kubectl`).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// A client that authenticates with `token`.
    pub async fn client_with_token(&self, token: &str) -> Client {
        ecs_image_operator::ecs::ensure_tls_provider();
        let kubeconfig = Kubeconfig::from_yaml(&self.kubeconfig_yaml(token, "default")).unwrap();
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
        Client::try_from(config).unwrap()
    }

    /// A client in group `system:masters`, for the test's own reads and writes.
    pub async fn admin_client(&self) -> Client {
        self.client_with_token(&self.admin_token).await
    }

    /// The admin token, for a kubeconfig the test writes.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Runs `kubectl` as admin; returns stdout, or stderr as the error.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut child = Command::new(self.assets.join("kubectl"))
            .arg("--kubeconfig")
            .arg(self.admin_kubeconfig())
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("kubectl: {e}"))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(text.as_bytes())
                .map_err(|e| format!("kubectl stdin: {e}"))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| format!("kubectl: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// A namespace nobody else uses on this server: `<prefix>-<n>`, created.
    pub async fn fresh_namespace(&self, prefix: &str) -> String {
        let n = self.namespaces.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}-{n}");
        let namespaces: Api<Namespace> = Api::all(self.admin_client().await);
        let object: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        name
    }

    /// Creates ServiceAccount `name` in `namespace` if missing, and mints a token for it through
    /// the TokenRequest API (one hour).
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> String {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.admin_client().await, namespace);
        if accounts.get_opt(name).await.unwrap().is_none() {
            let object: ServiceAccount =
                serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
            accounts
                .create(&PostParams::default(), &object)
                .await
                .unwrap();
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap()
            .status
            .unwrap()
            .token
    }

    /// Starts kube-controller-manager (namespace deletion, garbage collection, ServiceAccount
    /// tokens), once; for the tests that need those.
    pub fn start_controller_manager(&self) {
        let started = self.controller_manager.get_or_init(|| {
            let d = |file: &str| self.dir.join(file).display().to_string();
            let args = vec![
                format!("--kubeconfig={}", d("admin.kubeconfig")),
                "--controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller".into(),
                format!("--service-account-private-key-file={}", d("sa.key")),
                format!("--root-ca-file={}", d("ca.crt")),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
            ];
            self.supervise(
                &self.assets.join("kube-controller-manager"),
                &args,
                "kube-controller-manager.log",
                None,
            )
        });
        if let Err(message) = started {
            panic!("kube-controller-manager did not start: {message}");
        }
    }
}

/// Starts etcd and kube-apiserver, waits for `/readyz` and installs the CRD.
/// What a server's log says when the port picked for it was taken in the meantime (another test
/// process bound it between [`free_port`] and the server's start).
const PORT_TAKEN: &str = "address already in use";

/// Starts the server, with fresh ports again (up to three times) when a picked port was taken.
fn start() -> Result<Envtest, String> {
    let mut attempt = 1;
    loop {
        match start_once() {
            Err(error) if error.contains(PORT_TAKEN) && attempt < 3 => attempt += 1,
            done => return done,
        }
    }
}

fn start_once() -> Result<Envtest, String> {
    let assets = PathBuf::from(std::env::var_os(ASSETS_VAR).ok_or("no KUBEBUILDER_ASSETS")?);
    for bin in ["kube-apiserver", "etcd", "kubectl"] {
        if !assets.join(bin).exists() {
            return Err(format!("{} has no {bin}", assets.display()));
        }
    }
    // Kept: the etcd supervisor removes it, since nothing is dropped at the end.
    let dir = tempfile::Builder::new()
        .prefix("envtest-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let started = Instant::now();
    make_keys(&dir)?;
    let ca_pem = std::fs::read_to_string(dir.join("ca.crt")).map_err(|e| e.to_string())?;
    let admin_token = random_token();
    std::fs::write(
        dir.join("tokens.csv"),
        format!("{admin_token},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n"),
    )
    .map_err(|e| e.to_string())?;
    let (client_port, peer_port, api_port) = (free_port(), free_port(), free_port());
    let envtest = Envtest {
        assets: assets.clone(),
        dir: dir.clone(),
        url: format!("https://127.0.0.1:{api_port}"),
        ca_pem,
        admin_token,
        pipes: Mutex::new(Vec::new()),
        pids: Mutex::new(Vec::new()),
        namespaces: AtomicU64::new(0),
        controller_manager: OnceLock::new(),
    };
    std::fs::write(
        envtest.admin_kubeconfig(),
        envtest.kubeconfig_yaml(&envtest.admin_token, "default"),
    )
    .map_err(|e| e.to_string())?;

    let d = |file: &str| dir.join(file).display().to_string();
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let etcd = vec![
        "--name=envtest".to_string(),
        format!("--data-dir={}", d("etcd")),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=envtest={peer_url}"),
        "--log-level=warn".into(),
    ];
    // The etcd supervisor removes the folder: it is the last to go (the API server's files are
    // read at start, and its open log survives the removal).
    envtest.supervise(&assets.join("etcd"), &etcd, "etcd.log", Some(&dir))?;
    let apiserver = vec![
        format!("--etcd-servers={client_url}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={api_port}"),
        format!("--cert-dir={}", d("certs")),
        format!("--tls-cert-file={}", d("server.crt")),
        format!("--tls-private-key-file={}", d("server.key")),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={}", d("sa.pub")),
        format!("--service-account-signing-key-file={}", d("sa.key")),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--authorization-mode=RBAC".into(),
        format!("--token-auth-file={}", d("tokens.csv")),
        "--disable-admission-plugins=ServiceAccount".into(),
        "--endpoint-reconciler-type=none".into(),
        "--allow-privileged=false".into(),
    ];
    envtest.supervise(
        &assets.join("kube-apiserver"),
        &apiserver,
        "kube-apiserver.log",
        None,
    )?;

    // Ready: `/readyz` answers 200 (kubectl exits 0).
    let deadline = Instant::now() + READY_PATIENCE;
    loop {
        match envtest.kubectl(&["get", "--raw=/readyz", "--request-timeout=5s"], None) {
            Ok(_) => break,
            Err(error) if Instant::now() >= deadline => {
                return Err(format!(
                    "no /readyz after {READY_PATIENCE:?}: {error}\n{}\n{}",
                    envtest.log_tail("kube-apiserver.log"),
                    envtest.log_tail("etcd.log")
                ));
            }
            Err(error) => {
                let logs = [
                    envtest.log_tail("kube-apiserver.log"),
                    envtest.log_tail("etcd.log"),
                ];
                if logs.iter().any(|log| log.contains(PORT_TAKEN)) {
                    return Err(format!(
                        "a port was taken: {error}\n{}\n{}",
                        logs[0], logs[1]
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    let crd = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/imageimports.ecs.image-import.dev.yaml"
    );
    envtest.kubectl(&["apply", "--server-side", "-f", crd], None)?;
    envtest.kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/imageimports.ecs.image-import.dev",
        ],
        None,
    )?;
    println!(
        "envtest: kube-apiserver at {} ready with the CRD in {:?} ({})",
        envtest.url,
        started.elapsed(),
        dir.display()
    );
    Ok(envtest)
}
