"""One of two bot processes that reserve against one server's quota at once (tests/test_quotas.py).

`python -m tests.quota_worker FIRST_USER COUNT`, with the bot's settings in the environment
(DATABASE_URL among them). It starts the real `Services` (which migrate the database) and the core
built on them, prints `ready`, waits for a line on stdin, then makes COUNT requests at once: each
reserves its worst case through the core's `QuotaService`, waits a moment, and settles to a cost at
most its hold. It prints `result` and a JSON object: what each settled, and how many were refused.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from decimal import Decimal

from bot.core import Core
from bot.logs import configure_logging
from bot.quotas import Pricing, QuotaRefusal
from bot.services import Services
from bot.settings import load_settings
from bot.states import CostSource

GUILD = 1
PRICING = Pricing(prompt=Decimal("0.000001"), completion=Decimal("0.000002"))


async def main(first_user: int, count: int) -> None:
    configure_logging(level="WARNING", stream=sys.stderr)
    services = await Services.start(load_settings())
    try:
        quotas = Core.build(services).usage.quotas
        rng = random.Random(first_user)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        async def one(user: int) -> str | None:
            held = await quotas.reserve(guild_id=GUILD, user_id=user, model="m/x", pricing=PRICING,
                                        prompt_tokens=rng.randint(500, 3000), images=0, max_tokens=2000)
            if isinstance(held, QuotaRefusal):
                return None
            await asyncio.sleep(rng.random() / 50)
            actual = held.amount * Decimal(rng.randint(50, 100)) / 100
            await quotas.settle(held.id, GUILD, actual, source=CostSource.USAGE, model="m/x", fallback=held.amount)
            return str(actual)

        results = await asyncio.gather(*(one(u) for u in range(first_user, first_user + count)))
        print("result", json.dumps({"settled": [r for r in results if r is not None],
                          "refused": sum(r is None for r in results)}), flush=True)
    finally:
        await services.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
