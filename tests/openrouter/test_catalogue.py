"""Unit tests for bot.openrouter.catalogue.ModelCatalogue: TTL cache with background refresh."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from bot.openrouter.catalogue import ModelCatalogue
from bot.openrouter.errors import ProviderUnavailable
from bot.openrouter.types import ModelInfo
from tests.conftest import fixture_json

TTL = 60.0


def sample_models() -> list[ModelInfo]:
    return [ModelInfo.from_wire(raw) for raw in fixture_json("models-sample.json")["data"]]


def model(model_id: str, name: str | None = None, *, vision: bool = False) -> ModelInfo:
    modalities = ["text", "image"] if vision else ["text"]
    return ModelInfo.from_wire({"id": model_id, "name": name or model_id, "context_length": 8192,
                                "architecture": {"input_modalities": modalities}})


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """The catalogue's injected fetch: hands out queued results, optionally held until `gate` is set."""

    def __init__(self, *results: list[ModelInfo] | Exception) -> None:
        self.results = list(results)
        self.calls = 0
        self.running = 0
        self.most_running = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> list[ModelInfo]:
        self.calls += 1
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
            if isinstance(result, Exception):
                raise result
            return result
        finally:
            self.running -= 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def loaded_catalogue(clock: FakeClock, *later: list[ModelInfo] | Exception) -> tuple[ModelCatalogue, Fetcher]:
    fetcher = Fetcher(sample_models(), *later)
    catalogue = ModelCatalogue(fetcher, ttl=TTL, clock=clock)
    await catalogue.ensure_loaded()
    return catalogue, fetcher


def is_stale(catalogue: ModelCatalogue) -> bool:
    return catalogue.stale  # a call, so that type checkers do not narrow the property between time steps


def is_loaded(catalogue: ModelCatalogue) -> bool:
    return catalogue.loaded


async def finish_refresh(catalogue: ModelCatalogue) -> None:
    task = catalogue._refreshing
    assert task is not None, "no background refresh was started"
    await asyncio.wait_for(task, timeout=1)


# -- loading and the TTL --------------------------------------------------------------------------------


async def test_first_ensure_loaded_fetches(clock: FakeClock) -> None:
    fetcher = Fetcher(sample_models())
    catalogue = ModelCatalogue(fetcher, ttl=TTL, clock=clock)
    assert not is_loaded(catalogue)
    assert is_stale(catalogue)
    assert catalogue.get("openai/gpt-4o") is None  # nothing yet, and get() does not fetch
    assert catalogue.all() == []
    assert fetcher.calls == 0
    await catalogue.ensure_loaded()
    assert fetcher.calls == 1
    assert is_loaded(catalogue)
    assert not is_stale(catalogue)
    gpt4o = catalogue.get("openai/gpt-4o")
    assert gpt4o is not None
    assert gpt4o.context_length == 128000
    assert [m.id for m in catalogue.all()] == [
        "anthropic/claude-sonnet-4", "openai/gpt-3.5-turbo", "openai/gpt-4.1-mini", "openai/gpt-4o"]
    assert catalogue.get("nobody/nothing") is None


async def test_failing_first_load_raises_and_stays_unloaded(clock: FakeClock) -> None:
    fetcher = Fetcher(ProviderUnavailable("down"), sample_models())
    catalogue = ModelCatalogue(fetcher, ttl=TTL, clock=clock)
    with pytest.raises(ProviderUnavailable):
        await catalogue.ensure_loaded()
    assert not is_loaded(catalogue)
    assert catalogue._refreshing is None
    await catalogue.ensure_loaded()  # the next use tries again
    assert is_loaded(catalogue)
    assert fetcher.calls == 2


async def test_no_refetch_within_the_ttl(clock: FakeClock) -> None:
    catalogue, fetcher = await loaded_catalogue(clock)
    clock.now += TTL - 0.001
    await catalogue.ensure_loaded()
    catalogue.get("openai/gpt-4o")
    catalogue.all()
    catalogue.search("gpt")
    assert fetcher.calls == 1
    assert catalogue._refreshing is None
    assert not is_stale(catalogue)


