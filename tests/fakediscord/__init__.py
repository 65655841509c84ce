"""A fake Discord (REST API v10 and gateway) for testing the bot with the real discord.py."""

from .server import FakeDiscord, Fault, Interaction, Message, Recorded

__all__ = ["FakeDiscord", "Fault", "Interaction", "Message", "Recorded"]
