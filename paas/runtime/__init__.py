"""Containers: OCI bundles and config.json (pure), crun/runc driver, cgroup probe, supervision."""
