//! A local Kubernetes API server double (work in progress).
