"""Dependencies of the routes, as `Annotated` aliases. The app state is built in the lifespan.

Who calls comes from api/auth.py: each route names the role it needs, and every service is built
for the caller's tenant, so no route can read or write another tenant's records by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Request
from temporalio.client import Client

from api.services.reviews import ReviewService
from api.services.tasks import TaskService
from keel.core.identity import Principal
from keel.core.settings import Settings
from keel.stores.blobs import BlobStore
from keel.stores.keys import KeyStore
from keel.stores.rate_limits import RateLimiter
from keel.stores.review_index import ReviewQueueIndex
from keel.stores.sessions import SessionStore
from keel.stores.sources import SourceRegistry
from keel.stores.traces import LocalTraceStore
from retrieval.graph_store import GraphStore


@dataclass
class AppState:
    settings: Settings
    temporal: Client
    blobs: BlobStore
    redis: redis.Redis
    traces: LocalTraceStore
    graph: GraphStore  # reads only: whether cited documents changed since a task read them

    @property
    def keys(self) -> KeyStore:
        return KeyStore(self.redis)

    @property
    def sessions(self) -> SessionStore:
        return SessionStore(self.redis, self.settings.auth.session_ttl_s)

    @property
    def rates(self) -> RateLimiter:
        return RateLimiter(self.redis)

    def tasks(self, caller: Principal) -> TaskService:
        return TaskService(self.temporal, self.graph, self.traces, self.settings, caller)

    def reviews(self, caller: Principal) -> ReviewService:
        return ReviewService(self.temporal, ReviewQueueIndex(self.redis), self.tasks(caller), self.settings)


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.keel
    return state


State = Annotated[AppState, Depends(_state)]


def _registry(state: State) -> SourceRegistry:
    return SourceRegistry(state.redis)


Registry = Annotated[SourceRegistry, Depends(_registry)]
