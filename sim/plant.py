"""Electrical model of a constant-current source driving an electrode/skin load.

Theory of operation
-------------------
The source drives its (slew-limited) current magnitude I into the load R_s + (R_p ∥ C_p), where C_p carries
the voltage Vc. The source is unipolar (it pushes current, it never sinks it) and cannot exceed its compliance
voltage V_comp, so at any instant the circuit is in one of three regimes:

    CC       I·R_s + Vc <= V_comp   the source delivers I;           C dVc/dt = I − Vc/R_p
    CV       otherwise, Vc < V_comp the source sits at V_comp;       I_out = (V_comp − Vc)/R_s < I
    BLOCKED  Vc >= V_comp           (compliance lowered below a charged load) no current; C_p drains through R_p

For constant R_p each regime has a closed-form solution and the time at which one regime hands over to the
next is solved analytically, so a step of any length is exact. R_p follows an effective charge q (it falls
while current flows and recovers at rest); it is held constant over a piece of a step at its value at the
piece's midpoint, and a step over which R_p could change by more than ~0.2 % is cut into pieces. So one 5 s
step agrees with 5000 steps of 1 ms to well under a percent. q itself always advances by the charge that
actually went through the skin.

Two paths, one algebra. The device simulator steps every 10 ms, and almost every such step is *plain*: the
source's slew, if any, is a sliver of the step (a firmware ramp moves a few µA per step, which the analog slew
covers in about a microsecond), and a bound from the largest current the source can deliver shows that R_p
cannot move by 0.2 %. A plain step is one closed-form piece. The sliver of slew is folded into the piece's
current, the step's mean current (so the charge is exact; folding is refused if that mean is more than 1e-5 off
the target). If R_p cannot move by even 0.01 %, the midpoint R_p comes from the previous step's skin current
(clamped to what the source can deliver, so it misses by under 0.005 %); otherwise from a predictor pass. Every
other step takes the general path: a predictor pass sizes the pieces, each piece finds its midpoint R_p with a
predictor pass of its own, and a slew is followed by splitting its ramp into a few constant-current pieces.

The relay and the fault hooks (lifted electrode, short, impedance step) change the circuit, not the regimes'
algebra. Everything is sans-I/O: time arrives as `dt_s`, randomness only through the injected `random.Random`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import NamedTuple

_UA = 1e-6  # amperes per microampere
_INF = math.inf
_TWO_PI = 2.0 * math.pi
_REST_CURRENT_UA = 1.0  # a step whose mean current is below this counts as rest: R_p recovers
_ZERO_CURRENT_UA = 1e-3  # below this the impedance (V/I) is reported as infinite

#: Device seconds one catch-up call may step a plant (a few ms of CPU): `SimulatedDevice.advance` and
#: `ScpiLink.advance` stop there, so a machine that cannot keep up slows the simulated clock rather than
#: stalling the serving loop.
MAX_CATCH_UP_S = 5.0

_RAMP_PIECES = 8  # constant-current pieces a slew ramp is split into (ramps last ~1 ms at the default slew)
# A slew that lasts at most this fraction of a step, and whose mean over the step is within this fraction of the
# target, is folded into one piece at the step's mean current.
_FOLDED_SLEW = 1e-3
_FOLDED_SLEW_MISS = 1e-5
_RP_CHANGE_PER_PIECE = 0.002  # a step is cut into pieces over which R_p changes by at most ~0.2 %
_GUESSED_RP_CHANGE = 1e-4  # below this bound on R_p's change a one-piece step needs no predictor pass
_MAX_PIECES = 10_000


@dataclass(frozen=True)
class LoadParams:
    """The electrode/skin load R_s + (R_p ∥ C_p) and how R_p falls with charge and recovers at rest.

    R_p = rp_min + (rp_rest − rp_min)·exp(−q/charge_scale), with q an effective charge that grows with
    |I|·dt while current flows and decays with `recovery_tau_s` at rest.
    """

    rs_ohm: float = 300.0  # docs/SOURCES.md "Skin model starting values": R_s ≈ 300 Ω
    rp_rest_ohm: float = 20_000.0  # docs/SOURCES.md: R_p from ≈ 20 kΩ ...
    rp_min_ohm: float = 3_000.0  # ... falling with charge toward ≈ 3 kΩ
    cp_uf: float = 0.5  # docs/SOURCES.md: C_p ≈ 0.5 µF (marked uncertain there)
    # Tunable estimate: with the defaults a 4 mA target at 60 V compliance starts at compliance (60 V/20.3 kΩ
    # ≈ 3 mA) and reaches 4 mA after ≈ 0.37 A·s, i.e. about 2 minutes (docs/SOURCES.md, last section).
    charge_scale_uas: float = 1_000_000.0
    # Tunable estimate: after a 40 mA·min session at 4 mA, R_p rises about 3x within 30 min of rest
    # (docs/SOURCES.md, citing Curdy, Kalia & Guy, AAPS PharmSci 2000).
    recovery_tau_s: float = 1_000.0

    def __post_init__(self) -> None:
        for name in ("rs_ohm", "rp_rest_ohm", "rp_min_ohm", "cp_uf", "charge_scale_uas", "recovery_tau_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"LoadParams.{name} must be a positive finite number, got {value!r}")
        if self.rp_min_ohm > self.rp_rest_ohm:
            raise ValueError(
                f"LoadParams.rp_min_ohm ({self.rp_min_ohm}) must not exceed rp_rest_ohm ({self.rp_rest_ohm})"
            )

    def rp_ohm(self, q_uas: float) -> float:
        """R_p after an effective charge of `q_uas` µA·s."""
        return self.rp_min_ohm + (self.rp_rest_ohm - self.rp_min_ohm) * math.exp(-q_uas / self.charge_scale_uas)


LOAD_PRESETS: dict[str, LoadParams] = {
    # docs/SOURCES.md starting values, as in LoadParams' defaults.
    "normal": LoadParams(),
    # Tunable estimate: dry or thick skin, small electrodes — three times the resting impedance, less capacitance.
    "high-impedance": LoadParams(rs_ohm=500.0, rp_rest_ohm=60_000.0, rp_min_ohm=6_000.0, cp_uf=0.3),
    # Tunable estimate: hands in tap-water trays (docs/SOURCES.md: 15–20 mA for up to ~30 min, large trays). The wetted
    # area is ~10x a drug electrode's, so impedance is much lower, capacitance higher, and R_p needs ~10x the
    # charge to fall as far. 20 mA then needs ≈ 43 V at rest, within a 60 V compliance. About 2 kΩ at rest sits
    # at the low end of "30–60 V against 2–6 kΩ of body resistance" for tray devices (docs/SOURCES.md, tap-water
    # devices), and stays above the packaged min_running_impedance_ohm (500 Ω). The load `ionctl demo` uses for
    # the packaged `tap-water-hands` preset (15 mA on 100 cm² trays).
    "tap-water-hands": LoadParams(
        rs_ohm=150.0, rp_rest_ohm=2_000.0, rp_min_ohm=800.0, cp_uf=5.0, charge_scale_uas=10_000_000.0
    ),
}


@dataclass(frozen=True)
class PlantSample:
    """The true electrical state at the end of a step (what a perfect meter would read)."""

    t_s: float  # plant time: the sum of every dt so far
    current_ua: float  # delivered current magnitude
    voltage_v: float  # output voltage magnitude
    impedance_ohm: float  # voltage/current; math.inf when no current flows
    at_compliance: bool  # current is demanded but the source is voltage-limited (or the load is open)
    rp_ohm: float
    charge_uas: float  # cumulative |I|·dt delivered: monotonic, the ground-truth dose


@dataclass(frozen=True)
class Measurement:
    """What the device's sensors report: the truth with drift and noise."""

    current_ua: float
    voltage_mv: float


