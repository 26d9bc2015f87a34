#!/usr/bin/env bash
# The prepared GPU check (about 8 minutes). On the GPU machine, from the repository root, with
# .gpu/ carried (benchmarks/gpu_prepare.sh fills it):
#
#   bash benchmarks/gpu_check.sh             # results as JSON under $OUT
#   bash benchmarks/gpu_check.sh --dry-run   # here, on a CPU: the same code paths, toy sizes
#
# It installs the carried wheels over the image's Python (whose torch is the CUDA build that
# matches the machine), runs the CUDA-marked tests and the torch tests on the GPU, then
# benchmarks/gpu_check.py (training MFU, CUDA serving, bf16-vs-fp32 agreement).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check}"
mkdir -p "$out"
if [ "${1:-}" = "--dry-run" ]; then
  python=.venv/bin/python
  "$python" benchmarks/gpu_check.py --dry-run --out "$out"
  exit $?
fi
site=/tmp/dialogsum-site
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .gpu/wheels/*.whl \
  || { echo "installing the carried wheels failed" >&2; exit 1; }
# dialogsum's entry points (its built-in methods and backends) from pyproject.toml, as an
# installed distribution's metadata, without building a wheel offline.
python3 - "$site" <<'PY'
import re, sys, tomllib
from pathlib import Path
project = tomllib.loads(Path("pyproject.toml").read_text())
version = re.search(r'__version__ = "([^"]+)"', Path("dialogsum/_version.py").read_text())[1]
info = Path(sys.argv[1]) / f"dialogsum-{version}.dist-info"
info.mkdir(parents=True, exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: dialogsum\nVersion: {version}\n")
points = project["project"]["entry-points"]["dialogsum"]
(info / "entry_points.txt").write_text(
    "[dialogsum]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
PY
# The checkout first (the code under test), then the carried packages (dialogsum's wheel there
# brings its entry points), then the image's own (torch with CUDA).
export PYTHONPATH="$PWD:$site:${PYTHONPATH:-}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -c "import torch, transformers, dialogsum; print('torch', torch.__version__, 'cuda',
torch.version.cuda, torch.cuda.get_device_name(0), 'transformers', transformers.__version__)" \
  | tee "$out/versions.txt"
status=0
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/backends/torch/test_cuda.py \
  tests/face/test_summarizer.py tests/face/test_capabilities.py 2>&1 | tail -n 30 \
  | tee "$out/pytest.txt" \
  || status=1
timeout 330 python3 benchmarks/gpu_check.py --out "$out" --train-steps 30 || status=1
exit $status
