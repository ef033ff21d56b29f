"""Feed the usage rollup up to now. Pages do this on their own, a bounded slice at a time;
this command does the first long catch-up (every day the gateway still keeps) in one go."""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from keys import usage


class Command(BaseCommand):
    help = "Count the gateway's inferences per key into t0admin's usage rollup, up to now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--seconds", type=float, default=None, help="stop after this long (default: none)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        available = usage.availability()
        if not available.ok:
            raise CommandError(available.reason)
        done = usage.catch_up(options["seconds"], chunk=timedelta(days=1))
        current = usage.freshness()
        until = current.complete_until
        stamp = f"{until:%Y-%m-%d %H:%M:%S %Z}" if until else "nothing yet"
        if done:
            self.stdout.write(f"Usage counted up to {stamp}.")
        else:
            self.stdout.write(
                f"Usage counted up to {stamp}; not finished (another t0admin instance is "
                "counting, or the time ran out): run it again."
            )
