"""Go layouts (no go.mod, workspaces, cmd/<name>), static sites (Staticfile, public/, dist/) and node-built sites:
what is detected, why, and the Dockerfile generated, which must parse with our own parser and put the nginx
config the Staticfile asks for into the image. Nothing is built here (tests/e2e/test_buildpack_layouts_web.py
builds and serves the sample apps; tests/integration/test_staticfile_nginx.py runs the nginx config)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paas import detect as d
from paas.build.instructions import Copy, Run, parse_dockerfile
from paas.detect.appdir import AppDir
from paas.detect.languages.go import workspace_modules
from paas.detect.staticfile import nginx_conf, parse_staticfile, read_staticfile, start_script
from paas.errors import UserError
from tests.conftest import write_files

APPS = Path(__file__).resolve().parents[1] / "apps"
GO_MAIN = "package main\n\nfunc main() {}\n"
HTPASSWD = "tester:$apr1$paastest$2pBHARDhNNzjWF.LUx01/0\n"




def detect(tmp_path: Path, files: dict[str, str]) -> d.Detection:
    return d.detect(write_files(tmp_path, files))


def heredocs(text: str) -> dict[str, str]:
    """Destination -> body of the COPY <<EOF instructions of the final stage."""
    stage = parse_dockerfile(text).stages[-1]
    return {i.dest: i.heredocs[0].data for i in stage.instructions if isinstance(i, Copy) and i.heredocs}


# -- Go -------------------------------------------------------------------------------------------------------------

def test_go_without_go_mod_gets_a_module_made_in_the_build(tmp_path):
    detection = detect(tmp_path, {"main.go": GO_MAIN, "util.go": "package main\n"})
    assert (detection.buildpack, detection.web, detection.files) == ("go", "app", ("main.go",))
    assert any(r.startswith("no go.mod: the build makes one (`go mod init app && go mod tidy`") for r in
               detection.reasons)
    text = d.generate(detection)
    build = parse_dockerfile(text).stages[0]
    runs = [i for i in build.instructions if isinstance(i, Run)]
    assert "go mod init app && go mod tidy" in runs[0].command[0]  # after COPY . ., the module cache mounted
    assert [m.target for m in runs[0].mounts] == ["/go/pkg/mod"]
    assert runs[1].command[0].endswith("-o /out/app .")
    assert detection.runtime_image == "paas/stack-base:bookworm"


def test_a_main_go_that_is_not_package_main_is_not_go(tmp_path):
    write_files(tmp_path, {"main.go": "package lib\n"})
    with pytest.raises(UserError) as caught:
        d.detect(tmp_path)
    assert "go: go.work, go.mod, main.go" in caught.value.message


def test_go_cmd_layout_builds_every_command_and_names_the_web_one(tmp_path):
    detection = detect(tmp_path, {"go.mod": "module example.com/shop\n\ngo 1.19\n", "cmd/web/main.go": GO_MAIN,
                                  "cmd/worker/main.go": GO_MAIN, "cmd/README.md": "", "internal/x/x.go": "package x\n"})
    assert detection.web == "web"
    assert "web: `web` (named web; the binary reads $PORT)" in detection.reasons
    assert "also built, for Procfile lines: worker (e.g. `worker: worker`)" in detection.reasons
    text = d.generate(detection)
    assert "-o /out/web ./cmd/web" in text and "-o /out/worker ./cmd/worker" in text
    assert "COPY --from=build /out/ /app/bin/" in text


def test_go_root_main_package_and_commands_are_all_built(tmp_path):
    detection = detect(tmp_path, {"go.mod": "module github.com/acme/shop/v2\n", "main.go": GO_MAIN,
                                  "cmd/migrate/main.go": GO_MAIN})
    assert detection.web == "shop"  # named after the module (without /v2), as `go build` names it
    assert [b["name"] for b in detection.build["binaries"]] == ["shop", "migrate"]


def test_go_several_commands_without_a_web_one_warn_and_a_procfile_names_it(tmp_path):
    files = {"go.mod": "module example.com/tools\n", "cmd/api/main.go": GO_MAIN, "cmd/cron/main.go": GO_MAIN}
    detection = detect(tmp_path, files)
    assert detection.web is None
    assert any("several main packages (api, cron) and none is named tools, web or server; name the web one in a "
               "Procfile, e.g. `web: api`" in w for w in detection.warnings)
    (tmp_path / "Procfile").write_text("web: api\nworker: cron\n")
    detection = d.detect(tmp_path)
    assert dict(detection.processes) == {"web": "api", "worker": "cron"}
    assert d.generate(detection).rstrip().endswith('CMD ["sh", "-c", "exec api"]')


def test_go_workspace_use_directives():
    text = ('go 1.21\n\n// a comment ./nope\nuse ./api\nuse (\n\t./lib // the library\n\t"./tools"\n\t./api\n)\n'
            "replace x => ./y\n")
    assert workspace_modules(text) == ["lib", "tools", "api"]
    assert workspace_modules("use .\n") == ["."]


def test_go_workspace_builds_the_main_packages_of_its_modules(tmp_path):
    files = {"go.work": "go 1.19\n\nuse (\n\t./api\n\t./lib\n\t./jobs\n\t./missing\n)\n",
             "api/go.mod": "module example.com/api\n", "api/main.go": GO_MAIN,
             "lib/go.mod": "module example.com/lib\n", "lib/greet/greet.go": "package greet\n",
             "jobs/go.mod": "module example.com/jobs\n", "jobs/cmd/api/main.go": GO_MAIN,
             "jobs/cmd/nightly/main.go": GO_MAIN}
    detection = detect(tmp_path, files)
    assert detection.files == ("go.work",)
    assert (detection.version.requested, detection.version.source) == ("1.19", "go.work go directive")
    assert [(b["name"], b["package"]) for b in detection.build["binaries"]] == [
        ("api", "./api"), ("jobs-api", "./jobs/cmd/api"), ("nightly", "./jobs/cmd/nightly")]
    assert detection.web == "api"  # named after the first module
    warnings = " | ".join(detection.warnings)
    assert "two main packages build `api`: ./jobs/cmd/api is /app/bin/jobs-api" in warnings
    assert "go.work uses missing, which has no go.mod in the app" in warnings
    text = d.generate(detection)
    assert "go mod download" not in text and "-o /out/nightly ./jobs/cmd/nightly" in text


@pytest.mark.parametrize("app, web, binaries", [
    ("go-nomod", "app", ["app"]),
    ("go-cmd", "web", ["web", "worker"]),
    ("go-workspace", "api", ["api", "migrate"]),
])
def test_go_sample_apps(app, web, binaries):
    detection = d.detect(APPS / app)
    assert (detection.buildpack, detection.web, detection.warnings) == ("go", web, ())
    assert [b["name"] for b in detection.build["binaries"]] == binaries
    parse_dockerfile(d.generate(detection))


# -- the Staticfile ---------------------------------------------------------------------------------------------------

def test_staticfile_keys_as_the_staticfile_buildpack_reads_them(tmp_path):
    write_files(tmp_path, {"Staticfile": "root: site/\ndirectory: visible\npushstate: enabled\nssi: true\ngzip: off\n"
                                  "host_dot_files: yes\nforce_https: true\n"
                                  "http_strict_transport_security_include_subdomains: true\n"
                                  "location_include: includes/*.conf\nstatus_codes:\n  404: /404.html\n"
                                  "  500: /oops.html\nenable_http2: true\n",
                    "site/index.html": "", "Staticfile.auth": HTPASSWD})
    site = read_staticfile(AppDir(tmp_path))
    assert (site.root, site.directory, site.pushstate, site.ssi, site.gzip, site.host_dot_files) == (
        "site", True, True, True, False, True)
    assert (site.force_https, site.hsts, site.hsts_subdomains, site.hsts_preload) == (True, True, True, False)
    assert site.location_include == "includes/*.conf" and site.basic_auth
    assert site.status_codes == ((404, "/404.html"), (500, "/oops.html"))
    assert site.warnings == ("Staticfile: enable_http2 ignored (we read root, location_include, status_codes, "
                             "directory, pushstate, gzip, ssi, host_dot_files, force_https, "
                             "http_strict_transport_security, http_strict_transport_security_include_subdomains, "
                             "http_strict_transport_security_preload)",)
    conf = nginx_conf(site)
    for line in ("autoindex on;", "ssi on;", 'auth_basic_user_file /etc/nginx/paas/htpasswd;',
                 'add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;',
                 "error_page 404 /404.html;", "try_files $uri $uri/ /index.html;",
                 "include /etc/nginx/paas/include/includes/*.conf;", 'if ($http_x_forwarded_proto = "http") {'):
        assert line in conf, line
    assert "gzip on" not in conf and "location ~ /\\." not in conf


def test_an_empty_staticfile_is_the_defaults_and_hides_platform_files(tmp_path):
    write_files(tmp_path, {"Staticfile": "", "index.html": "", "Procfile": "web: start-nginx\n", "app.json": "{}"})
    site = read_staticfile(AppDir(tmp_path))
    assert (site.root, site.pushstate, site.gzip, site.basic_auth, site.features) == (".", False, True, False, ())
    assert site.hidden == ("Staticfile", "Procfile", "app.json")
    conf = nginx_conf(site)
    assert "location = /Procfile { return 404; }" in conf and "location ~ /\\. {" in conf
    assert "location / {" not in conf  # nothing to add to nginx's own handling


def test_nginx_runs_as_anyone_with_everything_writable_under_its_run_dir():
    conf = nginx_conf(read_staticfile(AppDir(Path("/nonexistent"))), run_dir="/tmp/nginx")
    assert "pid /tmp/nginx/nginx.pid;" in conf and "error_log stderr;" in conf and "daemon off;" in conf
    assert "access_log /tmp/nginx/access.log paas;" in conf and "include /tmp/nginx/listen.conf;" in conf
    assert all(f"{kind}_temp_path /tmp/nginx/{kind};" in conf
               for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    assert "\nuser " not in conf and "absolute_redirect off;" in conf
    script = start_script()
    assert 'echo "listen ${PORT:-5000};" > /tmp/nginx/listen.conf' in script
    assert "mkfifo /tmp/nginx/access.log" in script and "cat /tmp/nginx/access.log &" in script
    assert script.splitlines()[-1] == "exec nginx -e stderr -c /etc/nginx/paas/nginx.conf"


@pytest.mark.parametrize("files, message", [
    ({"Staticfile": "root: /etc\n"}, "Staticfile: root: '/etc' is not a directory inside the app"),
    ({"Staticfile": "root: a/../../b\n"}, "Staticfile: root: 'a/../../b' is not a directory inside the app"),
    ({"Staticfile": "root: 'site; evil'\n"}, "Staticfile: root: 'site; evil' is not a directory inside the app"),
    ({"Staticfile": "root: dist\n"}, "Staticfile: root: dist is not a directory in the app"),
    ({"Staticfile": "- a list\n"}, "Staticfile: must hold `key: value` lines"),
    ({"Staticfile": "pushstate: enabled\nroot: a: b\n"}, "Staticfile:2: cannot read it as `key: value` lines"),
    ({"Staticfile": "ssi: sometimes\n"}, "Staticfile: ssi: 'sometimes' is not enabled or disabled"),
    ({"Staticfile": "status_codes: /404.html\n"}, "Staticfile: status_codes must map status codes to pages"),
    ({"Staticfile": "status_codes:\n  200: /ok.html\n"},
     "Staticfile: status_codes: 200: '/ok.html' is not an error code and a page path"),
    ({"Staticfile": "status_codes:\n  404: '/a b.html'\n"},
     "Staticfile: status_codes: 404: '/a b.html' is not an error code and a page path"),
    ({"Staticfile": "root: site\nlocation_include: extra.conf\n", "site/index.html": ""},
     "Staticfile: location_include: nginx/conf/extra.conf does not exist"),
    ({"Staticfile": "", "Staticfile.auth": "tester:hash\njust-a-name\n"},
     "Staticfile.auth:2: not an htpasswd line (user:hash)"),
    ({"Staticfile": "", "Staticfile.auth": "\n"}, "Staticfile.auth: not an htpasswd line (user:hash)"),
])
def test_staticfile_mistakes_are_one_line_with_the_fix(tmp_path, files, message):
    write_files(tmp_path, {"index.html": "", **files})
    with pytest.raises(UserError) as caught:
        d.detect(tmp_path)
    assert caught.value.message == message
    assert caught.value.hint and "\n" not in caught.value.one_line()


def test_location_include_without_root_is_ignored_with_a_warning(tmp_path):
    write_files(tmp_path, {"Staticfile": "location_include: x.conf\n", "index.html": "", "nginx/conf/x.conf": ""})
    detection = d.detect(tmp_path)
    assert any("location_include is ignored without root" in w for w in detection.warnings)
    assert "/etc/nginx/paas/include" not in d.generate(detection)


# -- static sites -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("files, root, selected", [
    ({"index.html": "", "public/index.html": ""}, "/app", "index.html"),
    ({"public/index.html": "", "README.md": ""}, "/app/public", "public/index.html"),
    ({"dist/index.html": ""}, "/app/dist", "dist/index.html"),
    ({"Staticfile": "root: www\n", "www/index.html": "", "index.html": ""}, "/app/www", "Staticfile"),
])
def test_static_sites_by_convention(tmp_path, files, root, selected):
    detection = detect(tmp_path, files)
    assert (detection.buildpack, detection.language, detection.web, detection.files) == (
        "static", "nginx", "start-nginx", (selected,))
    assert detection.base_image == "paas/stack-nginx:bookworm" and detection.runtime_image is None
    assert detection.version.chosen == "1.22"
    text = d.generate(detection)
    stage = parse_dockerfile(text).stages[-1]
    assert [(i.sources, i.dest) for i in stage.instructions if isinstance(i, Copy) and not i.heredocs] == [
        ((".",), ".")]
    docs = heredocs(text)
    assert f"        root {root};\n" in docs["/etc/nginx/paas/nginx.conf"]
    assert docs["/usr/local/bin/start-nginx"] == start_script()
    (start,) = [i for i in stage.instructions if isinstance(i, Copy) and i.dest == "/usr/local/bin/start-nginx"]
    assert start.chmod == "0755" and not start.heredocs[0].expand  # quoted: $uri and $PORT stay as written


def test_a_site_root_without_index_html_warns_unless_listings_are_on(tmp_path):
    detection = detect(tmp_path, {"Staticfile": "root: files\n", "files/a.pdf": ""})
    assert detection.warnings == ("no files/index.html: / answers 403; add one, or `directory: visible` in the "
                                  "Staticfile for a listing",)
    (tmp_path / "Staticfile").write_text("root: files\ndirectory: visible\n")
    assert d.detect(tmp_path).warnings == ()


def test_a_directory_named_public_without_index_html_is_not_a_site(tmp_path):
    write_files(tmp_path, {"public/app.css": ""})
    with pytest.raises(UserError):
        d.detect(tmp_path)


def test_the_static_sample_with_staticfile_and_auth(tmp_path):
    detection = d.detect(APPS / "static-staticfile")
    assert detection.warnings == ()
    assert "Staticfile found: nginx serves site/ as the app user on $PORT" in detection.reasons
    assert ("site: pushstate (unknown paths get /index.html); HSTS; basic auth from Staticfile.auth; "
            "404 -> /404.html") in detection.reasons
    text = d.generate(detection)
    assert "COPY Staticfile.auth /etc/nginx/paas/htpasswd\n" in text
    conf = heredocs(text)["/etc/nginx/paas/nginx.conf"]
    assert "root /app/site;" in conf and "auth_basic_user_file /etc/nginx/paas/htpasswd;" in conf


def test_location_include_files_are_copied_beside_the_config(tmp_path):
    detection = detect(tmp_path, {"Staticfile": "root: out\nlocation_include: h.conf\n", "out/index.html": "",
                                  "nginx/conf/h.conf": "expires 1d;\n"})
    text = d.generate(detection)
    assert "COPY nginx/conf/ /etc/nginx/paas/include/\n" in text
    assert "include /etc/nginx/paas/include/h.conf;" in heredocs(text)["/etc/nginx/paas/nginx.conf"]


# -- node-built sites -------------------------------------------------------------------------------------------------

def package(**fields) -> str:
    return json.dumps({"name": "site", **fields})


@pytest.mark.parametrize("files, framework, outputs", [
    ({"package.json": package(scripts={"build": "vite build"}, devDependencies={"vite": "^5"})}, "vite", ["dist"]),
    ({"package.json": package(scripts={"build": "vite build"}, devDependencies={"vite": "^5"}),
      "vite.config.ts": "export default { build: { outDir: 'web/public', emptyOutDir: true } }"}, "vite",
     ["web/public"]),
    ({"package.json": package(scripts={"build": "astro build"}, dependencies={"astro": "^4"})}, "astro", ["dist"]),
    ({"package.json": package(scripts={"build": "next build"}, dependencies={"next": "14"}),
      "next.config.mjs": "export default { output: 'export' }"}, "next", ["out"]),
    ({"package.json": package(scripts={"build": "vite build"}, devDependencies={
        "@sveltejs/kit": "2", "@sveltejs/adapter-static": "3", "vite": "5"})}, "sveltekit", ["build"]),
    ({"package.json": package(scripts={"build": "eleventy"}, devDependencies={"@11ty/eleventy": "2"})},
     "eleventy", ["_site"]),
    ({"package.json": package(scripts={"build": "node build.js"})}, None, ["dist", "build", "out"]),
    ({"package.json": package(scripts={"build": "node build.js"}), "Staticfile": "root: www/html\n"},
     None, ["www/html"]),
])
def test_built_sites_and_their_output_directory(tmp_path, files, framework, outputs):
    detection = detect(tmp_path, files)
    assert (detection.buildpack, detection.language, detection.framework, detection.web) == (
        "static", "node", framework, "start-nginx")
    assert (detection.base_image, detection.runtime_image) == ("paas/stack-node:bookworm",
                                                               "paas/stack-nginx:bookworm")
    assert detection.build["outputs"] == outputs
    text = d.generate(detection)
    parsed = parse_dockerfile(text)
    assert [s.image for s in parsed.stages] == ["paas/stack-node:bookworm", "paas/stack-nginx:bookworm"]
    runs = [i.command[0] for i in parsed.stages[0].instructions if isinstance(i, Run)]
    assert runs[-2:][0] == "npm run build"
    assert runs[-1].startswith(f"for dir in {' '.join(outputs)}; do")
    assert "COPY --from=build /site/ ./" in text and "root /app;" in heredocs(text)["/etc/nginx/paas/nginx.conf"]


def test_a_development_server_start_script_is_served_as_a_built_site(tmp_path):
    detection = detect(tmp_path, {"package.json": package(scripts={"start": "react-scripts start",
                                                                   "build": "react-scripts build"},
                                                          dependencies={"react-scripts": "5"})})
    assert (detection.buildpack, detection.framework, detection.build["outputs"]) == (
        "static", "create-react-app", ["build"])
    assert any(r.startswith("scripts.start runs a development server (`react-scripts start`)")
               for r in detection.reasons)


@pytest.mark.parametrize("files, buildpack, web", [
    # a server: node, even with a build script
    ({"package.json": package(scripts={"start": "node server.js", "build": "vite build"})}, "node", "npm start"),
    ({"package.json": package(scripts={"build": "tsc"}), "server.js": ""}, "node", "node server.js"),
    # next without `output: 'export'` (sveltekit without adapter-static) builds its server: not a static site
    ({"package.json": package(scripts={"build": "next build"}, dependencies={"next": "14"})}, "node", None),
    ({"package.json": package(scripts={"build": "vite build"}, devDependencies={"@sveltejs/kit": "2", "vite": "5"})},
     "node", None),
    # nothing to build or run: the static detector serves the site; a Procfile keeps it node
    ({"package.json": package(devDependencies={"prettier": "3"}), "index.html": ""}, "static", "start-nginx"),
    ({"package.json": package(), "index.html": "", "Procfile": "web: node app.mjs\n"}, "node", "node app.mjs"),
])
def test_when_a_package_json_is_a_node_app(tmp_path, files, buildpack, web):
    detection = detect(tmp_path, files)
    assert (detection.buildpack, detection.web) == (buildpack, web)


def test_next_without_export_is_a_server_the_app_must_start(tmp_path):
    detection = detect(tmp_path, {"package.json": package(scripts={"build": "next build"},
                                                          dependencies={"next": "14"})})
    assert (detection.buildpack, detection.framework, detection.web) == ("node", "next", None)
    assert ("next builds a server here (without a static export in next.config.*): a node app (its start script, "
            "e.g. `next start`, runs it)") in detection.reasons
    assert any(w.startswith("no web process") for w in detection.warnings)


def test_built_site_with_pnpm_installs_devdependencies_and_the_tool(tmp_path):
    detection = detect(tmp_path, {"package.json": package(scripts={"build": "vite build"}, packageManager="pnpm@9.1.0",
                                                          devDependencies={"vite": "5"}),
                                  "pnpm-lock.yaml": "lockfileVersion: '9.0'\n"})
    text = d.generate(detection)
    assert "npm install --global --no-audit pnpm@9.1.0" in text
    assert "pnpm install --frozen-lockfile\n" in text and "--prod" not in text
    assert "RUN pnpm run build\n" in text


def test_the_node_built_sample(tmp_path):
    detection = d.detect(APPS / "node-build-static")
    assert (detection.buildpack, detection.package_manager, detection.warnings) == ("static", "npm", ())
    assert "scripts.build and no server (no start script, main, index.js or server.js): a static site" in \
        detection.reasons
    text = d.generate(detection)
    assert "COPY package.json package-lock.json ./" in text and "npm ci --no-audit\n" in text
    assert "wrote none of dist/, build/, out/: name the directory it writes with `root: DIR` in a Staticfile" in text


def test_a_built_sites_staticfile_configures_the_serving(tmp_path):
    detection = detect(tmp_path, {"package.json": package(scripts={"build": "vite build"},
                                                          devDependencies={"vite": "5"}),
                                  "Staticfile": "pushstate: enabled\n", "Staticfile.auth": HTPASSWD})
    text = d.generate(detection)
    conf = heredocs(text)["/etc/nginx/paas/nginx.conf"]
    assert "try_files $uri $uri/ /index.html;" in conf and "auth_basic" in conf
    assert "location = /Staticfile" not in conf  # the build output holds no platform files
    assert "COPY Staticfile.auth /etc/nginx/paas/htpasswd" in text


# -- misses -----------------------------------------------------------------------------------------------------------

def test_the_miss_names_every_new_layout():
    listed = d.looked_for()
    assert listed["go"] == ["go.work", "go.mod", "main.go"]
    assert listed["static"] == ["Staticfile", "index.html", "public/index.html", "dist/index.html"]


def test_parse_staticfile_lowercases_keys():
    assert parse_staticfile("ROOT: dist\nPushState: enabled\n") == {"root": "dist", "pushstate": "enabled"}


def test_a_built_site_asking_for_node_20_is_built_and_served_on_trixie(tmp_path):
    detection = detect(tmp_path, {"package.json": package(scripts={"build": "node b.js"}, engines={"node": ">=20"})})
    assert (detection.base_image, detection.runtime_image) == ("paas/stack-node:trixie", "paas/stack-nginx:trixie")
    assert (detection.version.language, detection.version.chosen) == ("node", "20")
