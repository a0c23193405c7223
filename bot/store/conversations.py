"""Every SQL statement about conversations, turns and their attachments."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.states import AttachmentKind, TurnStatus
from bot.store.database import Database, Row


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    guild_id: int | None
    channel_id: int
    thread_id: int | None
    owner_id: int
    model: str
    title: str
    trim_notified: bool
    home_channel_id: int | None = None  # the server channel whose settings it follows (a thread's parent)

    @classmethod
    def from_row(cls, row: Row) -> Conversation:
        return cls(row["id"], row["guild_id"], row["channel_id"], row["thread_id"], row["owner_id"], row["model"],
                   row["title"], bool(row["trim_notified"]), row["home_channel_id"])


@dataclass(slots=True)
class StoredAttachment:
    filename: str
    mime: str
    kind: AttachmentKind
    size: int
    data: bytes | None = None
    text: str | None = None


@dataclass(slots=True)
class Turn:
    id: int
    conversation_id: int
    role: str
    reply_to: int | None
    author_id: int | None
    content: str
    reasoning: str | None
    status: TurnStatus
    model: str | None
    discord_message_id: int | None
    discord_message_ids: list[int]
    discord_channel_id: int | None
    generation_id: str | None = None
    finish_reason: str | None = None
    cost_nusd: int | None = None
    attachments: list[StoredAttachment] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    author_name: str | None = None  # the member's display name when they wrote (user turns)
    sources: list[tuple[str, str]] = field(default_factory=list)  # what an answer cited: (url, title)
    superseded_by: int | None = None  # a newer answer to its question replaced this one
    earlier_generations: list[str] = field(default_factory=list)  # tries retried before the first token

    @classmethod
    def from_row(cls, row: Row) -> Turn:
        return cls(
            id=row["id"], conversation_id=row["conversation_id"], role=row["role"], reply_to=row["reply_to"],
            author_id=row["author_id"], content=row["content"], reasoning=row["reasoning"],
            status=TurnStatus(row["status"]),
            model=row["model"], discord_message_id=row["discord_message_id"],
            discord_message_ids=json.loads(row["discord_message_ids"] or "[]"),
            discord_channel_id=row["discord_channel_id"], generation_id=row["generation_id"],
            finish_reason=row["finish_reason"], cost_nusd=row["cost_nusd"],
            prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
            author_name=row["author_name"],
            sources=[(str(u), str(t)) for u, t in json.loads(row["sources"] or "[]")],
            superseded_by=row["superseded_by"],
            earlier_generations=[str(g) for g in json.loads(row["earlier_generations"] or "[]")],
        )


@dataclass(slots=True)
class AnswerRecord:
    """What is stored when an answer ends, whatever way it ended."""

    content: str
    status: TurnStatus
    reasoning: str | None = None
    error: str | None = None
    model: str | None = None
    provider: str | None = None
    generation_id: str | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_nusd: int | None = None
    sources: Sequence[tuple[str, str]] = ()
    replaces_earlier: bool = False  # it has something to say: earlier answers to its question step aside


PDFS_RESENT = 2  # the PDFs of this many newest turns that carry any are sent again (each turn's files are bounded)
_NEWEST = ("SELECT a2.{column} FROM attachments a2 JOIN turns t2 ON t2.id = a2.turn_id WHERE t2.conversation_id = :c "
           "AND t2.deleted_at IS NULL AND a2.kind = '{kind}' GROUP BY a2.{column} ORDER BY a2.{column} DESC LIMIT {n}")
_TURN_COLUMNS = ("id, conversation_id, role, reply_to, author_id, content, reasoning, status, model, "
                 "discord_message_id, discord_message_ids, discord_channel_id, generation_id, finish_reason, "
                 "cost_nusd, prompt_tokens, completion_tokens, author_name, sources, superseded_by, "
                 "earlier_generations")


class ConversationRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- conversations --------------------------------------------------------------------------

    async def create(self, *, guild_id: int | None, channel_id: int, owner_id: int, model: str, title: str,
                     thread_id: int | None = None, home_channel_id: int | None = None) -> Conversation:
        conv_id = await self.db.insert(
            "INSERT INTO conversations (guild_id, channel_id, thread_id, owner_id, model, title, home_channel_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (guild_id, channel_id, thread_id, owner_id, model, title, home_channel_id),
        )
        conversation = await self.get(conv_id)
        assert conversation is not None
        return conversation

    async def get(self, conversation_id: int) -> Conversation | None:
        row = await self.db.fetchone("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        return Conversation.from_row(row) if row else None

    async def by_thread(self, thread_id: int) -> Conversation | None:
        row = await self.db.fetchone("SELECT * FROM conversations WHERE thread_id = ?", (thread_id,))
        return Conversation.from_row(row) if row else None

    async def latest_in_dm(self, channel_id: int) -> Conversation | None:
        row = await self.db.fetchone(
            "SELECT * FROM conversations WHERE channel_id = ? AND guild_id IS NULL AND thread_id IS NULL "
            "ORDER BY id DESC LIMIT 1", (channel_id,))
        return Conversation.from_row(row) if row else None

    async def set_thread(self, conversation_id: int, thread_id: int) -> None:
        await self.db.execute("UPDATE conversations SET thread_id = ? WHERE id = ?", (thread_id, conversation_id))

    async def set_model(self, conversation_id: int, model: str) -> None:
        await self.db.execute(
            "UPDATE conversations SET model = ?, updated_at = now_utc() WHERE id = ?",
            (model, conversation_id))

    async def mark_trim_notified(self, conversation_id: int) -> None:
        await self.db.execute("UPDATE conversations SET trim_notified = 1 WHERE id = ?", (conversation_id,))

    # -- turns ----------------------------------------------------------------------------------

    async def add_user_turn(self, conversation_id: int, *, author_id: int, content: str,
                            message_id: int | None, channel_id: int | None,
                            attachments: Sequence[StoredAttachment] = (), author_name: str | None = None) -> Turn:
        async with self.db.transaction() as tx:
            turn_id = await tx.insert(
                "INSERT INTO turns (conversation_id, role, author_id, author_name, content, discord_message_id, "
                "discord_channel_id) VALUES (?, 'user', ?, ?, ?, ?, ?)",
                (conversation_id, author_id, author_name, content, message_id, channel_id),
            )
            for a in attachments:
                await tx.execute(
                    "INSERT INTO attachments (turn_id, filename, mime, kind, size, data, text) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (turn_id, a.filename, a.mime, a.kind, a.size, a.data, a.text),
                )
            await tx.execute("UPDATE conversations SET updated_at = now_utc() "
                             "WHERE id = ?", (conversation_id,))
        return Turn(turn_id, conversation_id, "user", None, author_id, content, None, TurnStatus.COMPLETE, None,
                    message_id, [message_id] if message_id else [], channel_id, attachments=list(attachments),
                    author_name=author_name)

    async def start_answer(self, conversation_id: int, *, reply_to: int, model: str,
                           message_ids: Sequence[int], channel_id: int | None) -> int:
        return await self.db.insert(
            "INSERT INTO turns (conversation_id, role, reply_to, model, status, discord_message_id, "
            "discord_message_ids, discord_channel_id, shown) VALUES (?, 'assistant', ?, ?, 'streaming', ?, ?, ?, 0)",
            (conversation_id, reply_to, model, message_ids[0] if message_ids else None, json.dumps(list(message_ids)),
             channel_id),
        )

    async def set_answer_messages(self, turn_id: int, message_ids: Sequence[int], *, shown: bool) -> None:
        """The Discord messages an answer spans, and whether its final form is known to show there."""
        await self.db.execute(
            "UPDATE turns SET discord_message_id = ?, discord_message_ids = ?, shown = ? WHERE id = ?",
            (message_ids[0] if message_ids else None, json.dumps(list(message_ids)), int(shown), turn_id))

    async def unshown_answers(self) -> list[Turn]:
        """Finished answers whose final form never reached Discord (answers cut by a crash aside)."""
        rows = await self.db.fetchall(
            f"SELECT {_TURN_COLUMNS} FROM turns WHERE shown = 0 AND status NOT IN ('streaming', 'interrupted') "
            "ORDER BY id")
        return [Turn.from_row(r) for r in rows]

    async def save_progress(self, turn_id: int, content: str, generation_id: str | None,
                            earlier_generations: Sequence[str] = ()) -> None:
        await self.db.execute(
            "UPDATE turns SET content = ?, generation_id = COALESCE(?, generation_id), earlier_generations = ? "
            "WHERE id = ? AND status = 'streaming' AND deleted_at IS NULL",
            (content, generation_id, json.dumps(list(earlier_generations)), turn_id))

    async def set_cost(self, turn_id: int, cost_nusd: int) -> None:
        await self.db.execute("UPDATE turns SET cost_nusd = ? WHERE id = ?", (cost_nusd, turn_id))

    async def finish_answer(self, turn_id: int, record: AnswerRecord) -> None:
        """An answer ended. One whose message was deleted while it streamed keeps no text. One that
        `replaces_earlier` answers of its question marks them superseded (they leave the history)."""
        async with self.db.transaction() as tx:
            await self._finish_answer(tx, turn_id, record)
            if record.replaces_earlier:
                await tx.execute(
                    "UPDATE turns SET superseded_by = ? WHERE role = 'assistant' AND id < ? AND superseded_by IS NULL "
                    "AND reply_to = (SELECT reply_to FROM turns WHERE id = ?)", (turn_id, turn_id, turn_id))

    @staticmethod
    async def _finish_answer(db: Database, turn_id: int, record: AnswerRecord) -> None:
        await db.execute(
            "UPDATE turns SET content = CASE WHEN deleted_at IS NULL THEN ? ELSE '' END, "
            "reasoning = CASE WHEN deleted_at IS NULL THEN ? END, status = ?, error = ?, model = COALESCE(?, model), "
            "provider = ?, generation_id = ?, finish_reason = ?, native_finish_reason = ?, prompt_tokens = ?, "
            "completion_tokens = ?, reasoning_tokens = ?, cost_nusd = ?, "
            "sources = CASE WHEN deleted_at IS NULL THEN ? END, "
            "completed_at = now_utc() WHERE id = ?",
            (record.content, record.reasoning, record.status, record.error, record.model, record.provider,
             record.generation_id, record.finish_reason, record.native_finish_reason, record.prompt_tokens,
             record.completion_tokens, record.reasoning_tokens, record.cost_nusd,
             json.dumps([list(s) for s in record.sources]) if record.sources else None, turn_id),
        )

    async def question_by_message(self, message_id: int) -> Turn | None:
        """The stored question a Discord message carries (not one deleted)."""
        row = await self.db.fetchone(f"SELECT {_TURN_COLUMNS} FROM turns WHERE discord_message_id = ? "
                                     f"AND role = 'user' AND deleted_at IS NULL", (message_id,))
        return Turn.from_row(row) if row else None

    async def last_question(self, conversation_id: int) -> Turn | None:
        row = await self.db.fetchone(f"SELECT {_TURN_COLUMNS} FROM turns WHERE conversation_id = ? AND role = 'user' "
                                     f"AND deleted_at IS NULL ORDER BY id DESC LIMIT 1", (conversation_id,))
        return Turn.from_row(row) if row else None

    async def edit_question(self, turn_id: int, content: str) -> None:
        await self.db.execute("UPDATE turns SET content = ?, edited_at = now_utc() WHERE id = ? AND deleted_at IS NULL",
                              (content, turn_id))

    async def get_turn(self, turn_id: int, *, live: bool = False) -> Turn | None:
        """A turn by id; with `live`, not one whose Discord message was deleted."""
        row = await self.db.fetchone(f"SELECT {_TURN_COLUMNS} FROM turns WHERE id = ?"
                                     + (" AND deleted_at IS NULL" if live else ""), (turn_id,))
        return Turn.from_row(row) if row else None

    async def history(self, conversation_id: int, *, image_data_for_last: int = 4,
                      pdf_data_for_last: int = PDFS_RESENT) -> list[Turn]:
        """Every turn of a conversation in id order, with attachments.

        File bytes are loaded only for the newest `image_data_for_last` images, and for the PDFs of the
        newest `pdf_data_for_last` turns that carry PDFs (so a message's own PDFs always go together):
        older ones are not re-sent to the model, so there is no reason to read them.
        """
        rows = await self.db.fetchall(
            f"SELECT {_TURN_COLUMNS} FROM turns WHERE conversation_id = ? AND deleted_at IS NULL "
            f"AND superseded_by IS NULL ORDER BY id",
            (conversation_id,))
        turns = [Turn.from_row(r) for r in rows]
        by_id = {t.id: t for t in turns}
        attachment_rows = await self.db.fetchall(
            f"SELECT a.id, a.turn_id, a.filename, a.mime, a.kind, a.size, a.text, "
            f"CASE WHEN a.id IN ({_NEWEST.format(column='id', kind='image', n=':images')}) OR (a.kind = 'pdf' "
            f"  AND a.turn_id IN ({_NEWEST.format(column='turn_id', kind='pdf', n=':pdfs')})) THEN a.data END AS data "
            f"FROM attachments a JOIN turns t ON t.id = a.turn_id "
            f"WHERE t.conversation_id = :c AND t.deleted_at IS NULL ORDER BY a.id",
            {"c": conversation_id, "images": image_data_for_last, "pdfs": pdf_data_for_last},
        )
        for r in attachment_rows:
            if r["turn_id"] not in by_id:
                continue
            by_id[r["turn_id"]].attachments.append(
                StoredAttachment(r["filename"], r["mime"], AttachmentKind(r["kind"]), r["size"], r["data"], r["text"]))
        return turns

    async def mark_deleted(self, message_ids: Sequence[int]) -> int:
        """Discord messages were deleted: their turns leave the context (a question takes its answer along)
        and what they said is erased: text, reasoning and attachments. The rows stay, with their tokens
        and cost, for the accounts."""
        changed = 0
        async with self.db.transaction() as tx:
            for message_id in message_ids:
                await tx.execute(
                    "DELETE FROM attachments WHERE turn_id IN "
                    "(SELECT id FROM turns WHERE discord_message_id = ? AND deleted_at IS NULL)", (message_id,))
                changed += await tx.execute(
                    "UPDATE turns SET deleted_at = now_utc(), content = '', "
                    "reasoning = NULL, sources = NULL WHERE discord_message_id = ? AND deleted_at IS NULL",
                    (message_id,))
        if changed:  # the old text may still sit in the backend's log or old row versions
            await self.db.forget_erased()
        return changed

    async def streaming_turns(self) -> list[Turn]:
        """Answers that were streaming when the process last stopped."""
        rows = await self.db.fetchall(f"SELECT {_TURN_COLUMNS} FROM turns WHERE status = 'streaming' ORDER BY id")
        return [Turn.from_row(r) for r in rows]
