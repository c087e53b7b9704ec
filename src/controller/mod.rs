//! The operator's controller. [`decision`] is the pure heart: what to do for one resource given
//! what ECS reports. [`engine`] observes, decides, acts and concludes, for both shells: the
//! one-shot `import` and this controller ([`reconciler`] under kube-runtime, [`shell`] its side
//! of the engine); [`poller`] follows running imports
//! in batches; [`port`] is the controller's only way to ECS; [`events`] publishes Kubernetes Events;
//! [`finalizers`] adds and removes the resource's finalizer; [`status_writer`] writes status (and a compact one when the full one is refused); [`leader`]
//! elects the one replica that may run it; [`liveness`] tells a wedged run from a healthy one;
//! [`secret_watches`] follows credentials Secrets in the namespaces that let the operator read them;
//! [`secrets_in_use`] keeps a finalizer on each Secret while a resource names it.

pub mod credentials;
pub mod decision;
pub mod engine;
pub mod events;
pub mod finalizers;
pub mod freshness;
pub mod leader;
pub mod liveness;
pub mod poller;
pub mod port;
pub mod reconciler;
pub mod secret_watches;
pub mod secrets_in_use;
pub mod shell;
pub mod status_writer;
pub mod watch;
