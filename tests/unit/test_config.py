"""paas.config: data root paths, defaults, merging the YAML file, PAAS_CONFIG, registry settings."""

from __future__ import annotations

import copy
import os
import stat
from pathlib import Path

import pytest
import yaml

from paas.config import DEFAULT_CONFIG_TEXT, DEFAULTS, init_root, is_loopback_host, load_config, paths_from_env
from paas.errors import ConfigError


@pytest.fixture
def paths(isolated_env):
    return paths_from_env()


def write_config(paths, text: str) -> Path:
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text(text)
    return paths.config_file


def test_paths_follow_paas_root(isolated_env, monkeypatch, tmp_path):
    """PAAS_ROOT sets the root (made absolute); every path lives under it; default is /var/lib/paas."""
    paths = paths_from_env()
    assert paths.root == isolated_env
    assert paths.config_file == isolated_env / "paas.yml"
    assert paths.state_db == isolated_env / "state.db"
    assert all(p == paths.root or paths.root in p.parents for p in paths.all_dirs())
    monkeypatch.chdir(tmp_path)
    assert paths_from_env("rel-root").root == tmp_path / "rel-root"
    monkeypatch.delenv("PAAS_ROOT")
    assert paths_from_env().root == Path("/var/lib/paas")


def test_defaults_without_a_file(paths):
    config = load_config(paths)
    assert config.data == DEFAULTS
    assert config.get("domain") == "paas.localhost"
    assert config.get("images.compression") == "gzip"
    assert config.get("images.parallel_transfers") == 4
    assert config.get("images.nope", "fallback") == "fallback"
    assert config.get("domain.deeper", 7) == 7  # through a non-mapping: the default


def test_defaults_are_not_shared(paths):
    """Changing a loaded config never changes DEFAULTS or the next load."""
    before = copy.deepcopy(DEFAULTS)
    config = load_config(paths)
    config.data["images"]["compression"] = "zstd"
    config.data["registries"]["x"] = {}
    assert DEFAULTS == before
    assert load_config(paths).get("images.compression") == "gzip"


def test_init_writes_a_config_equal_to_the_defaults(paths):
    """`paas init`'s commented config file says exactly what the built-in defaults say."""
    created = init_root(paths)
    assert paths.config_file in created and paths.root in created
    assert yaml.safe_load(DEFAULT_CONFIG_TEXT) == DEFAULTS
    assert load_config(paths).data == DEFAULTS
    assert stat.S_IMODE(paths.root.stat().st_mode) == 0o700


def test_init_writes_the_network_pair_it_is_given(paths):
    init_root(paths, network=lambda: ("pt1a2b0", "10.231.4.0/24"))
    config = load_config(paths)
    assert config.get("network") == {"bridge": "pt1a2b0", "subnet": "10.231.4.0/24", "isolate_apps": True}
    assert {k: v for k, v in config.data.items() if k != "network"} == \
        {k: v for k, v in DEFAULTS.items() if k != "network"}


def test_init_is_idempotent_and_keeps_an_edited_config(paths):
    init_root(paths)
    paths.config_file.write_text("domain: example.org\n")
    assert init_root(paths) == []
    assert paths.config_file.read_text() == "domain: example.org\n"
    assert all(p.is_dir() for p in paths.all_dirs())


def test_file_merges_over_defaults(paths):
    """Keys in the file override defaults one level deep at a time; other defaults stay."""
    write_config(paths, "domain: apps.example.org\nimages:\n  compression: zstd\n"
                        "registries:\n  registry.example.com:\n    username: me\n    password: s3cret\n")
    config = load_config(paths)
    assert config.get("domain") == "apps.example.org"
    assert config.get("images.compression") == "zstd"
    assert config.get("images.parallel_transfers") == 4 and config.get("images.chunk_size_mb") == 64
    assert config.get("network") == {"isolate_apps": True}  # bridge and subnet: the root's claim (network.owner)
    assert config.registry("registry.example.com") == {"username": "me", "password": "s3cret", "insecure": False}


def test_empty_file_means_defaults(paths):
    write_config(paths, "# nothing but a comment\n")
    assert load_config(paths).data == DEFAULTS


