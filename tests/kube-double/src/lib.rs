//! A local Kubernetes API server double, so the real operator (and `kubectl`) can run against
//! something that behaves like an API server on a machine without a cluster.
//!
//! # Use
//!
//! In-process, from a test on a tokio runtime:
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_double::Error> {
//! use std::time::Duration;
//! use kube_double::{FaultAction, FaultRule, Server, ServerOptions};
//!
//! let srv = Server::start(ServerOptions::default()).await?; // 127.0.0.1, free port
//! srv.apply_yaml("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n...")?;
//! let url = srv.url(); // http://127.0.0.1:PORT
//! let kubeconfig = srv.kubeconfig_yaml(); // for kube::config::Kubeconfig::from_yaml or kubectl
//! srv.faults().fail_next(2, "/apis/ecs.image-import.dev/"); // next two requests: 500
//! srv.faults().throttle_next(1, "/apis/", 3); // 429 with Retry-After: 3
//! srv.faults().drop_next(1, "/api/v1/namespaces/default/secrets"); // connection dropped
//! srv.faults().delay("/apis/coordination.k8s.io/", Duration::from_millis(200));
//! srv.faults().add(FaultRule::new("/apis/", FaultAction::Status { code: 503 }).method("PATCH").times(1));
//! srv.faults().close_watches(); // every open watch ends, clients must re-watch
//! srv.faults().clear();
//! let patches = srv.requests().iter().filter(|r| r.method == "PATCH").count(); // request log
//! # Ok(()) }
//! ```
//!
//! Standalone: `cargo run -p kube-double -- --kubeconfig-out FILE [--port N] [--load crd.yaml]...`
//! prints the URL on stdout and serves until SIGTERM or SIGINT. The same fault rules are set over
//! HTTP: `POST /_double/faults` with a JSON [`FaultRule`] (for example
//! `{"pathPrefix":"/apis/","method":"GET","watch":false,"count":2,"action":{"kind":"status","code":500}}`;
//! actions `status{code}`, `tooManyRequests{retryAfterSeconds}`, `drop`, `delay{millis}`),
//! `GET` lists them, `DELETE /_double/faults` clears them, `POST /_double/close-watches`;
//! `GET /_double/requests` returns the request log (the `/_double/` paths are not logged).
//!
//! # Emulated (as the real API server behaves)
//!
//! - Plain HTTP on 127.0.0.1, no authentication or authorization; kube-rs 5 and kubectl (tested
//!   with the `/usr/bin/kubectl` of these machines, v1.33.1) accept the `http://` kubeconfig it
//!   writes.
//! - Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`
//!   in the classic format (kubectl asks for aggregated discovery but accepts this fallback; a client
//!   accepting only aggregated discovery gets `406`), with short names and categories.
//!   `/openapi/v3` lists, per group version, the PATCH operations with the `fieldValidation`
//!   parameter, which is what kubectl checks before it leaves validation to the server.
//! - Built-in kinds: Namespaces (`default`, `kube-system`, `kube-public`, `kube-node-lease` exist at
//!   start), Secrets (`data` stored as given, `stringData` folded into `data`, `type` defaulted to
//!   `Opaque`), ConfigMaps, core v1 Events and `events.k8s.io/v1` Events (one stored resource,
//!   converted field by field between the two versions), `coordination.k8s.io/v1` Leases,
//!   `apiextensions.k8s.io/v1` CustomResourceDefinitions. Creating a CRD serves its versions at
//!   once, with status `NamesAccepted` and `Established`; updating it updates them; deleting it
//!   deletes its custom resources.
//! - Verbs: create, get, list, watch, update (PUT), patch, delete, deletecollection; cluster-scoped
//!   and namespaced kinds; lists across all namespaces; `dryRun=All` (validated, answered, not stored).
//! - Lists: label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`), field selectors
//!   (`metadata.name`, `metadata.namespace`, a CRD's `selectableFields`, and the Event/Secret fields
//!   the real server supports; others are `400`), `limit`/`continue` with `remainingItemCount`, a
//!   continue token from before the history window is `410 Gone`.
//! - etcd's object size limit: a create or update whose stored object would exceed 1.5 MiB
//!   (etcd's default `--max-request-bytes`) is refused with `500` `etcdserver: request is too large`.
//! - One resource version counter for all kinds. Watches (`watch=true|1`): from `resourceVersion`
//!   unset or `0` they start with synthetic ADDED events; from a version still in the bounded event
//!   history ([`ServerOptions::history_limit`]) they replay what followed; from an older one they send
//!   one `ERROR` event holding a `410` `Expired` Status, then end. `allowWatchBookmarks` (periodic
//!   BOOKMARKs, [`ServerOptions::bookmark_interval`]), `sendInitialEvents=true` with
//!   `resourceVersionMatch=NotOlderThan` (the streaming-list mode kube-runtime's
//!   `watcher::Config::streaming_lists` uses; ends with the `k8s.io/initial-events-end` bookmark),
//!   `timeoutSeconds`, label and field selectors (an object leaving the selection is seen as DELETED,
//!   one entering it as ADDED). kube-runtime's default list-then-watch works as is.
//! - Writes: `uid`, `creationTimestamp`, `resourceVersion`; `namespace` defaulted from the URL and a
//!   mismatch refused (`400`); `generateName` (5 random characters); the name format and label keys
//!   and values checked (`422`); a missing namespace is `404`, a terminating one `403`. PUT with a
//!   stale `resourceVersion` is `409 Conflict`;
//!   custom resources refuse updates without one (`422`); a PATCH carrying `resourceVersion` is a
//!   precondition. An update or patch that changes nothing does not change `resourceVersion` and sends
//!   no event. `metadata.generation` (custom resources and CRDs) starts at 1 and rises when anything
//!   but `metadata` (and `status`, with a status subresource) changes, and when `deletionTimestamp` is
//!   set.
//! - Status subresource (when the CRD declares it): status in a create is dropped, writes to the main
//!   resource keep the stored status, writes (PUT, PATCH, apply) to `/status` change only status.
//! - Deletion: without finalizers the object goes at once (DELETED); with finalizers it gets
//!   `deletionTimestamp` (MODIFIED) and goes when an update removes the last finalizer; adding new
//!   finalizers to an object being deleted is `422`. Preconditions (`uid`, `resourceVersion`) in
//!   DeleteOptions. Deleting a namespace marks it `Terminating`, deletes its contents (honouring their
//!   finalizers) and removes it when empty. Custom resources and CRDs answer with the object, other
//!   built-ins with a `Success` Status, as the real server does.
//! - Patches: JSON patch (RFC 6902; a failed `test` is `422`, a `test` for `null` passes on a
//!   missing path as in Go, which kube-runtime's finalizer helper relies on), JSON merge patch,
//!   strategic merge patch for built-in kinds (`415` for custom resources, as on a cluster), and
//!   server-side apply (`application/apply-patch+yaml`, `fieldManager`, `force`), also on
//!   `/status`; apply creates a missing object (`201`) and takes a missing `metadata.name` from
//!   the URL.
//! - `metadata.managedFields`: update operations record the fields a manager changed; apply records
//!   the applied field set, removes fields the manager applied before and no longer applies (unless
//!   another manager owns them), and reports `409` `FieldManagerConflict` when another manager owns a
//!   field being set to a different value, unless `force=true` (which takes ownership).
//! - CRD schemas (`spec.versions[].schema.openAPIV3Schema`) at create, update and patch, judged by
//!   the main crate's `ecs_image_operator::admission` (the one `import -f` judges its files with;
//!   this list and the gaps under "Not emulated" are its): pruning of
//!   unknown fields (an error with `fieldValidation=Strict`, which kubectl sends), pruning of `null`
//!   in non-`nullable` fields, `default`s, and `type`, `enum`, `required`, `minimum`/`maximum` (and
//!   `exclusive*`), `minLength`/`maxLength`, `pattern`, `minItems`/`maxItems`,
//!   `minProperties`/`maxProperties`, `nullable`, `x-kubernetes-int-or-string`,
//!   `x-kubernetes-preserve-unknown-fields`, `x-kubernetes-embedded-resource`, `additionalProperties`,
//!   `allOf`/`anyOf`/`oneOf`/`not`, string `format`s `date-time`, `date`, `uuid`, `ipv4`, `ipv6`,
//!   `byte` (integer formats are not checked, as in Kubernetes). Failures are `422 Invalid` with
//!   `details.causes[]` (`FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
//!   `FieldValueTypeInvalid`, `FieldValueTooLong`, `FieldValueTooMany`) worded as the real server
//!   words them.
//! - CRD checks at create and update: `metadata.name` is `<plural>.<group>`, one storage version,
//!   a `scope`, and a structural schema (object at the root, a `type` on every property, array
//!   `items` and `additionalProperties` unless `x-kubernetes-int-or-string` or
//!   `x-kubernetes-preserve-unknown-fields`; `items` on arrays; no `type`, `default`,
//!   `additionalProperties`, `nullable`, `description` inside `allOf`/`anyOf`/`oneOf`/`not`;
//!   `properties` and `additionalProperties` not both), and CEL rules that parse; otherwise `422`.
//! - CEL `x-kubernetes-validations` with `self` and `oldSelf` (transition rules only on update),
//!   `message`, `messageExpression`, `reason`, `fieldPath`, through the `kube-cel` crate (the
//!   Kubernetes CEL libraries on the `cel` interpreter): `has()`, `size()`, `startsWith`, `endsWith`,
//!   `contains`, `matches`, `all`, `exists`, `exists_one`, `map`, `filter`, `lowerAscii`,
//!   `upperAscii`, `split`, `join`, `indexOf`, list, set, regex, URL, IP, quantity and semver
//!   functions.
//! - Tables (`Accept: ...;as=Table;g=meta.k8s.io;v=v1`) for get, list and watch, with the CRD's
//!   `additionalPrinterColumns` (JSONPath `.a.b`, `[n]`, `[*]`, `[?(@.f=="v")]`; `date` columns as
//!   ages) or `Name`/`Age`, so `kubectl get` and `kubectl get -w` print columns.
//! - `Accept: ...;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` for get, list, watch and
//!   patch responses (kube-rs's `get_metadata`, `list_metadata`, `Api<PartialObjectMeta<K>>`
//!   watchers).
//! - A request log ([`Server::requests`]): method, path, query, content type and status of every
//!   request (`None` for a dropped connection).
//! - kubectl's protobuf bodies for creating Namespaces, Secrets and ConfigMaps (`kubectl create
//!   namespace|secret|configmap`); responses are always JSON, which kubectl accepts.
//!
//! # Not emulated
//!
//! - TLS, authentication, authorization (RBAC), admission webhooks, API priority and fairness,
//!   audit, `selfLink`, HTTP/2, protobuf other than the three creates above, CBOR, YAML responses.
//! - Other kinds (Pods, Deployments, ServiceAccounts, ...), subresources other than `status`
//!   (`scale`, `finalize`, ...), the legacy `/api/v1/watch/` paths, aggregated discovery, the
//!   `/openapi/v2` document and the schemas in `/openapi/v3` (kubectl's explain and client-side
//!   validation do not work; server-side validation does).
//! - Controllers: no garbage collection (`ownerReferences` are stored but dependents are never
//!   deleted; `propagationPolicy` is ignored, no `foregroundDeletion`/`orphan` finalizers),
//!   deleting a CRD deletes its resources at once even if they have finalizers, no CRD conversion
//!   webhooks (all versions of a CRD share one stored object; only `apiVersion` differs).
//! - Consistency: list and get always read the latest state; `resourceVersion` and
//!   `resourceVersionMatch` on a list (`Exact`, `NotOlderThan`) are accepted and ignored, and a
//!   `continue` page shows the current state after the last key rather than a snapshot (its list
//!   `resourceVersion` is the first page's). A watch from a version newer than the latest replays
//!   nothing instead of waiting; `Too large resource version` is never returned.
//! - Server-side apply is a model, not the real structured-merge-diff: every list is atomic (even
//!   `x-kubernetes-list-type: map|set` lists such as conditions, which the real server merges per
//!   key or per item), `fieldsV1` has no `k:`/`v:`/`i:`/`.` entries, removing a manager's last field
//!   in a map also removes maps left empty below the top level, client-supplied `managedFields`
//!   are ignored, and there is no `managedFields` reset or `kubectl-client-side-apply` upgrade.
//!   Strategic merge patch is a JSON merge patch after dropping `$patch`, `$setElementOrder/...`,
//!   `$retainKeys` and `$deleteFromPrimitiveList/...` directives (lists are replaced, not merged
//!   by key).
//! - Schemas: string formats other than those above (`uri`, `hostname`, `email`, `cidr`,
//!   `duration`, ...), `uniqueItems`, `x-kubernetes-list-type` and `x-kubernetes-list-map-keys`
//!   uniqueness, `x-kubernetes-map-type`, CEL cost limits and the `metadata` schema of custom
//!   resources are not checked. Of the structural-schema rules for CRDs,
//!   only those listed above are enforced (not: fields inside junctors must also be specified
//!   outside them; `metadata` may only restrict `name` and `generateName`). CEL gaps are those
//!   of `kube-cel`: no `cel.bind`, `sortBy` or two-variable comprehensions; `optionalOldSelf` is
//!   honoured.
//! - `fieldValidation=Warn` behaves as `Ignore` (no `Warning` header).

mod discovery;
mod error;
mod faults;
mod http;
mod kubeconfig;
mod managed;
mod patch;
mod protobuf;
mod requests;
mod resource;
mod schema;
mod selector;
mod server;
mod store;
mod table;
mod watch;

pub use error::{ApiError, Error};
pub use faults::{FaultAction, FaultRule, Faults};
pub use requests::RecordedRequest;
pub use server::{Server, ServerOptions};
