"""Train dialogsum-tiny from scratch on DialogSum with dialogsum's own ``full`` method.

    python recipes/train_dialogsum_tiny.py --data ../shared/data/dialogsum --work runs/tiny

Steps: train a Unigram tokenizer on DialogSum train; build a randomly initialised T5 of the
recipe's shape; fine-tune it with ``Summarizer.finetune(method="full")``; score it on DialogSum
test (each prediction against its three references, averaged) next to Lead-3; save the weights
in bfloat16 safetensors for shipping.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def lead3(examples: list) -> list[str]:  # type: ignore[type-arg]
    """The first three turns, speaker tags kept: DialogSum's Lead-3 baseline."""
    return ["\n".join(e.dialogue.splitlines()[:3]) for e in examples]


def denoising_examples(
    train: list, drop: float, target_words: int, seed: int = 0  # type: ignore[type-arg]
) -> list[dict[str, str]]:
    """Dialogues with a share of words dropped, to be restored to their opening words.

    A summarizer trained from scratch on 12k dialogues tends to learn the summaries' language
    model and ignore its input (one generic summary for every dialogue). Restoring text that is
    only in the input forces the decoder to attend to the encoder first.
    """
    import random

    rng = random.Random(seed)
    rows = []
    for example in train:
        words = example.dialogue.split(" ")
        kept = [w for w in words if rng.random() >= drop] or words[:1]
        rows.append({"dialogue": " ".join(kept), "summary": " ".join(words[:target_words])})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "dialogsum"))
    parser.add_argument("--recipe", type=Path, default=HERE / "dialogsum-tiny.yaml")
    parser.add_argument("--work", type=Path, default=Path("runs/dialogsum-tiny"))
    parser.add_argument("--max-steps", type=int, help="Cut training short (smoke tests).")
    parser.add_argument("--test-limit", type=int, help="Score only the first N test dialogues.")
    args = parser.parse_args()
    recipe = yaml.safe_load(args.recipe.read_text())

    import torch
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    from dialogsum import Summarizer
    from dialogsum.data import load_examples
    from dialogsum.evaluate import rouge
    from dialogsum.testing import build_tiny_tokenizer

    started = time.perf_counter()
    train = load_examples(args.data, "train")
    test = load_examples(args.data, "test")
    if args.test_limit:
        test = test[: args.test_limit]
    texts = [e.dialogue for e in train] + [r for e in train for r in e.references]
    tokenizer = build_tiny_tokenizer(texts, vocab_size=recipe["tokenizer"]["vocab_size"])
    print(f"tokenizer: {len(tokenizer)} pieces in {time.perf_counter() - started:.0f}s", flush=True)

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer), feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0, **recipe["model"],
    )
    model = T5ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **recipe["generation"]
    )
    base = args.work / "init"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters", flush=True)

    training = dict(recipe["training"])
    if args.max_steps:
        training["max_steps"] = args.max_steps
    summarizer = Summarizer.from_pretrained(base)
    pretraining = recipe.get("pretraining")
    if pretraining:
        rows = denoising_examples(train, pretraining["drop"], pretraining["target_words"])
        stage = {**training, "epochs": pretraining["epochs"]}
        data = {**recipe["data"], "prompt": pretraining["task"]}
        summarizer = summarizer.finetune(
            rows, method="full", output_dir=args.work / "pretrain", overwrite=True,
            training=stage, data=data,
        )
        print(f"pretrained in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
        summarizer = Summarizer.from_pretrained(args.work / "pretrain" / "model")
    tuned = summarizer.finetune(
        train, method="full", output_dir=args.work / "run", overwrite=True,
        training=training, data=recipe["data"],
    )
    print(f"trained in {(time.perf_counter() - started) / 60:.1f} min", flush=True)

    generation = {k: v for k, v in recipe["generation"].items()}
    predictions = tuned.summarize([e.dialogue for e in test], batch_size=32, **generation)
    references = [e.references for e in test]
    scores = {
        "model": rouge(predictions, references),
        "lead3": rouge(lead3(test), references),
        "distinct": len(set(predictions)) / len(predictions),
        "test_dialogues": len(test),
        "minutes": (time.perf_counter() - started) / 60,
    }
    (args.work / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")
    print(json.dumps(scores, indent=2))
    for example, prediction in list(zip(test, predictions, strict=True))[:3]:
        print(f"- human: {example.references[0]}\n  model: {prediction}")
    # bfloat16 halves the shipped file; loading converts back to float32 on the CPU.
    tuned.model.to(torch.bfloat16)
    tuned.save(args.work / "dialogsum-tiny", overwrite=True, generation=recipe["generation"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
