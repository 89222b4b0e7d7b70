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
piece's midpoint (a predictor pass finds the piece's charge), and a step over which R_p would change by more
than ~0.2 % is cut into pieces. So one 5 s step agrees with 5000 steps of 1 ms to well under a percent, and
a step costs one piece unless R_p really moves. The source's slew is followed by splitting the ramp into a
few constant-current pieces.

The relay and the fault hooks (lifted electrode, short, impedance step) change the circuit, not the regimes'
algebra. Everything is sans-I/O: time arrives as `dt_s`, randomness only through the injected `random.Random`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

_UA = 1e-6  # amperes per microampere
_REST_CURRENT_UA = 1.0  # a step whose mean current is below this counts as rest: R_p recovers
_ZERO_CURRENT_UA = 1e-3  # below this the impedance (V/I) is reported as infinite
_RAMP_PIECES = 8  # constant-current pieces a slew ramp is split into (ramps last ~1 ms at the default slew)
_RP_CHANGE_PER_PIECE = 0.002  # a step is cut into pieces over which R_p changes by at most ~0.2 %
_MAX_PIECES = 10_000


@dataclass(frozen=True)
class LoadParams:
    """The electrode/skin load R_s + (R_p ∥ C_p) and how R_p falls with charge and recovers at rest.

    R_p = rp_min + (rp_rest − rp_min)·exp(−q/charge_scale), with q an effective charge that grows with
    |I|·dt while current flows and decays with `recovery_tau_s` at rest.
    """

    rs_ohm: float = 300.0  # DOMAIN.md "Skin model starting values": R_s ≈ 300 Ω
    rp_rest_ohm: float = 20_000.0  # DOMAIN.md: R_p from ≈ 20 kΩ ...
    rp_min_ohm: float = 3_000.0  # ... falling with charge toward ≈ 3 kΩ
    cp_uf: float = 0.5  # DOMAIN.md: C_p ≈ 0.5 µF (marked uncertain there)
    # Tunable estimate: with the defaults a 4 mA target at 60 V compliance starts at compliance (60 V/20.3 kΩ
    # ≈ 3 mA) and reaches 4 mA after ≈ 0.37 A·s, i.e. about 2 minutes (DOMAIN.md, last section).
    charge_scale_uas: float = 1_000_000.0
    # Tunable estimate: after a 40 mA·min session at 4 mA, R_p rises about 3x within 30 min of rest
    # (DOMAIN.md, citing Curdy, Kalia & Guy, AAPS PharmSci 2000).
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
    # DOMAIN.md starting values, as in LoadParams' defaults.
    "normal": LoadParams(),
    # Tunable estimate: dry or thick skin, small electrodes — three times the resting impedance, less capacitance.
    "high-impedance": LoadParams(rs_ohm=500.0, rp_rest_ohm=60_000.0, rp_min_ohm=6_000.0, cp_uf=0.3),
    # Tunable estimate: hands in tap-water trays (DOMAIN.md: 15–20 mA for up to ~30 min, large trays). The wetted
    # area is ~10x a drug electrode's, so impedance is much lower, capacitance higher, and R_p needs ~10x the
    # charge to fall as far. 20 mA then needs ≈ 43 V at rest, within a 60 V compliance.
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


@dataclass(frozen=True)
class _Circuit:
    """Everything that stays constant during one step, in SI units."""

    rs_ohm: float
    rp_ohm: float
    c_f: float
    v_comp: float
    relay_closed: bool
    open_circuit: bool
    short_ohm: float | None


@dataclass(frozen=True)
class _Outcome:
    """The circuit after a piece of a step."""

    vc_v: float
    charge_as: float  # |I|·dt delivered by the source
    skin_charge_as: float  # the part of it that went through the skin (drives R_p)
    current_a: float
    voltage_v: float
    at_compliance: bool


_CC, _CV, _BLOCKED = "CC", "CV", "BLOCKED"


def _regime(c: _Circuit, vc: float, i_a: float) -> str:
    if i_a * c.rs_ohm + vc <= c.v_comp:
        return _CC
    return _CV if vc < c.v_comp else _BLOCKED


