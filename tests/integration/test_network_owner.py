"""Bridge ownership for real (root): the upgrade of a live install whose bridge has no alias yet, an unmarked
bridge serving someone else, and a host record holding a name while its bridge is gone (paas.network.owner).
Every bridge is a pt<hex> of the test's own, every subnet in 10.200.0.0/16; all removed afterwards."""

from __future__ import annotations

import os
import secrets
import subprocess

import pytest

from paas import locks, network, state
from paas.config import Config
from paas.errors import UserError
from paas.network import ipam, links, owner
from paas.network import plan as P
from tests.conftest import need_root, need_tool
from tests.integration.test_network import _free_test_subnet

pytestmark = pytest.mark.integration


@pytest.fixture
def names():
    """Bridges, containers and roots the test makes; everything removed afterwards."""
    need_root()
    need_tool("nft")
    made = {"links": [], "roots": []}
    yield made
    for conn, config, containers in made["roots"]:
        for cid in containers:
            network.teardown_container_network(conn, config, cid)
        network.remove_network(conn, config, only_if_unused=True, forget=True)
        conn.close()
    for name in made["links"]:
        subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=30)


def a_root(tmp_path, name, bridge, subnet, made):
    root = tmp_path / name
    root.mkdir()
    conn = state.connect(root / "state.db")
    config = Config({"network": {"bridge": bridge, "subnet": subnet}})
    made["roots"].append((conn, config, []))
    return root, conn, config


def test_a_live_install_without_alias_keeps_its_bridge_and_gets_marked(tmp_path, names):
    bridge, subnet = f"pt{secrets.token_hex(3)}", _free_test_subnet()
    root, conn, config = a_root(tmp_path, "installed", bridge, subnet, names)
    first = secrets.token_hex(16)
    network.setup_container_network(conn, config, first)  # as the old release made it ...
    names["roots"][-1][2].append(first)
    subprocess.run(["ip", "link", "set", bridge, "alias", ""], check=True, timeout=30)  # ... without an alias
    assert owner.link_alias(bridge) is None
    os.unlink(os.path.join(owner.RECORDS_DIR, bridge))
    second = secrets.token_hex(16)
    attachment = network.setup_container_network(conn, config, second)  # the upgraded release adopts it
    names["roots"][-1][2].append(second)
    assert attachment.bridge == bridge
    assert owner.link_alias(bridge) == P.owner_alias(str(root))
    assert ipam.leases(conn, bridge).keys() == {first, second}


def test_an_unmarked_bridge_serving_someone_else_is_refused(tmp_path, names):
    bridge, subnet = f"pt{secrets.token_hex(3)}", _free_test_subnet()
    port = f"pv{secrets.token_hex(3)}"
    names["links"] += [port, bridge]
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True, timeout=30)
    subprocess.run(["ip", "link", "add", port, "type", "veth", "peer", "name", f"{port}p"], check=True, timeout=30)
    subprocess.run(["ip", "link", "set", port, "master", bridge], check=True, timeout=30)
    _root, conn, config = a_root(tmp_path, "newcomer", bridge, subnet, names)
    with pytest.raises(UserError, match="unmarked bridge in use"):
        network.setup_container_network(conn, config, secrets.token_hex(16))
    assert ipam.leases(conn, bridge) == {}
    assert network.remove_network(conn, config, only_if_unused=True) is False
    assert links.link_exists(bridge)


def test_a_record_holds_the_name_while_the_owners_paasd_runs(tmp_path, names):
    bridge, subnet = f"pt{secrets.token_hex(3)}", _free_test_subnet()
    first_root, first, first_config = a_root(tmp_path, "first", bridge, subnet, names)
    cid = secrets.token_hex(16)
    network.setup_container_network(first, first_config, cid)
    network.teardown_container_network(first, first_config, cid)
    assert network.remove_network(first, first_config, only_if_unused=True)  # the bridge goes, the record stays
    assert not links.link_exists(bridge)
    _root, second, second_config = a_root(tmp_path, "second", bridge, subnet, names)
    fd = locks.hold_for_process(first_root / "locks" / "paasd.lock", busy=lambda pid: AssertionError(pid))
    try:  # the first root's paasd runs: its bridge comes back with its next container
        with pytest.raises(UserError, match=f"belongs to the paas data root {first_root}"):
            network.setup_container_network(second, second_config, secrets.token_hex(16))
        assert bridge in owner.taken()[0]
    finally:
        os.close(fd)
    assert bridge not in owner.taken()[0]  # no paasd, no bridge: the name is free again


def test_a_root_whose_config_names_no_network_claims_a_free_pair_on_first_use(tmp_path, names):
    """A root made before `paas init` wrote the pair (or a hand-written config): opening it claims one, from the
    suite's PAAS_NETWORK_BASE here, and keeps it."""
    from paas.config import init_root, paths_from_env
    from paas.context import open_context

    paths = paths_from_env(tmp_path / "root")
    init_root(paths)  # no network lines: what a config without them looks like
    assert "bridge:" not in paths.config_file.read_text()
    ctx = open_context(paths.root)
    try:
        bridge, subnet = ctx.config.get("network.bridge"), ctx.config.get("network.subnet")
        stem, _first = P.parse_network_base(os.environ.get(P.NETWORK_BASE_ENV))
        assert bridge.startswith(stem) and P.parse_subnet(subnet).subnet_of(P.parse_subnet("10.0.0.0/8"))
        assert bridge not in ("paas0",) and not P.parse_subnet(subnet).overlaps(P.parse_subnet("10.88.0.0/16"))
        assert owner.claimed(ctx.conn) == (bridge, P.parse_subnet(subnet))
    finally:
        ctx.close()
    again = open_context(paths.root)
    try:
        assert again.config.get("network.bridge") == bridge  # kept, not picked anew
        names["roots"].append((state.connect(paths.state_db), again.config, []))
    finally:
        again.close()
