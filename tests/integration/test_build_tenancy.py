"""An app's build cannot take another app's image from the shared store (FROM, COPY --from, RUN --mount from=,
by tag, digest or id prefix); stacks, its own images and operator images stay usable; `paas build` is unlimited."""

from __future__ import annotations

import pytest

from paas.build.executor import BuildOptions, build
from paas.errors import DockerfileError
from tests.integration.test_build import write


@pytest.fixture
def store_images(ctx, bb_rootfs, tmp_path):
    """`paas/other:v1` holding another app's secret, a stack, and the app's own earlier release."""
    from paas.image.create import image_from_dirs

    secret = tmp_path / "other-layer"
    (secret / "srv").mkdir(parents=True)
    (secret / "srv" / "secret.txt").write_text("other app's secret\n")
    other = image_from_dirs(ctx.store, [bb_rootfs, secret], tag="paas/other:v1", Cmd=["/bin/sh"])
    base = ctx.store.get("bb:1") if _has(ctx, "bb:1") else image_from_dirs(ctx.store, [bb_rootfs], tag="bb:1")
    ctx.store.tag("paas/stack-bb:bookworm", base)
    ctx.store.tag("paas/mine:v1", base)
    return other


def _has(ctx, name: str) -> bool:
    try:
        ctx.store.get_named(name)
        return True
    except Exception:  # noqa: BLE001
        return False


def _build(ctx, context, tenant):
    return build(ctx, BuildOptions(context_dir=context, tags=("paas/mine:v2",), network="none", tenant=tenant,
                                   cache_scope=f"app:{tenant}" if tenant else "local", progress=lambda line: None))


@pytest.mark.parametrize("dockerfile", [
    "FROM paas/other:v1\n",
    "FROM bb:1\nCOPY --from=paas/other:v1 /srv/secret.txt /stolen\n",
    "FROM bb:1\nRUN --mount=type=bind,from=paas/other:v1,target=/o cat /o/srv/secret.txt\n",
    "FROM {digest}\n",
    "FROM {id}\n",
    "FROM {manifest_prefix}\n",
    "FROM paas/other@{digest}\n",
], ids=["from", "copy-from", "mount-from", "digest", "id-prefix", "manifest-prefix", "name-at-digest"])
def test_another_apps_image_is_refused(ctx, bb_image, store_images, tmp_path, dockerfile):
    other = store_images
    text = dockerfile.format(digest=other.digest, id=other.short_id, manifest_prefix=other.digest[7:19])
    context = write(tmp_path / "app", {"Dockerfile": text})
    with pytest.raises(DockerfileError) as info:
        _build(ctx, context, "mine")
    message = info.value.one_line()
    assert "another app's image" in message or "by digest" in message or "not found" in message, message
    assert "secret" not in message
    assert not _has(ctx, "paas/mine:v2")


def test_stacks_own_images_and_operator_images_are_usable(ctx, bb_image, store_images, tmp_path):
    for base in ("paas/stack-bb:bookworm", "paas/mine:v1", "bb:1"):
        context = write(tmp_path / base.replace("/", "_").replace(":", "_"), {"Dockerfile": f"FROM {base}\n"})
        assert _build(ctx, context, "mine").image.name == "paas/mine:v2"


def test_the_operators_own_build_is_not_limited(ctx, bb_image, store_images, tmp_path):
    context = write(tmp_path / "op", {"Dockerfile": "FROM paas/other:v1\n"})
    assert _build(ctx, context, None).image.name == "paas/mine:v2"
