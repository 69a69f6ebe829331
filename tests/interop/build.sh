#!/usr/bin/env bash
# Builds llama.cpp (the copy vendored in llama-cpp-python's sdist) once into a cache, plus a venv
# with llama-cpp-python[server] that loads those same shared libraries; later runs take seconds.
#
# Cache: $DOCOMPLETE_INTEROP_CACHE (default ~/.cache/docomplete/interop). Prints the env file.
# Layout: sdist/ (the PyPI sdist), src/ (unpacked), build/bin/ (llama-server, libllama.so, ...),
#         venv/ (python -m llama_cpp.server), env (shell-sourceable paths for the tests).
set -euo pipefail

VERSION="0.3.36"
CACHE="${DOCOMPLETE_INTEROP_CACHE:-$HOME/.cache/docomplete/interop}"
PYTHON="${DOCOMPLETE_INTEROP_PYTHON:-python3}"
NICE="${DOCOMPLETE_INTEROP_NICE:-5}"
JOBS="${DOCOMPLETE_INTEROP_JOBS:-2}"
SDIST_NAME="llama_cpp_python-${VERSION}.tar.gz"
SRC="$CACHE/src/llama_cpp_python-${VERSION}"
BUILD="$CACHE/build"
VENV="$CACHE/venv"

# One configuration, recorded in the stamp: a changed line here rebuilds.
CMAKE_FLAGS=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=ON
  -DGGML_NATIVE=ON
  -DLLAMA_BUILD_SERVER=ON
  -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_COMMON=ON
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_APP=OFF
  -DLLAMA_OPENSSL=OFF
  -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF
)
TARGETS=(llama-server llama)

say() { printf 'interop-build: %s\n' "$*" >&2; }
mkdir -p "$CACHE"

# 1. The sdist, downloaded once from PyPI.
if [[ ! -f "$CACHE/sdist/$SDIST_NAME" ]]; then
  say "downloading the llama-cpp-python==$VERSION sdist"
  rm -rf "$CACHE/sdist.tmp" && mkdir -p "$CACHE/sdist.tmp"
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps \
    "llama-cpp-python==$VERSION" -d "$CACHE/sdist.tmp"
  rm -rf "$CACHE/sdist" && mv "$CACHE/sdist.tmp" "$CACHE/sdist"
fi

# 2. Unpacked once.
if [[ ! -f "$SRC/.unpacked" ]]; then
  say "unpacking $SDIST_NAME"
  rm -rf "$SRC" && mkdir -p "$CACHE/src"
  tar -xzf "$CACHE/sdist/$SDIST_NAME" -C "$CACHE/src"
  touch "$SRC/.unpacked"
fi

# 3. llama.cpp compiled once: llama-server and the shared libraries, in build/bin.
stamp="$VERSION ${CMAKE_FLAGS[*]} ${TARGETS[*]}"
if [[ ! -f "$BUILD/.built" || "$(cat "$BUILD/.built")" != "$stamp" ]]; then
  say "compiling llama.cpp with cmake (-j$JOBS, nice $NICE); this takes 10-20 minutes on 2 cores"
  generator=()
  command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
  nice -n "$NICE" cmake -S "$SRC/vendor/llama.cpp" -B "$BUILD" "${generator[@]}" "${CMAKE_FLAGS[@]}" >&2
  nice -n "$NICE" cmake --build "$BUILD" --target "${TARGETS[@]}" -j "$JOBS" >&2
  printf '%s' "$stamp" > "$BUILD/.built"
fi
test -x "$BUILD/bin/llama-server" && test -f "$BUILD/bin/libllama.so"

# 4. llama-cpp-python[server] in its own venv, its CMake told not to build llama.cpp again
#    (LLAMA_BUILD=OFF): the package's lib/ dir links to build/bin instead.
if [[ ! -f "$VENV/.installed" || "$(cat "$VENV/.installed")" != "$stamp" ]]; then
  say "installing llama-cpp-python[server]==$VERSION into $VENV without recompiling llama.cpp"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip >&2
  CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" nice -n "$NICE" \
    "$VENV/bin/pip" install -q --disable-pip-version-check \
    "llama-cpp-python[server] @ file://$CACHE/sdist/$SDIST_NAME" >&2
  pkg="$("$VENV/bin/python" -c 'import importlib.util as u; print(u.find_spec("llama_cpp").submodule_search_locations[0])')"
  mkdir -p "$pkg/lib"
  for lib in "$BUILD"/bin/lib*.so*; do ln -sf "$lib" "$pkg/lib/$(basename "$lib")"; done
  LLAMA_CPP_LIB_PATH="$BUILD/bin" "$VENV/bin/python" -c 'import llama_cpp; llama_cpp.llama_backend_init()'
  printf '%s' "$stamp" > "$VENV/.installed"
fi

cat > "$CACHE/env" <<ENV
LLAMA_SERVER=$BUILD/bin/llama-server
LLAMA_CPP_PYTHON=$VENV/bin/python
LLAMA_CPP_LIB_PATH=$BUILD/bin
ENV
say "ready: $CACHE/env"
echo "$CACHE/env"
