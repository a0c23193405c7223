"""What the store keeps of a message deleted in Discord: the row and its accounts, not what it said.
Each test runs on both backends."""

from __future__ import annotations

from pathlib import Path

from bot.states import AttachmentKind, TurnStatus
from bot.store.conversations import AnswerRecord, ConversationRepo, StoredAttachment
from bot.store.database import Database
from bot.store.sqlite import SqliteDatabase

SECRET = "my password is hunter2-unique-marker"
PNG = b"\x89PNG\r\n\x1a\n" + b"pixels-of-a-private-photo" * 40


def on_disk(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))  # the file, its -wal and -shm


async def test_a_deleted_message_is_erased_but_its_row_and_cost_stay(migrated_db: Database) -> None:
    db = migrated_db
    db_path = db.path if isinstance(db, SqliteDatabase) else None
    repo = ConversationRepo(db)
    conv = await repo.create(guild_id=1, channel_id=2, owner_id=3, model="m/x", title="t")
    question = await repo.add_user_turn(
        conv.id, author_id=3, content=SECRET, message_id=500, channel_id=2,
        attachments=[StoredAttachment("me.png", "image/png", AttachmentKind.IMAGE, len(PNG), data=PNG),
                     StoredAttachment("notes.txt", "text/plain", AttachmentKind.TEXT, 9, text=f"notes {SECRET}")])
    answer = await repo.start_answer(conv.id, reply_to=question.id, model="m/x", message_ids=[600], channel_id=2)
    await repo.finish_answer(answer, AnswerRecord(content=f"You said {SECRET}", status=TurnStatus.COMPLETE,
                                                  reasoning=f"they said {SECRET}", cost_nusd=1234))
    assert db_path is None or SECRET.encode() in on_disk(db_path)

    assert await repo.mark_deleted([500, 600]) == 2
    assert await repo.mark_deleted([500]) == 0  # once is enough
    rows = await db.fetchall("SELECT role, content, reasoning, cost_nusd, deleted_at FROM turns ORDER BY id")
    assert [tuple(r)[:4] for r in rows] == [("user", "", None, None), ("assistant", "", None, 1234)]
    assert all(r["deleted_at"] for r in rows)
    assert await db.fetchall("SELECT * FROM attachments") == []
    assert await repo.history(conv.id) == []
    if db_path is not None:
        data = on_disk(db_path)
        assert SECRET.encode() not in data and b"private-photo" not in data  # not even in free pages or the log


async def test_an_answer_deleted_while_it_streams_keeps_no_text(migrated_db: Database) -> None:
    db = migrated_db
    repo = ConversationRepo(db)
    conv = await repo.create(guild_id=1, channel_id=2, owner_id=3, model="m/x", title="t")
    question = await repo.add_user_turn(conv.id, author_id=3, content="hi", message_id=1, channel_id=2)
    answer = await repo.start_answer(conv.id, reply_to=question.id, model="m/x", message_ids=[700], channel_id=2)
    await repo.save_progress(answer, "Half of the", "gen-1")
    await repo.mark_deleted([700])
    await repo.save_progress(answer, "Half of the answer", "gen-1")
    await repo.finish_answer(answer, AnswerRecord(content="Half of the answer.", status=TurnStatus.COMPLETE,
                                                  reasoning="thoughts", completion_tokens=5, cost_nusd=99))
    row = await db.fetchone("SELECT content, reasoning, status, completion_tokens, cost_nusd FROM turns "
                            "WHERE id = ?", (answer,))
    assert tuple(row) == ("", None, "complete", 5, 99)


async def test_history_loads_bytes_only_for_the_newest_images_and_pdfs(migrated_db: Database) -> None:
    db = migrated_db
    repo = ConversationRepo(db)
    conv = await repo.create(guild_id=1, channel_id=2, owner_id=3, model="m/x", title="t")
    for i in range(4):
        await repo.add_user_turn(conv.id, author_id=3, content=f"turn {i}", message_id=None, channel_id=2,
                                 attachments=[
                                     StoredAttachment(f"i{i}.png", "image/png", AttachmentKind.IMAGE, 3, b"img"),
                                     StoredAttachment(f"d{i}.pdf", "application/pdf", AttachmentKind.PDF, 4,
                                                      b"%PDF"),
                                     StoredAttachment(f"t{i}.txt", "text/plain", AttachmentKind.TEXT, 1, text="t"),
                                 ])
    loaded = {a.filename: a for t in await repo.history(conv.id, image_data_for_last=3, pdf_data_for_last=2)
              for a in t.attachments}
    assert [name for name, a in loaded.items() if a.data is not None] == ["i1.png", "i2.png", "d2.pdf",
                                                                         "i3.png", "d3.pdf"]
    assert all(loaded[f"t{i}.txt"].text == "t" for i in range(4))  # text always: the request carries it


async def test_a_messages_own_pdfs_are_always_loaded_together(migrated_db: Database) -> None:
    db = migrated_db
    repo = ConversationRepo(db)
    conv = await repo.create(guild_id=1, channel_id=2, owner_id=3, model="m/x", title="t")
    await repo.add_user_turn(conv.id, author_id=3, content="old", message_id=None, channel_id=2, attachments=[
        StoredAttachment("old.pdf", "application/pdf", AttachmentKind.PDF, 4, b"%PDF")])
    await repo.add_user_turn(conv.id, author_id=3, content="three", message_id=None, channel_id=2, attachments=[
        StoredAttachment(f"p{i}.pdf", "application/pdf", AttachmentKind.PDF, 4, b"%PDF") for i in range(3)])
    [old, three] = await repo.history(conv.id, pdf_data_for_last=1)
    assert [a.data for a in old.attachments] == [None]
    assert [a.data for a in three.attachments] == [b"%PDF"] * 3
