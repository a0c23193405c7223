"""Moderators' changes through the core's `ServerConfig`: each checked, applied, and audited."""

from __future__ import annotations

from decimal import Decimal

from bot.policy import Refusal
from bot.server_config import Change, QuotaScope
from tests.core_harness import CoreParts

GUILD, MOD = 1, 42


async def test_allowing_and_removing_models(parts: CoreParts) -> None:
    config = parts.core.server_config
    assert (await config.allow_model(GUILD, "bad pattern!", actor=MOD)).change is Change.INVALID
    assert (await config.allow_model(GUILD, "nobody/*", actor=MOD)).change is Change.UNKNOWN
    assert (await config.patterns(GUILD)) == (["openai/gpt-4o", "openai/*"], False)  # DEFAULT_MODEL is always in
    allowed = await config.allow_model(GUILD, "anthropic/*", actor=MOD)
    assert allowed.change is Change.DONE and allowed.matches == 1
    assert (await config.allow_model(GUILD, "anthropic/*", actor=MOD)).change is Change.UNCHANGED
    assert (await config.patterns(GUILD)) == (["anthropic/*", "openai/*", "openai/gpt-4o"], True)  # seeded
    assert await config.models_matching(GUILD) == 4
    assert (await config.remove_model(GUILD, "google/*", actor=MOD)).change is Change.UNCHANGED
    assert not (await config.remove_model(GUILD, "openai/*", actor=MOD)).now_empty
    assert not (await config.remove_model(GUILD, "anthropic/*", actor=MOD)).now_empty
    assert (await config.remove_model(GUILD, "openai/gpt-4o", actor=MOD)).now_empty
    assert (await config.patterns(GUILD)) == (["openai/gpt-4o", "openai/*"], False)  # the operator's again
    assert [e.action for e in await config.audit(GUILD)] == ["model remove"] * 3 + ["model allow"]


async def test_the_default_model_must_exist_and_be_allowed(parts: CoreParts) -> None:
    config = parts.core.server_config
    assert (await config.set_default_model(GUILD, "openai/gpt-5-imaginary", actor=MOD)).change is Change.UNKNOWN
    assert (await config.set_default_model(GUILD, "anthropic/claude-sonnet-4", actor=MOD)).change \
        is Change.NOT_ALLOWED
    changed = await config.set_default_model(GUILD, "openai/gpt-3.5-turbo", actor=MOD)
    assert changed.change is Change.DONE and changed.old == "openai/gpt-4o"
    assert await parts.core.conversations.default_model(GUILD) == "openai/gpt-3.5-turbo"


async def test_quotas_prompt_and_providers_show_in_the_overview(parts: CoreParts) -> None:
    config = parts.core.server_config
    before = await config.overview(GUILD)
    assert before.guild_quota.amount == Decimal(5) and before.guild_quota.operator_default
    assert before.system_prompt == "Be brief." and before.system_prompt_is_default
    await config.set_quota(GUILD, QuotaScope.SERVER, Decimal("12.5"), actor=MOD)
    await config.set_quota(GUILD, QuotaScope.MEMBER, Decimal(0), actor=MOD)
    await config.set_system_prompt(GUILD, "Answer like a pirate.", actor=MOD)
    await config.set_providers(GUILD, actor=MOD, sort="throughput", deny_data_collection=True, allow_fallbacks=False)
    after = await config.overview(GUILD)
    assert (after.guild_quota.amount, after.guild_quota.operator_default) == (Decimal("12.5"), False)
    assert after.member_quota.amount == 0 and not after.member_quota.operator_default
    assert (after.provider_sort, after.deny_data_collection, after.allow_fallbacks) == ("throughput", True, False)
    assert after.system_prompt == "Answer like a pirate." and not after.system_prompt_is_default
    await config.set_providers(GUILD, actor=MOD, sort="default")
    assert (await config.overview(GUILD)).provider_sort is None
    audit = await config.audit(GUILD)
    assert audit[-2].action == "quota member" and (audit[-2].old_value, audit[-2].new_value) == (None, "$0.00")
    assert audit[-1].action == "quota server" and audit[-1].new_value == "$12.50"


async def test_a_channel_has_its_own_persona_model_and_switch(parts: CoreParts) -> None:
    config, conversations, policy = parts.core.server_config, parts.core.conversations, parts.core.models
    channel, other = 500, 501
    await config.set_system_prompt(GUILD, "Server prompt.", actor=MOD)
    await config.set_channel_persona(GUILD, channel, "You are a pirate.", actor=MOD)
    assert (await config.set_channel_model(GUILD, channel, "nobody/model", actor=MOD)).change is Change.UNKNOWN
    assert (await config.set_channel_model(GUILD, channel, "anthropic/claude-sonnet-4", actor=MOD)).change \
        is Change.NOT_ALLOWED
    assert (await config.set_channel_model(GUILD, channel, "openai/gpt-3.5-turbo", actor=MOD)).change is Change.DONE
    assert await conversations.default_model(GUILD, channel) == "openai/gpt-3.5-turbo"
    assert await conversations.default_model(GUILD, other) == "openai/gpt-4o"
    assert await conversations.default_model(None, channel) == "openai/gpt-4o"  # no channel settings in DMs
    here = await policy.plan(GUILD, "openai/gpt-4o", channel)
    elsewhere = await policy.plan(GUILD, "openai/gpt-4o", other)
    assert not isinstance(here, Refusal) and here.plan.system_prompt == "You are a pirate."
    assert not isinstance(elsewhere, Refusal) and elsewhere.plan.system_prompt == "Server prompt."

    assert not await conversations.switched_off(GUILD, channel)
    assert (await config.set_channel_off(GUILD, channel, True, actor=MOD)).change is Change.DONE
    assert (await config.set_channel_off(GUILD, channel, True, actor=MOD)).change is Change.UNCHANGED
    assert await conversations.switched_off(GUILD, channel) and not await conversations.switched_off(GUILD, other)
    [shown] = (await config.overview(GUILD)).channels
    assert (shown.channel_id, shown.off, shown.default_model) == (channel, True, "openai/gpt-3.5-turbo")

    await config.set_channel_persona(GUILD, channel, None, actor=MOD)
    await config.set_channel_model(GUILD, channel, None, actor=MOD)
    await config.set_channel_off(GUILD, channel, False, actor=MOD)
    assert (await config.overview(GUILD)).channels == []  # nothing of its own left: not listed
    actions = [e.action for e in await config.audit(GUILD)]
    assert actions[:3] == [f"channel <#{channel}> off", f"channel <#{channel}> default model",
                           f"channel <#{channel}> system prompt"]


async def test_a_conversation_follows_its_home_channel(parts: CoreParts) -> None:
    config, conversations = parts.core.server_config, parts.core.conversations
    await config.set_channel_persona(GUILD, 500, "Only haiku.", actor=MOD)
    started = await conversations.start(guild_id=GUILD, channel_id=900, owner_id=7, title="t", home_channel_id=500)
    stored = await conversations.repo.get(started.id)
    assert stored is not None and stored.home_channel_id == 500
    question = await conversations.repo.add_user_turn(stored.id, author_id=7, content="hi", message_id=None,
                                                      channel_id=900)
    plan = await conversations.pipeline.planner.plan(stored, question)
    assert not isinstance(plan, Refusal), plan
    assert plan.context.messages[0]["content"].startswith("Only haiku.")
