"""The chart's details of a session (`ionctl.records.clinical`), from the request, the preset or the course: the
treatment site is required and checked before any device is opened, and what is given goes into the record's
opening."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest

from ionctl.config import ConfigError, SiteConfig
from ionctl.config.people import Identity
from ionctl.config.site import packaged_text, parse_config
from ionctl.core.vocabulary import ExitCode
from ionctl.records import Store
from ionctl.records.clinical import BODY_SITES, ClinicalDetails
from ionctl.treatment import Refused, SessionRunner, TreatmentRequest, prepare
from ionctl.treatment.request import clinical_details
from sim.plant import LOAD_PRESETS
from tests.session.inprocess import simulated
from tests.treatment.test_prepare import DEXA

EXOSOMES = TreatmentRequest(device="inprocess:sim", operator="T", patient="P", preset="asc-exosome-hand-eczema",
                            electrode="patch-20cm2", duration_min=20.0)  # fmt: skip


def details_of(store: Store, record_id: int) -> ClinicalDetails:
    details = ClinicalDetails.of_record(store.get(record_id).fields)
    assert details is not None
    return details


def test_a_session_with_a_site_writes_it_and_the_preparation_into_its_record(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    request = replace(DEXA, site="Right hand", concentration="4 mg/mL", volume_ml=2.5, lot="L-2291",
                      prescriber="Dr. A. Rivera", electrode="patch-10cm2", electrode_area_cm2=None)  # fmt: skip
    prepared = prepare(request, store=store, config=config, operator=tess)
    source, _ = simulated(LOAD_PRESETS["normal"])
    opened: list[str] = []

    def open_source():  # type: ignore[no-untyped-def]
        opened.append("device")
        return source

    report = SessionRunner.of(prepared, open_source, store=store, messages=io.StringIO()).run()
    assert report.exit_code == ExitCode.OK and report.record_id is not None and opened
    details = details_of(store, report.record_id)
    assert details.site is not None and details.site.to_dict() == {"body_site": "hand", "laterality": "right"}
    assert (details.concentration, details.volume_ml, details.lot, details.prescriber) == (
        "4 mg/mL", 2.5, "L-2291", "Dr. A. Rivera")  # fmt: skip
    assert (details.electrode_product, details.electrode_type) == ("patch-10cm2", "drug-electrode patch")
    assert not details.simulated and details.visit is None


@pytest.mark.parametrize(("site", "said"), [(None, "give a treatment site"), ("", "give a treatment site"),
                                             ("left hnd", "not a treatment site"), ("hands", "say 'both hands'"),
                                             ("left back", "back has no side")])  # fmt: skip
def test_a_missing_or_unknown_site_is_refused_saying_what_is_accepted_with_no_record(
    config: SiteConfig, store: Store, tess: Identity, site: str | None, said: str
) -> None:
    with pytest.raises(Refused) as refused:
        prepare(replace(DEXA, site=site), store=store, config=config, operator=tess)
    assert said in refused.value.message
    if site is None or "hnd" in site:
        assert all(body_site in refused.value.message for body_site in BODY_SITES)
    assert refused.value.prescription is None  # nothing for a refusal record to hold: none is written
    assert store.list_records() == []


def test_the_preset_gives_its_site_concentration_and_volume_and_the_request_changes_them() -> None:
    config = parse_config(packaged_text() + '\n[presets.dexa-knee]\ndrug = "dexamethasone-sodium-phosphate"\n'
                          'polarity = "cathode"\nsite = "L knee"\nconcentration = "4 mg/mL"\nvolume_ml = 2.0\n'
                          'electrode = "patch-10cm2"\nsource = "a test"\n')  # fmt: skip
    assert config.preset("dexa-knee").site == "left knee"  # as the chart says it
    request = TreatmentRequest(device="x", operator="T", patient="P", preset="dexa-knee")
    given = clinical_details(request, config)
    assert given.site is not None and given.site.text == "left knee"
    assert (given.concentration, given.volume_ml, given.electrode_product) == ("4 mg/mL", 2.0, "patch-10cm2")
    changed = clinical_details(replace(request, site="both knees", concentration="2 mg/mL", volume_ml=1.0), config)
    assert changed.site is not None and changed.site.text == "both knees"
    assert (changed.concentration, changed.volume_ml) == ("2 mg/mL", 1.0)
    own_area = clinical_details(replace(request, electrode_area_cm2=12.0), config)
    assert own_area.electrode_product is None  # an area given instead: the preset's product is not what is used


def test_the_packaged_exosome_preset_gives_its_volume_and_both_hands() -> None:
    details = clinical_details(EXOSOMES, parse_config(packaged_text()))
    assert details.site is not None and details.site.text == "both hands" and details.volume_ml == 1.5


def test_a_course_session_takes_the_site_its_preset_gave_when_the_course_started() -> None:
    config = parse_config(packaged_text())
    course = {"id": 1, "patient": "P", "preset": "dexamethasone", "plan": {"preset": {"site": "right forearm"}}}
    request = TreatmentRequest(device="x", operator="T", course_id=1)
    details = clinical_details(request, config, course)
    assert details.site is not None and details.site.text == "right forearm"


def test_an_unknown_site_in_a_preset_is_a_configuration_error_naming_the_preset() -> None:
    with pytest.raises(ConfigError, match="dexa-elbow") as error:
        parse_config(packaged_text() + '\n[presets.dexa-elbow]\ndrug = "dexamethasone-sodium-phosphate"\n'
                     'polarity = "cathode"\nsite = "left elbw"\nsource = "a test"\n')  # fmt: skip
    assert "presets.dexa-elbow.site" in str(error.value) and all(site in str(error.value) for site in BODY_SITES)


def test_a_simulated_device_and_a_visit_channel_are_named_in_the_details() -> None:
    config = parse_config(packaged_text())
    on_sim = clinical_details(replace(EXOSOMES, device="sim:?load=normal"), config)
    assert on_sim.simulated
    said = clinical_details(replace(EXOSOMES, simulated=True), config)
    assert said.simulated
    channel = clinical_details(replace(EXOSOMES, site="left hand", visit={"id": "v1", "channel": 1, "channels": 2}),
                               config)  # fmt: skip
    assert channel.visit is not None and channel.visit.to_dict() == {"id": "v1", "channel": 1, "channels": 2}
    assert channel.site is not None and channel.site.text == "left hand"
