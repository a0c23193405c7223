"""Who may do what, in one place.

- A **moderator** is a member who may manage messages, threads or the server in the channel at hand
  (administrators may do everything). Moderators can stop any answer, switch any conversation's
  model and see the top spenders in `/usage`.
- The **owner** of a conversation is the member who started it; they may switch its model. The
  **asker** of an answer is the member whose message it answers; they may stop it.
- `/config` is gated by Discord itself: Manage Server by default (`default_member_permissions`),
  which server admins can change under Server Settings → Integrations.
- The bot's **owners** (`OWNER_IDS`, else the application's owner) may see its OpenRouter credit.
"""

from __future__ import annotations

from typing import Any

import discord


def is_moderator(user: discord.abc.User | discord.Member, channel: Any) -> bool:
    """Whether `user` moderates `channel` (never in DMs)."""
    if not isinstance(user, discord.Member) or channel is None or not hasattr(channel, "permissions_for"):
        return False
    permissions = channel.permissions_for(user)
    return bool(permissions.manage_messages or permissions.manage_threads or permissions.manage_guild
                or permissions.administrator)


def may_act_for(user: discord.abc.User | discord.Member, channel: Any, member_id: int | None) -> bool:
    """Whether `user` is that member (a conversation's owner, an answer's asker) or a moderator."""
    return (member_id is not None and user.id == member_id) or is_moderator(user, channel)
