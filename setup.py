"""Builds glamor._C: a CppExtension (C++, OpenMP) with CPU-only torch, a CUDAExtension when
torch has CUDA and a CUDA toolkit is found. Sources: csrc/*.cpp, csrc/cpu/*.cpp, and for CUDA
csrc/cuda/*.cpp (the torch wrappers) and csrc/cuda/*.cu (torch-free kernels and launches).

GLAMOR_NO_EXT=1 skips the extension (the package then uses its PyTorch reference planners);
GLAMOR_NO_CUDA=1 builds the CPU extension even with a CUDA torch. A CUDA build needs CUDA_HOME
(e.g. /usr/local/cuda) unless nvcc is on the PATH; TORCH_CUDA_ARCH_LIST defaults to 9.0+PTX
(Hopper: the beam search's thread-block clusters need it; the PTX lets newer cards compile it).
On older cards, or with a build without CUDA kernels, planning on a GPU falls back to the
PyTorch reference planner with a warning (glamor.planning.resolve_backend).
"""

import glob
import importlib.util
import os
from pathlib import Path

from setuptools import setup


def _native_build():
    """glamor/native_build.py, loaded by path (importing the package would need its dependencies)."""
    spec = importlib.util.spec_from_file_location("_glamor_native_build", "glamor/native_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ext_modules, cmdclass = [], {}
if os.environ.get("GLAMOR_NO_EXT") != "1" and glob.glob("csrc/*.cpp"):
    import torch
    from torch.utils import cpp_extension

    # torch up to 2.13 builds with C++17, 2.14 needs C++20
    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    std = "-std=c++20" if (major, minor) >= (2, 14) else "-std=c++17"
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    cxx = ["-O3", std, "-fopenmp", "-ffp-contract=off"]
    kwargs = dict(
        extra_compile_args={"cxx": cxx},
        extra_link_args=["-fopenmp"],
        include_dirs=[os.path.abspath("csrc")],
    )
    cuda_sources = sorted(glob.glob("csrc/cuda/*.cpp") + glob.glob("csrc/cuda/*.cu"))
    use_cuda = os.environ.get("GLAMOR_NO_CUDA") != "1" and torch.version.cuda
    if use_cuda and cpp_extension.CUDA_HOME and cuda_sources:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0+PTX")
        # -fmad=false: no a * b + c fused unless the code says fmaf, so every tile size (template
        # instantiation) rounds alike and as the CPU ops (built with -ffp-contract=off)
        kwargs["extra_compile_args"]["nvcc"] = ["-O3", std, "-lineinfo", "-fmad=false"]
        kwargs["define_macros"] = [("GLAMOR_WITH_CUDA", None)]
        ext = cpp_extension.CUDAExtension("glamor._C", sources + cuda_sources, **kwargs)
        built_from = "CUDA_SOURCES"
    else:
        if use_cuda and cuda_sources:
            print("glamor: torch has CUDA but no CUDA toolkit was found (set CUDA_HOME or put nvcc on the PATH): "
                  "building the CPU planner only; planning on a GPU will use the PyTorch reference planner")
        ext = cpp_extension.CppExtension("glamor._C", sources, **kwargs)
        built_from = "CPU_SOURCES"
    # Every file the stamp covers is one the build depends on: setuptools skips an extension
    # whose sources are older than it, and the headers are no sources, so an edit of a header
    # alone was not compiled by `setup.py build_ext --inplace` while the stamp took it in.
    native_build = _native_build()
    ext.depends = [p.as_posix() for p in native_build.files(Path("."), getattr(native_build, built_from))
                   if p.as_posix() not in ext.sources]
    ext_modules = [ext]

    class BuildExtension(cpp_extension.BuildExtension.with_options(use_ninja=True)):
        """torch's, then the stamp of the sources built (glamor/native_build.py: glamor.ops warns
        when csrc/ has changed since)."""

        def run(self):
            # the sources as the compiler reads them: taken before the build (minutes with CUDA),
            # so that a file edited meanwhile, perhaps after it was compiled, is not stamped
            native_build = _native_build()
            patterns = getattr(native_build, built_from)
            before = native_build.digest(Path.cwd(), patterns)
            super().run()
            package_dir = Path(self.get_ext_fullpath("glamor._C")).parent
            native_build.write_stamp(package_dir, Path.cwd(), patterns, before)

    cmdclass = {"build_ext": BuildExtension}

setup(ext_modules=ext_modules, cmdclass=cmdclass)
