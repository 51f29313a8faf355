"""A small HTTP client of the agreement service, with clear errors when it is down."""

from __future__ import annotations

from typing import Any

import httpx

from schemas.errors import AnnotateError


class ServiceError(AnnotateError, ConnectionError):
    """The agreement service is unreachable or refused a request; names the URL."""


class ServiceClient:
    """Calls the service's read endpoints with the API key."""

    def __init__(self, url: str, api_key: str | None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, headers={"X-API-Key": api_key or ""}
        )

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` and return its JSON; raise :class:`ServiceError` on any failure."""
        return self._call("GET", path, params)

    def post(self, path: str, **params: Any) -> Any:
        """POST to ``path`` and return its JSON; raise :class:`ServiceError` on any failure."""
        return self._call("POST", path, params)

    def put(self, path: str, body: Any) -> Any:
        """PUT ``body`` as JSON to ``path`` and return the answer's JSON."""
        return self._call("PUT", path, {}, body)

    def _call(self, method: str, path: str, params: dict[str, Any], body: Any = None) -> Any:
        try:
            response = self._http.request(method, path, params=params, json=body, timeout=600)
        except httpx.HTTPError as exc:
            raise ServiceError(
                f"the agreement service is not reachable at {self.url} ({type(exc).__name__});"
                " start it with 'improv-annotate up', or set service.url in config.yaml"
            ) from None
        if response.status_code != 200:
            detail = (
                response.json().get("detail")
                if response.headers.get("content-type", "").startswith("application/json")
                else response.text
            )
            raise ServiceError(f"{self.url}{path} answered {response.status_code}: {detail}")
        return response.json()

    def agreement(self, project_id: int, dimension: str = "emotion") -> dict[str, Any]:
        """Agreement figures of one project and dimension."""
        return self.get(f"/projects/{project_id}/agreement", dimension=dimension)

    def projects(self) -> list[dict[str, Any]]:
        """The projects the service has data for."""
        return self.get("/projects")["data"]
