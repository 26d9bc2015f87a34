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
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent


def lead3(examples: list[Any]) -> list[str]:
    """The first three turns, speaker tags kept: DialogSum's Lead-3 baseline."""
    return ["\n".join(e.dialogue.splitlines()[:3]) for e in examples]


#: FLAN-T5-base on DialogSum test as published in the LoRA tutorial dialogsum's users start from
#: (not measured here: the hub is out of reach), and Lead-3 as the DialogSum benchmark reports it.
PUBLISHED = {
    "Lead-3 (published)": (21.9, 6.9),
    "FLAN-T5-base, zero-shot (published)": (23.3, 7.6),
    "FLAN-T5-base, LoRA r=32 (published)": (40.8, 16.3),
    "FLAN-T5-base, full fine-tune (published)": (42.2, 18.0),
}


def model_card(
    scores: dict[str, Any],
    recipe: dict[str, Any],
    run_metrics: dict[str, Any],
    params: int,
    hardware: str,
) -> str:
    """The shipped model's README.md: what it is, how it was made, and its measured ROUGE."""
    model, lead3_scores = scores["model"], scores["lead3"]
    rows = [
        ("**dialogsum-tiny** (this model)", model["rouge1"], model["rouge2"]),
        (
            "Lead-3, measured here (first three turns, speaker tags kept)",
            lead3_scores["rouge1"],
            lead3_scores["rouge2"],
        ),
        *((name, r1, r2) for name, (r1, r2) in PUBLISHED.items()),
    ]
    training = recipe["training"]
    return "\n".join(
        [
            "---",
            "library_name: dialogsum",
            "license: cc-by-nc-sa-4.0",
            "datasets:",
            "- knkarthick/dialogsum",
            "pipeline_tag: summarization",
            "tags:",
            "- dialogsum",
            "- summarization",
            "- dialogue-summarization",
            "- t5",
            "model-index:",
            "- name: dialogsum-tiny",
            "  results:",
            "  - task: {type: summarization, name: Dialogue summarization}",
            "    dataset: {name: DialogSum test (500 dialogues x 3 references),",
            "              type: knkarthick/dialogsum, split: test}",
            "    metrics:",
            *(
                f"    - {{type: {k}, value: {model[k]:.2f}}}"
                for k in ("rouge1", "rouge2", "rougeL")
            ),
            "---",
            "",
            "# dialogsum-tiny",
            "",
            f"A {params / 1e6:.1f}M-parameter T5 trained from scratch on DialogSum train by "
            "`recipes/train_dialogsum_tiny.py`, with its own 8k-piece Unigram tokenizer. It ships "
            "inside dialogsum so that the quickstart, the tests and the int8 check run offline: "
            "a demo of the pipeline, not a production summarizer.",
            "",
            "## ROUGE on DialogSum test",
            "",
            f"{scores['test_dialogues']} test dialogues, each prediction scored against its three "
            "references and averaged (rouge-score, stemmed, F1 %). Decoding: the defaults shipped "
            f"with the model ({', '.join(f'{k}={v}' for k, v in recipe['generation'].items())}).",
            "",
            "| model | ROUGE-1 | ROUGE-2 |",
            "|---|---|---|",
            *(f"| {name} | {r1:.1f} | {r2:.1f} |" for name, r1, r2 in rows),
            "",
            f"ROUGE-L {model['rougeL']:.1f}. Distinct summaries: {scores['distinct']:.0%} of test "
            "dialogues.",
            "",
            "## Training",
            "",
            "| | |",
            "|---|---|",
            f"| shape | {', '.join(f'{k} {v}' for k, v in recipe['model'].items())} |",
            f"| method | dialogsum `full`, {training['epochs']} epochs, "
            f"batch {training['batch_size']}, "
            f"{training['optimizer']} lr {training['learning_rate']:g} {training['lr_scheduler']}, "
            f"label smoothing {training['label_smoothing']} |",
            f"| steps | {max(h.get('step', 0) for h in run_metrics.get('log_history', [{}]))} |",
            f"| training time | {run_metrics.get('wall_seconds', 0) / 60:.0f} min; whole recipe "
            f"{scores['minutes']:.0f} min |",
            f"| produced on | {hardware} |",
            "",
            "Weights are stored in bfloat16 (loaded as float32 on the CPU). "
            "Licence: CC BY-NC-SA 4.0, "
            "as the DialogSum data it was trained on.",
            "",
        ]
    )


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
    from dialogsum.training.reports import hardware_description
    from dialogsum.training.tiny_models import build_tiny_tokenizer

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
        vocab_size=len(tokenizer),
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        **recipe["model"],
    )
    model = T5ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **recipe["generation"]
    )
    base = args.work / "init"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.1f}M parameters", flush=True)

    training = dict(recipe["training"])
    if args.max_steps:
        training["max_steps"] = args.max_steps
    summarizer = Summarizer.from_pretrained(base)
    tuned = summarizer.finetune(
        train,
        method="full",
        output_dir=args.work / "run",
        overwrite=True,
        training=training,
        data=recipe["data"],
    )
    print(f"trained in {(time.perf_counter() - started) / 60:.1f} min", flush=True)

    predictions = tuned.summarize([e.dialogue for e in test], batch_size=32, **recipe["generation"])
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
    shipped = args.work / "dialogsum-tiny"
    tuned.save(shipped, overwrite=True, generation=recipe["generation"])
    # Trained from a random initialisation: the "base" is this run's local init folder, a
    # path that means nothing where the model ships (it would show on the service's card).
    manifest_path = shipped / "dialogsum.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["base_model"] = None
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    run_metrics = json.loads((args.work / "run" / "metrics.json").read_text())
    card = model_card(scores, recipe, run_metrics, params, hardware_description())
    (shipped / "README.md").write_text(card, encoding="utf-8")
    print(f"saved {shipped}; copy it to dialogsum/models/dialogsum-tiny to ship it", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