async def test_stale_get_returns_old_data_at_once_and_refreshes_in_the_background(clock: FakeClock) -> None:
    newer = [model("openai/gpt-5", "OpenAI: GPT-5"), *sample_models()[:2]]
    catalogue, fetcher = await loaded_catalogue(clock, newer)
    fetcher.gate = asyncio.Event()  # the refresh will hang until we let it go
    clock.now += TTL
    assert is_stale(catalogue)
    old = catalogue.get("openai/gpt-4o")
    assert old is not None  # the old data, without waiting for the network
    assert catalogue.get("openai/gpt-5") is None
    await asyncio.sleep(0)
    assert fetcher.calls == 2  # the refresh has started...
    assert len(catalogue.all()) == 4  # ...and readers still see the old catalogue meanwhile
    fetcher.gate.set()
    await finish_refresh(catalogue)
    assert catalogue.get("openai/gpt-5") is not None
    assert catalogue.get("openai/gpt-4o") is None  # gone from the new catalogue
    assert [m.id for m in catalogue.all()] == ["anthropic/claude-sonnet-4", "openai/gpt-4.1-mini", "openai/gpt-5"]
    assert not is_stale(catalogue)
    catalogue.get("openai/gpt-5")
    assert fetcher.calls == 2  # fresh again: no further fetch


async def test_stale_all_also_refreshes(clock: FakeClock) -> None:
    catalogue, fetcher = await loaded_catalogue(clock, [model("x/only")])
    clock.now += TTL * 2
    assert len(catalogue.all()) == 4
    await finish_refresh(catalogue)
    assert [m.id for m in catalogue.all()] == ["x/only"]
    assert fetcher.calls == 2


async def test_stale_ensure_loaded_does_not_wait_for_the_network(clock: FakeClock) -> None:
    catalogue, fetcher = await loaded_catalogue(clock, [model("x/only")])
    fetcher.gate = asyncio.Event()  # never set until the end: awaiting the fetch would time out
    clock.now += TTL
    await asyncio.wait_for(catalogue.ensure_loaded(), timeout=0.5)
    assert catalogue.get("openai/gpt-4o") is not None
    fetcher.gate.set()
    await finish_refresh(catalogue)
    assert catalogue.get("x/only") is not None


async def test_refresh_marks_the_catalogue_fresh_from_when_it_loaded(clock: FakeClock) -> None:
    catalogue, fetcher = await loaded_catalogue(clock)
    clock.now += TTL
    catalogue.get("openai/gpt-4o")
    await finish_refresh(catalogue)
    clock.now += TTL - 1
    catalogue.get("openai/gpt-4o")
    assert fetcher.calls == 2
    clock.now += 1
    catalogue.get("openai/gpt-4o")
    await finish_refresh(catalogue)
    assert fetcher.calls == 3


# -- failures -------------------------------------------------------------------------------------------


async def test_failing_refresh_keeps_the_previous_catalogue(clock: FakeClock) -> None:
    catalogue, fetcher = await loaded_catalogue(clock, ProviderUnavailable("down"), [model("x/new")])
    before = catalogue.all()
    clock.now += TTL
    catalogue.get("openai/gpt-4o")
    await finish_refresh(catalogue)  # the task swallows the error
    assert catalogue._refreshing is not None and catalogue._refreshing.exception() is None
    assert catalogue.all() == before
    assert catalogue.get("openai/gpt-4o") is not None
    assert is_loaded(catalogue)
    assert is_stale(catalogue)  # still stale, so a later use tries again...
    await catalogue.ensure_loaded()
    await finish_refresh(catalogue)
    assert fetcher.calls == 2  # ...but not within a minute of the failure (no fetch per keystroke)
    clock.now += ModelCatalogue.RETRY_AFTER_FAILURE
    await catalogue.ensure_loaded()
    await finish_refresh(catalogue)
    assert fetcher.calls == 3
    assert [m.id for m in catalogue.all()] == ["x/new"]


async def test_network_error_during_refresh_keeps_the_previous_catalogue(clock: FakeClock) -> None:
    catalogue, _ = await loaded_catalogue(clock, ConnectionResetError("reset by peer"))
    clock.now += TTL
    catalogue.get("openai/gpt-4o")
    await finish_refresh(catalogue)
    assert len(catalogue.all()) == 4


# -- one refresh at a time ------------------------------------------------------------------------------


