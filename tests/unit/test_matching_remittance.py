"""Structured remittance: ISO 11649 references, the Polish split payment and SEPA tags, in the
formats banks export them, and what blocking and features make of them."""

from __future__ import annotations

import pandas as pd
import pytest

from cashmatch.domain.matching.candidates import BlockingParams, candidate_pairs
from cashmatch.domain.matching.features import pair_features
from cashmatch.domain.matching.prepared import prepare
from cashmatch.domain.matching.remittance import parse_remittance, rf_check, rf_reference

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "reference",
    [
        "RF18539007547034",  # ISO 11649's own example, electronic format
        "RF18 5390 0754 7034",  # print format, groups of four
        "rf18 5390 0754 7034",
        "RF712348231",
        "RF18000000000539007547034"[:0] + rf_reference("FV2025030042"),
    ],
)
def test_valid_creditor_references_pass_the_mod_97_check(reference):
    assert rf_check(reference)


@pytest.mark.parametrize(
    "reference",
    [
        "RF19539007547034",  # wrong check digits
        "RF18539007547043",  # two digits swapped
        "RF18",  # no body
        "RF18" + "1" * 22,  # body longer than 21
        "RF1X539007547034",
    ],
)
def test_invalid_creditor_references_fail(reference):
    assert not rf_check(reference)


def test_rf_reference_builds_the_check_digits_iso_11649_gives():
    assert rf_reference("539007547034") == "RF18539007547034"
    with pytest.raises(ValueError, match="1-21 letters or digits"):
        rf_reference("")


@pytest.mark.parametrize(
    ("title", "bodies"),
    [
        ("RF18 5390 0754 7034", ("539007547034",)),
        ("Zapłata RF18 5390 0754 7034 dziękujemy", ("539007547034",)),  # a word after the groups
        ("RF18539007547034, RF712348231", ("539007547034", "2348231")),
        ("RF19 5390 0754 7034", ()),  # check digits wrong: not a creditor reference
        ("SURFACE 1234", ()),  # "RF" inside a word
        ("EREF+RF18539007547034 SVWZ+Zahlung", ("539007547034",)),
    ],
)
def test_creditor_references_are_found_in_titles(title, bodies):
    assert parse_remittance(title).rf == bodies


def test_the_split_payment_message_is_read_field_by_field():
    r = parse_remittance("/VAT/1 150,00/IDC/5261040828/INV/FV/2025/03/0042/TXT/zapłata za towar")
    assert r.kind == "mpp"
    assert r.vat == 1150.0
    assert r.tax_id == "5261040828"
    # the reference text keeps the invoice number (its own slashes) and the free text only
    assert r.reference_text.startswith("FV/2025/03/0042 ")
    assert "5261040828" not in r.reference_text and "1 150" not in r.reference_text


@pytest.mark.parametrize(
    ("title", "vat"),
    [
        ("/VAT/23.00/IDC/PL5261040828/INV/123/TXT/", 23.0),
        ("/VAT/10,5/IDC/5261040828/INV/A1", 10.5),
        ("/VAT/abc/IDC/5261040828/INV/A1", None),  # unreadable: no VAT check, not an error
    ],
)
def test_split_payment_amounts_in_bank_spellings(title, vat):
    r = parse_remittance(title)
    assert r.kind == "mpp" and r.vat == vat
    assert r.tax_id in {"PL5261040828", "5261040828"}


def test_one_split_payment_tag_in_free_text_is_not_a_split_payment():
    assert parse_remittance("Faktura /INV/ 2025").kind == "free"


def test_sepa_tags_keep_the_fields_that_name_what_is_paid():
    title = (
        "EREF+NOTPROVIDED MREF+M-2024-000123 CRED+DE98ZZZ09999999999 "
        "SVWZ+Rechnung RE-2025-00042 ABWA+Muster Handel GmbH"
    )
    r = parse_remittance(title)
    assert r.kind == "sepa"
    assert "RE-2025-00042" in r.reference_text and "MUSTER HANDEL" in r.reference_text
    # a mandate or creditor id is digits too, but never an invoice's
    assert "000123" not in r.reference_text and "ZZZ" not in r.reference_text
    assert "NOTPROVIDED" not in r.reference_text


