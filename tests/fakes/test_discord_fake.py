"""Self-tests for the fake Discord: an unmodified discord.py bot over real sockets, plus raw HTTP for the
rules discord.py hides (the exact 429 shapes, rate-limit headers, invalid-request counting)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.ratelimits import BUCKET_HASH

FRUITS = ["apple", "apricot", "banana", "cherry"]
BOT_TOKEN = "fake-token"


@dataclass
class Record:
    seen: list[discord.Message] = field(default_factory=list)
    attachment_bytes: dict[str, bytes] = field(default_factory=dict)
    clicks: list[int] = field(default_factory=list)
    late_error_codes: list[int] = field(default_factory=list)
    flood_done: asyncio.Event = field(default_factory=asyncio.Event)
    flood_message_id: int | None = None
    errors: list[tuple[int, int]] = field(default_factory=list)


class PressView(discord.ui.View):
    def __init__(self, rec: Record) -> None:
        super().__init__(timeout=30)
        self.rec = rec

    @discord.ui.button(label="Press", custom_id="press")
    async def press(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.rec.clicks.append(interaction.user.id)
        await interaction.response.defer()  # type 6, as the bot's Stop button does
        assert interaction.message is not None
        await interaction.message.edit(content=f"clicked by {interaction.user.name}", view=None)


class TinyBot(commands.Bot):
    def __init__(self, rec: Record) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(command_prefix="!", intents=intents)
        self.rec = rec
        self._register_commands()

    async def setup_hook(self) -> None:
        await self.tree.sync()

    def _register_commands(self) -> None:
        rec, tree = self.rec, self.tree

        @tree.command(name="echo", description="Echo some text")
        async def echo(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.defer()
            await interaction.edit_original_response(content=f"echo: {text}")
            await interaction.followup.send("more")

        @tree.command(name="btn", description="Send a button")
        async def btn(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("press it", view=PressView(rec))

        async def fruits(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=f, value=f) for f in FRUITS if f.startswith(current)]

        @tree.command(name="pick", description="Pick a fruit")
        @app_commands.autocomplete(fruit=fruits)
        async def pick(interaction: discord.Interaction, fruit: str) -> None:
            await interaction.response.send_message(f"picked {fruit}", ephemeral=True)

        @tree.command(name="add", description="Add numbers")
        async def add(interaction: discord.Interaction, a: int, b: int, scale: float = 1.0, neg: bool = False) -> None:
            await interaction.response.send_message(f"{type(a).__name__} {(a + b) * scale * (-1 if neg else 1):g}")

        @tree.command(name="slow", description="Answers too late")
        async def slow(interaction: discord.Interaction) -> None:
            await asyncio.sleep(0.5)
            try:
                await interaction.response.send_message("late")
            except discord.NotFound as exc:
                rec.late_error_codes.append(exc.code)

        @tree.command(name="flood", description="Many writes to one channel")
        async def flood(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("flooding")
            assert isinstance(interaction.channel, discord.TextChannel)
            target = await interaction.channel.send("target")
            rec.flood_message_id = target.id
            await asyncio.gather(*(target.edit(content=f"edit {i}") for i in range(8)))
            rec.flood_done.set()

        @tree.command(name="files", description="Files, embeds and a too-long followup")
        async def files(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("with file", file=discord.File(io.BytesIO(b"data123"), "out.txt"),
                                                    embed=discord.Embed(title="T", description="D"))
            try:
                await interaction.followup.send("x" * 2001)
            except discord.HTTPException as exc:
                rec.errors.append((exc.status, exc.code))
            await interaction.followup.send("second file", file=discord.File(io.BytesIO(b"zz"), "z.bin"))

        @tree.command(name="admin", description="Managers only")
        @app_commands.default_permissions(manage_guild=True)
        @app_commands.guild_only()
        async def admin(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("ok")

        config = app_commands.Group(name="config", description="Configure")
        model = app_commands.Group(name="model", description="Models", parent=config)

        @model.command(name="allow", description="Allow a model")
        async def allow(interaction: discord.Interaction, name: str) -> None:
            await interaction.response.send_message(f"allowed {name}", ephemeral=True)

        tree.add_command(config)

    async def on_message(self, message: discord.Message) -> None:
        assert self.user is not None
        if message.author.id == self.user.id:
            return
        self.rec.seen.append(message)
        for attachment in message.attachments:
            self.rec.attachment_bytes[attachment.filename] = await attachment.read()
        if message.content.startswith("thread"):
            thread = await message.create_thread(name="discussion")
            await thread.send("thread started")
        elif isinstance(message.channel, discord.Thread):
            await message.channel.send(f"in thread: {message.content}")
        elif isinstance(message.channel, discord.DMChannel):
            await message.channel.send("dm reply")
        elif message.content == "reply":
            await message.reply("replying")
        else:
            await message.channel.send(f"you said: {message.content}")


@contextlib.asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[tuple[FakeDiscord, TinyBot, Record]]:
    fake = FakeDiscord(**kwargs)
    await fake.start()
    fake.install()
    rec = Record()
    bot = TinyBot(rec)
    task = asyncio.create_task(bot.start(BOT_TOKEN))
    try:
        ready = asyncio.create_task(fake.wait_ready())
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            task.result()
            raise AssertionError("bot stopped before becoming ready")
        await ready
        await fake.wait_for(lambda: fake.command_sync_count == 1)
        yield fake, bot, rec
    finally:
        await bot.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        await fake.close()
    assert fake.server_errors == []
    assert fake.unknown_routes in ([], [("GET", "/api/v10/nope")])


def bot_texts(fake: FakeDiscord, channel_id: int) -> list[str]:
    return [m.content for m in fake.bot_messages(channel_id)]


def api(fake: FakeDiscord, path: str) -> str:
    return f"{fake.base_url}/api/v10{path}"


async def test_login_ready_sync_and_http_basics() -> None:
    async with running() as (fake, bot, _rec):
        assert bot.user is not None and bot.user.id == fake.bot_user_id
        assert fake.ready_count == 1
        assert {c["name"] for c in fake.commands} == {"echo", "btn", "pick", "add", "slow", "flood", "files",
                                                      "admin", "config"}
        assert all(c["application_id"] == str(fake.application_id) and c["id"] for c in fake.commands)
        assert fake.identify_payloads[0]["intents"] & (1 << 15)
        guild = bot.get_guild(fake.guild_id)
        assert guild is not None and guild.get_channel(fake.text_channel_id) is not None
        assert (await bot.application_info()).owner.id == fake.owner_id

        async with aiohttp.ClientSession(headers={"Authorization": "Bot x"}) as http:
            async with http.get(api(fake, "/users/@me")) as resp:
                assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
                assert "X-RateLimit-Bucket" not in resp.headers  # not a bucketed route
            async with http.get(api(fake, "/nope")) as resp:
                assert resp.status == 404 and await resp.json() == {"message": "Unknown", "code": 0}
            url = api(fake, f"/applications/{fake.application_id}/commands")
            async with http.put(url, json=[{"name": "Bad Name", "description": "x"}]) as resp:
                assert resp.status == 400 and (await resp.json())["code"] == 50035
            async with http.put(url, json=[{"name": "only", "description": "The only one"}]) as resp:
                assert resp.status == 200 and [c["name"] for c in await resp.json()] == ["only"]
        assert fake.command_sync_count == 2 and fake.find_command("only") is not None


async def test_slash_options_defer_edit_followup_and_permissions() -> None:
    async with running() as (fake, _bot, _rec):
        alice, manager = fake.add_user("alice"), fake.add_user("manager", manage_guild=True)
        inter = await fake.slash("echo", {"text": "hi"}, user_id=alice)
        await inter.wait_response()
        assert inter.response_type == 5 and inter.callback_delay is not None and inter.callback_delay < 3
        await fake.wait_for(lambda: len(inter.followups) == 1)
        assert inter.message is not None and inter.message.content == "echo: hi"
        assert inter.message.edits == ["echo: hi"] and not inter.message.loading
        assert inter.message.interaction_id == inter.id and inter.followups[0].content == "more"
        assert bot_texts(fake, fake.text_channel_id) == ["echo: hi", "more"]

        add = await fake.slash("add", {"a": 2, "b": "3", "scale": 2, "neg": True}, user_id=alice)
        await add.wait_response()
        assert add.message is not None and add.message.content == "int -10"
        allow = await fake.slash("config", {"name": "gpt"}, subcommand=["model", "allow"], user_id=alice)
        await allow.wait_response()
        assert allow.message is not None and allow.message.content == "allowed gpt" and allow.ephemeral

        dm = await fake.slash("echo", {"text": "private"}, user_id=alice, guild=False)
        await fake.wait_for(lambda: len(dm.followups) == 1)
        assert dm.message is not None and dm.message.content == "echo: private"
        assert dm.channel_id == await fake.open_dm(alice)

        with pytest.raises(PermissionError):  # default_member_permissions: Discord does not offer it
            await fake.slash("admin", user_id=alice)
        with pytest.raises(PermissionError):  # guild only
            await fake.slash("admin", user_id=manager, guild=False)
        with pytest.raises(ValueError, match="unknown option"):
            await fake.slash("echo", {"txt": "typo"}, user_id=alice)
        ok = await fake.slash("admin", user_id=manager)
        await ok.wait_response()
        assert ok.message is not None and ok.message.content == "ok"


async def test_autocomplete_and_button_click() -> None:
    async with running() as (fake, _bot, rec):
        alice, bob = fake.add_user("alice"), fake.add_user("bob")
        choices = await fake.autocomplete("pick", {"fruit": "ap"}, "fruit", user_id=alice)
        assert choices == [{"name": "apple", "value": "apple"}, {"name": "apricot", "value": "apricot"}]
        inter = await fake.slash("btn", user_id=alice)
        await inter.wait_response()
        msg = inter.message
        assert inter.response_type == 4 and msg is not None and msg.content == "press it"
        assert any(c.get("custom_id") == "press" for c in msg.iter_components())
        click = await fake.click(msg.id, "press", user_id=bob)
        await click.wait_response()
        assert click.response_type == 6 and rec.clicks == [bob]
        await fake.wait_for(lambda: msg.edits == ["clicked by bob"])
        assert msg.content == "clicked by bob" and msg.components == []


async def test_on_message_attachments_threads_replies_and_dms() -> None:
    async with running() as (fake, bot, rec):
        alice = fake.add_user("alice")
        general = fake.text_channel_id
        await fake.post_message(general, "hello bot", user_id=alice, attachments=[("a.txt", b"abc", "text/plain")])
        await fake.wait_for(lambda: "you said: hello bot" in bot_texts(fake, general))
        assert rec.seen[0].content == "hello bot" and rec.seen[0].author.id == alice
        assert rec.attachment_bytes == {"a.txt": b"abc"}
        await fake.post_message(general, "ping", user_id=alice, mentions_bot=True)
        await fake.wait_for(lambda: len(rec.seen) == 2)
        assert rec.seen[1].content.startswith(f"<@{fake.bot_user_id}>") and bot.user in rec.seen[1].mentions

        starter_id = int((await fake.post_message(general, "thread please", user_id=alice))["id"])
        await fake.wait_for(lambda: bot_texts(fake, starter_id) == ["thread started"])
        thread = fake.threads[starter_id]
        assert thread["parent_id"] == str(general) and thread["name"] == "discussion"
        await fake.post_message(starter_id, "inside", user_id=alice)
        await fake.wait_for(lambda: "in thread: inside" in bot_texts(fake, starter_id))
        assert isinstance(rec.seen[-1].channel, discord.Thread) and rec.seen[-1].channel.parent_id == general

        asked = await fake.post_message(general, "reply", user_id=alice)
        await fake.wait_for(lambda: "replying" in bot_texts(fake, general))
        reply = fake.bot_messages(general)[-1]
        assert reply.type == 19 and reply.message_reference is not None
        assert reply.message_reference["message_id"] == asked["id"] and reply.mentions == [alice]

        dm_channel = await fake.open_dm(alice)
        await fake.post_message(dm_channel, "psst", user_id=alice)
        await fake.wait_for(lambda: bot_texts(fake, dm_channel) == ["dm reply"])
        last = rec.seen[-1]
        assert isinstance(last.channel, discord.DMChannel) and last.content == "psst"


async def test_uploads_embeds_and_size_limits() -> None:
    async with running() as (fake, _bot, rec):
        alice = fake.add_user("alice")
        inter = await fake.slash("files", user_id=alice)
        await fake.wait_for(lambda: len(inter.followups) == 1)
        msg = inter.message
        assert msg is not None and msg.content == "with file"
        assert [a["filename"] for a in msg.attachments] == ["out.txt"]
        assert fake.file_bytes(msg.attachments[0]) == b"data123" and msg.attachments[0]["content_type"] == "text/plain"
        assert msg.embeds[0]["title"] == "T" and msg.embeds[0]["description"] == "D"
        assert rec.errors == [(400, 50035)]  # content over 2,000 characters
        assert fake.file_bytes(inter.followups[0].attachments[0]) == b"zz"



async def test_late_and_duplicate_callbacks_are_rejected() -> None:
    async with running(interaction_deadline=0.3) as (fake, _bot, rec):
        alice = fake.add_user("alice")
        slow = await fake.slash("slow", user_id=alice)
        await slow.wait_response()
        await fake.wait_for(lambda: rec.late_error_codes == [10062])
        assert slow.response_type is None and slow.callback_errors == [(404, 10062)]
        btn = await fake.slash("btn", user_id=alice)
        await btn.wait_response()
        url = api(fake, f"/interactions/{btn.id}/{btn.token}/callback")
        async with aiohttp.ClientSession() as http, http.post(url, json={"type": 4, "data": {"content": "x"}}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 40060
        assert btn.response_type == 4


async def test_message_content_intent_off_blanks_content() -> None:
    fake = FakeDiscord()
    await fake.start()
    fake.install()
    seen: list[discord.Message] = []
    client = discord.Client(intents=discord.Intents.default())

    @client.event
    async def on_message(message: discord.Message) -> None:
        seen.append(message)

    task = asyncio.create_task(client.start(BOT_TOKEN))
    try:
        await fake.wait_ready()
        alice = fake.add_user("alice")
        await fake.post_message(fake.text_channel_id, "secret", user_id=alice)
        await fake.post_message(fake.text_channel_id, "hey you", user_id=alice, mentions_bot=True)
        await fake.post_message(await fake.open_dm(alice), "dm text", user_id=alice)
        await fake.wait_for(lambda: len(seen) == 3)
        assert [m.content for m in seen] == ["", f"<@{fake.bot_user_id}> hey you", "dm text"]
    finally:
        await client.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        await fake.close()
    assert fake.server_errors == []


# -- Discord's rate limits and invalid-request counting -------------------------------------------------


async def test_global_limit_429_shape_and_discord_py_retries_it() -> None:
    async with running() as (fake, bot, _rec):
        async with aiohttp.ClientSession(headers={"Authorization": "Bot other-token"}) as http:
            async def get(path: str) -> tuple[aiohttp.ClientResponse, Any]:
                async with http.get(api(fake, path)) as resp:
                    return resp, await resp.json()

            # GETs count; every channel's writes and reads share the one budget of the token.
            responses = await asyncio.gather(*(get("/users/@me") for _ in range(40)),
                                             *(get(f"/channels/{fake.text_channel_id}/messages/1") for _ in range(20)))
            limited = [(r, body) for r, body in responses if r.status == 429]
            assert len(limited) >= 10 and sum(r.status != 429 for r, _ in responses) <= 50
        resp, body = limited[0]
        assert body["global"] is True and body["message"] == "You are being rate limited."
        assert 0 < body["retry_after"] <= 1.0 and int(resp.headers["Retry-After"]) >= 1 and resp.headers["Via"]
        assert resp.headers["X-RateLimit-Global"] == "true" and resp.headers["X-RateLimit-Scope"] == "global"
        assert fake.global_429_count == len(limited) and fake.route_429_count == 0
        assert fake.rate_limited_count == fake.global_429_count
        assert {kind for *_, kind in fake.rate_limit_log} == {"global"}

        # discord.py's own client honours the shape: it sleeps retry_after and retries (global lock).
        before = fake.global_429_count
        users = await asyncio.gather(*(bot.http.request(discord.http.Route("GET", "/users/@me")) for _ in range(70)))
        assert len(users) == 70 and fake.global_429_count > before


async def test_interaction_routes_are_exempt_from_the_global_limit() -> None:
    # A 60 s window: once the bot's token has spent its 50 requests, it stays spent for the whole test.
    async with running(global_window=60.0) as (fake, _bot, _rec):
        alice = fake.add_user("alice")
        async with aiohttp.ClientSession(headers={"Authorization": f"Bot {BOT_TOKEN}"}) as http:
            statuses = []
            for _ in range(50):
                async with http.get(api(fake, "/users/@me")) as resp:
                    statuses.append(resp.status)
            assert statuses.count(429) >= 1  # the bot already spent a few at login
            spent = fake.global_429_count
            inter = await fake.slash("echo", {"text": "still works"}, user_id=alice)  # callback + 2 webhook calls
            await fake.wait_for(lambda: len(inter.followups) == 1)
            assert inter.message is not None and inter.message.content == "echo: still works"
            assert fake.global_429_count == spent
            url = api(fake, f"/channels/{fake.text_channel_id}/messages")
            async with http.post(url, json={"content": "x"}) as resp:
                assert resp.status == 429 and (await resp.json())["global"] is True
                assert resp.headers["X-RateLimit-Bucket"] == BUCKET_HASH  # a bucketed route: headers even so
            async with http.get(api(fake, "/users/@me"), headers={"Authorization": "Bot someone-else"}) as resp:
                assert resp.status == 200  # the limit is per bot token


async def test_bucket_headers_on_every_response_and_429s_are_retried() -> None:
    async with running(channel_write_limit=5, channel_write_window=1.0) as (fake, _bot, rec):
        alice = fake.add_user("alice")
        busy = fake.add_text_channel("busy")
        url = api(fake, f"/channels/{busy}/messages")
        async with aiohttp.ClientSession(headers={"Authorization": "Bot x"}) as http:
            async with http.post(url, json={"content": ""}) as resp:  # refused, with the headers all the same
                assert resp.status == 400 and (await resp.json())["code"] == 50006  # an empty message
                assert resp.headers["X-RateLimit-Remaining"] == "5"
            for i in range(5):
                async with http.post(url, json={"content": f"filler {i}"}) as resp:
                    assert resp.status == 200
                    assert resp.headers["X-RateLimit-Limit"] == "5"
                    assert resp.headers["X-RateLimit-Remaining"] == str(4 - i)
                    assert resp.headers["X-RateLimit-Bucket"] == BUCKET_HASH
                    reset_after = float(resp.headers["X-RateLimit-Reset-After"])
                    assert 0 < reset_after <= 1.01
                    assert abs(float(resp.headers["X-RateLimit-Reset"]) - time.time() - reset_after) < 0.5
                    message_id = (await resp.json())["id"]
            async with http.post(url, json={"content": "one too many"}) as resp:
                assert resp.status == 429 and resp.headers["Via"] and resp.headers["X-RateLimit-Scope"] == "user"
                assert resp.headers["X-RateLimit-Remaining"] == "0" and "X-RateLimit-Global" not in resp.headers
                body = await resp.json()
                assert 0 < body["retry_after"] <= 1.0 and body["global"] is False
            async with http.patch(f"{url}/{message_id}", json={"content": "edited"}) as resp:
                assert resp.status == 429 and resp.headers["X-RateLimit-Bucket"] == BUCKET_HASH  # same bucket
            async with http.get(f"{url}/{message_id}") as resp:
                assert resp.status == 200 and "X-RateLimit-Bucket" not in resp.headers  # reads are not bucketed
        assert fake.route_429_count == 2 and fake.global_429_count == 0

        started = time.monotonic()
        inter = await fake.slash("flood", user_id=alice, channel_id=busy)
        await asyncio.wait_for(rec.flood_done.wait(), 10)
        assert inter.response_type == 4  # the callback itself is not rate limited
        assert fake.route_429_count >= 3  # the bot's own send hit a 429 and was retried
        assert rec.flood_message_id is not None
        assert sorted(fake.messages[rec.flood_message_id].edits) == sorted(f"edit {i}" for i in range(8))
        assert fake.max_writes_in_window(busy) <= 5
        writes = [t for t, c, kind in fake.write_log if c == busy and kind != "callback"]
        assert [k for _, c, k in fake.write_log if c == busy].count("callback") == 1
        assert len(writes) == 5 + 1 + 8
        assert writes[-1] - writes[0] >= 2.0  # 14 writes at 5/s need at least two full windows
        assert time.monotonic() - started < 8


async def test_invalid_requests_are_counted() -> None:
    async with running(global_limit=5, global_window=30.0) as (fake, _bot, _rec):
        alice = fake.add_user("alice")
        mine = await fake.post_message(fake.text_channel_id, "mine", user_id=alice)
        assert fake.invalid_requests_in(600) == 0  # the bot's login and sync were all fine
        async with aiohttp.ClientSession() as http:
            async with http.get(api(fake, "/users/@me")) as resp:
                assert resp.status == 401  # no token
            headers = {"Authorization": "Bot counter"}
            async with http.put(api(fake, "/applications/1/commands"), json=[], headers=headers) as resp:
                assert resp.status == 403
            async with http.patch(api(fake, f"/channels/{fake.text_channel_id}/messages/{mine['id']}"),
                                  json={"content": "not yours"}, headers=headers) as resp:
                assert resp.status == 403 and (await resp.json())["code"] == 50005
            for _ in range(3):
                async with http.get(api(fake, "/users/@me"), headers=headers) as resp:
                    assert resp.status == 200  # not counted
            async with http.get(api(fake, "/users/@me"), headers=headers) as resp:
                assert resp.status == 429  # the token's sixth request in 30 s: global
            async with http.get(f"{fake.base_url}/attachments/1/2/x.txt") as resp:
                assert resp.status == 404  # neither 2xx nor 404 counts
        assert [status for _, status, *_ in fake.invalid_requests] == [401, 403, 403, 429]
        assert fake.invalid_requests_in(600) == 4 and fake.invalid_requests_in(0) == 0
