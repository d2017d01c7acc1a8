"""Real servers for the test suite: PostgreSQL, Dovecot, a scripted SMTP server, smtp-sink.

Each one is started by the suite itself in a temporary directory, listens on 127.0.0.1 on a
free port, and is torn down at the end; nothing depends on system services. The pytest
fixtures that wrap them live in ``tests.servers.fixtures``.
"""
