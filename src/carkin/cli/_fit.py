"""``carkin fit`` and ``carkin simulate-cohort``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..inference import SamplerSettings, fit
from ._app import app
from ._common import console, default_of, user_errors

#: The model both commands use unless told otherwise (a shipped spec, found from any directory).
DEFAULT_MODEL = Path("models/multiphasic.toml")
#: Sampler defaults: `SamplerSettings`' own, so that the command and the library cannot drift apart.
SAMPLER = SamplerSettings()


@app.command("fit")
def fit_command(
    ck: Path = typer.Argument(..., help="CK records (NONMEM-style CSV)."),
    covariates: Optional[Path] = typer.Option(
        None, "--covariates", help="Per-patient covariate table (CSV, ID + columns)."
    ),
    model: Path = typer.Option(DEFAULT_MODEL, "--model", help="Population model spec (TOML)."),
    out: Path = typer.Option(..., "--out", help="Output directory (written atomically)."),
    method: str = typer.Option(default_of(fit, "method"), "--method", help="nuts | laplace | svi | map"),
    chains: int = typer.Option(SAMPLER.chains, "--chains", help="Markov chains (NUTS)."),
    warmup: int = typer.Option(SAMPLER.warmup, "--warmup", help="Warm-up iterations per chain (NUTS)."),
    samples: int = typer.Option(
        SAMPLER.samples, "--samples", help="Draws per chain (NUTS), or from the approximation."
    ),
    seed: int = typer.Option(
        default_of(fit, "seed"), "--seed", help="Seed of the run's jax.random key (recorded in the manifest)."
    ),
    target_accept: float = typer.Option(SAMPLER.target_accept, "--target-accept", help="NUTS target acceptance."),
    max_tree_depth: int = typer.Option(SAMPLER.max_tree_depth, "--max-tree-depth", help="NUTS maximum tree depth."),
    steps: int = typer.Option(SAMPLER.steps, "--steps", help="Optimisation steps (laplace, svi, map)."),
    allow_extra_ids: bool = typer.Option(
        False, "--allow-extra-ids", help="Accept covariate rows without CK records (e.g. patients never infused)."
    ),
    allow_unconverged: bool = typer.Option(
        False, "--allow-unconverged", help="Exit 0 even if the fit fails its convergence gates."
    ),
    progress: bool = typer.Option(SAMPLER.progress_bar, "--progress/--no-progress"),
    whitening: bool = typer.Option(
        SAMPLER.whitening, "--whitening/--no-whitening",
        help="NUTS: two-stage warm-up, then whitened individual parameters (same posterior, faster mixing).",
    ),
) -> None:
    """Fit a hierarchical population model with NUTS (or a fast approximation) and write its artefacts."""
    from .._atomic import check_replaceable
    from ..data import data_hash, load_dataset
    from ..inference import FIT_FILES, save_fit
    from ..plots import plot_individual_fits
    from ..population import load_spec

    with user_errors():
        check_replaceable(out, FIT_FILES)  # refuse before sampling, not after
        spec = load_spec(model)
        # the spec's data requirements: covariates, model inputs, co-medication columns, analytes (DV = 0 is
        # accepted for a linear-scale error model)
        dataset = load_dataset(ck, covariates, spec=spec, allow_extra_ids=allow_extra_ids)
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
        console.print(
            "[bold red]FIT FAILED ITS CONVERGENCE GATES[/bold red]:\n  " + "\n  ".join(diag["failures"]), soft_wrap=True
        )
    console.print(f"wrote {out}/ ({', '.join(FIT_FILES)})")
    if not result.converged and not allow_unconverged:
        raise typer.Exit(code=1)


@app.command("simulate-cohort")
def simulate_cohort_command(
    model: Path = typer.Option(DEFAULT_MODEL, "--model", help="Population model spec with a [simulation] table."),
    n: int = typer.Option(150, "--n", help="Number of virtual patients."),
    seed: int = typer.Option(0, "--seed", help="Seed of the jax.random key (recorded in truth.json and the files)."),
    out: Path = typer.Option(..., "--out", help="Output directory: ck.csv, covariates.csv, truth.json."),
    lloq: Optional[float] = typer.Option(None, "--lloq", help="Assay LLOQ (copies/ug); default from the spec."),
) -> None:
    """Simulate a virtual CK cohort from a population model (files are marked SIMULATED)."""
    import jax

    from ..population import load_spec
    from ..simulate import COHORT_FILES, simulate_cohort, write_simulated_cohort

    with user_errors():
        spec = load_spec(model)
        cohort = simulate_cohort(spec, key=jax.random.PRNGKey(seed), n=n, lloq=lloq)
        write_simulated_cohort(cohort, spec, out, seed=seed, model=str(model))
    console.print(cohort.dataset.summary())
    console.print(f"wrote {out}/ ({', '.join(COHORT_FILES)}) - SIMULATED")
