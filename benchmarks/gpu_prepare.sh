#!/usr/bin/env bash
# Run HERE (a machine with the package registries) before a GPU lease: gathers into .gpu/
# (ignored by git) everything benchmarks/gpu_check.sh needs on a GPU machine that reaches
# nothing: the FLAN-T5-base config, the DialogSum corpus, and wheels for Python 3.12 of the
# packages dialogsum pins that the GPU image lacks or has at other versions (its torch, CUDA
# build included, is used as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${SHARED:-../shared}"
rm -rf .gpu
mkdir -p .gpu/wheels .gpu/dialogsum
cp "$shared/models/flan-t5-base.config.json" .gpu/
# The first 4000 training dialogues are plenty for timed steps and keep what travels small.
head -n 4000 "$shared/data/dialogsum/train.jsonl" > .gpu/dialogsum/train.jsonl
cp "$shared/data/dialogsum/"{validation,test}.jsonl .gpu/dialogsum/
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
binary() {
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .gpu/wheels "$@"
}
# transformers<4.58 for optimum-onnx (the GPU image has transformers 5), and what it needs.
binary "transformers==4.57.6" "tokenizers>=0.22,<0.23" "huggingface_hub>=0.34,<1.0" \
  "peft==0.21.2" "pluggy>=1.3" "onnx>=1.17" "nltk" "absl-py" "hf-xet" "pydantic>=2.6" \
  "pydantic-core" "annotated-types" "typing-inspection" "pytest>=8" "iniconfig" "click" \
  "joblib" "regex" "pyyaml"
binary "optimum-onnx" "optimum"
# rouge-score ships only as a source archive: build its (pure Python) wheel here.
python3 -m pip wheel --quiet --no-deps -w .gpu/wheels rouge-score
du -sh .gpu
ls .gpu/wheels
