"""Django's PostgreSQL backend, with a client that stops waiting on a silent server.

Used as the ENGINE in settings.DATABASES; see base.py.
"""
