"""paas.services.domains: custom and global domains in the state DB, clashes, and what the report says (apps
that are not running: no route is touched; routing is tested end to end in tests/e2e/test_domains.py)."""

from __future__ import annotations

import pytest

from paas import apps, events
from paas.access.model import User
from paas.access.store import add_user, grant
from paas.errors import UserError
from paas.services import domains

ADMIN = User("root-ops", "admin")


@pytest.fixture
def two_apps(ctx):
    apps.create_app(ctx.conn, "shop")
    apps.create_app(ctx.conn, "blog")
    return ctx


def test_add_normalises_and_reports(two_apps):
    added = domains.add(two_apps, ADMIN, "shop", ["WWW.Example.com.", "*.shop.example", "bücher.example"], via="cli")
    assert added == ["www.example.com", "*.shop.example", "xn--bcher-kva.example"]
    report = domains.report(two_apps, "shop")
    assert report["custom"] == sorted(added)
    assert report["default"] == ["shop.paas.localhost"]
    assert report["url"] == "http://shop.paas.localhost" and not report["routed"]
    assert domains.add(two_apps, ADMIN, "shop", ["www.example.com"], via="cli") == []  # already there: no error
    assert [e["action"] for e in events.list_events(two_apps.conn, app="shop")] == ["domains.add"]


def test_a_domain_belongs_to_one_app(two_apps):
    domains.add(two_apps, ADMIN, "shop", ["www.example.com", "*.example.org"], via="cli")
    with pytest.raises(UserError, match="www.example.com already belongs to app shop"):
        domains.add(two_apps, ADMIN, "blog", ["www.example.com"], via="cli")
    with pytest.raises(UserError, match=r"\*.example.org already belongs to app shop"):
        domains.set_(two_apps, ADMIN, "blog", ["*.example.org"], via="cli")
    # another app's default name, and the dashboard's, are taken too
    with pytest.raises(UserError, match="shop.paas.localhost already belongs to app shop"):
        domains.add(two_apps, ADMIN, "blog", ["shop.paas.localhost"], via="cli")
    with pytest.raises(UserError, match="belongs to the dashboard"):
        domains.add(two_apps, ADMIN, "blog", ["paas.paas.localhost"], via="cli")
    # a name under someone's wildcard is a different name: the exact one wins in nginx, as in Dokku
    assert domains.add(two_apps, ADMIN, "blog", ["news.example.org"], via="cli") == ["news.example.org"]
    assert domains.report(two_apps, "blog")["custom"] == ["news.example.org"]


def test_a_clash_with_an_app_the_user_cannot_see_does_not_name_it(two_apps):
    domains.add(two_apps, ADMIN, "shop", ["www.example.com"], via="cli")
    add_user(two_apps.conn, "vera", "member")
    grant(two_apps.conn, "blog", "vera", "manage", "root-ops")
    with pytest.raises(UserError) as refused:
        domains.add(two_apps, User("vera", "member"), "blog", ["www.example.com"], via="cli")
    assert "another app" in str(refused.value) and "shop" not in refused.value.one_line()


@pytest.mark.parametrize("bad", ["http://www.example.com", "example.com:8080", "www.example.com/x", "10.0.0.1",
                                 "localhost", "ex ample.com", "*.*.example.com", ""])
def test_bad_names_are_refused_and_nothing_is_written(two_apps, bad):
    with pytest.raises(UserError):
        domains.add(two_apps, ADMIN, "shop", ["ok.example.com", bad], via="cli")
    assert domains.report(two_apps, "shop")["custom"] == []


def test_remove_set_clear(two_apps):
    domains.add(two_apps, ADMIN, "shop", ["a.example.com", "b.example.com"], via="cli")
    assert domains.remove(two_apps, ADMIN, "shop", ["A.example.com"], via="cli") == ["b.example.com"]
    with pytest.raises(UserError, match="shop has no custom domain c.example.com"):
        domains.remove(two_apps, ADMIN, "shop", ["c.example.com"], via="cli")
    with pytest.raises(UserError) as refused:
        domains.remove(two_apps, ADMIN, "shop", ["shop.paas.localhost"], via="cli")
    assert "come with the app" in refused.value.one_line()
    assert domains.set_(two_apps, ADMIN, "shop", ["x.example.com", "y.example.com"], via="cli") == [
        "x.example.com", "y.example.com"]
    assert domains.clear(two_apps, ADMIN, "shop", via="cli") == []
    # the names are free again
    assert domains.add(two_apps, ADMIN, "blog", ["x.example.com"], via="cli") == ["x.example.com"]


def test_global_domains(two_apps):
    assert domains.add_global(two_apps, ADMIN, ["apps.example.net"], via="cli") == ["paas.localhost",
                                                                                    "apps.example.net"]
    assert domains.report(two_apps, "shop")["default"] == ["shop.paas.localhost", "shop.apps.example.net"]
    with pytest.raises(UserError, match="blog.apps.example.net already belongs to app blog"):
        domains.add(two_apps, ADMIN, "shop", ["blog.apps.example.net"], via="cli")
    with pytest.raises(UserError, match="`domain` of the config file"):
        domains.remove_global(two_apps, ADMIN, ["paas.localhost"], via="cli")
    with pytest.raises(UserError, match="plain name"):
        domains.add_global(two_apps, ADMIN, ["*.example.net"], via="cli")
    assert domains.set_global(two_apps, ADMIN, ["other.example"], via="cli") == ["paas.localhost", "other.example"]
    assert domains.remove_global(two_apps, ADMIN, ["other.example"], via="cli") == ["paas.localhost"]


def test_a_global_domain_may_not_turn_a_custom_domain_into_another_apps_default(two_apps):
    domains.add(two_apps, ADMIN, "shop", ["blog.example.net"], via="cli")
    with pytest.raises(UserError, match="blog.example.net is a custom domain of app shop"):
        domains.add_global(two_apps, ADMIN, ["example.net"], via="cli")


def test_destroying_the_app_frees_its_domains(two_apps):
    domains.add(two_apps, ADMIN, "shop", ["www.example.com"], via="cli")
    with two_apps.conn:
        two_apps.conn.execute("DELETE FROM apps WHERE name = 'shop'")
    assert domains.add(two_apps, ADMIN, "blog", ["www.example.com"], via="cli") == ["www.example.com"]
