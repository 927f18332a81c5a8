"""Run by .ci/run from outside the repository with the wheel's venv: every module of the source
tree ``jaxdiv/`` is in the installed wheel, imports, and ``jaxdiv.__version__`` is the wheel's."""

import importlib
import pathlib
import sys
from importlib.metadata import version

import jaxdiv

source = pathlib.Path(sys.argv[1]) / "jaxdiv"
installed = pathlib.Path(jaxdiv.__file__).parent
assert not installed.is_relative_to(source.parent), f"imported the source tree: {installed}"
wanted = sorted(p.relative_to(source.parent) for p in source.rglob("*.py"))
missing = [str(p) for p in wanted if not (installed.parent / p).is_file()]
assert not missing, f"missing from the wheel: {missing}"
for p in wanted:
    importlib.import_module(".".join(p.with_suffix("").parts).removesuffix(".__init__"))
assert jaxdiv.__version__ == version("jaxdiv") != "0+unknown", jaxdiv.__version__
print(f"wheel OK: jaxdiv {jaxdiv.__version__}, {len(wanted)} modules, from {installed}")
