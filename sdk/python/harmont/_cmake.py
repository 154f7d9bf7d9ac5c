"""The CMake (C/C++) preset: ``hm.cmake()`` (a toolchain), ``hm.cmake(path=...)`` (a
project), bare actions (``hm.cmake.test()``).

Chain: apt base (cmake, build-essential, pkg-config, ninja-build with the
ninja generator, ccache unless ``ccache=False``, clang-format, clang-tidy,
and the compiler's packages) → ``:cmake: verify`` (the tools' versions,
cached forever) → [``:cmake: vcpkg`` with ``deps="vcpkg"``] →
``:cmake: build`` (configure and build, cached on ``CMakeLists.txt``, or
``vcpkg.json``) → the actions. ``fmt`` forks off the verify step, the rest
off the build.
"""

from __future__ import annotations

from ._record import Record, set_field
from ._toolchain import advance_install, make_install_chain, split_action_kwargs
from ._validation import line_end, require_str
from .cache import CacheForever, CacheOnChange

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self, overload

    from ._step import Step
    from .cache import CachePolicy
else:

    def overload(fn: object) -> object:
        return fn


def _compiler_parts(compiler: str) -> tuple[str, str] | None:
    """``(family, suffix)`` of ``gcc``, ``gcc-14``, ``clang``, ``clang-18``; ``None`` otherwise."""
    text = line_end(compiler)
    for family in ("gcc", "clang"):
        if text.startswith(family):
            suffix = text[len(family) :]
            if not suffix or (suffix[0] == "-" and suffix[1:].isdecimal()):
                return family, suffix
    return None


def _invalid_compiler(compiler: str) -> ValueError:
    return ValueError(
        f"hm.cmake: invalid compiler {compiler!r}\n"
        '  → use "gcc", "gcc-14", "clang", or "clang-18"'
    )


def _apt_packages(compiler: str | None, *, ccache: bool, generator: str) -> tuple[str, ...]:
    pkgs = ["cmake", "build-essential", "pkg-config"]
    if generator == "ninja":
        pkgs.append("ninja-build")
    if ccache:
        pkgs.append("ccache")
    pkgs += ["clang-format", "clang-tidy"]
    if compiler is not None:
        parts = _compiler_parts(compiler)
        if parts is None:
            raise _invalid_compiler(compiler)
        family, suffix = parts
        if family == "gcc":
            pkgs += [f"gcc{suffix}", f"g++{suffix}"]
        else:
            pkgs += [f"clang{suffix}", f"lld{suffix}"]
    return tuple(pkgs)


def _verify_cmd(compiler: str | None, *, ccache: bool, generator: str) -> str:
    parts = ["cmake --version"]
    if generator == "ninja":
        parts.append("ninja --version")
    if ccache:
        parts.append("ccache --version")
    found = _compiler_parts(compiler) if compiler is not None else None
    if found is not None:
        family, suffix = found
        parts.append(f"{'gcc' if family == 'gcc' else 'clang'}{suffix} --version")
    return " && ".join(parts)


def _configure_cmd(
    *,
    path: str,
    preset: str | None,
    defines: dict[str, str] | None,
    compiler: str | None,
    ccache: bool,
    generator: str,
    build_dir: str = "build",
) -> str:
    if preset is not None:
        return f"cd {path} && cmake --preset {preset}"
    parts = [
        f"cd {path} && cmake -S . -B {build_dir}",
        f"-G {'Ninja' if generator == 'ninja' else 'Unix Makefiles'}",
        "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",
    ]
    if ccache:
        parts += ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
    found = _compiler_parts(compiler) if compiler is not None else None
    if found is not None:
        family, suffix = found
        if family == "gcc":
            parts += [f"-DCMAKE_C_COMPILER=gcc{suffix}", f"-DCMAKE_CXX_COMPILER=g++{suffix}"]
        else:
            parts += [f"-DCMAKE_C_COMPILER=clang{suffix}", f"-DCMAKE_CXX_COMPILER=clang++{suffix}"]
    if defines:
        parts += [f"-D{k}={v}" for k, v in defines.items()]
    return " ".join(parts)


def _build_cmd(path: str, target: str | None, build_dir: str = "build", *, relative: bool = False) -> str:
    """``cmake --build``; ``relative`` for a shell already in ``path``."""
    cmd = f"cmake --build {build_dir if relative else f'{path}/{build_dir}'} --parallel $(nproc)"
    if target is not None:
        cmd += f" --target {target}"
    return cmd


def _label(kw: dict[str, Any], default: str) -> None:
    if kw.get("label") is None:
        kw["label"] = default


