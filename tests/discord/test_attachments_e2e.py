"""Attachments end to end: images as vision input, text files as text, PDFs as files, clear refusals."""

from __future__ import annotations

import base64

from tests.discord.conftest import PNG, Harness, start_conversation


def image_urls(body: dict) -> list[str]:
    return [p["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list)
            for p in m["content"] if p.get("type") == "image_url"]


async def test_slash_image_goes_to_the_model_as_a_data_url_and_stays_in_history(bot: Harness) -> None:
    d = bot.discord
    inter = await d.slash("chat", {"prompt": "What is in this picture?"}, user_id=bot.user,
                          channel_id=d.text_channel_id, attachments={"image": ("dot.png", PNG, "image/png")})
    await d.wait_for(lambda: bool(d.threads), timeout=15)
    [thread_id] = d.threads
    first = bot.openrouter.chat_requests()[0].json()
    assert image_urls(first) == ["data:image/png;base64," + base64.b64encode(PNG).decode()]
    assert inter.message is not None and inter.message.content.startswith("Echo: What is in this picture?")
    # the Discord CDN link is never needed again: a later turn re-sends the stored bytes
    await d.post_message(thread_id, "And what colour is it?", user_id=bot.user)
    await bot.wait_answer_done(thread_id)
    assert len(image_urls(bot.openrouter.chat_requests()[-1].json())) == 1
    stored = await bot.query("SELECT filename, mime, kind, size FROM attachments")
    assert stored == [("dot.png", "image/png", "image", len(PNG))]


async def test_only_the_last_few_images_are_resent(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    for i in range(6):
        await d.post_message(thread_id, f"image {i}", user_id=bot.user, attachments=[(f"i{i}.png", PNG, "image/png")])
        await bot.wait_answer_done(thread_id, count=i + 1)
    body = bot.openrouter.chat_requests()[-1].json()
    assert len(image_urls(body)) == 4
    texts = str(body["messages"])
    assert "i0.png, is no longer shown" in texts and "i1.png, is no longer shown" in texts


async def test_text_and_pdf_files_and_clear_refusals(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    files = [
        ("notes.md", b"# Title\nsome *notes*", "text/markdown"),
        ("data.csv", b"a,b\n1,2\n", "text/csv"),
        ("paper.pdf", b"%PDF-1.4\n%...\n", "application/pdf"),
        ("tool.exe", b"MZ\x90\x00", "application/x-msdownload"),
        ("huge.txt", b"x" * (600 * 1024), "text/plain"),
        ("fake.png", b"not an image", "image/png"),
    ]
    await d.post_message(thread_id, "Read these", user_id=bot.user, attachments=files)
    [answer] = await bot.wait_answer_done(thread_id)
    body = bot.openrouter.chat_requests()[-1].json()
    last = body["messages"][-1]["content"]
    text = last[0]["text"]
    assert text.startswith("Read these") and "File `notes.md`:" in text and "# Title" in text and "1,2" in text
    assert [p["file"]["filename"] for p in last if p["type"] == "file"] == ["paper.pdf"]
    assert last[-1]["file"]["file_data"].startswith("data:application/pdf;base64,")
    for name, reason in (("tool.exe", "not supported"), ("huge.txt", "at most 512 KB"),
                         ("fake.png", "does not look like")):
        assert f"`{name}` was not included" in answer.content and reason in answer.content
    assert answer.content.startswith("Echo: Read these")


async def test_an_image_for_a_model_that_cannot_see_is_refused_with_alternatives(bot: Harness) -> None:
    d = bot.discord
    inter = await d.slash("chat", {"prompt": "Describe", "model": "openai/gpt-3.5-turbo"}, user_id=bot.user,
                          channel_id=d.text_channel_id, attachments={"image": ("dot.png", PNG, "image/png")})
    await d.wait_for(lambda: inter.message is not None and "cannot see images" in inter.message.content)
    assert inter.message is not None
    assert "`anthropic/claude-sonnet-4`" in inter.message.content and "/model" in inter.message.content
    assert bot.openrouter.chat_requests() == []
    # the question is kept: after switching to a vision model the conversation can go on
    await d.wait_for(lambda: bool(d.threads))
    [thread_id] = d.threads
    switch = await d.slash("model", {"model": "openai/gpt-4o"}, user_id=bot.user, channel_id=thread_id)
    await d.wait_for(lambda: switch.message is not None and "now uses" in switch.message.content)
    await d.post_message(thread_id, "Try again", user_id=bot.user)
    await bot.wait_answer_done(thread_id)
    assert len(image_urls(bot.openrouter.chat_requests()[-1].json())) == 1


def pdf(n: int, size: int = 2000) -> bytes:
    """A one-page PDF padded to `size` (the hold counts a PDF's pages, so it has one)."""
    return b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n" + f"% document {n}\n".encode() + b"0" * size


def file_names(message: dict) -> list[str]:
    content = message["content"]
    return [p["file"]["filename"] for p in content if p.get("type") == "file"] if isinstance(content, list) else []


async def test_only_the_newest_pdfs_are_resent(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    for i in range(4):
        await d.post_message(thread_id, f"pdf {i}", user_id=bot.user,
                             attachments=[(f"doc{i}.pdf", pdf(i), "application/pdf")])
        await bot.wait_answer_done(thread_id, count=i + 1)
    body = bot.openrouter.chat_requests()[-1].json()
    assert [name for m in body["messages"] for name in file_names(m)] == ["doc2.pdf", "doc3.pdf"]
    texts = str(body["messages"])
    assert "an earlier PDF, doc0.pdf, is no longer sent" in texts and "doc1.pdf, is no longer sent" in texts
    assert "doc2.pdf, is no longer" not in texts


async def test_a_messages_files_are_bounded_in_total_each_excess_file_named(bot: Harness) -> None:
    d = bot.discord
    thread_id, _ = await start_conversation(bot)
    nine = 9 * 1024 * 1024
    files = [
        ("a.pdf", pdf(1, nine), "application/pdf"),
        ("b.png", PNG + b"\x00" * nine, "image/png"),
        ("c.pdf", pdf(3, nine), "application/pdf"),  # 27 MB with the two before it: over 25 MB
        ("d.txt", b"small notes", "text/plain"),  # still fits
        ("e.png", PNG + b"\x00" * (7 * 1024 * 1024), "image/png"),  # 25 MB+ with a, b, d: over
    ]
    await d.post_message(thread_id, "Read all of these", user_id=bot.user, attachments=files)
    [answer] = await bot.wait_answer_done(thread_id, within=40)
    last = bot.openrouter.chat_requests()[-1].json()["messages"][-1]["content"]
    assert file_names({"content": last}) == ["a.pdf"]
    assert len([p for p in last if p["type"] == "image_url"]) == 1
    assert "File `d.txt`:" in last[0]["text"]
    for name in ("c.pdf", "e.png"):
        assert f"`{name}` was not included: with the files before it" in answer.content
    assert "at most 25 MB in all" in answer.content
    stored = await bot.query("SELECT filename FROM attachments ORDER BY id")
    assert stored == [("a.pdf",), ("b.png",), ("d.txt",)]
