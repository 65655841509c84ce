"""A fake Discord for tests: REST API v10 and the gateway on 127.0.0.1, for the real discord.py.

The fake records what the bot sends (requests, messages, interaction callbacks, gateway
traffic), refuses as Discord does every body that Discord's published API spec refuses
(spec_check.py), and lets a test act as a user (`slash`, `click`) or as a flaky Discord
(`fail_next`, `outage`, `expire_token`, `forbidden_channels`, `drop_gateway`). README.md in
this folder has the tour.
Ids in records are strings, as on the wire; the constructor's ids stay the ints you passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import math
import mimetypes
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import discord
import yarl
from aiohttp import WSMsgType, web
from discord.gateway import DiscordWebSocket

from tests.fakediscord import spec_check
from tests.fakediscord.spec_check import Problem
from tests.support.patience import PATIENCE_S

log = logging.getLogger(__name__)

Json = dict[str, Any]
Reply = tuple[int, Any]  # (HTTP status, JSON body or None for no body)

EPHEMERAL = 1 << 6  # message flag
LOADING = 1 << 7  # message flag of a deferred "is thinking..." response
ALL_PERMISSIONS = str(discord.Permissions.all().value)
EVERYONE_PERMISSIONS = str(discord.Permissions(
    view_channel=True, send_messages=True, read_message_history=True, embed_links=True,
    attach_files=True, add_reactions=True, use_application_commands=True,
).value)
OPTION_TYPES = {bool: 5, int: 4, float: 10, str: 3}  # bool first: it is an int too
ATTACHMENT_OPTION = 11  # its value is an attachment id; the attachment is in data.resolved
CHANNEL_OPTION = 7  # its value is a channel id; the channel is in data.resolved
ADMINISTRATOR = 1 << 3  # a member with it passes every permission check
TEXT, DM, THREAD = 0, 1, 11  # channel types
THREAD_TYPES = (10, 11, 12)
CHAT_INPUT, MESSAGE_COMMAND = 1, 3  # application command types

UNKNOWN_WEBHOOK = 404, {"code": 10015, "message": "Unknown Webhook"}
UNKNOWN_MESSAGE = 404, {"code": 10008, "message": "Unknown Message"}
UNKNOWN_CHANNEL = 404, {"code": 10003, "message": "Unknown Channel"}
UNKNOWN_INTERACTION = 404, {"code": 10062, "message": "Unknown interaction"}
INVALID_TOKEN = 401, {"code": 50027, "message": "Invalid Webhook Token"}
MISSING_PERMISSIONS = 403, {"code": 50013, "message": "Missing Permissions"}
TOO_LARGE = 413, {"code": 40005, "message": "Request entity too large"}
NONCE_WINDOW_S = 300.0  # Discord: a nonce is checked "in the past few minutes"

_MESSAGE = r"/messages/(?P<mid>@original|\d+)"
_WEBHOOK = r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)"
_COMMANDS = r"/applications/(?P<app>\d+)(?:/guilds/(?P<guild>\d+))?/commands"
# (method, path under /api/v10, handler): add a route here and a `_name(self, rec, **groups)`.
ROUTES = [
    ("GET", r"/users/@me", "_get_me"),
    ("POST", r"/users/@me/channels", "_open_dm"),
    ("GET", r"/oauth2/applications/@me", "_get_application"),
    ("GET", r"/gateway(?:/bot)?", "_get_gateway"),
    ("PUT", _COMMANDS, "_put_commands"),
    ("GET", _COMMANDS, "_get_commands"),
    ("POST", r"/interactions/(?P<iid>\d+)/(?P<token>[^/]+)/callback", "_callback"),
    ("POST", _WEBHOOK, "_followup"),
    ("GET", _WEBHOOK + _MESSAGE, "_webhook_message"),
    ("PATCH", _WEBHOOK + _MESSAGE, "_webhook_message"),
    ("DELETE", _WEBHOOK + _MESSAGE, "_webhook_message"),
    ("GET", r"/channels/(?P<cid>\d+)", "_get_channel"),
    ("POST", r"/channels/(?P<cid>\d+)/messages", "_post_message"),
    ("GET", r"/channels/(?P<cid>\d+)" + _MESSAGE, "_channel_message"),
    ("PATCH", r"/channels/(?P<cid>\d+)" + _MESSAGE, "_channel_message"),
    ("DELETE", r"/channels/(?P<cid>\d+)" + _MESSAGE, "_channel_message"),
]


def _now() -> str:
    return datetime.now(UTC).isoformat()


DISCORD_EPOCH_MS = 1420070400000


@dataclass
class Recorded:
    """One REST request; `path` is relative to /api/v10, `json` is payload_json for multipart.
    `problems`: what Discord would refuse in its body (the fake then answered 400/50035)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[tuple[str, bytes]]
    status: int = 0
    problems: list[Problem] = field(default_factory=list)


@dataclass
class Message:
    """A message the bot made. `edits` counts changes after creation; deletion only marks it."""

    id: str
    channel_id: str
    content: str = ""
    embeds: list[Json] = field(default_factory=list)
    components: list[Json] = field(default_factory=list)
    attachments: list[tuple[str, bytes]] = field(default_factory=list)  # (filename, bytes)
    flags: int = 0
    interaction_token: str | None = None
    deleted: bool = False
    edits: int = 0
    attachment_ids: list[str] = field(default_factory=list, repr=False)
    nonce: str | None = field(default=None, repr=False)  # as the bot sent it, if it did
    reference: Json | None = None  # message_reference: the message this one replies to
    author_id: int | None = None  # a user's message (post_as_user); None: the bot's
    user_attachments: list[Json] = field(default_factory=list, repr=False)  # a user's files
    user_embeds: list[Json] = field(default_factory=list, repr=False)
    timestamp: str = field(default_factory=_now, repr=False)
    edited_timestamp: str | None = field(default=None, repr=False)


