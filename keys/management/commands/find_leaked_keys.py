"""Find every key in any text (files or standard input), say what each is, and with
--disable switch the active ones off, as the leaked keys page does.

Exit status: 0 when no active key remains, 1 when active keys were found and left active
(or the gateway still accepts one), 2 for bad usage or unreadable input, 3 when the
database failed.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import IO, Any

from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError

from keys import gateway_probe, leaks, service, tokens
from keys.leaks import State
from keys.management.commands._actor import cli_actor
from keys.management.commands._database import DATABASE_FAILED, DatabaseCommand, database_failed

CHUNK = 2**20  # characters read at a time: memory stays bounded however big the input
OFF = {"disabled now", "already disabled", service.MEANWHILE}  # outcomes the gateway refuses
NO_VERDICT = {gateway_probe.Verdict.NO_ANSWER, gateway_probe.Verdict.NOT_CHECKED}
PROBE_SECONDS = 120.0  # --probe's default bound: 8 calls at a time, thousands of keys a minute
# Less than a call's own timeout and a second leaves no time to ask anything.
PROBE_SECONDS_RANGE = (gateway_probe.CALL_TIMEOUT + 1, 86_400.0)


def _seconds(value: str) -> float:
    low, high = PROBE_SECONDS_RANGE
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not low <= seconds <= high:  # also NaN
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds from {low:g} to {high:g}, not {value!r}"
        )
    return seconds


def _chunks(handle: IO[str]) -> Iterator[str]:
    while chunk := handle.read(CHUNK):
        yield chunk


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class Command(DatabaseCommand):
    if_database_fails = "Nothing was disabled."

    help = (
        "Find every TensorZero API key in text (gitleaks or trufflehog JSON, logs, chat "
        "exports: anything), say what each is; --disable switches the active ones off. Exit "
        "0: no active key remains; 1: active keys were left active; 2: bad usage or input."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="*", help="files to read; none or - : standard input")
        parser.add_argument("--disable", action="store_true", help="disable every active key found")
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
        parser.add_argument(
            "--probe",
            action="store_true",
            help="ask the gateway at TENSORZERO_GATEWAY_URL whether each key still gets in",
        )
        parser.add_argument(
            "--probe-seconds",
            type=_seconds,
            default=None,
            metavar="SECONDS",
            help=f"the most --probe may take in all (default {PROBE_SECONDS:g}; the leak page "
            f"takes {gateway_probe.BUDGET:g}): a file may hold many more keys than a paste",
        )

    def _read(self, files: list[str]) -> list[tokens.ParsedKey]:
        found: dict[tokens.ParsedKey, None] = {}
        for name in files or ["-"]:
            try:
                if name == "-":
                    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
                    found.update(dict.fromkeys(leaks.iter_keys(_chunks(stdin))))
                    stdin.detach()  # leave sys.stdin usable and open
                    continue
                with open(name, encoding="utf-8", errors="replace", newline="") as handle:
                    # One file at a time: a key never spans two files.
                    found.update(dict.fromkeys(leaks.iter_keys(_chunks(handle))))
            except OSError as error:
                raise CommandError(
                    f"Cannot read {name}: {error.strerror or error}.", returncode=2
                ) from None
        return list(found)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["probe_seconds"] is not None and not options["probe"]:
            raise CommandError("--probe-seconds bounds --probe: give both.", returncode=2)
        options["probe_seconds"] = options["probe_seconds"] or PROBE_SECONDS
        found = self._read(options["files"])
        classified = leaks.classify(found)
        incident = service.new_incident()
        outcomes: dict[str, str] = {}
        if options["disable"]:
            active = [c.public_id for c in classified if c.state is State.ACTIVE]
            if active:
                decided = self._disable(active, incident)
                outcomes = {p: outcome for p, (outcome, _) in decided.items()}
                try:
                    classified = leaks.classify(found)  # as they are now
                except DatabaseError:
                    # Disabled, committed: say so from the disable's own result.
                    classified = [
                        replace(c, state=State.DISABLED, since=decided[c.public_id][1])
                        if decided.get(c.public_id, ("", None))[0] in OFF
                        else c
                        for c in classified
                    ]
                self._held(classified, outcomes)
        report: gateway_probe.Report | None = None
        if options["probe"] and classified:
            report = gateway_probe.probe(
                [c.secret for c in classified],
                [c.state is not State.ACTIVE for c in classified],
                budget=options["probe_seconds"],
            )
        remaining = sum(c.state is State.ACTIVE for c in classified)
        still = report.still_accepted if report else 0
        if options["json"]:
            self._json(classified, outcomes, report, incident if outcomes else None, remaining)
        else:
            self._text(classified, outcomes, report, incident if outcomes else None)
        self._warn(options, report)
        if remaining or still:
            sys.exit(1)

    def _disable(self, active: list[str], incident: str) -> dict[str, tuple[str, Any]]:
        """--disable: each key's outcome and time. service.MAX_DISABLE keys at a time, a
        transaction each, all under the one incident: a file may hold any number."""
        decided: dict[str, tuple[str, Any]] = {}
        for start in range(0, len(active), service.MAX_DISABLE):
            part = active[start : start + service.MAX_DISABLE]
            done = (
                f"{len(decided)} of the {len(active)} active key(s) were disabled first "
                f"(incident {incident}). "
                if decided
                else ""
            )
            try:
                result = service.disable_keys(
                    actor=cli_actor(), public_ids=part, reason="leaked", incident=incident
                )
            except service.ServiceError as error:
                nothing = "Nothing more was disabled" if done else "Nothing was disabled"
                raise CommandError(f"{done}{nothing}: {error}", returncode=2) from None
            except service.OutcomeUnknown as error:
                after = " after them" if done else ""
                raise CommandError(
                    f"{done}Not known whether the {len(part)} active key(s){after} were "
                    f"disabled: the database connection broke while {error.action} was being "
                    "committed. Run this again: disabling twice is harmless.",
                    returncode=DATABASE_FAILED,
                ) from None
            except DatabaseError as error:
                rest = len(active) - start
                raise database_failed(
                    error,
                    f"{done}None of the {rest} active key(s) after them were disabled."
                    if done
                    else f"None of the {rest} active key(s) were disabled.",
                ) from None
            decided.update((p, result.outcome(p)) for p in part)
        return decided

    def _held(self, classified: list[leaks.Classified], outcomes: dict[str, str]) -> None:
        """Names the keys another transaction held away from --disable, as read since."""
        held = []
        for item in classified:
            if outcomes.get(item.public_id) == service.HELD:
                if item.state is State.ACTIVE:
                    held.append(item.public_id)
                else:  # its holder disabled it since
                    outcomes[item.public_id] = service.MEANWHILE
        if held:
            self.stderr.write(
                f"WARNING: {len(held)} key(s) NOT disabled ({', '.join(held)}): another change "
                "held them for longer than t0admin waits (another admin's change, or a long "
                "transaction on the database). Run this again to disable them."
            )

    def _warn(self, options: dict[str, Any], report: gateway_probe.Report | None) -> None:
        if not options["probe"]:
            return
        if report is None:
            return
        if report.url is None:
            self.stderr.write(gateway_probe.NOT_CONFIGURED)
        elif report.error:
            self.stderr.write(f"The gateway could not be asked: {report.error}")
        elif report.auth_off:
            self.stderr.write(
                f"WARNING: authentication is switched off at the gateway {report.url}: a "
                "made-up key got through. Every key works there, disabled or not."
            )
        elif report.still_accepted:
            self.stderr.write(
                f"WARNING: {report.still_accepted} key(s) STILL ACCEPTED by the gateway."
            )
        if report.unanswered and not report.error:
            first = next(a for a in report.answers if a.verdict in NO_VERDICT)
            self.stderr.write(
                f"WARNING: {report.unanswered} of {len(report.answers)} key(s) not checked "
                f"by the gateway; the first: {first.message or 'the check ran out of time'} "
                f"(--probe-seconds {options['probe_seconds']:g})."
            )

    def _text(
        self,
        classified: list[leaks.Classified],
        outcomes: dict[str, str],
        report: gateway_probe.Report | None,
        incident: str | None,
    ) -> None:
        if not classified:
            self.stdout.write("No TensorZero API key found.")
            return
        answers: list[gateway_probe.Answer | None] = [None] * len(classified)
        if report and report.answers:
            answers = list(report.answers)
        self.stdout.write(f"{'PUBLIC ID':<12}  {'STATE':<17}  {'SINCE':<25}  NOTE")
        for item, answer in zip(classified, answers, strict=True):
            notes = []
            if item.state is State.NOT_A_KEY:
                notes.append(f"wrong secret; the real key is {item.real_state} and not leaked")
            elif item.state is State.UNKNOWN:
                notes.append("no such public ID here")
            if item.public_id in outcomes and item.state is not State.NOT_A_KEY:
                notes.append(outcomes[item.public_id])
            if answer is not None:
                notes.append(answer.text)
            since = _iso(item.since) or "-"
            self.stdout.write(
                f"{item.public_id:<12}  {item.state.label:<17}  {since:<25}  {'; '.join(notes)}"
            )
        totals = leaks.counts(classified)
        summary = ", ".join(f"{n} {s.label}" for s, n in totals.items() if n)
        self.stdout.write(f"{len(classified)} distinct key(s): {summary}.")
        if incident:
            disabled = sum(o == "disabled now" for o in outcomes.values())
            self.stdout.write(f"Incident {incident}: disabled {disabled} key(s).")

    def _json(
        self,
        classified: list[leaks.Classified],
        outcomes: dict[str, str],
        report: gateway_probe.Report | None,
        incident: str | None,
        remaining: int,
    ) -> None:
        answers: list[gateway_probe.Answer | None] = [None] * len(classified)
        if report and report.answers:
            answers = list(report.answers)
        keys = []
        for item, answer in zip(classified, answers, strict=True):
            entry: dict[str, Any] = {
                "public_id": item.public_id,
                "state": item.state.value,
                "since": _iso(item.since),
            }
            if item.state is State.NOT_A_KEY:
                entry["real_key_state"] = item.real_state
            if item.public_id in outcomes and item.state is not State.NOT_A_KEY:
                entry["outcome"] = outcomes[item.public_id]
            if answer is not None:
                entry["gateway"] = {
                    "verdict": answer.verdict.value,
                    "status": answer.status,
                    "message": answer.message,
                }
            keys.append(entry)
        document: dict[str, Any] = {
            "keys": keys,
            "counts": {s.value: n for s, n in leaks.counts(classified).items()},
            "active_remaining": remaining,
            "incident": incident,
        }
        if report is not None:
            document["gateway"] = {
                "url": report.url,
                "checked": report.url is not None and not report.error,
                "auth_off": report.auth_off,
                "still_accepted": report.still_accepted,
                "not_checked": report.unanswered,
                "error": report.error or (None if report.url else gateway_probe.NOT_CONFIGURED),
            }
        self.stdout.write(json.dumps(document, indent=2))
