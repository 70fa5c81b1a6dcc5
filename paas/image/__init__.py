"""OCI image store: content-addressed blobs, layers with whiteouts, shared snapshots, registry transfer."""
