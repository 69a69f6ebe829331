"""``docomplete bench peer``: ``docomplete serve`` vs llama.cpp's ``llama-server``, same model.

The model directory is exported to GGUF (f32, so both sides compute with the same weights),
then each server runs alone on 127.0.0.1 — ours first, then llama-server with ``--parallel P
-t T`` — and gets the same job: every prompt as its own ``/v1/completions`` request (n samples,
temperature, top-p, max tokens, the Codex stop strings, a seed per prompt), all requests in
flight at once, after one small warm-up request. Throughput is generated tokens per second of
wall time from the first request to the last answer, the tokens counted the same way for both:
each returned text re-tokenised with the model's tokenizer (stop strings and EOS not counted).
The servers' own ``usage`` cannot be compared: llama-server's counts one of the n samples.
llama-server runs with ``--top-k 0 --min-p 0`` so that it samples from the same distribution as
ours (its defaults add top-k 40 and min-p 0.05).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.cli_support import CommandError, emit_bench
from model.interop import (
    LlamaCppBuild,
    docomplete_serve_command,
    free_port,
    llama_server_command,
    running_server,
)
from model.sampling_bench import HUMANEVAL_STOPS, humaneval_prompts


@dataclass(frozen=True)
class PeerJob:
    """What each server is asked to do."""

    prompts: list[str]
    n: int
    max_tokens: int
    temperature: float
    top_p: float
    seed: int

    def body(self, index: int) -> dict[str, Any]:
        return {
            "prompt": self.prompts[index],
            "n": self.n,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": list(HUMANEVAL_STOPS),
            "seed": self.seed + index,
        }


@dataclass
class PeerSide:
    name: str
    seconds: float
    generated_tokens: int
    choices: int

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0


async def _run_job(url: str, job: PeerJob, name: str, tokenizer: Any) -> PeerSide:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(900.0)) as client:
        warm = {**job.body(0), "n": 2, "max_tokens": 8}
        (await client.post("/v1/completions", json=warm)).raise_for_status()
        start = time.perf_counter()
        answers = await asyncio.gather(
            *(client.post("/v1/completions", json=job.body(i)) for i in range(len(job.prompts)))
        )
        seconds = time.perf_counter() - start
    tokens = choices = 0
    for answer in answers:
        if answer.status_code != 200:
            raise CommandError(f"{name} answered {answer.status_code}: {answer.text[:200]}")
        texts = [choice["text"] for choice in answer.json()["choices"]]
        tokens += sum(len(encoding.ids) for encoding in tokenizer.encode_batch(texts))
        choices += len(texts)
    expected = len(job.prompts) * job.n
    if choices != expected:
        raise CommandError(f"{name} sent {choices} completions instead of {expected}")
    return PeerSide(name, seconds, tokens, choices)


def run_peer_bench(
    model_dir: Path,
    build: LlamaCppBuild,
    *,
    gguf: Path | None,
    n: int,
    prompt_count: int,
    max_tokens: int,
    temperature: float,
    top_p: float,
    parallel: int,
    threads: int,
    seed: int,
    json_path: str | None,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Run both servers one after the other and print the table through ``emit_bench``."""
    from tokenizers import Tokenizer

    job = PeerJob(humaneval_prompts(prompt_count), n, max_tokens, temperature, top_p, seed)
    if not (model_dir / "tokenizer.json").is_file():
        raise CommandError(
            f"no tokenizer.json in {model_dir}: pass a model saved with its tokenizer"
        )
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    with tempfile.TemporaryDirectory(prefix="docomplete-peer-") as tmp:
        logs = log_dir or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        if gguf is None:
            from model.train.gguf_export import export_gguf

            gguf = Path(tmp) / "model.gguf"
            print(f"exporting {model_dir} to GGUF (f32)", file=sys.stderr)
            export_gguf(model_dir, gguf, out_type="f32")
        context = _context_length(model_dir)

        port = free_port()
        with running_server(
            docomplete_serve_command(model_dir, port),
            port,
            health="/health",
            log_path=logs / "docomplete-serve.log",
        ) as url:
            ours = asyncio.run(_run_job(url, job, "docomplete serve", tokenizer))
        print(f"  docomplete serve: {ours.tokens_per_s:,.0f} tokens/s", file=sys.stderr)

        port = free_port()
        command = llama_server_command(
            build.llama_server, gguf, port, parallel=parallel, threads=threads, context=context
        )
        with running_server(
            command, port, health="/health", log_path=logs / "llama-server.log"
        ) as url:
            peer = asyncio.run(_run_job(url, job, "llama-server", tokenizer))
        print(f"  llama-server: {peer.tokens_per_s:,.0f} tokens/s", file=sys.stderr)

    ratio = ours.tokens_per_s / peer.tokens_per_s if peer.tokens_per_s else 0.0
    figures: dict[str, Any] = {
        "ours_tokens_per_s": round(ours.tokens_per_s, 1),
        "baseline_tokens_per_s": round(peer.tokens_per_s, 1),
        "ratio": round(ratio, 2),
        "baseline": f"llama-server --parallel {parallel} -t {threads} (f32 GGUF)",
        "model": str(model_dir),
        "n": n,
        "prompts": len(job.prompts),
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "ours_generated_tokens": ours.generated_tokens,
        "baseline_generated_tokens": peer.generated_tokens,
    }
    emit_bench(
        f"Peer: {len(job.prompts)} HumanEval prompts x n={n}, max {max_tokens} tokens, "
        f"T={temperature}, top_p={top_p}, one request per prompt, all in flight",
        ["server", "generated tokens", "seconds", "tokens/s"],
        [
            ["docomplete serve", ours.generated_tokens, ours.seconds, ours.tokens_per_s],
            [figures["baseline"], peer.generated_tokens, peer.seconds, peer.tokens_per_s],
        ],
        figures,
        json_path,
    )
    return figures


def _context_length(model_dir: Path) -> int:
    import json

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return int(config.get("max_position_embeddings", 1024))
