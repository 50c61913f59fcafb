"""The native planner's tests skip when glamor._C is missing, so its absence must fail somewhere."""

import os

import pytest

from glamor import ops


def test_the_native_extension_is_built():
    if os.environ.get("GLAMOR_ALLOW_NO_NATIVE") == "1":
        pytest.skip("GLAMOR_ALLOW_NO_NATIVE=1: testing the reference planner alone")
    assert ops.available(), (f"glamor._C did not load ({ops.import_error()}), so the native planner's "
                             f"tests would all skip; {ops.REBUILD_HINT}")


def test_the_native_extension_is_built_from_the_sources_in_csrc():
    """The build stamps the sources it compiled beside the extension; an editable install left
    from before an edit or a `git pull` of csrc/ would run other ops than this code expects (and
    the native tests would test those)."""
    from pathlib import Path

    import glamor
    from glamor import native_build

    if not ops.available():
        pytest.skip("glamor._C is not built (test_the_native_extension_is_built says so)")
    package = Path(glamor.__file__).resolve().parent
    if not (package.parent / "csrc").is_dir():
        pytest.skip("an installed package: no csrc/ to compare with")
    assert (package / native_build.STAMP).is_file(), f"setup.py wrote no {native_build.STAMP}; {ops.REBUILD_HINT}"
    assert native_build.stale_reason(package) is None, ops.REBUILD_HINT


def _checkout(tmp_path):
    """A package folder with csrc/ beside it, as in a source checkout."""
    (tmp_path / "glamor").mkdir()
    (tmp_path / "csrc" / "cpu").mkdir(parents=True)
    (tmp_path / "csrc" / "cuda").mkdir()
    (tmp_path / "csrc" / "ops.cpp").write_text("int f();\n")
    (tmp_path / "csrc" / "cpu" / "plan.h").write_text("#pragma once\n")
    (tmp_path / "csrc" / "cuda" / "k.cu").write_text("__global__ void k() {}\n")
    return tmp_path / "glamor"


def test_a_stamp_names_an_edit_a_new_file_and_a_removed_one_among_the_sources_it_covers(tmp_path):
    from glamor import native_build

    package = _checkout(tmp_path)
    assert native_build.stale_reason(package) is None, "no stamp (built before stamps): not checked"
    native_build.write_stamp(package, tmp_path, native_build.CPU_SOURCES)
    assert native_build.stale_reason(package) is None
    (tmp_path / "csrc" / "cuda" / "k.cu").write_text("// a CUDA source a CPU build does not compile\n")
    assert native_build.stale_reason(package) is None
    for change in (lambda: (tmp_path / "csrc" / "ops.cpp").write_text("int f(int);\n"),
                   lambda: (tmp_path / "csrc" / "cpu" / "new.cpp").write_text("\n"),
                   lambda: (tmp_path / "csrc" / "cpu" / "plan.h").unlink()):
        native_build.write_stamp(package, tmp_path, native_build.CPU_SOURCES)
        change()
        reason = native_build.stale_reason(package)
        assert reason is not None and str(tmp_path / "csrc") in reason
    native_build.write_stamp(package, tmp_path, native_build.CUDA_SOURCES)
    (tmp_path / "csrc" / "cuda" / "k.cu").write_text("// edited\n")
    assert native_build.stale_reason(package) is not None, "a CUDA build covers the CUDA sources"
    (package / native_build.STAMP).write_text("{not json")
    assert native_build.stale_reason(package) is None, "an unreadable stamp is no verdict"


