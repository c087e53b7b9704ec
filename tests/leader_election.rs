//! Leader election against the Kubernetes API double: never two leaders, a quick hand-over on
//! release, a takeover only after expiry when the leader dies, and a leader cut off from the API
//! server stepping down before anyone else steps up. Also `while_leader`'s start, cancel and abort.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecs_image_operator::controller::leader::{LeaderElector, LeaseConfig, StopGrace, while_leader};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use kube_double::{FaultAction, FaultRule, Server, ServerOptions};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

const NAMESPACE: &str = "default";
const LEASE: &str = "ecs-image-operator";
const LEASE_DURATION: Duration = Duration::from_secs(2);
const RENEW: Duration = Duration::from_millis(500);
const RETRY: Duration = Duration::from_millis(200);
const MARGIN: Duration = Duration::from_millis(500);
/// Scheduling and HTTP slack on a shared two-core machine.
const SLACK: Duration = Duration::from_millis(400);

fn lease_config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        lease_duration: LEASE_DURATION,
        renew_interval: RENEW,
        retry_interval: RETRY,
        safety_margin: MARGIN,
        ..LeaseConfig::new(NAMESPACE, LEASE, identity)
    }
}

async fn config(server: &Server) -> Config {
    ecs_image_operator::ecs::ensure_tls_provider();
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).unwrap();
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap()
}

async fn client(server: &Server) -> Client {
    Client::try_from(config(server).await).unwrap()
}

/// A client whose every request goes through `proxy`.
async fn client_via(server: &Server, proxy: SocketAddr) -> Client {
    let mut config = config(server).await;
    config.cluster_url = format!("http://{proxy}").parse().unwrap();
    Client::try_from(config).unwrap()
}

/// Leadership transitions of one elector, with the instant each was seen.
type Transitions = Arc<Mutex<Vec<(Instant, bool)>>>;

struct Candidate {
    leader: watch::Receiver<bool>,
    transitions: Transitions,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Candidate {
    fn start(client: Client, identity: &str) -> Self {
        let elector = LeaderElector::new(client, lease_config(identity)).unwrap();
        let leader = elector.subscribe();
        let transitions: Transitions = Arc::default();
        let mut watching = elector.subscribe();
        let log = Arc::clone(&transitions);
        tokio::spawn(async move {
            while watching.changed().await.is_ok() {
                let value = *watching.borrow_and_update();
                log.lock().unwrap().push((Instant::now(), value));
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(elector.run(async move {
            let _ = stopped.await;
        }));
        Self {
            leader,
            transitions,
            stop: Some(stop),
            task,
        }
    }

    fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Waits until the elector reports `value`; false if it did not within `limit`.
    async fn reaches(&mut self, value: bool, limit: Duration) -> bool {
        matches!(
            timeout(limit, self.leader.wait_for(|v| *v == value)).await,
            Ok(Ok(_))
        )
    }

    /// The first instant at or after `since` when the elector reported `value`, waiting briefly
    /// for the recording task to catch up with a transition already seen elsewhere.
    async fn first(&self, value: bool, since: Instant) -> Option<Instant> {
        let find = || {
            self.transitions
                .lock()
                .unwrap()
                .iter()
                .find(|(at, v)| *v == value && *at >= since)
                .map(|(at, _)| *at)
        };
        let mut found = find();
        let asked = Instant::now();
        while found.is_none() && asked.elapsed() < Duration::from_millis(500) {
            sleep(Duration::from_millis(5)).await;
            found = find();
        }
        found
    }

    /// Graceful shutdown: the elector releases the Lease and returns.
    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the elector stops within 5 s")
            .unwrap();
    }
}

/// Polls `condition` until it holds (true) or `limit` has passed (false).
async fn eventually(limit: Duration, condition: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        sleep(Duration::from_millis(10)).await;
    }
    condition()
}

async fn lease(client: &Client) -> Lease {
    Api::<Lease>::namespaced(client.clone(), NAMESPACE)
        .get(LEASE)
        .await
        .unwrap()
}

/// When the Lease expires for other candidates (`renewTime + leaseDurationSeconds`), on the
/// monotonic clock the transitions are recorded with.
fn expiry(lease: &Lease) -> Instant {
    let spec = lease.spec.as_ref().unwrap();
    let renewed = spec.renew_time.as_ref().unwrap().0;
    let seconds = i64::from(spec.lease_duration_seconds.unwrap());
    let expires = renewed + jiff::SignedDuration::from_secs(seconds);
    let (now, wall) = (Instant::now(), jiff::Timestamp::now());
    let ahead = wall.duration_until(expires);
    if ahead.is_negative() {
        now - ahead.unsigned_abs()
    } else {
        now + ahead.unsigned_abs()
    }
}

fn holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref().and_then(|s| s.holder_identity.clone())
}

/// A loopback TCP proxy that can cut every connection through it, as a network partition would.
struct Proxy {
    address: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (cut, _) = watch::channel(false);
        let cut_for_accept = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut is_cut = cut_for_accept.subscribe();
                if *is_cut.borrow() {
                    continue; // dropping the socket refuses the connection
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = is_cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { address, cut }
    }

