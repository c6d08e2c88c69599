"""Titles: the remittance text of a transfer as its payer writes it, and the reference labels
that say how it refers to the invoices.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cashmatch.domain import contract
from cashmatch.domain.matching.remittance import rf_reference
from cashmatch.synth.bank_calendar import date
from cashmatch.synth.counterparties import Party, Payer, World
from cashmatch.synth.names import LETTERS, words
from cashmatch.synth.payments import Pending
from cashmatch.synth.profiles import STYLES
from cashmatch.synth.randomness import Choice, Draw, weighted_index

_TITLE_MAX = 140  # Polish domestic transfers carry 4 x 35 characters of remittance text
_SEPA_MAX = 390


def choices(*pairs: tuple[str, float]) -> Choice[str]:
    return Choice(list(pairs))


# Templates per language; fields are filled lazily by _Fields.
_TEMPLATES: dict[str, dict[str, Choice[str]]] = {
    "pl": {
        "single": choices(
            ("{ref}", 3),
            ("Faktura {ref}", 2),
            ("Faktura nr {ref}", 1.5),
            ("Faktura VAT {ref}", 0.5),
            ("FV {ref}", 0.4),
            ("Zapłata za fakturę {ref}", 1.5),
            ("zapłata za fakturę nr {ref}", 1),
            ("Płatność za fakturę {ref}", 1),
            ("Opłata za fakturę {ref}", 0.4),
            ("{ref} zamówienie {order}", 0.5),
            ("{ref} z dnia {issue}", 0.5),
            ("{name} {ref}", 0.4),
            ("{ref} {name}", 0.3),
            ("Przelew {ref}", 0.3),
            ("{ref} dziękujemy", 0.2),
            ("Za fakturę {ref}", 0.4),
            ("{ref} NIP {tax}", 0.3),
            ("{ref} kwota {amount}", 0.3),
        ),
        "multi": choices(
            ("{refs}", 3),
            ("Faktury {refs}", 2),
            ("Zapłata za faktury {refs}", 1.5),
            ("Płatność za faktury: {refs}", 1),
            ("FV {refs}", 0.7),
            ("Faktury nr {refs}", 1),
            ("{name} faktury {refs}", 0.3),
        ),
        "partial": choices(
            ("{ref} rata {k}", 2),
            ("Rata {k}/{n} {ref}", 1.5),
            ("{k} rata za fakturę {ref}", 1),
            ("częściowa zapłata {ref}", 1.5),
            ("{ref} część {k}", 1),
            ("zaliczka na poczet {ref}", 0.3),
            ("dopłata do {ref}", 0.5),
            ("{ref}", 1),
        ),
        "credit": choices(
            ("{ref} - {cn}", 2),
            ("{ref} pomniejszona o korektę {cn}", 1.5),
            ("{ref} minus korekta {cn}", 1),
            ("Faktura {ref} korekta {cn}", 1),
            ("{ref}", 2),
            ("{ref} po korekcie", 1),
            ("{ref}, {cn}", 1),
        ),
        "subscription": choices(
            ("{ref}", 2),
            ("Abonament {ref}", 2),
            ("Faktura {ref} abonament {month}", 1),
            ("opłata za {month} {ref}", 1),
            ("{ref} abonament", 1),
        ),
        "generic": choices(
            ("Faktura", 1.5),
            ("zapłata za fakturę", 1.5),
            ("Płatność", 1),
            ("przelew", 1),
            ("Zapłata", 1),
            ("zapłata za towar", 1),
            ("Usługa", 0.4),
            ("Zamówienie {order}", 1),
            ("zamówienie nr {order}", 0.6),
            ("rozliczenie {mm}/{yyyy}", 0.6),
            ("Płatność za {month}", 0.5),
            ("{name}", 0.8),
            ("nr klienta {cust}", 0.5),
            ("Należność", 0.4),
            ("Przelew środków", 0.4),
            ("faktura z dnia {issue}", 0.5),
            ("zapłata kwota {amount}", 0.3),
        ),
        "generic_multi": choices(
            ("Płatność zbiorcza", 2),
            ("Zapłata wg awizo {adv}", 1),
            ("zapłata faktur {month}", 1.5),
            ("Faktury", 1),
            ("płatność za faktury", 1.5),
            ("rozliczenie {mm}/{yyyy}", 1),
            ("{name}", 0.5),
            ("zestawienie {adv}", 0.5),
        ),
        "generic_subscription": choices(
            ("Abonament", 2),
            ("abonament {month}", 2),
            ("opłata abonamentowa", 1),
            ("Opłata miesięczna", 1),
            ("abonament nr klienta {cust}", 1),
            ("{name}", 0.5),
        ),
        "generic_partial": choices(
            ("rata {k}", 1),
            ("częściowa płatność", 1),
            ("Rata", 1),
            ("dopłata", 0.5),
            ("zaliczka", 0.3),
        ),
    },
    "en": {
        "single": choices(
            ("{ref}", 3),
            ("Invoice {ref}", 2),
            ("Payment for invoice {ref}", 1.5),
            ("Inv. {ref}", 0.7),
            ("INVOICE NO {ref}", 0.5),
            ("{ref} PO {po}", 0.6),
            ("Payment {ref} {name}", 0.4),
            ("Invoice {ref} dated {issue_iso}", 0.4),
        ),
        "multi": choices(
            ("{refs}", 2),
            ("Invoices {refs}", 2),
            ("Payment for invoices {refs}", 1.5),
            ("INV {refs}", 0.5),
        ),
        "partial": choices(
            ("Instalment {k} invoice {ref}", 2),
            ("Partial payment {ref}", 2),
            ("{ref} part {k}/{n}", 1),
            ("{ref}", 1),
        ),
        "credit": choices(
            ("{ref} less credit note {cn}", 2),
            ("Invoice {ref} CN {cn}", 1.5),
            ("{ref}", 2),
        ),
        "subscription": choices(("{ref}", 2), ("Subscription {ref}", 2)),
        "generic": choices(
            ("Payment", 2),
            ("Invoice payment", 1.5),
            ("Payment {po}", 1),
            ("Supplier payment", 1),
            ("PAYMENT ADVICE {adv}", 0.7),
            ("Remittance {adv}", 0.7),
            ("{name}", 0.5),
        ),
        "generic_multi": choices(
            ("Payment advice {adv}", 2),
            ("Invoices {month_en}", 1),
            ("Payment run {issue_iso}", 1),
            ("Remittance {adv}", 1),
        ),
        "generic_subscription": choices(("Subscription", 2), ("Monthly fee {month_en}", 1)),
        "generic_partial": choices(("Partial payment", 2), ("Instalment {k}", 1)),
    },
    "de": {
        "single": choices(
            ("Rechnung {ref}", 2),
            ("RG {ref}", 1),
            ("Rechnung Nr. {ref}", 1),
            ("{ref}", 1.5),
            ("Re. {ref} vom {issue}", 0.5),
        ),
        "multi": choices(("Rechnungen {refs}", 2), ("{refs}", 1.5), ("RG {refs}", 1)),
        "partial": choices(("Teilzahlung {ref}", 2), ("Rate {k} Rechnung {ref}", 1)),
        "credit": choices(("Rechnung {ref} abzgl. Gutschrift {cn}", 2), ("{ref}", 1)),
        "subscription": choices(("Abo {ref}", 1), ("{ref}", 1)),
        "generic": choices(("Zahlung", 1), ("Rechnungsausgleich", 1), ("Überweisung", 1)),
        "generic_multi": choices(("Sammelzahlung", 2), ("Zahlungsavis {adv}", 1)),
        "generic_subscription": choices(
            ("Abonnement", 1),
        ),
        "generic_partial": choices(
            ("Teilzahlung", 1),
        ),
    },
}
_EMPTY: Choice[str | None] = Choice([(None, 6), ("", 2.5), ("-", 1), (".", 0.5)])
_JOINERS = choices((", ", 3), (" ", 2), ("; ", 1), (",", 1), (" i ", 0.3))
_FACTOR_WRAP = choices(
    ("FAKTORING UMOWA {agr} {body}", 1),
    ("{body} / dłużnik {sub}", 1),
    ("Płatność w imieniu {sub} {body}", 1),
    ("{agr} {body}", 1),
    ("{body}", 1),
)
_PARENT_WRAP = choices(
    ("{body}", 3), ("{body} za {sub}", 1), ("w imieniu {sub}: {body}", 1), ("{sub} {body}", 1)
)
_ASSIGNMENT_WRAP = choices(
    ("{body}", 2),
    ("{body} cesja wierzytelności", 1),
    ("{body} umowa cesji {agr}", 1),
    ("{body} dostawca {sub}", 1),
)
_MPP = "/VAT/{vat}/IDC/{idc}/INV/{ref}/TXT/{txt}"
MONTHS_PL = words(
    "styczeń luty marzec kwiecień maj czerwiec lipiec sierpień wrzesień październik listopad "
    "grudzień"
)
_MONTHS_EN = words(
    "January February March April May June July August September October November December"
)
_TOKEN = re.compile(r"[A-Za-z]+|\d+|[^A-Za-z\d]+")
_REFORMAT_OPS = ("sep_space", "sep_dash", "sep_none", "sep_dot", "lower", "zeros", "no_prefix")
_SEPARATORS = {"sep_space": " ", "sep_dash": "-", "sep_none": "", "sep_dot": "."}
_CONFUSABLE = {"0": "O", "O": "0", "1": "l", "l": "1", "5": "S", "8": "B", "I": "1"}


def _is_separator(token: str) -> bool:
    return not token[:1].isalnum()


def _reformat(number: str, ops: Sequence[str]) -> str:
    """The number as somebody retyped it: other separators, lowercase, zeros or prefix gone."""
    tokens = _TOKEN.findall(number)
    for op in ops:
        if op in _SEPARATORS:
            tokens = [_SEPARATORS[op] if _is_separator(t) else t for t in tokens]
        elif op == "lower":
            tokens = [t.lower() for t in tokens]
        elif op == "zeros":
            tokens = [(t.lstrip("0") or "0") if t.isdigit() else t for t in tokens]
        elif op == "no_prefix" and len(tokens) > 2 and tokens[0].isalpha():
            tokens = tokens[2:] if _is_separator(tokens[1]) else tokens[1:]
    return "".join(tokens)


def _typo(text: str, d: Draw) -> str:
    """One slip of the finger, mostly in the digits."""
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    for _ in range(4):
        i = d.pick(digits) if digits and d.u() < 0.8 else d.integer(0, len(text) - 1)
        op = d.u()
        if op < 0.3 and len(text) > 1:
            j = min(i, len(text) - 2)
            new = text[:j] + text[j + 1] + text[j] + text[j + 2 :]
        elif op < 0.55 and len(text) > 3:
            new = text[:i] + text[i + 1 :]
        elif op < 0.85:
            c = text[i]
            if c.isdigit():
                repl = str((int(c) + d.integer(1, 9)) % 10)
            elif c.isalpha():
                repl = d.pick(LETTERS)
                repl = repl if c.isupper() else repl.lower()
            else:
                repl = d.pick(("/", "-", " ", "."))
            new = text[:i] + repl + text[i + 1 :]
        elif op < 0.95:
            new = text[:i] + text[i] + text[i:]
        else:
            new = text[:i] + _CONFUSABLE.get(text[i], text[i]) + text[i + 1 :]
        if new != text:
            return new
    return text + text[-1]


def _polish_amount(cents: int, d: Draw) -> str:
    whole, rest = divmod(cents, 100)
    style = d.u()
    if style < 0.4:
        return f"{whole:,}".replace(",", " ") + f",{rest:02d} zł"
    if style < 0.8:
        return f"{whole},{rest:02d}"
    return f"{whole}.{rest:02d} PLN"


class _Fields(dict[str, str]):
    """Template fields, computed (and drawn) only when a template asks for them."""

    def __init__(
        self, world: World, party: Party, payer: Payer | None, p: Pending, d: Draw
    ) -> None:
        super().__init__()
        self.world, self.party, self.payer, self.p, self.d = world, party, payer, p, d

    def __missing__(self, key: str) -> str:
        value = self._compute(key)
        self[key] = value
        return value

    def _compute(self, key: str) -> str:
        world, party, p, d = self.world, self.party, self.p, self.d
        first = p.items[0][0] if p.items else -1
        issue = date(world.invoices.issue[first]) if first >= 0 else date(p.booking)
        cents = sum(c for _, c in p.items)
        if key in ("name", "sub"):
            name = party.names[party.name_main] if key == "sub" else party.name
            return name if d.u() < 0.6 else name.upper()
        if key == "order":
            return d.pick((f"{d.integer(1000, 99999)}", f"ZAM/{d.integer(1, 999)}/{issue:%y}"))
        if key in ("po", "adv"):
            return f"{'PO' if key == 'po' else 'AV'}{d.digits(d.integer(5, 8))}"
        if key == "issue":
            return f"{issue:%d.%m.%Y}"
        if key == "issue_iso":
            return f"{issue:%Y-%m-%d}"
        if key in ("month", "month_en"):
            return (MONTHS_PL if key == "month" else _MONTHS_EN)[issue.month - 1]
        if key == "mm":
            return f"{issue:%m}"
        if key == "yyyy":
            return f"{issue:%Y}"
        if key == "amount":
            return _polish_amount(cents, d)
        if key == "tax":
            return party.tax_id or ""
        if key == "cust":
            return party.id.removeprefix("cp-").lstrip("0").zfill(5)
        if key in ("k", "n"):
            return str(p.inst[0] if key == "k" else p.inst[1])
        if key == "agr":
            return self.payer.agreement if self.payer else ""
        if key == "vat":
            vat = round(cents * 23 / 123)
            return f"{vat // 100},{vat % 100:02d}"
        if key == "idc":
            if party.direction == contract.RECEIVABLE:
                return world.our_nip
            return party.tax_id or world.our_nip
        if key == "txt":
            return d.pick(("zapłata", "faktura", "płatność", "FV", ""))
        raise KeyError(key)


def _rf_print(number: str, d: Draw) -> str | None:
    """The RF creditor reference printed on our invoice `number` (None: too long for one), as
    the payer copies it: electronic form, or print form in groups of four."""
    body = "".join(ch for ch in number.upper() if ch.isalnum())
    if not 1 <= len(body) <= 21:
        return None
    ref = rf_reference(body)
    if d.u() < 0.5:
        return ref
    return " ".join(ref[k : k + 4] for k in range(0, len(ref), 4))


def _structured(world: World, party: Party, rows: list[int], title: str, d: Draw) -> str:
    """`title` as a structured-title payer sends it (see SynthConfig.structured)."""
    numbers = [world.invoices.number_text[row] for row in rows]
    if party.structured == "rf":
        refs = [_rf_print(n, d) for n in numbers]
        if not numbers or party.direction != contract.RECEIVABLE or not all(refs):
            return title  # a retyped or no reference: as free text
        return d.pick(("{r}", "{r}", "Faktura {r}", "{r} zapłata")).format(
            r=" ".join(r for r in refs if r)
        )
    eref = numbers[0] if numbers and d.u() < 0.4 else "NOTPROVIDED"
    tags = [f"EREF+{eref}"]
    if d.u() < 0.5:
        tags.append(f"MREF+M{d.digits(8)}")
        tags.append(f"CRED+DE{d.digits(2)}ZZZ{d.digits(11)}")
    tags.append(f"SVWZ+{title}")
    return " ".join(tags)


def _style_for(party: Party, payer: Payer | None, booking: int, world: World, u: float) -> str:
    if payer is not None and party.direction == contract.RECEIVABLE:
        cum: Sequence[float] = payer.style_cum  # the payer writes the title
    elif booking >= world.shift_day:
        cum = party.shifted_style_cum
    else:
        cum = party.style_cum
    return STYLES[weighted_index(cum, u)]


def _render_refs(world: World, rows: list[int], style: str, d: Draw) -> list[str]:
    inv = world.invoices
    numbers = [inv.number_text[row] for row in rows]
    if style == "exact":
        return numbers
    if style == "sequence_only":
        strip = d.u() < 0.6
        forms = [
            (inv.seq_text[row].lstrip("0") or "0") if strip else inv.seq_text[row] for row in rows
        ]
        if len(forms) == 1:
            return [d.pick(("{s}", "{s}", "nr {s}", "fv {s}")).format(s=forms[0])]
        return forms
    ops = [d.pick(_REFORMAT_OPS)]
    if d.u() < 0.3:
        ops.append(d.pick(_REFORMAT_OPS))
    if style == "reformatted":
        return [_reformat(n, ops) for n in numbers]
    # a typo in one of the references, sometimes on top of retyping
    retyped = [_reformat(n, ops) for n in numbers] if d.u() < 0.3 else list(numbers)
    k = d.integer(0, len(retyped) - 1)
    retyped[k] = _typo(retyped[k], d)
    return retyped


def _ref_label(world: World, rows: list[int], refs: list[str], style: str) -> str:
    numbers = [world.invoices.number_text[row] for row in rows]
    if style in ("reformatted", "typo") and refs == numbers:
        return "ref_exact"
    return "ref_" + style


def _standing_title(world: World, party: Party, p: Pending, d: Draw) -> tuple[str | None, str]:
    """A standing order repeats the title typed when it was set up, whatever it pays."""
    if party.standing_title is None and party.standing_ref < 0:
        row = p.items[0][0]
        kind = party.standing_kind
        if kind == "stale":
            party.standing_ref = row
            number = world.invoices.number_text[row]
            party.standing_title = d.pick(("Abonament {r}", "{r}", "FA {r} abonament")).format(
                r=number
            )
        elif kind == "customer":
            party.standing_title = d.pick(
                ("Abonament nr klienta {c}", "ID klienta {c}", "abonament {c}")
            ).format(c=party.id.removeprefix("cp-").lstrip("0").zfill(5))
        elif kind == "generic":
            party.standing_title = d.pick(("Abonament", "opłata abonamentowa", "Zlecenie stałe"))
        else:
            party.standing_title = ""
    title = party.standing_title or None
    if party.standing_kind == "stale":
        return title, "ref_exact" if p.items[0][0] == party.standing_ref else "ref_stale"
    if party.standing_kind == "empty":
        return title, "ref_empty"
    return title, "ref_generic"


def render_title(
    world: World, party: Party, payer: Payer | None, p: Pending, d: Draw
) -> tuple[str | None, list[str]]:
    """The remittance text of one transfer and its reference labels."""
    if party.standing_day and payer is None:
        title, label = _standing_title(world, party, p, d)
        return title, [label]
    style = _style_for(party, payer, p.booking, world, d.u())
    if party.p_own_doc > 0 and p.kind == "collective" and d.u() < party.p_own_doc:
        # the payer's own payment document: no number of ours in it
        doc = f"{d.integer(1000, 99999)}/{date(p.booking).year}"
        title = d.pick(("ZAPL. DOK. {n}", "Zaplata dok. {n}", "PLATNOSC ZBIORCZA {n}"))
        return title.format(n=doc), ["ref_generic", "own_document"]
    if style == "empty":
        return _EMPTY(d), ["ref_empty"]
    inv = world.invoices
    lang = party.lang
    if party.direction == contract.PAYABLE and lang != "pl":
        lang = "en"  # our clerks write to foreign suppliers in English
    templates = _TEMPLATES[lang]
    positives = [row for row, _ in p.items if inv.cents[row] > 0]
    credits = [row for row, _ in p.items if inv.cents[row] < 0]
    fields = _Fields(world, party, payer, p, d)
    subscription = "subscription" in p.notes
    refs: list[str] = []
    if style == "generic":
        if p.kind == "partial":
            template = templates["generic_partial"](d)
        elif subscription:
            template = templates["generic_subscription"](d)
        elif len(positives) > 1:
            template = templates["generic_multi"](d)
        else:
            template = templates["generic"](d)
        label = "ref_generic"
    else:
        refs = _render_refs(world, positives, style, d)
        label = _ref_label(world, positives, refs, style)
        cn_refs = _render_refs(world, credits, "exact" if style == "typo" else style, d)
        listed = refs + (cn_refs if d.u() < 0.5 else [])
        fields["ref"] = refs[0]
        fields["refs"] = _JOINERS(d).join(listed)
        fields["cn"] = ", ".join(cn_refs)
        if p.kind == "partial":
            template = templates["partial"](d)
        elif credits and len(positives) == 1:
            template = templates["credit"](d)
        elif len(positives) > 1 or credits:
            template = templates["multi"](d)
        elif subscription:
            template = templates["subscription"](d)
        elif party.mpp and d.u() < 0.8:
            template = _MPP
        else:
            template = templates["single"](d)
    title = template.format_map(fields)
    if party.structured and template != _MPP:
        title = _structured(world, party, positives if style == "exact" else [], title, d)
    if payer is not None:
        if party.direction == contract.PAYABLE:
            wrap = _ASSIGNMENT_WRAP(d)  # we pay the factor a supplier assigned its invoices to
        else:
            wrap = (_FACTOR_WRAP if payer.kind == "factoring" else _PARENT_WRAP)(d)
        title = wrap.format(body=title, sub=fields["sub"], agr=payer.agreement)
    if d.u() < 0.04 and party.lang == "pl":
        title = title.lower()  # typed with caps lock off and no care
        if label == "ref_exact" and any(ref != ref.lower() for ref in refs):
            label = "ref_reformatted"
        refs = [ref.lower() for ref in refs]
    title = " ".join(title.split())
    labels = [label]
    # MT940's field 86 holds 6 x 65 characters, tags included
    limit = _SEPA_MAX if party.structured == "sepa" else (party.title_max or _TITLE_MAX)
    if len(title) > limit:
        cut = title[:limit]
        if any(ref in title and ref not in cut for ref in refs):
            labels.append("title_truncated")
        title = cut
    return title, labels
