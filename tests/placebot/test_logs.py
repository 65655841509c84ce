"""The bot token never reaches a log line."""

import logging

from placebot.logs import setup_logging
from tests.support.bot_harness import wait_result

TOKEN = "fake-token"  # what the test bots log in with


def test_redaction_filter_removes_the_token_from_messages_and_tracebacks(capsys):
    setup_logging("INFO", "MTIz.secret.value")
    log = logging.getLogger("probe")
    log.info("connecting with %s", "MTIz.secret.value")
    try:
        raise RuntimeError("bad token MTIz.secret.value")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert "MTIz.secret.value" not in err and err.count("[redacted]") >= 2
    assert "INFO" in err and err[:4].isdigit()  # timestamps and levels
    logging.getLogger().handlers.clear()


async def test_a_whole_bot_session_at_debug_logs_no_token(fake, start_bot, caplog):
    """Login, sync, a job and shutdown at DEBUG (discord.py's HTTP traces included)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="discord")
    async with start_bot():
        await wait_result(fake, fake.slash("place"))
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert len(caplog.records) > 20 and TOKEN not in text
