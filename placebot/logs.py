"""Logging with timestamps and levels, and a filter that keeps the bot token out of every line."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    """Replaces any occurrence of the given secrets in a record's final text."""

    def __init__(self, *secrets: str):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if any(s in text or (record.exc_text and s in record.exc_text) for s in self.secrets):
            for secret in self.secrets:
                text = text.replace(secret, "[redacted]")
                if record.exc_text:
                    record.exc_text = record.exc_text.replace(secret, "[redacted]")
            record.msg, record.args = text, None
        return True


def setup_logging(level: str = "INFO", *secrets: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, "%Y-%m-%d %H:%M:%S"))
    handler.addFilter(RedactSecrets(*secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("discord").setLevel(max(logging.INFO, root.level))