def test_paas_config_overrides_the_path(paths, monkeypatch, tmp_path):
    """PAAS_CONFIG points elsewhere: that file is read (and the one in the root ignored)."""
    write_config(paths, "domain: from-root.example\n")
    other = tmp_path / "etc" / "paas" / "custom.yml"
    monkeypatch.setenv("PAAS_CONFIG", str(other))
    assert paths.config_file == other
    assert load_config(paths).get("domain") == "paas.localhost"  # the other file does not exist yet
    other.parent.mkdir(parents=True)
    other.write_text("domain: from-env.example\n")
    assert load_config(paths).get("domain") == "from-env.example"


def test_init_writes_the_paas_config_file(paths, monkeypatch, tmp_path):
    other = tmp_path / "elsewhere" / "paas.yml"
    monkeypatch.setenv("PAAS_CONFIG", str(other))
    init_root(paths)
    assert other.read_text() == DEFAULT_CONFIG_TEXT
    assert not (paths.root / "paas.yml").exists()


@pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1:5000", "127.10.0.3", "[::1]:5000",
                                  "[::1]"])
def test_loopback_registries_are_insecure_by_default(paths, host):
    assert is_loopback_host(host)
    assert load_config(paths).registry(host) == {"insecure": True}


@pytest.mark.parametrize("host", ["example.com", "registry.example.com:5000", "10.0.0.1:5000", "[::2]:5000",
                                  "127.example.com", "127.0.0.1.nip.io:5000", "localhost.example.com"])
def test_other_registries_are_secure_by_default(paths, host):
    """Only loopback IPs and 'localhost' default to plain HTTP; names that merely look alike do not."""
    assert not is_loopback_host(host)
    assert load_config(paths).registry(host) == {"insecure": False}


def test_explicit_insecure_setting_wins(paths):
    write_config(paths, "registries:\n  localhost:5000:\n    insecure: false\n"
                        "  lan.example:5000:\n    insecure: true\n")
    config = load_config(paths)
    assert config.registry("localhost:5000")["insecure"] is False
    assert config.registry("lan.example:5000")["insecure"] is True
    assert config.registry("localhost:5001")["insecure"] is True


@pytest.mark.parametrize("value", ["bz2", "GZIP", "3", "none"])
def test_invalid_compression_is_rejected(paths, value):
    path = write_config(paths, f"images:\n  compression: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(paths)
    assert str(path) in info.value.message and "images.compression" in info.value.message
    assert info.value.hint == "use gzip or zstd"


@pytest.mark.parametrize("value", ["gzip", "zstd"])
def test_valid_compression_is_accepted(paths, value):
    write_config(paths, f"images:\n  compression: {value}\n")
    assert load_config(paths).get("images.compression") == value


def test_invalid_yaml_is_one_line_naming_the_file(paths):
    path = write_config(paths, "domain: [unclosed\nimages:\n  - : :\n")
    with pytest.raises(ConfigError) as info:
        load_config(paths)
    assert str(path) in info.value.message
    assert "\n" not in info.value.one_line()


def test_non_mapping_config_is_rejected(paths):
    path = write_config(paths, "- just\n- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping") as info:
        load_config(paths)
    assert str(path) in info.value.message


def test_unreadable_config_path_is_a_config_error(paths):
    """A directory where the file should be is reported like bad YAML, not as a crash."""
    paths.config_file.mkdir(parents=True)
    with pytest.raises(ConfigError) as info:
        load_config(paths)
    assert str(paths.config_file) in info.value.message
    assert os.path.isdir(paths.config_file)


def test_config_is_reparsed_when_the_file_changes(tmp_path):
    from paas.config import load_config, paths_from_env

    paths = paths_from_env(tmp_path / "root")
    paths.root.mkdir()
    paths.config_file.write_text("domain: one.example\n")
    assert load_config(paths).get("domain") == "one.example"
    assert (paths.root / ".config-cache.json").exists()
    assert load_config(paths).get("domain") == "one.example"  # from the cache
    paths.config_file.write_text("domain: two.example\n")
    assert load_config(paths).get("domain") == "two.example"
    paths.config_file.write_text("created: 2024-01-01\n")  # a date: JSON cannot hold it, YAML each time
    assert str(load_config(paths).get("created")) == "2024-01-01"
