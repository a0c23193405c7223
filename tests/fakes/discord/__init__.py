"""A local fake of Discord (REST API, gateway, attachment CDN) for end-to-end tests and benchmarks.

An unmodified discord.py client talks to it over real sockets on 127.0.0.1::

    fake = FakeDiscord()
    await fake.start()
    fake.install()          # points discord.py's Route.BASE / DEFAULT_GATEWAY / Asset.BASE here
    task = asyncio.create_task(bot.start("any-token"))
    await fake.wait_ready()
    inter = await fake.slash("chat", {"prompt": "hi"}, user_id=fake.add_user("alice"))
    await inter.wait_response()
    ...
    await bot.close(); await fake.close()

It holds one guild with a text channel, the bot and the application owner, and models only what the
bot uses. Modules, by concern: ``state`` (the world and :class:`Msg`), ``gateway``, ``rest``,
``interactions`` (:class:`Interaction`, callbacks, webhooks, the ``slash``/``autocomplete``/``click``
drivers), ``ratelimits`` (Discord's global and per-channel limits, invalid-request counting),
``validation`` (error shapes and size limits), and ``fake`` (the :class:`FakeDiscord` facade).
"""

from tests.fakes.discord.fake import FakeDiscord
from tests.fakes.discord.interactions import Interaction
from tests.fakes.discord.state import Msg

__all__ = ["FakeDiscord", "Interaction", "Msg"]
