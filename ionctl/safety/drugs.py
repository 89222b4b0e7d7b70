"""What ionctl knows about drugs: their charge, and so which electrode must deliver them.

Iontophoresis repels an ion from the electrode of the same sign: an anionic (−) drug goes under the
cathode, a cationic (+) one under the anode (APTA FAQ, via docs/SOURCES.md). A neutral solution (tap water)
may run from either. The table is deliberately small; any other drug is a supervisor's addition to the site's
drug catalog (`[drugs]` of the site configuration, with its charge and source), never a technician's.

Names are compared after `normalise_drug_name` (Unicode NFKC, case folded, invisible format characters
removed, runs of spaces, hyphens and underscores made one `-`), and each drug's synonyms, salts and brand names
map to it, so that `Xylocaine`, `lidocaine HCl` or `lido<ZERO WIDTH SPACE>caine` are lidocaine, with
lidocaine's charge, and are recorded as `lidocaine`.
"""

from __future__ import annotations

import difflib
import enum
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from ionctl.drivers.base import Polarity


class Charge(enum.Enum):
    """The charge of the drug's active ion; the value is its spelling in a site's `[drugs]` table (`-`, `+`, `0`)."""

    ANIONIC = "-"
    CATIONIC = "+"
    NEUTRAL = "0"

    @classmethod
    def parse(cls, text: str) -> Charge:
        """Accept `-`/`+`/`0` or the names (`anionic`, `cationic`, `neutral`), any case."""
        spelled = text.strip().lower()
        for charge in cls:
            if spelled in (charge.value, charge.name.lower()):
                return charge
        raise ValueError(f"drug charge {text!r}: expected one of -, +, 0 (anionic, cationic, neutral)")

    @property
    def required_polarity(self) -> Polarity | None:
        """The active electrode this charge must be delivered from; None when either will do."""
        return {Charge.ANIONIC: Polarity.CATHODE, Charge.CATIONIC: Polarity.ANODE}.get(self)


@dataclass(frozen=True)
class Drug:
    """A drug in the built-in table, with where its charge comes from."""

    name: str
    charge: Charge
    source: str
    aliases: tuple[str, ...] = ()


DRUGS: tuple[Drug, ...] = (
    Drug(
        "dexamethasone-sodium-phosphate",
        Charge.ANIONIC,
        "APTA FAQ (docs/SOURCES.md): dexamethasone sodium phosphate is negative, under the cathode",
        aliases=(
            # the name iontophoresis clinics use for it (docs/SOURCES.md: "a common dexamethasone dose")
            "dexamethasone",
            # the phosphate ester is the ion delivered; the sodium salt dissolves to it (DailyMed label,
            # Dexamethasone Sodium Phosphate Injection USP: "a water-soluble inorganic ester of dexamethasone")
            "dexamethasone phosphate",
            "dexamethasone sodium phosphate",
            "dexamethasone disodium phosphate",
            # brand: DECADRON Phosphate (dexamethasone sodium phosphate) injection, Merck & Co. (label)
            "decadron",
            "decadron phosphate",
        ),
    ),
    Drug(
        "lidocaine",
        Charge.CATIONIC,
        "APTA FAQ (docs/SOURCES.md): lidocaine is positive, under the anode",
        aliases=(
            # the salt in solution: "Xylocaine (lidocaine HCl) Injections ... contain lidocaine HCl"
            # (DailyMed label, Xylocaine, Fresenius Kabi USA, 2022)
            "lidocaine hydrochloride",
            "lidocaine hcl",
            # brand: XYLOCAINE and XYLOCAINE MPF, lidocaine hydrochloride (same label; AstraZeneca's trademark)
            "xylocaine",
            "xylocaine mpf",
            # the former British Approved Name of lidocaine (BNF)
            "lignocaine",
            "lignocaine hydrochloride",
        ),
    ),
    Drug("tap-water", Charge.NEUTRAL, "Hidrex material (docs/SOURCES.md): tap-water trays, either polarity"),
    Drug(
        "asc-exosomes",
        Charge.ANIONIC,
        "Lee, J Clin Research and Reports 2025, DOI 10.31579/2690-1919/523 (docs/SOURCES.md): adipose-stem-cell "
        "exosomes are negatively charged, delivered from the cathode",
        # the report's own words: "adipose-stem-cell exosomes", "ASC-exosome solution"
        aliases=("asc exosome", "adipose stem cell exosomes", "adipose derived stem cell exosomes"),
    ),
)

#: Characters that separate words in a drug name: whitespace, `_` and every dash (Unicode category Pd).
_SEPARATORS = frozenset(" _")


def normalise_drug_name(name: str) -> str:
    """`Dexamethasone Sodium_Phosphate` -> `dexamethasone-sodium-phosphate`: Unicode NFKC (full-width and
    compatibility forms become plain), case folded, format characters (category Cf: zero-width space and
    joiners, soft hyphen, byte-order mark, bidi marks) removed, and every run of whitespace, `_` and dashes
    made one `-`."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    words: list[str] = []
    word: list[str] = []
    for char in folded:
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        if char in _SEPARATORS or char.isspace() or category == "Pd":
            if word:
                words.append("".join(word))
                word = []
            continue
        word.append(char)
    if word:
        words.append("".join(word))
    return "-".join(words)


_BY_NAME = {normalise_drug_name(n): d for d in DRUGS for n in (d.name, *d.aliases)}


def find_drug(name: str) -> Drug | None:
    """The table entry for `name` or any of its synonyms, salts and brand names (after
    `normalise_drug_name`), or None if unknown."""
    return _BY_NAME.get(normalise_drug_name(name))


def drug_identity(name: str) -> str:
    """What a name means: the table's own name for a drug it knows, else the normalised name. Two names
    with the same identity are the same drug."""
    drug = find_drug(name)
    return drug.name if drug is not None else normalise_drug_name(name)


def closest_names(name: str, names: Iterable[str], *, n: int = 3) -> list[str]:
    """Up to `n` of `names` closest to `name` (difflib, on normalised spellings), best first."""
    by_spelling: dict[str, str] = {}
    for known in names:
        by_spelling.setdefault(normalise_drug_name(known), known)
    matches = difflib.get_close_matches(normalise_drug_name(name), list(by_spelling), n=n, cutoff=0.5)
    return [by_spelling[m] for m in matches]
