from __future__ import annotations

import random
from decimal import Decimal

import pytest

from bot.chat.text import (
    footer,
    format_cost,
    is_grapheme_boundary,
    open_fence,
    sources_block,
    split_for_discord,
    thread_title,
)


def fences_balanced(part: str) -> bool:
    return open_fence(part) is None


def test_short_text_is_one_part() -> None:
    assert split_for_discord("hello") == ["hello"]
    assert split_for_discord("") == []


def test_splits_at_paragraphs_then_lines() -> None:
    para = ("word " * 60).strip()  # 299 chars
    text = "\n\n".join([para] * 10)
    parts = split_for_discord(text, 1000)
    assert all(len(p) <= 1000 for p in parts)
    assert all(p.endswith("word") and p.startswith("word") for p in parts)  # cut between paragraphs
    assert "\n\n".join(parts) == text


def test_code_block_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"print({i})  # line {i}" for i in range(200))
    text = f"Here you go:\n\n```python\n{code}\n```\nDone."
    parts = split_for_discord(text, 500)
    assert len(parts) > 3
    for i, part in enumerate(parts):
        assert len(part) <= 500
        assert fences_balanced(part), part
        if 0 < i < len(parts) - 1:
            assert part.startswith("```python\n")
    body = "\n".join(line for p in parts for line in p.split("\n") if not line.startswith("```"))
    assert all(f"print({i})  # line {i}" in body for i in range(200))
    assert parts[-1].endswith("Done.")


def test_a_line_longer_than_the_limit_is_cut() -> None:
    text = "x" * 4500
    parts = split_for_discord(text, 2000)
    assert [len(p) for p in parts] == [1996, 1996, 508]
    assert "".join(parts) == text


@pytest.mark.parametrize("seed", range(30))
def test_random_markdown_invariants(seed: int) -> None:
    rng = random.Random(seed)
    blocks = []
    for _ in range(rng.randint(1, 40)):
        if rng.random() < 0.3:
            lang = rng.choice(["", "py", "js", "rust"])
            lines = ["".join(rng.choice("abc def{}();") for _ in range(rng.randint(0, 150)))
                     for _ in range(rng.randint(1, 30))]
            blocks.append(f"```{lang}\n" + "\n".join(lines) + "\n```")
        else:
            blocks.append(" ".join(rng.choice(["lorem", "ipsum", "dolor", "sit"]) for _ in range(rng.randint(1, 200))))
    text = "\n\n".join(blocks)
    limit = rng.choice([200, 500, 2000])
    parts = split_for_discord(text, limit)
    assert all(0 < len(p) <= limit for p in parts)
    assert all(fences_balanced(p) for p in parts)
    squash = lambda s: "".join(s.split()).replace("```", "")  # noqa: E731
    joined = squash("".join(parts))
    for lang in ("py", "js", "rust"):
        joined = joined.replace(lang, "")
    original = squash(text)
    for lang in ("py", "js", "rust"):
        original = original.replace(lang, "")
    assert joined == original


def test_open_fence() -> None:
    assert open_fence("a\n```py\nx") == "```py"
    assert open_fence("```py\nx\n```") is None
    assert open_fence("~~~\nx") == "~~~"
    assert open_fence("no code") is None


def test_footer_and_cost() -> None:
    line = footer(model="openai/gpt-4o", tokens=1234, cost=Decimal("0.00123"), finish_reason="length")
    assert line.startswith("-# ") and "1,234 tokens" in line and "$0.0012" in line and "length limit" in line
    assert "content filter" in footer(model="m", tokens=1, cost=None, finish_reason="content_filter")
    assert "stopped" in footer(model="m", tokens=1, cost=Decimal(0), finish_reason="stop", status="stopped")
    assert format_cost(Decimal(0)) == "free" and format_cost(Decimal("0.00001")) == "<$0.0001"
    assert format_cost(Decimal("12.345")) == "$12.35" and format_cost(None) == "cost unknown"


