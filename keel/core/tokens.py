"""Counting tokens before a model call (to reserve its cost) and where a provider reports none.

A Hugging Face `tokenizer.json` is read with the `tokenizers` library (no model weights, no hub):
the model's own when `models.tokenizer_path` names one, else the embedding model's, whose counts
differ from a chat model's by some percent; `cost.estimate_margin` covers that difference.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

CountTokens = Callable[[Sequence[str]], int]
# Distinct texts whose counts are kept (passages of ~700 characters: a few MB).
KEPT_COUNTS = 20_000


def tokenizer_counter(path: str | Path) -> CountTokens:
    """Counts the tokens of texts with the tokenizer in `path` (a tokenizer.json or its folder)."""
    from tokenizers import Tokenizer

    file = Path(path)
    if file.is_dir():
        file = file / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(file))
    tokenizer.no_truncation()  # a long prompt is counted whole, not cut at the encoder's window
    tokenizer.no_padding()

    # Passages recur across calls (the same top chunks for many questions): each distinct text is
    # tokenised once, the new ones of a call in one batch (the library spreads it over cores).
    # Tokens at the seam of two parts may merge or split: +1 a part covers that.
    kept: OrderedDict[str, int] = OrderedDict()
    lock = threading.Lock()

    def count(texts: Sequence[str]) -> int:
        with lock:
            new = [t for t in dict.fromkeys(texts) if t not in kept]
        if new:
            encoded = tokenizer.encode_batch(new, add_special_tokens=False)
            with lock:
                for text, tokens in zip(new, encoded, strict=True):
                    kept[text] = len(tokens.ids) + 1
                while len(kept) > KEPT_COUNTS:
                    kept.popitem(last=False)
        with lock:
            return sum(kept[t] if t in kept else len(t) for t in texts)

    return count
