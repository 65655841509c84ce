"""A fake Discord (REST API v10 and gateway) for testing the bot with the real discord.py."""

from .server import FakeDiscord, Interaction, Message, Recorded

__all__ = ["FakeDiscord", "Interaction", "Message", "Recorded"]
