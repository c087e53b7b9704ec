//! Running the operator's work only while this process is the leader: [`while_leader`] starts it
//! on each term, cancels it when leadership is lost or at shutdown, and aborts it after a grace.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{oneshot, watch};

/// Completes when the work it was given to must stop: leadership was lost or the process is
/// shutting down. Pass it to the work as its graceful-shutdown signal.
#[derive(Debug)]
pub struct Cancellation(oneshot::Receiver<()>);

impl Future for Cancellation {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A dropped sender cancels too: nobody is left to say the work may go on.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// How long work under [`while_leader`] may take to stop after its [`Cancellation`] before it is
/// aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopGrace {
    /// After leadership is lost. Keep it below the election's safety margin: the work must be
    /// over before another replica can become leader.
    pub after_loss: Duration,
    /// At shutdown, while the elector still renews the Lease (stop the elector only afterwards),
    /// so in-flight reconciles may finish.
    pub at_shutdown: Duration,
}

/// Aborts the spawned work when dropped, so work never outlives a dropped or aborted
/// [`while_leader`].
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the work `make_work` builds while `leader` says `true`, until `shutdown` completes or the
/// elector is gone.
///
/// Each time leadership is gained, `make_work` is called with a fresh [`Cancellation`] and its
/// future is spawned. When leadership is lost (or on shutdown) the cancellation completes; work
/// still running after the [`StopGrace`] for the case is aborted, and `while_leader` waits until
/// it is gone before it starts the next term or returns. Work that ends on its own is not
/// restarted until leadership is lost and gained again. Dropping this future aborts the work.
pub async fn while_leader<W, F>(
    mut leader: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
    grace: StopGrace,
    mut make_work: W,
) where
    W: FnMut(Cancellation) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // `wait_for`'s guard is dropped inside the future, so this function stays `Send`.
        let gained = tokio::select! {
            biased;
            () = &mut shutdown => return,
            gained = leader.wait_for(|leader| *leader).map(|seen| seen.is_ok()) => gained,
        };
        if !gained {
            return;
        }
        let (cancel, cancelled) = oneshot::channel();
        let mut work = AbortOnDrop(tokio::spawn(make_work(Cancellation(cancelled))));
        let mut ended_on_its_own = false;
        let shutting_down = tokio::select! {
            biased;
            () = &mut shutdown => true,
            _ = leader.wait_for(|leader| !*leader).map(|seen| seen.is_ok()) => false,
            _ = &mut work.0 => {
                ended_on_its_own = true;
                false
            }
        };
        if ended_on_its_own {
            tracing::warn!("leader work ended on its own; waiting for the next term");
            let shutting_down = tokio::select! {
                biased;
                () = &mut shutdown => true,
                _ = leader.wait_for(|leader| !*leader).map(|seen| seen.is_ok()) => false,
            };
            if shutting_down {
                return;
            }
            continue;
        }
        let _ = cancel.send(());
        let limit = if shutting_down {
            grace.at_shutdown
        } else {
            grace.after_loss
        };
        if tokio::time::timeout(limit, &mut work.0).await.is_err() {
            tracing::warn!(
                grace_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                "leader work did not stop in time; aborting it"
            );
            work.0.abort();
            let _ = (&mut work.0).await;
        }
        if shutting_down {
            return;
        }
    }
}
