"""Builds glamor._C: a CppExtension (C++, OpenMP) with CPU-only torch, a CUDAExtension when
torch has CUDA and a CUDA toolkit is found. Sources: csrc/*.cpp, csrc/cpu/*.cpp, csrc/cuda/*.cu.

GLAMOR_NO_EXT=1 skips the extension (the package then uses its PyTorch reference planners).
"""

import glob
import os

from setuptools import setup

ext_modules, cmdclass = [], {}
if os.environ.get("GLAMOR_NO_EXT") != "1" and glob.glob("csrc/*.cpp"):
    import torch
    from torch.utils import cpp_extension

    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    cxx = ["-O3", "-std=c++17", "-fopenmp", "-ffp-contract=off"]
    kwargs = dict(
        extra_compile_args={"cxx": cxx},
        extra_link_args=["-fopenmp"],
        include_dirs=[os.path.abspath("csrc")],
    )
    cuda_sources = sorted(glob.glob("csrc/cuda/*.cu"))
    if torch.version.cuda and cpp_extension.CUDA_HOME and cuda_sources:
        kwargs["extra_compile_args"]["nvcc"] = ["-O3", "-std=c++17", "--use_fast_math", "-lineinfo"]
        kwargs["define_macros"] = [("GLAMOR_WITH_CUDA", None)]
        ext = cpp_extension.CUDAExtension("glamor._C", sources + cuda_sources, **kwargs)
    else:
        ext = cpp_extension.CppExtension("glamor._C", sources, **kwargs)
    ext_modules = [ext]
    cmdclass = {"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)}

setup(ext_modules=ext_modules, cmdclass=cmdclass)
