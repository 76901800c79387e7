"""Paging over Graph collections: @odata.nextLink pages and users/delta rounds."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from shared.microsoft.errors import MicrosoftError

# Fetches one page: (absolute URL, query params or None) -> the parsed body.
FetchPage = Callable[[str, Mapping[str, Any] | None], dict[str, Any]]


def checked_link(link: str, base_url: str) -> str:
    """A next/delta link, only if it points where the token is meant to go (never leak it elsewhere)."""
    got, want = httpx.URL(link), httpx.URL(base_url)
    if (got.scheme, got.host, got.port) != (want.scheme, want.host, want.port):
        raise MicrosoftError(f"refusing to follow a paging link to another host ({got.host})")
    return link


def iter_pages(fetch: FetchPage, url: str, params: Mapping[str, Any] | None,
               base_url: str) -> Iterator[list[dict[str, Any]]]:
    """Stream the `value` of every page, following @odata.nextLink; one request per page."""
    next_url: str | None = url
    while next_url:
        body = fetch(next_url, params)
        yield list(body.get("value") or [])
        link = body.get("@odata.nextLink")
        next_url, params = (checked_link(link, base_url), None) if link else (None, None)


class DeltaPages:
    """Pages of a users/delta round; `.delta_link` is set once the last page has been read."""

    def __init__(self, fetch: FetchPage, url: str, params: Mapping[str, Any] | None, base_url: str) -> None:
        self._fetch = fetch
        self._url = url
        self._params = params
        self._base_url = base_url
        self.delta_link: str | None = None

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        url: str | None = self._url
        params = self._params
        while url:
            body = self._fetch(url, params)
            yield list(body.get("value") or [])
            next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
            url, params = (checked_link(next_link, self._base_url), None) if next_link else (None, None)
            if not next_link and delta_link:
                self.delta_link = checked_link(delta_link, self._base_url)
