"""Benchmark: peak memory of building one chat request from a conversation stored with many files.

A conversation of `--turns` questions, alternating a `--image-mb` image and a `--pdf-mb` PDF (random
bytes, so nothing compresses), each answered, is stored in a real SQLite file. Then, as the planner
and the client do for the next question, under tracemalloc: the history is loaded
(`ConversationRepo.history`: bytes only for the newest images and PDFs), turned into messages
(`build_context`) and sent as the request body the way `OpenRouterClient.stream_chat` does: a
`JSONBody` encoded piece by piece as httpx sends it. The history is dropped once the messages are
built, as the planner returns before the body is encoded. Prints the body's size, the peak traced
memory of those steps and its ratio to the body, the same for the body encoded whole as one string
and its bytes (what the client did before), and what the history would weigh if every file were re-sent.

    python -m bench.request_memory [--turns 12] [--image-mb 2] [--pdf-mb 4]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import tempfile
import tracemalloc
from pathlib import Path

from bot.chat.context import build_context
from bot.logs import configure_logging
from bot.openrouter.client import JSONBody
from bot.openrouter.types import ChatRequest, Message
from bot.states import AttachmentKind, TurnStatus
from bot.store.conversations import AnswerRecord, ConversationRepo, StoredAttachment
from bot.store.sqlite import SqliteDatabase

MB = 1024 * 1024
PNG_HEADER = b"\x89PNG\r\n\x1a\n"


def attachment(i: int, image_mb: float, pdf_mb: float) -> StoredAttachment:
    if i % 2 == 0:
        data = PNG_HEADER + os.urandom(int(image_mb * MB))
        return StoredAttachment(f"photo{i}.png", "image/png", AttachmentKind.IMAGE, len(data), data=data)
    data = b"%PDF-1.7\n" + os.urandom(int(pdf_mb * MB))
    return StoredAttachment(f"paper{i}.pdf", "application/pdf", AttachmentKind.PDF, len(data), data=data)


async def store_conversation(repo: ConversationRepo, turns: int, image_mb: float, pdf_mb: float) -> int:
    conv = await repo.create(guild_id=1, channel_id=2, owner_id=3, model="openai/gpt-4o", title="bench")
    for i in range(turns):
        question = await repo.add_user_turn(conv.id, author_id=3, content=f"What is in file {i}?", message_id=None,
                                            channel_id=2, attachments=[attachment(i, image_mb, pdf_mb)])
        answer = await repo.start_answer(conv.id, reply_to=question.id, model="openai/gpt-4o", message_ids=[],
                                         channel_id=2)
        await repo.finish_answer(answer, AnswerRecord(content=f"File {i} holds " + "words " * 200,
                                                      status=TurnStatus.COMPLETE))
    await repo.add_user_turn(conv.id, author_id=3, content="Compare them all.", message_id=None, channel_id=2)
    return conv.id


async def plan_messages(repo: ConversationRepo, conversation_id: int) -> list[Message]:
    """What the planner keeps of the history: the messages (the turns and their bytes go when it returns)."""
    history = await repo.history(conversation_id)
    current = history[-1]
    return build_context("Be brief.", history, current, context_length=1_000_000,
                         reserve_for_answer=2048).messages


def encode_whole(request: ChatRequest) -> bytes:
    """The body as one string and then its bytes (what the client did before `JSONBody`)."""
    return json.dumps(request.to_body()).encode()


async def send_as_the_client_does(request: ChatRequest) -> int:
    """The body as `OpenRouterClient.stream_chat` gives it to httpx: its length, then its pieces, each
    sent and dropped in turn. Returns the bytes sent."""
    body = JSONBody(request.to_body())
    sent = 0
    async for piece in body:
        sent += len(piece)
    assert sent == body.length
    return sent


async def build_body(repo: ConversationRepo, conversation_id: int, *, whole: bool) -> tuple[int, int]:
    """(body size, peak traced memory) from the stored conversation to the sent body."""
    gc.collect()
    tracemalloc.start()
    request = ChatRequest(model="openai/gpt-4o", messages=await plan_messages(repo, conversation_id),
                          max_tokens=2048)
    size = len(encode_whole(request)) if whole else await send_as_the_client_does(request)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return size, peak


async def measure(turns: int, image_mb: float, pdf_mb: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with SqliteDatabase(Path(folder) / "bench.sqlite3") as db:
            await db.migrate()
            repo = ConversationRepo(db)
            conversation_id = await store_conversation(repo, turns, image_mb, pdf_mb)
            everything = sum(r["size"] for r in await db.fetchall("SELECT size FROM attachments"))
            size, peak = await build_body(repo, conversation_id, whole=False)
            whole_size, whole_peak = await build_body(repo, conversation_id, whole=True)
    assert whole_size == size
    print(f"conversation: {turns} files stored, {everything / MB:.1f} MiB in all "
          f"(base64 ~{everything * 4 / 3 / MB:.1f} MiB if every file were re-sent)")
    print(f"request body: {size / MB:.1f} MiB")
    print(f"peak traced memory, stored conversation → body sent as the client sends it: {peak / MB:.1f} MiB "
          f"= {peak / size:.2f} × the body")
    print(f"the same, the body encoded whole (before JSONBody): {whole_peak / MB:.1f} MiB "
          f"= {whole_peak / size:.2f} × the body")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--image-mb", type=float, default=2)
    parser.add_argument("--pdf-mb", type=float, default=4)
    args = parser.parse_args()
    configure_logging(level="WARNING", fmt="console")
    asyncio.run(measure(args.turns, args.image_mb, args.pdf_mb))


if __name__ == "__main__":
    main()
