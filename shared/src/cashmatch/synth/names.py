"""Names, tax ids, IBANs: made-up companies, people, addresses and accounts, and the ways a
bank statement renders an account holder's name.
"""

from __future__ import annotations

import itertools
import re
import unicodedata

from cashmatch.synth.randomness import Choice, Draw

_NAME_LINE = 35


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_STEM_HEADS = words(
    "Agro Bud Euro Inter Pol Trans Med Tech Eko Stal Drew Auto Elektro Info Lux Nord Omega "
    "Delta Alfa Prim Mega Termo Hydro Kom Geo Bio Max Pro Sol Terra Vita Mar Kraj Wis Karp "
    "Tatra Baltic Silesia Mazo Warta Orion Astra Polar Kron Lech Sokół Dąb Orzeł"
)
_STEM_TAILS = words(
    "mex pol tech bud trans med soft net tex plast max serwis system land ex car vita gaz drob "
    "mar lex tor chem stal rol data com pak met flex"
)
_DESCRIPTORS = words(
    "Serwis Logistics Group Polska Dystrybucja Handel Systemy Consulting Budownictwo "
    "Technologie Solutions Produkcja Trading Development Energia Medical Foods Instalacje"
)
_FIRST_NAMES = words(
    "Jan Anna Piotr Katarzyna Tomasz Małgorzata Paweł Agnieszka Krzysztof Ewa Andrzej Joanna "
    "Marek Magdalena Michał Barbara Grzegorz Zofia Łukasz Dorota Wojciech Elżbieta Jerzy Beata "
    "Rafał Żaneta Adam Monika Kamil Urszula"
)
_LAST_NAMES = words(
    "Kowalski Nowak Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański Woźniak "
    "Dąbrowski Kozłowski Jankowski Mazur Kwiatkowski Krawczyk Piotrowski Grabowski Nowakowski "
    "Pawłowski Michalski Król Wieczorek Jabłoński Wróbel Majewski Olszewski Stępień Malinowski "
    "Górecki Ziółkowski Sikora"
)
_ACTIVITIES = (
    "Usługi Transportowe",
    "Usługi Budowlane",
    "Firma Handlowa",
    "P.H.U.",
    "F.H.U.",
    "Usługi Remontowe",
    "Biuro Rachunkowe",
    "Gabinet Stomatologiczny",
    "Warsztat Samochodowy",
    "Usługi Informatyczne",
    "Hurtownia",
    "Pracownia Projektowa",
)
_CITIES = (
    ("Warszawa", "00"),
    ("Kraków", "30"),
    ("Łódź", "90"),
    ("Wrocław", "50"),
    ("Poznań", "60"),
    ("Gdańsk", "80"),
    ("Szczecin", "70"),
    ("Bydgoszcz", "85"),
    ("Lublin", "20"),
    ("Katowice", "40"),
    ("Białystok", "15"),
    ("Kielce", "25"),
    ("Rzeszów", "35"),
    ("Olsztyn", "10"),
    ("Opole", "45"),
    ("Kalisz", "62"),
    ("Radom", "26"),
    ("Toruń", "87"),
)
_STREETS = (
    "ul. Długa",
    "ul. Polna",
    "ul. Leśna",
    "ul. Słoneczna",
    "ul. Szkolna",
    "ul. Ogrodowa",
    "ul. Lipowa",
    "al. Jerozolimskie",
    "ul. Przemysłowa",
    "ul. Fabryczna",
    "ul. Kościuszki",
    "ul. Mickiewicza",
    "ul. Piłsudskiego",
    "ul. Grunwaldzka",
)
_LEGAL_PL = Choice(
    [
        ("Sp. z o.o.", 0.60),
        ("S.A.", 0.07),
        ("Sp. j.", 0.06),
        ("Sp. k.", 0.04),
        ("Sp. z o.o. Sp. k.", 0.05),
        ("s.c.", 0.04),
        ("", 0.14),  # sole traders
    ]
)
_LEGAL_VARIANTS = {
    "Sp. z o.o.": (
        "SP. Z O.O.",
        "SP Z O O",
        "SP. Z O. O.",
        "SP.Z O.O.",
        "SPÓŁKA Z OGRANICZONĄ ODPOWIEDZIALNOŚCIĄ",
        "SPOLKA Z OGRANICZONA ODPOWIEDZIALNOSCIA",
    ),
    "S.A.": ("S.A.", "SA", "S A", "SPÓŁKA AKCYJNA"),
    "Sp. j.": ("SP. J.", "SP.J.", "SP J", "SPÓŁKA JAWNA"),
    "Sp. k.": ("SP. K.", "SP.K.", "SP K", "SPÓŁKA KOMANDYTOWA"),
    "Sp. z o.o. Sp. k.": ("SP. Z O.O. SP.K.", "SP Z O O SP K", "SP. Z O.O. SPÓŁKA KOMANDYTOWA"),
    "s.c.": ("S.C.", "SC", "SPÓŁKA CYWILNA"),
    "GmbH": ("GMBH", "GMBH."),
    "B.V.": ("BV", "B.V."),
    "Ltd": ("LTD", "LIMITED", "LTD."),
    "Inc.": ("INC", "INC."),
    "s.r.o.": ("S.R.O.", "SRO"),
    "UAB": ("UAB",),
    "SAS": ("SAS", "S.A.S."),
}
# country: legal form, language, currency, IBAN layout ("n": digits, "a": letters), VAT id digits
FOREIGN = {
    "DE": ("GmbH", "de", "EUR", "18n", 9),
    "NL": ("B.V.", "en", "EUR", "4a10n", 9),
    "CZ": ("s.r.o.", "en", "EUR", "20n", 8),
    "LT": ("UAB", "en", "EUR", "16n", 9),
    "FR": ("SAS", "en", "EUR", "23n", 11),
    "GB": ("Ltd", "en", "USD", "4a14n", 9),
    "US": ("Inc.", "en", "USD", "", 0),
}
FOREIGN_CHOICE = Choice(
    [
        ("DE", 0.35),
        ("NL", 0.12),
        ("CZ", 0.12),
        ("LT", 0.08),
        ("FR", 0.08),
        ("GB", 0.13),
        ("US", 0.12),
    ]
)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def strip_diacritics(text: str) -> str:
    text = text.replace("ł", "l").replace("Ł", "L")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def random_iban(country: str, d: Draw) -> str | None:
    layout = "24n" if country == "PL" else FOREIGN[country][3]  # PL: 26 digits with the check
    if not layout:
        return None  # US accounts have no IBAN
    bban = ""
    for count, kind in re.findall(r"(\d+)([an])", layout):
        n = int(count)
        bban += d.digits(n) if kind == "n" else "".join(d.pick(LETTERS) for _ in range(n))
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def random_nip(d: Draw) -> str:
    """A Polish tax id (NIP) with a valid check digit."""
    while True:
        digits = [d.integer(1, 9)] + [d.integer(0, 9) for _ in range(8)]
        check = sum(w * x for w, x in zip((6, 5, 7, 2, 3, 4, 5, 6, 7), digits, strict=True)) % 11
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def random_person(d: Draw) -> tuple[str, str]:
    first, last = d.pick(_FIRST_NAMES), d.pick(_LAST_NAMES)
    if first.endswith("a") and last.endswith("ki"):  # Polish surnames agree in gender
        last = last[:-1] + "a"
    return first, last


