"""The Discord layer: translates between discord.py and the core (chat, moderation, money)."""
