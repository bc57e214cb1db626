"""`tinybert gradcheck`: audit every op's gradient against finite differences."""
from __future__ import annotations

import json

import click

import backends
from autograd.audit import audit_cases, run_case
from cli.options import SEED, json_option
from cli.progress import progress


@click.command("gradcheck",
               epilog="Example: tinybert --backend numba gradcheck --json > audit.json")
@click.option("--seed", default=0, show_default=True, type=SEED,
              help="Seed of the random test inputs.")
@click.option("--only", default=None, help="Audit only ops whose name contains this text.")
@json_option("the results")
def gradcheck(seed: int, only: str | None, as_json: bool) -> None:
    """Gradient-check every differentiable op in float64.

    Each op runs on small random inputs that cover broadcasting, multi-axis reductions, masks
    and ignored targets, on the current backend; backward's gradients are compared with central
    finite differences. Exits with status 1 if any op fails.
    """
    device = backends.default_backend_name()
    cases = [c for c in audit_cases(seed, device) if only is None or only in c[0]]
    if not cases:
        raise click.ClickException(f"no op name contains {only!r}")
    results = []
    with progress(len(cases), f"gradcheck on {device}", unit="ops", describe=str) as bar:
        for case in cases:
            results.append(run_case(*case))
            bar.update(1, case[0])
    failed = [r for r in results if not r.passed]
    if as_json:
        click.echo(json.dumps({"backend": device, "passed": len(results) - len(failed),
                               "failed": len(failed),
                               "results": [vars(r) for r in results]}, indent=2))
    else:
        width = max(len(r.op) for r in results)
        for r in results:
            status = "ok  " if r.passed else "FAIL"
            click.echo(f"{status} {r.op:<{width}}  {r.shapes:<24} {r.seconds * 1e3:7.1f} ms")
            if not r.passed:
                click.echo(f"     {r.message}")
        click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise SystemExit(1)
