"""Metering of the agent's steps: what each used and cost, budgets reserved before a model call
and settled after it, and usage rolled up per tenant, key, day, model, step and pipeline version.

The order of a model call is: count the prompt, price it with the most the model may write,
reserve that against every budget line at once, call, price what the provider reports (or what
the tokenizer counts when it reports nothing), settle, record. A worker killed between reserve and
settle leaks nothing: the reservation expires after `cost.reservation_ttl_s`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from keel.core.budgets import BudgetLine, BudgetScope, Reservation, budget_lines
from keel.core.chunks import ScoredChunk
from keel.core.models import AnswerProvider, Generation
from keel.core.settings import Settings
from keel.core.tokens import CountTokens
from keel.core.usage import Price, StepUsage, UsageKind, price_for, prices_of, to_nanos
from keel.stores.budgets import BudgetLedger
from keel.stores.usage import UsageLedger

log = logging.getLogger(__name__)


@dataclass
class Stopwatch:
    """Wall and thread-CPU time of a block (the step's own thread: encoder threads are not counted)."""

    started: float = field(default_factory=time.perf_counter)
    cpu_started: float = field(default_factory=time.thread_time)
    latency_ms: float = 0.0
    cpu_ms: float = 0.0

    def stop(self) -> Stopwatch:
        self.latency_ms = round((time.perf_counter() - self.started) * 1000, 3)
        self.cpu_ms = round((time.thread_time() - self.cpu_started) * 1000, 3)
        return self


@dataclass
class ModelCallBudget:
    """A model call's reservation: what it was estimated at and the lines it holds."""

    reservation: Reservation
    lines: list[BudgetLine]
    prompt: list[str]  # what the call sends, in parts
    prompt_tokens: int | None  # counted for the estimate; None: no budget asked for it
    estimate: float
    price: Price | None


class Metering:
    def __init__(
        self, settings: Settings, usage: UsageLedger, budgets: BudgetLedger, count_tokens: CountTokens
    ) -> None:
        self._cost = settings.cost
        self._prices = prices_of(self._cost.prices)
        self._usage = usage
        self._budgets = budgets
        self.count_tokens = count_tokens

    def price(self, model: str, on: date | None = None) -> Price | None:
        return price_for(self._prices, model, on or datetime.now(UTC).date())

    def encoder_usage(
        self, step: str, kind: UsageKind, model: str, texts: Sequence[str], watch: Stopwatch
    ) -> StepUsage:
        """A step's encoder (or reranker) work: texts and their tokens, priced per million tokens."""
        tokens = self.count_tokens(texts)
        return StepUsage(
            step,
            kind,
            model,
            calls=1 if texts else 0,
            input_tokens=tokens,
            texts=len(texts),
            latency_ms=watch.latency_ms,
            cpu_ms=watch.cpu_ms,
            cost=tokens * self._cost.embedding_per_1m_tokens / 1_000_000,
            tokens_counted=True,
        )

    def reserve(
        self,
        scope: BudgetScope,
        reservation_id: str,
        provider: AnswerProvider,
        question: str,
        passages: Sequence[ScoredChunk],
    ) -> ModelCallBudget:
        """Reserve the call's most it may cost against the budgets of its tenant, key and task.
        With no budget, nothing is counted or reserved: the call costs no extra work."""
        prompt = provider.prompt_texts(question, passages)
        price = self.price(provider.model)
        lines = budget_lines(self._cost.budgets_for(scope.tenant), scope, datetime.now(UTC))
        if not lines:
            return ModelCallBudget(Reservation(reservation_id, 0, granted=True), [], prompt, None, 0.0, price)
        if price is None:
            # An unpriced model under a budget cannot be held to it: say so loudly, every call.
            log.warning("model %s has no price: budgets of %s cannot count it", provider.model, scope.tenant)
        prompt_tokens = self.count_tokens(prompt)
        estimate = (
            price.cost(math.ceil(prompt_tokens * self._cost.estimate_margin), provider.max_output_tokens)
            if price
            else 0.0
        )
        amount = to_nanos(estimate)
        if amount == 0:
            reservation = Reservation(reservation_id, amount, granted=True)
        else:
            reservation = self._budgets.reserve(reservation_id, lines, amount, self._cost.reservation_ttl_s)
        for warning in reservation.soft_warnings:
            log.warning("budget alert: %s", warning)
        return ModelCallBudget(reservation, lines, prompt, prompt_tokens, estimate, price)

    def settle(
        self, budget: ModelCallBudget, generation: Generation | None, watch: Stopwatch, route: str
    ) -> StepUsage:
        """Settle the call at what it cost (0 when it failed before any answer) and say what it used."""
        usage = StepUsage("generate", "model", generation.model if generation else "", route=route)
        usage.latency_ms, usage.cpu_ms = watch.latency_ms, watch.cpu_ms
        if generation is not None:
            usage.calls = 1
            reported = generation.input_tokens > 0 or generation.output_tokens > 0
            usage.tokens_counted = not reported
            if reported:
                usage.input_tokens = generation.input_tokens
            elif budget.prompt_tokens is not None:  # counted already, for the reservation
                usage.input_tokens = budget.prompt_tokens
            else:
                usage.input_tokens = self.count_tokens(budget.prompt)
            usage.output_tokens = (
                generation.output_tokens if reported else self.count_tokens([generation.answer])
            )
            # Priced by the model that answered (a gateway may report a dated name), else as estimated.
            price = self.price(generation.model) or budget.price
            usage.priced = price is not None
            usage.cost = round(price.cost(usage.input_tokens, usage.output_tokens), 9) if price else 0.0
        if budget.lines and budget.reservation.amount_nanos:
            try:
                self._budgets.settle(budget.reservation.id, budget.lines, to_nanos(usage.cost))
            except Exception:
                # The call is made and paid: failing the step would only make it again. Its
                # reservation stays until it expires, holding the estimate meanwhile.
                log.error("budget: could not settle %s", budget.reservation.id, exc_info=True)
        return usage

    def review_usage(self, waited_s: float, handled_s: float | None) -> StepUsage:
        """A reviewer's decision: handling time (claim to decision; unclaimed: the configured
        minutes, since its wait in the queue was not work) priced per review hour."""
        handled = handled_s if handled_s is not None else self._cost.review_minutes_unclaimed * 60
        return StepUsage(
            "review",
            "review",
            "human",
            calls=1,
            latency_ms=round(handled * 1000, 3),
            cost=round(handled / 3600 * self._cost.review_per_hour, 9),
            waited_ms=round(waited_s * 1000, 3),
        )

    def record(
        self, record_id: str, tenant: str, key_id: str, pipeline: str, usage: StepUsage, tasks: int = 0
    ) -> None:
        """Roll one step's usage up; a failure is logged, never fails the task (like tracing)."""
        try:
            self._usage.record(record_id, tenant, key_id, datetime.now(UTC).date(), pipeline, usage, tasks)
        except Exception:
            log.warning("usage: could not record %s of %s", usage.step, record_id, exc_info=True)
