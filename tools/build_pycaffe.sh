#!/usr/bin/env bash
# Build pycaffe (CPU only) from the PyPI source package brocolli-caffe, so that `import caffe`
# works and `posebridge parity --reference caffe` / tools/make_goldens.py can run real Caffe.
#
# brocolli-caffe is BVLC Caffe (commit 9b89154) with a CMake build that links one Python module
# (_caffe.so) holding all of Caffe; its standard layers compute as BVLC's do. Its setup.py wants
# conda and Python <= 3.9, so this script drives its CMake directly instead of pip-installing it.
#
# Usage:  tools/build_pycaffe.sh            (idempotent: re-running skips finished steps)
# Environment:
#   PYCAFFE_ROOT     work folder (download, sources, build)   [~/.cache/posebridge/pycaffe]
#   PYCAFFE_VERSION  brocolli-caffe version                   [9.0.2]
#   PYCAFFE_JOBS     parallel compile jobs                     [2]
#   PYCAFFE_NO_APT=1 do not apt-get the system libraries (they must be there already)
#   PYCAFFE_NO_PTH=1 do not write a .pth file into site-packages; export PYTHONPATH yourself
#   PYTHON           the interpreter pycaffe is built for      [python3]
#
# Debian 12 fixes applied to the unpacked sources/build (each idempotent):
#   * link boost_python311 (Debian names Boost.Python after the Python version; the sources
#     link plain -lboost_python);
#   * src/ on the include path (for gtest headers), HDF5's serial include/lib folders, numpy 2's
#     include folder (numpy/_core/include), the interpreter's own headers;
#   * python/caffe/io.py imports scikit-image and scipy at the top, only for image loading and
#     resizing helpers posebridge never calls: those two imports are made optional, so
#     `import caffe` needs only numpy, six and protobuf;
#   * caffe_pb2.py: the one the build copies (system protoc 3.21) does import under protobuf 7
#     on its own, but it registers `caffe.*` messages in protobuf's default descriptor pool,
#     where posebridge's own posebridge.prototxt.caffe_pb2 registers the same names: importing
#     both in one process (parity --reference caffe) fails with "TypeError: Couldn't build proto
#     file into descriptor pool: duplicate symbol 'caffe.Phase'". So pycaffe's caffe_pb2.py is
#     regenerated with the pinned grpcio-tools protoc (gencode matching the protobuf 7 runtime)
#     and its descriptors go into a private DescriptorPool (a one-line substitution). No
#     PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION switch is needed. pycaffe's C++ side (libprotobuf
#     3.21) never sees Python protos, so nothing else changes.
set -euo pipefail

PYTHON=${PYTHON:-python3}
VERSION=${PYCAFFE_VERSION:-9.0.2}
ROOT=${PYCAFFE_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/posebridge/pycaffe}
JOBS=${PYCAFFE_JOBS:-2}
SRC="$ROOT/brocolli-caffe-$VERSION"
BUILD="$ROOT/build-$VERSION"
ARCHIVE="$ROOT/brocolli-caffe-$VERSION.tar.gz"
APT_PACKAGES=(cmake g++ make protobuf-compiler libprotobuf-dev libgoogle-glog-dev libgflags-dev
  libhdf5-dev libopenblas-dev libboost-python-dev libboost-system-dev libboost-thread-dev
  libboost-filesystem-dev libboost-regex-dev)

say() { echo "[build_pycaffe] $*"; }
run() { echo "+ $*"; "$@"; }

