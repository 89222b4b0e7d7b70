"""Drugs: one name per drug whatever the spelling, the charge from the table or the site's catalog (never from
the technician), a drug outside the catalog refused with the closest names, and the chart carrying the
catalog's name. Each spelling that once got past the drug table is tried here as it was."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from ionctl.config import ConfigError, load_config, parse_config
from ionctl.config.authority import initial_text
from ionctl.drivers.base import Polarity
from ionctl.safety import (
    TAP_WATER,
    Charge,
    Prescription,
    PrescriptionError,
    PrescriptionRefused,
    SiteLimits,
    find_drug,
    validate,
)
from ionctl.safety.drugs import normalise_drug_name
from tests.test_run import DEXAMETHASONE, TESS, in_clinic, ionctl, simulator, trace_rows, with_option

CONFIG = load_config(None)
LIMITS = SiteLimits.load(None)
ZWSP = "\u200b"  # ZERO WIDTH SPACE (category Cf)


def rx(**changes: Any) -> Prescription:
    fields: dict[str, Any] = dict(drug="lidocaine", polarity=Polarity.ANODE, electrode_area_cm2=10.0, current_ma=4.0,
                                  dose_ma_min=40.0, patient_id="P-1", operator_id="O-1")  # fmt: skip
    return Prescription(**{**fields, **changes})


def refused(p: Prescription) -> PrescriptionRefused:
    with pytest.raises(PrescriptionRefused) as info:
        validate(p, LIMITS, catalog=CONFIG.drugs)
    return info.value


# -- names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling, drug", [
    ("lidocaine-hcl", "lidocaine"), ("Lidocaine Hydrochloride", "lidocaine"), ("Xylocaine", "lidocaine"),
    ("XYLOCAINE MPF", "lidocaine"), ("lignocaine", "lidocaine"), (f"lido{ZWSP}caine", "lidocaine"),
    ("ｌｉｄｏｃａｉｎｅ", "lidocaine"),  # full-width forms (NFKC)
    ("lido\u00adcaine", "lidocaine"),  # a soft hyphen (Cf)
    ("Decadron", "dexamethasone-sodium-phosphate"),
    ("dexamethasone–sodium—phosphate", "dexamethasone-sodium-phosphate"),  # en and em dashes
    ("Dexamethasone Sodium_Phosphate", "dexamethasone-sodium-phosphate"), ("TAP  WATER", "tap-water"),
])  # fmt: skip
def test_synonyms_salts_brands_and_spellings_are_one_drug(spelling: str, drug: str) -> None:
    found = find_drug(spelling)
    assert found is not None and found.name == drug
    if any(unicodedata.category(c) == "Cf" for c in spelling):  # typed: an identifier holds no invisible character
        with pytest.raises(PrescriptionError, match="U\\+00AD|U\\+200B"):
            Prescription(**{**vars(rx()), "drug": spelling})
    else:
        assert Prescription(**{**vars(rx()), "drug": spelling}).drug == drug  # the record's name


def test_normalising_removes_invisible_characters_and_collapses_separators() -> None:
    assert normalise_drug_name(f" Acetic{ZWSP}\u2060 _-- Acid\ufeff ") == "acetic-acid"


# -- the wrong electrode by another name -------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["lidocaine-hcl", "Xylocaine", "LIDOCAINE hcl"])
def test_lidocaine_by_any_name_with_a_declared_negative_charge_is_refused_from_the_cathode(spelling: str) -> None:
    p = rx(drug=spelling, polarity=Polarity.CATHODE, drug_charge=Charge.ANIONIC)
    violations = refused(p).violations
    assert [v.limit_name for v in violations] == ["drug_charge", "drug_charge"]
    assert "never overrides a known one" in violations[0].message
    assert violations[1].limit_value == "anode" and "must be delivered from the anode" in violations[1].message


def test_at_the_command_line_xylocaine_from_the_cathode_is_refused_and_a_charge_cannot_be_declared(
    tmp_path: Path,
) -> None:
    args = ("--drug", "Xylocaine", "--polarity", "cathode", "--electrode-area", "10", "--current", "4", "--dose", "40",
            "--patient", "P", "--site", "left forearm", *in_clinic(tmp_path), "--yes", "--device",
            str(tmp_path / "no-such-port"))  # fmt: skip
    cathode = ionctl("run", *args, input=TESS)
    assert cathode.returncode == 2
    assert "lidocaine is cationic (+) and must be delivered from the anode" in cathode.stderr
    declared = ionctl("run", *args, "--drug-charge", "-", input=TESS)
    assert declared.returncode == 2 and "--drug-charge is not accepted" in declared.stderr
    assert "supervisor adds a drug to the catalog" in declared.stderr


def test_neutral_lidocaine_does_not_get_the_tap_water_class() -> None:
    p = rx(drug="Lidocaine HCl", drug_charge=Charge.NEUTRAL, protocol_class=TAP_WATER, current_ma=20.0,
           electrode_area_cm2=100.0, dose_ma_min=None, duration_min=20.0)  # fmt: skip
    names = refused(p).limit_names
    assert "drug_charge" in names and "protocol_class" in names


def test_a_made_up_neutral_lidocaine_is_not_in_the_catalog_and_gets_the_closest_names(tmp_path: Path) -> None:
    done = ionctl("run", "--drug", "lidocaine-neutral", "--polarity", "anode", "--protocol-class", "tap-water",
                  "--electrode-area", "100", "--current", "20", "--duration", "20", "--patient", "P",
                  "--site", "both hands", *in_clinic(tmp_path), "--yes", "--device", str(tmp_path / "no-such-port"),
                  input=TESS)  # fmt: skip
    assert done.returncode == 2
    assert "'lidocaine-neutral' is not in the site's drug catalog; did you mean lidocaine?" in done.stderr


def test_a_drug_outside_the_catalog_is_refused_even_with_a_charge_and_the_table_behind_it() -> None:
    off = refused(rx(drug="ketoprofen", drug_charge=Charge.ANIONIC, polarity=Polarity.CATHODE))
    assert off.limit_names == ("drug",) and "supervisor" in str(off)
    typo = refused(rx(drug="dexametasone", polarity=Polarity.CATHODE))
    assert "did you mean dexamethasone-sodium-phosphate?" in str(typo)


# -- the catalog's own drugs -------------------------------------------------------------------------------------

ACETIC = '\n[drugs.acetic-acid]\ncharge = "-"\nsource = "a site\'s pharmacy"\n'


def test_a_drug_the_supervisor_added_runs_with_the_catalogs_charge_and_name() -> None:
    config = parse_config(initial_text() + ACETIC)
    name, charge = config.resolve_drug(f"Acetic{ZWSP} Acid")
    assert (name, charge) == ("acetic-acid", Charge.ANIONIC)
    p = rx(drug=name, drug_charge=charge, polarity=Polarity.CATHODE)
    assert validate(p, config.limits, catalog=config.drugs).drug_charge is Charge.ANIONIC
    with pytest.raises(PrescriptionRefused, match="must be delivered from the cathode"):
        validate(rx(drug=name, drug_charge=charge), config.limits, catalog=config.drugs)


def test_a_catalog_entry_under_another_name_of_a_known_drug_is_refused() -> None:
    with pytest.raises(ConfigError, match="'xylocaine' is another name of lidocaine"):
        parse_config(initial_text() + '\n[drugs.xylocaine]\ncharge = "+"\nsource = "label"\n')


def test_a_catalog_entry_contradicting_the_built_in_table_is_still_refused() -> None:
    text = initial_text().replace('[drugs.lidocaine]\ncharge = "+"', '[drugs.lidocaine]\ncharge = "0"')
    with pytest.raises(ConfigError, match="contradicts the built-in table"):
        parse_config(text)


# -- the chart gets the catalog's name ---------------------------------------------------------------------------


def test_a_session_prescribed_as_xylocaine_is_recorded_and_charted_as_lidocaine(tmp_path: Path) -> None:
    db = str(tmp_path / "clinic" / "records.sqlite3")  # in_clinic's store
    args = with_option(with_option(with_option(DEXAMETHASONE, "--drug", f"Xylo{ZWSP}caine"), "--polarity", "anode"),
                       "--dose", "3")  # fmt: skip
    with simulator(tmp_path) as (device, trace):
        done = ionctl("run", "--device", device, *args, *in_clinic(tmp_path), "--yes", "--json", input=TESS)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["prescription"]["drug"] == "lidocaine"
    assert any(row["current_ua"] > 0 for row in trace_rows(trace))
    record = ionctl("records", "export", str(result["record_id"]), "--format", "json", "--db", db)
    assert record.returncode == 0, record.stderr
    assert json.loads(json.loads(record.stdout)["record"]["prescription"])["drug"] == "lidocaine"
    fhir = ionctl("records", "export", str(result["record_id"]), "--format", "fhir", "--db", db)
    assert fhir.returncode == 0, fhir.stderr
    bundle = json.loads(fhir.stdout)
    for entry in bundle["entry"]:  # the chart PDF's base64 is no text to read (any 4 letters turn up in it)
        for content in entry["resource"].get("content", []):
            content["attachment"].pop("data")
    for chart in (record.stdout, json.dumps(bundle, ensure_ascii=False)):
        assert "lidocaine" in chart and "xylo" not in chart.lower() and ZWSP not in chart and "\\u200b" not in chart
