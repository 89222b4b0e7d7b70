"""The plant against closed-form answers: RC charging, the compliance clamp, R_p's fall and recovery, faults,
slew, sensor noise and drift, and agreement between one long step and many short ones."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.plant import LOAD_PRESETS, LoadParams, Measurement, Plant

FROZEN = LoadParams(charge_scale_uas=1e30)  # R_p stays at rest: the circuit is a fixed RC network
RS, RP, C = FROZEN.rs_ohm, FROZEN.rp_rest_ohm, FROZEN.cp_uf * 1e-6
TAU_P = RP * C  # 10 ms


def make_plant(load: LoadParams = FROZEN, *, seed: int = 1, **kwargs: float) -> Plant:
    plant = Plant(load, rng=random.Random(seed), **kwargs)
    plant.set_output(True)
    return plant


def cc_voltage(i_ua: float, t_s: float) -> float:
    """Output voltage of a constant current into R_s + (R_p ∥ C) from an uncharged capacitor."""
    i = i_ua * 1e-6
    return i * RS + i * RP * (1.0 - math.exp(-t_s / TAU_P))


# -- constant current below compliance -------------------------------------------------------------------------


def test_rc_charging_with_small_steps_matches_the_closed_form() -> None:
    plant = make_plant(slew_ua_per_s=math.inf)
    for k in range(1, 51):
        sample = plant.step(0.001, 1000.0)
        assert sample.voltage_v == pytest.approx(cc_voltage(1000.0, k * 0.001), rel=1e-9)
        assert sample.current_ua == pytest.approx(1000.0)
        assert not sample.at_compliance


def test_rc_charging_with_one_big_step_matches_the_closed_form() -> None:
    sample = make_plant(slew_ua_per_s=math.inf).step(0.03, 1000.0)
    assert sample.voltage_v == pytest.approx(cc_voltage(1000.0, 0.03), rel=1e-9)
    assert sample.charge_uas == pytest.approx(1000.0 * 0.03, rel=1e-9)


def test_impedance_is_voltage_over_current_and_infinite_without_current() -> None:
    plant = make_plant(slew_ua_per_s=math.inf)
    sample = plant.step(1.0, 1000.0)
    assert sample.impedance_ohm == pytest.approx(RS + RP, rel=1e-9)
    plant.set_output(False)
    assert plant.step(0.1, 1000.0).impedance_ohm == math.inf


# -- compliance ------------------------------------------------------------------------------------------------


def test_compliance_clamp_switches_to_a_voltage_source_at_the_exact_crossing() -> None:
    i = 4000e-6
    v_th = 60.0 - i * RS  # capacitor voltage at which I·R_s + Vc reaches compliance
    t_cross = TAU_P * math.log(i * RP / (i * RP - v_th))
    g = RS * RP / (RS + RP)
    v_inf = 60.0 * RP / (RS + RP)
    after = 0.1e-3
    vc = v_inf + (v_th - v_inf) * math.exp(-after / (C * g))

    sample = make_plant(slew_ua_per_s=math.inf).step(t_cross + after, 4000.0)

    assert sample.at_compliance
    assert sample.voltage_v == 60.0
    assert sample.current_ua == pytest.approx((60.0 - vc) / RS * 1e6, rel=1e-9)


def test_just_before_the_crossing_the_source_still_delivers_its_current() -> None:
    i = 4000e-6
    t_cross = TAU_P * math.log(i * RP / (i * RP - (60.0 - i * RS)))
    sample = make_plant(slew_ua_per_s=math.inf).step(t_cross * 0.99, 4000.0)
    assert not sample.at_compliance
    assert sample.current_ua == pytest.approx(4000.0)
    assert sample.voltage_v < 60.0


def test_steady_state_at_compliance_is_ohms_law_across_the_whole_load() -> None:
    sample = make_plant().step(1.0, 4000.0)
    assert sample.at_compliance
    assert sample.current_ua == pytest.approx(60.0 / (RS + RP) * 1e6, rel=1e-9)


def test_lowering_compliance_never_raises_the_output_voltage_above_it() -> None:
    plant = make_plant()
    plant.step(1.0, 1000.0)  # ~20 V on the load
    plant.compliance_v = 5.0
    sample = plant.step(0.001, 1000.0)
    assert sample.current_ua == 0.0  # the charged skin holds the terminals above 5 V: a source cannot sink
    for _ in range(200):
        sample = plant.step(0.01, 1000.0)
    assert sample.voltage_v == pytest.approx(5.0)
    assert sample.current_ua == pytest.approx(5.0 / (RS + RP) * 1e6, rel=1e-6)


# -- R_p follows charge ----------------------------------------------------------------------------------------


def test_a_4_ma_target_at_60_v_starts_at_compliance_and_reaches_4_ma_within_1_to_3_minutes() -> None:
    plant = make_plant(LOAD_PRESETS["normal"])
    assert plant.step(0.1, 4000.0).at_compliance
    while plant.step(0.5, 4000.0).at_compliance:
        assert plant.sample.t_s < 180.0
    assert plant.sample.t_s > 60.0
    assert plant.sample.current_ua == pytest.approx(4000.0)


def test_rp_falls_with_charge_and_recovers_about_threefold_within_30_minutes_at_rest() -> None:
    plant = make_plant(LoadParams())
    while plant.sample.charge_uas < 40 * 60_000:  # a 40 mA·min session at 4 mA
        plant.step(1.0, 4000.0)
    rp_end = plant.sample.rp_ohm
    assert rp_end < 6_000.0
    plant.set_output(False)
    previous = rp_end
    for _ in range(30):
        sample = plant.step(60.0, 0.0)
        assert sample.rp_ohm > previous
        previous = sample.rp_ohm
    assert 2.5 < previous / rp_end < 4.0
    assert previous < LoadParams().rp_rest_ohm


def test_large_and_small_steps_agree_while_rp_changes() -> None:
    for current_ua in (1000.0, 4000.0):  # below compliance, and at compliance
        coarse, fine = make_plant(LoadParams()), make_plant(LoadParams())
        big = coarse.step(5.0, current_ua)
        for _ in range(5000):
            small = fine.step(0.001, current_ua)
        assert big.voltage_v == pytest.approx(small.voltage_v, rel=0.005)
        assert big.current_ua == pytest.approx(small.current_ua, rel=0.005)
        assert big.charge_uas == pytest.approx(small.charge_uas, rel=0.005)
        assert big.rp_ohm == pytest.approx(small.rp_ohm, rel=0.005)


def slow_ramp_then_hold(dt_s: float, compliance_v: float) -> tuple[float, float, float, float]:
    """0 → 4 mA at 133 µA/s (as the firmware ramps, a little each step), then 60 s at 4 mA."""
    plant = make_plant(LoadParams(), compliance_v=compliance_v)
    ramp_s, hold_s = 4000.0 / 133.0, 60.0
    steps = round((ramp_s + hold_s) / dt_s)
    for k in range(1, steps + 1):
        sample = plant.step(dt_s, min(4000.0, 133.0 * k * dt_s))
    return sample.charge_uas, sample.voltage_v, sample.current_ua, sample.rp_ohm


@pytest.mark.parametrize("compliance_v", [60.0, 100.0])  # at compliance for a while, and never
def test_a_slow_ramp_at_10_ms_steps_matches_the_same_ramp_at_1_ms_steps(compliance_v: float) -> None:
    coarse = slow_ramp_then_hold(0.01, compliance_v)
    fine = slow_ramp_then_hold(0.001, compliance_v)
    assert coarse == pytest.approx(fine, rel=0.005)  # charge, final voltage, current and R_p


# -- relay and faults ------------------------------------------------------------------------------------------


def test_open_relay_gives_exactly_zero_current_and_the_skin_discharges_through_rp() -> None:
    plant = make_plant(slew_ua_per_s=math.inf)
    v0 = plant.step(1.0, 1000.0).voltage_v - 1000e-6 * RS  # capacitor voltage, fully charged
    plant.set_output(False)
    sample = plant.step(5 * TAU_P, 1000.0)
    assert sample.current_ua == 0.0
    assert sample.voltage_v == 0.0
    plant.set_output(True)
    assert plant.step(0.0, 0.0).voltage_v == pytest.approx(v0 * math.exp(-5.0), rel=1e-9)


def test_lifted_electrode_gives_no_current_at_compliance_voltage() -> None:
    plant = make_plant()
    charge = plant.step(1.0, 1000.0).charge_uas
    plant.lift_electrode()
    sample = plant.step(1.0, 1000.0)
    assert sample.current_ua == 0.0
    assert sample.voltage_v == 60.0
    assert sample.at_compliance
    assert sample.charge_uas == charge
    plant.restore_contact()
    assert plant.step(1.0, 1000.0).current_ua == pytest.approx(1000.0)


def test_short_delivers_the_set_current_at_a_low_voltage() -> None:
    plant = make_plant()
    plant.short(50.0)
    sample = plant.step(1.0, 4000.0)
    assert sample.current_ua == pytest.approx(4000.0)
    assert sample.voltage_v == pytest.approx(0.2)
    assert sample.impedance_ohm == pytest.approx(50.0)
    plant.clear_short()
    assert plant.step(1.0, 1000.0).impedance_ohm > 10_000.0


def test_impedance_step_adds_to_the_series_resistance() -> None:
    plant = make_plant()
    before = plant.step(1.0, 1000.0).voltage_v
    plant.impedance_step(500.0)
    assert plant.step(0.0, 1000.0).voltage_v == pytest.approx(before + 0.5, rel=1e-9)


def test_slew_limits_how_fast_the_source_current_moves() -> None:
    plant = make_plant(slew_ua_per_s=1000.0)
    for k in range(1, 21):
        assert plant.step(0.1, 2000.0).current_ua == pytest.approx(100.0 * k)
    assert plant.step(10.0, 2000.0).current_ua == pytest.approx(2000.0)
    assert plant.step(0.5, 0.0).current_ua == pytest.approx(1500.0)
    assert plant.source_current_ua == pytest.approx(1500.0)


def test_with_the_relay_open_the_set_point_follows_the_request_at_once() -> None:
    plant = make_plant(slew_ua_per_s=1000.0)
    plant.set_output(False)
    plant.step(0.0, 2000.0)
    assert plant.source_current_ua == pytest.approx(2000.0)
    plant.set_output(True)
    assert plant.step(0.0, 2000.0).current_ua == pytest.approx(2000.0)


# -- sensors ---------------------------------------------------------------------------------------------------


def measurements(seed: int, n: int = 50, drift_pct: float = 0.0) -> list[Measurement]:
    plant = make_plant(seed=seed)
    plant.set_sensor_drift(drift_pct)
    sample = plant.step(1.0, 1000.0)
    return [plant.measure(sample) for _ in range(n)]


def test_measurement_noise_is_reproducible_for_a_given_seed() -> None:
    assert measurements(7) == measurements(7)
    assert measurements(7) != measurements(8)


def test_sensor_drift_scales_the_current_reading() -> None:
    truth = make_plant().step(1.0, 1000.0).current_ua
    plain = statistics.fmean(m.current_ua for m in measurements(3, n=400))
    drifted = statistics.fmean(m.current_ua for m in measurements(3, n=400, drift_pct=20.0))
    assert plain == pytest.approx(truth, rel=0.002)
    assert drifted == pytest.approx(1.2 * truth, rel=0.002)


def test_noise_never_makes_a_zero_reading_negative() -> None:
    plant = make_plant()
    plant.set_output(False)
    sample = plant.step(1.0, 1000.0)
    readings = [plant.measure(sample) for _ in range(200)]
    assert all(m.current_ua >= 0.0 and m.voltage_mv >= 0.0 for m in readings)
    assert any(m.current_ua > 0.0 for m in readings)


# -- parameters ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"rs_ohm": 0.0}, {"cp_uf": -1.0}, {"rp_min_ohm": 30_000.0}, {"recovery_tau_s": math.inf}],
)
def test_load_params_refuse_non_physical_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="LoadParams"):
        LoadParams(**kwargs)


def test_presets_include_normal_high_impedance_and_tap_water_hands() -> None:
    assert LOAD_PRESETS["normal"] == LoadParams()
    assert LOAD_PRESETS["high-impedance"].rp_rest_ohm > LoadParams().rp_rest_ohm
    tap = make_plant(LOAD_PRESETS["tap-water-hands"]).step(1.0, 20_000.0)
    assert tap.current_ua == pytest.approx(20_000.0)  # 15–20 mA trays work within 60 V
    assert not tap.at_compliance


def test_step_refuses_negative_time_and_current() -> None:
    plant = make_plant()
    with pytest.raises(ValueError):
        plant.step(-0.1, 100.0)
    with pytest.raises(ValueError):
        plant.step(0.1, -100.0)


# -- invariants ------------------------------------------------------------------------------------------------

actions = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=10.0),  # dt_s
        st.floats(min_value=0.0, max_value=20_000.0),  # set_current_ua
        st.sampled_from(["none", "none", "none", "relay", "lift", "restore", "short", "clear"]),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(
    preset=st.sampled_from(sorted(LOAD_PRESETS)),
    slew=st.sampled_from([100.0, 10_000.0, 5_000_000.0]),
    steps=actions,
)
def test_invariants_hold_over_random_step_sequences(
    preset: str, slew: float, steps: list[tuple[float, float, str]]
) -> None:
    plant = make_plant(LOAD_PRESETS[preset], slew_ua_per_s=slew)
    previous = plant.sample
    for dt, set_ua, action in steps:
        if action == "relay":
            plant.set_output(not plant.output_on)
        elif action == "lift":
            plant.lift_electrode()
        elif action == "restore":
            plant.restore_contact()
        elif action == "short":
            plant.short(50.0)
        elif action == "clear":
            plant.clear_short()
        source_before = plant.source_current_ua
        sample = plant.step(dt, set_ua)
        assert 0.0 <= sample.voltage_v <= plant.compliance_v + 1e-9
        assert 0.0 <= sample.current_ua <= max(set_ua, source_before) + 1e-6
        if plant.output_on:
            assert abs(plant.source_current_ua - source_before) <= slew * dt + 1e-6
        assert sample.charge_uas >= previous.charge_uas
        assert sample.t_s == pytest.approx(previous.t_s + dt)
        previous = sample
