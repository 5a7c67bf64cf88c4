"""``carkin fit`` and ``carkin simulate-cohort``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ._app import app
from ._common import console, user_errors


@app.command("fit")
def fit_command(
    ck: Path = typer.Argument(..., help="CK records (NONMEM-style CSV)."),
    covariates: Optional[Path] = typer.Option(None, "--covariates", help="Per-patient covariate table (CSV, ID + columns)."),
    model: Path = typer.Option(Path("models/multiphasic.toml"), "--model", help="Population model spec (TOML)."),
    out: Path = typer.Option(..., "--out", help="Output directory (written atomically)."),
    method: str = typer.Option("nuts", "--method", help="nuts (default) | laplace | svi | map"),
    chains: int = typer.Option(4, "--chains"),
    warmup: int = typer.Option(500, "--warmup"),
    samples: int = typer.Option(1000, "--samples"),
    seed: int = typer.Option(0, "--seed", help="Seed of the run's jax.random key (recorded in the manifest)."),
    target_accept: float = typer.Option(0.8, "--target-accept"),
    max_tree_depth: int = typer.Option(8, "--max-tree-depth"),
    steps: int = typer.Option(5000, "--steps", help="Optimisation steps (laplace, svi, map)."),
    allow_extra_ids: bool = typer.Option(False, "--allow-extra-ids", help="Accept covariate rows without CK records (e.g. patients never infused)."),
    allow_unconverged: bool = typer.Option(False, "--allow-unconverged", help="Exit 0 even if the fit fails its convergence gates."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    whitening: bool = typer.Option(
        True, "--whitening/--no-whitening",
        help="NUTS: two-stage warm-up, then whitened individual parameters (same posterior, faster mixing).",
    ),
) -> None:
    """Fit a hierarchical population model with NUTS (or a fast approximation) and write its artefacts."""
    from ..data import data_hash, load_dataset
    from ..inference import SamplerSettings, fit, save_fit
    from ..plots import plot_individual_fits
    from ..population import load_spec

    from .._atomic import check_replaceable
    from ..inference import FIT_FILES

    with user_errors():
        check_replaceable(out, FIT_FILES)  # refuse before sampling, not after
        spec = load_spec(model)
        columns = sorted(set(spec.data_columns) - {"DOSE"})  # covariates and model inputs
        dataset = load_dataset(
            ck, covariates, covariate_columns=columns if covariates is not None else (columns or None),
            allow_extra_ids=allow_extra_ids,
        )
        settings = SamplerSettings(
            chains=chains, warmup=warmup, samples=samples, target_accept=target_accept,
            max_tree_depth=max_tree_depth, steps=steps, progress_bar=progress, whitening=whitening,
        )
        files = [p for p in (ck, covariates) if p is not None]
        result = fit(
            dataset, spec, seed=seed, method=method, settings=settings,
            data_files={"ck": str(ck), **({"covariates": str(covariates)} if covariates else {})},
            data_hash=data_hash(files),
        )
    figure = plot_individual_fits(result, dataset)
    inputs = {"ck": str(ck), **({"covariates": str(covariates)} if covariates else {})}
    save_fit(result, out, figures={"individual_fits.png": figure}, inputs=inputs)
    console.print(result.table.to_string(index=False, float_format=lambda v: f"{v:.4g}"), highlight=False)
    diag = result.manifest["diagnostics"]
    if result.converged:
        console.print(
            f"[green]gates passed[/green]: max R-hat {diag['max_r_hat']:.3f}, min bulk ESS {diag['min_ess_bulk']:.0f}, "
            f"min tail ESS {diag['min_ess_tail']:.0f}, divergences {diag['divergences']}"
        )
    else:
        console.print("[bold red]FIT FAILED ITS CONVERGENCE GATES[/bold red]:\n  " + "\n  ".join(diag["failures"]), soft_wrap=True)
    console.print(f"wrote {out}/ (posterior.nc, parameters.csv, manifest.json, individual_fits.png)")
    if not result.converged and not allow_unconverged:
        raise typer.Exit(code=1)


@app.command("simulate-cohort")
def simulate_cohort_command(
    model: Path = typer.Option(Path("models/multiphasic.toml"), "--model", help="Population model spec with a [simulation] table."),
    n: int = typer.Option(150, "--n", help="Number of virtual patients."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(..., "--out", help="Output directory: ck.csv, covariates.csv, truth.json."),
    lloq: Optional[float] = typer.Option(None, "--lloq", help="Assay LLOQ (copies/ug); default from the spec."),
) -> None:
    """Simulate a virtual CK cohort from a population model (files are marked SIMULATED)."""
    import jax

    from ..data import write_ck, write_covariates
    from ..inference import atomic_directory
    from ..population import load_spec
    from ..simulate import simulate_cohort

    with user_errors():
        spec = load_spec(model)
        cohort = simulate_cohort(spec, key=jax.random.PRNGKey(seed), n=n, lloq=lloq)
    comment = f"SIMULATED data: virtual CK cohort generated by carkin simulate-cohort from {model} (seed {seed}); not trial data."
    with user_errors(), atomic_directory(out, owned=("ck.csv", "covariates.csv", "truth.json")) as tmp:
        write_ck(tmp / "ck.csv", cohort.dataset, comment=comment)
        table = {name: cohort.covariates[name] for name in sorted(cohort.covariates) if name != "DOSE"}
        write_covariates(tmp / "covariates.csv", cohort.dataset.patient_ids, table, comment=comment)
        truth = {
            "simulated": True, "seed": seed, "model": str(model), "n": n,
            "typical": {p.name: p.typical for p in spec.parameters},
            "mu": cohort.truth.mu.tolist(), "omega": dict(zip(spec.parameter_names, cohort.truth.omega.tolist())),
            "effects": dict(zip(spec.effect_names, cohort.truth.beta.tolist())),
            "sigma": float(cohort.truth.sigma),
        }
        (tmp / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    console.print(cohort.dataset.summary())
    console.print(f"wrote {out}/ (ck.csv, covariates.csv, truth.json) - SIMULATED")
