"""Self-tests for the fake Discord server: an unmodified discord.py bot over real sockets."""

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
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord_server import FakeDiscord

FRUITS = ["apple", "apricot", "banana", "cherry"]


@dataclass
class Record:
    seen: list[discord.Message] = field(default_factory=list)
    attachment_bytes: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    clicks: list[int] = field(default_factory=list)
    late_error_codes: list[int] = field(default_factory=list)
    slow_delay: float = 0.5
    flood_done: asyncio.Event = field(default_factory=asyncio.Event)
    flood_message_id: int | None = None
    errors: list[tuple[int, int]] = field(default_factory=list)
    modal_answers: list[str] = field(default_factory=list)


class PressView(discord.ui.View):
    def __init__(self, rec: Record) -> None:
        super().__init__(timeout=30)
        self.rec = rec

    @discord.ui.button(label="Press", custom_id="press", style=discord.ButtonStyle.primary)
    async def press(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.rec.clicks.append(interaction.user.id)
        await interaction.response.edit_message(content=f"clicked by {interaction.user.name}", view=None)


class NameModal(discord.ui.Modal, title="Who are you?"):
    name: discord.ui.TextInput[NameModal] = discord.ui.TextInput(label="Your name")

    def __init__(self, rec: Record) -> None:
        super().__init__()
        self.rec = rec

    async def on_submit(self, interaction: discord.Interaction) -> None:
        self.rec.modal_answers.append(self.name.value)
        await interaction.response.send_message(f"hello {self.name.value}")


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
        rec = self.rec
        tree = self.tree

        @tree.command(name="echo", description="Echo some text")
        async def echo(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.defer()
            await interaction.edit_original_response(content=f"echo: {text}")
            await interaction.followup.send("more")

        @tree.command(name="btn", description="Send a button")
        async def btn(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("press it", view=PressView(rec))

        async def fruit_autocomplete(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=f, value=f) for f in FRUITS if f.startswith(current)]

        @tree.command(name="pick", description="Pick a fruit")
        @app_commands.autocomplete(fruit=fruit_autocomplete)
        async def pick(interaction: discord.Interaction, fruit: str) -> None:
            await interaction.response.send_message(f"picked {fruit}", ephemeral=True)

        @tree.command(name="add", description="Add numbers")
        async def add(
            interaction: discord.Interaction, a: int, b: int, scale: float = 1.0, neg: bool = False
        ) -> None:
            total = (a + b) * scale * (-1 if neg else 1)
            await interaction.response.send_message(f"{type(a).__name__} {total:g}")

        @tree.command(name="upload", description="Upload a file")
        async def upload(interaction: discord.Interaction, file: discord.Attachment) -> None:
            data = await file.read()
            rec.uploads[file.filename] = data
            await interaction.response.send_message(f"got {len(data)} bytes")

        @tree.command(name="slow", description="Answers too late")
        async def slow(interaction: discord.Interaction) -> None:
            await asyncio.sleep(rec.slow_delay)
            try:
                await interaction.response.send_message("late")
            except discord.NotFound as exc:
                rec.late_error_codes.append(exc.code)

        @tree.command(name="flood", description="Many writes to one channel")
        async def flood(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("flooding")
            channel = interaction.channel
            assert isinstance(channel, discord.TextChannel)
            target = await channel.send("target")
            rec.flood_message_id = target.id
            await asyncio.gather(*(target.edit(content=f"edit {i}") for i in range(8)))
            rec.flood_done.set()

        @tree.command(name="files", description="Files, embeds and a too-long followup")
        async def files(interaction: discord.Interaction) -> None:
            embed = discord.Embed(title="T", description="D")
            await interaction.response.send_message(
                "with file", file=discord.File(io.BytesIO(b"data123"), "out.txt"), embed=embed
            )
            try:
                await interaction.followup.send("x" * 2001)
            except discord.HTTPException as exc:
                rec.errors.append((exc.status, exc.code))
            await interaction.followup.send("second file", file=discord.File(io.BytesIO(b"zz"), "z.bin"))

        @tree.command(name="think", description="Ephemeral thinking, then a followup")
        async def think(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.followup.send("result")

        @tree.command(name="form", description="Open a modal")
        async def form(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(NameModal(rec))

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
            async with message.channel.typing():
                await message.channel.send(f"you said: {message.content}")


@contextlib.asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[tuple[FakeDiscord, TinyBot, Record]]:
    fake = FakeDiscord(**kwargs)
    await fake.start()
    fake.install()
    rec = Record()
    bot = TinyBot(rec)
    task = asyncio.create_task(bot.start("fake-token"))
    try:
        ready = asyncio.create_task(fake.wait_ready())
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            task.result()
            raise AssertionError("bot stopped before becoming ready")
        await ready
        yield fake, bot, rec
    finally:
        await bot.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        await fake.close()
        fake.uninstall()
    assert fake.server_errors == []
    assert fake.unknown_routes == [] or fake.unknown_routes == [("GET", "/api/v10/nope")]


def bot_texts(fake: FakeDiscord, channel_id: int) -> list[str]:
    return [m.content for m in fake.channel_messages(channel_id) if m.author_id == fake.bot_user_id]


async def test_login_ready_sync_and_http_basics() -> None:
    async with running() as (fake, bot, _rec):
        assert bot.user is not None and bot.user.id == fake.bot_user_id
        assert fake.ready_count == 1
        assert fake.command_sync_count == 1
        assert {c["name"] for c in fake.commands} == {
            "echo",
            "btn",
            "pick",
            "add",
            "upload",
            "slow",
            "flood",
            "files",
            "think",
            "form",
            "config",
        }
        assert all(c["application_id"] == str(fake.application_id) and c["id"] for c in fake.commands)
        assert fake.identify_payloads[0]["intents"] & (1 << 15)
        await fake.wait_for(lambda: bot.get_guild(fake.guild_id) is not None)
        guild = bot.get_guild(fake.guild_id)
        assert guild is not None and guild.get_channel(fake.text_channel_id) is not None
        app = await bot.application_info()
        assert app.owner.id == fake.owner_id

        async with aiohttp.ClientSession(headers={"Authorization": "Bot x"}) as http:
            async with http.get(f"{fake.base_url}/api/v10/users/@me") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "application/json"
            async with http.get(f"{fake.base_url}/api/v10/nope") as resp:
                assert resp.status == 404
                assert await resp.json() == {"message": "Unknown", "code": 0}
            url = (
                f"{fake.base_url}/api/v10/applications/{fake.application_id}/guilds/{fake.guild_id}/commands"
            )
            async with http.put(
                url, json=[{"name": "local", "description": "Guild only", "type": 1}]
            ) as resp:
                assert resp.status == 200
            async with http.put(url, json=[{"name": "Bad Name", "description": "x"}]) as resp:
                assert resp.status == 400 and (await resp.json())["code"] == 50035
            async with http.get(url) as resp:
                assert [c["name"] for c in await resp.json()] == ["local"]
        assert fake.command_sync_count == 2
        assert fake.guild_commands[fake.guild_id][0]["guild_id"] == str(fake.guild_id)
        assert fake.unknown_routes == [("GET", "/api/v10/nope")]


async def test_slash_defer_edit_followup_and_options() -> None:
    async with running() as (fake, _bot, rec):
        alice = fake.add_user("alice")
        inter = await fake.slash("echo", {"text": "hi"}, user_id=alice)
        await inter.wait_response()
        assert inter.response_type == 5
        assert inter.callback_delay is not None and inter.callback_delay < 3
        await fake.wait_for(lambda: len(inter.followups) == 1)
        assert inter.message is not None
        assert inter.message.content == "echo: hi"
        assert inter.message.edits == ["echo: hi"]
        assert not inter.message.loading
        assert inter.message.interaction_id == inter.id
        assert inter.followups[0].content == "more"
        assert bot_texts(fake, fake.text_channel_id) == ["echo: hi", "more"]

        add = await fake.slash("add", {"a": 2, "b": "3", "scale": 2, "neg": True}, user_id=alice)
        await add.wait_response()
        assert add.message is not None and add.message.content == "int -10"

        allow = await fake.slash("config", {"name": "gpt"}, subcommand=["model", "allow"], user_id=alice)
        await allow.wait_response()
        assert allow.message is not None and allow.message.content == "allowed gpt"
        assert allow.ephemeral

        up = await fake.slash(
            "upload", user_id=alice, attachments={"file": ("notes.txt", b"hello", "text/plain")}
        )
        await up.wait_response()
        assert rec.uploads == {"notes.txt": b"hello"}

        dm = await fake.slash("echo", {"text": "private"}, user_id=alice, guild=False)
        await dm.wait_response()
        await fake.wait_for(lambda: len(dm.followups) == 1)
        assert dm.message is not None and dm.message.content == "echo: private"
        assert dm.channel_id == await fake.open_dm(alice)


async def test_autocomplete_and_button_click() -> None:
    async with running() as (fake, _bot, rec):
        alice = fake.add_user("alice")
        bob = fake.add_user("bob")
        choices = await fake.autocomplete("pick", {"fruit": "ap"}, "fruit", user_id=alice)
        assert choices == [{"name": "apple", "value": "apple"}, {"name": "apricot", "value": "apricot"}]

        inter = await fake.slash("btn", user_id=alice)
        await inter.wait_response()
        assert inter.response_type == 4
        msg = inter.message
        assert msg is not None and msg.content == "press it"
        assert any(c.get("custom_id") == "press" for c in msg.iter_components())

        click = await fake.click(msg.id, "press", user_id=bob)
        await click.wait_response()
        assert click.response_type == 7
        assert rec.clicks == [bob]
        assert msg.content == "clicked by bob"
        assert msg.components == []
        assert msg.edits == ["clicked by bob"]


async def test_modal_submit() -> None:
    async with running() as (fake, _bot, rec):
        alice = fake.add_user("alice")
        opened = await fake.slash("form", user_id=alice)
        await opened.wait_response()
        assert opened.response_type == 9 and opened.modal is not None
        assert opened.modal["title"] == "Who are you?"
        submitted = await fake.submit_modal(opened, {"Your name": "Alice"})
        await submitted.wait_response()
        assert rec.modal_answers == ["Alice"]
        assert submitted.message is not None and submitted.message.content == "hello Alice"


async def test_on_message_attachments_threads_and_dms() -> None:
    async with running() as (fake, bot, rec):
        alice = fake.add_user("alice")
        general = fake.text_channel_id
        await fake.post_message(
            general, "hello bot", user_id=alice, attachments=[("a.txt", b"abc", "text/plain")]
        )
        await fake.wait_for(lambda: "you said: hello bot" in bot_texts(fake, general))
        assert rec.seen[0].content == "hello bot"
        assert rec.seen[0].author.id == alice
        assert isinstance(rec.seen[0].channel, discord.TextChannel)
        assert rec.attachment_bytes == {"a.txt": b"abc"}

        await fake.post_message(general, "ping", user_id=alice, mentions_bot=True)
        await fake.wait_for(lambda: len(rec.seen) == 2)
        assert rec.seen[1].content.startswith(f"<@{fake.bot_user_id}>")
        assert bot.user in rec.seen[1].mentions

        starter = await fake.post_message(general, "thread please", user_id=alice)
        starter_id = int(starter["id"])
        await fake.wait_for(lambda: starter_id in fake.threads)
        thread = fake.threads[starter_id]
        assert thread["parent_id"] == str(general) and thread["name"] == "discussion"
        await fake.wait_for(lambda: bot_texts(fake, starter_id) == ["thread started"])

        await fake.post_message(starter_id, "inside", user_id=alice)
        await fake.wait_for(lambda: "in thread: inside" in bot_texts(fake, starter_id))
        in_thread = rec.seen[-1]
        assert isinstance(in_thread.channel, discord.Thread)
        assert in_thread.channel.id == starter_id and in_thread.channel.parent_id == general

        dm_channel = await fake.open_dm(alice)
        await fake.post_message(dm_channel, "psst", user_id=alice)
        await fake.wait_for(lambda: bot_texts(fake, dm_channel) == ["dm reply"])
        assert isinstance(rec.seen[-1].channel, discord.DMChannel)
        assert rec.seen[-1].content == "psst"


async def test_rate_limit_429s_are_retried_transparently() -> None:
    async with running(channel_write_limit=5, channel_write_window=1.0) as (fake, _bot, rec):
        alice = fake.add_user("alice")
        busy = fake.add_text_channel("busy")
        # Another writer fills the channel's window, so the bot's first send is answered with a 429.
        async with aiohttp.ClientSession(headers={"Authorization": "Bot x"}) as http:
            for i in range(5):
                url = f"{fake.base_url}/api/v10/channels/{busy}/messages"
                async with http.post(url, json={"content": f"filler {i}"}) as resp:
                    assert resp.status == 200
                    assert resp.headers["X-RateLimit-Remaining"] == str(4 - i)
            async with http.post(url, json={"content": "one too many"}) as resp:
                assert resp.status == 429
                assert resp.headers["Via"] == "1.1 google"
                body = await resp.json()
                assert 0 < body["retry_after"] <= 1.0 and body["global"] is False
        assert fake.rate_limited_count == 1

        started = time.monotonic()
        inter = await fake.slash("flood", user_id=alice, channel_id=busy)
        await asyncio.wait_for(rec.flood_done.wait(), 10)
        assert inter.response_type == 4  # the callback itself is not rate limited
        assert fake.rate_limited_count >= 2  # the bot's own send hit a 429 and was retried
        assert rec.flood_message_id is not None
        target = fake.messages[rec.flood_message_id]
        assert sorted(target.edits) == sorted(f"edit {i}" for i in range(8))
        assert fake.max_writes_in_window(busy) <= 5
        writes = [t for t, c, kind in fake.write_log if c == busy and kind != "callback"]
        assert [k for _, c, k in fake.write_log if c == busy].count("callback") == 1
        assert len(writes) == 5 + 1 + 8
        assert writes[-1] - writes[0] >= 2.0  # 14 writes at 5/s need at least two full windows
        assert time.monotonic() - started < 8


async def test_late_and_duplicate_callbacks_are_rejected() -> None:
    async with running(interaction_deadline=0.3) as (fake, _bot, rec):
        alice = fake.add_user("alice")
        rec.slow_delay = 0.5
        slow = await fake.slash("slow", user_id=alice)
        await slow.wait_response()
        await fake.wait_for(lambda: rec.late_error_codes == [10062])
        assert slow.response_type is None
        assert slow.callback_errors == [(404, 10062)]

        btn = await fake.slash("btn", user_id=alice)
        await btn.wait_response()
        url = f"{fake.base_url}/api/v10/interactions/{btn.id}/{btn.token}/callback"
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, json={"type": 4, "data": {"content": "x"}}) as resp,
        ):
            assert resp.status == 400
            assert (await resp.json())["code"] == 40060
        assert btn.response_type == 4


async def test_resume_after_disconnect_replays_missed_events() -> None:
    async with running() as (fake, _bot, rec):
        alice = fake.add_user("alice")
        await fake.disconnect_clients()
        # Dispatched while the client is away: kept in the session backlog and replayed on RESUME.
        await fake.post_message(fake.text_channel_id, "while away", user_id=alice)
        await fake.wait_for(lambda: fake.resume_count == 1)
        await fake.wait_for(lambda: "you said: while away" in bot_texts(fake, fake.text_channel_id))
        assert fake.ready_count == 1
        assert [m.content for m in rec.seen] == ["while away"]


async def test_bot_uploads_embeds_validation_and_thinking_followup() -> None:
    async with running() as (fake, _bot, rec):
        alice = fake.add_user("alice")
        inter = await fake.slash("files", user_id=alice)
        await inter.wait_response()
        await fake.wait_for(lambda: len(inter.followups) == 1)
        msg = inter.message
        assert msg is not None and msg.content == "with file"
        assert [a["filename"] for a in msg.attachments] == ["out.txt"]
        assert fake.file_bytes(msg.attachments[0]) == b"data123"
        assert msg.attachments[0]["content_type"] == "text/plain"
        assert msg.embeds[0]["title"] == "T" and msg.embeds[0]["description"] == "D"
        assert rec.errors == [(400, 50035)]
        assert fake.file_bytes(inter.followups[0].attachments[0]) == b"zz"

        think = await fake.slash("think", user_id=alice)
        await think.wait_response()
        assert think.response_type == 5 and think.ephemeral
        assert think.message is not None
        await fake.wait_for(lambda: think.message is not None and not think.message.loading)
        # The first followup after a "thinking" defer replaces the loading message.
        assert think.message.content == "result" and think.followups == []
        assert think.message.ephemeral

        await fake.post_message(fake.text_channel_id, "typing test", user_id=alice)
        await fake.wait_for(lambda: "you said: typing test" in bot_texts(fake, fake.text_channel_id))
        assert [c for _, c in fake.typing_log] == [fake.text_channel_id]

        asked = await fake.post_message(fake.text_channel_id, "reply", user_id=alice)
        await fake.wait_for(lambda: "replying" in bot_texts(fake, fake.text_channel_id))
        reply = fake.bot_messages(fake.text_channel_id)[-1]
        assert reply.type == 19 and reply.message_reference is not None
        assert reply.message_reference["message_id"] == asked["id"]
        assert reply.mentions == [alice]


async def test_message_content_intent_off_blanks_content() -> None:
    fake = FakeDiscord()
    await fake.start()
    fake.install()
    seen: list[discord.Message] = []
    client = discord.Client(intents=discord.Intents.default())

    @client.event
    async def on_message(message: discord.Message) -> None:
        seen.append(message)

    task = asyncio.create_task(client.start("fake-token"))
    try:
        await fake.wait_ready()
        alice = fake.add_user("alice")
        await fake.post_message(fake.text_channel_id, "secret", user_id=alice)
        await fake.post_message(fake.text_channel_id, "hey you", user_id=alice, mentions_bot=True)
        dm = await fake.open_dm(alice)
        await fake.post_message(dm, "dm text", user_id=alice)
        await fake.wait_for(lambda: len(seen) == 3)
        assert [m.content for m in seen] == ["", f"<@{fake.bot_user_id}> hey you", "dm text"]
    finally:
        await client.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        await fake.close()
    assert fake.server_errors == []