class CMakeProject(Record):
    """A configured and built CMake project: what ``hm.cmake(path=...)`` and
    ``CMakeToolchain.project()`` return. ``built`` is the ``:cmake: build`` step."""

    __slots__ = ("toolchain", "built", "path", "_build_cmd")
    _fields = __slots__
    toolchain: CMakeToolchain
    built: Step
    path: str
    _build_cmd: str

    def __init__(self, toolchain: CMakeToolchain, built: Step, path: str, _build_cmd: str) -> None:
        set_field(self, "toolchain", toolchain)
        set_field(self, "built", built)
        set_field(self, "path", path)
        set_field(self, "_build_cmd", _build_cmd)

    def build(self) -> Step:
        """The configure-and-build step itself."""
        return self.built

    def test(self, *, parallel: bool = True, **kw: Any) -> Step:
        """An incremental build, then ``ctest`` (in parallel unless ``parallel=False``)."""
        par = " --parallel $(nproc)" if parallel else ""
        cmd = f"{self._build_cmd} && ctest --test-dir {self.path}/build --output-on-failure{par}"
        _label(kw, ":cmake: test")
        return self.built.sh(cmd, **kw)

    def install(self, *, prefix: str | None = None, **kw: Any) -> Step:
        """``cmake --install`` (into ``prefix`` if given)."""
        cmd = f"cmake --install {self.path}/build{f' --prefix {prefix}' if prefix else ''}"
        _label(kw, ":cmake: install")
        return self.built.sh(cmd, **kw)

    def fmt(self, *, fix: bool = False, **kw: Any) -> Step:
        """clang-format over the C and C++ sources outside ``build/``: a check, or in place
        with ``fix=True``. Forks off the toolchain's verify step: it needs no build."""
        mode = "-i" if fix else "--dry-run --Werror"
        cmd = (
            f"cd {self.path} && find . -not -path './build/*'"
            r" \( -name '*.c' -o -name '*.h'"
            r" -o -name '*.cpp' -o -name '*.hpp' -o -name '*.cc' -o -name '*.cxx' \) | "
            f"xargs clang-format {mode}"
        )
        _label(kw, ":cmake: fmt")
        return self.toolchain.installed.sh(cmd, **kw)

    def lint(self, **kw: Any) -> Step:
        """``run-clang-tidy`` on the compile commands."""
        _label(kw, ":cmake: lint")
        return self.built.sh(f"cd {self.path} && run-clang-tidy -p build", **kw)

    def package(self, *, generator: str | None = None, **kw: Any) -> Step:
        """``cpack`` (with generator ``-G`` if given)."""
        _label(kw, ":cmake: package")
        return self.built.sh(f"cd {self.path}/build && cpack{f' -G {generator}' if generator else ''}", **kw)


class CMakeToolchain(Record):
    """CMake and a compiler installed: what ``hm.cmake()`` without ``path`` returns.
    Its projects share ``installed`` (the verify step)."""

    __slots__ = ("installed", "compiler", "ccache", "generator")
    _fields = __slots__
    installed: Step
    compiler: str | None
    ccache: bool
    generator: str

    def __init__(self, installed: Step, compiler: str | None, ccache: bool, generator: str) -> None:
        set_field(self, "installed", installed)
        set_field(self, "compiler", compiler)
        set_field(self, "ccache", ccache)
        set_field(self, "generator", generator)

    def setup(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        label: str | None = None,
        cache: CachePolicy | None = None,
        env: dict[str, str] | None = None,
    ) -> Self:
        """A copy whose projects configure and build after ``cmd``."""
        return advance_install(self, cmd, cwd=cwd, label=label, cache=cache, env=env)

    def project(
        self,
        *,
        path: str = ".",
        preset: str | None = None,
        defines: dict[str, str] | None = None,
        deps: str | None = None,
        target: str | None = None,
        cache: CachePolicy | None = None,
    ) -> CMakeProject:
        """The project at ``path``: configured with ``preset``, or with ``-D`` ``defines``;
        ``deps="vcpkg"`` installs the manifest's packages first; ``target`` builds one
        target; ``cache`` replaces the build step's policy."""
        if deps is not None and deps != "vcpkg":
            raise ValueError(f'hm.cmake: invalid deps {deps!r}\n  → use "vcpkg" or None')
        configure = _configure_cmd(
            path=path,
            preset=preset,
            defines=defines,
            compiler=self.compiler,
            ccache=self.ccache,
            generator=self.generator,
        )
        warmup_cmd = f"{configure} && {_build_cmd(path, target=target, relative=True)}"
        if cache is not None:
            warmup_cache = cache
        elif deps == "vcpkg":
            warmup_cache = CacheOnChange(paths=("vcpkg.json",))
        else:
            lists = f"{path}/CMakeLists.txt" if path != "." else "CMakeLists.txt"
            warmup_cache = CacheOnChange(paths=(lists,))
        parent = self.installed
        if deps == "vcpkg":
            parent = parent.sh(
                "git clone https://github.com/microsoft/vcpkg.git /opt/vcpkg && "
                "/opt/vcpkg/bootstrap-vcpkg.sh && "
                f"cd {path} && /opt/vcpkg/vcpkg install",
                label=":cmake: vcpkg",
                cache=CacheOnChange(paths=("vcpkg.json",)),
            )
        built = parent.sh(warmup_cmd, label=":cmake: build", cache=warmup_cache)
        return CMakeProject(
            toolchain=self, built=built, path=path, _build_cmd=_build_cmd(path, target=target)
        )