def _skin(c: _Circuit, vc: float, i_a: float, dt: float) -> _Outcome:
    """Exact solution over `dt` with the source set to `i_a` and the skin load connected."""
    tau_p = c.rp_ohm * c.c_f
    v_th = c.v_comp - i_a * c.rs_ohm  # capacitor voltage at which the CC and CV regimes meet
    regime = _regime(c, vc, i_a)
    charge = 0.0
    left = dt
    for _ in range(4):  # at most BLOCKED -> CV -> CC; the bound is only a guard
        crossing = math.inf
        if regime == _CC:
            v_inf = i_a * c.rp_ohm
            if v_inf > v_th and vc <= v_th:
                crossing = tau_p * math.log((v_inf - vc) / (v_inf - v_th))
            t = min(left, crossing)
            vc = v_inf + (vc - v_inf) * math.exp(-t / tau_p)
            charge += i_a * t
            after = _CV
        elif regime == _CV:
            tau = c.c_f * c.rs_ohm * c.rp_ohm / (c.rs_ohm + c.rp_ohm)
            v_inf = c.v_comp * c.rp_ohm / (c.rs_ohm + c.rp_ohm)
            if v_th > v_inf and vc > v_th:
                crossing = tau * math.log((vc - v_inf) / (v_th - v_inf))
            t = min(left, crossing)
            charge += ((c.v_comp - v_inf) * t + (vc - v_inf) * tau * math.expm1(-t / tau)) / c.rs_ohm
            vc = v_inf + (vc - v_inf) * math.exp(-t / tau)
            after = _CC
        else:
            if c.v_comp > 0.0 and vc > c.v_comp:
                crossing = tau_p * math.log(vc / c.v_comp)
            t = min(left, crossing)
            vc *= math.exp(-t / tau_p)
            after = _CV if i_a > 0.0 else _CC
        left -= t
        if crossing > t:
            break
        # The hand-over happens inside the step: pin Vc to the boundary so round-off cannot bounce it back.
        vc = v_th if regime in (_CC, _CV) else c.v_comp
        regime = after
        if left <= 0.0:
            break
    if regime == _CC:
        return _Outcome(vc, charge, charge, i_a, min(i_a * c.rs_ohm + vc, c.v_comp), False)
    if regime == _CV:
        current = min(i_a, max(0.0, (c.v_comp - vc) / c.rs_ohm))
        return _Outcome(vc, charge, charge, current, c.v_comp, True)
    return _Outcome(vc, charge, charge, 0.0, vc, i_a > 0.0)


def _hold(c: _Circuit, vc: float, i_a: float, dt: float) -> _Outcome:
    """Exact solution over `dt` with the source set to the constant magnitude `i_a`."""
    drained = vc * math.exp(-dt / (c.rp_ohm * c.c_f))  # C_p alone, discharging through R_p
    if not c.relay_closed:
        return _Outcome(drained, 0.0, 0.0, 0.0, 0.0, False)
    if c.open_circuit:
        demanded = i_a > 0.0
        return _Outcome(drained, 0.0, 0.0, 0.0, c.v_comp if demanded else 0.0, demanded)
    if c.short_ohm is not None:
        current = min(i_a, c.v_comp / c.short_ohm)
        return _Outcome(drained, current * dt, 0.0, current, current * c.short_ohm, i_a * c.short_ohm > c.v_comp)
    return _skin(c, vc, i_a, dt)


