"""A batch run as code written for OpenAI runs one: nothing here is Batchline's, not even a job id.

The e2e suite runs this file unchanged, with only OPENAI_BASE_URL and OPENAI_API_KEY set (the SDK reads
both), and checks the summary it prints.
"""

import asyncio
import json
import time

from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletion

TERMINAL = ("completed", "failed", "expired", "cancelled")


def requests(count: int) -> bytes:
    lines = [
        {
            "custom_id": f"task-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Question {i}?"}]},
        }
        for i in range(count)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def wait(client: OpenAI, batch_id: str):
    batch = client.batches.retrieve(batch_id)
    while batch.status not in TERMINAL:
        time.sleep(0.5)
        batch = client.batches.retrieve(batch_id)
    return batch


def main() -> dict:
    client = OpenAI()
    batch_input = client.files.create(file=("requests.jsonl", requests(30)), purpose="batch")
    batch = client.batches.create(
        input_file_id=batch_input.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = wait(client, batch.id)
    results = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
    answers = [ChatCompletion.model_validate(r["response"]["body"]) for r in results]

    other = client.batches.create(
        input_file_id=batch_input.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelled = client.batches.cancel(other.id)
    listed = [b.id for b in client.batches.list(limit=1)]  # one per page: auto-paging walks them all
    models = [m.id for m in client.models.list()]

    async def concurrently() -> list[str]:
        async with AsyncOpenAI() as aclient:
            found = await asyncio.gather(aclient.batches.retrieve(batch.id), aclient.files.retrieve(batch_input.id))
            pages = [b.id async for b in aclient.batches.list(limit=1)]
            return [found[0].status, found[1].purpose, *pages]

    return {
        "status": batch.status,
        "counts": batch.request_counts.model_dump(),
        "custom_ids": [r["custom_id"] for r in results],
        "models": sorted({a.model for a in answers}),
        "usage_input_tokens": batch.usage.input_tokens,
        "usage_total": batch.usage.total_tokens,
        "cancelled": cancelled.status,
        "listed": listed,
        "batch_id": batch.id,
        "other_id": other.id,
        "model_ids": models,
        "async": asyncio.run(concurrently()),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
