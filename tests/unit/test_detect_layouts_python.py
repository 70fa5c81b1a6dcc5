"""Python scripts and workers without a framework, apps of source files without a manifest (a Procfile names the
language), `.buildpacks` / app.json `buildpacks` orders, the node stage that builds a python/ruby/php app's assets,
and the pinned build tools: what is detected, why, and the Dockerfile generated (parsed with our own parser).
Nothing is built here (tests/e2e/test_buildpack_layouts_python.py builds, pushes and serves the sample apps)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from paas import detect as d
from paas.build.instructions import Copy, Run, parse_dockerfile
from paas.detect import multi
from paas.detect.languages import python as py
from paas.errors import UserError
from tests.conftest import write_files

APPS = Path(__file__).resolve().parents[1] / "apps"
WORKER = "import time\n\nwhile True:\n    print('working', flush=True)\n    time.sleep(5)\n"




def detect(tmp_path: Path, files: dict[str, str], **kwargs) -> d.Detection:
    return d.detect(write_files(tmp_path, files), **kwargs)


def dockerfile(detection: d.Detection):
    text = d.generate(detection)
    return text, parse_dockerfile(text)


def instructions(parsed, stage: int = -1) -> list[str]:
    return [i.original if hasattr(i, "original") else str(i) for i in parsed.stages[stage].instructions]


# -- scripts without a framework: web or worker --------------------------------------------------------------------

@pytest.mark.parametrize(("source", "process"), [
    (WORKER, "worker"),
    ("import os\nport = int(os.environ['PORT'])\n", "web"),
    ("import os\nport = os.environ.get('PORT', '8000')\n", "web"),
    ("from os import getenv\nPORT = int(getenv('PORT'))\n", "web"),
    ("from http.server import HTTPServer\n", "web"),
    ("import socketserver\n", "web"),
    ("from aiohttp import web\nweb.run_app(web.Application())\n", "web"),
    ("import uvicorn\nuvicorn.run('x:app')\n", "web"),
    ("import asyncio\nasyncio.run(asyncio.start_server(print, '0.0.0.0', 1))\n", "web"),
    ("DB_PORT = 5432  # a port that is not ours\nprint('PORTS')\n", "worker"),
])
def test_a_script_is_web_when_it_reads_port_or_starts_a_server_else_a_worker(tmp_path, source, process):
    detection = detect(tmp_path, {"main.py": source})
    assert detection.buildpack == "python" and detection.framework is None
    assert dict(detection.processes) == {process: "python main.py"}
    assert detection.warnings == ()
    if process == "worker":
        assert ("no web framework; main.py found: runs as a worker: `python main.py` (no route, no port check: "
                "nothing in main.py reads $PORT or starts a server)") in detection.reasons
    text, parsed = dockerfile(detection)
    assert parsed.stages[-1].instructions[-1].command == ("sh", "-c", "exec python main.py")


def test_a_worker_that_imports_its_server_module_is_web(tmp_path):
    detection = detect(tmp_path, {"main.py": "import serve\n\nserve.forever()\n",
                                  "serve.py": "import socketserver\n\ndef forever(): ...\n",
                                  "jobs/__init__.py": "", "jobs/run.py": WORKER})
    assert dict(detection.processes) == {"web": "python main.py"}
    assert any("serve.py reads $PORT or starts a server" in r for r in detection.reasons)


def test_main_py_comes_before_app_py(tmp_path):
    detection = detect(tmp_path, {"app.py": WORKER, "main.py": WORKER})
    assert dict(detection.processes) == {"worker": "python main.py"}
    assert detection.files == ("main.py",)


def test_a_worker_with_a_requirements_file_installs_it(tmp_path):
    detection = detect(tmp_path, {"requirements.txt": "requests\n", "main.py": "import requests\n" + WORKER})
    assert (detection.package_manager, dict(detection.processes)) == ("pip", {"worker": "python main.py"})
    assert "pip install --cache-dir=/root/.cache/pip -r requirements.txt" in d.generate(detection)


def test_a_framework_app_object_wins_over_the_script(tmp_path):
    detection = detect(tmp_path, {"requirements.txt": "flask\n",
                                  "main.py": "from flask import Flask\napp = Flask(__name__)\n"})
    assert detection.framework == "flask" and "worker" not in detection.processes


def test_a_procfile_names_the_processes_the_detected_worker_is_not_added(tmp_path):
    detection = detect(tmp_path, {"main.py": WORKER, "Procfile": "clock: python main.py --clock\n"})
    assert dict(detection.processes) == {"clock": "python main.py --clock"}


def test_package_main_runs_with_python_m(tmp_path):
    detection = detect(tmp_path, {"mybot/__init__.py": "", "mybot/__main__.py": "from . import loop\n",
                                  "mybot/loop.py": WORKER})
    assert dict(detection.processes) == {"worker": "python -m mybot"}
    assert detection.files == ("mybot/__main__.py",)
    assert ("no web framework; mybot/__main__.py found: runs as a worker: `python -m mybot` (no route, no port check: "
            "nothing in mybot/__main__.py, mybot/__init__.py, mybot/loop.py reads $PORT or starts a server)"
            ) in detection.reasons


def test_package_main_in_src_and_several_packages_pick_the_one_named_like_the_project(tmp_path):
    files = {"pyproject.toml": '[project]\nname = "my-bot"\nversion = "1"\ndependencies = []\n',
             "src/my_bot/__main__.py": "import os\nPORT = os.environ['PORT']\n", "src/other/__main__.py": WORKER}
    detection = detect(tmp_path, files)
    assert dict(detection.processes) == {"web": "PYTHONPATH=src python -m my_bot"}
    text, parsed = dockerfile(detection)
    assert parsed.stages[-1].instructions[-1].command == ("sh", "-c", "PYTHONPATH=src python -m my_bot")


def test_several_package_mains_and_none_named_like_the_project_is_a_warning(tmp_path):
    detection = detect(tmp_path, {"requirements.txt": "", "a/__main__.py": WORKER, "b/__main__.py": WORKER})
    assert dict(detection.processes) == {}
    assert any("several packages have a __main__.py (a, b)" in w for w in detection.warnings)


@pytest.mark.parametrize(("scripts", "expected", "home"), [
    ({"bot": "bot.cli:main"}, "bot.cli:main", ""),
    ({"helper": "bot.tools:run", "my-bot": "bot.cli:main"}, "bot.cli:main", ""),  # named like the project
    ({"bot": "bot.cli:App.main"}, "bot.cli:App.main", "src"),
])
def test_project_scripts_run_the_entry_point(tmp_path, scripts, expected, home):
    table = "".join(f'"{k}" = "{v}"\n' for k, v in scripts.items())
    prefix = f"{home}/" if home else ""
    files = {"pyproject.toml": f'[project]\nname = "my-bot"\nversion = "1"\ndependencies = []\n\n'
                               f"[project.scripts]\n{table}",
             f"{prefix}bot/__init__.py": "", f"{prefix}bot/cli.py": WORKER, "main.py": "print('not me')\n"}
    detection = detect(tmp_path, files)
    module, attr = expected.split(":")
    code = f"import sys; from {module} import {attr.split('.')[0]}; sys.exit({attr}())"
    assert dict(detection.processes) == {"worker": ("PYTHONPATH=src " if home else "") + f"python -c '{code}'"}
    assert detection.package_manager == "pip"
    text, parsed = dockerfile(detection)
    assert parsed.stages[-1].instructions[-1].command[:2] == ("sh", "-c")


def test_project_scripts_that_cannot_be_chosen_fall_back_to_main_py_with_a_warning(tmp_path):
    files = {"pyproject.toml": '[project]\nname = "x"\nversion = "1"\n[project.scripts]\na = "m:f"\nb = "m:g"\n',
             "m.py": "", "main.py": WORKER}
    detection = detect(tmp_path, files)
    assert dict(detection.processes) == {"worker": "python main.py"}
    assert any("several scripts (a, b) and none is named like the project" in w for w in detection.warnings)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\n[project.scripts]\nx = "gone:f"\n')
    detection = d.detect(tmp_path)
    assert any("[project.scripts] x runs gone, which is not in the app" in w for w in detection.warnings)


def test_poetry_scripts_count_too(tmp_path):
    files = {"pyproject.toml": '[tool.poetry]\nname = "svc"\nversion = "1"\n[tool.poetry.scripts]\nsvc = "svc:main"\n',
             "svc.py": "import os\nPORT = os.environ['PORT']\ndef main(): ...\n"}
    detection = detect(tmp_path, files)
    assert dict(detection.processes) == {"web": "python -c 'import sys; from svc import main; sys.exit(main())'"}


# -- source files without a manifest ---------------------------------------------------------------------------

def test_procfile_only_python_sample(tmp_path):
    detection = d.detect(APPS / "procfile-only")
    assert (detection.buildpack, detection.package_manager) == ("python", None)
    assert detection.reasons[:2] == ("Procfile `web: python3 -u web.py` runs python3: a python app",
                                     "no requirements.txt, pyproject.toml, Pipfile or setup.py: nothing to install "
                                     "(the standard library only)")
    text, parsed = dockerfile(detection)
    body = parsed.stages[-1].instructions
    assert not [i for i in body if isinstance(i, Run)], "nothing to install"
    assert [(i.sources, i.dest) for i in body if isinstance(i, Copy)] == [((".",), ".")]


@pytest.mark.parametrize(("files", "buildpack", "web"), [
    ({"Procfile": "web: node server.js\n", "server.js": "require('http')\n"}, "node", "node server.js"),
    ({"Procfile": "web: exec ruby app.rb -p $PORT\n", "app.rb": "require 'webrick'\n"}, "ruby",
     "ruby app.rb -p $PORT"),
    ({"Procfile": "web: php -S 0.0.0.0:$PORT -t src\n", "src/router.php": "<?php\n"}, "php",
     "php -S 0.0.0.0:$PORT -t src"),
    ({"Procfile": "web: PYTHONUNBUFFERED=1 ./web.py\n", "web.py": "#!/usr/bin/env python3\n"}, "python", "./web.py"),
    ({"Procfile": "web: bin/start\n", "server.rb": "puts 1\n", "lib.rb": ""}, "ruby", "bin/start"),
])
def test_a_procfile_names_the_language(tmp_path, files, buildpack, web):
    detection = detect(tmp_path, files)
    assert detection.buildpack == buildpack and detection.language == buildpack
    assert web in detection.web
    assert detection.base_image == f"paas/stack-{buildpack}:bookworm"
    text, parsed = dockerfile(detection)
    assert not [i for i in parsed.stages[-1].instructions if isinstance(i, Run) and i.mounts], "nothing installed"
    assert "bundle install" not in text and "composer install" not in text and "npm ci" not in text


def test_a_worker_only_procfile_of_node(tmp_path):
    detection = detect(tmp_path, {"Procfile": "worker: node jobs.js\n", "jobs.js": ""})
    assert (detection.buildpack, dict(detection.processes)) == ("node", {"worker": "node jobs.js"})


def test_manifests_win_over_a_bare_script(tmp_path):
    detection = detect(tmp_path, {"main.py": WORKER, "package.json": '{"scripts": {"start": "node s.js"}}'})
    assert detection.buildpack == "node"


def test_a_procfile_naming_no_language_with_mixed_files_says_what_to_add(tmp_path):
    write_files(tmp_path, {"Procfile": "web: ./run\n", "a.py": "", "b.rb": ""})
    with pytest.raises(UserError) as caught:
        d.detect(tmp_path)
    assert "sources: a Procfile running python, node, ruby or php, main.py, app.py, PKG/__main__.py" in \
        str(caught.value)
    assert caught.value.hint == ("the Procfile runs `./run`, which is not python, node, ruby or php, and the app has "
                                 "source files in python, ruby: add the language's manifest (requirements.txt, "
                                 "package.json, Gemfile, composer.json) or a Dockerfile")


# -- buildpack order and the node stage ----------------------------------------------------------------------------

@pytest.mark.parametrize(("entry", "language"), [
    ("heroku/nodejs", "node"), ("heroku/python", "python"), ("nodejs", "node"), ("ruby", "ruby"),
    ("https://github.com/heroku/heroku-buildpack-nodejs", "node"),
    ("https://github.com/heroku/heroku-buildpack-nodejs.git#v200", "node"),
    ("https://github.com/heroku/heroku-buildpack-php/", "php"),
    ("https://buildpack-registry.s3.amazonaws.com/buildpacks/heroku/python.tgz", "python"),
    ("https://github.com/heroku/heroku-buildpack-go", "go"), ("heroku-community/static", "static"),
    ("https://github.com/heroku/heroku-buildpack-clojure", None), ("heroku/java", None),
])
def test_buildpack_names_and_urls(entry, language):
    assert multi.language_of(entry) == language


def test_buildpacks_order_sample():
    detection = d.detect(APPS / "buildpacks-order")
    assert detection.reasons[0] == ".buildpacks: node, python (python runs the app)"
    assert detection.build["assets"]["image"] == "paas/stack-node:bookworm"
    text, parsed = dockerfile(detection)
    assert [s.name for s in parsed.stages] == ["assets", None]
    assert "RUN npm run build \\\n && rm -rf node_modules" in text


def test_order_names_node_without_a_build_script_installs_the_packages_only(tmp_path):
    detection = detect(tmp_path, {".buildpacks": "# assets, then the app\nheroku/nodejs\nheroku/python\n",
                                  "requirements.txt": "flask\n", "app.py": "from flask import Flask\napp = Flask(1)\n",
                                  "package.json": '{"dependencies": {"left-pad": "1"}}'})
    assert detection.build["assets"]["build_script"] is None
    assert ".buildpacks names nodejs: a node stage (npm) installs the packages and no build script: the packages " \
           "are installed; its /app without node_modules is copied into the image" in detection.reasons
    assert "RUN rm -rf node_modules" in d.generate(detection)


def test_order_from_app_json_and_it_wins_over_a_dockerfile(tmp_path):
    app_json = {"buildpacks": [{"url": "heroku/nodejs"}, {"url": "https://github.com/heroku/heroku-buildpack-ruby"}]}
    detection = detect(tmp_path, {"app.json": json.dumps(app_json), "Dockerfile": "FROM scratch\n",
                                  "Gemfile": "gem 'rack'\n", "config.ru": "run ->(e) { [200, {}, ['hi']] }\n",
                                  "package.json": '{"scripts": {"build": "node b.js"}}', "b.js": ""})
    assert detection.buildpack == "ruby"
    assert detection.reasons[:2] == ("app.json buildpacks: node, ruby (ruby runs the app)",
                                     "Dockerfile not used: app.json buildpacks names the buildpacks")
    text, parsed = dockerfile(detection)
    assert [s.image for s in parsed.stages] == ["paas/stack-node:bookworm", "paas/stack-ruby:bookworm"]
    assert "COPY --from=assets --chown=app:app /app/ ./" in text


@pytest.mark.parametrize(("order", "message"), [
    ("heroku/java\n", ".buildpacks:1: 'heroku/java' is not a buildpack we have"),
    ("heroku/python\nheroku/nodejs\n", ".buildpacks: python then node is not an order we build"),
    ("heroku/nodejs\nheroku/go\n", ".buildpacks: node then go is not an order we build"),
    ("\n# nothing\n", ".buildpacks names no buildpack"),
    ("heroku/php\n", ".buildpacks names php last, but the app has none of composer.json, index.php, "
                     "public/index.php"),
])
def test_orders_we_do_not_build_are_errors_naming_what_we_have(tmp_path, order, message):
    write_files(tmp_path, {".buildpacks": order, "requirements.txt": "", "main.py": WORKER})
    with pytest.raises(UserError) as caught:
        d.detect(tmp_path)
    assert str(caught.value) == message
    assert caught.value.hint


def test_order_names_node_but_there_is_no_package_json(tmp_path):
    write_files(tmp_path, {".buildpacks": "heroku/nodejs\nheroku/python\n", "requirements.txt": "", "main.py": WORKER})
    with pytest.raises(UserError, match="names nodejs but the app has no package.json"):
        d.detect(tmp_path)


def test_node_stage_uses_the_lockfile_manager_pinned_and_keeps_the_dependency_layer_first(tmp_path):
    detection = detect(tmp_path, {"requirements.txt": "flask\ngunicorn\n",
                                  "app.py": "from flask import Flask\napp = Flask(__name__)\n",
                                  "package.json": '{"scripts": {"build": "vite build"}}', "yarn.lock": "# yarn v1\n"})
    assert detection.build["assets"]["manager"] == "yarn"
    text, parsed = dockerfile(detection)
    assets, final = parsed.stages
    assert "npm install --global --no-audit yarn@1.22.22" in text
    assert "yarn install --frozen-lockfile --non-interactive\n" in text  # devDependencies: the build needs them
    steps = [i for i in final.instructions if isinstance(i, (Copy, Run))]
    install = next(n for n, i in enumerate(steps) if isinstance(i, Run) and "requirements.txt" in " ".join(i.command))
    code = next(n for n, i in enumerate(steps) if isinstance(i, Copy) and i.from_ == "assets")
    assert install < code and steps[code].sources == ("/app/",) and steps[code].chown == "app:app"
    assert not [i for i in final.instructions if isinstance(i, Copy) and i.sources == (".",)]


def test_package_json_without_a_build_script_makes_no_stage(tmp_path):
    detection = detect(tmp_path, {"requirements.txt": "", "main.py": WORKER, "package.json": "{}"})
    assert detection.build["assets"] is None
    assert "package.json has no build script: no node stage (a `build` script makes one)" in detection.reasons
    assert "AS assets" not in d.generate(detection)


def test_node_stage_follows_the_suite_and_the_operator_image(tmp_path):
    files = {"requirements.txt": "", "main.py": WORKER, "package.json": '{"scripts": {"build": "x"}}',
             ".python-version": "3.13\n"}
    detection = detect(tmp_path, files)
    assert detection.base_image == "paas/stack-python:trixie"
    assert detection.build["assets"]["image"] == "paas/stack-node:trixie"
    detection = d.detect(tmp_path, stacks={"node": "registry.example/node:20"})
    assert detection.build["assets"]["image"] == "registry.example/node:20"


def test_a_rails_like_app_with_a_package_json_is_ruby_with_a_node_stage(tmp_path):
    """Ruby comes before node, as on Heroku: the Gemfile decides, package.json's build makes the assets."""
    detection = detect(tmp_path, {"Gemfile": "gem 'rack'\n", "config.ru": "run ->(e) { [200, {}, ['hi']] }\n",
                                  "package.json": '{"scripts": {"build": "esbuild app.js --outdir=public/assets"}}'})
    assert (detection.buildpack, detection.framework) == ("ruby", "rack")
    text, parsed = dockerfile(detection)
    assert [s.name for s in parsed.stages] == ["assets", None]
    assert "bundle install" in text and "COPY --from=assets --chown=app:app /app/ ./" in text