def test_thread_title() -> None:
    assert thread_title("  <@123> what is   rust?\nmore") == "what is rust?"
    assert len(thread_title("x" * 300)) == 90
    assert thread_title("") == "Conversation"


def test_fit_keeps_every_message_within_discords_limit() -> None:
    from bot.chat.text import DISCORD_LIMIT, fit

    assert fit("short") == "short"
    long = fit("x" * 5000)
    assert len(long) == DISCORD_LIMIT and long.endswith("…")


GRAPHEMES = {
    "combining marks": "e\u0301\u0323",  # e with acute and dot below, decomposed
    "ZWJ family": "👨\u200d👩\u200d👧\u200d👦",
    "variation selector": "❤\ufe0f",
    "keycap": "1\ufe0f\u20e3",
    "skin tone": "👍🏽",
    "ZWJ with skin tone": "🧑🏽\u200d🚀",
    "flag": "🇫🇷",
    "tag-sequence flag": "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "Indic conjunct": "क्षि",
    "Hangul jamo": "\u1100\u1161\u11a8",
}


@pytest.mark.parametrize("name", GRAPHEMES)
def test_split_never_cuts_a_grapheme(name: str) -> None:
    cluster = GRAPHEMES[name]
    for offset in range(len(cluster) + 1):  # every alignment of the clusters against the limit
        text = "x" * offset + cluster * 60
        parts = split_for_discord(text, 41)
        assert all(len(p) <= 41 for p in parts)
        assert "".join(parts) == text.rstrip()
        for part in parts[1:] if offset else parts:
            body = part if part is not parts[0] else part[offset:]
            assert body.replace(cluster, "") == "", (name, offset, part)


def test_flags_pair_up_from_the_start_of_their_run() -> None:
    text = "🇫🇷🇩🇪🇮🇹🇪🇸" * 20
    for limit in (40, 41, 43):
        parts = split_for_discord(text, limit)
        assert "".join(parts) == text
        assert all(len(p) % 2 == 0 for p in parts)  # whole flags: each is a pair of regional indicators


def test_grapheme_boundaries() -> None:
    assert not is_grapheme_boundary("a\r\nb", 2)
    assert is_grapheme_boundary("a\r\nb", 1) and is_grapheme_boundary("a\r\nb", 3)
    assert is_grapheme_boundary("e\u0301x", 2) and not is_grapheme_boundary("e\u0301x", 1)
    assert [i for i in range(1, 7) if is_grapheme_boundary("🇫🇷🇩🇪🇮🇹x", i)] == [2, 4, 6]


def test_a_grapheme_longer_than_a_message_is_still_split() -> None:
    zalgo = "a" + "\u0301" * 150
    parts = split_for_discord(zalgo, 50)
    assert "".join(parts) == zalgo and all(len(p) <= 50 for p in parts)


def test_thread_title_keeps_its_last_emoji_whole() -> None:
    title = thread_title("x" * 87 + "👨\u200d👩\u200d👧 and more words", limit=90)
    assert title == "x" * 87 + "…"


def test_sources_are_numbered_links_that_do_not_unfurl() -> None:
    block = sources_block([("https://a.example/x", "A [great] *page*"), ("javascript:alert(1)", "bad"),
                           ("https://b.example/y z", "space in url"), ("https://c.example/", ""),
                           ("https://d.example/", "@everyone look")])
    assert block.splitlines() == ["**Sources**", "1. [A great page](<https://a.example/x>)",
                                  "2. [c.example](<https://c.example/>)", "3. [@\u200beveryone look](<https://d.example/>)"]
    assert sources_block([]) == "" and sources_block([("ftp://x.example/", "t")]) == ""


def test_many_sources_are_cut_with_a_count() -> None:
    many = [(f"https://example.org/{n}/" + "p" * 60, f"Title {n}") for n in range(30)]
    block = sources_block(many, limit=400)
    assert len(block) <= 400 and block.endswith("more")
    shown = sum(1 for line in block.splitlines() if line[0].isdigit())
    assert f"… and {30 - shown} more" in block
