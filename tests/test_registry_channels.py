"""Channels: promote, canary, shadow, rollback, generations, history and announcements."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from gateway.redis_client import connect_listener
from gateway.registry_services import RegistryServices
from releases.errors import Conflict, InvalidRequest, NotFound, StaleGeneration
from releases.models import Actor, Release
from tests.conftest import OPERATOR
from tests.factories import spec

CH = "support-bot-prod"


async def three_releases(services: RegistryServices) -> list[Release]:
    return [
        (await services.registry.register(spec(params={"seed": seed}), OPERATOR))[0]
        for seed in (1, 2, 3)
    ]


async def test_promote_creates_the_channel_at_generation_one(services: RegistryServices) -> None:
    [r1, *_] = await three_releases(services)
    channel = await services.registry.promote(CH, r1.id, OPERATOR, "launch", create=True)
    assert (channel.stable, channel.generation, channel.canary) == (r1.id, 1, None)
    assert channel.updated_by == "ops-alice"
    assert await services.registry.channel(CH) == channel


async def test_promote_to_an_unregistered_release_changes_nothing(
    services: RegistryServices,
) -> None:
    [r1, *_] = await three_releases(services)
    await services.registry.promote(CH, r1.id, OPERATOR, create=True)
    with pytest.raises(NotFound, match="support-bot-v9-abcdef"):
        await services.registry.promote(CH, "support-bot-v9-abcdef", OPERATOR)
    assert (await services.registry.channel(CH)).generation == 1
    assert len(await services.registry.history(CH)) == 1


async def test_rollback_restores_previous_stable_and_clears_canary_in_one_step(
    services: RegistryServices,
) -> None:
    r1, r2, r3 = await three_releases(services)
    await services.registry.promote(CH, r1.id, OPERATOR, create=True)
    await services.registry.promote(CH, r2.id, OPERATOR)
    await services.registry.set_canary(CH, r3.id, 5, OPERATOR)
    rolled = await services.registry.rollback(CH, OPERATOR, reason="error rate up")
    assert (rolled.stable, rolled.canary, rolled.generation) == (r1.id, None, 4)
    entry = (await services.registry.history(CH))[0]
    assert (entry.action, entry.actor, entry.role, entry.reason) == (
        "channel.rollback",
        "ops-alice",
        "operator",
        "error rate up",
    )
    assert entry.before is not None and entry.after is not None
    assert (entry.before["stable"], entry.before["canary"]["release"]) == (r2.id, r3.id)
    assert (entry.after["stable"], entry.after["canary"]) == (r1.id, None)


async def test_a_second_rollback_goes_further_back(services: RegistryServices) -> None:
    r1, r2, r3 = await three_releases(services)
    for release in (r1, r2, r3):
        await services.registry.promote(CH, release.id, OPERATOR, create=True)
    assert (await services.registry.rollback(CH, OPERATOR)).stable == r2.id
    assert (await services.registry.rollback(CH, OPERATOR)).stable == r1.id
    with pytest.raises(Conflict, match="no previous stable"):
        await services.registry.rollback(CH, OPERATOR)


async def test_rollback_to_a_named_release(services: RegistryServices) -> None:
    r1, r2, r3 = await three_releases(services)
    for release in (r1, r2, r3):
        await services.registry.promote(CH, release.id, OPERATOR, create=True)
    channel = await services.registry.rollback(CH, OPERATOR, to=r1.id, reason="back to known good")
    assert channel.stable == r1.id
    assert channel.previous_stables == []  # r2 was above r1 on the stack: gone with it
    with pytest.raises(Conflict, match="already the stable"):
        await services.registry.rollback(CH, OPERATOR, to=r1.id)


async def test_history_is_newest_first_with_generations(services: RegistryServices) -> None:
    r1, r2, r3 = await three_releases(services)
    await services.registry.promote(CH, r1.id, OPERATOR, "launch", create=True)
    await services.registry.set_shadow(CH, r3.id, 12.5, OPERATOR, "try r3")
    await services.registry.promote(CH, r2.id, OPERATOR, "r2 is better")
    history = await services.registry.history(CH)
    assert [(e.generation, e.action, e.reason) for e in history] == [
        (3, "channel.promote", "r2 is better"),
        (2, "channel.shadow.set", "try r3"),
        (1, "channel.promote", "launch"),
    ]
    assert history[-1].before is None
    assert history[0].after is not None and history[0].after["shadow"] == {
        "release": r3.id,
        "sample": 12.5,
    }


async def test_concurrent_promotes_with_one_if_match_let_exactly_one_win(
    services: RegistryServices,
) -> None:
    r1, r2, r3 = await three_releases(services)
    await services.registry.promote(CH, r1.id, OPERATOR, create=True)
    outcomes = await asyncio.gather(
        services.registry.promote(CH, r2.id, OPERATOR, expected_generation=1),
        services.registry.promote(CH, r3.id, Actor("ops-bob", "operator"), expected_generation=1),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["Channel", "StaleGeneration"]
    history = await services.registry.history(CH)
    assert [e.generation for e in history] == [2, 1]


async def test_stale_if_match_is_refused_and_changes_nothing(services: RegistryServices) -> None:
    r1, r2, _ = await three_releases(services)
    await services.registry.promote(CH, r1.id, OPERATOR, create=True)
    with pytest.raises(StaleGeneration, match="generation 1, not 7"):
        await services.registry.promote(CH, r2.id, OPERATOR, expected_generation=7)
    assert (await services.registry.channel(CH)).stable == r1.id


async def test_canary_weight_takes_at_most_two_decimals(services: RegistryServices) -> None:
    r1, r2, _ = await three_releases(services)
    await services.registry.promote(CH, r1.id, OPERATOR, create=True)
    for bad in (5.125, 101, -1, "five", "5", True, None):
        with pytest.raises(InvalidRequest):
            await services.registry.set_canary(CH, r2.id, bad, OPERATOR)
    channel = await services.registry.set_canary(CH, r2.id, 12.25, OPERATOR)
    assert channel.canary is not None and channel.canary.weight == 12.25


async def test_promote_clears_the_canary_and_clearing_twice_changes_nothing(
    services: RegistryServices,
) -> None:
    r1, r2, _ = await three_releases(services)
    await services.registry.promote(CH, r1.id, OPERATOR, create=True)
    await services.registry.set_canary(CH, r2.id, 5, OPERATOR)
    promoted = await services.registry.promote(CH, r2.id, OPERATOR, "canary looks good")
    assert (promoted.stable, promoted.canary, promoted.previous_stables) == (r2.id, None, [r1.id])
    unchanged = await services.registry.clear_canary(CH, OPERATOR)
    assert unchanged.generation == promoted.generation


async def test_canary_on_a_missing_channel_is_not_found(services: RegistryServices) -> None:
    r1, *_ = await three_releases(services)
    with pytest.raises(NotFound, match="does not exist"):
        await services.registry.set_canary("nope", r1.id, 5, OPERATOR)


async def test_every_change_bumps_the_counter_and_is_announced(
    services: RegistryServices, redis: Redis
) -> None:
    keys = services.registry.keys
    # Subscribe the way the gateway does: on Cluster through a client of one node.
    listener = connect_listener(services.settings)
    pubsub = (listener or redis).pubsub()
    await pubsub.subscribe(keys.changes_channel)
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
    r1, *_ = await three_releases(services)
    await services.registry.promote(CH, r1.id, OPERATOR, create=True)
    messages = [(await pubsub.get_message(timeout=5))["data"].decode() for _ in range(4)]
    assert messages[-1] == f"4 channel {CH}"
    assert messages[0] == f"1 release {r1.id}"
    assert int(await redis.get(keys.change_counter)) == 4
    await pubsub.aclose()
    if listener is not None:
        await listener.aclose()


@pytest.mark.parametrize("text", ["1_0", "\u0661\u0660", "10", " 10", "-0"])
async def test_a_weight_or_sample_given_as_text_is_refused(
    services: RegistryServices, text: str
) -> None:
    """Python parses "1_0" and Arabic-Indic digits as 10: only JSON numbers are percentages."""
    r1, r2, _ = await three_releases(services)
    await services.registry.promote(CH, r1.id, OPERATOR, create=True)
    with pytest.raises(InvalidRequest, match="JSON number") as weight:
        await services.registry.set_canary(CH, r2.id, text, OPERATOR)
    with pytest.raises(InvalidRequest, match="JSON number") as sample:
        await services.registry.set_shadow(CH, r2.id, text, OPERATOR)
    assert (weight.value.field, sample.value.field) == ("weight", "sample")
    assert (await services.registry.channel(CH)).generation == 1


async def test_a_negative_zero_weight_is_stored_as_zero(services: RegistryServices) -> None:
    r1, r2, _ = await three_releases(services)
    await services.registry.promote(CH, r1.id, OPERATOR, create=True)
    channel = await services.registry.set_canary(CH, r2.id, -0.0, OPERATOR)
    assert channel.canary is not None and str(channel.canary.weight) == "0.0"
    shadowed = await services.registry.set_shadow(CH, r2.id, -0.0, OPERATOR)
    assert shadowed.shadow is not None and str(shadowed.shadow.sample) == "0.0"


@pytest.mark.parametrize(
    "name", ["Caps", "with space", "\u00fc-chan", "x" * 300, "a:b", "*", "-lead", "release:x"]
)
async def test_a_channel_is_created_only_under_a_release_like_name(
    services: RegistryServices, name: str
) -> None:
    r1, *_ = await three_releases(services)
    with pytest.raises(InvalidRequest) as refused:
        await services.registry.promote(name, r1.id, OPERATOR, create=True)
    assert refused.value.field == "channel"
    assert await services.registry.channels() == []


async def test_promote_without_create_refuses_an_unknown_channel_naming_close_ones(
    services: RegistryServices,
) -> None:
    r1, *_ = await three_releases(services)
    await services.registry.promote("support-bot-prod", r1.id, OPERATOR, create=True)
    with pytest.raises(NotFound, match="did you mean 'support-bot-prod'") as refused:
        await services.registry.promote("suport-bot-prod", r1.id, OPERATOR)
    assert "--create" in refused.value.message
    assert [c.name for c in await services.registry.channels()] == ["support-bot-prod"]


async def test_rollback_removes_canary_without_previous_stable(services: RegistryServices) -> None:
    r1, r2, _ = await three_releases(services)
    await services.registry.promote(CH, r1.id, OPERATOR, create=True)
    await services.registry.set_canary(CH, r2.id, 5, OPERATOR)
    rolled = await services.registry.rollback(CH, OPERATOR, reason="canary is bad")
    assert (rolled.stable, rolled.canary, rolled.generation) == (r1.id, None, 3)
    assert (await services.registry.history(CH))[0].action == "channel.rollback"
    with pytest.raises(Conflict, match="nothing to roll back"):
        await services.registry.rollback(CH, OPERATOR)


async def test_promoting_the_shadow_release_clears_the_shadow_and_says_so(
    services: RegistryServices,
) -> None:
    r1, r2, r3 = await three_releases(services)
    await services.registry.promote(CH, r1.id, OPERATOR, create=True)
    await services.registry.set_shadow(CH, r2.id, 10, OPERATOR)
    await services.registry.set_canary(CH, r3.id, 5, OPERATOR)
    channel, cleared = await services.registry.promotion(CH, r2.id, OPERATOR)
    assert (channel.stable, channel.shadow, channel.canary) == (r2.id, None, None)
    assert cleared == ["canary", "shadow"]
    entry = (await services.registry.history(CH))[0]
    assert entry.after is not None and entry.after["cleared"] == ["canary", "shadow"]
    # Another release promoted leaves a shadow of a third in place.
    await services.registry.set_shadow(CH, r3.id, 10, OPERATOR)
    channel, cleared = await services.registry.promotion(CH, r1.id, OPERATOR)
    assert channel.shadow is not None and channel.shadow.release == r3.id and cleared == []


async def test_a_deleted_channel_is_gone_keeps_its_history_and_continues_its_generations(
    services: RegistryServices,
) -> None:
    r1, r2, _ = await three_releases(services)
    await services.registry.promote(CH, r1.id, OPERATOR, create=True)
    await services.registry.promote(CH, r2.id, OPERATOR)
    with pytest.raises(StaleGeneration):
        await services.registry.delete_channel(CH, OPERATOR, 1)
    deleted = await services.registry.delete_channel(CH, OPERATOR, 2, "typo")
    assert deleted.stable == r2.id
    assert await services.registry.channels() == []
    with pytest.raises(NotFound):
        await services.registry.channel(CH)
    history = await services.registry.history(CH)
    assert [(e.action, e.generation, e.reason) for e in history][0] == ("channel.delete", 3, "typo")
    with pytest.raises(NotFound):
        await services.registry.delete_channel(CH, OPERATOR, 3)
    again = await services.registry.promote(CH, r1.id, OPERATOR, create=True)
    assert (again.generation, again.previous_stables) == (4, [])
    assert (await services.registry.verify(services.verifier)).ok
