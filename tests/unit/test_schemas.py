"""What the image store and export write validates against the OCI image-spec JSON schemas.

The schemas (draft-04, `id` not `$id`) live in the shared conformance folder and refer to each other
by relative file name ("content-descriptor.json", "defs-descriptor.json#/definitions/…"), resolved
against the referring schema's id. Every file is registered under its id, its bare file name and the
URI any relative $ref can resolve to, so a reference that still fails to resolve is an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urljoin

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT4

from paas.image import archive
from paas.image.create import image_from_dirs
from tests.conftest import CONFORMANCE, need_conformance

SCHEMA_DIR = CONFORMANCE / "image-spec"
DRAFT4_URI = "http://json-schema.org/draft-04/schema#"


def _load_schemas() -> dict[str, dict]:
    need_conformance(SCHEMA_DIR, module=True)
    return {p.name: json.loads(p.read_text()) for p in sorted(SCHEMA_DIR.glob("*.json"))}


SCHEMAS = _load_schemas()


def _registry() -> Registry:
    bases = {""}
    for contents in SCHEMAS.values():
        stack = [contents]
        while stack:  # every id (top level or nested) is a base a relative $ref may resolve against
            node = stack.pop()
            if isinstance(node, dict):
                if isinstance(node.get("id"), str) and "$ref" not in node:
                    bases.add(node["id"])
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    resources = []
    for name, contents in SCHEMAS.items():
        resource = Resource.from_contents(contents, default_specification=DRAFT4)
        uris = {name} | {urljoin(base, name) for base in bases if base}
        if "id" in contents:
            uris.add(contents["id"])
        resources.extend((uri, resource) for uri in uris)
    return Registry().with_resources(resources)


REGISTRY = _registry()


def validator(schema_file: str) -> jsonschema.Draft4Validator:
    schema = SCHEMAS[schema_file]
    return jsonschema.Draft4Validator(schema, registry=REGISTRY)


def errors(schema_file: str, instance) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator(schema_file).iter_errors(instance)]


def test_schemas_are_draft4():
    """The validator class matches what the schema files declare."""
    declared = {s.get("$schema") for s in SCHEMAS.values() if "$schema" in s}
    assert declared == {DRAFT4_URI}
    for name in ("image-manifest-schema.json", "config-schema.json", "image-index-schema.json",
                 "image-layout-schema.json", "content-descriptor.json"):
        assert name in SCHEMAS
        jsonschema.Draft4Validator.check_schema(SCHEMAS[name])


def test_refs_need_the_registry(ctx, image):
    """The schemas really $ref other files: without our registry validation cannot resolve them."""
    manifest = json.loads(ctx.store.blobs.read_bytes(image.digest))
    with pytest.raises(Unresolvable):
        jsonschema.Draft4Validator(SCHEMAS["image-manifest-schema.json"], registry=Registry()).validate(manifest)


@pytest.fixture
def image(ctx, tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "motd").write_text("hello\n")
    (rootfs / "bin").mkdir()
    (rootfs / "bin" / "sh").write_text("#!/bin/true\n")
    return image_from_dirs(ctx.store, [rootfs], tag="t:1", Cmd=["/bin/sh"], created="2024-01-02T03:04:05Z")


def test_manifest_validates(ctx, image):
    manifest = json.loads(ctx.store.blobs.read_bytes(image.digest))
    assert errors("image-manifest-schema.json", manifest) == []
    assert manifest["layers"] and manifest["config"]["digest"] == image.config_digest


def test_config_validates(ctx, image):
    config = json.loads(ctx.store.blobs.read_bytes(image.config_digest))
    assert errors("config-schema.json", config) == []
    assert config["config"]["Cmd"] == ["/bin/sh"]


def test_store_index_and_layout_validate(ctx, image):
    index = json.loads((ctx.paths.images / "index.json").read_text())
    assert errors("image-index-schema.json", index) == []
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["t:1"]
    layout = json.loads((ctx.paths.images / "oci-layout").read_text())
    assert errors("image-layout-schema.json", layout) == []


def test_empty_store_index_validates(ctx):
    index = json.loads((ctx.store.dir / "index.json").read_text())
    assert index["manifests"] == []
    assert errors("image-index-schema.json", index) == []


def test_export_layout_validates(ctx, image, tmp_path):
    """An exported layout's index.json, oci-layout, manifest and config validate too."""
    dest = archive.export(ctx.store, [("t:1", image)], tmp_path / "export")
    index = json.loads((dest / "index.json").read_text())
    assert errors("image-index-schema.json", index) == []
    assert errors("image-layout-schema.json", json.loads((dest / "oci-layout").read_text())) == []
    manifest_path = Path(dest, "blobs", "sha256", index["manifests"][0]["digest"].split(":")[1])
    manifest = json.loads(manifest_path.read_text())
    assert errors("image-manifest-schema.json", manifest) == []
    config = json.loads(Path(dest, "blobs", "sha256", manifest["config"]["digest"].split(":")[1]).read_text())
    assert errors("config-schema.json", config) == []


def test_validator_rejects_bad_documents(ctx, image):
    """The validator really runs and follows $refs: broken documents fail where expected."""
    manifest = json.loads(ctx.store.blobs.read_bytes(image.digest))
    assert any(e.startswith("schemaVersion") for e in errors("image-manifest-schema.json",
                                                             {**manifest, "schemaVersion": 1}))
    bad_layer = {**manifest["layers"][0], "digest": "sha256:not hex!"}  # checked via content-descriptor.json
    assert any(e.startswith("layers/0/digest") for e in errors("image-manifest-schema.json",
                                                               {**manifest, "layers": [bad_layer]}))
    bad_media = {**manifest["config"], "mediaType": "not a media type"}  # via defs-descriptor.json
    assert any(e.startswith("config/mediaType") for e in errors("image-manifest-schema.json",
                                                                {**manifest, "config": bad_media}))
    index = json.loads((ctx.paths.images / "index.json").read_text())
    index["manifests"][0]["size"] = "12"
    assert any(e.startswith("manifests/0/size") for e in errors("image-index-schema.json", index))
    assert errors("image-layout-schema.json", {"imageLayoutVersion": "2.0.0"})