async def test_only_one_background_refresh_runs_at_a_time(clock: FakeClock) -> None:
    catalogue, fetcher = await loaded_catalogue(clock, [model("x/new")])
    fetcher.gate = asyncio.Event()
    clock.now += TTL
    catalogue.get("a")
    task = catalogue._refreshing
    for _ in range(10):
        catalogue.get("openai/gpt-4o")
        catalogue.all()
        catalogue.search("gpt")
        await catalogue.ensure_loaded()
        await asyncio.sleep(0)
    assert catalogue._refreshing is task
    assert fetcher.calls == 2
    fetcher.gate.set()
    await finish_refresh(catalogue)
    assert fetcher.most_running == 1
    assert fetcher.calls == 2


async def test_explicit_refresh_waits_for_a_running_one(clock: FakeClock) -> None:
    catalogue, fetcher = await loaded_catalogue(clock, [model("x/one")], [model("x/two")])
    fetcher.gate = asyncio.Event()
    clock.now += TTL
    catalogue.get("a")
    await asyncio.sleep(0)
    explicit = asyncio.create_task(catalogue.refresh())
    await asyncio.sleep(0)
    assert fetcher.running == 1  # the explicit refresh waits for the background one
    fetcher.gate.set()
    await finish_refresh(catalogue)
    await asyncio.wait_for(explicit, timeout=1)
    assert fetcher.most_running == 1
    assert fetcher.calls == 3
    assert [m.id for m in catalogue.all()] == ["x/two"]


# -- search and vision_models ---------------------------------------------------------------------------


async def test_search_empty_query_lists_everything_by_id(clock: FakeClock) -> None:
    catalogue, _ = await loaded_catalogue(clock)
    assert [m.id for m in catalogue.search()] == [m.id for m in catalogue.all()]
    assert [m.id for m in catalogue.search("   ")] == [m.id for m in catalogue.all()]
    assert len(catalogue.search(limit=2)) == 2


async def test_search_matches_every_word_in_id_or_name_case_insensitively(clock: FakeClock) -> None:
    catalogue, _ = await loaded_catalogue(clock)
    assert [m.id for m in catalogue.search("GPT")] == [
        "openai/gpt-3.5-turbo", "openai/gpt-4.1-mini", "openai/gpt-4o"]
    assert [m.id for m in catalogue.search("gpt mini")] == ["openai/gpt-4.1-mini"]
    assert [m.id for m in catalogue.search("Sonnet")] == ["anthropic/claude-sonnet-4"]
    assert [m.id for m in catalogue.search("anthropic: claude")] == ["anthropic/claude-sonnet-4"]  # by name
    assert catalogue.search("llama") == []


async def test_search_puts_prefix_matches_first(clock: FakeClock) -> None:
    catalogue, _ = await loaded_catalogue(clock)
    pool = [*catalogue.all(), model("gpt-lab/tiny", "GPT Lab: Tiny"), model("z/gpt-zero", "Z: GPT Zero")]
    found = [m.id for m in catalogue.search("gpt", among=pool)]
    assert found[0] == "gpt-lab/tiny"  # starts with the query
    assert found[1:] == ["z/gpt-zero", "openai/gpt-3.5-turbo", "openai/gpt-4.1-mini", "openai/gpt-4o"]  # earlier hit


async def test_search_prefers_prefix_then_earlier_match(clock: FakeClock) -> None:
    catalogue, _ = await loaded_catalogue(clock)
    found = [m.id for m in catalogue.search("openai/gpt-4")]
    assert found == ["openai/gpt-4.1-mini", "openai/gpt-4o"]
    found = [m.id for m in catalogue.search("o")]
    assert found[:3] == ["openai/gpt-3.5-turbo", "openai/gpt-4.1-mini", "openai/gpt-4o"]
    assert found[3:] == ["anthropic/claude-sonnet-4"]


async def test_search_among_only_searches_those(clock: FakeClock) -> None:
    catalogue, _ = await loaded_catalogue(clock)
    allowed = [m for m in catalogue.all() if m.id.startswith("openai/")]
    assert [m.id for m in catalogue.search("", among=allowed)] == [
        "openai/gpt-3.5-turbo", "openai/gpt-4.1-mini", "openai/gpt-4o"]
    assert catalogue.search("claude", among=allowed) == []
    assert catalogue.search("gpt", among=[]) == []
    assert [m.id for m in catalogue.search("4o", among=iter(allowed))] == ["openai/gpt-4o"]  # any iterable


