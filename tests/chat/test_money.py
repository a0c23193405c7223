"""Money through the real core (SQLite + the local OpenRouter): unknown and variable prices, the price
cap sent to OpenRouter, worst-case holds, and answers cut before their first token."""

from __future__ import annotations

import asyncio
import json
import zlib
from decimal import Decimal
from typing import Any

from bot.chat.context import PDF_TOKENS_PER_PAGE
from bot.chat.plan import AnswerPlan
from bot.money import to_nusd
from bot.quotas import PDF_PARSER_FEE_PER_PAGE, Reservation
from bot.server_config import QuotaScope
from bot.states import AttachmentKind
from bot.store.conversations import StoredAttachment
from tests.core_harness import CoreParts, RecordingView, conversation_with_question
from tests.fakes.openrouter_server import SSEReply
from tests.openrouter.conftest import assert_valid_chat_request

ROUTER = {"id": "acme/router", "name": "Acme Router", "context_length": 100000,
          "pricing": {"prompt": "-1", "completion": "-1"}}  # how OpenRouter lists variable-priced routers
UNLISTED = {"id": "acme/unlisted", "name": "Acme Unlisted", "context_length": 8000}  # no pricing at all
FREE = {"id": "acme/gift:free", "name": "Acme Gift", "context_length": 8000,
        "pricing": {"prompt": "0", "completion": "0"}}
GPT4O_CAP = {"prompt": "2.5", "completion": "10", "request": "0", "image": "0"}  # the dearest of openai/*


def answer_costing(cost: str, gen_id: str, model: str = "acme/router") -> SSEReply:
    chunk = {"id": gen_id, "model": model, "choices": [{"index": 0, "delta": {"content": "Hi!"},
                                                        "finish_reason": "stop"}]}
    usage = {"id": gen_id, "model": model, "choices": [],
             "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cost": float(cost)}}
    return SSEReply(events=[f"data: {json.dumps(chunk)}\n\n", f"data: {json.dumps(usage)}\n\n", "data: [DONE]\n\n"])


async def ask(parts: CoreParts, model: str, text: str = "Hello there") -> RecordingView:
    conversations = parts.core.conversations
    conv = await conversations.start(guild_id=1, channel_id=2, owner_id=3, model=model, title="t")
    view = RecordingView()
    await conversations.ask(conv, author_id=3, content=text, message_id=None, channel_id=2, attachments=(), view=view)
    return view


async def holds(parts: CoreParts) -> list[tuple[Any, ...]]:
    rows = await parts.db.fetchall("SELECT amount_nusd, settled_nusd, settled_from FROM reservations ORDER BY id")
    return [tuple(r) for r in rows]


async def allow(parts: CoreParts, *patterns: str, only: bool = False) -> None:
    config = parts.core.server_config
    for pattern in patterns:
        await config.allow_model(1, pattern, actor=9)
    if only:
        for pattern in set((await config.patterns(1))[0]) - set(patterns):
            await config.remove_model(1, pattern, actor=9)


async def test_a_variable_priced_model_holds_the_dearest_allowed_price_and_caps_openrouter(parts: CoreParts) -> None:
    """The issue's case: a server quota of $0.01 and answers costing $0.05 each on a router priced "-1".
    Before, the hold was $0 and all three went through; now the first is held at the dearest allowed
    price and capped there, and once the quota is spent the others are refused."""
    parts.fake.models += [ROUTER, UNLISTED]
    await allow(parts, "acme/*")
    await parts.core.server_config.set_quota(1, QuotaScope.SERVER, Decimal("0.01"), actor=9)
    parts.fake.script("chat", *(answer_costing("0.05", f"gen-router-{n}") for n in range(3)))
    outcomes = [(await ask(parts, model)).outcome for model in ("acme/router", "acme/unlisted", "acme/router")]
    assert [o.status if o else None for o in outcomes] == ["complete", "refused", "refused"]
    assert "This server has used $0.05 of its $0.01" in (outcomes[1].error_message or "")  # type: ignore[union-attr]
    [(held, settled, source)] = await holds(parts)
    assert held > 0 and (settled, source) == (to_nusd(Decimal("0.05")), "usage")
    [request] = parts.fake.chat_requests()
    body = request.json()
    assert_valid_chat_request(body)
    assert body["provider"]["max_price"] == GPT4O_CAP


