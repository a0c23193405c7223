"""Chat end to end: the unmodified discord.py client against local Discord and OpenRouter servers."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.chat.text import open_fence
from bot.discord.pacing import ChannelPacer
from tests.conftest import fixture_bytes
from tests.discord.conftest import NO_MENTIONS, Harness, has_stop_button, last_user_text, start_conversation
from tests.fakes.openrouter_server import JSONReply, SSEReply


async def test_slash_chat_streams_then_opens_a_thread(bot: Harness) -> None:
    d = bot.discord
    bot.openrouter.reply_text = "Rust is a systems programming language. " * 5
    bot.openrouter.tokens_per_second = 100
    inter = await d.slash("chat", {"prompt": "What is Rust?"}, user_id=bot.user, channel_id=d.text_channel_id)
    await inter.wait_response()
    assert inter.response_type == 4  # the response itself opened with the first words: no deferral first
    assert inter.message is not None and inter.message.first_content.startswith("Rust")
    await d.wait_for(lambda: bool(d.threads), timeout=15)
    message = inter.message
    assert message is not None
    assert message.content.startswith("Rust is a systems programming language.")
    assert "▌" not in message.content
    assert "`openai/gpt-4o`" in message.content and "tokens" in message.content
    assert len(message.edits) >= 3  # streamed: several edits
    assert any("▌" in edit for edit in message.edits)  # a cursor while it streamed
    [thread] = d.threads.values()
    assert thread["name"] == "What is Rust?" and thread["parent_id"] == str(d.text_channel_id)
    rows = await bot.query("SELECT thread_id, model, owner_id FROM conversations")
    assert rows == [(int(thread["id"]), "openai/gpt-4o", bot.user)]
    turns = await bot.query("SELECT role, status, content, cost_nusd, generation_id FROM turns ORDER BY id")
    assert turns[0][:3] == ("user", "complete", "What is Rust?")
    assert turns[1][0] == "assistant" and turns[1][1] == "complete" and turns[1][3] > 0 and turns[1][4]
    assert turns[1][2] == bot.openrouter.reply_text
    for m in bot.bot_messages():
        assert m.allowed_mentions == NO_MENTIONS, m


async def test_thread_messages_continue_the_conversation(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    await d.post_message(thread_id, "And Go?", user_id=bot.user)
    answers = await bot.wait_answer_done(thread_id)
    assert answers[0].content.startswith("Echo: And Go?")
    second = bot.openrouter.chat_requests()[-1].json()
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert second["messages"][1]["content"] == "What is Rust?"
    assert second["messages"][2]["content"] == "Echo: What is Rust?"
    assert last_user_text(second) == "And Go?"
    assert second["model"] == "openai/gpt-4o" and second["stream"] is True
    assert second["user"].startswith("discord-") and str(bot.user) not in second["user"]


async def test_messages_wait_their_turn_and_history_stays_in_order(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    bot.openrouter.tokens_per_second = 60
    bot.openrouter.reply_text = lambda body: f"Answer to {last_user_text(body)}: " + "blah " * 40
    await d.post_message(thread_id, "first", user_id=bot.user)
    await asyncio.sleep(0.3)
    await d.post_message(thread_id, "second", user_id=bot.user)
    await d.wait_for(lambda: len(bot.bot_messages(thread_id)) == 2)
    assert "Waiting for the previous answer" in bot.bot_messages(thread_id)[1].content
    await bot.wait_answer_done(thread_id, count=2, within=30)
    requests = bot.openrouter.chat_requests()[-2:]
    assert last_user_text(requests[0].json()) == "first"
    later = requests[1].json()["messages"]
    assert [m["role"] for m in later][-3:] == ["user", "assistant", "user"]
    assert later[-3]["content"] == "first" and later[-2]["content"].startswith("Answer to first")


async def test_restart_loses_nothing_and_skips_an_unchanged_command_sync(harness: Harness) -> None:
    d = harness.discord
    await harness.start()
    thread_id, _ = await start_conversation(harness, "Remember the number 42")
    assert d.command_sync_count == 1
    assert await harness.stop() == 0
    await harness.start()
    assert d.command_sync_count == 1  # nothing changed, no second sync
    await d.post_message(thread_id, "Which number?", user_id=harness.user)
    await harness.wait_answer_done(thread_id)
    body = harness.openrouter.chat_requests()[-1].json()
    history = [m.get("content") for m in body["messages"][1:3]]
    assert history == ["Remember the number 42", "Echo: Remember the number 42"]


async def test_long_answers_are_split_without_breaking_code_blocks(bot: Harness) -> None:
    d = bot.discord
    code = "\n".join(f"    result_{i} = compute({i})  # step {i}" for i in range(150))
    bot.openrouter.reply_text = "Intro paragraph.\n\n```python\ndef main():\n" + code + "\n```\n\nThat is all."
    bot.openrouter.chunk_chars = 40
    thread_id, _ = await start_conversation(bot)
    await d.post_message(thread_id, "Write code", user_id=bot.user)
    await bot.wait_answer_done(thread_id)
    parts = [m.content for m in bot.bot_messages(thread_id)]
    assert len(parts) >= 3
    assert all(len(p) <= 2000 for p in parts)
    assert all(open_fence(p) is None for p in parts)
    assert parts[0].startswith("Intro paragraph.")
    assert all(p.startswith("```python") for p in parts[1:-1])
    assert "That is all." in parts[-1] and "`openai/gpt-4o`" in parts[-1]
    assert all("▌" not in p for p in parts)


async def test_nothing_the_model_writes_can_ping(bot: Harness) -> None:
    d = bot.discord
    bot.openrouter.reply_text = f"@everyone @here <@{bot.stranger}> <@&{d.guild_id}> look!"
    _, message = await start_conversation(bot)
    assert "@\u200beveryone" in message.content and "@\u200bhere" in message.content
    for m in bot.bot_messages():
        assert m.allowed_mentions == NO_MENTIONS
        assert not m.mention_everyone and not m.mentions and not m.mention_roles


async def test_mention_in_a_channel_starts_a_conversation(bot: Harness) -> None:
    d = bot.discord
    msg = await d.post_message(d.text_channel_id, "how are you?", user_id=bot.user, mentions_bot=True)
    await d.wait_for(lambda: bool(d.threads), timeout=15)
    [thread] = d.threads.values()
    reply = d.messages[int(thread["id"])]
    assert reply.message_reference and str(reply.message_reference["message_id"]) == str(msg["id"])
    assert reply.content.startswith("Echo: how are you?")
    assert thread["name"] == "how are you?"
    conv = await bot.query("SELECT thread_id, channel_id FROM conversations")
    assert conv == [(int(thread["id"]), d.text_channel_id)]


async def test_other_channel_messages_are_ignored(bot: Harness) -> None:
    d = bot.discord
    await d.post_message(d.text_channel_id, "just chatting", user_id=bot.user)
    await asyncio.sleep(0.5)
    assert bot.openrouter.chat_requests() == [] and bot.bot_messages() == []


async def test_direct_messages_are_one_conversation(bot: Harness) -> None:
    d = bot.discord
    dm = await d.open_dm(bot.user)
    await d.post_message(dm, "hello in private", user_id=bot.user)
    await bot.wait_answer_done(dm)
    await d.post_message(dm, "again", user_id=bot.user)
    await bot.wait_answer_done(dm, count=2)
    body = bot.openrouter.chat_requests()[-1].json()
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert await bot.query("SELECT guild_id, thread_id FROM conversations") == [(None, None)]


async def test_dms_can_be_turned_off(harness: Harness) -> None:
    harness.overrides["allow_dms"] = False
    await harness.start()
    d = harness.discord
    dm = await d.open_dm(harness.user)
    await d.post_message(dm, "hello", user_id=harness.user)
    await d.wait_for(lambda: bool(harness.bot_messages(dm)))
    assert "turned off" in harness.bot_messages(dm)[0].content
    assert harness.openrouter.chat_requests() == []


async def test_stop_button_keeps_the_partial_answer_and_its_cost(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    bot.openrouter.tokens_per_second = 30
    bot.openrouter.reply_text = "word " * 400
    await d.post_message(thread_id, "Talk a lot", user_id=bot.user)

    def streaming() -> bool:
        msgs = bot.bot_messages(thread_id)
        return bool(msgs) and "word word word" in msgs[0].content and bool(msgs[0].components)

    await d.wait_for(streaming, timeout=15)
    answer = bot.bot_messages(thread_id)[0]
    refused = await d.click(answer.id, "answer:stop", user_id=bot.stranger)
    await refused.wait_response()
    assert refused.ephemeral and "Only the person who asked" in (refused.response_data or {}).get("content", "")
    click = await d.click(answer.id, "answer:stop", user_id=bot.user)
    await click.wait_response()
    await d.wait_for(lambda: "stopped" in d.messages[answer.id].content, timeout=15)
    final = d.messages[answer.id]
    assert "▌" not in final.content and not has_stop_button(final)
    assert final.content.startswith("word word")
    row = (await bot.query("SELECT status, content, cost_nusd FROM turns WHERE role = 'assistant' ORDER BY id DESC"))[0]
    assert row[0] == "stopped" and row[1].startswith("word word") and row[2] and row[2] > 0
    assert len(row[1]) < len(bot.openrouter.reply_text)


async def test_a_moderator_can_stop_an_answer(bot: Harness) -> None:
    d = bot.discord
    bot.openrouter.tokens_per_second = 20
    bot.openrouter.reply_text = "slow " * 300
    inter = await d.slash("chat", {"prompt": "go"}, user_id=bot.user, channel_id=d.text_channel_id)
    await d.wait_for(lambda: inter.message is not None and bool(inter.message.components), timeout=15)
    assert inter.message is not None
    click = await d.click(inter.message.id, "answer:stop", user_id=bot.moderator)
    await click.wait_response()
    await d.wait_for(lambda: inter.message is not None and "stopped" in inter.message.content, timeout=15)


async def test_out_of_credits_becomes_a_clear_message_and_the_turn_is_kept(bot: Harness) -> None:
    d = bot.discord
    bot.openrouter.script("chat", JSONReply(402, fixture_bytes("error-402-with-metadata.json")))
    inter = await d.slash("chat", {"prompt": "hi"}, user_id=bot.user, channel_id=d.text_channel_id)
    await d.wait_for(lambda: inter.message is not None and "out of credits" in inter.message.content, timeout=15)
    rows = await bot.query("SELECT role, status, error FROM turns ORDER BY id")
    assert rows[0][:2] == ("user", "complete")
    assert rows[1][:2] == ("assistant", "error") and "InsufficientCredits" in rows[1][2]


async def test_rate_limit_is_shown_while_the_bot_waits_then_answers(bot: Harness) -> None:
    d = bot.discord
    bot.openrouter.script("chat", JSONReply(429, fixture_bytes("error-429-upstream-provider.json"),
                                            {"Retry-After": "1.5"}))
    inter = await d.slash("chat", {"prompt": "hi"}, user_id=bot.user, channel_id=d.text_channel_id)
    await d.wait_for(lambda: bool(d.threads), timeout=20)
    assert inter.message is not None
    assert any("⏳" in e and "rate-limiting" in e for e in [inter.message.first_content, *inter.message.edits])
    assert inter.message.content.startswith("Echo: hi")


async def test_error_in_the_middle_of_a_stream(bot: Harness) -> None:
    d = bot.discord
    bot.openrouter.script("chat", SSEReply(fixture="stream-midstream-error.sse"))
    inter = await d.slash("chat", {"prompt": "hi"}, user_id=bot.user, channel_id=d.text_channel_id)
    await d.wait_for(lambda: inter.message is not None and "Token limit reached" in inter.message.content, timeout=15)
    row = (await bot.query("SELECT status, reasoning FROM turns WHERE role = 'assistant'"))[0]
    assert row[0] == "error" and row[1].startswith("We need")


async def test_unknown_model_is_refused_before_any_request(bot: Harness) -> None:
    d = bot.discord
    inter = await d.slash("chat", {"prompt": "hi", "model": "openai/gpt-4"}, user_id=bot.user,
                          channel_id=d.text_channel_id)
    await d.wait_for(lambda: inter.message is not None and "not a model OpenRouter offers" in inter.message.content)
    assert "`openai/gpt-4o`" in inter.message.content  # a close match is suggested
    assert bot.openrouter.chat_requests() == []


async def test_model_command_shows_and_switches(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    shown = await d.slash("model", {}, user_id=bot.user, channel_id=thread_id)
    await shown.wait_response()
    assert "`openai/gpt-4o`" in json.dumps(shown.response_data)
    denied = await d.slash("model", {"model": "openai/gpt-4.1-mini"}, user_id=bot.stranger, channel_id=thread_id)
    await denied.wait_response()
    assert "Only the person who started" in json.dumps(denied.response_data)
    switch = await d.slash("model", {"model": "anthropic/claude-sonnet-4"}, user_id=bot.user, channel_id=thread_id)
    await d.wait_for(lambda: switch.message is not None and "now uses" in switch.message.content)
    await d.post_message(thread_id, "who are you", user_id=bot.user)
    await bot.wait_answer_done(thread_id)
    assert bot.openrouter.chat_requests()[-1].json()["model"] == "anthropic/claude-sonnet-4"
    choices = await d.autocomplete("model", {"model": "sonn"}, "model", user_id=bot.user, channel_id=thread_id)
    assert choices and choices[0]["value"] == "anthropic/claude-sonnet-4"


async def test_models_command_lists_prices(bot: Harness) -> None:
    d = bot.discord
    inter = await d.slash("models", {"search": "gpt"}, user_id=bot.user, channel_id=d.text_channel_id)
    await d.wait_for(lambda: inter.message is not None and bool(inter.message.embeds))
    assert inter.message is not None
    text = json.dumps(inter.message.embeds)
    assert "openai/gpt-4o" in text and "$2.50" in text and "$10.00" in text and "128k ctx" in text
    assert "anthropic" not in text


async def test_a_deleted_message_leaves_the_context(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    secret = await d.post_message(thread_id, "my password is hunter2", user_id=bot.user)
    await bot.wait_answer_done(thread_id)
    await d.delete_user_message(int(secret["id"]))
    await asyncio.sleep(0.3)
    await d.post_message(thread_id, "what did I say?", user_id=bot.user)
    await bot.wait_answer_done(thread_id, count=2)
    body = json.dumps(bot.openrouter.chat_requests()[-1].json()["messages"])
    assert "hunter2" not in body  # neither the question nor the answer that repeated it
    assert "What is Rust?" in body
    # and the store no longer holds what it said, only that it was there
    assert await bot.query("SELECT content FROM turns WHERE discord_message_id = ?", (int(secret["id"]),)) == [("",)]


async def test_chat_inside_a_conversation_thread_continues_it(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    inter = await d.slash("chat", {"prompt": "continue please"}, user_id=bot.user, channel_id=thread_id)
    await d.wait_for(lambda: inter.message is not None and "Echo: continue please" in inter.message.content)
    assert len(d.threads) == 1  # no new thread
    body = bot.openrouter.chat_requests()[-1].json()
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]


async def test_old_turns_that_no_longer_fit_are_dropped_and_the_person_told_once(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot, "hi", model="openai/gpt-3.5-turbo")  # 16k context
    big = ("lorem ipsum dolor sit amet " * 1200).encode()  # ~32 KB, ~9k tokens
    bot.openrouter.reply_text = "Summarised."
    for i in range(3):
        await d.post_message(thread_id, f"summarise part {i}", user_id=bot.user,
                             attachments=[(f"part{i}.txt", big, "text/plain")])
        await bot.wait_answer_done(thread_id, count=i + 1)
    answers = [m.content for m in bot.bot_messages(thread_id)]
    told = [a for a in answers if "no longer fit" in a]
    assert len(told) == 1 and told[0] == answers[1]
    last = bot.openrouter.chat_requests()[-1].json()["messages"]
    assert "part2.txt" in json.dumps(last[-1]) and "part0.txt" not in json.dumps(last)
    assert last[0]["role"] == "system"


async def test_fallback_models_go_to_openrouter_filtered_by_the_allowlist(harness: Harness) -> None:
    harness.overrides["fallback_models"] = ["anthropic/claude-sonnet-4", "meta-llama/llama-3-8b:free",
                                            "openai/gpt-4.1-mini"]
    harness.overrides["default_allowed_models"] = ["openai/*", "anthropic/*"]
    await harness.start()
    harness.openrouter.use_fallback_model = True
    _, message = await start_conversation(harness, "hello")
    body = harness.openrouter.chat_requests()[-1].json()
    assert body["models"] == ["anthropic/claude-sonnet-4", "openai/gpt-4.1-mini"]
    # the model that really answered is what the footer shows and what is stored
    assert "`anthropic/claude-sonnet-4`" in message.content
    rows = await harness.query("SELECT model FROM turns WHERE role = 'assistant'")
    assert rows == [("anthropic/claude-sonnet-4",)]


async def test_chat_in_an_ordinary_thread_makes_that_thread_the_conversation(bot: Harness) -> None:
    d = bot.discord
    thread_id = d.add_thread(d.text_channel_id, "my own thread", owner_id=bot.user)  # a thread a member started
    await d.wait_for(lambda: bot.bot_messages(thread_id) == [] and thread_id in d.threads)
    inter = await d.slash("chat", {"prompt": "start here"}, user_id=bot.user, channel_id=thread_id)
    await d.wait_for(lambda: inter.message is not None and "Echo: start here" in inter.message.content)
    await d.post_message(thread_id, "and go on", user_id=bot.user)
    await d.wait_for(lambda: any("Echo: and go on" in m.content for m in bot.bot_messages(thread_id)))
    assert len(d.threads) == 1
    body = bot.openrouter.chat_requests()[-1].json()
    assert [m["content"] for m in body["messages"][1:]] == ["start here", "Echo: start here", "and go on"]


async def test_only_a_threads_creator_or_a_moderator_makes_it_a_conversation(bot: Harness) -> None:
    d = bot.discord
    thread_id = d.add_thread(d.text_channel_id, "alice's thread", owner_id=bot.user)
    refused = await d.slash("chat", {"prompt": "mine now"}, user_id=bot.stranger, channel_id=thread_id)
    await refused.wait_response()
    text = str((refused.response_data or {}).get("content"))
    assert refused.ephemeral and "Only the person who started this thread" in text
    assert bot.openrouter.chat_requests() == [] and await bot.query("SELECT id FROM conversations") == []
    allowed = await d.slash("chat", {"prompt": "moderating"}, user_id=bot.moderator, channel_id=thread_id)
    await d.wait_for(lambda: allowed.message is not None and "Echo: moderating" in allowed.message.content)


async def test_another_members_model_answers_their_question_only(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)  # alice's, on openai/gpt-4o
    inter = await d.slash("chat", {"prompt": "my turn", "model": "openai/gpt-4.1-mini"}, user_id=bot.stranger,
                          channel_id=thread_id)
    await d.wait_for(lambda: inter.message is not None and "Echo: Bob: my turn" in inter.message.content)
    assert bot.openrouter.chat_requests()[-1].json()["model"] == "openai/gpt-4.1-mini"
    assert await bot.query("SELECT model FROM conversations") == [("openai/gpt-4o",)]  # alice's is unchanged
    await d.post_message(thread_id, "and alice again", user_id=bot.user)
    await d.wait_for(lambda: any("Echo: Alice: and alice again" in m.content for m in bot.bot_messages(thread_id)))
    assert bot.openrouter.chat_requests()[-1].json()["model"] == "openai/gpt-4o"
    held = await bot.query("SELECT user_id, model FROM reservations ORDER BY id")
    assert held[1] == (bot.stranger, "openai/gpt-4.1-mini")  # billed to the member who chose it


async def test_a_typed_model_id_is_checked_before_it_is_shown(bot: Harness) -> None:
    d = bot.discord
    for typed in ("@everyone look", "<@123> `x`", "openai/" + "x" * 300, "anthropic/*"):
        inter = await d.slash("chat", {"prompt": "hi", "model": typed}, user_id=bot.user,
                              channel_id=d.text_channel_id)
        await inter.wait_response()
        text = str((inter.response_data or {}).get("content"))
        assert inter.ephemeral and "not a model id" in text and typed not in text
    refused = await d.slash("chat", {"prompt": "hi", "model": "openai/gpt-5-imaginary"}, user_id=bot.user,
                            channel_id=d.text_channel_id)
    await refused.wait_response()
    assert refused.ephemeral and "not a model OpenRouter offers" in str((refused.response_data or {}).get("content"))
    assert bot.openrouter.chat_requests() == [] and d.threads == {}


async def test_the_stop_button_is_there_before_the_first_word(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    bot.openrouter.script("chat", SSEReply(fixture="stream-basic.sse", delay_before=2.0),
                          SSEReply(fixture="stream-basic.sse", delay_before=2.0))
    await d.post_message(thread_id, "Are you there?", user_id=bot.user)

    def placeholder_with_stop() -> bool:
        msgs = bot.bot_messages(thread_id)
        return bool(msgs) and "Thinking" in msgs[-1].content and bool(msgs[-1].components)

    await d.wait_for(placeholder_with_stop, timeout=1.5)  # while OpenRouter has not answered yet
    inter = await d.slash("chat", {"prompt": "And you?"}, user_id=bot.user, channel_id=d.text_channel_id)
    await d.wait_for(lambda: inter.message is not None and "Thinking" in inter.message.content
                     and bool(inter.message.components), timeout=1.5)


async def test_a_reply_waiting_for_its_slot_opens_with_the_words_that_came_meanwhile(harness: Harness) -> None:
    """The request goes out at once; the reply opens when the thread's budget allows, with the first
    words in that first write (no placeholder, then an edit), and its Stop button."""
    pacer = harness.client_options["pacer"] = ChannelPacer(per=1.0)
    await harness.start()
    d = harness.discord
    thread_id, _ = await start_conversation(harness)
    harness.openrouter.tokens_per_second = 20
    harness.openrouter.reply_text = "slowly " * 40  # about 2 s of streaming
    pacer.assume_full(thread_id)  # the thread's budget is spent for about a second
    await d.post_message(thread_id, "Are you there?", user_id=harness.user)
    await d.wait_for(lambda: len(harness.bot_messages(thread_id)) == 1, timeout=5)
    [reply] = harness.bot_messages(thread_id)
    assert reply.first_content.startswith("slowly slowly") and reply.first_content.endswith("▌")
    assert reply.components  # stoppable from its first write
    [saved] = await harness.query("SELECT discord_message_ids FROM turns WHERE role = 'assistant' "
                                  "ORDER BY id DESC LIMIT 1")
    assert json.loads(saved[0]) == [reply.id]  # saved as it opened: a crash now is recovered in Discord
    await harness.wait_answer_done(thread_id)


async def test_with_a_first_words_wait_a_reply_waits_for_its_words_instead_of_a_placeholder(
        harness: Harness) -> None:
    harness.overrides["first_words_wait_seconds"] = 3.0
    await harness.start()
    d = harness.discord
    thread_id, _ = await start_conversation(harness)
    harness.openrouter.script("chat", SSEReply(fixture="stream-basic.sse", delay_before=0.8))
    await d.post_message(thread_id, "Take your time", user_id=harness.user)
    [answer] = await harness.wait_answer_done(thread_id)
    assert "Thinking" not in answer.first_content and answer.first_content.strip()


async def test_an_answer_over_before_its_slot_opens_in_its_final_form_at_once(harness: Harness) -> None:
    pacer = harness.client_options["pacer"] = ChannelPacer(per=1.0)
    await harness.start()
    d = harness.discord
    thread_id, _ = await start_conversation(harness)
    pacer.assume_full(thread_id)
    await d.post_message(thread_id, "Quick one", user_id=harness.user)  # answered in a few milliseconds
    [answer] = await harness.wait_answer_done(thread_id)
    assert answer.first_content == answer.content and answer.edits == [] and not has_stop_button(answer)
    assert "Echo: Quick one" in answer.content and answer.components  # one write, with its answer buttons


async def test_an_answer_longer_than_the_interaction_token_lives_goes_on_through_the_channel(
        harness: Harness) -> None:
    harness.discord.interaction_api.token_lifetime = 3.0  # Discord's is 15 minutes
    harness.overrides["interaction_token_seconds"] = 3.0
    await harness.start()
    d = harness.discord
    harness.openrouter.tokens_per_second = 25
    harness.openrouter.reply_text = "tick " * 120  # about 5 s of streaming
    inter = await d.slash("chat", {"prompt": "Count slowly"}, user_id=harness.user, channel_id=d.text_channel_id)
    await d.wait_for(lambda: inter.message is not None and "tick tick" in inter.message.content)
    await d.wait_for(lambda: inter.message is not None and "\n-# " in inter.message.content, timeout=20)
    final = inter.message
    assert final is not None and final.content.startswith("tick tick") and "▌" not in final.content
    assert not has_stop_button(final)
    channel_edits = [p for _, m, p, s in d.request_log
                     if m == "PATCH" and p.endswith(f"/channels/{d.text_channel_id}/messages/{final.id}") and s == 200]
    assert channel_edits  # after the token's time, through the channel; no 401 (the harness checks)


async def test_models_command_shows_variable_prices_never_as_free(harness: Harness) -> None:
    harness.openrouter.models += [
        {"id": "acme/router", "name": "Acme Router", "context_length": 100000,
         "pricing": {"prompt": "-1", "completion": "-1"}},
        {"id": "acme/unlisted", "name": "Acme Unlisted", "context_length": 8000},
        {"id": "acme/gift:free", "name": "Acme Gift", "context_length": 8000,
         "pricing": {"prompt": "0", "completion": "0"}},
    ]
    harness.overrides["default_allowed_models"] = ["acme/*"]
    await harness.start()
    d = harness.discord
    inter = await d.slash("models", {"search": "acme"}, user_id=harness.user, channel_id=d.text_channel_id)
    await d.wait_for(lambda: inter.message is not None and bool(inter.message.embeds))
    assert inter.message is not None
    lines = json.loads(json.dumps(inter.message.embeds))[0]["description"].split("\n\n")
    shown = {line.split("`")[1]: line for line in lines}
    assert "variable price" in shown["acme/router"] and "free" not in shown["acme/router"]
    assert "variable price" in shown["acme/unlisted"] and "free" not in shown["acme/unlisted"]
    assert "in free / out free" in shown["acme/gift:free"]


async def test_a_stream_of_keep_alives_ends_as_an_error_with_what_arrived_kept(harness: Harness) -> None:
    harness.overrides |= {"stream_idle_content_seconds": 1.0, "idle_timeout_seconds": 0.5}
    await harness.start()
    d = harness.discord
    first = b'data: {"id":"gen-ka","model":"openai/gpt-4o","choices":[{"index":0,"delta":{"content":"Half an"}}]}\n\n'
    harness.openrouter.script("chat", SSEReply(events=[first, b"data: [DONE]\n\n"], interval=60, keepalive_every=0.1))
    inter = await d.slash("chat", {"prompt": "hi"}, user_id=harness.user, channel_id=d.text_channel_id)
    await d.wait_for(lambda: inter.message is not None and "took too long" in inter.message.content, timeout=15)
    assert inter.message is not None and inter.message.content.startswith("Half an")
    [row] = await harness.query("SELECT status, content, error FROM turns WHERE role = 'assistant'")
    assert row[:2] == ("error", "Half an") and "keep-alives" in row[2]


async def test_many_threads_answering_at_once_stay_under_discords_global_limit(harness: Harness) -> None:
    """Discord's global limit (50 a second, here 10 so that eight threads reach it) with the bot's own
    budget below it (headroom for discord.py's own calls, as 45 of 50 keeps): every answer completes and
    Discord answers no 429 at all."""
    harness.discord.limits.global_limit = 10
    harness.overrides["discord_writes_per_second"] = 6
    await harness.start()
    d = harness.discord
    rooms = [d.add_text_channel(f"room-{i}") for i in range(8)]  # one conversation per channel
    for i, room in enumerate(rooms):
        await d.slash("chat", {"prompt": f"topic {i}"}, user_id=harness.user, channel_id=room)
    await d.wait_for(lambda: len(d.threads) == 8, timeout=30)
    threads = list(d.threads)
    harness.openrouter.tokens_per_second = 40
    harness.openrouter.reply_text = "busy " * 60  # about 1.5 s of streaming each
    await asyncio.gather(*(d.post_message(t, "and now?", user_id=harness.user) for t in threads))
    for thread_id in threads:
        await harness.wait_answer_done(thread_id, within=40)
    assert d.global_429_count == 0 and d.route_429_count == 0 and d.invalid_requests == []


async def test_a_thread_two_members_share_reads_as_a_group_conversation(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot, "What is Rust?")
    bob = d.add_user("bob")
    await d.post_message(thread_id, "And Go?", user_id=bob)
    await bot.wait_answer_done(thread_id)
    body = bot.openrouter.chat_requests()[-1].json()
    users = [(m.get("name"), m["content"]) for m in body["messages"] if m["role"] == "user"]
    assert users == [("Alice", "Alice: What is Rust?"), ("Bob", "Bob: And Go?")]
    assert "several members may take part" in body["messages"][0]["content"]
    rows = await bot.query("SELECT author_id, author_name FROM turns WHERE role = 'user' ORDER BY id")
    assert [tuple(r) for r in rows] == [(bot.user, "Alice"), (bob, "Bob")]


async def test_regenerate_and_retry_with_another_model_answer_as_new_messages(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    await d.post_message(thread_id, "And Go?", user_id=bot.user)
    [answer] = await bot.wait_answer_done(thread_id)
    ids = {c["custom_id"] for c in answer.iter_components() if "custom_id" in c}
    [turn] = await bot.query("SELECT id FROM turns WHERE role = 'assistant' ORDER BY id DESC LIMIT 1")
    assert ids == {f"again:{turn[0]}", f"retry:{turn[0]}"}

    refused = await d.click(answer.id, f"again:{turn[0]}", user_id=bot.stranger)  # not the asker
    await refused.wait_response()
    assert refused.ephemeral and "Only the person who asked" in str(refused.response_data)
    with pytest.raises(ValueError, match="not among the options"):
        await d.click(answer.id, f"retry:{turn[0]}", user_id=bot.user, values=["anthropic/claude-sonnet-4:nitro"])

    asked = len(bot.openrouter.chat_requests())
    await d.click(answer.id, f"retry:{turn[0]}", user_id=bot.user, values=["openai/gpt-3.5-turbo"])
    await bot.wait_answer_done(thread_id, count=2)
    assert bot.openrouter.chat_requests()[asked].json()["model"] == "openai/gpt-3.5-turbo"
    assert last_user_text(bot.openrouter.chat_requests()[asked].json()) == "And Go?"
    rows = await bot.query("SELECT id, superseded_by FROM turns WHERE role = 'assistant' ORDER BY id")
    assert rows[-2][1] == rows[-1][0] and rows[-1][1] is None  # the old answer is kept, marked replaced

    stale = await d.click(answer.id, f"again:{turn[0]}", user_id=bot.user)  # the replaced answer's button
    await stale.wait_response()
    assert "newer answer has replaced" in str(stale.response_data)
    newest = (await bot.wait_answer_done(thread_id, count=2))[-1]
    await d.click(newest.id, f"again:{rows[-1][0]}", user_id=bot.moderator)  # a moderator may too
    await bot.wait_answer_done(thread_id, count=3)
    assert bot.openrouter.chat_requests()[-1].json()["model"] == "openai/gpt-4o"
    holds = await bot.query("SELECT user_id FROM reservations ORDER BY id")
    assert len(holds) == len(bot.openrouter.chat_requests())  # each answer held and settled on its own
    assert holds[-1][0] == bot.moderator  # the moderator who pressed Regenerate pays for it


async def test_editing_the_last_question_answers_it_again(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    first = await d.post_message(thread_id, "And Go?", user_id=bot.user)
    await bot.wait_answer_done(thread_id)
    await d.edit_user_message(int(first["id"]), "And Zig?")
    await bot.wait_answer_done(thread_id, count=2)
    assert last_user_text(bot.openrouter.chat_requests()[-1].json()) == "And Zig?"
    second = await d.post_message(thread_id, "Thanks", user_id=bot.user)
    await bot.wait_answer_done(thread_id, count=3)
    asked = len(bot.openrouter.chat_requests())
    await d.edit_user_message(int(first["id"]), "And Odin?")  # no longer the last question: only stored
    await asyncio.sleep(0.3)
    assert len(bot.openrouter.chat_requests()) == asked
    stored = await bot.query("SELECT content FROM turns WHERE discord_message_id = ?", (int(first["id"]),))
    assert stored[0][0] == "And Odin?"
    assert second is not None


async def test_a_channel_bucket_smaller_than_discords_usual_is_read_from_its_headers(harness: Harness) -> None:
    """The fake Discord allows 3 writes per 2 s in a channel (its headers say so): the bot plans its
    writes by them (not by the usual 5 per 5 s) and draws no 429, a long answer in a thread included.
    (discord.py alone also waits once a bucket says it is spent, holding up the write that spent it;
    the pacer's plan keeps the slot for the final edit instead.)"""
    harness.discord.limits.channel_write_limit = 3
    harness.discord.limits.channel_write_window = 2.0  # shorter than Discord's usual, so the test is quick
    pacer = harness.client_options["pacer"] = ChannelPacer()
    await harness.start()
    d = harness.discord
    thread_id, _ = await start_conversation(harness)
    harness.openrouter.tokens_per_second = 40
    harness.openrouter.reply_text = "word " * 120  # 3 s of streaming, an edit wanted every 0.2 s
    await d.post_message(thread_id, "Tell me more", user_id=harness.user)
    [answer] = await harness.wait_answer_done(thread_id, within=40)
    assert answer.content.startswith("word word") and len(answer.edits) >= 2
    assert d.route_429_count == 0 and d.global_429_count == 0
    assert d.max_writes_in_window(thread_id, 2.0) <= 3
    writes, per = pacer.bucket(thread_id)
    assert writes == 3 and 2.0 <= per <= 2.5  # the bucket's 2-s window, with the pacer's margin
    assert pacer.bucket(thread_id + 1) == (5, 5.3)  # a channel never written to: the usual budget


async def test_a_chat_held_up_before_its_answer_is_deferred_in_time_then_shows_the_answer(bot: Harness) -> None:
    """The /chat response opens with the first words when they come soon; when the answer is held up
    before it can even start (here another process holds the database's write lock for 2.5 s), the
    response is deferred ("thinking…") well inside Discord's 3 s, then edited into the answer."""
    import sqlite3

    d = bot.discord
    other = sqlite3.connect(bot.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(2.5, other.execute, "ROLLBACK")
    try:
        inter = await d.slash("chat", {"prompt": "Anyone home?"}, user_id=bot.user, channel_id=d.text_channel_id)
        await inter.wait_response(timeout=3)
        assert inter.response_type == 5 and inter.callback_delay is not None and inter.callback_delay < 2.0
        [answer] = await bot.wait_answer_done(d.text_channel_id)
    finally:
        other.close()
    assert inter.message is answer and inter.callback_errors == []  # the deferred response became the answer
    assert len(answer.edits) >= 2 and "\n-# " in answer.content