def _make_toolchain(
    *,
    compiler: str | None = None,
    ccache: bool = True,
    generator: str = "ninja",
    image: str | None = None,
    base: Step | None = None,
) -> CMakeToolchain:
    if generator not in ("ninja", "make"):
        raise ValueError(f'hm.cmake: invalid generator {generator!r}\n  → use "ninja" or "make"')
    if compiler is not None and _compiler_parts(require_str(compiler, "hm.cmake: compiler")) is None:
        raise _invalid_compiler(compiler)
    installed = make_install_chain(
        apt_packages=_apt_packages(compiler, ccache=ccache, generator=generator),
        install_cmd=_verify_cmd(compiler, ccache=ccache, generator=generator),
        install_cache=CacheForever(env_keys=()),
        lang_tag="cmake",
        install_tag="verify",
        image=image,
        base=base,
    )
    return CMakeToolchain(installed=installed, compiler=compiler, ccache=ccache, generator=generator)


class CMakeEntry:
    """``hm.cmake``: a :class:`CMakeToolchain`, a :class:`CMakeProject` when given
    ``path``, or a bare action (``hm.cmake.test(defines={...})``; ``cache``, ``env``,
    ``label`` and ``key`` go to the step, the rest to ``hm.cmake()``, ``path`` defaulting
    to ``.``; the bare ``build()`` is the build step itself)."""

    @overload
    def __call__(
        self,
        *,
        compiler: str | None = ...,
        ccache: bool = ...,
        generator: str = ...,
        image: str | None = ...,
        base: Step | None = ...,
    ) -> CMakeToolchain: ...

    @overload
    def __call__(
        self,
        *,
        path: str,
        compiler: str | None = ...,
        ccache: bool = ...,
        generator: str = ...,
        preset: str | None = ...,
        defines: dict[str, str] | None = ...,
        deps: str | None = ...,
        target: str | None = ...,
        cache: CachePolicy | None = ...,
        image: str | None = ...,
        base: Step | None = ...,
    ) -> CMakeProject: ...

    def __call__(
        self,
        *,
        path: str | None = None,
        compiler: str | None = None,
        ccache: bool = True,
        generator: str = "ninja",
        preset: str | None = None,
        defines: dict[str, str] | None = None,
        deps: str | None = None,
        target: str | None = None,
        cache: CachePolicy | None = None,
        image: str | None = None,
        base: Step | None = None,
    ) -> CMakeToolchain | CMakeProject:
        """CMake with ``compiler`` (``"gcc-14"``, ``"clang-18"``; default the system's),
        ccache and ``generator`` (``"ninja"`` or ``"make"``); with ``path``, the project
        there (see :meth:`CMakeToolchain.project`). ``image`` for the apt step, or
        ``base`` to start from an existing step."""
        tc = _make_toolchain(compiler=compiler, ccache=ccache, generator=generator, image=image, base=base)
        if path is None:
            return tc
        return tc.project(path=path, preset=preset, defines=defines, deps=deps, target=target, cache=cache)

    def _project(self, **kw: Any) -> CMakeProject:
        project = self(path=kw.pop("path", "."), **kw)
        assert isinstance(project, CMakeProject)
        return project

    def build(self, **kw: Any) -> Step:
        # As in Harmont, the build step is returned as it is: the action keywords go nowhere.
        split_action_kwargs(kw)
        return self._project(**kw).built

    def test(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self._project(**kw).test(**action)

    def fmt(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self._project(**kw).fmt(**action)

    def lint(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self._project(**kw).lint(**action)

    def install(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self._project(**kw).install(**action)

    def package(self, **kw: Any) -> Step:
        action = split_action_kwargs(kw)
        return self._project(**kw).package(**action)


cmake: CMakeEntry = CMakeEntry()