# Where the source's current goes.
_SKIN, _RELAY_OPEN, _LIFTED, _SHORTED = "skin", "relay open", "lifted", "shorted"
# The skin circuit's regimes.
_CC, _CV, _BLOCKED = "CC", "CV", "BLOCKED"


class _Circuit(NamedTuple):
    """What stays constant until a control or fault hook changes it, in SI units. R_p, which moves with charge,
    is passed on its own."""

    rs_ohm: float
    c_f: float
    v_comp: float
    path: str  # _SKIN, _RELAY_OPEN, _LIFTED or _SHORTED
    short_ohm: float


# What a piece of a step leaves behind: (Vc, charge from the source, the part of it through the skin (drives R_p),
# output current, output voltage, at compliance), in SI units.
_Outcome = tuple[float, float, float, float, float, bool]


def _skin(
    rs: float, rp: float, c_f: float, v_comp: float, vc: float, i_a: float, dt: float
) -> tuple[float, float, str]:
    """Exact solution over `dt` with the source set to `i_a` and the skin load connected: (Vc, charge, regime)."""
    v_th = v_comp - i_a * rs  # capacitor voltage at which the CC and CV regimes meet
    regime = _CC if vc <= v_th else _CV if vc < v_comp else _BLOCKED
    charge = 0.0
    left = dt
    for _ in range(4):  # at most BLOCKED -> CV -> CC; the bound is only a guard
        crossing = _INF
        if regime is _CC:
            tau = rp * c_f
            v_inf = i_a * rp
            if v_inf > v_th and vc <= v_th:
                crossing = tau * math.log((v_inf - vc) / (v_inf - v_th))
            t = left if left < crossing else crossing
            vc = v_inf + (vc - v_inf) * math.exp(-t / tau)
            charge += i_a * t
            after = _CV
        elif regime is _CV:
            tau = c_f * rs * rp / (rs + rp)
            v_inf = v_comp * rp / (rs + rp)
            if v_th > v_inf and vc > v_th:
                crossing = tau * math.log((vc - v_inf) / (v_th - v_inf))
            t = left if left < crossing else crossing
            charge += ((v_comp - v_inf) * t + (vc - v_inf) * tau * math.expm1(-t / tau)) / rs
            vc = v_inf + (vc - v_inf) * math.exp(-t / tau)
            after = _CC
        else:
            if v_comp > 0.0 and vc > v_comp:
                crossing = rp * c_f * math.log(vc / v_comp)
            t = left if left < crossing else crossing
            vc *= math.exp(-t / (rp * c_f))
            after = _CV if i_a > 0.0 else _CC
        left -= t
        if crossing > t:
            break
        # The hand-over happens inside the step: pin Vc to the boundary so round-off cannot bounce it back.
        vc = v_th if regime is not _BLOCKED else v_comp
        regime = after
        if left <= 0.0:
            break
    return vc, charge, regime


