from typing import Any

from django.core.management.base import BaseCommand, CommandError

from keys import gateway_schema


class Command(BaseCommand):
    help = "Create the gateway's API key table and ledger when absent, else verify them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            outcome = gateway_schema.ensure(options["database"])
        except gateway_schema.GatewaySchemaError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Gateway schema {outcome}: {gateway_schema.TABLE}")
