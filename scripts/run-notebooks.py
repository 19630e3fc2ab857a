#!/usr/bin/python3
"""Executes the project's notebooks headlessly with the repo's tslab kernel (CI).

Usage (Debian's Jupyter lives under /usr/bin/python3; call it explicitly):
    /usr/bin/python3 scripts/run-notebooks.py [--preset tiny] [--out DIR] [NOTEBOOK ...]

- The kernel spec is the one kept in the repo (jupyter/kernels/lens-ts): JUPYTER_PATH
  is set to <repo>/jupyter, so nothing needs registering and no other copy is used.
- LENS_PRESET is set to --preset (default tiny: every notebook honours it).
- A failing cell fails the run. tslab reports errors only on the stderr stream
  (no `error` output), so the failing cell's source and its stream outputs are
  printed here; nbclient's own message would be empty.
- Notebooks are not modified; --out DIR writes the executed copies there (for
  viewing, or `jupyter nbconvert --to html`).
Exit status: 0 when every notebook ran, 1 when one failed, 2 on bad arguments.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "lens-ts"
PRESETS = ("tiny", "quick", "paper")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="*", help="notebooks to run (default: notebooks/*.ipynb in name order)")
    ap.add_argument("--preset", default="tiny", choices=PRESETS, help="LENS_PRESET for the notebooks (default tiny, as CI)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds one cell may run (default 600)")
    ap.add_argument("--out", type=Path, help="folder to write the executed notebooks to")
    return ap.parse_args(argv)


def describe_outputs(cell):
    """The text a reader needs from a failed cell: its streams (tslab's errors) and any error output."""
    parts = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(f"[{out.get('name')}]\n{out.get('text', '').rstrip()}")
        elif kind == "error":
            parts.append(f"[error] {out.get('ename')}: {out.get('evalue')}\n" + "\n".join(out.get("traceback", [])))
    return "\n".join(parts) if parts else "(the cell wrote nothing: see the kernel process's stderr below)"


def shown(path):
    """A notebook's path as printed: relative to the repo when inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def run_one(path, args):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(str(path), as_version=4)
    state = {"index": None}

    def on_cell_start(cell, cell_index, **_):
        state["index"] = cell_index

    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=args.timeout,
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_start=on_cell_start,
    )
    t0 = time.monotonic()
    error = None
    # The kernel process's own stderr (tslab start-up failures, its noise on shutdown)
    # goes to a file, shown only when the notebook fails.
    with tempfile.TemporaryFile(mode="w+") as kernel_log:
        try:
            client.execute(stderr=kernel_log)
        except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError) as e:
            error = e
        kernel_log.seek(0)
        kernel_stderr = kernel_log.read()
    elapsed = time.monotonic() - t0
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(args.out / path.name))
    if error is None:
        print(f"ok    {shown(path)}  ({elapsed:.1f} s)", flush=True)
        return True
    i = state["index"]
    print(f"FAIL  {shown(path)}  ({elapsed:.1f} s): {type(error).__name__}", flush=True)
    if i is not None:
        cell = nb.cells[i]
        print(f"--- cell {i} (code cell {sum(1 for c in nb.cells[: i + 1] if c.cell_type == 'code')}) source:")
        print(cell.source)
        print("--- its output:")
        print(describe_outputs(cell))
    if not isinstance(error, CellExecutionError) or i is None:
        print(f"--- {error}")
    if kernel_stderr.strip():
        print("--- kernel process stderr (last 40 lines):")
        print("\n".join(kernel_stderr.rstrip().splitlines()[-40:]))
    print("---", flush=True)
    return False


def main(argv):
    args = parse_args(argv)
    try:
        import nbclient  # noqa: F401
    except ImportError:
        print("run-notebooks: nbclient is not installed for this Python: apt-get install python3-nbclient, "
              "and run with /usr/bin/python3", file=sys.stderr)
        return 2
    paths = [Path(p).resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"run-notebooks: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    if not (ROOT / "node_modules" / "tslab").is_dir():
        print(f"run-notebooks: {ROOT / 'node_modules' / 'tslab'} is missing: run `npm install` first", file=sys.stderr)
        return 2
    # The repo's kernel spec first, whatever else is registered; the preset for every notebook.
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(ROOT / "jupyter"), os.environ.get("JUPYTER_PATH")]))
    os.environ["LENS_PRESET"] = args.preset
    print(f"running {len(paths)} notebook(s) with kernel {KERNEL}, LENS_PRESET={args.preset}", flush=True)
    failed = [p for p in paths if not run_one(p, args)]
    if failed:
        print(f"{len(failed)} of {len(paths)} notebook(s) failed: {', '.join(p.name for p in failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
