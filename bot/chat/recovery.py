"""After a crash: answers that were streaming are marked interrupted (their saved text kept), and
holds left open are settled to the real cost when it can be found, else to the full held amount."""

from __future__ import annotations

from decimal import Decimal

from bot.chat.settle import CostSettler
from bot.logs import get_logger
from bot.money import from_nusd, to_nusd
from bot.quotas import QuotaService
from bot.shards import ALL_SHARDS, ShardScope, owned
from bot.states import CostSource, TurnStatus
from bot.store.conversations import AnswerRecord, ConversationRepo, Turn

log = get_logger(__name__)


class Recovery:
    def __init__(self, *, repo: ConversationRepo, quotas: QuotaService, settler: CostSettler) -> None:
        self.repo = repo
        self.quotas = quotas
        self.settler = settler

    async def guild_of_turn(self, turn: Turn) -> int | None:
        conversation = await self.repo.get(turn.conversation_id)
        return conversation.guild_id if conversation else None

    async def recover_interrupted(self, scope: ShardScope = ALL_SHARDS) -> list[Turn]:
        """Answers cut by a crash (in this process's guilds): mark them interrupted (keeping their text);
        return them. Other processes' answers may be streaming right now: they are left alone."""
        turns = await owned(scope, await self.repo.streaming_turns(), self.guild_of_turn)
        for turn in turns:
            await self.repo.finish_answer(turn.id, AnswerRecord(
                content=turn.content, status=TurnStatus.INTERRUPTED, model=turn.model,
                generation_id=turn.generation_id, error="interrupted: the bot stopped while this answer was streaming"))
        if turns:
            log.warning("marked interrupted answers", count=len(turns))
        return turns

    async def settle_orphans(self, scope: ShardScope = ALL_SHARDS) -> int:
        """Holds left open by a crash (in this process's guilds): settle each to the turn's recorded cost,
        else the generation endpoint's, else the full held amount."""
        orphans = [held for held in await self.quotas.open_reservations() if scope.owns(held.guild_id)]
        for held in orphans:
            turn = await self.repo.get_turn(held.turn_id) if held.turn_id else None
            cost, source = await self._cost(turn)
            await self.quotas.settle(held.id, held.guild_id, cost, source=source,
                                     model=turn.model if turn else None, fallback=from_nusd(held.amount_nusd))
            log.warning("settled a hold left by a crash", reservation=held.id, source=source)
        return len(orphans)

    async def _cost(self, turn: Turn | None) -> tuple[Decimal | None, CostSource]:
        if turn is not None and turn.cost_nusd is not None:
            return from_nusd(turn.cost_nusd), CostSource.TURN
        if turn is not None and turn.generation_id:
            cost = await self.settler.generation_cost(turn.generation_id, attempts=2)
            if cost is not None:
                cost += await self.settler.earlier_tries_cost(turn.earlier_generations)
                await self.repo.set_cost(turn.id, to_nusd(cost))
                return cost, CostSource.GENERATION
        return None, CostSource.RESERVED

