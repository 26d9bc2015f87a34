"""The peer users write by hand today: a minimal FastAPI app around transformers'
``pipeline("summarization")`` on PyTorch. It lives in benchmarks/, not in the package.

    python benchmarks/peer_fastapi.py MODEL_DIR PORT
"""

from __future__ import annotations

import sys

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

PROMPT = "Summarize the following conversation.\n\n{dialogue}\n\nSummary: "


class Request(BaseModel):
    inputs: str | list[str]
    parameters: dict | None = None


def main() -> None:
    model_dir, port = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(2)
    summarizer = pipeline("summarization", model=model_dir, device="cpu")
    app = FastAPI()

    @app.get("/readyz")
    def ready() -> dict:
        return {"status": "ready"}

    @app.post("/v1/summarize")
    def summarize(request: Request) -> list[dict]:
        texts = [request.inputs] if isinstance(request.inputs, str) else request.inputs
        generate = dict((request.parameters or {}).get("generate_parameters") or {})
        outputs = summarizer([PROMPT.replace("{dialogue}", t) for t in texts], **generate)
        return [{"summary_text": o["summary_text"]} for o in outputs]

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
