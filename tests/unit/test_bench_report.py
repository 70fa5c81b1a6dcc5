"""bench/report.py: the figures the bench scripts report, their goals and verdicts, and the table, JSON lines and
markdown that bench/run_all.py makes of them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "report.py"
_spec = importlib.util.spec_from_file_location("bench_report", _PATH)
bench_report = importlib.util.module_from_spec(_spec)
sys.modules["bench_report"] = bench_report
_spec.loader.exec_module(bench_report)

Figure, figure, not_measured = bench_report.Figure, bench_report.figure, bench_report.not_measured


def test_ratio_goal_is_met_or_missed_on_ours_over_peer():
    fast = figure("container_start", "start->exit", 12.0, "ms", peer=10.0, peer_name="crun", max_ratio=1.3)
    slow = figure("container_start", "start->exit", 14.0, "ms", peer=10.0, peer_name="crun", max_ratio=1.3)
    assert fast.ratio == pytest.approx(1.2) and fast.ok is True and fast.goal == "ratio <= 1.3x"
    assert slow.ratio == pytest.approx(1.4) and slow.ok is False
    throughput = figure("registry_transfer", "push", 70.0, "MB/s", peer=100.0, min_ratio=0.8)
    assert throughput.ok is False and throughput.goal == "ratio >= 0.8x"


def test_goal_on_our_value_and_combined_goals():
    cold = figure("deploy", "cold push", 4.0, "s", peer=5.0, peer_name="Piku", at_most=5.0)
    assert cold.ok is True and cold.goal == "<= 5 s" and cold.ratio == pytest.approx(0.8)
    both = figure("x", "y", 6.0, "s", peer=5.0, max_ratio=2.0, at_most=5.0)
    assert both.goal == "ratio <= 2x, <= 5 s" and both.ok is False  # the ratio holds, the bound does not


def test_no_goal_or_a_missing_value_gives_no_verdict():
    assert figure("access", "check", 40.0, "us").ok is None
    no_peer = figure("x", "y", 3.0, "s", max_ratio=1.0)  # the goal needs a peer that was not measured
    assert no_peer.ratio is None and no_peer.ok is None
    assert bench_report.verdict(no_peer) == "-"
    assert bench_report.verdict(figure("access", "check", 40.0, "us")) == "no goal"
    assert bench_report.verdict(not_measured("x", "y", "podman is not installed")) == "not measured"
    assert bench_report.verdict(figure("x", "y", 0.0, "requests", at_most=0)) == "ok"


@pytest.mark.parametrize(("value", "unit", "text"), [
    (None, "s", "-"), (1234.4, "req/s", "1234 req/s"), (45.67, "ms", "45.7 ms"), (1.234, "s", "1.23 s"),
    (0.01234, "% of a core", "0.0123 % of a core"), (0, "requests", "0 requests"), (3.0, "", "3"), (2.5, "", "2.50"),
])
def test_values_are_shown_with_a_few_significant_figures(value, unit, text):
    assert bench_report.format_value(value, unit) == text


def test_report_appends_json_lines_that_read_back(tmp_path, monkeypatch):
    target = tmp_path / "figures.jsonl"
    monkeypatch.setenv(bench_report.REPORT_ENV, str(target))
    first = figure("layer_extract", "extract", 2.0, "s", peer=1.0, peer_name="umoci", max_ratio=1.25)
    bench_report.report(first)
    bench_report.report(not_measured("layer_extract", "other", "umoci is missing"), figure("a", "b", 1.0, "s"))
    lines = target.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["ratio"] == 2.0  # the ratio is in the JSON for readers
    assert bench_report.read_figures(target)[0] == first
    assert [f.figure for f in bench_report.read_figures(target)] == ["extract", "other", "b"]


def test_report_without_a_target_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(bench_report.REPORT_ENV, raising=False)
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    bench_report.report(figure("a", "b", 1.0, "s"))
    assert list(here.iterdir()) == []
    assert bench_report.read_figures(tmp_path / "missing.jsonl") == []


FIGURES = [
    figure("registry_transfer", "registry push", 310.0, "MB/s", peer=280.0, peer_name="skopeo", min_ratio=0.8),
    figure("deploy", "one-line change -> served", 1.52, "s", at_most=1.3, note="median of 5"),
    not_measured("container_start", "start->exit vs podman", "podman is not installed"),
]


def test_text_table_has_one_aligned_row_per_figure():
    lines = bench_report.render_text(FIGURES).splitlines()
    assert lines[0].split() == ["bench", "figure", "ours", "peer", "ratio", "goal", "verdict", "note"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert len(lines) == 2 + len(FIGURES)
    push, change, podman = lines[2:]
    assert "310 MB/s" in push and "skopeo 280 MB/s" in push and "1.11x" in push and push.rstrip().endswith("ok")
    assert "1.52 s" in change and "<= 1.3 s" in change and "MISSED" in change and change.endswith("median of 5")
    assert "not measured" in podman and podman.endswith("podman is not installed")
    # the columns line up: every row's verdict starts where the header's does
    column = lines[0].index("verdict")
    assert all(line[column:].split()[0] in ("ok", "MISSED", "not") for line in lines[2:])


def test_markdown_names_the_machine_and_escapes_cells():
    run = {
        "started": "2026-12-06T22:00:00+00:00", "mode": "full", "commit": "abc123", "seconds": 1800,
        "machine": {"cpu": "AMD EPYC 7B13", "cores": 2, "ram_gib": 23.5, "kernel": "6.1.0-28-amd64",
                    "debian": "12.8", "os": "Debian GNU/Linux 12 (bookworm)", "loadavg_start": 0.1,
                    "loadavg_end": 1.9},
        "benches": [{"name": "routing", "exit": 1, "error": "missing tools: wrk"}],
        "figures": [f.to_dict() for f in FIGURES] + [Figure("routing", "(not run)", note="a|b").to_dict()],
    }
    text = bench_report.render_markdown(run)
    head, _, rest = text.partition("\n\n")
    assert "AMD EPYC 7B13, 2 cores, 23.5 GiB RAM" in head and "Debian 12.8" in head and "6.1.0-28-amd64" in head
    assert "commit abc123" in head and "load average 0.1 at the start, 1.9 at the end" in head
    table = [line for line in rest.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(FIGURES) + 1
    assert table[1] == "|---|---|---:|---:|---:|---|---|---|"
    assert all(line.count(" | ") == 7 for line in table[2:-1])
    assert "a\\|b" in table[-1]
    assert "- `bench/routing.py` exited 1: missing tools: wrk" in text


def test_a_figure_survives_its_dict():
    fig = figure("dashboard", "p50", 12.5, "ms", at_most=30, note="x")
    assert Figure.from_dict(json.loads(json.dumps(fig.to_dict()))) == fig
