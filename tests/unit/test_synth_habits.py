"""The habit randomizer: worlds drawn around a profile, with habits the profiles hold fixed."""

from __future__ import annotations

import pandas as pd
import pytest

from cashmatch.synth import SynthConfig, generate
from cashmatch.synth.counterparties import World
from cashmatch.synth.profiles import PROFILE_PARAMETERS

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def drawn():
    return generate(SynthConfig(months=5, scale=0.6, habits=2))


def _sizes(data) -> pd.Series:
    # invoices only: a credit note comes along with its invoice, beyond the cap
    paid = data.matches[data.matches["amount"] > 0]
    return paid.groupby("transfer_id").size()


def test_no_habits_draws_nothing():
    world = World(SynthConfig(months=2, scale=0.1))
    assert world.profile is PROFILE_PARAMETERS["default"]
    assert all(p.max_collective == 0 and p.title_max == 0 for p in world.parties)
    assert all(p.p_own_doc == 0 and p.fee_scale == 1.0 for p in world.parties)


def test_a_drawn_world_differs_from_its_profile_and_from_another_draw():
    one, two = (
        World(SynthConfig(months=2, scale=0.1, habits=1)),
        World(SynthConfig(months=2, scale=0.1, habits=2)),
    )
    base = PROFILE_PARAMETERS["default"]
    assert one.profile != base and one.profile != two.profile
    assert {p.max_collective for p in one.parties} != {p.max_collective for p in two.parties}


def test_same_habit_seed_gives_identical_frames():
    a = generate(SynthConfig(months=2, scale=0.2, habits=5))
    b = generate(SynthConfig(months=2, scale=0.2, habits=5))
    pd.testing.assert_frame_equal(a.transfers, b.transfers)
    pd.testing.assert_frame_equal(a.matches, b.matches)


def test_drawn_worlds_have_collectives_beyond_the_profiles_cap(drawn):
    sizes = _sizes(drawn)
    assert sizes.max() > 12  # the profiles never batch more than 12 invoices
    assert sizes.max() <= 30


def test_own_document_titles_name_none_of_our_invoices(drawn):
    notes = drawn.truth_notes
    own = set(notes.loc[notes["pattern"] == "own_document", "transfer_id"])
    assert own
    titles = drawn.transfers.set_index("transfer_id").loc[sorted(own), "title"]
    numbers = set(drawn.invoices["invoice_number"])
    assert titles.str.contains("DOK|dok|ZBIORCZA").all()
    assert not any(n in t for t in titles for n in numbers)


def test_short_title_limits_cut_titles(drawn):
    # 35-character forms exist in a drawn world; titles never exceed the longest form (SEPA)
    lengths = drawn.transfers["title"].dropna().str.len()
    assert (lengths <= 35).mean() > (lengths > 140).mean()
    assert lengths.max() <= 390


def test_bad_habit_seed_is_refused():
    with pytest.raises(ValueError, match="habits"):
        SynthConfig(habits=-1)
