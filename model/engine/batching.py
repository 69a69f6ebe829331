"""Which requests decode together: batches by row count and, without shared prompts, length."""

from __future__ import annotations

from model.engine.records import GenerationRequest

#: A batch may hold at most this many padded token slots per real prompt token.
PADDING_WASTE_LIMIT = 1.25


def length_buckets(
    requests: list[GenerationRequest], shared_prefix: bool, max_batch_rows: int
) -> list[list[GenerationRequest]]:
    """Group prompts of similar length, so left padding wastes little compute and memory.

    Every row of a batch attends over the longest prompt's width; one 2,000-token prompt
    would make hundreds of short rows pay for it. Buckets also cap the rows per batch.
    """
    if shared_prefix:
        # Padding costs little here: prompts are stored once and prefilled in length
        # groups (see ``_prefill``), so only the row cap splits the work.
        buckets_by_rows: list[list[GenerationRequest]] = [[]]
        rows = 0
        for r in requests:
            if buckets_by_rows[-1] and rows + r.params.n > max_batch_rows:
                buckets_by_rows.append([])
                rows = 0
            buckets_by_rows[-1].append(r)
            rows += r.params.n
        return [b for b in buckets_by_rows if b]
    ordered = sorted(requests, key=lambda r: r.prompt_tokens)
    buckets: list[list[GenerationRequest]] = []
    current: list[GenerationRequest] = []
    rows = real_tokens = 0
    for r in ordered:
        n = r.params.n
        padded = (rows + n) * r.prompt_tokens  # r is the longest so far (sorted)
        waste_too_high = padded > PADDING_WASTE_LIMIT * (real_tokens + n * r.prompt_tokens)
        if current and (rows + n > max_batch_rows or waste_too_high):
            buckets.append(current)
            current, rows, real_tokens = [], 0, 0
        current.append(r)
        rows += n
        real_tokens += n * r.prompt_tokens
    if current:
        buckets.append(current)
    return buckets
