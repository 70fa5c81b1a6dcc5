"""Which local images an app's build may name (FROM, COPY --from, RUN --mount from=): pure, no I/O.

The image store is shared by every app: without a rule, a Dockerfile pushed to one app could say
`FROM paas/otherapp:v3` (or name another app's image by digest or id prefix) and copy that app's code and
built secrets. An app's build may use, from the store, images by NAME:TAG only: the stacks (`paas/stack-*`),
its own releases (`paas/APP:*`) and images the operator put there under other names (`images:pull`,
`images:import`); images from a registry are fetched by name and digest as usual. `paas build` of a host path
(the operator) is not limited.
"""

from __future__ import annotations

from ..image.reference import parse

APP_NAMESPACE = "paas/"
STACK_PREFIX = "paas/stack-"


def refused_reference(ref: str, app: str) -> str | None:
    """Why app's build may not use ref from the store, or None when it may. Unparseable refs are left to the
    caller's own error."""
    if ref.startswith("sha256:"):
        return f"{ref[:19]}… names an image by digest; an app's build names local images by NAME:TAG"
    try:
        parsed = parse(ref)
    except Exception:  # noqa: BLE001 - the caller reports the parse error itself
        return None
    if parsed.registry:
        return None  # fetched from that registry, not taken from the store
    if parsed.digest:
        return f"{ref} names a local image by digest; an app's build names local images by NAME:TAG"
    repository = parsed.repository
    if repository.startswith(APP_NAMESPACE) and not repository.startswith(STACK_PREFIX) \
            and repository != f"{APP_NAMESPACE}{app}":
        return f"{ref} is another app's image"
    return None
