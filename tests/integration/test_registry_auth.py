"""Registry auth against the real registry: htpasswd (Basic) and token (Bearer) auth."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import subprocess
import threading
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from paas import images
from paas.errors import AuthError
from paas.image.create import image_from_dirs
from tests.conftest import need_tool
from tests.imagekit import busybox_rootfs
from tests.services import start_registry

USER, PASSWORD = "deployer", "s3cret-pass"


def configure(ctx, host: str, **settings) -> None:
    lines = ["registries:", f"  \"{host}\":"] + [f"    {k}: {json.dumps(v)}" for k, v in settings.items()]
    ctx.paths.config_file.write_text("\n".join(lines) + "\n")
    ctx.__dict__.pop("config", None)


@pytest.fixture
def image(ctx, tmp_path):
    return image_from_dirs(ctx.store, [busybox_rootfs(tmp_path / "rootfs")], tag="busybox:1", Cmd=["/bin/sh"])


@pytest.fixture
def basic_registry(tmp_path):
    need_tool("htpasswd")
    htpasswd = tmp_path / "htpasswd"
    line = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True)
    htpasswd.write_text(line.stdout)
    reg = start_registry(tmp_path / "basic", htpasswd=htpasswd)
    yield reg
    reg.stop()


def test_basic_auth(ctx, image, basic_registry):
    ref = f"{basic_registry.host}/private/busybox:1"
    with pytest.raises(AuthError, match="requires a username and password"):
        images.push(ctx, "busybox:1", ref)
    configure(ctx, basic_registry.host, username=USER, password="wrong")
    with pytest.raises(AuthError, match="denied|refused"):
        images.push(ctx, "busybox:1", ref)
    configure(ctx, basic_registry.host, username=USER, password=PASSWORD)
    assert images.push(ctx, "busybox:1", ref)["digest"] == image.digest
    ctx.store.untag("busybox:1")
    images.collect_garbage(ctx)
    assert images.pull(ctx, ref)["digest"] == image.digest


# -- bearer tokens: a token service signing JWTs with a cert the registry trusts ---------------

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """Issues registry JWTs (RS256, x5c) to clients that present USER/PASSWORD."""

    service, issuer = "paas-test-registry", "paas-test-issuer"

    def __init__(self, workdir):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "paas test token signer")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_file = workdir / "token-signer.pem"
        self.cert_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[dict] = []
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = parse_qs(urlsplit(self.path).query)
                service.requests.append(query)
                auth = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if auth != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": service.token(query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(dt.datetime.now(dt.UTC).timestamp())
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        claims = {"iss": self.issuer, "sub": USER, "aud": self.service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token_registry(tmp_path):
    pytest.importorskip("cryptography")
    tokens = TokenService(tmp_path)
    reg = start_registry(tmp_path / "token", token={"realm": tokens.realm, "service": tokens.service,
                                                     "issuer": tokens.issuer, "rootcertbundle": tokens.cert_file})
    yield reg, tokens
    reg.stop()
    tokens.close()


def test_bearer_token_auth(ctx, image, token_registry):
    reg, tokens = token_registry
    ref = f"{reg.host}/team/busybox:1"
    with pytest.raises(AuthError, match="refused our credentials"):
        images.push(ctx, "busybox:1", ref)
    configure(ctx, reg.host, username=USER, password=PASSWORD)
    assert images.push(ctx, "busybox:1", ref)["digest"] == image.digest
    assert any(q.get("scope") == ["repository:team/busybox:pull,push"] for q in tokens.requests)
    assert all(q.get("service") == [tokens.service] for q in tokens.requests)
    # cross-repository mount asks for both scopes in one token
    second = images.push(ctx, "busybox:1", f"{reg.host}/other/busybox:1")
    assert second["mounted"]
    assert any(sorted(q.get("scope", [])) == ["repository:other/busybox:pull,push", "repository:team/busybox:pull"]
               for q in tokens.requests)
    ctx.store.untag("busybox:1")
    images.collect_garbage(ctx)
    assert images.pull(ctx, ref)["digest"] == image.digest
