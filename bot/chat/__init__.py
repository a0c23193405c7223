"""Conversations: turning stored turns into requests and answers into stored turns (no discord.py here)."""
