"""Faults: the nginx config edited by hand into something invalid.

paas keeps nginx's whole tree under <root>/nginx and checks every change on a staged copy with `nginx -t` before
it is renamed into place (paas/proxy/nginx.py). A hand edit that breaks the tree: the next deploy that changes
nginx (a first deploy adds the app's server) says what nginx -t said, in one line with the fix; the other apps
keep answering, and the running nginx keeps its loaded config (it is not reloaded with a bad one).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.platformkit import Platform, running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"
HELLO = "hello from procfile-only\n"
GARBAGE = "this is not nginx {\n"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform")) as p:
        yield p


@pytest.fixture(scope="module")
def other(platform):
    """An app serving before the hand edits."""
    app, _ = platform.deploy_sample(APPS / "procfile-only")
    return app


def generation(platform: Platform) -> str:
    from paas.context import open_context
    from paas.deploy import nginx_for

    ctx = open_context(platform.root)
    try:
        return nginx_for(ctx)._generation()
    finally:
        ctx.close()


def test_a_broken_file_added_by_hand_is_named_by_the_next_deploy_and_the_other_apps_keep_answering(platform, other):
    by_hand = platform.root / "nginx" / "conf.d" / "by-hand.conf"
    by_hand.write_text(GARBAGE)
    loaded = generation(platform)
    try:
        repo = platform.repo_from(APPS / "procfile-only", "fresh")
        pushed = platform.push(repo, repo.name)
        assert pushed.returncode != 0, pushed.output
        [line] = [x for x in pushed.output.splitlines() if "deploy failed" in x]
        assert 'nginx\'s config is broken outside this change: unknown directive "this" in conf.d/by-hand.conf:1' \
            in line, line
        assert f"fix or remove {by_hand}" in line, line
        assert generation(platform) == loaded  # nginx was not reloaded
        assert platform.get(other) == (200, HELLO)
        assert platform.get(repo.name)[0] == 404
    finally:
        by_hand.unlink()
    retried = platform.push(repo, repo.name)  # the fix: the file is gone
    assert retried.returncode == 0, retried.output
    assert platform.get(repo.name) == (200, HELLO)
    assert platform.get(other) == (200, HELLO)


@pytest.mark.parametrize("edited", ["apps/OTHER.conf", "nginx.conf"])
def test_a_generated_file_broken_by_hand_is_rendered_again_by_the_next_change(platform, other, edited):
    """nginx.conf and apps/<app>.conf are paas's (rendered from its settings and each app's route): the next change
    renders them again, checked as a whole, so the garbage goes and every app keeps answering."""
    path = platform.root / "nginx" / edited.replace("OTHER", other)
    with open(path, "a") as fh:
        fh.write(GARBAGE)
    repo = platform.repo_from(APPS / "procfile-only", "fresh")
    pushed = platform.push(repo, repo.name)
    assert pushed.returncode == 0, pushed.output
    assert GARBAGE not in path.read_text()
    assert platform.get(other) == (200, HELLO)
    assert platform.get(repo.name) == (200, HELLO)
