"""Shutdown, crashes and recovery, with the bot in its own process where it matters."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from tests.discord.conftest import Harness, has_stop_button, start_conversation
from tests.fakes.openrouter_server import SSEReply

ROOT = Path(__file__).resolve().parents[2]


async def spawn_bot(h: Harness) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "OPENROUTER_"))} | {
        "FAKE_DISCORD_API": f"{h.discord.base_url}/api/v10",
        "FAKE_DISCORD_GATEWAY": h.discord.gateway_url,
        "DISCORD_TOKEN": "process-discord-token-secret",
        "OPENROUTER_API_KEY": "sk-or-v1-process-key-secret-0123",
        "OPENROUTER_BASE_URL": h.openrouter.base_url,
        "DATABASE_PATH": str(h.db_path),
        "DEFAULT_MODEL": "openai/gpt-4o",
        "STREAM_EDIT_INTERVAL_SECONDS": "0.2",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
        "PYTHONPATH": str(ROOT),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.discord.bot_process", cwd=h.db_path.parent, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def slow_answer_started(h: Harness) -> int:
    """Start a long, slow answer with /chat; return the answer's message id once words show."""
    d = h.discord
    h.openrouter.tokens_per_second = 20
    h.openrouter.reply_text = "slowly " * 300
    inter = await d.slash("chat", {"prompt": "tell me everything"}, user_id=h.user, channel_id=d.text_channel_id)
    await d.wait_for(lambda: inter.message is not None and "slowly slowly" in inter.message.content, timeout=20)
    assert inter.message is not None
    return inter.message.id


async def test_sigterm_mid_stream_stops_cleanly_and_logs_no_secret(harness: Harness) -> None:
    proc = await spawn_bot(harness)
    try:
        await harness.discord.wait_ready(timeout=20)
        message_id = await slow_answer_started(harness)
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0
    final = harness.discord.messages[message_id]
    assert "▌" not in final.content and "stopped" in final.content and "restarting" in final.content
    assert not has_stop_button(final)
    status = await harness.query("SELECT status FROM turns WHERE role = 'assistant'")
    assert status == [("stopped",)]
    logs = (out + err).decode()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert lines and any(line.get("event") == "shutting down" for line in lines)
    [starting] = [line for line in lines if line.get("event") == "starting"]
    assert starting["event_loop"].startswith("uvloop")  # where it is installed, as it is by `pip install .`
    assert "process-discord-token-secret" not in logs and "process-key-secret" not in logs


async def test_answers_cut_by_a_crash_are_marked_interrupted_at_the_next_start(harness: Harness) -> None:
    proc = await spawn_bot(harness)
    try:
        await harness.discord.wait_ready(timeout=20)
        message_id = await slow_answer_started(harness)
        await asyncio.sleep(3.5)  # long enough for a progress save
        proc.kill()  # no chance to clean up
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
    cut = harness.discord.messages[message_id]
    assert "▌" in cut.content and cut.components  # left behind by the crash
    assert await harness.query("SELECT status FROM turns WHERE role = 'assistant'") == [("streaming",)]
    await harness.start()
    await harness.discord.wait_for(lambda: "interrupted" in harness.discord.messages[message_id].content)
    fixed = harness.discord.messages[message_id]
    assert "▌" not in fixed.content and fixed.components == [] and fixed.content.startswith("slowly slowly")
    [(status, content)] = await harness.query("SELECT status, content FROM turns WHERE role = 'assistant'")
    assert status == "interrupted" and content.startswith("slowly slowly")  # the saved progress


async def test_in_process_shutdown_mid_stream(bot: Harness) -> None:
    message_id = await slow_answer_started(bot)
    assert await bot.stop() == 0
    final = bot.discord.messages[message_id]
    assert "stopped" in final.content and "▌" not in final.content


async def test_reasoning_is_kept_apart_from_the_answer(bot: Harness) -> None:
    d = bot.discord
    bot.openrouter.script("chat", SSEReply(fixture="stream-reasoning.sse", interval=0.05))
    inter = await d.slash("chat", {"prompt": "What is 2+2?"}, user_id=bot.user, channel_id=d.text_channel_id)
    await d.wait_for(lambda: bool(d.threads), timeout=15)
    assert inter.message is not None
    final = inter.message
    assert "simple arithmetic" not in final.content  # reasoning is not mixed into the answer
    assert any(e.startswith("💭") for e in [final.first_content, *final.edits])  # reasoning shown while it came
    [attachment] = final.attachments
    assert attachment["filename"] == "reasoning.txt"
    assert b"simple arithmetic" in d.file_bytes(attachment)
    row = (await bot.query("SELECT reasoning FROM turns WHERE role = 'assistant'"))[0]
    assert "2+2 equals 4." in row[0]


