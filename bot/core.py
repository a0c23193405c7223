"""The core as the Discord layer sees it: named services, built once from the process's parts.

    Discord layer (bot/discord)  →  Core: conversations · models · server_config · usage
                                  →  chat pipeline, policy, quotas  →  store/ (SQL) and openrouter/
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.chat.active import ActiveAnswers
from bot.chat.config import ChatConfig
from bot.chat.conversations import ConversationService
from bot.chat.hold import BudgetHolds
from bot.chat.pipeline import AnswerPipeline
from bot.chat.plan import AnswerPlanner
from bot.chat.recovery import Recovery
from bot.chat.settle import CostSettler
from bot.chat.stream import AnswerStreamer
from bot.metrics import Metrics
from bot.policy import GuildPolicy
from bot.quotas import QuotaService
from bot.server_config import ServerConfig
from bot.services import Services
from bot.shards import ALL_SHARDS, ShardScope, owned
from bot.store.conversations import ConversationRepo, Turn
from bot.store.guilds import GuildRepo
from bot.store.spend import SpendRepo
from bot.store.state import StateRepo
from bot.usage import UsageService


@dataclass
class Core:
    conversations: ConversationService
    models: GuildPolicy
    server_config: ServerConfig
    usage: UsageService
    recovery: Recovery
    active: ActiveAnswers
    state: StateRepo
    metrics: Metrics
    wall_clock: Callable[[], float] = time.time  # epoch seconds, comparable between processes

    @classmethod
    def build(cls, services: Services, config: ChatConfig | None = None) -> Core:
        s, db, client, metrics = services.settings, services.db, services.openrouter, services.metrics
        config = config or ChatConfig(system_prompt=s.system_prompt or None)
        guilds, repo = GuildRepo(db), ConversationRepo(db)
        policy = GuildPolicy(guilds=guilds, catalogue=services.catalogue, operator_patterns=s.allowed_models_default,
                             operator_default_model=s.default_model, fallback_models=s.fallback_models,
                             max_answer_tokens=s.max_answer_tokens)
        quotas = QuotaService(spend=SpendRepo(db), guilds=guilds, default_guild_quota=s.default_guild_monthly_quota_usd,
                              default_member_quota=s.default_member_monthly_quota_usd, metrics=metrics)
        active = ActiveAnswers()
        metrics.watch_streaming(active.__len__)
        settler = CostSettler(quotas=quotas, client=client, lookup_attempts=config.generation_lookup_attempts,
                              lookup_delay=config.generation_lookup_delay)
        pipeline = AnswerPipeline(
            repo=repo, active=active, holds=BudgetHolds(quotas), settler=settler, metrics=metrics,
            planner=AnswerPlanner(repo=repo, policy=policy, system_prompt=config.system_prompt,
                                  images_resent=config.attachment_limits.images_resent),
            streamer=AnswerStreamer(client=client, repo=repo, progress_save_interval=config.progress_save_interval,
                                    metrics=metrics))
        return cls(
            conversations=ConversationService(repo=repo, policy=policy, pipeline=pipeline, active=active,
                                              attachment_limits=config.attachment_limits),
            models=policy,
            server_config=ServerConfig(guilds=guilds, policy=policy, quotas=quotas,
                                       operator_system_prompt=s.system_prompt),
            usage=UsageService(quotas=quotas, client=client),
            recovery=Recovery(repo=repo, quotas=quotas, settler=settler),
            active=active,
            state=StateRepo(db),
            metrics=metrics,
        )

    async def recover(self, scope: ShardScope = ALL_SHARDS) -> list[Turn]:
        """At start: answers a crash cut are marked interrupted (returned, to be marked in Discord too),
        and holds it left open are settled; only in the guilds of this process's shards (`scope`)."""
        interrupted = await self.recovery.recover_interrupted(scope)
        await self.recovery.settle_orphans(scope)
        return interrupted

    async def unshown_answers(self, scope: ShardScope = ALL_SHARDS) -> list[Turn]:
        """Finished answers whose final form never reached Discord, in this process's guilds."""
        return await owned(scope, await self.conversations.unshown_answers(), self.recovery.guild_of_turn)

    async def claim_identify(self, bucket: int, window: float) -> float:
        """Claim Discord's IDENTIFY slot of this shard bucket for `window` seconds, for every process of the
        bot (through the shared database). Returns 0 when claimed, else the seconds until it frees."""
        now_ms = int(self.wall_clock() * 1000)
        held_until = await self.state.claim_until(f"identify_slot:{bucket}", now_ms, now_ms + int(window * 1000))
        return 0.0 if held_until is None else max(0.01, (held_until - now_ms) / 1000)

    async def shutdown(self, grace: float = 3.0) -> None:
        """Let streaming answers finish for `grace` seconds, then stop the rest (their text kept)."""
        await self.active.shutdown(grace)

    async def command_sync_digest(self, application_id: int | None) -> str | None:
        return await self.state.get(f"command_sync:{application_id}")

    async def remember_command_sync(self, application_id: int | None, digest: str) -> None:
        await self.state.set(f"command_sync:{application_id}", digest)
