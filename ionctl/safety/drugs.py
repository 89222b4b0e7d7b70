"""What ionctl knows about drugs: their charge, and so which electrode must deliver them.

Iontophoresis repels an ion from the electrode of the same sign: an anionic (−) drug goes under the
cathode, a cationic (+) one under the anode (APTA FAQ, via DOMAIN.md). A neutral solution (tap water)
may run from either. The table is deliberately small; any other drug needs its charge stated explicitly
(`Prescription.drug_charge`), which makes the operator accountable for it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ionctl.drivers.base import Polarity


class Charge(enum.Enum):
    """The charge of the drug's active ion; the value is the CLI spelling (`--drug-charge +|-|0`)."""

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
        "APTA FAQ (DOMAIN.md): dexamethasone sodium phosphate is negative, under the cathode",
        aliases=("dexamethasone",),
    ),
    Drug("lidocaine", Charge.CATIONIC, "APTA FAQ (DOMAIN.md): lidocaine is positive, under the anode"),
    Drug("tap-water", Charge.NEUTRAL, "Hidrex material (DOMAIN.md): tap-water trays, either polarity"),
    Drug(
        "asc-exosomes",
        Charge.ANIONIC,
        "Lee, J Clin Research and Reports 2025, DOI 10.31579/2690-1919/523 (DOMAIN.md): adipose-stem-cell "
        "exosomes are negatively charged, delivered from the cathode",
    ),
)


def normalise_drug_name(name: str) -> str:
    """`Dexamethasone Sodium_Phosphate` -> `dexamethasone-sodium-phosphate`."""
    return "-".join(name.strip().lower().replace("_", " ").replace("-", " ").split())


_BY_NAME = {normalise_drug_name(n): d for d in DRUGS for n in (d.name, *d.aliases)}


def find_drug(name: str) -> Drug | None:
    """The table entry for `name` (case, spaces, `_` and `-` do not matter), or None if unknown."""
    return _BY_NAME.get(normalise_drug_name(name))
