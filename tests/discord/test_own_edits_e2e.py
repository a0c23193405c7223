"""Discord echoes each of the bot's own edits as MESSAGE_UPDATE: the bot drops those unparsed, while a
member's edit still reaches `on_raw_message_edit` (edit to answer again, bot/discord/cogs/again.py)."""

from __future__ import annotations

import sys
from typing import Any

from bot.discord.bot import EXTENSIONS, skip_own_message_updates
from tests.discord.conftest import Harness, last_user_text, start_conversation


async def test_the_bots_own_edits_are_skipped_and_a_members_edit_is_answered_again(harness: Harness) -> None:
    harness.client_options["extensions"] = (*EXTENSIONS, "tests.discord.edit_probe")
    await harness.start()
    seen = sys.modules["tests.discord.edit_probe"].SEEN  # discord.py loads an extension as a fresh module
    d = harness.discord
    thread_id, answer = await start_conversation(harness)
    question = await d.post_message(thread_id, "And Go?", user_id=harness.user)
    [reply] = await harness.wait_answer_done(thread_id)
    assert answer.edits and reply.edits  # the bot edited its messages: Discord echoed each
    assert seen == []
    await d.edit_user_message(int(question["id"]), "And Zig?")
    await harness.wait_answer_done(thread_id, count=2)
    assert [p.message_id for p in seen if p.message_id == int(question["id"])]
    assert all(str(p.data["author"]["id"]) != str(d.bot_user_id) for p in seen)
    assert last_user_text(harness.openrouter.chat_requests()[-1].json()) == "And Zig?"


def test_only_updates_authored_by_the_bot_itself_are_dropped() -> None:
    parsed: list[dict[str, Any]] = []
    me: list[int | None] = [None]
    parsers: dict[str, Any] = {"MESSAGE_UPDATE": parsed.append}
    skip_own_message_updates(parsers, lambda: me[0])
    own = {"id": "1", "author": {"id": "42", "bot": True}, "content": "edited"}
    parsers["MESSAGE_UPDATE"](own)  # before READY the bot does not know its id: nothing is dropped
    me[0] = 42
    other_bot = {"id": "2", "author": {"id": "43", "bot": True}, "content": "x"}
    member = {"id": "3", "author": {"id": "7"}, "content": "y"}
    no_author = {"id": "4", "embeds": []}
    for data in (own, other_bot, member, no_author):
        parsers["MESSAGE_UPDATE"](data)
    assert parsed == [own, other_bot, member, no_author]
