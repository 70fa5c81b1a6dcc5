"""The language version an app asks for, end to end: detect -> the trixie stack -> build -> the version inside the
built container; and a version no stack has failing a real `git push` with the message that names what we have.

One data root for the module (as tests/e2e/test_buildpack_apps.py); the stacks come from the machine cache
(PAAS_STACK_CACHE, here /var/cache/paas-test/stacks): from an empty cache the first run builds the five trixie
language stacks and base:trixie, about a minute each.
"""

from __future__ import annotations

import json
import secrets

import pytest

from paas import stacks
from paas.build.executor import BuildOptions, build
from paas.detect import StackSettings, detect, generate
from paas.errors import UserError
from paas.runtime import containers, spec
from tests.conftest import write_files
from tests.platformkit import running_platform

GO_MAIN = """package main

import (
\t"fmt"
\t"runtime"
)

func main() { fmt.Println(runtime.Version()) }
"""

# language -> (the app's files asking for what only trixie has, the command printing the version, what it prints)
APPS = {
    "python": ({"requirements.txt": "", ".python-version": "3.13\n", "Procfile": "web: python -m http.server $PORT\n"},
               "python --version", "Python 3.13."),
    "node": ({"package.json": json.dumps({"name": "v", "version": "1.0.0", "engines": {"node": ">=20"},
                                          "scripts": {"start": "node server.js"}}),
              "package-lock.json": json.dumps({"name": "v", "version": "1.0.0", "lockfileVersion": 3,
                                               "requires": True, "packages": {"": {"name": "v", "version": "1.0.0"}}}),
              "server.js": "console.log('hi')\n"},
             "node --version", "v20."),
    "go": ({"go.mod": "module version\n\ngo 1.22\n", "main.go": GO_MAIN},
           "/app/bin/version", "go1.24"),
    "ruby": ({"Gemfile": "source 'https://rubygems.org'\n", ".ruby-version": "3.3\n",
              "Gemfile.lock": "GEM\n  remote: https://rubygems.org/\n  specs:\n\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n\n"
                              "BUNDLED WITH\n   2.6.7\n",
              "Procfile": "web: ruby -run -e httpd . -p $PORT\n"},
             "ruby --version", "ruby 3.3."),
    "php": ({"composer.json": json.dumps({"require": {"php": "^8.4"}}), "index.php": "<?php echo 'hi';\n"},
            "php --version", "PHP 8.4."),
}


def run_in(ctx, image: str, command: str) -> tuple[int, str]:
    out: list[str] = []
    info = containers.run(ctx, image, spec.RunOptions(cmd=("sh", "-c", command), network="none"), remove_after=True,
                          on_line=lambda line: out.append(line.text))
    return info["exit_code"], "\n".join(out)


@pytest.mark.parametrize("language", sorted(APPS))
def test_an_app_asking_for_the_trixie_version_gets_it(app_ctx, tmp_path, language):
    files, command, prints = APPS[language]
    app_dir = write_files(tmp_path / "app", files)
    detection = detect(app_dir)
    assert (detection.language, detection.version.suite) == (language, "trixie"), detection.reasons
    text = generate(detection)
    assert stacks.stacks_named_in(text)[0] == (language, "trixie")
    assert all(suite == "trixie" for _, suite in stacks.stacks_named_in(text))  # go: base:trixie runs it
    stacks.ensure_stacks_for(app_ctx, text)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(text)
    tag = f"{language}-trixie:test"
    lines: list[str] = []
    build(app_ctx, BuildOptions(context_dir=app_dir, dockerfile=dockerfile, tags=(tag,), network="bridge",
                                progress=lines.append))
    assert "useradd" not in text and "-m venv /opt/venv" not in text  # both come with the stack

    code, out = run_in(app_ctx, tag, f"{command}; id -un; cat /etc/debian_version")
    assert code == 0, out
    lines = out.splitlines()
    version, (user, debian) = lines[0], lines[-2:]
    assert version.startswith(prints), out
    assert user == "app" and debian.startswith("13."), out


def test_without_a_request_the_default_suite_and_with_the_operator_default_trixie(app_ctx, tmp_path):
    app_dir = write_files(tmp_path / "app", {"requirements.txt": "", "Procfile": "web: python -m http.server $PORT\n"})
    assert detect(app_dir).base_image == "paas/stack-python:bookworm"
    assert detect(app_dir, stacks=StackSettings(default_suite="trixie")).base_image == "paas/stack-python:trixie"


def test_an_impossible_request_fails_detection_with_what_the_stacks_have(tmp_path):
    app_dir = write_files(tmp_path / "app", {"package.json": "{}", ".nvmrc": "16\n", "index.js": ""})
    with pytest.raises(UserError) as caught:
        detect(app_dir)
    assert caught.value.one_line().startswith("node 16 requested in .nvmrc; stacks provide 18 (bookworm) and 20 "
                                              "(trixie) (ask for one of those in .nvmrc")


def test_an_impossible_request_fails_the_push_with_the_message(tmp_path):
    with running_platform(tmp_path / "platform") as platform:
        source = write_files(tmp_path / "src", {"requirements.txt": "", ".python-version": "3.9\n",
                                                "Procfile": "web: python -m http.server $PORT\n"})
        repo = platform.repo_from(source, "py39")
        app = f"py39-{secrets.token_hex(3)}"
        pushed = platform.push(repo, app)
        assert pushed.returncode != 0, pushed.output
        assert ("python 3.9 requested in .python-version; stacks provide 3.11 (bookworm) and 3.13 (trixie)"
                in pushed.output), pushed.output
        assert "stacks.version_mismatch: nearest" in pushed.output
        releases = platform.paas("releases", app, "--json", check=False)
        assert '"active"' not in releases.stdout  # nothing went live
