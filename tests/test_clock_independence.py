"""The guard behind "no test depends on today's date": `.ci/run` moves the wall clock."""

import os
from datetime import UTC, datetime, timedelta


def test_the_wall_clock_runs_as_far_ahead_as_ci_asks(tmp_path):
    """The file system's clock is the kernel's, which time-machine does not move."""
    marker = tmp_path / "now"
    marker.write_text("")
    kernel_now = datetime.fromtimestamp(marker.stat().st_mtime, UTC)
    days = int(os.environ.get("BYOI_TEST_SHIFT_DAYS") or 0)
    ahead = datetime.now(UTC) - kernel_now
    assert abs(ahead - timedelta(days=days)) < timedelta(minutes=1), ahead
