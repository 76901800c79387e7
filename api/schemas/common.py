"""Shared pieces: the problem document, constrained string types, the bases for inputs and query parameters."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.paging import DEFAULT_LIMIT, MAX_LIMIT

# Ids are UUIDs; anything else cannot name an object.
ID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
# No control characters (a NUL cannot even be stored).
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=_PRINTABLE)]
Text = Annotated[str, StringConstraints(max_length=1000, pattern=_PRINTABLE)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120, pattern=_PRINTABLE)]


class Input(BaseModel):
    """Request bodies: unknown fields are refused (a typo must not pass silently)."""

    # Strict: JSON's types as the document states them (no "1" for 1, no 0 for false).
    model_config = ConfigDict(extra="forbid", strict=True)


class QueryParams(BaseModel):
    """A route's query parameters (`Annotated[Model, Query()]`): an unknown one is refused, so `?stat=failed`
    does not silently list everything. Lax: every value arrives as text (`?limit=5`)."""

    model_config = ConfigDict(extra="forbid")


class NoQuery(QueryParams):
    """The query of a route that takes no parameter: any one given is unknown."""


class PageQuery(QueryParams):
    """Keyset paging: the lists that grow."""

    cursor: str | None = Field(None, max_length=512, pattern=r"^[A-Za-z0-9_-]+$",
                               description="`next_cursor` of the previous page")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Page size")


class ProblemError(BaseModel):
    loc: list[str | int] = Field(description="Where: body/query/path, then field names and list indexes")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable machine `code`."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:m365-provisioner:problem:no_free_licences"])
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine code, e.g. mca_not_signed, no_free_licences, upn_conflict")
    instance: str | None = None
    errors: list[ProblemError] | None = Field(default=None, description="Per-field (or per-index) errors")