def _advance(
    c: _Circuit, vc: float, src_a: float, target_a: float, slew_a_per_s: float, dt: float
) -> tuple[_Outcome, float]:
    """Advance `dt` while the source current slews from `src_a` toward `target_a`; return the outcome and the
    source current at the end."""
    charge = skin_charge = 0.0
    if not c.relay_closed:
        src_a = target_a  # no output current to limit: the set point is simply where it was asked to be
    t_ramp = abs(target_a - src_a) / slew_a_per_s
    t1 = min(dt, t_ramp)
    direction = 1.0 if target_a > src_a else -1.0
    if t1 > 0.0:
        piece = t1 / _RAMP_PIECES
        for k in range(_RAMP_PIECES):
            out = _hold(c, vc, src_a + direction * slew_a_per_s * (k + 0.5) * piece, piece)
            vc, charge, skin_charge = out.vc_v, charge + out.charge_as, skin_charge + out.skin_charge_as
    src_a = target_a if t1 >= t_ramp else src_a + direction * slew_a_per_s * t1
    out = _hold(c, vc, src_a, dt - t1)
    return (
        _Outcome(
            out.vc_v,
            charge + out.charge_as,
            skin_charge + out.skin_charge_as,
            out.current_a,
            out.voltage_v,
            out.at_compliance,
        ),
        src_a,
    )


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
        self._vc_v = 0.0
        self._src_a = 0.0
        self._q_uas = 0.0
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
        return self._load.rp_ohm(self._q_uas)

    @property
    def compliance_v(self) -> float:
        return self._compliance_v

    @compliance_v.setter
    def compliance_v(self, value: float) -> None:
        """Change the compliance voltage (a SourceMeter's voltage protection setting maps here)."""
        _check_finite("compliance_v", value)
        self._compliance_v = float(value)

    # -- controls and fault hooks ------------------------------------------------------------------------------

    def set_output(self, on: bool) -> None:
        """Close (True) or open (False) the output relay. Open: exactly zero current."""
        self._relay_closed = bool(on)

    def lift_electrode(self) -> None:
        """Open circuit: no current can flow; the source rails to compliance if current is demanded."""
        self._open_circuit = True

    def restore_contact(self) -> None:
        self._open_circuit = False

    def short(self, ohm: float = 50.0) -> None:
        """The electrodes touch: the whole load collapses to `ohm`, bypassing the skin."""
        if not (isinstance(ohm, int | float) and math.isfinite(ohm) and ohm > 0):
            raise ValueError(f"short resistance must be positive, got {ohm!r}")
        self._short_ohm = float(ohm)

    def clear_short(self) -> None:
        self._short_ohm = None

    def impedance_step(self, ohm: float) -> None:
        """Add `ohm` to R_s from now on (e.g. a drying sponge); cumulative."""
        finite = isinstance(ohm, int | float) and math.isfinite(ohm)
        if not finite or self._load.rs_ohm + self._rs_extra_ohm + ohm <= 0:
            raise ValueError(f"impedance step {ohm!r} would leave R_s non-positive")
        self._rs_extra_ohm += ohm

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
        _check_finite("dt_s", dt_s)
        _check_finite("set_current_ua", set_current_ua)
        target_a = set_current_ua * _UA
        # R_p is held constant within a piece; long steps are cut into pieces over which it changes little.
        predictor, _ = _advance(self._circuit(self._q_uas), self._vc_v, self._src_a, target_a, self._slew_a_per_s, dt_s)
        rp_now = self.rp_ohm
        rp_change = abs(self._load.rp_ohm(self._next_q(self._q_uas, predictor.skin_charge_as / _UA, dt_s)) - rp_now)
        pieces = min(_MAX_PIECES, max(1, math.ceil(rp_change / rp_now / _RP_CHANGE_PER_PIECE)))
        charge_as = 0.0
        for _ in range(pieces):
            out = self._piece(dt_s / pieces, target_a)
            charge_as += out.charge_as
        current_ua = out.current_a / _UA
        self._sample = PlantSample(
            t_s=self._sample.t_s + dt_s,
            current_ua=current_ua,
            voltage_v=out.voltage_v,
            impedance_ohm=out.voltage_v / out.current_a if current_ua > _ZERO_CURRENT_UA else math.inf,
            at_compliance=out.at_compliance,
            rp_ohm=self.rp_ohm,
            charge_uas=self._sample.charge_uas + charge_as / _UA,
        )
        return self._sample

    def measure(self, sample: PlantSample) -> Measurement:
        """Read `sample` through the sensors: Gaussian noise (σ = noise_rel·|x| + noise_abs), then drift.

        Readings are magnitudes, so they are clipped at zero: noise never reports current flowing backwards.
        """
        current = sample.current_ua + self._rng.gauss(0.0, self._noise_rel * sample.current_ua + self._noise_abs_ua)
        voltage_mv = sample.voltage_v * 1000.0
        voltage = voltage_mv + self._rng.gauss(0.0, self._noise_rel * voltage_mv + self._noise_abs_mv)
        return Measurement(max(0.0, current * self._current_gain), max(0.0, voltage * self._voltage_gain))

    def _piece(self, dt_s: float, target_a: float) -> _Outcome:
        """Advance one piece with R_p at its value at the piece's midpoint (found by a predictor pass)."""
        q0 = self._q_uas
        predictor, _ = _advance(self._circuit(q0), self._vc_v, self._src_a, target_a, self._slew_a_per_s, dt_s)
        q_mid = self._next_q(q0, predictor.skin_charge_as / _UA / 2.0, dt_s / 2.0)
        out, self._src_a = _advance(self._circuit(q_mid), self._vc_v, self._src_a, target_a, self._slew_a_per_s, dt_s)
        self._q_uas = self._next_q(q0, out.skin_charge_as / _UA, dt_s)
        self._vc_v = out.vc_v
        return out

    def _circuit(self, q_uas: float) -> _Circuit:
        return _Circuit(
            rs_ohm=self._load.rs_ohm + self._rs_extra_ohm,
            rp_ohm=self._load.rp_ohm(q_uas),
            c_f=self._load.cp_uf * 1e-6,
            v_comp=self._compliance_v,
            relay_closed=self._relay_closed,
            open_circuit=self._open_circuit,
            short_ohm=self._short_ohm,
        )

    def _next_q(self, q_uas: float, skin_charge_uas: float, dt_s: float) -> float:
        """Effective charge after `dt_s`: it grows with charge through the skin, and decays only at rest."""
        if dt_s <= 0.0:
            return q_uas + skin_charge_uas
        if skin_charge_uas / dt_s >= _REST_CURRENT_UA:
            return q_uas + skin_charge_uas
        return q_uas * math.exp(-dt_s / self._load.recovery_tau_s)
