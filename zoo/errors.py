"""The one exception family of the project; the CLI turns it into a one-line message."""

from __future__ import annotations


class ZooError(Exception):
    """A user-facing error: the message names the file/field and the fix."""


class SpecError(ZooError):
    """A zoo spec is malformed (YAML, schema or values)."""


class DataError(ZooError):
    """A dataset, checkpoint or Parquet file is missing, corrupt or of the wrong version."""


class QueryError(ZooError):
    """A SQL query against the catalog failed."""
