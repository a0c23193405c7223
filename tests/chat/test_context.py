"""Unit tests for bot.chat.context: from stored turns to the messages a model sees."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from bot.chat.context import (
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD,
    PDF_TOKENS_PER_KB,
    build_context,
    count_images,
    estimate_text_tokens,
    estimate_tokens,
    ordered_history,
    turn_message,
)
from bot.store.conversations import StoredAttachment, Turn

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
PDF = b"%PDF-1.7\n" + b"x" * 100

# 35 characters -> exactly 10 text tokens, so each such message costs 14 with the overhead.
TEXT35 = "a" * 35
COST35 = 10 + MESSAGE_OVERHEAD


def user(turn_id: int, content: str = "", *, attachments: list[StoredAttachment] | None = None) -> Turn:
    return Turn(id=turn_id, conversation_id=1, role="user", reply_to=None, author_id=42, content=content,
                reasoning=None, status="complete", model=None, discord_message_id=1000 + turn_id,
                discord_message_ids=[], discord_channel_id=7, attachments=attachments or [])


def answer(turn_id: int, reply_to: int | None, content: str = "", *, status: str = "complete") -> Turn:
    return Turn(id=turn_id, conversation_id=1, role="assistant", reply_to=reply_to, author_id=None,
                content=content, reasoning=None, status=status, model="openai/gpt-4o",
                discord_message_id=2000 + turn_id, discord_message_ids=[2000 + turn_id], discord_channel_id=7)


def contents(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(m["role"], m["content"]) for m in messages]


# -- estimate_tokens ------------------------------------------------------------------------------------


def test_estimate_text_tokens_rounds_up() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("a") == 1
    assert estimate_text_tokens("a" * 35) == 10
    assert estimate_text_tokens("a" * 36) == 11


def test_estimate_tokens_for_string_content() -> None:
    assert estimate_tokens({"role": "user", "content": TEXT35}) == COST35
    assert estimate_tokens({"role": "user", "content": ""}) == MESSAGE_OVERHEAD
    assert estimate_tokens({"role": "assistant", "content": None}) == MESSAGE_OVERHEAD


def test_estimate_tokens_for_multipart_content() -> None:
    file_data = "A" * 4096  # 4096 base64 characters are 3072 bytes: 3 KB, counted as 3 + 1
    message = {"role": "user", "content": [
        {"type": "text", "text": TEXT35},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": file_data}},
    ]}
    assert estimate_tokens(message) == MESSAGE_OVERHEAD + 10 + 2 * IMAGE_TOKENS + PDF_TOKENS_PER_KB * 4
    assert count_images([message, {"role": "user", "content": "no images"}]) == 2


def test_estimate_tokens_small_file_costs_at_least_one_kb() -> None:
    message = {"role": "user", "content": [{"type": "file", "file": {"filename": "a.pdf"}}]}
    assert estimate_tokens(message) == MESSAGE_OVERHEAD + PDF_TOKENS_PER_KB


# -- turn_message ---------------------------------------------------------------------------------------


def test_plain_user_turn_is_a_string_message() -> None:
    assert turn_message(user(1, "hello")) == {"role": "user", "content": "hello"}


def test_user_turn_with_image_data_becomes_text_and_image_url_parts() -> None:
    image = StoredAttachment("cat.png", "image/png", "image", len(PNG), data=PNG)
    message = turn_message(user(1, "what is this?", attachments=[image]))
    assert message is not None
    assert message["role"] == "user"
    text, picture = message["content"]
    assert text == {"type": "text", "text": "what is this?"}
    assert picture["type"] == "image_url"
    assert picture["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()


def test_image_alone_is_still_a_multipart_message() -> None:
    image = StoredAttachment("cat.png", "image/png", "image", len(PNG), data=PNG)
    message = turn_message(user(1, "   ", attachments=[image]))
    assert message is not None
    assert [p["type"] for p in message["content"]] == ["image_url"]


def test_image_without_data_becomes_a_text_note_naming_the_file() -> None:
    old = StoredAttachment("holiday.jpg", "image/jpeg", "image", 1234, data=None)
    message = turn_message(user(1, "look", attachments=[old]))
    assert message is not None
    parts = message["content"]
    assert parts[0] == {"type": "text", "text": "look"}
    assert parts[1]["type"] == "text"
    assert "holiday.jpg" in parts[1]["text"]
    assert "no longer shown" in parts[1]["text"]
    assert count_images([message]) == 0


def test_text_files_are_inlined_with_their_names_after_the_message() -> None:
    first = StoredAttachment("main.py", "text/x-python", "text", 12, text="print('hi')")
    second = StoredAttachment("notes.md", "text/markdown", "text", 5, text="# todo")
    message = turn_message(user(1, "review these", attachments=[first, second]))
    assert message is not None
    assert message["role"] == "user"
    content = message["content"]
    assert isinstance(content, str)  # text only: one string, not parts
    assert content.startswith("review these\n\n")
    assert "File `main.py`:\n```\nprint('hi')\n```" in content
    assert "File `notes.md`:\n```\n# todo\n```" in content
    assert content.index("main.py") < content.index("notes.md")


def test_text_file_without_message_text() -> None:
    attached = StoredAttachment("a.txt", "text/plain", "text", 3, text="abc")
    assert turn_message(user(1, "", attachments=[attached])) == {
        "role": "user", "content": "File `a.txt`:\n```\nabc\n```"}


def test_pdf_with_data_becomes_a_file_part() -> None:
    pdf = StoredAttachment("paper.pdf", "application/pdf", "pdf", len(PDF), data=PDF)
    message = turn_message(user(1, "summarise", attachments=[pdf]))
    assert message is not None
    text, file = message["content"]
    assert text == {"type": "text", "text": "summarise"}
    assert file == {"type": "file", "file": {
        "filename": "paper.pdf", "file_data": "data:application/pdf;base64," + base64.b64encode(PDF).decode()}}


def test_mixed_attachments_keep_text_first_then_media_in_order() -> None:
    attachments = [
        StoredAttachment("b.png", "image/png", "image", len(PNG), data=PNG),
        StoredAttachment("a.txt", "text/plain", "text", 1, text="x"),
        StoredAttachment("c.pdf", "application/pdf", "pdf", len(PDF), data=PDF),
    ]
    message = turn_message(user(1, "all of it", attachments=attachments))
    assert message is not None
    kinds = [p["type"] for p in message["content"]]
    assert kinds == ["text", "image_url", "file"]
    assert "File `a.txt`" in message["content"][0]["text"]


def test_empty_user_turn_is_nothing() -> None:
    assert turn_message(user(1, "  \n ")) is None


def test_answerable_assistant_turns_become_messages() -> None:
    for status in ("complete", "stopped", "interrupted", "error"):
        assert turn_message(answer(2, 1, "partial answer", status=status)) == {
            "role": "assistant", "content": "partial answer"}


@pytest.mark.parametrize("status", ["streaming", "pending", "deleted"])
def test_assistant_turns_not_answerable_are_skipped(status: str) -> None:
    assert turn_message(answer(2, 1, "something", status=status)) is None


def test_empty_assistant_turn_is_skipped() -> None:
    assert turn_message(answer(2, 1, "", status="complete")) is None
    assert turn_message(answer(2, 1, " \n\t", status="error")) is None


# -- ordered_history ------------------------------------------------------------------------------------


def test_ordered_history_puts_each_answer_after_its_question_when_ids_interleave() -> None:
    # Q1 (1) was being answered when Q2 (2) arrived; A1 (3) was stored after Q2; A2 (4) last. Now Q3 (5).
    q1, q2, a1, a2, q3 = user(1, "q1"), user(2, "q2"), answer(3, 1, "a1"), answer(4, 2, "a2"), user(5, "q3")
    ordered = ordered_history([q1, q2, a1, a2, q3], q3)
    assert [t.id for t in ordered] == [1, 3, 2, 4]


def test_ordered_history_excludes_current_and_later_questions() -> None:
    q1, a1, q2, q3 = user(1, "q1"), answer(2, 1, "a1"), user(3, "q2"), user(4, "q3")
    assert [t.id for t in ordered_history([q1, a1, q2, q3], q2)] == [1, 2]


def test_ordered_history_keeps_answers_to_earlier_questions_stored_after_current() -> None:
    q1, q2, a1 = user(1, "q1"), user(2, "q2"), answer(3, 1, "a1")
    assert [t.id for t in ordered_history([q1, q2, a1], q2)] == [1, 3]


def test_ordered_history_drops_answers_without_their_question() -> None:
    # the question was deleted (it is not in the history any more): its answer goes too
    a1, q2, a2, q3 = answer(2, 1, "a1"), user(3, "q2"), answer(4, 3, "a2"), user(5, "q3")
    orphan = answer(6, None, "no question")
    assert [t.id for t in ordered_history([a1, q2, a2, orphan, q3], q3)] == [3, 4]


def test_ordered_history_keeps_one_answer_per_question() -> None:
    # a regenerated answer that succeeded supersedes the first in the store (it is not read); one that
    # failed leaves the first in place, and the history keeps that one
    q1, a1, a1b, q2 = user(1, "q1"), answer(2, 1, "first try"), answer(3, 1, "retry", status="error"), user(4, "q2")
    assert [t.id for t in ordered_history([q1, a1, a1b, q2], q2)] == [1, 2]


# -- build_context --------------------------------------------------------------------------------------


def conversation(pairs: int) -> list[Turn]:
    """pairs question/answer pairs with ids 1..2*pairs, each message costing COST35 tokens."""
    turns: list[Turn] = []
    for i in range(pairs):
        turns.append(user(2 * i + 1, f"{i}" + TEXT35[1:]))
        turns.append(answer(2 * i + 2, 2 * i + 1, f"{i}" + TEXT35[1:]))
    return turns


def test_everything_fits() -> None:
    history = conversation(2)
    current = user(5, "now")
    built = build_context("be nice", [*history, current], current, context_length=10_000, reserve_for_answer=1000)
    assert built.dropped_turns == 0
    assert [m["role"] for m in built.messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert built.messages[0] == {"role": "system", "content": "be nice"}
    assert built.messages[-1] == {"role": "user", "content": "now"}
    assert built.prompt_tokens == sum(estimate_tokens(m) for m in built.messages)


def test_no_system_prompt_means_no_system_message() -> None:
    current = user(1, "hi")
    for prompt in (None, ""):
        built = build_context(prompt, [current], current, context_length=1000, reserve_for_answer=10)
        assert built.messages == [{"role": "user", "content": "hi"}]


def test_oldest_history_is_dropped_first_to_fit_the_budget() -> None:
    history = conversation(3)  # six messages of COST35 each
    current = user(7, TEXT35)
    system_cost = estimate_tokens({"role": "system", "content": "sys"})
    # room for the system prompt, the newest turn and exactly four history messages
    budget = system_cost + COST35 + 4 * COST35
    built = build_context("sys", [*history, current], current,
                          context_length=budget + 500, reserve_for_answer=500)
    assert built.dropped_turns == 2
    assert [m["content"][0] for m in built.messages[1:-1]] == ["1", "1", "2", "2"]
    assert built.prompt_tokens == budget


def test_one_token_short_drops_one_more_pair() -> None:
    history = conversation(3)
    current = user(7, TEXT35)
    budget = 5 * COST35 - 1  # the newest turn plus four history messages, less one token
    built = build_context(None, [*history, current], current, context_length=budget, reserve_for_answer=0)
    # three fit, but the oldest of those is an answer without its question: it goes too
    assert built.dropped_turns == 4
    assert contents(built.messages)[0] == ("user", "2" + TEXT35[1:])
    assert built.prompt_tokens == 3 * COST35
    assert built.prompt_tokens <= budget


def test_kept_history_never_starts_with_an_orphaned_answer() -> None:
    history = conversation(2)
    current = user(5, TEXT35)
    built = build_context(None, [*history, current], current,
                          context_length=2 * COST35, reserve_for_answer=0)  # room for one history message
    assert built.messages == [{"role": "user", "content": TEXT35}]
    assert built.dropped_turns == 4
    assert built.prompt_tokens == COST35


def test_newest_turn_and_system_prompt_stay_even_when_over_budget() -> None:
    history = conversation(1)
    current = user(3, "x" * 10_000)
    built = build_context("system prompt", [*history, current], current, context_length=100, reserve_for_answer=90)
    assert [m["role"] for m in built.messages] == ["system", "user"]
    assert built.messages[-1]["content"] == "x" * 10_000
    assert built.dropped_turns == 2


def test_reserve_larger_than_context_keeps_only_the_essentials() -> None:
    history = conversation(1)
    current = user(3, "q")
    built = build_context("s", [*history, current], current, context_length=100, reserve_for_answer=1000)
    assert contents(built.messages) == [("system", "s"), ("user", "q")]
    assert built.dropped_turns == 2


def test_unknown_context_length_means_no_trimming() -> None:
    history = conversation(50)
    current = user(101, "q")
    built = build_context(None, [*history, current], current, context_length=0, reserve_for_answer=1000)
    assert built.dropped_turns == 0
    assert len(built.messages) == 101


def test_skipped_turns_are_not_counted_as_dropped() -> None:
    q1, streaming, q2 = user(1, "q1"), answer(2, 1, "", status="streaming"), user(3, "q2")
    built = build_context(None, [q1, streaming, q2], q2, context_length=10_000, reserve_for_answer=0)
    assert contents(built.messages) == [("user", "q1"), ("user", "q2")]
    assert built.dropped_turns == 0


def test_interleaved_history_is_sent_question_then_answer() -> None:
    q1, q2, a1, a2, q3 = user(1, "q1"), user(2, "q2"), answer(3, 1, "a1"), answer(4, 2, "a2"), user(5, "q3")
    built = build_context(None, [q1, q2, a1, a2, q3], q3, context_length=10_000, reserve_for_answer=0)
    assert contents(built.messages) == [
        ("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2"), ("user", "q3")]


def test_empty_newest_turn_gets_a_placeholder() -> None:
    current = user(1, "")
    built = build_context(None, [current], current, context_length=1000, reserve_for_answer=0)
    assert built.messages == [{"role": "user", "content": "(empty message)"}]


def test_images_count_against_the_budget() -> None:
    image = StoredAttachment("a.png", "image/png", "image", len(PNG), data=PNG)
    q1, a1 = user(1, "see", attachments=[image]), answer(2, 1, "a cat")
    current = user(3, "and now?")
    everything = sum(estimate_tokens(m) for m in (turn_message(q1), turn_message(a1), turn_message(current)) if m)
    assert everything > IMAGE_TOKENS
    built = build_context(None, [q1, a1, current], current, context_length=everything - 1, reserve_for_answer=0)
    assert count_images(built.messages) == 0
    assert contents(built.messages) == [("user", "and now?")]  # the answer alone would be orphaned
    built = build_context(None, [q1, a1, current], current, context_length=everything, reserve_for_answer=0)
    assert count_images(built.messages) == 1
    assert built.prompt_tokens == everything


def test_token_estimate_is_generous_for_non_latin_text() -> None:
    from bot.chat.context import estimate_text_tokens

    assert estimate_text_tokens("hello world, this is English") == 8
    assert estimate_text_tokens("日本語のテキストです") == 10  # one per character
    assert estimate_text_tokens("") == 0


# -- worst-case estimates, for holds ----------------------------------------------------------------------


def test_pdf_pages_counts_page_objects_in_the_file_and_in_compressed_object_streams() -> None:
    from bot.chat.context import PDF_BYTES_PER_PAGE, pdf_pages
    from tests.chat.test_money import pdf

    assert pdf_pages(pdf(3)) == 3  # the `/Type /Pages` tree is not a page
    assert pdf_pages(pdf(250, compressed=True)) == 250
    assert pdf_pages(b"%PDF-1.7 garbage " * 1000) == -(-17_000 // PDF_BYTES_PER_PAGE)  # unreadable: by size
    assert pdf_pages(b"%PDF-1.5\n3 0 obj << /Type /ObjStm >>\nstream\nnot zlib\nendstream\n") == 1


def test_worst_case_prompt_counts_bytes_of_text_and_pages_of_pdfs() -> None:
    from bot.chat.context import PDF_TOKENS_PER_PAGE, worst_case_prompt
    from tests.chat.test_money import pdf

    data_url = "data:application/pdf;base64," + base64.b64encode(pdf(7)).decode()
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "日本語"},
                                             {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                                             {"type": "file", "file": {"filename": "a.pdf", "file_data": data_url}}]}]
    worst = worst_case_prompt(messages)
    assert worst.pdf_pages == 7
    assert worst.tokens == 2 * MESSAGE_OVERHEAD + 9 + 9 + IMAGE_TOKENS + 7 * PDF_TOKENS_PER_PAGE
    assert worst.tokens > sum(estimate_tokens(m) for m in messages)  # trimming keeps its realistic estimate
