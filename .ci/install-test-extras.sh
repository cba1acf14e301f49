#!/usr/bin/env bash
# What the test suite needs beyond `pip install -e '.[test,iterative]'`, installed only when missing:
# - ptychodus's own io (interop tests), without its GUI/ML dependency stack (and quietly);
# - Debian's chromium for the real-browser test (never `playwright install`: its browser
#   download is blocked here, and the Python playwright package drives Debian's chromium);
# - a `python3` Jupyter kernelspec for the notebook tests (nbclient, nbval, JupyterLab).
set -euo pipefail
PY="${PYTHON:-python}"

# ptychodus goes into its own folder on sys.path (a .pth file), without its pip metadata: pip
# would otherwise report its deliberately missing GUI/ML dependencies as a red ERROR on every
# later install, though nothing fails. An earlier pip-registered copy is replaced the same way.
if "$PY" -m pip show ptychodus >/dev/null 2>&1; then
    "$PY" -m pip uninstall --quiet -y ptychodus
fi
if ! "$PY" -c "import ptychodus.api.io" >/dev/null 2>&1; then
    SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    DEST="$SITE/_ptycho_nb_test_ptychodus"
    rm -rf "$DEST"
    "$PY" -m pip install --quiet --no-deps --target "$DEST" ptychodus==1.7.0
    rm -rf "$DEST"/ptychodus-*.dist-info "$DEST"/bin
    echo "$DEST" > "$SITE/_ptycho_nb_test_ptychodus.pth"
fi

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi

if ! "$PY" -m jupyter kernelspec list 2>/dev/null | grep -qE '^\s+python3\s'; then
    "$PY" -m ipykernel install --user --name python3
fi

/usr/bin/chromium --version
