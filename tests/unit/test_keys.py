"""SSH keys: parsing authorized_keys lines (checked against ssh-keygen), the ssh_keys table, the CLI."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paas import keys
from paas.errors import NotFound, UserError
from tests.conftest import need_tool, run_paas

KINDS = {  # name: ssh-keygen arguments
    "ed25519": ["-t", "ed25519"],
    "ecdsa256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa384": ["-t", "ecdsa", "-b", "384"],
    "ecdsa521": ["-t", "ecdsa", "-b", "521"],
    "rsa2048": ["-t", "rsa", "-b", "2048"],
    "rsa1024": ["-t", "rsa", "-b", "1024"],
    "ed25519-b": ["-t", "ed25519"],
}


@pytest.fixture(scope="module")
def keyfiles(tmp_path_factory):
    """One key pair of each kind, made once: {name: path of the private key} (.pub next to it)."""
    need_tool("ssh-keygen")
    folder = tmp_path_factory.mktemp("keys")
    made = {}
    for name, args in KINDS.items():
        path = folder / name
        subprocess.run(["ssh-keygen", *args, "-N", "", "-q", "-C", f"{name}@test host", "-f", str(path)],
                       check=True, stdin=subprocess.DEVNULL)
        made[name] = path
    return made


def pub(keyfiles, name: str) -> str:
    return keyfiles[name].with_suffix(".pub").read_text()


def ssh_keygen_fingerprint(path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(path)], check=True, capture_output=True, text=True).stdout
    return out.split()[1]


def error_of(text: str) -> str:
    with pytest.raises(UserError) as info:
        keys.parse_public_key(text)
    return info.value.one_line()


# -- parsing -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, key_type", [
    ("ed25519", "ssh-ed25519"),
    ("ecdsa256", "ecdsa-sha2-nistp256"),
    ("ecdsa384", "ecdsa-sha2-nistp384"),
    ("ecdsa521", "ecdsa-sha2-nistp521"),
    ("rsa2048", "ssh-rsa"),
])
def test_parse_valid_keys_with_ssh_keygen_fingerprint(keyfiles, name, key_type):
    parsed = keys.parse_public_key(pub(keyfiles, name))
    assert parsed.type == key_type
    assert parsed.comment == f"{name}@test host"
    assert parsed.fingerprint == ssh_keygen_fingerprint(keyfiles[name].with_suffix(".pub"))
    assert parsed.line == pub(keyfiles, name).strip()


def test_parse_tolerates_spacing_comments_and_no_comment(keyfiles):
    key_type, blob, _ = pub(keyfiles, "ed25519").split(None, 2)
    parsed = keys.parse_public_key(f"# my laptop\n\n  {key_type}\t{blob}   \n")
    assert (parsed.type, parsed.blob_b64, parsed.comment) == (key_type, blob, "")
    assert parsed.line == f"{key_type} {blob}"


def test_fingerprint_format():
    blob = b"\x00\x00\x00\x0bssh-ed25519" + b"\x00\x00\x00\x20" + bytes(32)
    fp = keys.fingerprint(blob)
    assert fp.startswith("SHA256:") and not fp.endswith("=") and len(fp) == 7 + 43


@pytest.mark.parametrize("text, expected", [
    ("", "no SSH public key given"),
    ("hello world", "not an SSH public key"),
    ("ssh-ed25519", "has no base64 data"),
    ("ssh-ed25519 AAAA$$$$ me", "not valid base64"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE me", "not valid base64"),  # bad padding
    ("ssh-dss AAAAB3NzaC1kc3M= me", "DSA keys are not supported"),
    ("sk-ssh-ed25519@openssh.com AAAA me", "security-key (sk-*) keys are not supported"),
    ("ssh-ed25519-cert-v01@openssh.com AAAA me", "certificates are not supported"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
     "this is a private key"),
    ("---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----\n", "RFC 4716"),
])
def test_parse_refuses_with_a_reason(text, expected):
    assert expected in error_of(text)


def test_parse_refuses_options_prefix(keyfiles):
    line = 'command="/bin/sh",no-pty ' + pub(keyfiles, "ed25519")
    assert "options before the key type" in error_of(line)


def test_parse_refuses_two_keys(keyfiles):
    assert "holds 2 lines" in error_of(pub(keyfiles, "ed25519") + pub(keyfiles, "ecdsa256"))


def test_parse_refuses_type_mismatch(keyfiles):
    _, blob, comment = pub(keyfiles, "ed25519").split(None, 2)
    message = error_of(f"ssh-rsa {blob} {comment}")
    assert "key type mismatch" in message and "ssh-ed25519" in message


def test_parse_refuses_truncated_and_padded_blobs(keyfiles):
    key_type, blob, _ = pub(keyfiles, "ed25519").split(None, 2)
    raw = base64.b64decode(blob)
    for mangled in (raw[:-4], raw + b"\x00\x00\x00\x01x", raw[:-1]):
        assert "is not a valid ssh-ed25519 key" in error_of(f"{key_type} {base64.b64encode(mangled).decode()}")


def test_parse_refuses_ecdsa_with_wrong_curve(keyfiles):
    _, blob, _ = pub(keyfiles, "ecdsa256").split(None, 2)
    raw = base64.b64decode(blob).replace(b"ecdsa-sha2-nistp256", b"ecdsa-sha2-nistp384", 1)
    assert "not a valid ecdsa-sha2-nistp384 key" in error_of(f"ecdsa-sha2-nistp384 {base64.b64encode(raw).decode()}")


def test_parse_refuses_short_rsa(keyfiles):
    message = error_of(pub(keyfiles, "rsa1024"))
    assert "RSA key of 1024 bits is too short" in message and "ssh-keygen -t ed25519" in message


def test_parse_refuses_a_compressed_ecdsa_point(keyfiles):
    """A well-formed key that OpenSSH does not write (a compressed point) is refused, not stored re-encoded."""
    _, blob, _ = pub(keyfiles, "ecdsa256").split(None, 2)
    raw = base64.b64decode(blob)
    point = raw[-65:]
    compressed = bytes([2 + point[-1] % 2]) + point[1:33]
    mangled = raw[:-69] + len(compressed).to_bytes(4, "big") + compressed
    line = f"ecdsa-sha2-nistp256 {base64.b64encode(mangled).decode()}"
    assert "not a valid ecdsa-sha2-nistp256 key" in error_of(line)


@settings(database=None, max_examples=200, deadline=None)
@given(kind=st.sampled_from(["ed25519", "ecdsa256", "ecdsa521", "rsa2048"]), cut=st.integers(0, 600),
       flips=st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)), max_size=4), tail=st.binary(max_size=12))
def test_mangled_key_data_is_a_key_or_a_one_line_error(keyfiles, kind, cut, flips, tail):
    """Whatever the bytes, parsing gives a key whose fingerprint is that of its data, or a UserError: never
    another exception from the key library."""
    key_type, blob, _ = pub(keyfiles, kind).split(None, 2)
    raw = bytearray(base64.b64decode(blob)[:cut])
    for at, value in flips:
        if at < len(raw):
            raw[at] = value
    data = bytes(raw) + tail
    try:
        parsed = keys.parse_public_key(f"{key_type} {base64.b64encode(data).decode()}")
    except UserError as exc:
        assert "\n" not in exc.one_line()
    else:
        assert parsed.fingerprint == keys.fingerprint(data) and parsed.type == key_type


@pytest.mark.parametrize("name", ["alice", "alice@laptop", "ci.deploy-key_2", "x" * 64])
def test_valid_names(name):
    assert keys.check_key_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, "has space", "a/b", "semi;colon", "ünïcode"])
def test_invalid_names(name):
    with pytest.raises(UserError, match="invalid SSH key name"):
        keys.check_key_name(name)


# -- the ssh_keys table --------------------------------------------------------------------------------

@pytest.fixture
def ctx(ctx):
    """The state DB with the users the keys below belong to."""
    from paas.access.store import add_user

    add_user(ctx.conn, "alice", "admin")
    add_user(ctx.conn, "bob", "member")
    return ctx


def test_add_list_remove(ctx, keyfiles):
    added = keys.add_key(ctx.conn, "alice", pub(keyfiles, "ed25519"), "alice")
    keys.add_key(ctx.conn, "bob", pub(keyfiles, "rsa2048"), "bob")
    assert added["name"] == "alice" and added["type"] == "ssh-ed25519"
    listed = keys.list_keys(ctx.conn)
    assert [k["name"] for k in listed] == ["alice", "bob"]
    assert listed[0] == added
    assert listed[0]["fingerprint"] == ssh_keygen_fingerprint(keyfiles["ed25519"].with_suffix(".pub"))
    assert listed[1]["comment"] == "rsa2048@test host" and listed[1]["created_at"].endswith("Z")
    keys.remove_key(ctx.conn, "alice")
    assert [k["name"] for k in keys.list_keys(ctx.conn)] == ["bob"]


def test_duplicate_name_refused(ctx, keyfiles):
    keys.add_key(ctx.conn, "alice", pub(keyfiles, "ed25519"), "alice")
    with pytest.raises(UserError, match="an SSH key named alice already exists"):
        keys.add_key(ctx.conn, "alice", pub(keyfiles, "ed25519-b"), "alice")


def test_same_key_under_another_name_refused_naming_it(ctx, keyfiles):
    keys.add_key(ctx.conn, "alice", pub(keyfiles, "ed25519"), "alice")
    with pytest.raises(UserError) as info:
        keys.add_key(ctx.conn, "alice2", pub(keyfiles, "ed25519").replace("ed25519@test host", "other comment"),
                     "alice")
    assert "already registered as alice" in info.value.one_line()
    assert [k["name"] for k in keys.list_keys(ctx.conn)] == ["alice"]


def test_bad_input_stores_nothing(ctx):
    with pytest.raises(UserError):
        keys.add_key(ctx.conn, "alice", "ssh-ed25519 garbage", "alice")
    with pytest.raises(UserError):
        keys.add_key(ctx.conn, "bad name", "ssh-ed25519 garbage", "alice")
    assert keys.list_keys(ctx.conn) == []


def test_remove_unknown_is_not_found(ctx):
    with pytest.raises(NotFound, match="no SSH key named ghost"):
        keys.remove_key(ctx.conn, "ghost")


def test_key_name_for(ctx, keyfiles):
    keys.add_key(ctx.conn, "alice", pub(keyfiles, "ecdsa256"), "alice")
    key_type, blob, _ = pub(keyfiles, "ecdsa256").split(None, 2)
    raw = base64.b64decode(blob)
    assert keys.key_name_for(ctx.conn, key_type, raw) == "alice"
    assert keys.key_name_for(ctx.conn, "ssh-ed25519", raw) is None
    other = base64.b64decode(pub(keyfiles, "ed25519").split()[1])
    assert keys.key_name_for(ctx.conn, "ssh-ed25519", other) is None


# -- CLI -------------------------------------------------------------------------------------------------

@pytest.fixture
def initialised(isolated_env):
    run_paas("init")
    return isolated_env


def test_cli_round_trip(initialised, keyfiles):
    fp = ssh_keygen_fingerprint(keyfiles["ed25519"].with_suffix(".pub"))
    added = run_paas("ssh-keys:add", "alice", str(keyfiles["ed25519"].with_suffix(".pub")))
    assert added.stdout == f"added SSH key alice for admin (ssh-ed25519 {fp})\n"
    run_paas("ssh-keys:add", "bob", "-", input=pub(keyfiles, "ecdsa384"))
    listed = json.loads(run_paas("ssh-keys:list", "--json").stdout)
    assert [(k["name"], k["type"]) for k in listed] == [("alice", "ssh-ed25519"), ("bob", "ecdsa-sha2-nistp384")]
    assert listed[0]["fingerprint"] == fp and listed[0]["comment"] == "ed25519@test host"
    assert set(listed[0]) == {"name", "user", "fingerprint", "type", "comment", "created_at"}
    assert {k["user"] for k in listed} == {"admin"}  # the host's operator registers keys of the admin user
    table = run_paas("ssh-keys:list").stdout.splitlines()
    assert table[0].split() == ["NAME", "USER", "FINGERPRINT", "TYPE", "COMMENT", "ADDED"]
    assert table[1].startswith("alice ") and fp in table[1]
    assert run_paas("ssh-keys:remove", "alice").stdout == "removed SSH key alice\n"
    assert [k["name"] for k in json.loads(run_paas("ssh-keys:list", "--json").stdout)] == ["bob"]


def test_cli_empty_list(initialised):
    result = run_paas("ssh-keys:list")
    assert result.stdout == "" and "paas ssh-keys:add" in result.stderr
    assert json.loads(run_paas("ssh-keys:list", "--json").stdout) == []


@pytest.mark.parametrize("args, stdin, expected", [
    (("ssh-keys:add", "alice", "/nonexistent.pub"), None, "cannot read /nonexistent.pub: No such file"),
    (("ssh-keys:add", "alice", "-"), "not a key\n", "not an SSH public key"),
    (("ssh-keys:add", "bad name", "-"), "x", "invalid SSH key name"),
    (("ssh-keys:remove", "ghost"), None, "no SSH key named ghost"),
])
def test_cli_errors_are_one_line(initialised, args, stdin, expected):
    result = run_paas(*args, input=stdin, check=False)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr


def test_cli_duplicate_key_names_the_other(initialised, keyfiles):
    run_paas("ssh-keys:add", "alice", "-", input=pub(keyfiles, "ed25519"))
    result = run_paas("ssh-keys:add", "alice2", "-", input=pub(keyfiles, "ed25519"), check=False)
    assert result.returncode == 1 and "already registered as alice" in result.stderr


@pytest.mark.parametrize("content", [
    "root:$6$s3cretHash$abcdef:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",  # a shadow file
    "ssh-ed25519 c2VjcmV0LXRva2VuLXZhbHVl trailing\n",  # a key type with data that is no key
    "SECRET_TOKEN=s3cretHash\n",
])
def test_a_file_that_is_not_a_key_is_never_echoed(initialised, tmp_path, content):
    path = tmp_path / "not-a-key"
    path.write_text(content)
    result = run_paas("ssh-keys:add", "alice", str(path), check=False)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    for secret in ("s3cret", "c2VjcmV0", "root:", "SECRET_TOKEN"):
        assert secret not in result.stderr + result.stdout
