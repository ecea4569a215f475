"""Generate docs/functions.md: every nnabla function, its ONNX export, shape rule and parity cases.

Sources:
  * the function registry (``nncbridge.functions.registry``): signatures, lowerings with their
    minimum opset, shape rules, and per-module ``DOC_NOTES`` dicts (function name -> note);
  * ``docs/parity_cases.json``: function name -> parity tests that converted a network containing
    that function and passed. It is refreshed from a parity run (nnabla environment)::

        python tools/gen_function_docs.py --run-parity /work/venvs/nnabla/bin/python
        python tools/gen_function_docs.py --report report.json   # from an earlier run with
                                                                  # NNCBRIDGE_PARITY_REPORT=report.json
    (see tests/parity/conftest.py for how a run records its report);
  * ``tools/nnabla_converter_export_support.json``: nnabla-converter's own export table.

Without options the script rewrites docs/functions.md from the committed JSON files;
``--check`` only reports whether docs/functions.md is up to date (exit status 1 if not).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "functions.md"
CASES = ROOT / "docs" / "parity_cases.json"
CONVERTER = ROOT / "tools" / "nnabla_converter_export_support.json"
MAX_CASES_SHOWN = 6


def case_label(nodeid: str) -> str:
    """``tests/parity/test_parity_x.py::test_lstm[2-bidir]`` -> ``lstm[2-bidir]``."""
    name = nodeid.rsplit("::", 1)[-1]
    return name[5:] if name.startswith("test_") else name


def cases_from_report(report: dict) -> dict[str, list[str]]:
    """Function name -> labels of the passed tests that converted it; tests that name the function
    (its nnabla name or snake_case name in the label) first, then the networks that merely contain it."""
    from nncbridge.functions.registry import function_spec

    cases: dict[str, set[str]] = defaultdict(set)
    for nodeid, test in report.get("tests", {}).items():
        if test.get("outcome") != "passed":
            continue
        for function in test.get("functions", []):
            cases[function].add(case_label(nodeid))

    def order(name: str):  # type: ignore[no-untyped-def]
        spec = function_spec(name)
        keys = {name.lower(), spec.snake_name if spec else name.lower()}
        return lambda label: (not any(k in label.lower() for k in keys), label)

    return {name: sorted(labels, key=order(name)) for name, labels in sorted(cases.items())}


def run_parity(python: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "parity.json")
        env = dict(os.environ, NNCBRIDGE_PARITY_REPORT=path)
        cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/parity", *extra]
        result = subprocess.run(cmd, cwd=ROOT, env=env)
        if not os.path.exists(path):
            sys.exit(f"the parity run wrote no report (pytest exit status {result.returncode})")
        with open(path, encoding="utf-8") as f:
            return json.load(f)


def _notes() -> tuple[dict[str, str], dict[str, str]]:
    """(notes, refusals): ``DOC_NOTES`` of every ops module, then the first docstring line of lowerings
    without one; ``UNSUPPORTED`` (function -> reason) marks lowerings registered only to refuse."""
    import pkgutil

    from nncbridge.functions import ops
    from nncbridge.functions.registry import registered_lowerings

    notes: dict[str, str] = {}
    refusals: dict[str, str] = {}
    for module in sorted(pkgutil.iter_modules(ops.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{ops.__name__}.{module.name}")
        notes.update(getattr(mod, "DOC_NOTES", {}) or {})
        refusals.update(getattr(mod, "UNSUPPORTED", {}) or {})
    for name, entry in registered_lowerings().items():
        doc = (entry.convert.__doc__ or "").strip()
        if name not in notes and doc:
            notes[name] = doc.splitlines()[0]
    for name, reason in refusals.items():
        notes.setdefault(name, reason[0].upper() + reason[1:] + ".")
    return notes, refusals


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(parity_cases: dict[str, list[str]], converter: dict | None = None) -> str:
    from nncbridge.functions.registry import all_function_specs, registered_lowerings, shape_rule_for

    if converter is None:
        converter = json.loads(CONVERTER.read_text(encoding="utf-8"))
    conv = converter["functions"]
    notes, refusals = _notes()
    lowerings = {n: e for n, e in registered_lowerings().items() if n not in refusals}
    specs = all_function_specs()
    categories: list[str] = []
    for spec in specs:
        if spec.category not in categories:
            categories.append(spec.category)

    lines = [
        "# nnabla functions in nncbridge",
        "",
        "Generated by `tools/gen_function_docs.py` from the function registry, the parity suite's results",
        "(`docs/parity_cases.json`) and nnabla-converter's published export table",
        "(`tools/nnabla_converter_export_support.json`). Do not edit by hand.",
        "",
        "- **ONNX export**: whether `nncbridge convert` can lower the function, and the oldest opset it needs",
        "  (every opset from there to the newest is supported).",
        "- **Shape rule**: nncbridge infers the output shapes itself (validation, `nncbridge check`).",
        "- **Parity cases**: passed tests of `tests/parity` that converted a network containing the function",
        "  and compared onnxruntime's result with nnabla's forward pass (or, where nnabla cannot run the",
        "  function on CPU or it is random, with first principles); tests naming the function come first.",
        "- **nnabla-converter**: exported by nnabla-converter 1.39 according to its Function-Level Support Status.",
        "",
        "## Summary per category",
        "",
        "| Category | Functions | nnabla-converter exports | nncbridge exports | with parity tests | shape rules |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    totals = [0, 0, 0, 0, 0]
    for category in categories:
        names = [s.name for s in specs if s.category == category]
        row = [
            len(names),
            sum(1 for n in names if conv.get(n, {}).get("exported")),
            sum(1 for n in names if n in lowerings),
            sum(1 for n in names if n in lowerings and parity_cases.get(n)),
            sum(1 for n in names if shape_rule_for(n) is not None),
        ]
        totals = [a + b for a, b in zip(totals, row)]
        mark = "" if row[2] >= row[1] else " (below nnabla-converter)"
        lines.append(f"| {category} | {row[0]} | {row[1]} | {row[2]}{mark} | {row[3]} | {row[4]} |")
    lines.append(f"| **Total** | {totals[0]} | {totals[1]} | {totals[2]} | {totals[3]} | {totals[4]} |")

    missing = [s.name for s in specs if conv.get(s.name, {}).get("exported") and s.name not in lowerings]
    lines += ["", "nnabla-converter exports these, nncbridge does not (yet): "
              + (", ".join(missing) if missing else "none") + "."]

    for category in categories:
        lines += ["", f"## {category}", "",
                  "| Function | Category | ONNX export | Shape rule | Parity cases | nnabla-converter | Note |",
                  "|---|---|---|---|---|---|---|"]
        for spec in (s for s in specs if s.category == category):
            entry = lowerings.get(spec.name)
            export = f"yes (opset ≥ {entry.min_opset})" if entry else "no"
            shape = "yes" if shape_rule_for(spec.name) is not None else "no"
            cases = parity_cases.get(spec.name, [])
            shown = ", ".join(f"`{c}`" for c in cases[:MAX_CASES_SHOWN])
            if len(cases) > MAX_CASES_SHOWN:
                shown += f" … (+{len(cases) - MAX_CASES_SHOWN} more)"
            tested = f"{len(cases)}: {shown}" if cases else "—"
            c = conv.get(spec.name)
            converter_mark = ("yes" if c["exported"] else "no") if c else "not listed"
            lines.append(f"| {spec.name} | {category} | {export} | {shape} | {_cell(tested)} | {converter_mark} "
                         f"| {_cell(notes.get(spec.name, ''))} |")
    return "\n".join(lines) + "\n"


def load_cases() -> dict[str, list[str]]:
    if not CASES.exists():
        return {}
    return json.loads(CASES.read_text(encoding="utf-8"))["cases"]


def save_cases(cases: dict[str, list[str]]) -> None:
    CASES.parent.mkdir(parents=True, exist_ok=True)
    payload = {"_source": "tools/gen_function_docs.py from a parity run (tests/parity, nnabla environment); "
                          "function -> passed parity tests that converted it",
               "cases": cases}
    CASES.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", help="parity report JSON written by a run with NNCBRIDGE_PARITY_REPORT")
    parser.add_argument("--run-parity", metavar="PYTHON", help="run tests/parity with this (nnabla) python first")
    parser.add_argument("--check", action="store_true", help="only check that docs/functions.md is up to date")
    args, extra = parser.parse_known_args(argv)
    if args.run_parity:
        save_cases(cases_from_report(run_parity(args.run_parity, extra)))
    elif args.report:
        with open(args.report, encoding="utf-8") as f:
            save_cases(cases_from_report(json.load(f)))
    text = render(load_cases())
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC} is out of date: run python tools/gen_function_docs.py", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
