#!/usr/bin/env python3
"""Install DragEdit: the daemon's virtual environment and the Krita / GIMP 3 plug-ins.

    python3 install.py                     # .venv + plug-ins for the editors found on this machine
    python3 install.py --dev --torch torch==2.13.0
    python3 install.py --krita-dir DIR --krita-python 3.11 --gimp-dir DIR --gimp-python 3.13
    python3 install.py --uninstall [--all]

Standard library only (Python >= 3.10). Running it again changes nothing that is already done.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_STAMP = VENV / "dragedit-install.json"
VENDOR = "_vendor"
INSTALL_INFO = "dragedit_install.json"
# What each plug-in gets in its private _vendor folder, as wheels for the editor's Python.
VENDORED_WHEELS = ("pyzmq>=25", "msgpack>=1.0")
VENDORED_SOURCE = ROOT / "protocol" / "dragedit_protocol"
IGNORED_NAMES = ("__pycache__", "*.pyc", VENDOR)


class InstallError(Exception):
    """A problem the user can fix; ``hint`` says how."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Plugin:
    """One editor's plug-in: a folder (vendored deps go into it) plus loose files beside it."""

    editor: str
    folder: str
    extra_files: tuple[str, ...]
    source: Path
    executable: str = ""  # file inside the folder that must be executable (GIMP)

    def check_source(self) -> None:
        for rel in (self.folder, *self.extra_files):
            if not (self.source / rel).exists():
                raise InstallError(
                    f"the {self.editor} plug-in's source {self.source.name}/{rel} is missing from this checkout",
                    "update or re-clone the DragEdit repository, then run install.py again",
                )


KRITA = Plugin("Krita", "dragedit_krita", ("dragedit_krita.desktop",), ROOT / "krita_plugin")
GIMP = Plugin("GIMP 3", "dragedit", (), ROOT / "gimp_plugin", executable="dragedit.py")


def say(message: str) -> None:
    print(message, flush=True)


def run(cmd: list[str], what: str, hint: str, shown: str = "") -> None:
    """Run a command with its output shown; raise InstallError when it fails."""
    say("  $ " + (shown or " ".join(cmd)))
    if subprocess.call(cmd) != 0:
        raise InstallError(f"{what} failed (see the output above)", hint)


# --------------------------------------------------------------------------- virtual environment


def venv_python() -> Path:
    return VENV / "bin" / "python"


def dragedit_executable() -> Path:
    return VENV / "bin" / "dragedit"


def file_digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_venv(torch_spec: str | None, dev: bool) -> None:
    """Create .venv and install protocol + backend (editable) unless the stamp says it is done."""
    if not venv_python().exists():
        say(f"venv: creating {VENV}")
        run([sys.executable, "-m", "venv", str(VENV)], "creating the virtual environment",
            "install Python's venv module (Debian/Ubuntu: apt-get install python3-venv) and run install.py again")
    stamp = read_json(VENV_STAMP)
    packages = file_digest(ROOT / "protocol" / "pyproject.toml", ROOT / "backend" / "pyproject.toml")
    done = (
        stamp.get("packages") == packages
        and (torch_spec is None or stamp.get("torch") == torch_spec)
        and (not dev or stamp.get("dev"))
        and dragedit_executable().exists()
    )
    if done:
        say(f"venv: already up to date ({VENV})")
        return
    pip = [str(venv_python()), "-m", "pip", "install"]
    hint = "check the network connection to the package index, then run install.py again"
    if torch_spec:
        say(f"venv: installing {torch_spec} first")
        run(pip + [torch_spec], f"installing {torch_spec}", hint)
    backend = str(ROOT / "backend") + ("[test]" if dev else "")
    say("venv: installing dragedit-protocol and dragedit (editable: this checkout is the install)")
    run(pip + ["-e", str(ROOT / "protocol"), "-e", backend], "installing the DragEdit packages", hint)
    write_json(VENV_STAMP, {
        "packages": packages,
        "torch": torch_spec or stamp.get("torch"),
        "dev": dev or bool(stamp.get("dev")),
    })
    say(f"venv: ready ({dragedit_executable()})")


# --------------------------------------------------------------------------- editor Python detection


def krita_python_version() -> str | None:
    """Python version Krita embeds, read from the libpython its Python plug-in links; None if unknown."""
    exe = shutil.which("krita")
    if not exe:
        return None
    prefix = Path(exe).resolve().parent.parent
    for lib in [*prefix.glob("lib*/kritaplugins/kritapykrita.so"), *prefix.glob("lib*/*/kritaplugins/kritapykrita.so")]:
        found = re.search(rb"libpython(3\.\d+)", lib.read_bytes())
        if found:
            return found.group(1).decode()
    return None


