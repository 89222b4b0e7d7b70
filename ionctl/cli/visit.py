"""`ionctl run --channel [SITE=]ADDRESS[,KEY=VALUE...]` (repeated): a visit of several channels, one confirmation,
every channel a whole session on its own device (`ionctl.treatment.visit`; docs/SESSION.md, "Visits").

A channel spec names its treatment site, its device and what differs from the options every channel shares:

    --channel "left hand=/dev/ttyUSB0" --channel "right hand=/dev/ttyUSB1,area=20,return=tray"

With a preset whose `visit` names the sites (`visit = ["left hand", "right hand"]`), every channel may give its
address alone; the channels take the visit's sites in order:

    --preset asc-exosome-hand-eczema --channel /dev/ttyUSB0 --channel /dev/ttyUSB1,area=20

Keys: `area` (cm²), `electrode` (a catalog electrode), `current` (mA), `dose` (mA·min), `duration` (min),
`return` (a name: channels giving the same one share a return electrode or path). Ctrl-C stops every channel (a
second one aborts every channel); the exit code is the worst channel's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ionctl.config import SiteConfig
    from ionctl.config.people import Identity
    from ionctl.records import Store
    from ionctl.treatment import TreatmentRequest
    from ionctl.treatment.visit import Channel, VisitReport

#: One `--channel` value: (treatment site, device address, request changes, return path or None).
Spec = tuple[str, str, dict[str, Any], str | None]
#: What a treatment site is written with ("left hand", "L-hand"); an address always has something else.
_SITE_WORDS = re.compile(r"[^\W\d_]+(?:[ _-]+[^\W\d_]+)*")
#: channel-spec key -> (TreatmentRequest field, parser)
_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "area": ("electrode_area_cm2", float),
    "electrode": ("electrode", str),
    "current": ("current_ma", float),
    "dose": ("dose_ma_min", float),
    "duration": ("duration_min", float),
}


def channel_spec(text: str) -> Spec:
    """(site, device address, request changes, return path) of one `--channel` value; argparse's error naming
    what is wrong. `SITE=ADDRESS[,...]`, or `ADDRESS[,...]` alone: its site "" is then the preset's visit's
    (`preset_sites`). Text before the first `=` is a site only if it is words (letters, spaces, `-`): an address
    (a path, a `socket://` or `visa:` resource, a pyserial URL with `?option=value`) never is."""
    head, *rest = (p.strip() for p in text.split(","))
    before, eq, after = head.partition("=")
    site, address = (before, after) if eq and _SITE_WORDS.fullmatch(before.strip()) else ("", head)
    if not address.strip() or (eq and not site and not before.strip()):
        raise argparse.ArgumentTypeError(f"{text!r}: a channel is SITE=ADDRESS[,KEY=VALUE...], e.g. "
                                         "'left hand=/dev/ttyUSB0,area=20', or ADDRESS[,KEY=VALUE...] with a preset "
                                         "that names the visit's sites")  # fmt: skip
    if not eq and _SITE_WORDS.fullmatch(address.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} names a treatment site but no device: SITE=ADDRESS, e.g. "
                                         f"'{address.strip()}=/dev/ttyUSB0'")  # fmt: skip
    parts = [address.strip(), *rest]
    changes: dict[str, Any] = {}
    return_path = None
    for part in parts[1:]:
        key, eq, value = (s.strip() for s in part.partition("="))
        if key == "return" and eq and value:
            return_path = value
            continue
        if key not in _KEYS or not eq or not value:
            raise argparse.ArgumentTypeError(f"{text!r}: {part!r} is not KEY=VALUE with a key of "
                                             f"{', '.join([*_KEYS, 'return'])}")  # fmt: skip
        field, parse = _KEYS[key]
        try:
            parsed = parse(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: {key}={value!r} is not a number") from None
        if isinstance(parsed, float) and not parsed > 0:
            raise argparse.ArgumentTypeError(f"{text!r}: {key} must be more than 0")
        changes[field] = parsed
    if "electrode_area_cm2" in changes and "electrode" in changes:
        raise argparse.ArgumentTypeError(f"{text!r}: give area or electrode, not both")
    if "dose_ma_min" in changes and "duration_min" in changes:
        raise argparse.ArgumentTypeError(f"{text!r}: give dose or duration, not both")
    return " ".join(site.split()), parts[0], changes, return_path


def preset_sites(specs: list[Spec], preset: str | None, config: SiteConfig) -> list[Spec] | str:
    """The specs with a site each: those given as `ADDRESS` alone take the preset's visit's sites in order. Why
    not (a usage error's message) when some name a site and some do not, there is no preset, it has no visit, or
    the number of channels is not its visit's."""
    missing = [n for n, spec in enumerate(specs, start=1) if not spec[0]]
    if not missing:
        return specs
    if len(missing) < len(specs):
        named = next(n for n in range(1, len(specs) + 1) if n not in missing)
        return (f"channel {missing[0]} gives no treatment site but channel {named} does: give every channel as "
                "SITE=ADDRESS, or every one as ADDRESS with a preset whose visit names the sites")  # fmt: skip
    if preset is None:
        return ("--channel ADDRESS without a site takes its site from the preset's visit: give --preset NAME (a "
                "preset with `visit`), or each channel as SITE=ADDRESS")  # fmt: skip
    from ionctl.config import ConfigError

    try:
        visit = config.preset(preset).visit
    except ConfigError as exc:
        return f"--channel ADDRESS without a site takes its site from the preset's visit: {exc}"
    if not visit:
        return (f"preset {preset!r} names no visit, so --channel ADDRESS has no treatment site: give each channel "
                "as SITE=ADDRESS")  # fmt: skip
    if len(visit) != len(specs):
        return (f"preset {preset!r}'s visit treats {len(visit)} sites ({', '.join(visit)}), one channel each, in "
                f"that order: give {len(visit)} --channel ADDRESS, not {len(specs)}")  # fmt: skip
    return [(site, *spec[1:]) for site, spec in zip(visit, specs, strict=True)]


def channels_of(base: TreatmentRequest, specs: list[Spec]) -> tuple[Channel, ...]:
    """Each channel's request: the shared options, then what its spec changes (an area replaces an electrode
    and a dose a duration, as on the command line)."""
    from ionctl.treatment.visit import Channel

    channels = []
    for site, device, changes, return_path in specs:
        given = dict(changes)
        if "electrode_area_cm2" in given:
            given["electrode"] = None
        if "electrode" in given:
            given["electrode_area_cm2"] = None
        if "dose_ma_min" in given:
            given["duration_min"] = None
        if "duration_min" in given:
            given["dose_ma_min"] = None
        channels.append(Channel(replace(base, device=device, site=site, **given), return_path))
    return tuple(channels)


def treat_visit(base: TreatmentRequest, specs: list[Spec], *, err: TextIO,
                stdin: TextIO, store: Store | None, config: SiteConfig, yes: bool, operator: Identity | None,
                supervisor: Callable[[], Identity] | None, skin_checks: bool = True) -> VisitReport | int:  # fmt: skip
    """Prepare, show, confirm and run a visit at this terminal; its report, or the exit code of a visit refused
    before any device was opened (said on `err`)."""
    from ionctl.cli.run import _isatty, _skin_checks_pending, confirm
    from ionctl.cli.signals import signals_held, visit_signals
    from ionctl.cli.visit_progress import VisitProgress
    from ionctl.core.vocabulary import ExitCode
    from ionctl.drivers import open_device
    from ionctl.treatment.visit import VisitRefused, VisitRequest, VisitRunner, prepare_visit

    sited = preset_sites(specs, base.preset, config)
    if isinstance(sited, str):
        print(f"ionctl run: {sited}\nNo current flowed; no device was opened.", file=err)
        return ExitCode.REFUSED  # a usage error
    visit = VisitRequest(channels_of(base, sited))
    try:
        prepared = prepare_visit(visit, store=store, config=config, operator=operator, supervisor=supervisor)
    except VisitRefused as exc:
        print(f"ionctl run: {exc.message}\nNo current flowed; no device was opened.", file=err)
        return ExitCode.REFUSED
    for n, channel in enumerate(prepared.prepared, start=1):
        for note in channel.notes:
            print(f"ionctl run: channel {n}: note: {note}", file=err)
    print(prepared.summary(), file=err)
    rx = prepared.prepared[0].prescription
    refusal = _skin_checks_pending(rx, store, stdin, err, yes=yes, db=base.db) if skin_checks else None
    refusal = refusal or confirm(yes, stdin, err)
    if refusal is not None:
        print(f"ionctl run: {refusal}", file=err)
        return ExitCode.REFUSED
    labels = [c.label for c in prepared.channels]
    progress = VisitProgress(err, labels, tty=_isatty(err))

    def say(text: str) -> None:
        print(f"ionctl run: {text}", file=err)

    runner = VisitRunner(prepared, lambda n, channel: open_device(channel.request.device),
                         store_path=store.path if store is not None else None, display=progress, messages=err,
                         say=say, reconnect=lambda n, channel: open_device(channel.request.device))  # fmt: skip
    with signals_held():
        report = runner.run(watch=lambda v: visit_signals(v, err))
    progress.close()
    return report


def execute_visit(args: argparse.Namespace, *, store: Store, err: TextIO | None = None,
                  stdin: TextIO | None = None) -> VisitReport | int:  # fmt: skip
    """`ionctl run --channel ...`: log the operator in (before anything is opened), then `treat_visit` with the
    options every channel shares and each channel's spec."""
    from ionctl.cli.run import log_in, request_of

    stdin, err = stdin or sys.stdin, err or sys.stderr
    who = log_in(args, store=store, config=None, stdin=stdin, err=err)
    if isinstance(who, str):
        from ionctl.core.vocabulary import ExitCode

        print(f"ionctl run: {who}\nNo current flowed; no device was opened.", file=err)
        return ExitCode.REFUSED
    config, operator, supervisor = who
    return treat_visit(request_of(args), args.channel, err=err, stdin=stdin, store=store, config=config, yes=args.yes,
                       operator=operator, supervisor=supervisor)  # fmt: skip


def emit_visit(report: VisitReport, *, as_json: bool, store: Store | None, out: TextIO | None = None,
               extra: Sequence[Mapping[str, Any]] = ()) -> None:  # fmt: skip
    """Print a visit's result: every channel's, then the visit's exit code; or one JSON object (each channel's
    object with its `extra`, in channel order, added)."""
    from ionctl.treatment import result_text

    out = out or sys.stdout
    if as_json:
        data = report.to_dict()
        if store is not None:
            for channel, r in zip(data["channels"], report.reports, strict=True):
                if r.record_id is not None:
                    channel["record"] = store.get(r.record_id).to_dict()["record"]
        for channel, more in zip(data["channels"], extra, strict=False):
            channel.update(more)
        out.write(json.dumps(data) + "\n")
    else:
        for n, (label, r) in enumerate(zip(report.labels, report.reports, strict=True), start=1):
            out.write(f"== channel {n}: {label}\n{result_text(r)}\n")
        out.write(f"visit {report.visit_id}: exit {int(report.exit_code)} (the worst channel's)\n")
    out.flush()
