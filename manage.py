#!/usr/bin/env python3
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "t0admin.settings")
    # Said before the settings load: libraries' INFO lines (django-axes' "AXES: BEGIN
    # version ...") belong in the server's log; a command's stderr is for what went wrong,
    # so that scripts and cron mails stay quiet.
    os.environ["T0ADMIN_COMMAND_LINE"] = "1"
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        # A configuration mistake deserves one clear line, not a traceback.
        sys.exit(f"t0admin: {error}")


if __name__ == "__main__":
    main()
