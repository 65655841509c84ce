"""The Discord side of the bot: settings, queue, worker, journal, delivery. Commands are in
cogs/, the image engine in pipeline/."""
