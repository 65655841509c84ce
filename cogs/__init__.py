"""Discord commands. Each module is an extension with a cog and `async def setup(bot)`."""