def test_an_end_to_end_reference_counts_as_a_reference():
    r = parse_remittance("EREF+FV-2025-0042 KREF+K77 SVWZ+Zahlung")
    assert "FV-2025-0042" in r.reference_text and "K77" in r.reference_text


@pytest.mark.parametrize("title", ["Faktura FV/2025/03/0042", "", None, float("nan")])
def test_free_titles_stay_as_they_are(title):
    r = parse_remittance(title)
    assert r.kind == "free"
    assert r.reference_text == (title if isinstance(title, str) else "")


def _frames(titles: list[str], numbers: list[str], tax: list[str | None], gross: list[float]):
    transfers = pd.DataFrame(
        {
            "transfer_id": [f"t{k}" for k in range(len(titles))],
            "booking_date": pd.Timestamp("2025-03-20"),
            "direction": "outgoing",
            "amount": 999.0,
            "currency": "PLN",
            "counterparty_name": "Someone",
            "counterparty_iban": None,
            "title": titles,
        }
    )
    invoices = pd.DataFrame(
        {
            "invoice_id": [f"i{k}" for k in range(len(numbers))],
            "invoice_number": numbers,
            "direction": "payable",
            "counterparty_id": [f"cp{k}" for k in range(len(numbers))],
            "counterparty_name": [f"Supplier {chr(65 + k)}" for k in range(len(numbers))],
            "counterparty_tax_id": tax,
            "counterparty_iban": None,
            "currency": "PLN",
            "amount": gross,
            "issue_date": pd.Timestamp("2025-03-01"),
            "due_date": pd.Timestamp("2025-03-15"),
        }
    )
    return transfers, invoices


def _pairs(titles, numbers, tax, gross):
    p = prepare(*_frames(titles, numbers, tax, gross))
    pairs = candidate_pairs(p, None, BlockingParams())
    return p, pairs


def test_a_valid_creditor_reference_is_an_exact_key_to_the_invoice_number():
    body = "FV2025030042"
    _, pairs = _pairs(
        [rf_reference(body)], ["FV/2025/03/0042", "FV/2025/03/0043"], [None] * 2, [1.0, 2.0]
    )
    hit = pairs[pairs["ref_RF"] == 1]
    assert hit[["t", "i"]].values.tolist() == [[0, 0]]
    assert hit["ref_C"].tolist() == [1]  # as strong as the number written out


def test_a_wrong_check_digit_is_no_creditor_reference():
    wrong = "RF00FV2025030042"
    _, pairs = _pairs([wrong], ["FV/2025/03/0042"], [None], [1.0])
    assert pairs["ref_RF"].sum() == 0


def test_the_split_payment_tax_id_blocks_the_supplier_and_vat_is_checked():
    title = "/VAT/23,00/IDC/5261040828/INV/nieczytelne/TXT/"
    p, pairs = _pairs([title], ["A-1", "B-2"], ["526-104-08-28", "9999999999"], [123.0, 100.0])
    by_tax = pairs[pairs["by_tax"] == 1]
    assert by_tax[["t", "i"]].values.tolist() == [[0, 0]]
    X = pair_features(p, pairs, None, BlockingParams())
    assert X.loc[pairs["i"] == 0, "vat_fits"].tolist() == [1.0]


def test_split_payment_amounts_are_no_reference_keys():
    # "/VAT/1234,56" used to join invoice sequence number 1234; only /INV/ and /TXT/ name one.
    title = "/VAT/1234,56/IDC/5261040828/INV/X-77/TXT/"
    _, pairs = _pairs([title], ["FV/2025/1234"], [None], [5000.0])
    assert pairs["ref_S"].sum() == 0 and pairs["ref_Z"].sum() == 0