async def test_an_unknown_price_with_nothing_priced_allowed_is_refused_under_a_quota(parts: CoreParts) -> None:
    parts.fake.models += [ROUTER]
    await allow(parts, "acme/router", only=True)
    view = await ask(parts, "acme/router")
    assert view.outcome is not None and view.outcome.status == "refused"
    assert "does not list a fixed price for `acme/router`" in (view.outcome.error_message or "")
    assert await holds(parts) == [] and parts.fake.chat_requests() == []


async def test_a_truly_free_model_holds_nothing_and_may_only_be_served_free(parts: CoreParts) -> None:
    parts.fake.models += [FREE]
    await allow(parts, "acme/gift:free")
    parts.fake.script("chat", answer_costing("0", "gen-free", "acme/gift:free"))
    view = await ask(parts, "acme/gift:free")
    assert view.outcome is not None and view.outcome.status == "complete"
    assert await holds(parts) == [(0, 0, "usage")]
    body = parts.fake.chat_requests()[0].json()
    assert_valid_chat_request(body)
    assert body["provider"]["max_price"] == {"prompt": "0", "completion": "0", "request": "0", "image": "0"}


async def test_a_provider_sort_never_lets_openrouter_bill_above_the_hold(parts: CoreParts) -> None:
    """With `sort: throughput` OpenRouter may pick a dearer provider than the catalogue's price: the
    request carries the held prices as `provider.max_price`, in OpenRouter's units (USD per million)."""
    await parts.core.server_config.set_providers(1, actor=9, sort="throughput")
    view = await ask(parts, "openai/gpt-4o")
    assert view.outcome is not None and view.outcome.status == "complete"
    body = parts.fake.chat_requests()[0].json()
    assert_valid_chat_request(body)
    assert body["provider"] == {"sort": "throughput", "max_price": GPT4O_CAP}
    await ask(parts, "openrouter/auto")  # the auto router may pick any allowed model: capped at the dearest
    assert parts.fake.chat_requests()[1].json()["provider"]["max_price"] == GPT4O_CAP


# -- worst-case holds -----------------------------------------------------------------------------------


def pdf(pages: int, *, compressed: bool = False) -> bytes:
    """A small PDF with `pages` page objects, in the file or (PDF 1.5+) in a compressed object stream."""
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"
    head = b"%%PDF-1.5\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Count %d >> endobj\n"
    if compressed:
        body = zlib.compress(b"\n".join([page] * pages))
        objects = (b"3 0 obj << /Type /ObjStm /N %d /First 0 /Filter /FlateDecode /Length %d >>\nstream\n"
                   % (pages, len(body)) + body + b"\nendstream\nendobj\n")
    else:
        objects = b"".join(b"%d 0 obj %s endobj\n" % (3 + n, page) for n in range(pages))
    return head % pages + objects + b"%%EOF\n"


async def hold_for(parts: CoreParts, text: str, model: str = "openai/gpt-4o",
                   attachments: tuple[StoredAttachment, ...] = ()) -> Decimal:
    conversation, question = await conversation_with_question(parts, text, model=model, attachments=attachments)
    plan = await parts.core.conversations.pipeline.planner.plan(conversation, question)
    assert isinstance(plan, AnswerPlan)
    hold = await parts.core.conversations.pipeline.holds.take(plan)
    assert isinstance(hold, Reservation)
    return hold.amount


def price(parts: CoreParts, model: str) -> tuple[Decimal, Decimal]:
    info = parts.core.models.catalogue.get(model)
    assert info is not None
    return info.prompt_price, info.completion_price


async def test_a_rare_script_is_held_at_a_token_per_byte(parts: CoreParts) -> None:
    """Old Persian takes 4 bytes a character, and byte-level tokenizers up to a token a byte."""
    text = "\U000103a0" * 1000
    amount = await hold_for(parts, text)
    prompt, completion = price(parts, "openai/gpt-4o")
    assert amount >= prompt * 4 * 1000 + completion * 500


async def test_a_pdf_is_held_by_its_pages_with_the_parser_fee_for_a_model_that_does_not_read_pdfs(
        parts: CoreParts) -> None:
    data = pdf(40, compressed=True)  # 40 pages in well under 1 KB: 12 tokens a KB would say 12 tokens
    attachment = (StoredAttachment("report.pdf", "application/pdf", AttachmentKind.PDF, len(data), data=data),)
    native = await hold_for(parts, "Summarise", attachments=attachment)  # gpt-4o reads PDFs itself
    prompt, completion = price(parts, "openai/gpt-4o")
    assert native >= prompt * 40 * PDF_TOKENS_PER_PAGE + completion * 500
    parsed = await hold_for(parts, "Summarise", model="openai/gpt-3.5-turbo", attachments=attachment)
    prompt, completion = price(parts, "openai/gpt-3.5-turbo")
    assert parsed >= prompt * 40 * PDF_TOKENS_PER_PAGE + completion * 500 + 40 * PDF_PARSER_FEE_PER_PAGE