@dataclass
class Interaction:
    """An interaction the fake dispatched, and the bot's answers to it."""

    id: str
    token: str
    user_id: int
    type: int  # 2 application command, 3 component, 4 autocomplete
    channel_id: str
    attachment_size_limit: int
    message_id: str | None = None  # the message whose component was clicked
    callbacks: list[Json] = field(default_factory=list)  # callback bodies, in order
    original_id: str | None = None
    dispatched_at: float = 0.0
    answered_at: float | None = None  # loop time of the first accepted callback
    payload: Json = field(default_factory=dict, repr=False)  # the INTERACTION_CREATE data
    fake: FakeDiscord | None = field(default=None, repr=False, compare=False)

    @property
    def original(self) -> Message | None:
        """The @original message: made by a type 4/5 callback, or the clicked one after 6/7."""
        return self.fake.messages.get(self.original_id) if self.original_id else None

    @property
    def followups(self) -> list[Message]:
        return [m for m in self.fake.messages.values()
                if m.interaction_token == self.token and m.id != self.original_id]

    @property
    def ephemeral_texts(self) -> list[str]:
        messages = [self.original, *self.followups]
        return [m.content for m in messages if m is not None and m.flags & EPHEMERAL]


@dataclass
class Fault:
    """An injected failure (fail_next, outage). `hits` counts the requests it answered;
    `lift()` ends it at once (an outage lasts until lifted or until its `until`)."""

    method: str
    pattern: re.Pattern[str]
    status: int
    body: Json | None
    times: float  # math.inf for an outage
    retry_after: float | None
    when: Callable[[Recorded], bool] | None = None
    until: float | None = None  # loop time after which it no longer answers
    lose_reply: bool = False  # the request is carried out, only its reply is the failure
    hits: int = 0
    lifted: bool = False

    def lift(self) -> None:
        self.lifted = True


@dataclass
class Hold:
    """A request held before Discord acts on it (hold): `reached` is set once one arrives;
    `release()` lets it through, `release(apply=False)` answers 503 without acting on it (as
    for a bot that died with the request in flight)."""

    method: str
    pattern: re.Pattern[str]
    when: Callable[[Recorded], bool] | None
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    apply: bool = True
    held: Recorded | None = None

    def release(self, *, apply: bool = True) -> None:
        self.apply = apply
        self.released.set()


