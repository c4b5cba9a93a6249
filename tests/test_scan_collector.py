"""The garbage collector's thresholds during a scan (survey/scan/collector.py).

A scan sets its own and gives the caller's back, whether it ends well or not: a
notebook that runs a scan must not be left with another process's settings.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import trio

from survey.scan.collector import SCAN_THRESHOLDS, scan_thresholds, thresholds
from survey.scan.config import ScanConfig, apply_world, load_world
from survey.scan.progress import Progress
from survey.scan.run import run_scan
from tests.worlds import served_world

CALLERS = (1234, 5, 6)      # not CPython's defaults, not the scan's


@pytest.fixture
def callers_thresholds():
    with thresholds(CALLERS):
        yield


def test_the_thresholds_are_set_inside_and_given_back_after_an_error(callers_thresholds):
    with pytest.raises(RuntimeError), scan_thresholds():
        assert gc.get_threshold() == SCAN_THRESHOLDS
        raise RuntimeError("the scan failed")
    assert gc.get_threshold() == CALLERS


class ThresholdsSeen(Progress):
    """Progress that notes the collector's thresholds as each domain ends."""

    def __init__(self) -> None:
        super().__init__(enabled=False)
        self.seen: set[tuple[int, ...]] = set()

    def domain(self, status: str) -> None:
        self.seen.add(gc.get_threshold())
        super().domain(status)


def test_a_scan_runs_at_the_scan_thresholds_and_gives_the_callers_back(tmp_path,
                                                                       callers_thresholds):
    with served_world(tmp_path / "world", domains=12, seed=8) as world:
        described = load_world(world)
        config = ScanConfig(input=Path(described["domain_list"]), out=tmp_path / "scan")
        apply_world(config, described)
        progress = ThresholdsSeen()
        manifest = trio.run(run_scan, config, progress)
    assert manifest["counts"]["domains"] == 12
    assert progress.seen == {SCAN_THRESHOLDS}
    assert gc.get_threshold() == CALLERS