async def test_an_estimated_cost_counts_the_pdf_parser_fee(parts: CoreParts) -> None:
    """No usage in the stream and no /generation record: the estimate is all there is, and it must
    carry the parser's fee for every page when the model does not read PDFs itself."""
    data = pdf(40, compressed=True)
    attachment = (StoredAttachment("report.pdf", "application/pdf", AttachmentKind.PDF, len(data), data=data),)
    conversation, question = await conversation_with_question(parts, "Summarise", model="openai/gpt-3.5-turbo",
                                                              attachments=attachment)
    chunk = {"id": "gen-no-usage", "model": "openai/gpt-3.5-turbo",
             "choices": [{"delta": {"content": "A summary."}, "finish_reason": "stop"}]}
    parts.fake.script("chat", SSEReply(events=[f"data: {json.dumps(chunk)}\n\n", "data: [DONE]\n\n"]))
    view = RecordingView()
    await parts.core.conversations.pipeline.answer(conversation, question, view)
    assert view.outcome is not None and view.outcome.cost_source == "estimate"
    assert view.outcome.cost is not None and view.outcome.cost >= 40 * PDF_PARSER_FEE_PER_PAGE


# -- answers cut before their first token -----------------------------------------------------------------


def stalled(gen_id: str, **faults: Any) -> SSEReply:
    """Headers naming the generation, a keep-alive comment, then nothing for a long while."""
    late = {"id": gen_id, "choices": [{"index": 0, "delta": {"content": "late"}, "finish_reason": "stop"}]}
    return SSEReply(events=[": OPENROUTER PROCESSING\n\n", f"data: {json.dumps(late)}\n\n"], interval=30,
                    generation_id=gen_id, **faults)


async def saved_generation(parts: CoreParts) -> str | None:
    row = await parts.db.fetchone("SELECT generation_id FROM turns WHERE role = 'assistant'")
    return row[0] if row else None


async def test_an_answer_stopped_before_its_first_token_is_settled_through_generation(parts: CoreParts) -> None:
    parts.fake.script("chat", stalled("gen-early"))
    parts.fake.generations["gen-early"] = {"id": "gen-early", "total_cost": 0.0004, "cancelled": True}
    conversations = parts.core.conversations
    conv = await conversations.start(guild_id=1, channel_id=2, owner_id=3, model="openai/gpt-4o", title="t")
    view = RecordingView()
    asking = asyncio.create_task(conversations.ask(conv, author_id=3, content="Hi", message_id=None, channel_id=2,
                                                   attachments=(), view=view))
    for _ in range(1000):  # saved on the turn at once, before any token: a crash now still knows it
        if await saved_generation(parts) is not None:
            break
        await asyncio.sleep(0.01)
    assert await saved_generation(parts) == "gen-early" and view.content == []
    answer = conversations.streaming_in(1001)  # RecordingView's message
    assert answer is not None and conversations.stop(answer, by=3)  # the Stop button
    outcome = await asyncio.wait_for(asking, 10)
    assert outcome.status == "stopped" and outcome.content == ""
    assert (outcome.cost, outcome.cost_source) == (Decimal("0.0004"), "generation")
    [(_, settled, source)] = await holds(parts)
    assert (settled, source) == (400_000, "generation")


async def test_an_answer_failing_before_its_first_token_is_settled_through_generation(parts: CoreParts) -> None:
    """Four dropped connections (the first try and three retries), each after the headers: the last
    generation is looked up rather than settled at $0."""
    parts.fake.script("chat", *(stalled(f"gen-drop-{n}", drop_after=1) for n in range(4)))
    parts.fake.generations["gen-drop-3"] = {"id": "gen-drop-3", "total_cost": 0.0002, "cancelled": True}
    view = await ask(parts, "openai/gpt-4o")
    assert view.outcome is not None and view.outcome.status == "error" and view.outcome.content == ""
    assert (view.outcome.cost, view.outcome.cost_source) == (Decimal("0.0002"), "generation")
    assert [(settled, source) for _, settled, source in await holds(parts)] == [(200_000, "generation")]
    assert await saved_generation(parts) == "gen-drop-3"