def gimp_python_version() -> str | None:
    """Python version GIMP 3 runs plug-ins with: its python interpreter entry, else python3 beside it."""
    exe = shutil.which("gimp-3.0") or shutil.which("gimp-console-3.0")
    if not exe:
        return None
    prefix = Path(exe).resolve().parent.parent
    for interp in [*prefix.glob("lib*/gimp/3.0/interpreters/*.interp"),
                   *prefix.glob("lib*/*/gimp/3.0/interpreters/*.interp")]:
        for line in interp.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if not line.startswith("#") and "python" in key and value.strip():
                return interpreter_version(Path(value.strip()))
    # No interpreter entry (Debian's GIMP 3): plug-ins start through `#!/usr/bin/env python3`.
    python = prefix / "bin" / "python3"
    return interpreter_version(python) if python.exists() else None


def interpreter_version(python: Path) -> str | None:
    found = re.search(r"python(3\.\d+)$", python.resolve().name)
    if found:
        return found.group(1)
    try:
        out = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return out.stdout.strip() or None


def check_python_version(version: str, option: str) -> str:
    if not re.fullmatch(r"3\.\d+", version):
        raise InstallError(f"{option} {version!r} is not a Python version", f"write it as X.Y, e.g. {option} 3.11")
    return version


# --------------------------------------------------------------------------- plug-in files


def tree_digest(folder: Path) -> str:
    """Digest of a folder's files (names and contents), ignoring caches and _vendor."""
    digest = hashlib.sha256()
    if not folder.is_dir():
        return ""
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part == VENDOR or part == "__pycache__" for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_file():
            digest.update(rel.as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def copy_plugin_files(plugin: Plugin, target_dir: Path) -> bool:
    """Make target_dir/<folder> and the extra files equal to the source, keeping _vendor; True if changed."""
    installed = target_dir / plugin.folder
    if installed.is_symlink():
        raise InstallError(f"{installed} is a symbolic link; install.py will not write through it",
                           f"remove the link (rm {installed}) and run install.py again")
    changed = False
    if tree_digest(plugin.source / plugin.folder) != tree_digest(installed):
        installed.mkdir(parents=True, exist_ok=True)
        for child in installed.iterdir():
            if child.name == VENDOR:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        shutil.copytree(plugin.source / plugin.folder, installed, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(*IGNORED_NAMES))
        if plugin.executable:  # GIMP re-reads a plug-in's registration only when this file's time changes
            (installed / plugin.executable).touch()
        changed = True
    if plugin.executable:
        script = installed / plugin.executable
        mode = script.stat().st_mode
        if mode & 0o111 != 0o111:
            script.chmod(mode | 0o755)
            changed = True
    for name in plugin.extra_files:
        source, target = plugin.source / name, target_dir / name
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)
            changed = True
    return changed


# --------------------------------------------------------------------------- vendoring


def wheel_platforms() -> list[str]:
    """pip --platform tags for binary wheels that load on this machine (Linux, glibc)."""
    if sys.platform != "linux":
        raise InstallError(f"vendoring pyzmq for the editors is only supported on Linux, not {sys.platform}",
                           "install pyzmq and msgpack into the editor's Python yourself, or use Linux")
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    found = re.fullmatch(r"glibc 2\.(\d+)", libc)
    if not found:
        raise InstallError(f"this system's C library ({libc or 'unknown'}) is not glibc",
                           "the editors' vendored pyzmq needs a glibc-based Linux (manylinux wheels)")
    arch = platform.machine()
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(int(found.group(1)), 4, -1)]
    return tags + [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]