    fn partition(&self) {
        self.cut.send_replace(true);
    }

    fn heal(&self) {
        self.cut.send_replace(false);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_candidates_never_lead_at_once() {
    let server = Server::start(ServerOptions::default()).await.unwrap();
    let a = Candidate::start(client(&server).await, "a");
    let b = Candidate::start(client(&server).await, "b");
    assert!(
        eventually(Duration::from_secs(2), || a.is_leader() || b.is_leader()).await,
        "nobody became leader"
    );

    let started = Instant::now();
    let mut samples = 0;
    let mut both = 0;
    let mut neither = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let (la, lb) = (a.is_leader(), b.is_leader());
        samples += 1;
        both += usize::from(la && lb);
        neither += usize::from(!la && !lb);
        sleep(Duration::from_millis(5)).await;
    }
    assert!(samples > 200, "too few samples: {samples}");
    assert_eq!(both, 0, "two leaders in {both} of {samples} samples");
    // Without faults the first leader renews in time, so leadership never lapses.
    assert_eq!(neither, 0, "no leader in {neither} of {samples} samples");

    let lease = lease(&client(&server).await).await;
    let expected = if a.is_leader() { "a" } else { "b" };
    assert_eq!(holder(&lease).as_deref(), Some(expected));
    assert_eq!(lease.spec.as_ref().unwrap().lease_duration_seconds, Some(2));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_racing_for_an_expired_lease_cannot_both_win() {
    let server = Server::start(ServerOptions::default()).await.unwrap();
    let api = Api::<Lease>::namespaced(client(&server).await, NAMESPACE);
    let long_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    api.create(
        &Default::default(),
        &Lease {
            metadata: kube::api::ObjectMeta {
                name: Some(LEASE.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("crashed".into()),
                lease_duration_seconds: Some(2),
                renew_time: Some(MicroTime(long_ago)),
                lease_transitions: Some(4),
                ..Default::default()
            }),
        },
    )
    .await
    .unwrap();
    // Slow writes: both candidates read the expired Lease before either write lands, so both
    // write against the same resourceVersion and only the API server can pick one.
    server.faults().add(
        FaultRule::new(
            "/apis/coordination.k8s.io/",
            FaultAction::Delay { millis: 300 },
        )
        .method("PUT"),
    );
    server.clear_requests();
    let a = Candidate::start(client(&server).await, "a");
    let b = Candidate::start(client(&server).await, "b");

    let started = Instant::now();
    let mut both = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        both += usize::from(a.is_leader() && b.is_leader());
        sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(both, 0, "both candidates led at once");
    assert!(
        a.is_leader() || b.is_leader(),
        "nobody took the expired lease"
    );
    let writes: Vec<Option<u16>> = server
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with(LEASE))
        .map(|r| r.status)
        .take(2)
        .collect();
    assert_eq!(writes.len(), 2);
    assert!(
        writes.contains(&Some(200)) && writes.contains(&Some(409)),
        "the racing writes were answered {writes:?}"
    );
    let lease = lease(&client(&server).await).await;
    assert_eq!(lease.spec.as_ref().unwrap().lease_transitions, Some(5));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_taken_over_at_once() {
    let server = Server::start(ServerOptions::default()).await.unwrap();
    let mut first = Candidate::start(client(&server).await, "first");
    assert!(first.reaches(true, Duration::from_secs(2)).await);
    let mut second = Candidate::start(client(&server).await, "second");
    sleep(Duration::from_millis(600)).await;
    assert!(!second.is_leader(), "the second took a lease that was held");

    let released = Instant::now();
    first.shutdown().await;
    assert!(
        second.reaches(true, LEASE_DURATION).await,
        "no takeover within a lease duration of the release"
    );
    // Released, not expired: the successor waits for its next retry, not for the expiry.
    let took = released.elapsed();
    assert!(
        took < RETRY + SLACK + Duration::from_millis(300),
        "takeover after a release took {took:?}"
    );
    let lease = lease(&client(&server).await).await;
    assert_eq!(holder(&lease).as_deref(), Some("second"));
    assert_eq!(lease.spec.as_ref().unwrap().lease_transitions, Some(1));
    second.shutdown().await;
    let after = self::lease(&client(&server).await).await;
    assert_eq!(holder(&after), None, "shutdown released the lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leader_is_replaced_only_after_its_lease_expires() {
    let server = Server::start(ServerOptions::default()).await.unwrap();
    let mut first = Candidate::start(client(&server).await, "first");
    assert!(first.reaches(true, Duration::from_secs(2)).await);
    let mut second = Candidate::start(client(&server).await, "second");
    sleep(Duration::from_millis(300)).await;

    // A crash: no release, the Lease must expire on its own.
    first.task.abort();
    let died = Instant::now();
    assert!(
        second
            .reaches(true, LEASE_DURATION + RETRY + SLACK + SLACK)
            .await,
        "no takeover within about a lease duration"
    );
    let took = died.elapsed();
    // The last renewal was at most one renew interval before the crash.
    assert!(
        took >= LEASE_DURATION - RENEW - Duration::from_millis(100),
        "the lease was taken {took:?} after the crash, before it could have expired"
    );
    assert_eq!(
        holder(&lease(&client(&server).await).await).as_deref(),
        Some("second")
    );
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_steps_down_before_another_steps_up() {
    let server = Server::start(ServerOptions::default()).await.unwrap();
    let proxy = Proxy::start(server.addr()).await;
    let mut cut_off = Candidate::start(client_via(&server, proxy.address).await, "cut-off");
    assert!(cut_off.reaches(true, Duration::from_secs(2)).await);
    let mut other = Candidate::start(client(&server).await, "other");
    sleep(Duration::from_millis(300)).await;
    assert!(!other.is_leader());

    let partitioned = Instant::now();
    proxy.partition();
    // What the cut-off leader last managed to write, hence when others may take over.
    sleep(Duration::from_millis(100)).await;
    let frozen = lease(&client(&server).await).await;
    assert_eq!(holder(&frozen).as_deref(), Some("cut-off"));
    let expiry = expiry(&frozen);
    assert!(
        other
            .reaches(true, LEASE_DURATION + RETRY + SLACK + SLACK)
            .await,
        "the other candidate never took over"
    );
    let stepped_down = cut_off
        .first(false, partitioned)
        .await
        .expect("the cut-off leader never reported losing leadership");
    let stepped_up = other.first(true, partitioned).await.unwrap();
    assert!(
        stepped_down < stepped_up,
        "the cut-off leader stepped down {:?} after the other stepped up",
        stepped_down - stepped_up
    );
    assert!(
        stepped_down + MARGIN / 2 <= expiry,
        "stepped down only {:?} before the lease expired",
        expiry.saturating_duration_since(stepped_down)
    );
    // It held on through failed renewals until its own deadline, not at the first error.
    let held_for = stepped_down - partitioned;
    assert!(
        held_for >= LEASE_DURATION - MARGIN - RENEW - Duration::from_millis(100),
        "stepped down after {held_for:?}, before its deadline"
    );
    assert!(
        held_for <= LEASE_DURATION - MARGIN + SLACK,
        "stepped down after {held_for:?}, past its deadline"
    );

    // Back on the network it finds the Lease taken and stays a follower.
    proxy.heal();
    sleep(Duration::from_secs(1)).await;
    assert!(!cut_off.is_leader());
    assert!(other.is_leader());
    other.shutdown().await;
    cut_off.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_lease_calls_end_leadership_at_the_deadline_and_nobody_takes_over() {
    let server = Server::start(ServerOptions::default()).await.unwrap();
    let mut a = Candidate::start(client(&server).await, "a");
    assert!(a.reaches(true, Duration::from_secs(2)).await);
    let b = Candidate::start(client(&server).await, "b");
    sleep(Duration::from_millis(300)).await;

    let failing = Instant::now();
    // Reads still work, so both see the Lease; no write goes through.
    server.faults().add(
        FaultRule::new(
            "/apis/coordination.k8s.io/",
            FaultAction::Status { code: 500 },
        )
        .method("PUT"),
    );
    sleep(Duration::from_millis(100)).await;
    let expiry = expiry(&lease(&client(&server).await).await);
    assert!(
        a.reaches(false, LEASE_DURATION).await,
        "the leader kept leading without renewals"
    );
    let stepped_down = a.first(false, failing).await.unwrap();
    assert!(
        stepped_down + MARGIN / 2 <= expiry,
        "stepped down only {:?} before the lease expired",
        expiry.saturating_duration_since(stepped_down)
    );
    let held_for = failing.elapsed();
    assert!(
        held_for >= LEASE_DURATION - MARGIN - RENEW - Duration::from_millis(100),
        "stepped down after {held_for:?}, at an error rather than at its deadline"
    );
    // Nobody can write the Lease, so nobody may lead.
    sleep(LEASE_DURATION).await;
    assert!(!a.is_leader() && !b.is_leader());
    assert_eq!(b.first(true, failing).await, None);

    server.faults().clear();
    assert!(
        eventually(Duration::from_secs(2), || a.is_leader() || b.is_leader()).await,
        "nobody led once the API server recovered"
    );
    assert!(!(a.is_leader() && b.is_leader()));
    a.shutdown().await;
    b.shutdown().await;
}

/// What the work under `while_leader` did, in order.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Started(u32),
    Cancelled(u32),
}

/// The next event within 2 s.
async fn next(seen: &mut mpsc::UnboundedReceiver<Event>) -> Option<Event> {
    timeout(Duration::from_secs(2), seen.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn work_runs_only_while_leader_and_is_cancelled_then_aborted() {
    let (leader, leading) = watch::channel(false);
    let (events, mut seen) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let mut term = 0;
    // The first term's work honours its cancellation; the second ignores it and must be aborted.
    let runner = tokio::spawn(while_leader(
        leading,
        async move {
            let _ = stopped.await;
        },
        StopGrace {
            after_loss: Duration::from_millis(200),
            at_shutdown: Duration::from_millis(400),
        },
        move |cancelled| {
            term += 1;
            let events = events.clone();
            let this = term;
            async move {
                let _ = events.send(Event::Started(this));
                if this == 1 {
                    cancelled.await;
                    let _ = events.send(Event::Cancelled(this));
                } else {
                    // Ignores the cancellation; only an abort ends it.
                    std::future::pending::<()>().await;
                }
            }
        },
    ));

    sleep(Duration::from_millis(100)).await;
    assert!(seen.try_recv().is_err(), "work started without leadership");
    leader.send_replace(true);
    assert_eq!(next(&mut seen).await, Some(Event::Started(1)));
    leader.send_replace(false);
    assert_eq!(next(&mut seen).await, Some(Event::Cancelled(1)));

    leader.send_replace(true);
    assert_eq!(next(&mut seen).await, Some(Event::Started(2)));
    let lost = Instant::now();
    leader.send_replace(false);
    // The stubborn work is aborted after the grace, so a third term can start.
    sleep(Duration::from_millis(50)).await;
    leader.send_replace(true);
    assert_eq!(next(&mut seen).await, Some(Event::Started(3)));
    assert!(
        lost.elapsed() >= Duration::from_millis(200),
        "a new term began before the old work was aborted"
    );

    let shutting_down = Instant::now();
    let _ = stop.send(());
    timeout(Duration::from_secs(2), runner)
        .await
        .expect("while_leader returns on shutdown")
        .unwrap();
    // The stubborn third term had the longer shutdown grace before its abort.
    assert!(
        shutting_down.elapsed() >= Duration::from_millis(400),
        "aborted after {:?}",
        shutting_down.elapsed()
    );
    assert!(seen.recv().await.is_none(), "work outlived while_leader");
}

#[tokio::test]
async fn dropping_while_leader_aborts_its_work() {
    let (_leader, leading) = watch::channel(true);
    let (events, mut seen) = mpsc::unbounded_channel::<Event>();
    let runner = tokio::spawn(while_leader(
        leading,
        std::future::pending(),
        StopGrace {
            after_loss: Duration::from_secs(10),
            at_shutdown: Duration::from_secs(10),
        },
        move |_cancelled| {
            let events = events.clone();
            async move {
                let _ = events.send(Event::Started(1));
                std::future::pending::<()>().await;
            }
        },
    ));
    assert_eq!(next(&mut seen).await, Some(Event::Started(1)));
    runner.abort();
    // The work held the last sender: it is gone once the work is.
    let gone = timeout(Duration::from_secs(1), seen.recv()).await;
    assert_eq!(gone, Ok(None), "the work survived its while_leader");
}

/// Only a `Send + 'static` future can be handed to `tokio::spawn`.
fn spawnable<F: std::future::Future + Send + 'static>(_: &F) {}

#[tokio::test]
async fn the_controller_runs_under_while_leader_as_run_wires_it() {
    use ecs_image_operator::controller::reconciler::Settings;
    use ecs_image_operator::ecs::{ClientConfig, EcsClient};

    let server = Server::start(ServerOptions::default()).await.unwrap();
    let client = client(&server).await;
    let ecs = Arc::new(EcsClient::new(ClientConfig::default()).unwrap());
    let settings = Settings {
        namespaces: Vec::new(),
        timing: Default::default(),
        concurrency: 1,
        default_credentials: None,
        reporter: "test".into(),
        metrics: ecs_image_operator::metrics::Metrics::new(),
        watching: std::sync::Arc::default(),
        liveness: Default::default(),
        secret_access: Default::default(),
        uploads: None,
    };
    let (_leader, leading) = watch::channel(false);
    // The cancellation is what the controller takes as its graceful-shutdown signal.
    let guarded = while_leader(
        leading,
        std::future::ready(()),
        StopGrace {
            after_loss: Duration::from_secs(1),
            at_shutdown: Duration::from_secs(10),
        },
        move |cancelled| {
            ecs_image_operator::controller::watch::run(
                client.clone(),
                Arc::clone(&ecs),
                settings.clone(),
                cancelled,
            )
        },
    );
    spawnable(&guarded);
    // Shut down before leadership ever came: the controller never starts and this returns.
    timeout(Duration::from_secs(1), guarded)
        .await
        .expect("while_leader returns at once on shutdown");
}
