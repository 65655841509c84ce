"""The bot around the image engine (pipeline/): discord_side/ talks to Discord, jobs/ queues,
renders and journals jobs without knowing Discord, distributed/ runs the same jobs through
Redis on render workers, servers/ holds each server's own settings. docs/architecture.md maps
it; commands are in cogs/."""
