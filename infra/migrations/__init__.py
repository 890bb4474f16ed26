"""The migration engine for plain-SQL files (dbmate's format), stage 1 of the pipeline.

Modules, in the order a run uses them: ``statements`` (PostgreSQL's own parser, pglast 6.17: split
a section into statements, refuse what a migration may not hold), ``source`` (files: names and
versions, sections and directives, checksums; broken files collected, not raised), ``validate``
(files against the ledger, pure), ``ledger`` (the ``migrations_ledger`` schema, its reads, and every
write to it), ``messages`` (the simple-query messages and the proof the server ran them whole),
``runner`` and ``autocommit`` (applying and rolling back), ``steps`` and ``results`` (what a run
reports and returns), ``lint`` (squawk, its configuration, the production gate, the lint baseline),
``locks`` (every lock a statement takes, from its parse tree), ``scratch`` (a throwaway PostgreSQL 16)
and ``measure`` (``plan --measure``: pg_locks there), ``importers`` (another tool's history in this
format) and ``adopt`` (``baseline --from-ledger``), ``catalog`` (the schema snapshot drift compares),
``connection`` (the frozen ConnectionSpec, pinned settings), ``commands`` (one function per verb) and
``cli``.
Nothing is imported here, so the Pulumi program can use ``source`` without loading psycopg.
"""