def random_stem(d: Draw) -> str:
    return d.pick(_STEM_HEADS) + d.pick(_STEM_TAILS)


def random_company(d: Draw, country: str, stem: str | None = None) -> tuple[str, str, str]:
    """(full name, the part before the legal form, legal form) of a made-up company."""
    stem = stem or random_stem(d)
    if country != "PL":
        legal = FOREIGN[country][0]
        base = stem if d.chance(0.6) else f"{stem} {d.pick(('Trading', 'Systems', 'Group'))}"
        return f"{base} {legal}", base, legal
    legal = _LEGAL_PL(d)
    if not legal:
        first, last = random_person(d)
        activity = d.pick(_ACTIVITIES)
        base = f"{activity} {first} {last}" if d.chance(0.6) else f"{first} {last} {activity}"
        return base, base, ""
    descriptor = d.pick(_DESCRIPTORS)
    if d.chance(0.55) or stem.lower().endswith(descriptor.lower()):
        base = stem
    else:
        base = f"{stem} {descriptor}"
    return f"{base} {legal}", base, legal


_FOREIGN_ADDRESSES = {
    "DE": (("Hauptstr.", "Industriestr.", "Bahnhofstr."), ("Berlin", "Hamburg", "Leipzig")),
    "NL": (("Keizersgracht", "Stationsweg"), ("Amsterdam", "Rotterdam", "Utrecht")),
    "CZ": (("Národní", "Průmyslová"), ("Praha", "Brno", "Ostrava")),
    "LT": (("Gedimino pr.", "Pramonės g."), ("Vilnius", "Kaunas")),
    "FR": (("rue de la Paix", "avenue Jean Jaurès"), ("Paris", "Lyon", "Lille")),
    "GB": (("High Street", "Station Road"), ("London", "Leeds", "Bristol")),
    "US": (("Main Street", "Market Street"), ("New York", "Chicago", "Austin")),
}


def random_address(d: Draw, country: str) -> str:
    if country in _FOREIGN_ADDRESSES:
        streets, cities = _FOREIGN_ADDRESSES[country]
        return f"{d.pick(streets)} {d.integer(1, 200)} {d.pick(cities)}"
    city, zip_head = d.pick(_CITIES)
    return f"{d.pick(_STREETS)} {d.integer(1, 120)} {zip_head}-{d.digits(3)} {city}"


def statement_names(name: str, base: str, legal: str, address: str, d: Draw) -> list[str]:
    """Ways a bank statement renders one account holder's name."""
    upper = name.upper()
    legal_variant = d.pick(_LEGAL_VARIANTS.get(legal, (legal.upper(),))) if legal else ""
    return [
        name,
        upper,
        f"{base.upper()} {legal_variant}".strip(),
        strip_diacritics(upper),
        f"{upper} {address.upper()}"[:_NAME_LINE].rstrip(),
        upper[: max(12, min(len(upper), d.integer(16, 30)))].rstrip(),
    ]


_NAME_HABIT = (0.12, 0.30, 0.18, 0.15, 0.15, 0.10)
NAME_HABIT_CUM = list(itertools.accumulate(_NAME_HABIT))
