import getpass


def cli_actor() -> str:
    """Who a management command acts as, for the audit trail."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers with arbitrary UIDs)
        return "cli"
