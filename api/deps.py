"""Dependencies of the routes, as `Annotated` aliases. The app state is built in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Request
from temporalio.client import Client

from api.services.reviews import ReviewService
from api.services.tasks import TaskService
from keel.core.settings import Settings
from keel.stores.blobs import BlobStore
from keel.stores.review_index import ReviewQueueIndex
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

    def tasks(self) -> TaskService:
        return TaskService(self.temporal, self.graph, self.traces, self.settings)

    def reviews(self) -> ReviewService:
        return ReviewService(self.temporal, ReviewQueueIndex(self.redis), self.tasks(), self.settings)


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.keel
    return state


State = Annotated[AppState, Depends(_state)]


def _temporal(state: State) -> Client:
    return state.temporal


def _settings(state: State) -> Settings:
    return state.settings


def _tasks(state: State) -> TaskService:
    return state.tasks()


def _reviews(state: State) -> ReviewService:
    return state.reviews()


def _registry(state: State) -> SourceRegistry:
    return SourceRegistry(state.redis)


TemporalClient = Annotated[Client, Depends(_temporal)]
KeelSettings = Annotated[Settings, Depends(_settings)]
Tasks = Annotated[TaskService, Depends(_tasks)]
Reviews = Annotated[ReviewService, Depends(_reviews)]
Registry = Annotated[SourceRegistry, Depends(_registry)]
