//! The kubeconfig pointing clients (kube-rs, kubectl) at the double.

/// A kubeconfig with one cluster, user and context, all named `kube-double`.
///
/// The server is plain HTTP on loopback and does no authentication, so the user is empty.
pub(crate) fn render(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-double
  cluster:
    server: {url}
users:
- name: kube-double
  user: {{}}
contexts:
- name: kube-double
  context:
    cluster: kube-double
    user: kube-double
    namespace: default
current-context: kube-double
preferences: {{}}
"
    )
}