PY_TAG=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
PY_DOT=$("$PYTHON" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')
PY_INC=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
PY_PREFIX=$("$PYTHON" -c 'import sys; print(sys.prefix)')
NUMPY_INC=$("$PYTHON" -c 'import numpy; print(numpy.get_include())')
say "python $PY_DOT ($PYTHON), numpy headers $NUMPY_INC"
say "work folder $ROOT"
mkdir -p "$ROOT"

# --- 1. system libraries -------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ "${PYCAFFE_NO_APT:-}" == 1 ]]; then
    say "missing system packages: ${missing[*]} (PYCAFFE_NO_APT=1: not installing)"; exit 1
  fi
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  say "installing ${missing[*]}"
  run $SUDO apt-get update
  run $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
  say "system packages present"
fi
BOOST_PYTHON="boost_python$PY_TAG"
[[ -e "/usr/lib/$(gcc -print-multiarch)/lib$BOOST_PYTHON.so" ]] || {
  say "lib$BOOST_PYTHON.so not found: libboost-python-dev does not match $PY_DOT"; exit 1; }

# --- 2. sources ----------------------------------------------------------------------------
if [[ ! -f "$ARCHIVE" ]]; then
  say "downloading brocolli-caffe==$VERSION (source package)"
  run "$PYTHON" -m pip download --no-deps --no-binary :all: -d "$ROOT" "brocolli-caffe==$VERSION"
else
  say "archive present: $ARCHIVE"
fi
if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
  run tar -xzf "$ARCHIVE" -C "$ROOT"
else
  say "sources present: $SRC"
fi

# link Boost.Python by its Debian name (idempotent: the pattern needs a space after the name)
if grep -q -- "-lboost_python " "$SRC/python/CMakeLists.txt"; then
  say "patching python/CMakeLists.txt: -lboost_python -> -l$BOOST_PYTHON"
  run sed -i "s/-lboost_python /-l$BOOST_PYTHON /" "$SRC/python/CMakeLists.txt"
fi

# pycaffe's io.py: scikit-image/scipy only for image helpers; import them lazily-optional
IO_PY="$SRC/python/caffe/io.py"
if grep -q "^import skimage.io$" "$IO_PY"; then
  say "patching python/caffe/io.py: scikit-image and scipy imports made optional"
  run "$PYTHON" - "$IO_PY" <<'PATCH'
import sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
guards = {
    "import skimage.io\n": "skimage = None",
    "from scipy.ndimage import zoom\n": "zoom = None",
}
for line, fallback in guards.items():
    text = text.replace(line, "try:\n    " + line + "except ImportError:  # posebridge: only the image helpers need it\n    "
                        + fallback + "\n", 1)
open(path, "w", encoding="utf-8").write(text)
PATCH
fi
"$PYTHON" -c "import six" 2>/dev/null || { say "pycaffe needs the 'six' package: pip install six"; exit 1; }

# --- 3. configure and build ----------------------------------------------------------------
HDF5_INC=$(pkg-config --cflags-only-I hdf5 2>/dev/null || echo "-I/usr/include/hdf5/serial")
HDF5_LIB=$(pkg-config --libs-only-L hdf5 2>/dev/null || echo "-L/usr/lib/$(gcc -print-multiarch)/hdf5/serial")
CXX_FLAGS="-I$SRC/src -I$PY_INC -I$NUMPY_INC $HDF5_INC -Wno-deprecated-declarations"
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  say "configuring (CPU_ONLY, no OpenCV/LMDB/LevelDB, Release)"
  run cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCPU_ONLY=ON -DUSE_CUDNN=OFF \
    -DUSE_OPENCV=OFF -DUSE_LMDB=OFF -DUSE_LEVELDB=OFF -DBUILD_python=ON -DBUILD_python_layer=OFF \
    -DBUILD_docs=OFF -DANACONDA_HOME="$PY_PREFIX" -DPYTHON_VERSION="$PY_DOT" \
    -DCMAKE_CXX_FLAGS="$CXX_FLAGS" -DCMAKE_SHARED_LINKER_FLAGS="$HDF5_LIB"
else
  say "already configured: $BUILD"
fi
say "building target pycaffe with $JOBS jobs (first build: about 25 minutes on 2 shared cores)"
run cmake --build "$BUILD" --target pycaffe -j "$JOBS"

# --- 4. caffe_pb2 for protobuf 7, in a private descriptor pool -----------------------------
PB2="$SRC/python/caffe/proto/caffe_pb2.py"
say "regenerating $PB2 with grpcio-tools' protoc, private DescriptorPool"
"$PYTHON" -c "import grpc_tools" 2>/dev/null || {
  say "grpcio-tools missing: pip install -c constraints.txt grpcio-tools"; exit 1; }
PB_OUT="$BUILD/pb2_protobuf7"
rm -rf "$PB_OUT" && mkdir -p "$PB_OUT"
run "$PYTHON" -m grpc_tools.protoc --python_out="$PB_OUT" --proto_path="$SRC/src" caffe/proto/caffe.proto
run sed -i 's/_descriptor_pool\.Default()\.AddSerializedFile(/_descriptor_pool.DescriptorPool().AddSerializedFile(/' \
  "$PB_OUT/caffe/proto/caffe_pb2.py"
grep -q "_descriptor_pool.DescriptorPool().AddSerializedFile(" "$PB_OUT/caffe/proto/caffe_pb2.py" || {
  say "unexpected gencode layout: could not move caffe_pb2 into a private pool"; exit 1; }
run cp "$PB_OUT/caffe/proto/caffe_pb2.py" "$PB2"
touch "$SRC/python/caffe/proto/__init__.py"

# --- 5. make `import caffe` work -----------------------------------------------------------
PY_PATH="$SRC/python"
if [[ "${PYCAFFE_NO_PTH:-}" != 1 ]]; then
  SITE=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  say "writing $SITE/posebridge_pycaffe.pth -> $PY_PATH"
  echo "$PY_PATH" > "$SITE/posebridge_pycaffe.pth"
else
  say "no .pth written: export PYTHONPATH=$PY_PATH"
  export PYTHONPATH="$PY_PATH${PYTHONPATH:+:$PYTHONPATH}"
fi
say "checking: import caffe"
run "$PYTHON" -c "import caffe; caffe.set_mode_cpu(); print('pycaffe OK:', caffe.__file__)"
if "$PYTHON" -c "import posebridge" 2>/dev/null; then
  say "checking: import caffe next to posebridge's own caffe_pb2"
  run "$PYTHON" -c "import posebridge.prototxt.caffe_pb2, caffe; print('pycaffe OK next to posebridge')"
fi