def test_php_app_with_assets_names_the_order(tmp_path):
    """PHP comes after node (as on Heroku): with a package.json, .buildpacks says php runs the app."""
    files = {"composer.json": "{}", "public/index.php": "<?php\n",
             "package.json": '{"scripts": {"build": "x"}, "devDependencies": {"vite": "5"}}'}
    assert detect(tmp_path, files).buildpack == "static"  # a site node builds, served by nginx
    (tmp_path / ".buildpacks").write_text("heroku/nodejs\nheroku/php\n")
    detection = d.detect(tmp_path)
    text, parsed = dockerfile(detection)
    assert detection.buildpack == "php" and [s.name for s in parsed.stages] == ["assets", None]
    assert "composer install" in text and "COPY --from=assets --chown=app:app /app/ ./" in text


# -- pinned build tools --------------------------------------------------------------------------------------------

def test_every_tool_is_pinned_with_its_dependencies():
    tools = d.spec("python")["tools"]
    assert set(tools) >= {"poetry", "uv", "pdm", "pipenv", "gunicorn", "uvicorn"}
    for name, entry in tools.items():
        assert re.fullmatch(rf"{name}==[0-9][0-9.]*", entry["pin"]), entry
        assert all("==" in pin for pin in entry["with"])
    assert "hishel==1.4.0" in tools["pdm"]["with"]  # pdm 2.29.4 fails with hishel 2.0 (no SyncSqliteStorage)


