import time

from placebot import health


def test_fresh_heartbeat_is_healthy_and_stale_or_missing_is_not(tmp_path):
    assert not health.is_fresh(tmp_path)
    health.beat(tmp_path)
    assert health.is_fresh(tmp_path)
    assert not health.is_fresh(tmp_path, now=time.time() + health.STALE_AFTER_S + 1)
