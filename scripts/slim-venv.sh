#!/usr/bin/env bash
# Shrink the Docker image's virtual environment (run by the Dockerfile right after scripts/setup.sh):
# remove what the app and `pleura score/batch/verify` never load. Measured with
# `podman run … du` on the image (scripts/test-container.sh prints the image size); the container
# test checks that the CLI score inside still equals the host's and that the app predicts.
#
#   bash scripts/slim-venv.sh /opt/venv
#
# Removed:
#  * the packages' own test suites (`tests/` folders; torch's C++ test binaries and test libraries);
#  * torch's C++ headers, CMake files and build tools (protoc): only needed to compile extensions;
#  * sympy + mpmath: torch needs them only for torch.compile / symbolic shapes, never for the eager
#    CPU forward pass PleuraRisk runs (`import torch` does not import sympy);
#  * pydeck (Streamlit's map charts; the app draws no maps, Streamlit imports it only for st.pydeck_chart);
#  * pip, setuptools, wheel: nothing is installed into the image after this step;
#  * pyarrow's Flight RPC and cloud file-system libraries;
#  * symbol tables of torch's, llvmlite's and pyarrow's libraries (strip --strip-unneeded;
#    libtorch_cpu.so 434 -> 345 MB);
#  * C/Cython sources and headers shipped inside wheels (*.pyx, *.pxd, *.c, *.h, *.cpp);
#  * every __pycache__, then the modules the app and CLI import are compiled once (python -m
#    compileall on the imported set), so a read-only container does not recompile them at each start;
#    a module of pipeline/ or models/ that no longer imports after all this fails the build.
set -euo pipefail
VENV=${1:?usage: slim-venv.sh VENV}
PY="$VENV/bin/python"
SP=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
before=$(du -sm "$VENV" | cut -f1)

"$PY" -m pip uninstall -q -y sympy mpmath pydeck

# test suites of every package; torch keeps torch/testing (public API imported by torch itself)
find "$SP" -depth -type d -name tests -prune -exec rm -rf {} +
rm -rf "$SP/torch/test" "$SP/torch/include" "$SP/torch/share" "$SP"/torch/lib/lib*test*.so \
       "$SP/torch/lib/libbackend_with_compiler.so" "$SP/torch/lib/libaoti_custom_ops.so"
find "$SP/torch/bin" -mindepth 1 ! -name torch_shm_manager -exec rm -rf {} +

# pyarrow (Streamlit's tables, parquet): its Flight RPC and cloud file systems (S3, GCS, Azure) are
# never used; pyarrow.fs imports each of them only if present
rm -f "$SP"/pyarrow/libarrow_flight.so* "$SP"/pyarrow/libarrow_python_flight.so* "$SP"/pyarrow/_flight.*.so \
      "$SP"/pyarrow/libarrow_s3.so* "$SP"/pyarrow/_s3fs.*.so "$SP"/pyarrow/_gcsfs.*.so "$SP"/pyarrow/_azurefs.*.so \
      "$SP"/pyarrow/_pyarrow_cpp_tests.*.so

# symbol tables of the largest shared libraries (torch, llvmlite, pyarrow: built as they are, not
# rewritten by auditwheel's patchelf: stripping a patched library such as numpy.libs/*openblas*
# breaks it, "ELF load command address/offset not page-aligned"). Python tracebacks are unchanged.
# Needs binutils (present while gcc is installed for PyRadiomics' build).
if command -v strip >/dev/null; then
  strip --strip-unneeded "$SP"/torch/lib/*.so "$SP"/llvmlite/binding/*.so "$SP"/pyarrow/lib*.so.[0-9]* \
        "$SP"/pyarrow/*.cpython-*.so
fi

# sources and headers of compiled extensions
find "$SP" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.c' -o -name '*.cpp' \
     -o -name '*.h' -o -name '*.hpp' \) -delete

# byte code: only for what runs (startup of a read-only container would otherwise compile it each time)
find "$VENV" -type d -name __pycache__ -prune -exec rm -rf {} +
"$PY" -m pip uninstall -q -y pip setuptools wheel 2>/dev/null || true
"$PY" - <<'PY'
import compileall, importlib, os, pkgutil, sys
# every module of this project's packages (run from the image's /app) and the app's libraries
names = ["streamlit", "streamlit.web.cli", "plotly.graph_objects", "plotly.express", "matplotlib.pyplot", "fpdf"]
for pkg in ("pipeline", "models"):
    mod = importlib.import_module(pkg)
    names += [m.name for m in pkgutil.walk_packages(mod.__path__, prefix=f"{pkg}.")]
failed = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - reported; its imports so far are still compiled
        failed.append(f"{name} ({type(exc).__name__})")
here = os.getcwd() + os.sep
files = sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)
                and m.__file__.endswith(".py") and ("/site-packages/" in m.__file__ or m.__file__.startswith(here))})
ok = all(compileall.compile_file(f, quiet=2, legacy=False, optimize=0, force=True) for f in files)
print(f"slim-venv: compiled {len(files)} imported modules; not importable: {', '.join(failed) or 'none'}")
sys.exit(0 if ok and not failed else 1)  # a module that no longer imports fails the build
PY
after=$(du -sm "$VENV" | cut -f1)
echo "slim-venv: $VENV ${before} MB -> ${after} MB"
