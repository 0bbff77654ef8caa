"""What the front doors that make one call and answer one whole JSON answer (embeddings,
Anthropic's token counting) need of a provider kind's API: the ``OneCallApi`` protocol.

Unlike a chat ``Dialect``, such an API is reached only from its own front door, never
streams, and has no exchange types: a provider of another shape (Gemini's embeddings) is
written to and read from in ``upstream_call`` and ``answer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from releases.lineage import Usage

if TYPE_CHECKING:
    from gateway.injection import PreparedRelease


class OneCallApi(Protocol):
    """One provider kind's API for one kind of whole call."""

    @property
    def kind(self) -> str:
        """The provider kind that speaks it."""
        ...

    @property
    def translated(self) -> bool:
        """Whether its answers and refusals are of another shape than the front door's."""
        ...

    def inject(
        self, body: Mapping[str, Any], release: PreparedRelease, values: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]]:
        """The release applied to a caller's ``body`` (still in the front door's words), and
        the caller fields that were dropped."""
        ...

    def upstream_call(self, base_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The URL and wire body of a call with ``body`` (as ``inject`` made it)."""
        ...

    def upstream_headers(self, api_key: str | None, caller: Mapping[str, str]) -> dict[str, str]:
        """The headers of a call to a provider of this kind."""
        ...

    def usage_of(self, answer: Any) -> Usage | None:
        """The tokens an answer of this API says the call consumed, if any."""
        ...

    def response_id_of(self, answer: Mapping[str, Any]) -> str | None:
        """The provider's own id of a whole answer, where its API gives one."""
        ...

    def served_model_of(self, answer: Mapping[str, Any]) -> str | None:
        """The model the answer says served it, where its API names one."""
        ...

    def serves_pinned(self, release: PreparedRelease, served: str) -> bool | None:
        """Whether ``served`` is what ``release`` pins (None: nothing to compare)."""
        ...

    def answer(self, answer: Any, sent: Mapping[str, Any]) -> Any:
        """The provider's ``answer`` to ``sent`` (``inject``'s body) in the front door's
        shape; ``KeyError``/``TypeError``/``ValueError`` when it is not of the API's shape."""
        ...
