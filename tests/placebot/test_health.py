import time

from placebot import health


def test_fresh_heartbeat_is_healthy_and_stale_or_missing_is_not(tmp_path):
    assert not health.is_fresh(tmp_path)
    health.beat(tmp_path)
    assert health.is_fresh(tmp_path)
    assert not health.is_fresh(tmp_path, now=time.time() + health.STALE_AFTER_S + 1)


async def test_heartbeat_goes_on_after_a_failed_write_and_says_so(
        fake, start_bot, tmp_path, monkeypatch, caplog):
    """A write that fails (full disk, say) is logged, and the next beat writes again."""
    monkeypatch.setattr(health, "EVERY_S", 0.01)
    data = tmp_path / "data"
    data.mkdir()
    health.heartbeat_path(data).mkdir()  # a folder where the file goes: every write fails
    async with start_bot(data_dir=data):
        await fake.wait_for(lambda: any("heartbeat" in r.getMessage() for r in caplog.records
                                        if r.levelname == "WARNING"))
        health.heartbeat_path(data).rmdir()
        await fake.wait_for(lambda: health.is_fresh(data))
