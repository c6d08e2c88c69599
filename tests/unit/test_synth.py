"""The finance-system simulator: contract shape, bookkeeping invariants, and its messiness."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from cashmatch.domain import contract
from cashmatch.synth import (
    PATTERNS,
    SynthConfig,
    SyntheticData,
    generate,
    pattern_rates,
    write_warehouse,
)
from cashmatch.synth.patterns import HABIT_PATTERNS

pytestmark = pytest.mark.unit

TABLES = {
    "invoices": contract.INVOICES,
    "transfers": contract.TRANSFERS,
    "matches": contract.MATCHES,
}
KINDS = ("single", "collective", "partial", "no_invoice")
REF_LABELS = tuple(p for p in PATTERNS if p.startswith("ref_"))


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(SynthConfig())  # 8 months at scale 1, the default profile


@pytest.fixture(scope="module")
def messy() -> SyntheticData:
    return generate(SynthConfig(profile="messy"))


def small(**overrides) -> SyntheticData:
    return generate(SynthConfig(**({"months": 3, "scale": 0.2} | overrides)))


def labelled(data: SyntheticData, pattern: str) -> pd.Index:
    notes = data.truth_notes
    assert notes is not None
    return pd.Index(notes.loc[notes["pattern"] == pattern, "transfer_id"])


def joined(data: SyntheticData) -> pd.DataFrame:
    """Match rows with their transfer's and invoice's columns (suffixes _t and _i)."""
    transfers = data.transfers.add_suffix("_t").rename(columns={"transfer_id_t": "transfer_id"})
    invoices = data.invoices.add_suffix("_i").rename(columns={"invoice_id_i": "invoice_id"})
    return data.matches.merge(transfers, on="transfer_id").merge(invoices, on="invoice_id")


# --- reproducibility -----------------------------------------------------------------------


def test_same_config_gives_identical_frames():
    a, b = small(), small()
    for name in (*TABLES, "truth_notes"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


def test_another_seed_gives_other_data():
    a, b = small(), small(seed=8)
    assert not a.transfers.equals(b.transfers)
    assert not a.invoices.equals(b.invoices)


def test_invalid_configs_are_refused():
    for bad in (
        {"months": 0},
        {"scale": 0},
        {"profile": "chaotic"},
        {"start": "2025-13"},
        {"shift_from": "2024-12"},
        {"structured": 1.5},
    ):
        with pytest.raises(ValueError):
            generate(SynthConfig(**bad))


# --- the contract ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TABLES))
def test_columns_and_dtypes_follow_the_contract(data, name):
    table, frame = TABLES[name], getattr(data, name)
    assert list(frame.columns) == table.column_names
    for column in table.columns:
        values = frame[column.name]
        if not column.nullable:
            assert values.notna().all(), column.name
        if column.kind == "string":
            assert pd.api.types.is_string_dtype(values), column.name
        elif column.kind == "decimal":
            assert values.dtype == np.float64
            assert np.allclose(values, values.round(2), atol=1e-9, rtol=0)
        else:
            assert values.dtype == np.dtype("datetime64[ns]"), column.name
        if column.kind == "date":
            assert (values == values.dt.normalize()).all()


def test_ids_are_unique_strings(data):
    assert data.transfers["transfer_id"].is_unique
    assert data.invoices["invoice_id"].is_unique
    assert not data.matches.duplicated(["transfer_id", "invoice_id"]).any()
    assert data.transfers["amount"].gt(0).all()
    assert set(data.transfers["direction"]) == {contract.INCOMING, contract.OUTGOING}
    assert set(data.invoices["direction"]) == {contract.RECEIVABLE, contract.PAYABLE}


def test_matches_pair_existing_rows_of_matching_direction_and_currency(data):
    rows = joined(data)
    assert len(rows) == len(data.matches)  # every match found its transfer and invoice
    pairs = rows["direction_t"].map(contract.INVOICE_DIRECTION_FOR)
    assert (pairs == rows["direction_i"]).all()
    assert (rows["currency_t"] == rows["currency_i"]).all()


def test_each_transfer_is_fully_allocated(data):
    allocated = data.matches.groupby("transfer_id")["amount"].sum()
    amounts = data.transfers.set_index("transfer_id")["amount"].reindex(allocated.index)
    assert (allocated - amounts).abs().max() < 0.01


def test_no_invoice_is_paid_more_than_its_amount(data):
    paid = data.matches.groupby("invoice_id")["amount"].sum()
    amounts = data.invoices.set_index("invoice_id")["amount"]
    positive = amounts[amounts > 0]
    assert (paid.reindex(positive.index).fillna(0) <= positive + 0.005).all()
    credit_notes = amounts[amounts < 0]  # a netted credit note is matched with its amount
    netted = paid.reindex(credit_notes.index).dropna()
    assert len(netted) and np.allclose(netted, credit_notes[netted.index])


def test_no_transfer_pays_an_invoice_issued_later(data):
    rows = joined(data)
    assert (rows["booking_date_t"] >= rows["issue_date_i"]).all()
    delay = rows["matched_at"] - rows["booking_date_t"]
    assert delay.between(pd.Timedelta(hours=8), pd.Timedelta(days=10)).all()


def test_invoices_are_issued_inside_the_horizon(data):
    issue = data.invoices["issue_date"]
    assert issue.min() >= pd.Timestamp("2025-01-01")
    assert issue.max() < pd.Timestamp("2025-09-01")
    assert data.transfers["booking_date"].max() < pd.Timestamp("2025-09-01")


def test_monthly_volume_at_scale_one(data, messy):
    for d in (data, messy):
        per_month = d.transfers.groupby(d.transfers["booking_date"].dt.to_period("M")).size()
        assert len(per_month) == 8
        # nothing is issued before the first month, so it has fewer payments
        assert 300 <= per_month.iloc[0] < per_month.iloc[1:].min()
        assert per_month.iloc[1:].between(1000, 2000).all(), per_month.tolist()


def test_no_bookings_on_weekends_or_holidays(data):
    booked = data.transfers["booking_date"]
    assert booked.dt.day_of_week.lt(5).all()
    assert not booked.isin(pd.to_datetime(["2025-05-01", "2025-05-03", "2025-04-21"])).any()


# --- the truth labels ------------------------------------------------------------------------


def test_every_pattern_occurs_at_default_scale(data, messy):
    for d in (data, messy):
        assert d.truth_notes is not None
        assert set(d.truth_notes["pattern"]) == set(PATTERNS) - HABIT_PATTERNS


def test_labels_are_consistent_with_the_matches(data):
    notes = data.truth_notes
    assert notes is not None
    assert set(notes["transfer_id"]) == set(data.transfers["transfer_id"])
    kinds = notes[notes["pattern"].isin(KINDS)]
    assert kinds["transfer_id"].is_unique and len(kinds) == len(data.transfers)
    paying = set(data.matches["transfer_id"])
    assert set(labelled(data, "no_invoice")).isdisjoint(paying)
    refs = notes[notes["pattern"].isin(REF_LABELS)]
    assert refs["transfer_id"].is_unique and set(refs["transfer_id"]) == paying
    rows = data.matches.groupby("transfer_id").size()
    assert rows[labelled(data, "collective")].ge(2).all()
    assert rows[labelled(data, "single")].eq(1).all()
    assert rows[labelled(data, "partial")].eq(1).all()


def test_partial_payments_leave_invoices_open(data):
    rows = joined(data)
    partial = rows[rows["transfer_id"].isin(labelled(data, "partial"))]
    assert (partial["amount"] < partial["amount_i"]).all()
    per_invoice = partial.groupby("invoice_id").agg(
        paid=("amount", "sum"), of=("amount_i", "first")
    )
    assert partial.groupby("invoice_id").size().max() >= 2  # paid in instalments over time
    assert (per_invoice["paid"] < per_invoice["of"] - 0.005).any()  # and some stay open


def test_fees_and_discounts_take_small_amounts_off(data):
    rows = joined(data)
    fee, discount = labelled(data, "bank_fee"), labelled(data, "early_discount")
    with_fee = rows[rows["transfer_id"].isin(fee.difference(discount))]
    per_transfer = with_fee.groupby("transfer_id")[["amount_i", "amount"]].sum()
    gap = per_transfer["amount_i"] - per_transfer["amount"]
    assert gap.between(4.995, 25.005).all()
    foreign = data.transfers.set_index("transfer_id").loc[fee, "currency"].ne("PLN")
    assert foreign.mean() > 0.5  # mostly taken off foreign payments
    with_discount = rows[rows["transfer_id"].isin(discount.difference(fee))]
    with_discount = with_discount[with_discount["amount_i"] > 0]
    share = 1 - with_discount["amount"] / with_discount["amount_i"]
    assert share.between(0.0, 0.0301).all() and share.gt(0.0099).mean() > 0.9


def test_credit_notes_are_netted_with_their_invoice(data):
    rows = joined(data)
    netted = rows[rows["transfer_id"].isin(labelled(data, "credit_note"))]
    signs = netted.groupby("transfer_id")["amount"].agg(lambda a: (a.min() < 0, a.max() > 0))
    assert signs.map(lambda s: s == (True, True)).all()


def test_third_parties_pay_under_their_own_name(data):
    rows = joined(data)
    for pattern in ("third_party_parent", "third_party_factoring"):
        sub = rows[rows["transfer_id"].isin(labelled(data, pattern))].dropna(
            subset=["counterparty_name_t"]
        )
        same = sub["counterparty_name_t"].str.upper() == sub["counterparty_name_i"].str.upper()
        assert not same.any()
        # one payer stands behind several customers
        assert sub.groupby("counterparty_iban_t")["counterparty_id_i"].nunique().max() >= 2


def test_titles_show_the_realistic_variants(data):
    rows = joined(data)
    titles = rows["title_t"].fillna("")
    number = rows["invoice_number_i"]
    exact = [n in t for n, t in zip(number, titles, strict=True)]
    lower = [n.lower() in t and n not in t for n, t in zip(number, titles, strict=True)]
    squeezed = [
        "".join(ch for ch in n if ch.isalnum()) in t and n not in t
        for n, t in zip(number, titles, strict=True)
    ]
    assert np.mean(exact) > 0.5 and any(lower) and any(squeezed)
    for prefix in ("FV/", "INV-", "FA/", "KOR/"):
        assert number.str.startswith(prefix).any()
    assert data.invoices["invoice_number"].str.fullmatch(r"\d{4}/\d{2}/\d{4}").any()
    collective = rows[rows["transfer_id"].isin(labelled(data, "collective"))]
    named = [
        n in t
        for n, t in zip(
            collective["invoice_number_i"], collective["title_t"].fillna(""), strict=True
        )
    ]
    hits = collective.assign(hit=named)
    per_transfer = hits.groupby("transfer_id")["hit"].sum()
    assert per_transfer.ge(2).any()  # several numbers in one title
    assert per_transfer.eq(0).any()  # and collective payments without any
    assert data.transfers["title"].isna().any() and data.transfers["title"].eq("").any()
    assert data.transfers["title"].str.len().max() <= 140


def test_statement_names_vary(data):
    names = data.transfers["counterparty_name"]
    assert names.isna().any()
    assert names.str.contains("SP Z O O", regex=False).any()
    assert names.str.contains("Sp. z o.o.", regex=False).any()
    assert names.str.contains("SPÓŁKA Z OGRANICZONĄ", regex=False).any()
    assert data.invoices["counterparty_tax_id"].isna().any()
    assert data.invoices["counterparty_tax_id"].str.fullmatch(r"\d{10}").mean() > 0.7
    assert data.invoices["counterparty_iban"].isna().any()
    assert data.invoices["counterparty_iban"].str.fullmatch(r"PL\d{26}").mean() > 0.7


def test_subscriptions_leave_identical_amounts_open(data):
    rows = joined(data)
    subs = rows[rows["transfer_id"].isin(labelled(data, "subscription"))]
    same_amount = data.invoices[data.invoices["counterparty_id"].isin(subs["counterparty_id_i"])]
    per_customer = same_amount.groupby("counterparty_id")["amount"].nunique()
    assert per_customer.eq(1).mean() > 0.9  # the same price every month
    # a customer late by a month has two open invoices of the same amount when it pays
    paid_on = rows.groupby("invoice_id")["booking_date_t"].min()
    invoices = same_amount.assign(paid_on=same_amount["invoice_id"].map(paid_on))[
        ["counterparty_id", "invoice_id", "amount", "issue_date", "paid_on"]
    ].add_prefix("open_")
    payments = subs[["transfer_id", "counterparty_id_i", "booking_date_t"]].drop_duplicates()
    at_payment = payments.merge(
        invoices, left_on="counterparty_id_i", right_on="open_counterparty_id"
    )
    booked = at_payment["booking_date_t"]
    still_open = at_payment[
        (at_payment["open_issue_date"] <= booked) & ~(at_payment["open_paid_on"] < booked)
    ]
    open_twins = still_open.groupby(["transfer_id", "open_amount"])["open_invoice_id"].nunique()
    assert (open_twins >= 2).sum() >= 20, open_twins.value_counts()
    collective = subs[subs["transfer_id"].isin(labelled(data, "collective"))]
    assert len(collective) > 0
    stale = labelled(data, "ref_stale")
    assert len(stale) > 0


def test_transfers_without_invoices_and_invoices_never_paid(data):
    for kind in ("salary", "tax", "bank_charge", "refund", "unknown_incoming", "internal"):
        assert len(labelled(data, kind)) > 0
    unpaid = ~data.invoices["invoice_id"].isin(data.matches["invoice_id"])
    old = data.invoices["due_date"] < pd.Timestamp("2025-05-01")
    assert (unpaid & old & data.invoices["amount"].gt(0)).sum() > 10


def test_currencies_are_mostly_pln(data):
    share = data.transfers["currency"].value_counts(normalize=True)
    assert share["PLN"] > 0.8 and {"EUR", "USD"} <= set(share.index)


def test_messy_profile_gives_fewer_references_and_more_third_parties(data, messy):
    default_rates, messy_rates = pattern_rates(data).iloc[1:], pattern_rates(messy).iloc[1:]
    assert messy_rates["ref_exact"].mean() < default_rates["ref_exact"].mean() / 2
    for pattern in ("ref_empty", "subscription", "credit_note", "third_party_factoring"):
        assert messy_rates[pattern].mean() > 1.5 * default_rates[pattern].mean(), pattern


# --- drift -----------------------------------------------------------------------------------


def test_shift_changes_nothing_before_its_month_and_habits_after():
    base = generate(SynthConfig(months=6, scale=0.5))
    shifted = generate(SynthConfig(months=6, scale=0.5, shift_from="2025-04"))
    cut = pd.Timestamp("2025-04-01")
    before = base.transfers["booking_date"] < cut
    pd.testing.assert_frame_equal(
        base.transfers[before], shifted.transfers[shifted.transfers["booking_date"] < cut]
    )
    early = base.invoices["issue_date"] < cut
    pd.testing.assert_frame_equal(
        base.invoices[early], shifted.invoices[shifted.invoices["issue_date"] < cut]
    )
    after_base, after_shift = pattern_rates(base).iloc[3:], pattern_rates(shifted).iloc[3:]
    assert after_shift["ref_exact"].mean() < 0.7 * after_base["ref_exact"].mean()
    factoring = after_shift["third_party_factoring"].mean()
    assert factoring > 2 * after_base["third_party_factoring"].mean()
    late = base.invoices[~early]["amount"].median()
    assert shifted.invoices[~early]["amount"].median() > 1.15 * late


def test_pattern_rates_are_shares_per_month(data):
    rates = pattern_rates(data)
    assert list(rates.index) == [f"2025-{m:02d}" for m in range(1, 9)]
    assert rates["transfers"].sum() == len(data.transfers)
    kinds = rates[list(KINDS)].sum(axis=1)
    assert np.allclose(kinds, 1.0)


# --- the warehouse file ----------------------------------------------------------------------


def test_write_warehouse_round_trip(tmp_path):
    data = small()
    path = tmp_path / "wh" / "warehouse.duckdb"
    path.parent.mkdir()
    path.write_bytes(b"not a database")  # an existing file is replaced
    write_warehouse(data, path)
    write_warehouse(data, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["warehouse.duckdb"]
    con = duckdb.connect(str(path), read_only=True)
    try:
        for name, table in TABLES.items():
            described = con.execute(f"DESCRIBE {name}").fetchall()
            expected = [
                (c.name, contract.DUCKDB_TYPES[c.kind], "YES" if c.nullable else "NO")
                for c in table.columns
            ]
            assert [tuple(row[:3]) for row in described] == expected
            frame = getattr(data, name)
            assert con.execute(f"SELECT count(*) FROM {name}").fetchone() == (len(frame),)
        total = con.execute("SELECT sum(amount) FROM transfers").fetchone()[0]
        assert float(total) == pytest.approx(data.transfers["amount"].sum(), abs=0.01)
        nulls = con.execute("SELECT count(*) FROM transfers WHERE title IS NULL").fetchone()
        assert nulls == (int(data.transfers["title"].isna().sum()),)
        back = con.execute("SELECT * FROM matches ORDER BY transfer_id, invoice_id").df()
    finally:
        con.close()
    assert (back["matched_at"].to_numpy() == data.matches["matched_at"].to_numpy()).all()


def test_structured_titles_carry_valid_creditor_references_and_sepa_tags():
    from cashmatch.domain.matching.remittance import parse_remittance
    from cashmatch.domain.matching.text import compact

    data = generate(SynthConfig(months=2, scale=0.3, structured=0.5))
    parsed = {
        t: parse_remittance(title)
        for t, title in zip(data.transfers["transfer_id"], data.transfers["title"], strict=True)
    }
    numbers = dict(zip(data.invoices["invoice_id"], data.invoices["invoice_number"], strict=True))
    paid = data.matches.groupby("transfer_id")["invoice_id"].agg(list)
    with_rf = [t for t, r in parsed.items() if r.rf]
    assert len(with_rf) > 20
    for t in with_rf:  # a valid reference's body is the paid invoice's number
        assert set(parsed[t].rf) & {compact(numbers[i]) for i in paid.get(t, [])}
    assert sum(r.kind == "sepa" for r in parsed.values()) > 20


def test_no_structured_titles_by_default(data):
    titles = data.transfers["title"].dropna()
    assert not titles.str.contains("SVWZ+", regex=False).any()
    assert not titles.str.contains(r"\bRF\d{2}", regex=True).any()
