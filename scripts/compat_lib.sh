#!/usr/bin/env bash
# What make compat (scripts/compat.sh) and make compat-upgrade (scripts/compat_upgrade.sh) share:
# the built wheels, and installing them beside one Airflow release as a user would.
#
# Sourced (after `set -euo pipefail`), it defines:
#   compat_build_wheels              the provider's and the reference services' wheels in .compat/dist
#                                    (or $COMPAT_DIST)
#   compat_new_venv VENV             a fresh, empty venv (removes VENV first)
#   compat_install VENV VERSION [EXTRAS] [REQUIREMENT...]
#                                    the wheels and apache-airflow[EXTRAS]==VERSION installed together
#                                    into VENV (created when missing; an existing one is upgraded in
#                                    place), plus REQUIREMENT...; fails when Airflow would end up
#                                    on another version. On failure COMPAT_ERROR says what failed.
#   compat_plain_airflow VENV VERSION a fresh venv with apache-airflow[postgres]==VERSION and pip only
# Run as a command (the wheels already built):
#   bash scripts/compat_lib.sh install VENV VERSION [EXTRAS] [REQUIREMENT...]

COMPAT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPAT_UV="$COMPAT_ROOT/.venv/bin/uv"
COMPAT_PYTHON="${PYTHON:-$(command -v python3.11 2>/dev/null || command -v python3)}"
# Where the wheels are built (COMPAT_DIST: another folder, for runs side by side).
COMPAT_DIST="${COMPAT_DIST:-$COMPAT_ROOT/.compat/dist}"
COMPAT_ERROR=""

compat_log() { echo "[compat] $(date +%H:%M:%S) $*"; }

# What Airflow's constraints file of a release would pin and its own requirements leave open, where
# today's newest breaks that release by itself (whatever the provider): Airflow 3.2.2 with fastapi
# 0.165 fails to build its execution API (pydantic: "TITerminalStatePayload needs a discriminator
# field"), so every task of `airflow dags test` fails; cadwyn 9 needs that fastapi. The pins are the
# versions this project's 3.3.2 development environment resolves. Airflow 3.1.8 with cryptography
# 51 cannot read or write a connection: its get_fernet() sets an attribute on cryptography's
# MultiFernet (`_fernet.is_encrypted = True`), which version 51 no longer allows ("'MultiFernet'
# object has no attribute 'is_encrypted'"; every connection then reads as missing). 3.3.2 wraps it;
# 3.1 and 3.2 get the last release before 51. A deployment installs Airflow with its constraints file
# (as Airflow's installation guide says) and never meets this.
compat_pins() {
    case "$1" in
        3.1) echo "cryptography<51" ;;
        3.2) echo "fastapi==0.136.3 cadwyn==7.0.0 cryptography<51" ;;
        *) echo "" ;;
    esac
}

compat_check_uv() {
    [[ -x "$COMPAT_UV" ]] || { compat_log "error: $COMPAT_UV missing: run make venv first"; return 1; }
}

compat_build_wheels() {
    compat_check_uv
    compat_log "building the wheels"
    rm -rf "$COMPAT_DIST"
    "$COMPAT_UV" build --quiet --wheel --out-dir "$COMPAT_DIST" "$COMPAT_ROOT" >/dev/null
    "$COMPAT_UV" build --quiet --wheel --out-dir "$COMPAT_DIST" "$COMPAT_ROOT/services" >/dev/null
}

compat_provider_wheel() { ls "$COMPAT_DIST"/airflow_order_provider-*.whl; }
compat_services_wheel() { ls "$COMPAT_DIST"/airflow_order_services-*.whl; }

compat_new_venv() {
    rm -rf "$1"
    "$COMPAT_UV" venv --quiet --python "$COMPAT_PYTHON" "$1"
}

# A plain Airflow, as a deployment has it before the provider: apache-airflow[postgres]==VERSION and pip.
compat_plain_airflow() {
    local venv="$1" version="$2"
    compat_check_uv
    compat_new_venv "$venv"
    # shellcheck disable=SC2046  # pins: a list of requirements
    "$COMPAT_UV" pip install --quiet --python "$venv/bin/python" "apache-airflow[postgres]==$version" pip \
        $(compat_pins "${version%.*}")
}

compat_install() {
    local venv="$1" version="$2" extras="${3:-}"
    shift 2
    [[ $# -gt 0 ]] && shift
    local minor="${version%.*}" airflow="apache-airflow" installed
    [[ -n "$extras" ]] && airflow="apache-airflow[$extras]"
    COMPAT_ERROR=""
    compat_check_uv
    [[ -x "$venv/bin/python" ]] || compat_new_venv "$venv"
    # Installed together, as a user would (`pip install airflow_order_provider-*.whl
    # "apache-airflow==X.Y.Z"`); uv's cache makes it quick.
    # shellcheck disable=SC2046  # pins: a list of requirements
    if ! "$COMPAT_UV" pip install --quiet --python "$venv/bin/python" \
        "$(compat_provider_wheel)" "$(compat_services_wheel)" "$airflow==$version" "$@" $(compat_pins "$minor"); then
        COMPAT_ERROR="FAILED to install"
        return 1
    fi
    installed="$("$venv/bin/python" -c 'import airflow, sys; print(airflow.__version__)' 2>/dev/null | tail -1)"
    if [[ "$installed" != "$version" ]]; then
        COMPAT_ERROR="FAILED: Airflow $installed installed"
        return 1
    fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
        install)
            shift
            compat_install "$@" || { compat_log "$COMPAT_ERROR"; exit 1; }
            ;;
        *)
            echo "usage: bash scripts/compat_lib.sh install VENV VERSION [EXTRAS] [REQUIREMENT...]" >&2
            exit 2
            ;;
    esac
fi