async def test_search_among_works_before_loading(clock: FakeClock) -> None:
    fetcher = Fetcher(sample_models())
    catalogue = ModelCatalogue(fetcher, ttl=TTL, clock=clock)
    assert [m.id for m in catalogue.search("mini", among=sample_models())] == ["openai/gpt-4.1-mini"]
    assert fetcher.calls == 0


async def test_search_respects_the_limit(clock: FakeClock) -> None:
    catalogue, _ = await loaded_catalogue(clock)
    pool = [model(f"vendor/model-{i:02d}") for i in range(40)]
    found = catalogue.search("model", among=pool)
    assert len(found) == 25
    assert found[0].id == "vendor/model-00"
    assert len(catalogue.search("model", among=pool, limit=5)) == 5


async def test_search_ranks_id_matches_above_name_only_matches(clock: FakeClock) -> None:
    catalogue, _ = await loaded_catalogue(clock)
    pool = [model("acme/small-model", "Acme: Mini Model"), *catalogue.all()]
    assert [m.id for m in catalogue.search("mini", among=pool)] == ["openai/gpt-4.1-mini", "acme/small-model"]


async def test_vision_models(clock: FakeClock) -> None:
    catalogue, _ = await loaded_catalogue(clock)
    assert [m.id for m in catalogue.vision_models()] == [
        "anthropic/claude-sonnet-4", "openai/gpt-4.1-mini", "openai/gpt-4o"]
    assert [m.id for m in catalogue.vision_models(limit=1)] == ["anthropic/claude-sonnet-4"]
    among = ["openai/gpt-4o", "openai/gpt-3.5-turbo", "nobody/unknown", "openai/gpt-4.1-mini"]
    assert [m.id for m in catalogue.vision_models(among=among)] == ["openai/gpt-4o", "openai/gpt-4.1-mini"]
    assert catalogue.vision_models(among=["openai/gpt-3.5-turbo"]) == []
    assert catalogue.vision_models(among=[]) == []


async def test_vision_follows_input_modalities(clock: FakeClock) -> None:
    blind = model("x/blind")
    seeing = dataclasses.replace(blind, id="x/seeing", input_modalities=("text", "image"))
    catalogue = ModelCatalogue(Fetcher([blind, seeing]), ttl=TTL, clock=clock)
    await catalogue.ensure_loaded()
    assert [m.id for m in catalogue.vision_models()] == ["x/seeing"]


# -- close ----------------------------------------------------------------------------------------------


async def test_close_cancels_a_running_refresh(clock: FakeClock) -> None:
    catalogue, fetcher = await loaded_catalogue(clock, [model("x/never")])
    fetcher.gate = asyncio.Event()  # never set: the refresh would hang forever
    clock.now += TTL
    catalogue.get("a")
    await asyncio.sleep(0)
    task = catalogue._refreshing
    assert task is not None and not task.done()
    assert fetcher.running == 1
    await asyncio.wait_for(catalogue.close(), timeout=1)
    assert task.cancelled()
    assert fetcher.running == 0
    assert catalogue.get("x/never") is None
    assert len(catalogue.all()) == 4  # the old catalogue is untouched


async def test_close_without_a_refresh_is_harmless(clock: FakeClock) -> None:
    catalogue, _ = await loaded_catalogue(clock)
    await catalogue.close()
    await catalogue.close()
    clock.now += TTL
    catalogue.get("a")
    await finish_refresh(catalogue)
    await catalogue.close()  # a finished refresh is left alone
    assert catalogue._refreshing is not None and not catalogue._refreshing.cancelled()


async def test_concurrent_first_loads_fetch_once(clock: FakeClock) -> None:
    fetcher = Fetcher([model("a/one")])
    fetcher.gate = asyncio.Event()
    catalogue = ModelCatalogue(fetcher, ttl=TTL, clock=clock)
    waiting = [asyncio.create_task(catalogue.ensure_loaded()) for _ in range(5)]
    await asyncio.sleep(0)
    fetcher.gate.set()
    await asyncio.gather(*waiting)
    assert fetcher.calls == 1 and [m.id for m in catalogue.all()] == ["a/one"]
