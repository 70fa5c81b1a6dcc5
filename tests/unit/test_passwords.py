"""Dashboard passwords: scrypt hashes with a salt, users:passwd (stdin, --generate, --keep-existing; admins for
anyone, members for themselves), and the session stamp that ends sessions when the password changes."""

from __future__ import annotations

import pytest

from paas.access import passwords
from paas.access.store import add_user, remove_user
from paas.errors import NotFound, UserError
from tests.conftest import run_paas


def test_a_hash_is_salted_scrypt_and_verifies_only_the_password():
    first, second = passwords.hash_password("correct horse"), passwords.hash_password("correct horse")
    assert first.startswith("scrypt$32768$8$1$") and first != second  # a random salt each time
    assert "correct horse" not in first
    assert passwords.verify_password(first, "correct horse") and passwords.verify_password(second, "correct horse")
    assert not passwords.verify_password(first, "correct horsE")
    assert not passwords.verify_password("md5$abc", "x") and not passwords.verify_password("garbage", "x")


def test_authenticate_needs_the_user_and_their_password(ctx):
    add_user(ctx.conn, "bob", "member")
    assert passwords.authenticate(ctx.conn, "bob", "anything1") is None  # no password set yet
    passwords.set_password(ctx.conn, "bob", "s3cret-pass")
    assert passwords.authenticate(ctx.conn, "bob", "s3cret-pass").name == "bob"
    assert passwords.authenticate(ctx.conn, "bob", "s3cret-pasS") is None
    assert passwords.authenticate(ctx.conn, "ghost", "s3cret-pass") is None
    with pytest.raises(UserError, match="at least 8"):
        passwords.set_password(ctx.conn, "bob", "short")
    with pytest.raises(NotFound):
        passwords.set_password(ctx.conn, "ghost", "long-enough")


def test_the_session_stamp_changes_with_the_password_and_goes_with_the_user(ctx):
    add_user(ctx.conn, "bob", "member")
    assert passwords.session_stamp(ctx.conn, "bob", b"k") is None
    passwords.set_password(ctx.conn, "bob", "first-pass")
    stamp = passwords.session_stamp(ctx.conn, "bob", b"k")
    assert stamp == passwords.session_stamp(ctx.conn, "bob", b"k")
    passwords.set_password(ctx.conn, "bob", "first-pass")  # the same password, a new salt: old sessions end
    assert passwords.session_stamp(ctx.conn, "bob", b"k") not in (None, stamp)
    remove_user(ctx.conn, "bob")
    assert passwords.session_stamp(ctx.conn, "bob", b"k") is None


def test_users_passwd_from_stdin_generated_and_kept(ctx):
    run_paas("users:add", "bob")
    done = run_paas("users:passwd", "bob", input="a long passphrase\n")
    assert done.stderr.strip() == "password set for bob" and done.stdout == ""
    assert passwords.authenticate(ctx.conn, "bob", "a long passphrase")
    kept = run_paas("users:passwd", "bob", "--generate", "--keep-existing")
    assert kept.stdout == "" and "left as it is" in kept.stderr
    made = run_paas("users:passwd", "bob", "--generate")
    assert passwords.authenticate(ctx.conn, "bob", made.stdout.strip())
    assert not passwords.authenticate(ctx.conn, "bob", "a long passphrase")
    refused = run_paas("users:passwd", "bob", input="short\n", check=False)
    assert refused.returncode == 1 and "at least 8 characters" in refused.stderr
    events = run_paas("events", "--json").stdout
    assert "user.passwd" in events and "a long passphrase" not in events and made.stdout.strip() not in events


def test_members_set_only_their_own_password(ctx):
    for name in ("bob", "eve"):
        run_paas("users:add", name)
    as_bob = {"PAAS_USER": "bob", "PAAS_VIA": "ssh"}
    assert run_paas("users:passwd", input="bobs-own-pass\n", env=as_bob).returncode == 0
    assert passwords.authenticate(ctx.conn, "bob", "bobs-own-pass")
    refused = run_paas("users:passwd", "eve", input="takeover-pass\n", env=as_bob, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == "error: permission denied: bob needs the admin role to act on eve"
    assert not passwords.has_password(ctx.conn, "eve")