def test_importing_the_ops_warns_when_the_sources_changed_since_the_build(tmp_path):
    """In a fresh process (the check runs at import), against a copy of the stamp that does not match."""
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import glamor
    from glamor import native_build

    if not ops.available():
        pytest.skip("glamor._C is not built")
    package = Path(glamor.__file__).resolve().parent
    if not (package.parent / "csrc").is_dir():
        pytest.skip("an installed package: no csrc/ to compare with")
    # a copy of the package and its csrc/, whose stamp says the build had other sources
    shutil.copytree(package, tmp_path / "glamor", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(package.parent / "csrc", tmp_path / "csrc")
    native_build.write_stamp(tmp_path / "glamor", tmp_path, native_build.CPU_SOURCES)
    code = "import warnings; warnings.simplefilter('always'); import glamor.ops"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    quiet = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and "glamor._C was built from other" not in quiet.stderr, quiet.stderr
    stamp = json.loads((tmp_path / "glamor" / native_build.STAMP).read_text())
    (tmp_path / "glamor" / native_build.STAMP).write_text(json.dumps({**stamp, "digest": "0" * 64}))
    stale = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert stale.returncode == 0 and "glamor._C was built from other C++/CUDA sources" in stale.stderr, stale.stderr
    assert "make build" in stale.stderr


def test_setup_makes_the_extension_depend_on_every_file_its_stamp_covers(tmp_path):
    """setuptools rebuilds an extension only when a file of its sources or `depends` is newer
    than it: a header the stamp covers but the extension does not depend on was edited, then
    `python setup.py build_ext --inplace` skipped the compile ("up-to-date") and stamped the
    stale extension as built from the edited header. setup.py runs here with setup() replaced."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import glamor
    from glamor import native_build

    root = Path(glamor.__file__).resolve().parent.parent
    if not (root / "setup.py").is_file() or not (root / "csrc").is_dir():
        pytest.skip("an installed package: no setup.py and csrc/ to read")
    out = tmp_path / "ext.json"
    code = (
        "import json, runpy, setuptools\n"
        "def fake_setup(ext_modules=(), cmdclass=None, **kw):\n"
        "    ext, = ext_modules\n"
        f"    json.dump({{'sources': list(ext.sources), 'depends': list(ext.depends)}}, open({str(out)!r}, 'w'))\n"
        "setuptools.setup = fake_setup\n"
        "runpy.run_path('setup.py', run_name='__main__')\n"
    )
    env = {**os.environ, "GLAMOR_NO_CUDA": "1"}
    env.pop("GLAMOR_NO_EXT", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ext = json.loads(out.read_text())
    covered = {p.relative_to(root).as_posix() for p in native_build.files(root, native_build.CPU_SOURCES)}
    assert any(p.endswith(".h") for p in covered)
    missing = covered - set(ext["sources"]) - set(ext["depends"])
    assert not missing, f"stamped but not a dependency of the build: {sorted(missing)}"


def test_a_source_edited_while_the_extension_builds_is_not_stamped_as_built(tmp_path):
    """The stamp is the digest of the sources as the build read them: one taken after the build
    (minutes for CUDA) took in a file edited meanwhile, after it was compiled, and the stale
    extension was never named. setup.py's build_ext runs in a copy of the checkout with torch's
    build replaced by an edit of a header."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import glamor
    from glamor import native_build

    root = Path(glamor.__file__).resolve().parent.parent
    if not (root / "setup.py").is_file() or not (root / "csrc").is_dir():
        pytest.skip("an installed package: no setup.py and csrc/ to read")
    for name in ("setup.py", "pyproject.toml"):
        shutil.copy(root / name, tmp_path / name)
    shutil.copytree(root / "csrc", tmp_path / "csrc")
    (tmp_path / "glamor").mkdir()
    (tmp_path / "glamor" / "__init__.py").write_text("")
    shutil.copy(root / "glamor" / "native_build.py", tmp_path / "glamor" / "native_build.py")
    code = (
        "import runpy, sys\n"
        "from torch.utils import cpp_extension\n"
        "def compile_then_edit(self):\n"
        "    with open('csrc/checks.h', 'a') as f:\n"
        "        f.write('// edited during the build\\n')\n"
        "cpp_extension.BuildExtension.run = compile_then_edit\n"
        "sys.argv = ['setup.py', '-q', 'build_ext', '--inplace']\n"
        "runpy.run_path('setup.py', run_name='__main__')\n"
    )
    env = {**os.environ, "GLAMOR_NO_CUDA": "1"}
    env.pop("GLAMOR_NO_EXT", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "edited during the build" in (tmp_path / "csrc" / "checks.h").read_text()
    assert (tmp_path / "glamor" / native_build.STAMP).is_file()
    assert native_build.stale_reason(tmp_path / "glamor") is not None, "the edit made after the compile was stamped"