@pytest.mark.parametrize("sample, pin", [("python-pdm", "pdm==2.29.4"), ("python-pipenv", "pipenv==2026.10.3"),
                                         ("python-poetry", "poetry==2.5.1"), ("python-uv", "uv==0.13.9")])
def test_generated_dockerfiles_install_the_pinned_tool(sample, pin):
    text = d.generate(d.detect(APPS / sample))
    assert f"--constraint /tmp/pins.txt {pin} \\\n" in text or \
        f"install --cache-dir=/root/.cache/pip {pin} \\\n" in text
    parse_dockerfile(text)


def test_a_missing_server_is_installed_pinned(tmp_path):
    detection = detect(tmp_path, {"requirements.txt": "flask\n", "app.py": "from flask import Flask\napp = Flask(1)\n"})
    assert "--constraint /tmp/pins.txt gunicorn==27.0.1" in d.generate(detection) or \
        "pip install --cache-dir=/root/.cache/pip gunicorn==27.0.1" in d.generate(detection)


def test_a_pin_that_is_not_name_equals_version_is_refused(monkeypatch):
    table = {"python": {**d.spec("python"), "tools": {"poetry": {"pin": "poetry; rm -rf /", "with": []}}}}
    monkeypatch.setattr(py, "spec", table.__getitem__)
    with pytest.raises(ValueError, match="is not name==version"):
        py.tool_pins(["poetry"])
