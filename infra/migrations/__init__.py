"""The migration engine for plain-SQL files.

Modules: ``source`` (find, parse, checksum files), ``ledger`` (the ``migrations_ledger`` schema,
advisory lock message, environment stamp), ``runner`` (validation and applying, in as few round
trips as the protocol allows), ``lint`` (squawk), ``locks`` (lock modes for ``plan``),
``connection`` (the frozen ConnectionSpec), ``commands`` (one function per verb) and ``cli``.
Nothing is imported here, so the Pulumi program can use ``source`` without loading psycopg.
"""
