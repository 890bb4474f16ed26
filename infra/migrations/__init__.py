"""The migration engine for plain-SQL files (source, ledger, runner, lint, commands)."""
