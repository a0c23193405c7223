"""A Discord bot that lets whole servers chat with OpenRouter's language models."""

__version__ = "0.1.0"