class FakeDiscord:
    """An aiohttp server on 127.0.0.1 playing Discord's REST API (v10) and gateway."""

    def __init__(self, *, app_id: int = 1000, bot_user_id: int = 1000, guild_id: int = 2000,
                 channel_id: int = 3000, heartbeat_interval_ms: int = 1000,
                 ack_timeout: float = 3.0) -> None:
        self.app_id, self.bot_user_id = app_id, bot_user_id
        self.guild_id, self.channel_id = guild_id, channel_id
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.ack_timeout = ack_timeout  # Discord forgets an interaction not answered in 3 s
        self.upload_limit = discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES  # channel messages
        self.port = 0
        # Recorded traffic
        self.requests: list[Recorded] = []
        self.unhandled: list[Recorded] = []  # requests no route knew: gaps in the fake
        self.commands: dict[str, list[Json]] = {}
        self.messages: dict[str, Message] = {}
        self.interactions: list[Interaction] = []
        self.sync_count = 0
        self.heartbeats: list[float] = []
        self.identifies = 0
        self.resumes = 0
        self.presences: list[Json] = []
        # Files users attached (user_attachment), served at /attachments/{id}/{name} as
        # Discord's CDN serves them; every fetch of one is recorded by its id.
        self.uploaded: dict[str, bytes] = {}
        self.attachment_fetches: list[str] = []
        # Called with every REST request before it is answered (for "what did the bot know
        # when it said this" checks); an exception is logged and fails the request with a 503
        # (which discord.py does not retry: a 500 would cost 25 s of its retries).
        self.on_request: list[Callable[[Recorded], None]] = []
        self.nonce_window_s = NONCE_WINDOW_S
        # A request Discord would refuse is answered 400/50035 and kept in `refused`; leaving
        # `async with FakeDiscord()` then fails, unless the test expects refusals.
        self.refusals_expected = False
        # Fault injection
        self.forbidden_channels: set[str] = set()
        self.expired_tokens: set[str] = set()
        self._faults: list[Fault] = []
        self._gateway_faults: list[Fault] = []
        self._holds: list[Hold] = []
        # Internals
        self._ids = itertools.count(1)
        self._bot_role_id = self._new_id()
        self.channels: dict[str, Json] = {str(channel_id): {
            "id": str(channel_id), "type": 0, "guild_id": str(guild_id), "name": "general",
            "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None,
            "topic": None, "last_message_id": None, "rate_limit_per_user": 0}}
        self._dms: dict[int, str] = {}  # user id -> DM channel id
        self._attachment_options: dict[str, Json] = {}  # attachment id -> option value
        self._by_token: dict[str, Interaction] = {}
        self._routes = [(m, re.compile(p), getattr(self, h)) for m, p, h in ROUTES]
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._bot_ws: web.WebSocketResponse | None = None  # the session identified last
        # Every identified session and its shard (id, count): Discord sends an interaction to
        # each session of the shard its guild falls in (DMs: shard 0), so two processes
        # without disjoint shards both receive it.
        self.sessions: dict[web.WebSocketResponse, tuple[int, int]] = {}
        self._session_ids: dict[str, tuple[int, int]] = {}  # session id -> its shard
        self._ready = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._seq = 0
        self._session_id = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self._originals: tuple[str, yarl.URL] | None = None
        self._nonces: dict[str, tuple[str, float]] = {}  # nonce -> (message id, loop time)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self, port: int = 0) -> None:
        """Serves on 127.0.0.1 on `port`, or on a free port (0); `self.port` says which.
        A test of a Discord that comes up late points the bot at a port first (install())
        and starts the fake there later."""
        spec_check.checker()  # read the spec now (once per process), not inside a request
        app = web.Application(client_max_size=64 * 1024 * 1024)  # uploads go up to 25 MiB
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{aid}/{name}", self._serve_attachment)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.port = self._runner.addresses[0][1]

    def install(self) -> None:
        """Points discord.py (REST, webhooks and gateway) at this server."""
        if self._originals is None:
            self._originals = (discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = f"{self.url}/api/v10"
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

    def uninstall(self) -> None:
        """Points discord.py back at what install() found."""
        if self._originals is not None:
            discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self._originals
            self._originals = None

    async def close(self) -> None:
        """Uninstalls, then closes every socket and the server."""
        self.uninstall()
        for task in list(self._tasks):
            task.cancel()
        for hold in self._holds:  # none may keep a request (and the server) waiting
            hold.release(apply=False)
        for ws in list(self._sockets):
            await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        self.install()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        await self.close()
        if exc_type is None and self.refused and not self.refusals_expected:
            raise AssertionError(
                "the bot sent requests that Discord would refuse (set fake.refusals_expected "
                "in a test that means to):\n" + "\n".join(map(_refusal_line, self.refused)))

    @property
    def refused(self) -> list[Recorded]:
        """Requests answered 400/50035 because Discord's spec refuses their body."""
        return [rec for rec in self.requests if rec.problems]

    @contextlib.asynccontextmanager
    async def running(self, bot: discord.Client, token: str = "fake-token",
                      timeout: float = 10) -> AsyncIterator[discord.Client]:
        """Runs `bot.start()` until the block ends, then closes the bot and re-raises its errors."""
        self._ready.clear()
        task = asyncio.create_task(bot.start(token))
        ready = asyncio.create_task(self._ready.wait())
        try:
            await asyncio.wait({task, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # raises what stopped the bot
                raise RuntimeError("bot.start() returned before it was ready")
            if not ready.done():
                raise TimeoutError(f"bot not ready after {timeout}s; {self._recent()}")
            yield bot
        finally:
            ready.cancel()
            await bot.close()
            await task

    # -- waiting ----------------------------------------------------------------------------

    async def wait_ready(self, timeout: float = PATIENCE_S) -> None:
        """Waits until a client has IDENTIFY'd (READY + GUILD_CREATE sent) or RESUMEd."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no bot ready after {timeout}s; {self._recent()}") from None

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = PATIENCE_S) -> Any:
        """Polls `predicate()` every 10 ms and returns its first truthy value."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (result := predicate()):
            if asyncio.get_running_loop().time() > deadline:
                try:
                    what = inspect.getsource(predicate).strip()
                except (OSError, TypeError):
                    what = repr(predicate)
                raise TimeoutError(f"still false after {timeout}s: {what}\n{self._recent()}")
            await asyncio.sleep(0.01)
        return result

    def _recent(self) -> str:
        lines = [f"  {r.method} {r.path} -> {r.status}" for r in self.requests[-8:]]
        return "last requests:\n" + ("\n".join(lines) or "  (none)")

    # -- acting as a user -------------------------------------------------------------------

    def slash(self, name: str, options: Json | None = None, *, user_id: int = 4000,
              guild: bool = True, channel_id: int | str | None = None,
              attachment_size_limit: int = 8 * 1024 * 1024, subcommand: str | None = None,
              permissions: int | None = None, check_types: bool = True,
              undeclared: Json | None = None, opened_to_all: bool = False) -> Interaction:
        """Dispatches a `/name` command; `subcommand` is "sub" or "group sub".

        `check_types=False` sends values whose type does not match the synced declaration, and
        `undeclared` options that it lacks (as a client that still holds an older declaration
        of the command can). A command whose `default_member_permissions` the member's
        `permissions` lack is hidden from them, as Discord hides it: PermissionError, unless
        `opened_to_all` (the server opened it to everyone in its Integrations settings)."""
        command = self._find_command(name, guild)
        required = int(command.get("default_member_permissions") or 0)
        held = permissions or 0
        if guild and required and held & required != required and not held & ADMINISTRATOR \
                and not opened_to_all:
            raise PermissionError(f"/{name} needs permissions {required} and the member has "
                                  f"{held}: Discord does not show it to them")
        extra = [{"name": key, "type": OPTION_TYPES[type(value)], "value": value}
                 for key, value in (undeclared or {}).items()]
        data = {"id": command["id"], "name": name, "type": 1,
                "options": self._options(command, subcommand, options or {}, check_types)
                + extra}
        resolved = self._resolved(data["options"])
        if resolved:  # attachments and channels: Discord sends them themselves aside
            data["resolved"] = resolved
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return self._interact(2, data, user_id, guild, channel_id, attachment_size_limit,
                              permissions)

    def autocomplete(self, name: str, options: Json, focused: str, *, user_id: int = 4000,
                     guild: bool = True) -> Interaction:
        """Dispatches an autocomplete request (interaction type 4) for option `focused` of
        `/name`, as Discord does while a user types: the options filled so far, the focused
        one flagged. The bot answers with a type 8 callback: `callbacks[0]["data"]["choices"]`."""
        command = self._find_command(name, guild)
        if focused not in options:
            raise LookupError(f"the focused option {focused!r} needs a value in options")
        typed = self._options(command, None, options)
        declared = {o["name"]: o for o in command.get("options", [])}
        if not declared[focused].get("autocomplete"):
            raise LookupError(f"/{name}'s option {focused!r} was synced without autocomplete")
        for option in typed:
            if option["name"] == focused:
                option["focused"] = True
        data = {"id": command["id"], "name": name, "type": 1, "options": typed}
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return self._interact(4, data, user_id, guild, None, 8 * 1024 * 1024, None)

    def click(self, message_id: int | str, custom_id: str, *, user_id: int = 4000,
              guild: bool = True, permissions: int | None = None,
              values: list[str] | None = None) -> Interaction:
        """Clicks a component of a stored message (`values` for a select menu)."""
        message = self.messages.get(str(message_id))
        if message is None or message.deleted:
            raise LookupError(f"no live message {message_id}")
        component = _find_component(message.components, custom_id)
        if component is None:
            raise LookupError(f"message {message_id} has no component {custom_id!r}: "
                              f"{message.components}")
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled: a user can't click it")
        data: Json = {"custom_id": custom_id, "component_type": component["type"]}
        if values is not None:
            data["values"] = values
        guild = guild and self.channels[message.channel_id]["type"] != 1
        return self._interact(3, data, user_id, guild, message.channel_id, 8 * 1024 * 1024,
                              permissions, message)

    def click_forged(self, message_id: int | str, custom_id: str, *, user_id: int = 4000,
                     permissions: int | None = None) -> Interaction:
        """Clicks a button with any custom_id: the button is first added to the stored message,
        as on a message from an older version of the bot (Discord only relays clicks on
        components that the message really has, and so does discord.py)."""
        message = self.messages[str(message_id)]
        button = {"type": 2, "style": 2, "label": "old", "custom_id": custom_id}
        message.components = [*message.components, {"type": 1, "components": [button]}]
        return self.click(message_id, custom_id, user_id=user_id, permissions=permissions)

    def message_command(self, name: str, message_id: int | str, *, user_id: int = 4000,
                        guild: bool = True) -> Interaction:
        """Runs the message command `name` (right-click a message → Apps) on a stored message."""
        message = self.messages.get(str(message_id))
        if message is None or message.deleted:
            raise LookupError(f"no live message {message_id}")
        command = self._find_command(name, guild, MESSAGE_COMMAND)
        data = {"id": command["id"], "name": name, "type": MESSAGE_COMMAND,
                "target_id": message.id,
                "resolved": {"messages": {message.id: self._message_payload(message)}}}
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return self._interact(2, data, user_id, guild, message.channel_id, 8 * 1024 * 1024,
                              None)

    def user_attachment(self, filename: str, data: bytes, *, content_type: str | None = None,
                        size: int | None = None) -> Json:
        """A file a user attached, served by the fake like Discord's CDN: pass it as an
        attachment option's value, or to post_as_user. `size` is what Discord declares
        (default: the real size); `content_type` defaults to the one the name suggests."""
        aid = self._new_id()
        self.uploaded[aid] = data
        url = f"{self.url}/attachments/{aid}/{filename}"
        return {"id": aid, "filename": filename, "size": len(data) if size is None else size,
                "url": url, "proxy_url": url,
                "content_type": content_type or mimetypes.guess_type(filename)[0]}

    def post_as_user(self, content: str = "", *, attachments: list[Json] = (),
                     embeds: list[Json] = (), user_id: int = 4001,
                     channel_id: int | None = None) -> Message:
        """A message a user posted (with user_attachment files and embeds), for a message
        command to be used on; the bot does not see it (it has no message intents)."""
        message = Message(self._new_id(), str(channel_id or self.channel_id), content=content,
                          author_id=user_id, user_attachments=list(attachments),
                          user_embeds=list(embeds))
        self.messages[message.id] = message
        return message

    def media_proxy_url(self, filename: str, data: bytes) -> str:
        """Where Discord's media proxy would serve an image a user linked (an embed's
        proxy_url)."""
        return self.user_attachment(filename, data)["proxy_url"]

    async def _serve_attachment(self, request: web.Request) -> web.Response:
        aid = request.match_info["aid"]
        self.attachment_fetches.append(aid)
        data = self.uploaded.get(aid)
        if data is None:
            return web.Response(status=404)
        kind = mimetypes.guess_type(request.match_info["name"])[0] or "application/octet-stream"
        return web.Response(body=data, content_type=kind)

    def add_channel(self, name: str, *, nsfw: bool = False, announce: bool = True) -> int:
        """A text channel of the guild (`nsfw`: age-restricted): in GUILD_CREATE if the bot
        has not started yet, else announced with CHANNEL_CREATE (`announce=False`: not, as if
        the event was lost, so the bot can learn of it only by asking). Returns its id."""
        cid = self._new_id()
        self.channels[cid] = {**self.channels[str(self.channel_id)], "id": cid, "name": name,
                              "nsfw": nsfw, "position": len(self.channels)}
        if announce:
            self._announce("CHANNEL_CREATE", self.channels[cid])
        return int(cid)

    def add_thread(self, parent_id: int | str, name: str = "a thread") -> int:
        """A public thread in a channel. The bot learns of it only from the interactions in
        it (their channel object: the thread, with its parent_id), as of a thread made
        before the bot's last start that it never joined. Returns its id."""
        tid = self._new_id()
        self.channels[tid] = {
            "id": tid, "type": THREAD, "guild_id": str(self.guild_id), "name": name,
            "parent_id": str(parent_id), "owner_id": "4000", "message_count": 0,
            "member_count": 1, "rate_limit_per_user": 0, "flags": 0, "last_message_id": None,
            "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                "archive_timestamp": _now(), "locked": False}}
        return int(tid)

    def _announce(self, event: str, data: Json) -> None:
        if self._bot_ws is None:  # not started yet: GUILD_CREATE will carry it
            return
        task = asyncio.create_task(self._dispatch(self._bot_ws, event, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _resolved(self, options: list[Json]) -> Json:
        """data.resolved for the attachments and channels among (sub)command options."""
        resolved: Json = {}
        for option in options:
            if option.get("options"):
                for kind, items in self._resolved(option["options"]).items():
                    resolved.setdefault(kind, {}).update(items)
            elif option["type"] == ATTACHMENT_OPTION:
                resolved.setdefault("attachments", {})[option["value"]] = \
                    self._attachment_options[option["value"]]
            elif option["type"] == CHANNEL_OPTION:
                resolved.setdefault("channels", {})[option["value"]] = {
                    **self.channels[option["value"]], "permissions": ALL_PERMISSIONS}
        return resolved

    def _find_command(self, name: str, guild: bool, kind: int = CHAT_INPUT) -> Json:
        scopes = ([str(self.guild_id)] if guild else []) + ["global"]
        for scope in scopes:
            for command in self.commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == kind:
                    return command
        synced = {scope: [c["name"] for c in cmds] for scope, cmds in self.commands.items()}
        raise LookupError(f"/{name} is not synced for {'the guild' if guild else 'DMs'} "
                          f"(synced: {synced}); a user can only run synced commands")

    def _options(self, command: Json, subcommand: str | None, values: Json,
                 check_types: bool = True) -> list[Json]:
        """Builds data.options, typed as the synced command declares (Python types must match)."""
        declared, path = command.get("options", []), []
        for part in (subcommand or "").split():
            node = next((o for o in declared if o["name"] == part), None)
            if node is None:
                raise LookupError(f"/{command['name']} has no subcommand {part!r}")
            declared = node.get("options", [])
            path.append(node)
        types = {o["name"]: o["type"] for o in declared}
        options = []
        for key, value in values.items():
            if key not in types:
                raise LookupError(f"/{command['name']} has no option {key!r}: {sorted(types)}")
            if types[key] == ATTACHMENT_OPTION:
                if not isinstance(value, dict) or "id" not in value:
                    raise TypeError(f"option {key!r} takes a user_attachment(), got {value!r}")
                self._attachment_options[value["id"]] = value
                options.append({"name": key, "type": ATTACHMENT_OPTION, "value": value["id"]})
                continue
            if types[key] == CHANNEL_OPTION:
                if str(value) not in self.channels or self.channels[str(value)]["type"] == DM:
                    raise LookupError(f"option {key!r}: {value!r} is no channel of the guild")
                options.append({"name": key, "type": CHANNEL_OPTION, "value": str(value)})
                continue
            inferred = OPTION_TYPES.get(type(value))
            if check_types and types[key] in OPTION_TYPES.values() and inferred != types[key] \
                    and not (types[key] == 10 and inferred == 4):  # an int is a fine number
                raise TypeError(f"option {key!r} is declared type {types[key]}, got {value!r}")
            options.append({"name": key, "type": types[key], "value": value})
        for node in reversed(path):
            options = [{"name": node["name"], "type": node["type"], "options": options}]
        return options

    def shard_of_guild(self, count: int) -> int:
        """The shard (of `count`) that Discord sends this guild's events to."""
        return (self.guild_id >> 22) % count

    def _receivers(self, guild: bool) -> list[web.WebSocketResponse]:
        return [ws for ws, (shard, count) in self.sessions.items()
                if shard == (self.shard_of_guild(count) if guild else 0)]

    def _interact(self, kind: int, data: Json, user_id: int, guild: bool,
                  channel_id: int | str | None, size_limit: int, permissions: int | None,
                  message: Message | None = None) -> Interaction:
        receivers = self._receivers(guild)
        if not receivers:
            raise RuntimeError("no bot connected (for this shard): start one and await "
                               "wait_ready() first")
        iid = self._new_id()
        user = _user(user_id)
        payload: Json = {
            "id": iid, "application_id": str(self.app_id), "type": kind, "data": data,
            "token": f"token-{iid}", "version": 1, "locale": "en-US",
            "app_permissions": ALL_PERMISSIONS, "attachment_size_limit": size_limit,
            "entitlements": [], "context": 0 if guild else 1}
        if guild:
            cid = str(channel_id or self.channel_id)
            payload.update(guild_id=str(self.guild_id), guild_locale="en-US", member={
                "user": user, "roles": [], "joined_at": _now(), "flags": 0, "deaf": False,
                "mute": False, "pending": False, "nick": None, "avatar": None,
                "permissions": str(permissions or 0)})
        else:
            cid = str(channel_id or self._dm_channel(user_id)["id"])
            payload["user"] = user
        if cid not in self.channels:
            raise LookupError(f"unknown channel {cid}; known: {sorted(self.channels)}")
        payload["channel"] = {**self.channels[cid], "permissions": ALL_PERMISSIONS}
        payload["channel_id"] = cid
        if message is not None:
            payload["message"] = self._message_payload(message)
        interaction = Interaction(
            id=iid, token=payload["token"], user_id=user_id, type=kind, channel_id=cid,
            attachment_size_limit=size_limit, message_id=message and message.id,
            dispatched_at=asyncio.get_running_loop().time(), payload=payload, fake=self)
        self.interactions.append(interaction)
        self._by_token[interaction.token] = interaction
        for ws in receivers:
            task = asyncio.create_task(self._dispatch(ws, "INTERACTION_CREATE", payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return interaction

    def forget_uploads(self) -> None:
        """Drops the bytes of every recorded upload (names are kept): for memory measurements
        of a bot under test, which should not count the fake's evidence."""
        for rec in self.requests:
            rec.files = [(name, b"") for name, _ in rec.files]
        for message in self.messages.values():
            message.attachments = [(name, b"") for name, _ in message.attachments]

    # -- fault injection --------------------------------------------------------------------

    def fail_next(self, method: str, path_regex: str, status: int, body: Json | None = None,
                  times: int = 1, retry_after: float | None = None,
                  when: Callable[[Recorded], bool] | None = None,
                  lose_reply: bool = False) -> Fault:
        """The next `times` requests whose path (under /api/v10) matches, and for which
        `when(recorded)` is true if given, answer `status`. With `lose_reply` the request is
        carried out first (a message is posted...) and only its reply is lost: what a bot
        sees when it dies, or its connection breaks, after Discord did the work."""
        fault = Fault(method.upper(), re.compile(path_regex), status, body, times, retry_after,
                      when, lose_reply=lose_reply)
        self._faults.append(fault)
        return fault

    def outage(self, method: str, path_regex: str, status: int = 503, *,
               seconds: float | None = None, body: Json | None = None,
               when: Callable[[Recorded], bool] | None = None) -> Fault:
        """Every matching request answers `status` until `seconds` have passed or the test
        calls `lift()` on the returned fault (wait on its `hits` rather than on a clock).
        discord.py gives up on a 503 at once and retries 500/502/504 itself (1, 3, 5, 7, 9 s)."""
        until = None if seconds is None else asyncio.get_running_loop().time() + seconds
        fault = Fault(method.upper(), re.compile(path_regex), status, body, math.inf, None,
                      when, until=until)
        self._faults.append(fault)
        return fault

    def hold(self, method: str, path_regex: str, *,
             when: Callable[[Recorded], bool] | None = None) -> Hold:
        """The next matching request (and `when(recorded)` true, if given) waits, unanswered
        and not yet acted on, until the test calls `release()` on the returned Hold."""
        hold = Hold(method.upper(), re.compile(path_regex), when)
        self._holds.append(hold)
        return hold

    def _take_hold(self, rec: Recorded) -> Hold | None:
        for hold in self._holds:
            if (hold.held is None and hold.method in (rec.method, "*")
                    and hold.pattern.search(rec.path)
                    and (hold.when is None or hold.when(rec))):
                self._holds.remove(hold)
                hold.held = rec
                return hold
        return None

    def expire_token(self, token: str) -> None:
        """Webhook routes (edits, followups) for this interaction token now answer 401."""
        self.expired_tokens.add(token)

    def gateway_outage(self) -> Fault:
        """Every gateway connection is refused (503 to the WebSocket upgrade) until the test
        calls `lift()`: with drop_gateway(), what discord.py meets while Discord is down (it
        retries after its backoff). `hits` counts the refused connections."""
        fault = Fault("GET", re.compile("^/gateway$"), 503, None, math.inf, None)
        self._gateway_faults.append(fault)
        return fault

    async def drop_gateway(self) -> None:
        """Closes the bot's socket with 4000 (resumable), as a network blip would."""
        ws = self._bot_ws
        if ws is None:
            raise RuntimeError("no bot connected")
        self._forget_session(ws)
        await ws.close(code=4000, message=b"fakediscord dropped the connection")

    def _forget_session(self, ws: web.WebSocketResponse) -> None:
        self.sessions.pop(ws, None)
        if ws is self._bot_ws:
            self._bot_ws = next(reversed(self.sessions), None)
        if not self.sessions:
            self._ready.clear()

    def _take_fault(self, rec: Recorded) -> Fault | None:
        now = asyncio.get_running_loop().time()
        self._faults = [f for f in self._faults
                        if not f.lifted and (f.until is None or now < f.until)]
        for fault in self._faults:
            if (fault.method in (rec.method, "*") and fault.pattern.search(rec.path)
                    and (fault.when is None or fault.when(rec))):
                fault.times -= 1
                fault.hits += 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_reply(fault: Fault) -> tuple[int, Any, dict[str, str]]:
        if fault.status != 429:
            return fault.status, fault.body or {"code": 0, "message": "injected"}, {}
        wait = 0.05 if fault.retry_after is None else fault.retry_after
        # discord.py retries a 429 only when it has a Via header (else: Cloudflare ban)
        headers = {"Via": "1.1 google", "Retry-After": str(wait),
                   "X-RateLimit-Limit": "1", "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Reset-After": str(wait), "X-RateLimit-Scope": "user"}
        body = fault.body or {"message": "You are being rate limited.",
                              "retry_after": wait, "global": False}
        return 429, body, headers

    # -- REST -------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        rec = Recorded(request.method, request.path.removeprefix("/api/v10"),
                       dict(request.query), None, [])
        if request.content_type == "multipart/form-data":
            async for part in await request.multipart():
                if part.name == "payload_json":
                    rec.json = json.loads(await part.text())
                elif part.filename:
                    rec.files.append((part.filename, bytes(await part.read())))
        elif request.can_read_body:
            rec.json = await request.json()
        self.requests.append(rec)
        hold = self._take_hold(rec)
        if hold is not None:
            self._holds.append(hold)  # until released (close() releases what is left)
            hold.reached.set()
            await hold.released.wait()
            self._holds.remove(hold)
            if not hold.apply:
                rec.status = 503
                return web.Response(status=503, body=b'{"code": 0, "message": "held"}',
                                    content_type="application/json")
        status, body, headers = self._answer(rec)
        rec.status = status
        if body is None:
            return web.Response(status=status, headers=headers)
        # exactly "application/json": discord.py parses nothing else (json_response adds charset)
        return web.Response(status=status, body=json.dumps(body).encode(),
                            content_type="application/json", headers=headers)

    def _answer(self, rec: Recorded) -> tuple[int, Any, dict[str, str]]:
        try:
            for hook in self.on_request:
                hook(rec)
        except Exception as exc:  # a failing check must be seen, not swallowed
            log.exception("an on_request hook failed on %s %s", rec.method, rec.path)
            return 503, {"code": 0, "message": f"fakediscord: on_request hook: {exc!r}"}, {}
        rec.problems = spec_check.check(rec.method, rec.path, rec.json)
        if rec.problems:  # Discord judges the form before anything else happens
            log.warning("fakediscord refuses %s", _refusal_line(rec))
            return 400, spec_check.refusal(rec.problems), {}
        fault = self._take_fault(rec)
        if fault is None:
            return (*self._route(rec), {})
        if fault.lose_reply:
            self._route(rec)
        return self._fault_reply(fault)

    def _route(self, rec: Recorded) -> Reply:
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(rec.path)
            if match and method == rec.method:
                args = {k: v for k, v in match.groupdict().items() if v is not None}
                if rec.path.startswith("/webhooks/") and args["token"] in self.expired_tokens:
                    return INVALID_TOKEN
                return handler(rec, **args)
        log.warning("fakediscord has no route for %s %s: answering 404", rec.method, rec.path)
        self.unhandled.append(rec)
        return 404, {"code": 0, "message": f"fakediscord: no route {rec.method} {rec.path}"}

    def _get_me(self, rec: Recorded) -> Reply:
        return 200, self._bot_user()

    def _get_application(self, rec: Recorded) -> Reply:
        return 200, {"id": str(self.app_id), "name": "FakeBot", "description": "", "icon": None,
                     "bot_public": False, "bot_require_code_grant": False, "flags": 0,
                     "owner": _user(1), "verify_key": "0" * 64, "bot": self._bot_user()}

    def _get_gateway(self, rec: Recorded) -> Reply:
        return 200, {"url": self.gateway_url, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}}

    def _put_commands(self, rec: Recorded, app: str, guild: str | None = None) -> Reply:
        if guild is not None and guild != str(self.guild_id):
            return 403, {"code": 50001, "message": "Missing Access"}
        key = guild or "global"
        old_ids = {c["name"]: c["id"] for c in self.commands.get(key, [])}
        self.commands[key] = [
            {"description": "", **c, "id": old_ids.get(c["name"]) or self._new_id(),
             "application_id": str(self.app_id), "version": "1",
             **({"guild_id": guild} if guild else {})}
            for c in rec.json or []]
        self.sync_count += 1
        return 200, self.commands[key]

    def _get_commands(self, rec: Recorded, app: str, guild: str | None = None) -> Reply:
        return 200, self.commands.get(guild or "global", [])

    def _callback(self, rec: Recorded, iid: str, token: str) -> Reply:
        interaction = self._by_token.get(token)
        if interaction is None or interaction.id != iid:
            return UNKNOWN_INTERACTION
        if interaction.callbacks:
            return 400, {"code": 40060, "message": "Interaction has already been acknowledged."}
        late = asyncio.get_running_loop().time() - interaction.dispatched_at
        if late > self.ack_timeout:
            log.warning("interaction %s answered after %.1fs: too late", iid, late)
            return UNKNOWN_INTERACTION
        if _too_big(rec.files, interaction.attachment_size_limit):
            return TOO_LARGE
        body = rec.json or {}
        interaction.callbacks.append(body)
        interaction.answered_at = asyncio.get_running_loop().time()
        kind, data = body.get("type"), body.get("data") or {}
        message = None
        if kind == 4:  # a message
            message = self._create(interaction.channel_id, data, rec.files, token)
        elif kind == 5:  # defer: a "thinking" original, replaced by the first edit or followup
            flags = (data.get("flags") or 0) & EPHEMERAL | LOADING
            message = self._create(interaction.channel_id, {"flags": flags}, [], token)
        elif kind in (6, 7) and interaction.message_id:  # update the clicked message
            message = self.messages[interaction.message_id]
            if kind == 7:
                self._edit(message, data, rec.files)
        answer: Json = {"interaction": {"id": iid, "type": interaction.type}}
        if message is not None:
            interaction.original_id = message.id
            answer["interaction"].update(
                response_message_id=message.id, response_message_loading=kind == 5,
                response_message_ephemeral=bool(message.flags & EPHEMERAL))
            if kind in (4, 7):
                answer["resource"] = {"type": kind, "message": self._message_payload(message)}
        return 200, answer

    def _followup(self, rec: Recorded, app: str, token: str) -> Reply:
        interaction = self._by_token.get(token)
        if interaction is None or app != str(self.app_id) or not interaction.callbacks:
            return UNKNOWN_WEBHOOK  # like Discord: a followup needs an answered interaction
        if _too_big(rec.files, interaction.attachment_size_limit):
            return TOO_LARGE
        original = interaction.original
        if original is not None and not original.deleted and original.flags & LOADING:
            message = original  # Discord: the first followup after a defer replaces "thinking"
            self._edit(message, rec.json or {}, rec.files)
        else:
            message = self._create(interaction.channel_id, rec.json or {}, rec.files, token)
        if rec.query.get("wait") in ("1", "true", "True"):
            return 200, self._message_payload(message)
        return 204, None

    def _webhook_message(self, rec: Recorded, app: str, token: str, mid: str) -> Reply:
        interaction = self._by_token.get(token)
        if interaction is None or app != str(self.app_id):
            return UNKNOWN_WEBHOOK
        message = interaction.original if mid == "@original" else self.messages.get(mid)
        if message is None or message.deleted or message.id not in (
                interaction.original_id, *(m.id for m in interaction.followups)):
            return UNKNOWN_MESSAGE
        if rec.method == "PATCH" and _too_big(rec.files, interaction.attachment_size_limit):
            return TOO_LARGE
        return self._message_op(rec, message)

    def _get_channel(self, rec: Recorded, cid: str) -> Reply:
        return (200, self.channels[cid]) if cid in self.channels else UNKNOWN_CHANNEL

    def _post_message(self, rec: Recorded, cid: str) -> Reply:
        if cid in {str(c) for c in self.forbidden_channels}:
            return MISSING_PERMISSIONS
        if cid not in self.channels:
            return UNKNOWN_CHANNEL
        if _too_big(rec.files, self.upload_limit):
            return TOO_LARGE
        data = rec.json or {}
        nonce = data.get("nonce")
        if nonce is not None and data.get("enforce_nonce"):
            # Discord: a message by the same author with this nonce in the past few minutes
            # is returned instead of creating another (the bot is the only author here).
            seen = self._nonces.get(str(nonce))
            now = asyncio.get_running_loop().time()
            if seen is not None and now - seen[1] < self.nonce_window_s:
                return 200, self._message_payload(self.messages[seen[0]])
        message = self._create(cid, data, rec.files)
        if nonce is not None:
            message.nonce = str(nonce)
            if data.get("enforce_nonce"):
                self._nonces[message.nonce] = message.id, asyncio.get_running_loop().time()
        return 200, self._message_payload(message)

    def _channel_message(self, rec: Recorded, cid: str, mid: str) -> Reply:
        message = self.messages.get(mid)
        if (message is None or message.deleted or message.channel_id != cid
                or message.flags & EPHEMERAL):
            return UNKNOWN_MESSAGE
        return self._message_op(rec, message)

    def _message_op(self, rec: Recorded, message: Message) -> Reply:
        if rec.method == "DELETE":
            message.deleted = True
            return 204, None
        if rec.method == "PATCH":
            self._edit(message, rec.json or {}, rec.files)
        return 200, self._message_payload(message)

    def _open_dm(self, rec: Recorded) -> Reply:
        return 200, self._dm_channel(int((rec.json or {})["recipient_id"]))

    # -- messages ---------------------------------------------------------------------------

    def _create(self, channel_id: str, data: Json, files: list[tuple[str, bytes]],
                token: str | None = None) -> Message:
        message = Message(self._new_id(), channel_id, flags=data.get("flags") or 0,
                          interaction_token=token)
        self._apply(message, data, files)
        self.messages[message.id] = message
        return message

    def _edit(self, message: Message, data: Json, files: list[tuple[str, bytes]]) -> None:
        self._apply(message, data, files)
        if data.get("flags") is not None:  # ephemeral-ness can't change after creation
            message.flags = data["flags"] & ~EPHEMERAL | message.flags & EPHEMERAL
        message.flags &= ~LOADING
        message.edits += 1
        message.edited_timestamp = _now()

    def _apply(self, message: Message, data: Json, files: list[tuple[str, bytes]]) -> None:
        for key in ("content", "embeds", "components"):
            if key in data:
                setattr(message, key, data[key] or type(getattr(message, key))())
        if data.get("message_reference"):
            message.reference = data["message_reference"]
        kept = list(zip(message.attachment_ids, message.attachments, strict=True))
        if "attachments" in data:  # lists the old ones to keep (by id) and the new uploads
            keep = {str(a.get("id")) for a in data["attachments"] or []}
            kept = [(aid, a) for aid, a in kept if aid in keep]
        kept += [(self._new_id(), f) for f in files]
        message.attachment_ids = [aid for aid, _ in kept]
        message.attachments = [a for _, a in kept]

    def _message_payload(self, message: Message) -> Json:
        author = _user(message.author_id) if message.author_id else self._bot_user()
        payload = {
            "id": message.id, "channel_id": message.channel_id, "author": author,
            "content": message.content, "timestamp": message.timestamp,
            "edited_timestamp": message.edited_timestamp, "tts": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [], "pinned": False,
            "type": 0, "flags": message.flags, "embeds": message.embeds,
            "components": message.components, "nonce": message.nonce, "attachments": [
                {"id": aid, "filename": name, "size": len(data),
                 "content_type": mimetypes.guess_type(name)[0],
                 "url": f"{self.url}/attachments/{aid}/{name}",  # not served
                 "proxy_url": f"{self.url}/attachments/{aid}/{name}"}
                for aid, (name, data) in zip(message.attachment_ids, message.attachments,
                                             strict=True)]}
        if message.author_id:  # a user's message: the files and embeds they posted
            payload.update(attachments=message.user_attachments, embeds=message.user_embeds)
        if message.reference:
            payload["message_reference"] = {"type": 0, **message.reference}
        if message.interaction_token:  # who ran the command or clicked the button
            interaction = self._by_token[message.interaction_token]
            payload["application_id"] = str(self.app_id)
            payload["interaction_metadata"] = {
                "id": interaction.id, "type": interaction.type,
                "user": _user(interaction.user_id), "authorizing_integration_owners": {}}
        if self.channels[message.channel_id]["type"] != DM:
            payload["guild_id"] = str(self.guild_id)
        return payload

    # -- gateway ----------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        self._gateway_faults = [f for f in self._gateway_faults if not f.lifted]
        if self._gateway_faults:
            self._gateway_faults[0].hits += 1
            return web.Response(status=503, text="fakediscord: gateway outage")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await self._send(ws, {"op": 10, "d": {
                "heartbeat_interval": self.heartbeat_interval_ms}})
            async for frame in ws:
                if frame.type is WSMsgType.TEXT:  # discord.py only sends text
                    await self._on_gateway_message(ws, json.loads(frame.data))
        finally:
            self._sockets.discard(ws)
            self._forget_session(ws)
        return ws

    async def _on_gateway_message(self, ws: web.WebSocketResponse, msg: Json) -> None:
        op, d = msg.get("op"), msg.get("d")
        if op == 1:  # heartbeat
            self.heartbeats.append(asyncio.get_running_loop().time())
            await self._send(ws, {"op": 11})
        elif op == 2:  # identify
            self.identifies += 1
            self._session_id = f"session-{self.identifies}"
            shard, count = d.get("shard") or (0, 1)
            self._session_ids[self._session_id] = (shard, count)
            ours = shard == self.shard_of_guild(count)  # the guild is on this shard
            await self._dispatch(ws, "READY", {
                "v": 10, "user": self._bot_user(), "session_id": self._session_id,
                "guilds": [{"id": str(self.guild_id), "unavailable": True}] if ours else [],
                "resume_gateway_url": self.gateway_url, "shard": [shard, count],
                "application": {"id": str(self.app_id), "flags": 0},
                "private_channels": [], "relationships": []})
            if ours:
                await self._dispatch(ws, "GUILD_CREATE", self._guild_payload())
            self._enter_session(ws, (shard, count))
        elif op == 6:  # resume: nothing was missed, so nothing is replayed
            if d.get("session_id") not in self._session_ids:
                await self._send(ws, {"op": 9, "d": False})  # invalid session
                return
            self.resumes += 1
            await self._dispatch(ws, "RESUMED", {})
            self._enter_session(ws, self._session_ids[d["session_id"]])
        elif op == 3:
            self.presences.append(d)
        elif op == 8:  # request guild members (members intent): the bot is the only one
            await self._dispatch(ws, "GUILD_MEMBERS_CHUNK", {
                "guild_id": str(self.guild_id), "members": [self._bot_member()],
                "chunk_index": 0, "chunk_count": 1, "nonce": d.get("nonce")})
        else:
            log.warning("fakediscord ignores gateway op %s: %s", op, d)

    def _enter_session(self, ws: web.WebSocketResponse, shard: tuple[int, int]) -> None:
        self.sessions[ws] = shard
        self._bot_ws = ws
        self._ready.set()

    async def _dispatch(self, ws: web.WebSocketResponse, event: str, data: Json) -> None:
        async with self._send_lock:  # keeps sequence numbers in sending order
            self._seq += 1
            await ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    async def _send(self, ws: web.WebSocketResponse, msg: Json) -> None:
        async with self._send_lock:
            await ws.send_str(json.dumps({"s": None, "t": None, "d": None, **msg}))

    # -- payloads ---------------------------------------------------------------------------

    def _new_id(self) -> str:
        """A real snowflake: discord.py reads creation times (e.g. an interaction's age) from it."""
        millis = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return str((millis << 22) | (next(self._ids) & 0x3FFFFF))

    def _bot_user(self) -> Json:
        return {**_user(self.bot_user_id), "username": "FakeBot", "bot": True,
                "verified": True, "mfa_enabled": False, "flags": 0}

    def _bot_member(self) -> Json:
        return {"user": self._bot_user(), "roles": [self._bot_role_id], "joined_at": _now(),
                "flags": 0, "deaf": False, "mute": False}

    def _dm_channel(self, user_id: int) -> Json:
        if user_id not in self._dms:
            cid = self._dms[user_id] = self._new_id()
            self.channels[cid] = {"id": cid, "type": 1, "recipients": [_user(user_id)],
                                  "last_message_id": None}
        return self.channels[self._dms[user_id]]

    def _guild_payload(self) -> Json:
        def role(rid: str | int, name: str, permissions: str, position: int) -> Json:
            return {"id": str(rid), "name": name, "permissions": permissions,
                    "position": position, "color": 0, "hoist": False, "managed": False,
                    "mentionable": False, "flags": 0}

        guild_channels = [c for c in self.channels.values()
                          if c["type"] != DM and c["type"] not in THREAD_TYPES]
        return {
            "id": str(self.guild_id), "name": "Fake Guild", "icon": None, "owner_id": "1",
            "unavailable": False, "large": False, "member_count": 1, "joined_at": _now(),
            "roles": [role(self.guild_id, "@everyone", EVERYONE_PERMISSIONS, 0),
                      role(self._bot_role_id, "FakeBot", ALL_PERMISSIONS, 1)],
            "channels": guild_channels, "members": [self._bot_member()], "threads": [],
            "features": [], "emojis": [], "stickers": [], "voice_states": [],
            "presences": [], "premium_tier": 0, "preferred_locale": "en-US",
            "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0,
            "system_channel_flags": 0, "afk_timeout": 300}


def _user(user_id: int) -> Json:
    return {"id": str(user_id), "username": f"user{user_id}", "discriminator": "0",
            "global_name": f"User {user_id}", "avatar": None}


def _refusal_line(rec: Recorded) -> str:
    return f"{rec.method} {rec.path}: " + "; ".join(map(str, rec.problems))


def _too_big(files: list[tuple[str, bytes]], limit: int) -> bool:
    return any(len(data) > limit for _, data in files)


def _find_component(node: Any, custom_id: str) -> Json | None:
    """Finds a component by custom_id anywhere in rows, containers and sections."""
    if isinstance(node, dict):
        if node.get("custom_id") == custom_id:
            return node
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            if (found := _find_component(child, custom_id)) is not None:
                return found
    return None
