"""Dependencies of the routes, as `Annotated` aliases. The app state is built in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Request
from temporalio.client import Client

from keel.blobs import BlobStore
from keel.settings import Settings
from keel.tracing import LocalTraceStore
from retrieval.graph_store import GraphStore


@dataclass
class AppState:
    settings: Settings
    temporal: Client
    blobs: BlobStore
    redis: redis.Redis
    traces: LocalTraceStore
    graph: GraphStore  # reads only: whether cited documents changed since a task read them


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.keel
    return state


State = Annotated[AppState, Depends(_state)]


def _temporal(state: State) -> Client:
    return state.temporal


def _settings(state: State) -> Settings:
    return state.settings


def _graph(state: State) -> GraphStore:
    return state.graph


TemporalClient = Annotated[Client, Depends(_temporal)]
KeelSettings = Annotated[Settings, Depends(_settings)]
Graph = Annotated[GraphStore, Depends(_graph)]