def _hold(c: _Circuit, rp: float, vc: float, i_a: float, i_end: float, dt: float) -> _Outcome:
    """Exact solution over `dt` with the source at the constant magnitude `i_a`. `i_end` is the source current at
    the end, which differs from `i_a` only when a sliver of slew was folded into the piece."""
    path = c.path
    if path is _SKIN:
        vc, charge, regime = _skin(c.rs_ohm, rp, c.c_f, c.v_comp, vc, i_a, dt)
        if regime is _CC:
            return vc, charge, charge, i_end, min(i_end * c.rs_ohm + vc, c.v_comp), False
        if regime is _CV:
            return vc, charge, charge, min(i_end, max(0.0, (c.v_comp - vc) / c.rs_ohm)), c.v_comp, True
        return vc, charge, charge, 0.0, vc, i_end > 0.0
    drained = vc * math.exp(-dt / (rp * c.c_f))  # C_p alone, discharging through R_p
    if path is _RELAY_OPEN:
        return drained, 0.0, 0.0, 0.0, 0.0, False
    if path is _LIFTED:
        demanded = i_end > 0.0
        return drained, 0.0, 0.0, 0.0, c.v_comp if demanded else 0.0, demanded
    limit = c.v_comp / c.short_ohm
    current = min(i_end, limit)
    return drained, min(i_a, limit) * dt, 0.0, current, current * c.short_ohm, i_end * c.short_ohm > c.v_comp


def _advance(
    c: _Circuit, rp: float, vc: float, src_a: float, target_a: float, slew_a_per_s: float, dt: float
) -> tuple[_Outcome, float]:
    """Advance `dt` while the source current slews from `src_a` toward `target_a`; return the outcome and the
    source current at the end."""
    charge = skin_charge = 0.0
    if c.path is _RELAY_OPEN:
        src_a = target_a  # no output current to limit: the set point is simply where it was asked to be
    t_ramp = abs(target_a - src_a) / slew_a_per_s
    t1 = min(dt, t_ramp)
    direction = 1.0 if target_a > src_a else -1.0
    if t1 > 0.0:
        piece = t1 / _RAMP_PIECES
        for k in range(_RAMP_PIECES):
            i_a = src_a + direction * slew_a_per_s * (k + 0.5) * piece
            vc, q, q_skin, *_ = _hold(c, rp, vc, i_a, i_a, piece)
            charge, skin_charge = charge + q, skin_charge + q_skin
    src_a = target_a if t1 >= t_ramp else src_a + direction * slew_a_per_s * t1
    vc, q, q_skin, current, voltage, at_compliance = _hold(c, rp, vc, src_a, src_a, dt - t1)
    return (vc, charge + q, skin_charge + q_skin, current, voltage, at_compliance), src_a