async def test_reasoning_can_be_hidden(harness: Harness) -> None:
    harness.overrides["show_reasoning"] = False
    await harness.start()
    harness.openrouter.script("chat", SSEReply(fixture="stream-reasoning.sse"))
    _, message = await start_conversation(harness, "What is 2+2?")
    assert message.attachments == [] and "simple arithmetic" not in "".join(message.edits)


def thread_edits(thread_id: int) -> str:
    return rf"/channels/{thread_id}/messages/\d+$"


async def test_a_final_edit_that_discord_fails_is_retried_until_it_lands(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    d.fail("PATCH", thread_edits(thread_id), status=503, times=3)  # Discord is down for a moment
    await d.post_message(thread_id, "Are you still there?", user_id=bot.user)
    [answer] = await bot.wait_answer_done(thread_id)
    assert "Echo: Are you still there?" in answer.content and not has_stop_button(answer)
    assert ("PATCH", 503) in {(m, s) for _, m, p, s in d.request_log if p.startswith(f"/api/v10/channels/{thread_id}")}
    assert await bot.query("SELECT shown FROM turns WHERE role = 'assistant' ORDER BY id DESC LIMIT 1") == [(1,)]


async def test_an_answer_whose_final_edit_never_landed_is_shown_at_the_next_start(harness: Harness) -> None:
    harness.overrides["final_edit_retry_seconds"] = 1.0
    await harness.start()
    d = harness.discord
    thread_id, _ = await start_conversation(harness)
    d.fail("PATCH", thread_edits(thread_id), status=503, times=1000)  # down for longer than the bot retries
    await d.post_message(thread_id, "Hello again", user_id=harness.user)
    unshown = "SELECT status, shown FROM turns WHERE role = 'assistant' ORDER BY id DESC LIMIT 1"
    for _ in range(100):
        if await harness.query(unshown) == [("complete", 0)]:
            break
        await asyncio.sleep(0.1)
    assert await harness.query(unshown) == [("complete", 0)]  # stored, but its final form is not in Discord
    [placeholder] = harness.bot_messages(thread_id)  # "Thinking", or the first words if they came first
    assert placeholder.components  # still with its Stop button
    await harness.stop()
    d.rest.outages.clear()  # Discord is back
    await harness.start()
    await d.wait_for(lambda: "Echo: Hello again" in d.messages[placeholder.id].content, timeout=10)
    final = d.messages[placeholder.id]
    assert "▌" not in final.content and final.components == [] and "\n-# " in final.content
    assert await harness.query(unshown) == [("complete", 1)]


async def test_debug_logs_carry_no_interaction_token(harness: Harness) -> None:
    """At LOG_LEVEL=DEBUG discord.py logs every webhook URL (the interaction token is a path segment)
    and every gateway event (INTERACTION_CREATE carries the token): none of it reaches a log line."""
    proc = await spawn_bot(harness)
    try:
        d = harness.discord
        await d.wait_ready(timeout=20)
        inter = await d.slash("chat", {"prompt": "hello"}, user_id=harness.user, channel_id=d.text_channel_id)
        await d.wait_for(lambda: inter.message is not None and "\n-# " in inter.message.content
                         and "▌" not in inter.message.content and bool(d.threads), timeout=20)
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
    logs = (out + err).decode()
    assert inter.token and inter.token[:24] not in logs
    # the lines that used to carry it are there, scrubbed
    assert f"/interactions/{inter.id}/[REDACTED]/callback" in logs
    assert "/webhooks/" in logs and "/[REDACTED]/messages/@original" in logs
    assert '"t": "INTERACTION_CREATE"' in logs or "'t': 'INTERACTION_CREATE'" in logs


async def test_regenerate_still_works_after_a_restart(harness: Harness) -> None:
    await harness.start()
    d = harness.discord
    thread_id, _ = await start_conversation(harness)
    await d.post_message(thread_id, "And Go?", user_id=harness.user)
    [answer] = await harness.wait_answer_done(thread_id)
    [(turn_id,)] = await harness.query("SELECT id FROM turns WHERE role = 'assistant' ORDER BY id DESC LIMIT 1")
    await harness.stop()
    await harness.start()  # a new process: the button's custom id alone says which answer it is under
    await d.click(answer.id, f"again:{turn_id}", user_id=harness.user)
    await harness.wait_answer_done(thread_id, count=2)
    assert await harness.query("SELECT superseded_by IS NOT NULL FROM turns WHERE id = ?", (turn_id,)) == [(1,)]
