"""A route FastAPI builds when it is first used, not when it is declared: the api's cold start."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import get_name

# One build at a time: a second thread asking a route under construction waits for it, then reads it.
_building = threading.RLock()


class DeferredRoute(APIRoute):
    """An APIRoute that keeps its declaration and builds itself when first read.

    Building a route is most of its cost (about 2 ms each): the analysis of its dependencies, a pydantic
    validator for each parameter, its answer's serializer. FastAPI builds each route twice: where it is
    declared, on its router, and again for the app that includes the router, when a request first
    reaches that router (`include_router` keeps the router and builds its routes as the app serves
    them); the route as declared is only read by that second build. Declared on the routers as
    `route_class`, routes are built for the first time when a request reaches their router (or the
    OpenAPI document is written), so a cold start builds the routes of one router, not all of them at
    import as well. What they are and how they answer is unchanged: the build is FastAPI's own, with the
    arguments the router declared.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **declared: Any) -> None:
        self._declaration: tuple[str, Callable[..., Any], dict[str, Any]] | None = (path, endpoint, declared)
        # What `include_router` reads of each route when it includes a router (it checks that no path
        # is empty): the same values APIRoute sets, without building it.
        self.path = path
        self.name = get_name(endpoint) if declared.get("name") is None else declared["name"]

    def __getattr__(self, name: str) -> Any:
        # Python asks here only for attributes the instance does not have: before the build, anything
        # but the declaration, the path and the name; after it, what APIRoute does not have either.
        with _building:
            declaration = self.__dict__.get("_declaration")
            if declaration is not None:
                self._declaration = None
                path, endpoint, declared = declaration
                before = dict(self.__dict__)
                try:
                    super().__init__(path, endpoint, **declared)
                except BaseException:
                    # Not half built: every read raises the declaration's error again, as the first did.
                    self.__dict__.clear()
                    self.__dict__.update(before, _declaration=declaration)
                    raise
        return object.__getattribute__(self, name)