def package_version(init_file: Path, name: str) -> str:
    """The string constant ``name`` assigned in a module, read without importing it."""
    for node in ast.parse(init_file.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise InstallError(f"{init_file} does not define {name}", "update or re-clone the DragEdit repository")


def install_info(python: str) -> dict:
    """The contents of <plugin>/_vendor/dragedit_install.json."""
    return {
        "dragedit": str(dragedit_executable()),
        "endpoint": package_version(VENDORED_SOURCE / "__init__.py", "DEFAULT_ENDPOINT"),
        "version": package_version(ROOT / "backend" / "dragedit" / "__init__.py", "__version__"),
        "python": python,
        "wheels": list(VENDORED_WHEELS),
        "protocol_digest": tree_digest(VENDORED_SOURCE),
    }


def vendor(plugin_dir: Path, python: str) -> bool:
    """Fill plugin_dir/_vendor with pyzmq + msgpack wheels for `python` and dragedit_protocol; True if changed."""
    vendor_dir = plugin_dir / VENDOR
    info = install_info(python)
    if read_json(vendor_dir / INSTALL_INFO) == info:
        return False
    staging = plugin_dir / (VENDOR + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [str(venv_python()), "-m", "pip", "install", "--quiet", "--target", str(staging),
           "--only-binary=:all:", "--no-deps", "--implementation", "cp", "--python-version", python]
    tags = wheel_platforms()
    for tag in tags:
        cmd += ["--platform", tag]
    run(cmd + list(VENDORED_WHEELS), f"downloading pyzmq and msgpack for Python {python}",
        f"check that binary wheels exist for Python {python} and that the package index is reachable",
        shown=f"pip install --target {staging} --only-binary=:all: --python-version {python} "
              f"--platform {tags[0]} (and older manylinux tags) {' '.join(VENDORED_WHEELS)}")
    shutil.copytree(VENDORED_SOURCE, staging / VENDORED_SOURCE.name, ignore=shutil.ignore_patterns(*IGNORED_NAMES))
    write_json(staging / INSTALL_INFO, info)
    shutil.rmtree(vendor_dir, ignore_errors=True)
    staging.rename(vendor_dir)
    return True


# --------------------------------------------------------------------------- kritarc


def kritarc_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "kritarc"


def set_krita_plugin_enabled(kritarc: Path, name: str, enabled: bool) -> bool:
    """Add or remove `enable_<name>=true` in kritarc's [python] section; True if the file changed."""
    old = kritarc.read_text() if kritarc.exists() else ""
    key = f"enable_{name}"
    lines, section = [], ""
    for line in old.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped
        elif section == "[python]" and stripped.partition("=")[0].strip() == key:
            continue
        lines.append(line)
    if enabled:
        if "[python]" not in (line.strip() for line in lines):
            lines += ["", "[python]"] if lines else ["[python]"]
        header = [line.strip() for line in lines].index("[python]")
        lines.insert(header + 1, f"{key}=true")
    new = "\n".join(lines) + "\n" if lines else ""
    if new == old:
        return False
    kritarc.parent.mkdir(parents=True, exist_ok=True)
    kritarc.write_text(new)
    return True


# --------------------------------------------------------------------------- install / uninstall


def read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def install_plugin(plugin: Plugin, target_dir: Path, python: str) -> None:
    target_dir.mkdir(parents=True, exist_ok=True)
    files_changed = copy_plugin_files(plugin, target_dir)
    vendor_changed = vendor(target_dir / plugin.folder, python)
    where = target_dir / plugin.folder
    if files_changed or vendor_changed:
        say(f"{plugin.editor}: installed the plug-in into {where} (pyzmq + msgpack for Python {python} in {VENDOR}/)")
    else:
        say(f"{plugin.editor}: plug-in already up to date in {where}")


def uninstall_plugin(plugin: Plugin, target_dir: Path) -> None:
    installed = target_dir / plugin.folder
    if not installed.exists():
        say(f"{plugin.editor}: no plug-in installed in {target_dir}")
        return
    if not (installed / VENDOR / INSTALL_INFO).exists():
        say(f"{plugin.editor}: left {installed} alone: it was not installed by install.py "
            f"(no {VENDOR}/{INSTALL_INFO}); remove it by hand if it is DragEdit's")
        return
    shutil.rmtree(installed)
    for name in plugin.extra_files:
        (target_dir / name).unlink(missing_ok=True)
    say(f"{plugin.editor}: removed {installed}")


def editor_python(option_value: str | None, detect, option: str, editor: str) -> str:
    if option_value:
        return check_python_version(option_value, option)
    version = detect()
    if version is None:
        raise InstallError(
            f"could not find which Python version {editor} runs plug-ins with",
            f"pass it with {option} X.Y (Krita 5.1/5.2 on Debian/Ubuntu: 3.11, Krita 5.2 AppImage: 3.10, "
            "Krita 6 and GIMP 3: the system's python3, e.g. 3.12 or 3.13)",
        )
    return version


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Install DragEdit: the daemon (.venv) and the Krita / GIMP 3 plug-ins.")
    parser.add_argument("--torch", metavar="SPEC", help="pip requirement for torch, installed first (e.g. torch==2.13.0)")
    parser.add_argument("--dev", action="store_true", help="also install the test tools (pytest, hypothesis)")
    parser.add_argument("--krita-dir", type=Path, metavar="DIR", help="Krita's pykrita folder (default: ~/.local/share/krita/pykrita when Krita is installed)")
    parser.add_argument("--kritarc", type=Path, metavar="FILE", help="Krita's settings file to enable the plug-in in (default: ~/.config/kritarc)")
    parser.add_argument("--krita-python", metavar="X.Y", help="Python version Krita embeds (default: detected)")
    parser.add_argument("--gimp-dir", type=Path, metavar="DIR", help="GIMP 3's plug-ins folder (default: ~/.config/GIMP/3.0/plug-ins when GIMP 3 is installed)")
    parser.add_argument("--gimp-python", metavar="X.Y", help="Python version GIMP 3 runs plug-ins with (default: detected)")
    parser.add_argument("--uninstall", action="store_true", help="remove the plug-ins and the kritarc entry (the .venv stays)")
    parser.add_argument("--all", action="store_true", help="with --uninstall: remove the .venv too")
    args = parser.parse_args(argv)
    if args.all and not args.uninstall:
        parser.error("--all only goes with --uninstall")
    return args


def default_krita_dir() -> Path:
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "krita" / "pykrita"


def default_gimp_dir() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "GIMP" / "3.0" / "plug-ins"


def uninstall(krita_dir: Path, kritarc: Path, gimp_dir: Path, remove_venv: bool) -> None:
    uninstall_plugin(KRITA, krita_dir)
    if set_krita_plugin_enabled(kritarc, KRITA.folder, False):
        say(f"Krita: removed enable_{KRITA.folder} from {kritarc}")
    uninstall_plugin(GIMP, gimp_dir)
    if remove_venv:
        shutil.rmtree(VENV, ignore_errors=True)
        say(f"venv: removed {VENV}")
    else:
        say(f"venv: kept {VENV} (remove it with: python3 install.py --uninstall --all)")


def install(args: argparse.Namespace, krita_dir: Path | None, kritarc: Path, gimp_dir: Path | None) -> None:
    # Settle both editors' Python versions first: a bad option fails before anything is installed.
    krita_python = editor_python(args.krita_python, krita_python_version, "--krita-python", "Krita") if krita_dir else ""
    gimp_python = editor_python(args.gimp_python, gimp_python_version, "--gimp-python", "GIMP 3") if gimp_dir else ""
    for plugin, target in ((KRITA, krita_dir), (GIMP, gimp_dir)):
        if target:
            plugin.check_source()
    ensure_venv(args.torch, args.dev)
    if krita_dir:
        install_plugin(KRITA, krita_dir, krita_python)
        if set_krita_plugin_enabled(kritarc, KRITA.folder, True):
            say(f"Krita: enabled the plug-in in {kritarc}")
    else:
        say("Krita: not found (no `krita` on PATH); skipped. Use --krita-dir to install anyway.")
    if gimp_dir:
        install_plugin(GIMP, gimp_dir, gimp_python)
    else:
        say("GIMP 3: not found (no `gimp-3.0` on PATH); skipped. Use --gimp-dir to install anyway.")
    say("\nNext:")
    say(f"  start the daemon:  {dragedit_executable().relative_to(ROOT)} serve   (the plug-ins also start it when needed)")
    if krita_dir:
        say("  Krita: restart Krita; see README.md, 'Use in Krita'")
    if gimp_dir:
        say("  GIMP: restart GIMP; see README.md, 'Use in GIMP'")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if sys.version_info < (3, 10):
        print(f"install.py: error: DragEdit needs Python 3.10 or newer, this is {platform.python_version()}\n"
              "install.py: hint: run it with a newer interpreter, e.g. python3.11 install.py", file=sys.stderr)
        return 1
    kritarc = args.kritarc or kritarc_path()
    krita_found = shutil.which("krita")
    gimp_found = shutil.which("gimp-3.0") or shutil.which("gimp-console-3.0")
    krita_dir = args.krita_dir or (default_krita_dir() if krita_found or args.uninstall else None)
    gimp_dir = args.gimp_dir or (default_gimp_dir() if gimp_found or args.uninstall else None)
    try:
        if args.uninstall:
            uninstall(krita_dir, kritarc, gimp_dir, args.all)
        else:
            install(args, krita_dir, kritarc, gimp_dir)
    except InstallError as err:
        print(f"install.py: error: {err}", file=sys.stderr)
        if err.hint:
            print(f"install.py: hint: {err.hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