def _next_q(q_uas: float, skin_charge_uas: float, dt_s: float, recovery_tau_s: float) -> float:
    """Effective charge after `dt_s`: it grows with charge through the skin, and decays only at rest."""
    if dt_s <= 0.0 or skin_charge_uas >= _REST_CURRENT_UA * dt_s:
        return q_uas + skin_charge_uas
    return q_uas * math.exp(-dt_s / recovery_tau_s)


def _check_finite(name: str, value: float, *, minimum: float = 0.0) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= minimum):
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")


class Plant:
    """A slew-limited constant-current source with a compliance voltage, an output relay and a skin load."""

    def __init__(
        self,
        load: LoadParams,
        *,
        compliance_v: float = 60.0,
        slew_ua_per_s: float = 5_000_000.0,
        noise_rel: float = 0.002,
        noise_abs_ua: float = 2.0,
        noise_abs_mv: float = 2.0,
        rng: random.Random,
    ) -> None:
        _check_finite("compliance_v", compliance_v)
        if not (isinstance(slew_ua_per_s, int | float) and slew_ua_per_s > 0):
            raise ValueError(f"slew_ua_per_s must be positive, got {slew_ua_per_s!r}")
        _check_finite("noise_rel", noise_rel)
        _check_finite("noise_abs_ua", noise_abs_ua)
        _check_finite("noise_abs_mv", noise_abs_mv)
        self._load = load
        self._compliance_v = float(compliance_v)
        self._slew_a_per_s = slew_ua_per_s * _UA
        self._noise_rel = noise_rel
        self._noise_abs_ua = noise_abs_ua
        self._noise_abs_mv = noise_abs_mv
        self._rng = rng
        self._relay_closed = False
        self._open_circuit = False
        self._short_ohm: float | None = None
        self._rs_extra_ohm = 0.0
        self._current_gain = 1.0
        self._voltage_gain = 1.0
        self._circuit_now: _Circuit | None = None  # built on demand; every control and fault hook clears it
        self._vc_v = 0.0
        self._src_a = 0.0
        self._q_uas = 0.0
        self._rp_now_ohm = load.rp_ohm(0.0)  # R_p at q, kept with q
        self._skin_ua = 0.0  # mean current through the skin over the last step: estimates the next one's
        self._sample = PlantSample(0.0, 0.0, 0.0, math.inf, False, load.rp_rest_ohm, 0.0)

    # -- state -------------------------------------------------------------------------------------------------

    @property
    def load(self) -> LoadParams:
        return self._load

    @property
    def sample(self) -> PlantSample:
        """The state at the end of the last step."""
        return self._sample

    @property
    def output_on(self) -> bool:
        return self._relay_closed

    @property
    def source_current_ua(self) -> float:
        """The source's own current set point: slew-limited while the relay is closed, following the request at
        once while it is open. The load may accept less."""
        return self._src_a / _UA

    @property
    def rp_ohm(self) -> float:
        return self._rp_now_ohm

    @property
    def compliance_v(self) -> float:
        return self._compliance_v

    @compliance_v.setter
    def compliance_v(self, value: float) -> None:
        """Change the compliance voltage (a SourceMeter's voltage protection setting maps here)."""
        _check_finite("compliance_v", value)
        self._compliance_v = float(value)
        self._circuit_now = None

    # -- controls and fault hooks ------------------------------------------------------------------------------

    def set_output(self, on: bool) -> None:
        """Close (True) or open (False) the output relay. Open: exactly zero current."""
        self._relay_closed = bool(on)
        self._circuit_now = None

    def lift_electrode(self) -> None:
        """Open circuit: no current can flow; the source rails to compliance if current is demanded."""
        self._open_circuit = True
        self._circuit_now = None

    def restore_contact(self) -> None:
        self._open_circuit = False
        self._circuit_now = None

    def short(self, ohm: float = 50.0) -> None:
        """The electrodes touch: the whole load collapses to `ohm`, bypassing the skin."""
        if not (isinstance(ohm, int | float) and math.isfinite(ohm) and ohm > 0):
            raise ValueError(f"short resistance must be positive, got {ohm!r}")
        self._short_ohm = float(ohm)
        self._circuit_now = None

    def clear_short(self) -> None:
        self._short_ohm = None
        self._circuit_now = None

    def impedance_step(self, ohm: float) -> None:
        """Add `ohm` to R_s from now on (e.g. a drying sponge); cumulative."""
        finite = isinstance(ohm, int | float) and math.isfinite(ohm)
        if not finite or self._load.rs_ohm + self._rs_extra_ohm + ohm <= 0:
            raise ValueError(f"impedance step {ohm!r} would leave R_s non-positive")
        self._rs_extra_ohm += ohm
        self._circuit_now = None

    def set_sensor_drift(self, pct: float, *, voltage_pct: float = 0.0) -> None:
        """Make the current sensor read `pct` percent high (negative: low); `voltage_pct` does the same for the
        voltage sensor. Zero removes the drift."""
        for name, value in (("pct", pct), ("voltage_pct", voltage_pct)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > -100):
                raise ValueError(f"sensor drift {name} must be a finite number above -100, got {value!r}")
        self._current_gain = 1.0 + pct / 100.0
        self._voltage_gain = 1.0 + voltage_pct / 100.0

    # -- dynamics ----------------------------------------------------------------------------------------------

    def step(self, dt_s: float, set_current_ua: float) -> PlantSample:
        """Advance by `dt_s` with the source asked for `set_current_ua` (a magnitude) and return the new state.

        `dt_s` may be 0: the result is then the instantaneous state after a change of relay, fault or compliance.
        """
        if not (type(dt_s) is float and 0.0 <= dt_s < _INF):  # the usual case costs two comparisons
            _check_finite("dt_s", dt_s)
        if not (type(set_current_ua) is float and 0.0 <= set_current_ua < _INF):
            _check_finite("set_current_ua", set_current_ua)
        target_a = set_current_ua * _UA
        out = self._plain_step(dt_s, target_a)
        if out is None:
            out = self._general_step(dt_s, target_a)
        charge_as, current_a, voltage_v, at_compliance = out
        before = self._sample
        current_ua = current_a / _UA
        self._sample = PlantSample(
            before.t_s + dt_s,
            current_ua,
            voltage_v,
            voltage_v / current_a if current_ua > _ZERO_CURRENT_UA else _INF,
            at_compliance,
            self._rp_now_ohm,
            before.charge_uas + charge_as / _UA,
        )
        return self._sample

    def measure(self, sample: PlantSample) -> Measurement:
        """Read `sample` through the sensors: Gaussian noise (σ = noise_rel·|x| + noise_abs), then drift.

        Readings are magnitudes, so they are clipped at zero: noise never reports current flowing backwards.
        """
        uniform = self._rng.random
        # Box–Muller: one pair of uniforms gives the two independent standard normals the two sensors need.
        radius = math.sqrt(-2.0 * math.log(1.0 - uniform()))
        angle = _TWO_PI * uniform()
        current = sample.current_ua
        current += radius * math.cos(angle) * (self._noise_rel * current + self._noise_abs_ua)
        voltage = sample.voltage_v * 1000.0
        voltage += radius * math.sin(angle) * (self._noise_rel * voltage + self._noise_abs_mv)
        current *= self._current_gain
        voltage *= self._voltage_gain
        return Measurement(current if current > 0.0 else 0.0, voltage if voltage > 0.0 else 0.0)

    def _plain_step(self, dt_s: float, target_a: float) -> tuple[float, float, float, bool] | None:
        """A plain step in one piece — (charge, current, voltage, at compliance) — or None if the step is not
        plain: the slew lasts more than a sliver of it, or R_p could move by more than ~0.2 % over it."""
        i_mean = self._folded_current(dt_s, target_a)
        if i_mean is None:
            return None
        c = self._circuit_now or self._circuit()
        load, q0, rp0, vc0 = self._load, self._q_uas, self._rp_now_ohm, self._vc_v
        i_max_ua = max(self._src_a, target_a) / _UA if c.path is _SKIN else 0.0
        # R_p − R_min = (R_rest − R_min)·e^(−q/s) changes by at most the factor 1 − e^(−Δq/s) <= Δq/s as q grows
        # by Δq <= I_max·dt, or e^(Δq/s) − 1 as q recovers by Δq <= q·dt/τ: a bound on |ΔR_p|/R_p over the step.
        scale = load.charge_scale_uas
        recovery = q0 * dt_s / (load.recovery_tau_s * scale)
        if recovery > 1.0:
            return None
        rp_bound = (rp0 - load.rp_min_ohm) / rp0 * (i_max_ua * dt_s / scale + math.expm1(recovery))
        if rp_bound > _RP_CHANGE_PER_PIECE:
            return None
        half = 0.5 * dt_s
        if rp_bound <= _GUESSED_RP_CHANGE:  # the skin current of the last step will do: R_p misses by < bound/2
            skin_half_uas = min(self._skin_ua, i_max_ua) * half
        else:  # a predictor pass, with R_p as it is now
            skin_half_uas = _hold(c, rp0, vc0, i_mean, target_a, dt_s)[2] / _UA / 2.0
        rp_mid = load.rp_ohm(_next_q(q0, skin_half_uas, half, load.recovery_tau_s))
        vc, charge, skin_charge, current, voltage, at_compliance = _hold(c, rp_mid, vc0, i_mean, target_a, dt_s)
        self._vc_v, self._src_a = vc, target_a
        self._charge_skin(q0, skin_charge, dt_s)
        return charge, current, voltage, at_compliance

    def _folded_current(self, dt_s: float, target_a: float) -> float | None:
        """The constant current that stands for the source over the step: the target, or the step's mean current
        (exact in charge) if the slew to the target is only a sliver of the step; None if it is more."""
        src_a = self._src_a
        if src_a == target_a or not self._relay_closed:
            return target_a  # with the relay open the set point follows the request at once
        t_ramp = abs(target_a - src_a) / self._slew_a_per_s
        if t_ramp == 0.0:  # an infinite slew
            return target_a
        missed_a = (target_a - src_a) * t_ramp / (2.0 * dt_s) if dt_s > 0.0 else _INF  # (target − src)·t_ramp/2/dt
        if t_ramp > _FOLDED_SLEW * dt_s or abs(missed_a) > _FOLDED_SLEW_MISS * target_a:
            return None
        return target_a - missed_a

    def _general_step(self, dt_s: float, target_a: float) -> tuple[float, float, float, bool]:
        """Any step, cut into pieces over which R_p changes by at most ~0.2 % (a predictor pass counts them)."""
        load = self._load
        c = self._circuit_now or self._circuit()
        predictor, _ = _advance(c, self._rp_now_ohm, self._vc_v, self._src_a, target_a, self._slew_a_per_s, dt_s)
        rp_next = load.rp_ohm(_next_q(self._q_uas, predictor[2] / _UA, dt_s, load.recovery_tau_s))
        rp_change = abs(rp_next - self._rp_now_ohm) / self._rp_now_ohm
        pieces = min(_MAX_PIECES, max(1, math.ceil(rp_change / _RP_CHANGE_PER_PIECE)))
        charge_as = skin_as = 0.0
        for _ in range(pieces):
            out = self._piece(c, dt_s / pieces, target_a)
            charge_as, skin_as = charge_as + out[1], skin_as + out[2]
        if dt_s > 0.0:
            self._skin_ua = skin_as / _UA / dt_s
        return charge_as, out[3], out[4], out[5]

    def _piece(self, c: _Circuit, dt_s: float, target_a: float) -> _Outcome:
        """Advance one piece with R_p at its value at the piece's midpoint (found by a predictor pass)."""
        load, q0 = self._load, self._q_uas
        predictor, _ = _advance(c, self._rp_now_ohm, self._vc_v, self._src_a, target_a, self._slew_a_per_s, dt_s)
        rp_mid = load.rp_ohm(_next_q(q0, predictor[2] / _UA / 2.0, dt_s / 2.0, load.recovery_tau_s))
        out, self._src_a = _advance(c, rp_mid, self._vc_v, self._src_a, target_a, self._slew_a_per_s, dt_s)
        self._vc_v = out[0]
        self._charge_skin(q0, out[2], dt_s)
        return out

    def _charge_skin(self, q0_uas: float, skin_charge_as: float, dt_s: float) -> None:
        """Move q (and R_p with it) on from `q0_uas` by a piece of `dt_s` that put `skin_charge_as` through the skin."""
        load = self._load
        self._q_uas = q = _next_q(q0_uas, skin_charge_as / _UA, dt_s, load.recovery_tau_s)
        self._rp_now_ohm = load.rp_ohm(q)
        if dt_s > 0.0:
            self._skin_ua = skin_charge_as / _UA / dt_s

    def _circuit(self) -> _Circuit:
        if not self._relay_closed:
            path = _RELAY_OPEN
        elif self._open_circuit:
            path = _LIFTED
        else:
            path = _SKIN if self._short_ohm is None else _SHORTED
        self._circuit_now = _Circuit(
            rs_ohm=self._load.rs_ohm + self._rs_extra_ohm,
            c_f=self._load.cp_uf * 1e-6,
            v_comp=self._compliance_v,
            path=path,
            short_ohm=self._short_ohm or _INF,
        )
        return self._circuit_now
